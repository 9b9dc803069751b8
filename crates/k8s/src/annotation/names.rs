//! Name rules: DNS-1123 labels (network and namespace names) and Linux interface names.

use thiserror::Error;

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Interface names a request may not take: the loopback and the cluster network's interface.
pub const RESERVED_IFNAMES: &[&str] = &["lo", "eth0"];

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// Empty string.
    #[error("is empty")]
    Empty,
    /// Longer than allowed.
    #[error("is {len} characters long, the limit is {max}")]
    TooLong {
        /// Actual length in bytes.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Contains a character not allowed.
    #[error("contains {0:?}, which is not allowed")]
    BadChar(char),
    /// DNS-1123 labels start and end with a letter or digit.
    #[error("must start and end with a lowercase letter or digit")]
    BadEdge,
    /// `.`/`..` and reserved names.
    #[error("is reserved")]
    Reserved,
}

/// Check a DNS-1123 label: 1-63 chars of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn check_dns1123_label(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > 63 {
        return Err(NameError::TooLong { len: s.len(), max: 63 });
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameError::BadChar(c));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(NameError::BadEdge);
    }
    Ok(())
}

/// Check a Linux interface name the way the kernel does (`dev_valid_name`), a bit stricter:
/// 1-15 printable ASCII characters, none of `/`, `:`, `%`, `@`, `,` or whitespace; not `.`, `..`,
/// nor one of [`RESERVED_IFNAMES`].
pub fn check_ifname(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic() || matches!(c, '/' | ':' | '%' | '@' | ',')) {
        return Err(NameError::BadChar(c));
    }
    if s.len() > MAX_IFNAME_LEN {
        return Err(NameError::TooLong { len: s.len(), max: MAX_IFNAME_LEN });
    }
    if s == "." || s == ".." || RESERVED_IFNAMES.contains(&s) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(check_dns1123_label("blue-net1").is_ok());
        assert!(check_dns1123_label("1a").is_ok());
        assert_eq!(check_dns1123_label(""), Err(NameError::Empty));
        assert_eq!(check_dns1123_label("Blue"), Err(NameError::BadChar('B')));
        assert_eq!(check_dns1123_label("a_b"), Err(NameError::BadChar('_')));
        assert_eq!(check_dns1123_label("-a"), Err(NameError::BadEdge));
        assert_eq!(check_dns1123_label("a-"), Err(NameError::BadEdge));
        assert_eq!(check_dns1123_label(&"a".repeat(64)), Err(NameError::TooLong { len: 64, max: 63 }));
        assert!(check_dns1123_label(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn ifnames() {
        assert!(check_ifname("net1").is_ok());
        assert!(check_ifname("data_0.100").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        assert_eq!(check_ifname("abcdefghijklmnop"), Err(NameError::TooLong { len: 16, max: 15 }));
        assert_eq!(check_ifname("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(check_ifname("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(check_ifname("é"), Err(NameError::BadChar('é')));
        assert_eq!(check_ifname(".."), Err(NameError::Reserved));
        assert_eq!(check_ifname("eth0"), Err(NameError::Reserved));
        assert_eq!(check_ifname(""), Err(NameError::Empty));
    }
}
