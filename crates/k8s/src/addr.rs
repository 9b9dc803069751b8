//! Small address types used in network requests: defined in [`model::addr`], re-exported here.

pub use model::addr::*;
