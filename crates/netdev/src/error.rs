//! Errors of this crate.

use std::io;
use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = NetdevError> = std::result::Result<T, E>;

/// Everything that can go wrong while configuring network devices.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// A netlink request was refused by the kernel.
    #[error("netlink {op} failed: {source}{}", ext_ack.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Netlink {
        /// What was being done, e.g. "RTM_NEWLINK veth kt1234/eth0".
        op: String,
        /// The errno the kernel answered with.
        #[source]
        source: io::Error,
        /// The kernel's extended ack message, if it sent one.
        ext_ack: Option<String>,
    },
    /// A system call or file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An interface or netns name is not acceptable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An argument is not acceptable (e.g. a gateway of another family than the route).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A link with this name already exists where it was to be created.
    #[error("link {name:?} already exists in {netns}")]
    LinkExists {
        /// The link name.
        name: String,
        /// Where: "the host netns" or the target netns path.
        netns: String,
    },
    /// The link is not there.
    #[error("link {0:?} not found")]
    LinkNotFound(String),
    /// The named network namespace already exists.
    #[error("network namespace {0} already exists")]
    NetnsExists(PathBuf),
    /// The network namespace path could not be opened (absent, or not a netns).
    #[error("network namespace {path} cannot be opened: {source}")]
    NetnsOpen {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A reply from the kernel could not be parsed.
    #[error("malformed netlink reply: {0}")]
    Malformed(String),
    /// A closure run inside a netns panicked (its thread died).
    #[error("the thread running inside network namespace {0} panicked")]
    ThreadPanicked(PathBuf),
}

impl NetdevError {
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        NetdevError::Io { op: op.into(), source }
    }

    pub(crate) fn last_os(op: impl Into<String>) -> Self {
        Self::io(op, io::Error::last_os_error())
    }

    /// The errno of a failed netlink request or system call, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetdevError::Netlink { source, .. } | NetdevError::Io { source, .. } => source.raw_os_error(),
            NetdevError::NetnsOpen { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the kernel said "exists" (EEXIST), or this is a `LinkExists`/`NetnsExists` error.
    pub fn is_exists(&self) -> bool {
        matches!(self, NetdevError::LinkExists { .. } | NetdevError::NetnsExists(_)) || self.errno() == Some(libc::EEXIST)
    }

    /// True when the object is not there (ENODEV, ENOENT, ESRCH, or `LinkNotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetdevError::LinkNotFound(_)) || matches!(self.errno(), Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH))
    }
}
