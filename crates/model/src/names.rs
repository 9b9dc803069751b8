//! Names and name rules every kubetron process applies the same way:
//!
//! - the names kubetron gives to the OVN rows of a pod. The controller, the standalone plugin and
//!   the node agent derive a pod interface's logical switch port name the same way: the agent
//!   recomputes it to refuse a hand-off that names another pod's port;
//! - DNS-1123 subdomains (NetworkAttachmentDefinition names, like every Kubernetes object name)
//!   and labels (namespace names), as the annotation parser checks them;
//! - Linux interface names: [`check_ifname`] is the one rule the CNI plugin (`CNI_IFNAME`), the
//!   netlink layer and the annotation parser apply; [`check_request_ifname`] adds the names a
//!   pod's request may not take.

use thiserror::Error;

/// The key binding a logical switch port to one pod generation: the controller sets the
/// port's `options:iface-id-ver` to the pod UID, and whoever plugs the pod's OVS Interface sets
/// its `external_ids:iface-id-ver` to the UID of the pod it plugs. ovn-controller binds a port
/// carrying the option only to an Interface with the same value (ovn-nb(5)), so a stale or
/// forged attachment, or a re-created pod of the same name, cannot take the port; a port without
/// the option binds whatever the Interface says.
pub const IFACE_ID_VER: &str = "iface-id-ver";

/// The prefix of every Port_Group and Address_Set name kubetron makes (MultiNetworkPolicy groups
/// and sets): an administrator's group offered as a security profile never has it, so a pod can
/// neither ask for nor be offered one of kubetron's own.
pub const OWN_GROUP_PREFIX: &str = "kt_";

/// `external_ids` keys naming the pod a port (or OVS Interface) belongs to: `namespace` and
/// `name`. Conflicts found by [`crate::addressing`] name the pod through them.
pub const POD_NAMESPACE: &str = "kubetron.io/pod-namespace";
pub const POD_NAME: &str = "kubetron.io/pod-name";

/// The logical switch port name for interface `ifname` of pod `namespace/pod`.
/// Kubernetes names cannot contain `_`, so the name splits back unambiguously.
pub fn pod_port(namespace: &str, pod: &str, ifname: &str) -> String {
    format!("{namespace}_{pod}_{ifname}")
}

/// The logical switch port name holding the addresses of IPAMClaim `namespace/claim` (NPWG
/// v1.3 persistent IPs): `claim:{namespace}/{claim}`. It exists as long as the claim does, with or
/// without a pod. `:` and `/` never occur in [`pod_port`] names (Kubernetes names and Linux
/// interface names cannot contain them), so the two never collide.
pub fn claim_port(namespace: &str, claim: &str) -> String {
    format!("{CLAIM_PORT_PREFIX}{namespace}/{claim}")
}

/// The prefix of every [`claim_port`] name.
pub const CLAIM_PORT_PREFIX: &str = "claim:";

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Longest DNS-1123 label (namespace names).
pub const MAX_LABEL_LEN: usize = 63;

/// Longest DNS-1123 subdomain (object names such as NetworkAttachmentDefinitions).
pub const MAX_SUBDOMAIN_LEN: usize = 253;

/// Interface names a request may not take: the loopback and the cluster network's interface
/// (the kubelet always names the cluster-wide default network's interface `eth0`).
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
    /// A DNS-1123 subdomain part (between dots) is empty or does not start and end with a letter or digit.
    #[error("has a dot-separated part {0:?} that does not start and end with a lowercase letter or digit")]
    BadPart(String),
    /// `.`/`..` and reserved names.
    #[error("is reserved")]
    Reserved,
}

/// Check a DNS-1123 label: 1-63 chars of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn check_dns1123_label(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_LABEL_LEN {
        return Err(NameError::TooLong { len: s.len(), max: MAX_LABEL_LEN });
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameError::BadChar(c));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(NameError::BadEdge);
    }
    Ok(())
}

/// Check a DNS-1123 subdomain the way Kubernetes validates object names: 1-253 chars of
/// `[a-z0-9.-]`, dot-separated parts that each start and end with a letter or digit
/// (`[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`).
pub fn check_dns1123_subdomain(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_SUBDOMAIN_LEN {
        return Err(NameError::TooLong { len: s.len(), max: MAX_SUBDOMAIN_LEN });
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.')) {
        return Err(NameError::BadChar(c));
    }
    for part in s.split('.') {
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !edge_ok(part.chars().next()) || !edge_ok(part.chars().last()) {
            return Err(NameError::BadPart(part.to_string()));
        }
    }
    Ok(())
}

/// Check a Linux interface name the way the kernel does (`dev_valid_name`): 1-15 bytes, not
/// `.` or `..` ([`NameError::Reserved`]), no `/`, `:` or whitespace. Also refused: `%` (the
/// kernel treats such a name as a pattern like `eth%d` and picks another name, so the name asked
/// for would not be the one made) and control characters.
pub fn check_ifname(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ':' | '%')) {
        return Err(NameError::BadChar(c));
    }
    if s.len() > MAX_IFNAME_LEN {
        return Err(NameError::TooLong { len: s.len(), max: MAX_IFNAME_LEN });
    }
    if s == "." || s == ".." {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// The interface name a pod's network request may ask for: [`check_ifname`], and not one of
/// [`RESERVED_IFNAMES`] (already taken in every pod).
pub fn check_request_ifname(s: &str) -> Result<(), NameError> {
    check_ifname(s)?;
    if RESERVED_IFNAMES.contains(&s) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_port_names_are_distinct_per_interface_and_pod() {
        assert_eq!(pod_port("ns1", "web", "net1"), "ns1_web_net1");
        assert_ne!(pod_port("ns1", "web", "net1"), pod_port("ns1", "web", "net2"));
        assert_ne!(pod_port("a", "b-c", "net1"), pod_port("a-b", "c", "net1"));
    }

    #[test]
    fn claim_ports_never_collide_with_pod_ports() {
        assert_eq!(claim_port("ns1", "vm1.red"), "claim:ns1/vm1.red");
        assert_ne!(claim_port("ns1", "vm1.red"), claim_port("ns1", "vm1.blue"));
        assert_ne!(claim_port("a", "b.c"), claim_port("a.b", "c"));
        // Every pod_port of valid names lacks ':' and '/', which every claim port has.
        for (ns, pod, ifname) in [("claim", "x", "net1"), ("ns1", "vm1", "podb1f51a511f1"), ("a", "b", "c")] {
            assert!(check_dns1123_label(ns).is_ok() && check_dns1123_subdomain(pod).is_ok() && check_ifname(ifname).is_ok());
            let p = pod_port(ns, pod, ifname);
            assert!(!p.contains(':') && !p.contains('/'), "{p}");
            assert!(!p.starts_with(CLAIM_PORT_PREFIX));
        }
        assert!(claim_port("x", "y").contains(':') && claim_port("x", "y").contains('/'));
    }

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
    fn dns_subdomains() {
        for ok in ["red", "red.net", "a.b-c.d1", "1.2.3", &"a".repeat(253), &format!("{}.{}", "a".repeat(63), "b".repeat(100))] {
            assert!(check_dns1123_subdomain(ok).is_ok(), "{ok}");
        }
        assert_eq!(check_dns1123_subdomain(""), Err(NameError::Empty));
        assert_eq!(check_dns1123_subdomain(&"a".repeat(254)), Err(NameError::TooLong { len: 254, max: 253 }));
        assert_eq!(check_dns1123_subdomain("Red.net"), Err(NameError::BadChar('R')));
        assert_eq!(check_dns1123_subdomain("red_net"), Err(NameError::BadChar('_')));
        assert_eq!(check_dns1123_subdomain("red..net"), Err(NameError::BadPart(String::new())));
        assert_eq!(check_dns1123_subdomain(".red"), Err(NameError::BadPart(String::new())));
        assert_eq!(check_dns1123_subdomain("red."), Err(NameError::BadPart(String::new())));
        assert_eq!(check_dns1123_subdomain("red.-net"), Err(NameError::BadPart("-net".into())));
        assert_eq!(check_dns1123_subdomain("red-.net"), Err(NameError::BadPart("red-".into())));
    }

    #[test]
    fn ifnames() {
        assert!(check_ifname("net1").is_ok());
        assert!(check_ifname("data_0.100").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        assert_eq!(check_ifname("abcdefghijklmnop"), Err(NameError::TooLong { len: 16, max: 15 }));
        assert_eq!(check_ifname("a/b"), Err(NameError::BadChar('/')));
        assert_eq!(check_ifname("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(check_ifname("a:b"), Err(NameError::BadChar(':')));
        assert_eq!(check_ifname("eth%d"), Err(NameError::BadChar('%')));
        assert_eq!(check_ifname("a\tb"), Err(NameError::BadChar('\t')));
        assert_eq!(check_ifname("a\u{1}"), Err(NameError::BadChar('\u{1}')));
        // The kernel accepts these; so does the spec ("a valid Linux kernel interface name").
        assert!(check_ifname("a@b").is_ok());
        assert!(check_ifname("a,b").is_ok());
        assert!(check_ifname("é").is_ok());
        // 15 bytes, not characters: "é" is two bytes.
        assert_eq!(check_ifname(&"é".repeat(8)), Err(NameError::TooLong { len: 16, max: 15 }));
        assert_eq!(check_ifname(".."), Err(NameError::Reserved));
        assert_eq!(check_ifname("."), Err(NameError::Reserved));
        assert_eq!(check_ifname(""), Err(NameError::Empty));
        // The runtime names the cluster network's interface eth0: a CNI call may ask for it...
        assert!(check_ifname("eth0").is_ok() && check_ifname("lo").is_ok());
        // ...a pod's request may not.
        assert_eq!(check_request_ifname("eth0"), Err(NameError::Reserved));
        assert_eq!(check_request_ifname("lo"), Err(NameError::Reserved));
        assert_eq!(check_request_ifname(".."), Err(NameError::Reserved));
        assert_eq!(check_request_ifname("a/b"), Err(NameError::BadChar('/')));
        assert!(check_request_ifname("net1").is_ok());
    }
}
