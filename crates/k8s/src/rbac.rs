//! The Kubernetes API permissions each kubetron component's code uses. `deploy/` grants exactly
//! these (a test checks the manifests against this list); change both together.

/// One permission: verbs on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// API group (`""` for core).
    pub api_group: &'static str,
    /// Resource (plural).
    pub resource: &'static str,
    /// Verbs needed.
    pub verbs: &'static [&'static str],
    /// Only in the component's own namespace (granted by a Role, not a ClusterRole).
    pub own_namespace_only: bool,
    /// Restricted to these object names (empty: any).
    pub resource_names: &'static [&'static str],
}

const fn cluster(api_group: &'static str, resource: &'static str, verbs: &'static [&'static str]) -> Permission {
    Permission { api_group, resource, verbs, own_namespace_only: false, resource_names: &[] }
}

/// Name of the MutatingWebhookConfiguration the webhook publishes its CA into.
pub const WEBHOOK_CONFIGURATION_NAME: &str = "kubetron-webhook";
/// Name of the controller's leader election Lease.
pub const CONTROLLER_LEASE_NAME: &str = "kubetron-controller";

/// Controller: watches pods and writes their status annotations (through `pods/status`), records events, manages NADs (and
/// lists namespaces for switches exposed to `*`, see [`crate::nadsync`]), elects a leader with a
/// Lease in its namespace, publishes the offered security profiles there ([`crate::profiles`]).
pub const CONTROLLER: &[Permission] = &[
    cluster("", "pods", &["get", "list", "watch"]),
    // Status annotations (network-status, kubetron.io/interfaces) go through pods/status.
    cluster("", "pods/status", &["patch"]),
    cluster("", "namespaces", &["list", "watch"]),
    // Events through kube-runtime's Recorder (events.k8s.io/v1; patch: a repeat becomes a series).
    cluster("events.k8s.io", "events", &["create", "patch"]),
    cluster("k8s.cni.cncf.io", "network-attachment-definitions", &["get", "list", "watch", "create", "update", "delete"]),
    // IPAMClaims (persistent IPs): read, and `status.ips`/`ownerPod` written through ipamclaims/status.
    cluster("k8s.cni.cncf.io", "ipamclaims", &["get", "list", "watch"]),
    cluster("k8s.cni.cncf.io", "ipamclaims/status", &["patch"]),
    // MultiNetworkPolicies: read (problems and progress are reported as Events).
    cluster("k8s.cni.cncf.io", "multi-networkpolicies", &["list", "watch"]),
    Permission {
        api_group: "coordination.k8s.io",
        resource: "leases",
        // watch: a standby follows the Lease to take over right after the leader releases it.
        verbs: &["get", "watch", "create", "update"],
        own_namespace_only: true,
        resource_names: &[],
    },
    // The offered security profiles, published for the webhook (server-side apply: patch, and
    // create the first time; the API server checks create with the object's name).
    Permission {
        api_group: "",
        resource: "configmaps",
        verbs: &["get", "create", "patch"],
        own_namespace_only: true,
        resource_names: &[crate::profiles::CONFIGMAP],
    },
];

/// Webhook: reads NADs and the offered security profiles ([`crate::webhook::KubeSource`]) and
/// publishes its generated CA ([`crate::webhook::register_ca_bundle`]).
pub const WEBHOOK: &[Permission] = &[
    cluster("k8s.cni.cncf.io", "network-attachment-definitions", &["get", "list", "watch"]),
    Permission {
        api_group: "",
        resource: "configmaps",
        verbs: &["get"],
        own_namespace_only: true,
        resource_names: &[crate::profiles::CONFIGMAP],
    },
    Permission {
        api_group: "admissionregistration.k8s.io",
        resource: "mutatingwebhookconfigurations",
        verbs: &["get", "patch"],
        own_namespace_only: false,
        resource_names: &[WEBHOOK_CONFIGURATION_NAME],
    },
];

/// Node agent: reads its Node; follows the pods of its node (the CNI server's cache: hand-offs in
/// `kubetron.io/interfaces`) and the NADs (chained mode tells kubetron networks from others).
/// Nothing to write: the controller writes every annotation.
pub const NODE: &[Permission] = &[
    cluster("", "nodes", &["get"]),
    cluster("", "pods", &["list", "watch"]),
    cluster("k8s.cni.cncf.io", "network-attachment-definitions", &["list", "watch"]),
];

/// `(service account name, permissions)` of every component, as deployed.
pub const COMPONENTS: &[(&str, &[Permission])] =
    &[("kubetron-controller", CONTROLLER), ("kubetron-webhook", WEBHOOK), ("kubetron-node", NODE)];
