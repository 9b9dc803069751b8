//! Ethernet MAC address syntax, written once: the annotation parser, the CNI configuration check,
//! the OVN addressing rules and the netlink layer all read MACs through [`parse`] (or
//! [`normalize`] for OVN's own `addresses` form) and print them with [`format`].

use thiserror::Error;

/// Why a MAC address string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MacError {
    /// Not six colon- (or dash-) separated pairs of hex digits.
    #[error("\"{0}\" is not a MAC address (expected six hex pairs like c2:11:22:33:44:55)")]
    Syntax(String),
    /// The group (multicast) bit is set: such an address cannot be an interface's own.
    #[error("\"{0}\" is a multicast MAC address (lowest bit of the first octet is set); an interface needs a unicast address")]
    Multicast(String),
}

/// The six bytes of `s`: six pairs of hex digits (either case) separated by `:`, or all by `-`
/// (`c2:11:22:33:44:55`, `C2-11-22-33-44-55`). Any other form is a [`MacError::Syntax`].
pub fn parse(s: &str) -> Result<[u8; 6], MacError> {
    let syntax = || MacError::Syntax(s.to_string());
    let sep = if s.contains(':') { ':' } else { '-' };
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.split(sep) {
        if n == 6 || part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(syntax());
        }
        out[n] = u8::from_str_radix(part, 16).map_err(|_| syntax())?;
        n += 1;
    }
    if n != 6 {
        return Err(syntax());
    }
    Ok(out)
}

/// [`parse`], refusing a group (multicast) address: the MAC an interface may be given.
pub fn parse_unicast(s: &str) -> Result<[u8; 6], MacError> {
    let mac = parse(s)?;
    if is_multicast(mac) {
        return Err(MacError::Multicast(s.to_string()));
    }
    Ok(mac)
}

/// True when the group bit (lowest bit of the first octet) is set.
pub fn is_multicast(mac: [u8; 6]) -> bool {
    mac[0] & 0x01 != 0
}

/// True for a locally administered unicast address (the kind to invent for a pod).
pub fn is_local_unicast(mac: [u8; 6]) -> bool {
    mac[0] & 0x02 != 0 && !is_multicast(mac)
}

/// `aa:bb:cc:dd:ee:ff`, lower case.
pub fn format(m: [u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// `w` in lower case when it is a MAC in OVN's form (six hex pairs separated by `:`; the `-` form
/// is not one), else `None`. Words of an OVN `addresses` entry are told apart with it.
pub fn normalize(w: &str) -> Option<String> {
    if w.contains('-') {
        return None;
    }
    parse(w).ok().map(format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_both_separators_and_refuses_the_rest() {
        assert_eq!(parse("0A:58:0a:f4:00:05"), Ok([0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x05]));
        assert_eq!(parse("c2-11-22-33-44-55"), Ok([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55]));
        for bad in [
            "",
            "0a:58:0a:f4:00",
            "0a:58:0a:f4:00:05:06",
            "0a:58:0a:f4:00:zz",
            "0a5:8:0a:f4:00:05",
            "0a:58-0a:f4:00:05",
            "+a:58:0a:f4:00:05",
            "0a:58:0a:f4:00:05:",
        ] {
            assert_eq!(parse(bad), Err(MacError::Syntax(bad.to_string())), "{bad:?}");
        }
    }

    #[test]
    fn unicast_and_local_bits() {
        assert_eq!(parse_unicast("01:00:5e:00:00:01"), Err(MacError::Multicast("01:00:5e:00:00:01".into())));
        assert!(parse_unicast("c2:11:22:33:44:55").is_ok());
        assert!(is_local_unicast(parse("0a:58:00:00:00:01").unwrap()));
        assert!(!is_local_unicast(parse("00:16:3e:00:00:01").unwrap()));
        assert!(!is_local_unicast(parse("03:00:00:00:00:01").unwrap()));
    }

    #[test]
    fn normalize_is_ovn_form_only() {
        assert_eq!(normalize("0A:00:00:00:00:05").as_deref(), Some("0a:00:00:00:00:05"));
        assert_eq!(normalize("0a-00-00-00-00-05"), None);
        assert_eq!(normalize("10.1.0.5"), None);
        assert_eq!(normalize("fd00::5"), None);
        assert_eq!(normalize("dynamic"), None);
    }

    proptest! {
        #[test]
        fn format_parses_back(b in any::<[u8; 6]>()) {
            prop_assert_eq!(parse(&format(b)), Ok(b));
            prop_assert_eq!(normalize(&format(b).to_uppercase()), Some(format(b)));
        }
    }
}
