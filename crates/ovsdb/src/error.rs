//! Error types of the `ovsdb` crate.

use std::fmt;

/// One error returned by the server for a transaction (RFC 7047 section 4.1.3 / 5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnError {
    /// Index of the failing operation in the request, or `None` when the error concerns the
    /// whole transaction (e.g. a referential integrity or constraint violation found at commit).
    pub index: Option<usize>,
    /// The `op` of the failing operation, when known.
    pub op: Option<String>,
    /// The server's `error` string, e.g. `"constraint violation"`.
    pub error: String,
    /// The server's `details` string, if any.
    pub details: Option<String>,
}

impl fmt::Display for TxnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, &self.op) {
            (Some(i), Some(op)) => write!(f, "operation {i} ({op}) failed: {}", self.error)?,
            (Some(i), None) => write!(f, "operation {i} failed: {}", self.error)?,
            _ => write!(f, "transaction failed: {}", self.error)?,
        }
        if let Some(d) = &self.details {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// A value that violates the schema, found before anything was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckError {
    pub table: String,
    pub column: String,
    /// The offending value, as JSON text.
    pub value: String,
    pub reason: String,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table {}, column {}: value {}: {}", self.table, self.column, self.value, self.reason)
    }
}

/// Errors of the wire codec.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message exceeds the maximum size of {max} bytes")]
    TooLarge { max: usize },
    #[error("unexpected byte 0x{byte:02x} between JSON-RPC messages (at offset {offset})")]
    Garbage { byte: u8, offset: usize },
    #[error("JSON nesting deeper than {0}")]
    TooDeep(usize),
    #[error("connection closed in the middle of a message ({0} bytes pending)")]
    Truncated(usize),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Every error of the `ovsdb` crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid remote {remote:?}: {reason}")]
    InvalidRemote { remote: String, reason: String },
    #[error("connecting to {remote}: {reason}")]
    Connect { remote: String, reason: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("wire codec: {0}")]
    Codec(#[from] CodecError),
    #[error("malformed message from server: {0}")]
    Protocol(String),
    #[error("connection to {remote} lost while the request {method} was in flight ({reason}); it was NOT re-sent and may or may not have been applied")]
    Disconnected { remote: String, method: String, reason: String },
    /// The connection task ended (the connection was lost and reconnecting is disabled, or the
    /// client was shut down): no request will be answered any more.
    #[error("connection to {remote} is closed and will not be re-established: {reason}")]
    Closed { remote: String, reason: String },
    #[error("timed out: {0}")]
    Timeout(String),
    /// No reply within [`crate::ClientConfig::request_timeout`].
    #[error("{method} to {remote}: no reply within {timeout:?}; the request may or may not have been applied")]
    RequestTimeout { remote: String, method: String, timeout: std::time::Duration },
    #[error("{method} failed: server returned error {error}")]
    Rpc { method: String, error: serde_json::Value },
    #[error("{0}")]
    Transaction(TxnError),
    #[error("schema check failed: {0}")]
    Check(CheckError),
    /// An update, mutate or delete whose `where` restricts nothing (no condition, or only `true`)
    /// without having been built with [`crate::ops::Where::every_row`]; refused before sending.
    #[error("{op} on table {table} has no condition restricting the rows it applies to; use Where::every_row() if every row is meant")]
    UnboundedWhere { op: &'static str, table: String },
    #[error("schema: {0}")]
    Schema(String),
    #[error("unknown database {0:?}")]
    UnknownDatabase(String),
    #[error("monitor {0} was canceled by the server")]
    MonitorCanceled(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The transaction error, if this is one.
    pub fn txn(&self) -> Option<&TxnError> {
        match self {
            Error::Transaction(t) => Some(t),
            _ => None,
        }
    }
    pub(crate) fn check(table: &str, column: &str, value: impl fmt::Display, reason: impl Into<String>) -> Error {
        Error::Check(CheckError { table: table.to_string(), column: column.to_string(), value: value.to_string(), reason: reason.into() })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
