//! Environment variables that tell containers which interface a network got:
//! `NETWORK_INTERFACE_<NET>=<ifname>`.
//!
//! `<NET>` is the network (NetworkAttachmentDefinition) name upper-cased, with every character
//! outside `[A-Z0-9_]` replaced by `_`; a name starting with a digit gets a leading `_`
//! (`5g-core` -> `NETWORK_INTERFACE__5G_CORE`). The namespace is not part of the name.
//!
//! Collision rule: selections are taken in request order. The first one that maps to a variable
//! name keeps it; a later one gets the first free of `<name>_2`, `<name>_3`, ... So `blue`,
//! `other/blue`, `blue` give `NETWORK_INTERFACE_BLUE`, `NETWORK_INTERFACE_BLUE_2`,
//! `NETWORK_INTERFACE_BLUE_3`. A suffixed name never takes a name used earlier in the list:
//! `a`, `a`, `a-2` give `..._A`, `..._A_2`, `..._A_2_2`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::request::NetworkSelection;

/// Prefix of every variable.
pub const ENV_PREFIX: &str = "NETWORK_INTERFACE_";

/// One environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Value: the interface name.
    pub value: String,
}

/// The variable name for a network name, before collision handling.
pub fn env_var_name(network: &str) -> String {
    let mut out = String::with_capacity(ENV_PREFIX.len() + network.len() + 1);
    out.push_str(ENV_PREFIX);
    if network.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(network.chars().map(|c| {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// Variables for `(network name, interface)` pairs in request order, collisions resolved.
pub fn env_vars_for<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<EnvVar> {
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for (network, iface) in pairs {
        let base = env_var_name(network);
        let mut name = base.clone();
        let mut n = 2u32;
        while used.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        used.insert(name.clone());
        out.push(EnvVar { name, value: iface.to_string() });
    }
    out
}

/// Variables for resolved selections, in request order.
pub fn env_vars(selections: &[NetworkSelection]) -> Vec<EnvVar> {
    env_vars_for(selections.iter().map(|s| (s.name.as_str(), s.interface.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse;

    fn names(v: &[EnvVar]) -> Vec<(&str, &str)> {
        v.iter().map(|e| (e.name.as_str(), e.value.as_str())).collect()
    }

    #[test]
    fn name_mangling() {
        assert_eq!(env_var_name("blue"), "NETWORK_INTERFACE_BLUE");
        assert_eq!(env_var_name("blue-net.1"), "NETWORK_INTERFACE_BLUE_NET_1");
        assert_eq!(env_var_name("5g-core"), "NETWORK_INTERFACE__5G_CORE");
        assert_eq!(env_var_name("é"), "NETWORK_INTERFACE__");
    }

    #[test]
    fn from_selections() {
        let sel = parse("blue, other/red@data0", "ns").unwrap();
        assert_eq!(names(&env_vars(&sel)), vec![("NETWORK_INTERFACE_BLUE", "net1"), ("NETWORK_INTERFACE_RED", "data0")]);
    }

    #[test]
    fn collisions_get_suffixes_in_request_order() {
        let sel = parse("blue, other/blue, blue@x", "ns").unwrap();
        assert_eq!(
            names(&env_vars(&sel)),
            vec![("NETWORK_INTERFACE_BLUE", "net1"), ("NETWORK_INTERFACE_BLUE_2", "net2"), ("NETWORK_INTERFACE_BLUE_3", "x"),]
        );
        // Different names that mangle the same way collide too.
        let v = env_vars_for([("a-b", "i1"), ("a-b", "i2"), ("a-b-2", "i3")]);
        assert_eq!(
            names(&v),
            vec![("NETWORK_INTERFACE_A_B", "i1"), ("NETWORK_INTERFACE_A_B_2", "i2"), ("NETWORK_INTERFACE_A_B_2_2", "i3")]
        );
        let unique: BTreeSet<_> = v.iter().map(|e| &e.name).collect();
        assert_eq!(unique.len(), v.len());
    }
}
