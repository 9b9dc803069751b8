//! Errors of the node agent.

use std::path::PathBuf;

/// Result of the node agent.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("ovsdb: {0}")]
    Ovsdb(#[from] ovsdb::Error),
    #[error("cannot connect to {path}: {source}")]
    Connect { path: PathBuf, source: tonic::transport::Error },
    #[error("kubelet refused to register {resource}: {code:?}: {message}")]
    Register { resource: String, code: tonic::Code, message: String },
    #[error("gRPC server on {path}: {source}")]
    Serve { path: PathBuf, source: tonic::transport::Error },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}
