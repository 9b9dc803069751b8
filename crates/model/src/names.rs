//! The names kubetron gives to the OVN rows of a pod. The controller, the standalone plugin and
//! the node agent derive a pod interface's logical switch port name the same way: the agent
//! recomputes it to refuse a hand-off that names another pod's port.

/// The key binding a logical switch port to one pod generation: the controller sets the
/// port's `options:iface-id-ver` to the pod UID, and whoever plugs the pod's OVS Interface sets
/// its `external_ids:iface-id-ver` to the UID of the pod it plugs. ovn-controller binds a port
/// carrying the option only to an Interface with the same value (ovn-nb(5)), so a stale or
/// forged attachment, or a re-created pod of the same name, cannot take the port; a port without
/// the option binds whatever the Interface says.
pub const IFACE_ID_VER: &str = "iface-id-ver";

/// `external_ids` keys naming the pod a port (or OVS Interface) belongs to: `namespace` and
/// `name`. Conflicts found by [`crate::addressing`] name the pod through them.
pub const POD_NAMESPACE: &str = "kubetron.io/pod-namespace";
pub const POD_NAME: &str = "kubetron.io/pod-name";

/// The logical switch port name for interface `ifname` of pod `namespace/pod`.
/// Kubernetes names cannot contain `_`, so the name splits back unambiguously.
pub fn pod_port(namespace: &str, pod: &str, ifname: &str) -> String {
    format!("{namespace}_{pod}_{ifname}")
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
}
