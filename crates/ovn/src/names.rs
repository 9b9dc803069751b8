//! The `external_ids` keys kubetron tags the OVN rows it creates with, and the names of the rows
//! only the CNI plugin makes.
//!
//! Everything here is read and written only on OVSDB rows, by code that links this crate for the
//! rows anyway (the controller, the CNI plugin, the node agent, the NAD sync). What a process or a
//! rule without OVSDB must name the same way is in `model::names` instead: a pod interface's logical
//! switch port name (`pod_port`, which the node agent recomputes from the hand-off), the pod's
//! namespace and name keys (`POD_NAMESPACE`, `POD_NAME`, which `model::addressing` reads to name a
//! conflicting pod) and the port binding key `IFACE_ID_VER`.

/// `external_ids` key naming who owns a row: [`OWNER_CONTROLLER`] or [`OWNER_CNI`]. kubetron only
/// ever deletes rows carrying this key.
pub const OWNER: &str = "kubetron.io/owner";
/// Value of [`OWNER`] for rows made by the controller.
pub const OWNER_CONTROLLER: &str = "controller";
/// Value of [`OWNER`] for rows made by the CNI plugin in standalone mode.
pub const OWNER_CNI: &str = "cni";
/// `external_ids` keys describing the pod (or CNI container) a port belongs to, next to the pod's
/// namespace and name (`model::names::POD_NAMESPACE`, `model::names::POD_NAME`).
pub const POD_UID: &str = "kubetron.io/pod-uid";
pub const CONTAINER_ID: &str = "kubetron.io/container-id";
/// On a persistent-IP port (`claim:{ns}/{claim}`): the IPAMClaim it belongs to, `namespace/name`.
pub const IPAMCLAIM: &str = "kubetron.io/ipamclaim";
/// On a persistent-IP port: its IPAMClaim's `spec` when the port was made (`spec` is immutable;
/// the CRD kubetron ships cannot enforce it on Kubernetes < 1.25, the controller does).
pub const IPAMCLAIM_SPEC: &str = "kubetron.io/ipamclaim-spec";
/// On a persistent-IP port: the UID of its IPAMClaim (a claim deleted and made again is another).
pub const IPAMCLAIM_UID: &str = "kubetron.io/ipamclaim-uid";
/// On a persistent-IP port: the VM using it, `namespace/name` (KubeVirt's `kubevirt.io/domain`, or
/// the pod's name for a pod that is not a VM launcher).
pub const VM: &str = "kubetron.io/vm";
/// On a persistent-IP port: the UID of the VMI (launcher label `kubevirt.io/created-by`), or the
/// pod's UID for a pod that is not a VM launcher.
pub const VMI_UID: &str = "kubetron.io/vmi-uid";
pub const INTERFACE: &str = "kubetron.io/interface";
/// `external_ids` key naming the NetworkAttachmentDefinition (`namespace/name`) a port was made for.
pub const NETWORK: &str = "kubetron.io/network";
/// `external_ids` key naming the CNI network (the network configuration's `name`) an attachment was
/// made for: on the local OVS `Interface` the CNI plugin plugs and on the logical switch ports it
/// makes itself (`owner=cni`). CNI GC of a network considers only attachments carrying its name.
/// (Distinct from [`NETWORK`], which names a NetworkAttachmentDefinition.)
pub const CNI_NETWORK: &str = "kubetron.io/cni-network";
/// `external_ids` key on the local OVS `Interface`: the logical switch the attachment is plugged into.
pub const LOGICAL_SWITCH: &str = "kubetron.io/logical-switch";
/// `external_ids` key on `owner=cni` logical switch ports: the chassis (the local Open_vSwitch row's
/// `external_ids:system-id`) whose CNI plugin made the port, so a node only ever collects its own.
pub const NODE: &str = "kubetron.io/node";
/// `external_ids` key on the local OVS `Interface` and on `owner=cni` logical switch ports: the pod's
/// network namespace path (CNI_NETNS at ADD), so `kubetron gc` can tell attachments whose sandbox is gone.
pub const NETNS: &str = "kubetron.io/netns";
/// `external_ids` key on a Logical_Switch: the namespaces (comma-separated, or `*`) the sync exposes
/// the switch to as a NetworkAttachmentDefinition.
pub const EXPOSE_NAMESPACES: &str = "kubetron.io/namespaces";

/// `external_ids` keys on the rows that carry a MultiNetworkPolicy on one switch (Port_Group,
/// ACL, Address_Set): the policy (`namespace/name`), its UID, the switch, and the row's identity
/// ([`ROW_ID`]), which the controller matches desired rows to existing ones by, so a changed
/// match or address list is an update in place.
pub const POLICY: &str = "kubetron.io/policy";
pub const POLICY_UID: &str = "kubetron.io/policy-uid";
pub const ROW_ID: &str = "kubetron.io/id";
/// `external_ids` key on policy rows: `policy` (a policy's own rows) or `deny` (a switch's
/// default-deny groups, shared by every policy on the switch).
pub const POLICY_KIND: &str = "kubetron.io/kind";

/// The logical switch port name for a CNI attachment that carries no pod identity (a runtime
/// called the plugin directly): from the container ID and interface name.
pub fn container_port(container_id: &str, ifname: &str) -> String {
    format!("cni_{container_id}_{ifname}")
}

/// `Logical_Switch_Port` option (ovn-nb(5)): the chassis (name or host name) the port may be
/// bound on; two, comma separated, during a VM's live migration.
pub const REQUESTED_CHASSIS: &str = "requested-chassis";
/// `Logical_Switch_Port` option (ovn-nb(5)): `rarp` keeps the additional chassis' binding
/// inactive until the VM sends a RARP from there.
pub const ACTIVATION_STRATEGY: &str = "activation-strategy";

#[cfg(test)]
mod tests {
    use super::*;
    use model::names::pod_port;

    #[test]
    fn container_ports_never_take_a_pod_ports_name() {
        // pod_port itself is tested in `model::names`.
        assert_eq!(container_port("abc", "net1"), "cni_abc_net1");
        assert_ne!(container_port("abc", "net1"), pod_port("abc", "x", "net1"));
    }
}
