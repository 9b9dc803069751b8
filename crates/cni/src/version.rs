//! The VERSION answer (the versions themselves, parsing and ordering: [`model::netconf::Version`]).

use model::netconf::{CURRENT_VERSION, SUPPORTED_VERSIONS};
use serde::{Deserialize, Serialize};

/// The answer to VERSION.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Version of this output.
    pub cni_version: String,
    /// What the plugin supports.
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// This plugin's answer.
    pub fn current() -> VersionInfo {
        VersionInfo {
            cni_version: CURRENT_VERSION.to_string(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{CniError, ErrorCode};
    use model::netconf::Version;

    #[test]
    fn version_errors_get_their_codes() {
        let code = |v: &str| CniError::from(Version::supported(v).unwrap_err()).code;
        assert_eq!(code("1.0.x"), ErrorCode::Decode);
        assert_eq!(code(""), ErrorCode::Decode);
        assert_eq!(code("2.0.0"), ErrorCode::IncompatibleVersion);
        let vi = VersionInfo::current();
        assert_eq!(vi.cni_version, CURRENT_VERSION);
        assert_eq!(vi.supported_versions, SUPPORTED_VERSIONS);
    }
}
