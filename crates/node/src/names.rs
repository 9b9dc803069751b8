//! Names derived from a physical network: the extended resource, the plugin socket, the device
//! IDs and the environment variable handed to containers.

/// Prefix of every resource kubetron advertises.
pub const RESOURCE_PREFIX: &str = "kubetron.io";

/// Prefix of the environment variable `Allocate` sets, followed by the network in upper case.
pub const ENV_PREFIX: &str = "KUBETRON_PHYSNET_";

/// Kubernetes limits the name part of an extended resource (a qualified name) to 63 characters.
const MAX_NAME_LEN: usize = 63;

/// Whether `physnet` can be the name part of a Kubernetes extended resource (a qualified name:
/// alphanumerics, `-`, `_`, `.`, starting and ending with an alphanumeric, at most 63 long).
/// Such names are also safe as file names.
pub fn valid_physnet(physnet: &str) -> bool {
    let b = physnet.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `kubetron.io/<physnet>`.
pub fn resource_name(physnet: &str) -> String {
    format!("{RESOURCE_PREFIX}/{physnet}")
}

/// The plugin's socket file name inside the device-plugins directory: `kubetron-<physnet>.sock`.
pub fn socket_name(physnet: &str) -> String {
    format!("kubetron-{physnet}.sock")
}

/// The ID of fake device `i` of a network: `<physnet>-<i>`.
pub fn device_id(physnet: &str, i: usize) -> String {
    format!("{physnet}-{i}")
}

/// The index of a device ID of this network, if it is one of the first `capacity`.
pub fn device_index(physnet: &str, capacity: usize, id: &str) -> Option<usize> {
    let n: usize = id.strip_prefix(physnet)?.strip_prefix('-')?.parse().ok()?;
    // Reject non-canonical spellings such as "physnet1-01".
    (n < capacity && device_id(physnet, n) == id).then_some(n)
}

/// `KUBETRON_PHYSNET_<NET>`: the network upper-cased, every character other than `A-Z`/`0-9`
/// replaced by `_` (so `ext-net.1` gives `KUBETRON_PHYSNET_EXT_NET_1`).
pub fn env_var(physnet: &str) -> String {
    let net: String = physnet.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{ENV_PREFIX}{net}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physnet_validity() {
        for ok in ["physnet1", "a", "ext-net.1", "Net_2", &"x".repeat(63)] {
            assert!(valid_physnet(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b", "a b", "ü", ".a", &"x".repeat(64), "../x"] {
            assert!(!valid_physnet(bad), "{bad}");
        }
    }

    #[test]
    fn derived_names() {
        assert_eq!(resource_name("physnet1"), "kubetron.io/physnet1");
        assert_eq!(socket_name("physnet1"), "kubetron-physnet1.sock");
        assert_eq!(device_id("physnet1", 3), "physnet1-3");
        assert_eq!(env_var("physnet1"), "KUBETRON_PHYSNET_PHYSNET1");
        assert_eq!(env_var("ext-net.1"), "KUBETRON_PHYSNET_EXT_NET_1");
    }

    #[test]
    fn device_indexes() {
        assert_eq!(device_index("p", 4, "p-0"), Some(0));
        assert_eq!(device_index("p", 4, "p-3"), Some(3));
        assert_eq!(device_index("p", 4, "p-4"), None);
        assert_eq!(device_index("p", 4, "p-01"), None);
        assert_eq!(device_index("p", 4, "q-1"), None);
        assert_eq!(device_index("p", 4, "p1"), None);
        assert_eq!(device_index("p", 4, "p--1"), None);
        assert_eq!(device_index("p-1", 4, "p-1-2"), Some(2));
    }
}
