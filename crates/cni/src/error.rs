//! CNI error results: `{cniVersion, code, msg, details}` with the spec's well-known codes.

use std::fmt;

use serde::{Deserialize, Serialize};

use model::netconf::{NetConfError, VersionError, CURRENT_VERSION};

/// The error codes of CNI spec 1.1.0. Codes 0-99 are reserved by the spec; plugins use 100+.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in network configuration (message names key and value).
    UnsupportedField,
    /// 3: container unknown or does not exist (runtime need not clean up).
    UnknownContainer,
    /// 4: invalid necessary environment variables (message names them).
    InvalidEnv,
    /// 5: I/O failure, e.g. reading stdin.
    Io,
    /// 6: failed to decode content (network config, version info).
    Decode,
    /// 7: invalid network config.
    InvalidNetworkConfig,
    /// 11: try again later (transient condition).
    TryAgainLater,
    /// 50 (STATUS): the plugin is not available, cannot service ADD.
    NotAvailable,
    /// 51 (STATUS): not available, and existing containers may have limited connectivity.
    NotAvailableLimitedConnectivity,
    /// 999: internal error (what libcni uses for unexpected failures; a panic in the plugin).
    Internal,
    /// Any other code; plugin-specific codes are 100 and up.
    Other(u32),
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnv => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::NotAvailableLimitedConnectivity => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Other(c) => c,
        }
    }

    /// The typed code for a number.
    pub fn from_code(c: u32) -> ErrorCode {
        match c {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnv,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decode,
            7 => ErrorCode::InvalidNetworkConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::NotAvailable,
            51 => ErrorCode::NotAvailableLimitedConnectivity,
            999 => ErrorCode::Internal,
            c => ErrorCode::Other(c),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ErrorCode::from_code(u32::deserialize(d)?))
    }
}

/// A CNI error, as printed on stdout with exit code 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    /// The error code.
    pub code: ErrorCode,
    /// Short message.
    pub msg: String,
    /// Longer details (may be empty).
    pub details: String,
}

/// The JSON shape of an error result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorJson {
    /// The spec version of this output.
    pub cni_version: String,
    /// The code.
    pub code: ErrorCode,
    /// Message.
    pub msg: String,
    /// Details; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> CniError {
        CniError { code, msg: msg.into(), details: String::new() }
    }

    /// Adds details.
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// Code 1.
    pub fn incompatible_version(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::IncompatibleVersion, msg)
    }
    /// Code 2.
    pub fn unsupported_field(key: &str, value: impl fmt::Display) -> CniError {
        CniError::new(ErrorCode::UnsupportedField, format!("unsupported field {key:?} = {value}"))
    }
    /// Code 3.
    pub fn unknown_container(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::UnknownContainer, msg)
    }
    /// Code 4.
    pub fn invalid_env(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidEnv, msg)
    }
    /// Code 5.
    pub fn io(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::Io, msg)
    }
    /// Code 6.
    pub fn decode(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::Decode, msg)
    }
    /// Code 7.
    pub fn invalid_config(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidNetworkConfig, msg)
    }
    /// Code 11.
    pub fn try_again_later(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::TryAgainLater, msg)
    }
    /// Code 999.
    pub fn internal(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::Internal, msg)
    }

    /// The JSON document for stdout, labelled with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> ErrorJson {
        let v = if cni_version.is_empty() { CURRENT_VERSION } else { cni_version };
        ErrorJson { cni_version: v.to_string(), code: self.code, msg: self.msg.clone(), details: self.details.clone() }
    }

    /// Serialized JSON bytes for stdout.
    pub fn to_json_bytes(&self, cni_version: &str) -> Vec<u8> {
        serde_json::to_vec(&self.to_json(cni_version)).unwrap_or_else(|_| {
            format!(r#"{{"cniVersion":"{CURRENT_VERSION}","code":{},"msg":"error not serializable"}}"#, self.code.code()).into_bytes()
        })
    }
}

impl From<ErrorJson> for CniError {
    fn from(e: ErrorJson) -> CniError {
        CniError { code: e.code, msg: e.msg, details: e.details }
    }
}

impl From<VersionError> for CniError {
    /// Code 1 for a version kubetron does not speak, 6 for one that is not a version.
    fn from(e: VersionError) -> CniError {
        match e {
            VersionError::Unsupported(_) => CniError::incompatible_version(e.to_string()),
            VersionError::Empty | VersionError::Invalid(_) => CniError::decode(e.to_string()),
        }
    }
}

impl From<NetConfError> for CniError {
    /// Code 7 (invalid network config), but the version's own codes.
    fn from(e: NetConfError) -> CniError {
        match e {
            NetConfError::Version(v) => v.into(),
            e => CniError::invalid_config(e.to_string()),
        }
    }
}
