//! CNI spec versions: which ones this plugin speaks, parsing and ordering, the VERSION answer.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CniError;

/// The newest spec version, used for VERSION output and when nothing else is known.
pub const CURRENT_VERSION: &str = "1.1.0";

/// Every spec version this plugin accepts in `cniVersion`.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A parsed `MAJOR.MINOR.PATCH` spec version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// 0.4.0: CHECK and prevResult on DEL appear.
    pub const V0_4_0: Version = Version { major: 0, minor: 4, patch: 0 };
    /// 1.0.0: `version` dropped from ips.
    pub const V1_0_0: Version = Version { major: 1, minor: 0, patch: 0 };
    /// 1.1.0: STATUS, GC, new interface and route fields.
    pub const V1_1_0: Version = Version { major: 1, minor: 1, patch: 0 };

    /// Parses "1.1.0" (also "1.1" and "1": missing parts are 0, like libcni).
    pub fn parse(s: &str) -> Result<Version, CniError> {
        let bad = || CniError::decode(format!("invalid cniVersion {s:?}: want MAJOR.MINOR.PATCH"));
        let mut it = s.split('.');
        let mut next = |required: bool| -> Result<u32, CniError> {
            match it.next() {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 9 => p.parse().map_err(|_| bad()),
                None if !required => Ok(0),
                _ => Err(bad()),
            }
        };
        let v = Version { major: next(true)?, minor: next(false)?, patch: next(false)? };
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }

    /// Parses and checks the version is one of [`SUPPORTED_VERSIONS`] (code 1 otherwise).
    pub fn supported(s: &str) -> Result<Version, CniError> {
        if s.is_empty() {
            return Err(CniError::decode("cniVersion is missing or empty"));
        }
        let v = Version::parse(s)?;
        if !SUPPORTED_VERSIONS.iter().any(|sv| Version::parse(sv).ok() == Some(v)) {
            return Err(CniError::incompatible_version(format!(
                "incompatible CNI versions: config is {s:?}, plugin supports {SUPPORTED_VERSIONS:?}"
            )));
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

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
    use crate::error::ErrorCode;

    #[test]
    fn parse_order_and_support() {
        assert_eq!(Version::parse("1.1.0").unwrap(), Version::V1_1_0);
        assert_eq!(Version::parse("1.1").unwrap(), Version::V1_1_0);
        assert!(Version::parse("0.3.1").unwrap() < Version::V0_4_0);
        assert!(Version::V1_0_0 < Version::V1_1_0);
        for bad in ["", "a.b.c", "1..0", "1.0.0.0", "-1.0.0", "1.0.x", "99999999999.0.0"] {
            assert_eq!(Version::parse(bad).unwrap_err().code, ErrorCode::Decode, "{bad:?}");
        }
        for v in SUPPORTED_VERSIONS {
            assert_eq!(Version::supported(v).unwrap().to_string(), v);
        }
        for v in ["0.1.0", "0.2.0", "1.2.0", "2.0.0"] {
            let e = Version::supported(v).unwrap_err();
            assert_eq!(e.code, ErrorCode::IncompatibleVersion, "{v}");
            assert!(e.msg.contains(v) && e.msg.contains("1.1.0"), "{}", e.msg);
        }
        let vi = VersionInfo::current();
        assert_eq!(vi.cni_version, CURRENT_VERSION);
        assert_eq!(vi.supported_versions, SUPPORTED_VERSIONS);
    }
}
