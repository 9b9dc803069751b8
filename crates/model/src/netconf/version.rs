//! CNI spec versions (`cniVersion`): which ones kubetron speaks, parsing and ordering.

use std::fmt;

use thiserror::Error;

/// The newest spec version, used for VERSION output and when nothing else is known.
pub const CURRENT_VERSION: &str = "1.1.0";

/// Every spec version kubetron accepts in `cniVersion`.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A `cniVersion` that cannot be used. The CNI plugin answers [`VersionError::Unsupported`] with
/// code 1 (incompatible version) and the others with code 6 (decode).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VersionError {
    /// Empty.
    #[error("cniVersion is missing or empty")]
    Empty,
    /// Not `MAJOR.MINOR.PATCH`.
    #[error("invalid cniVersion {0:?}: want MAJOR.MINOR.PATCH")]
    Invalid(String),
    /// Well formed, not one of [`SUPPORTED_VERSIONS`].
    #[error("incompatible CNI versions: config is {0:?}, plugin supports {SUPPORTED_VERSIONS:?}")]
    Unsupported(String),
}

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
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let bad = || VersionError::Invalid(s.to_string());
        let mut it = s.split('.');
        let mut next = |required: bool| -> Result<u32, VersionError> {
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

    /// Parses and checks the version is one of [`SUPPORTED_VERSIONS`].
    pub fn supported(s: &str) -> Result<Version, VersionError> {
        if s.is_empty() {
            return Err(VersionError::Empty);
        }
        let v = Version::parse(s)?;
        if !SUPPORTED_VERSIONS.iter().any(|sv| Version::parse(sv).ok() == Some(v)) {
            return Err(VersionError::Unsupported(s.to_string()));
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_order_and_support() {
        assert_eq!(Version::parse("1.1.0").unwrap(), Version::V1_1_0);
        assert_eq!(Version::parse("1.1").unwrap(), Version::V1_1_0);
        assert!(Version::parse("0.3.1").unwrap() < Version::V0_4_0);
        assert!(Version::V1_0_0 < Version::V1_1_0);
        for bad in ["", "a.b.c", "1..0", "1.0.0.0", "-1.0.0", "1.0.x", "99999999999.0.0"] {
            assert_eq!(Version::parse(bad).unwrap_err(), VersionError::Invalid(bad.into()), "{bad:?}");
        }
        assert_eq!(Version::supported(""), Err(VersionError::Empty));
        for v in SUPPORTED_VERSIONS {
            assert_eq!(Version::supported(v).unwrap().to_string(), v);
        }
        for v in ["0.1.0", "0.2.0", "1.2.0", "2.0.0"] {
            let e = Version::supported(v).unwrap_err();
            assert_eq!(e, VersionError::Unsupported(v.into()), "{v}");
            assert!(e.to_string().contains(v) && e.to_string().contains("1.1.0"), "{e}");
        }
    }
}
