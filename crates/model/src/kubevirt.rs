//! KubeVirt launcher pods as kubetron sees them: how KubeVirt names a VM's interfaces, how a
//! launcher pod is recognised, and which chassis a VM's logical switch port is bound to while two
//! launcher pods of one VM exist (live migration).
//!
//! Facts carried over from KubeVirt's API and naming scheme: a launcher pod has label
//! `kubevirt.io=virt-launcher`, annotation `kubevirt.io/domain` (the VMI name) and label
//! `kubevirt.io/created-by` (the VMI UID); a migration target carries label
//! `kubevirt.io/migrationJobUID` and, once the domain runs on it, annotation
//! `kubevirt.io/migration-target-ready-timestamp`. A secondary network's pod interface is `pod` +
//! the first 11 hex digits of SHA-256 of the VMI's network name (or `net1`, `net2`, ... in the
//! ordinal scheme); the bridge binding's in-pod bridge is `k6t-<suffix>` and its tap `tap<suffix>`.
//!
//! Migration: the siblings of one VM (same namespace and domain), the living ones ordered by
//! creation: one living pod is the VM's only location; two living pods are source (older) and
//! target (newer), the target taking over once it is ready; more than two is ambiguous and left
//! alone (the way ovn-kubernetes' kubevirt support reads them).

use crate::sha256::sha256;

/// Label (value [`LAUNCHER`]) every virt-launcher pod carries.
pub const APP_LABEL: &str = "kubevirt.io";
/// Value of [`APP_LABEL`] on a launcher pod.
pub const LAUNCHER: &str = "virt-launcher";
/// Annotation naming the VMI (the libvirt domain) a launcher pod runs.
pub const DOMAIN_ANNOTATION: &str = "kubevirt.io/domain";
/// Label holding the UID of the VMI that created the launcher pod.
pub const CREATED_BY_LABEL: &str = "kubevirt.io/created-by";
/// Label naming the VM (when the VMI belongs to one).
pub const VM_NAME_LABEL: &str = "vm.kubevirt.io/name";
/// Label a migration target pod carries.
pub const MIGRATION_JOB_LABEL: &str = "kubevirt.io/migrationJobUID";
/// Annotation set on the target pod once the domain runs there.
pub const TARGET_READY_ANNOTATION: &str = "kubevirt.io/migration-target-ready-timestamp";

/// KubeVirt's hashed pod interface name for the VMI network `network`: `pod` + 11 hex digits.
pub fn hashed_ifname(network: &str) -> String {
    let digest = sha256(network.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("pod{}", &hex[..11])
}

/// KubeVirt's ordinal pod interface name of the `index`-th secondary network (1-based): `net1`...
pub fn ordinal_ifname(index: usize) -> String {
    format!("net{index}")
}

fn suffix(pod_ifname: &str) -> &str {
    pod_ifname.strip_prefix("pod").unwrap_or(pod_ifname)
}

/// The bridge binding's in-pod bridge for pod interface `pod_ifname`: `k6t-<name without "pod">`.
pub fn bridge_name(pod_ifname: &str) -> String {
    format!("k6t-{}", suffix(pod_ifname))
}

/// The bridge binding's tap for pod interface `pod_ifname`: `tap` + the name without its first
/// three characters (`podb1f51a511f1` -> `tapb1f51a511f1`, `net1` -> `tap1`).
pub fn tap_name(pod_ifname: &str) -> String {
    format!("tap{}", pod_ifname.get(3..).unwrap_or(""))
}

/// What the controller needs to know of one launcher pod of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherPod {
    pub name: String,
    /// `spec.nodeName`, once scheduled.
    pub node: Option<String>,
    /// `metadata.creationTimestamp` (RFC 3339, as the API server writes it: compares as text).
    pub created: String,
    /// Not being deleted and not finished (phase neither Succeeded nor Failed).
    pub living: bool,
    /// Carries [`TARGET_READY_ANNOTATION`].
    pub target_ready: bool,
}

/// Where a VM runs, from its launcher pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// No living launcher pod.
    Gone,
    /// One location (`None`: not scheduled yet).
    On(Option<String>),
    /// A live migration from `source` to `target` whose domain is not running on the target yet.
    Migrating { source: String, target: String },
    /// More than two living launcher pods: not a state KubeVirt produces; left alone.
    Ambiguous(Vec<String>),
}

/// The placement of one VM from all its launcher pods (same namespace and domain; finished and
/// deleted ones included or not, they are ignored).
pub fn placement(pods: &[LauncherPod]) -> Placement {
    let mut living: Vec<&LauncherPod> = pods.iter().filter(|p| p.living).collect();
    living.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
    match living.as_slice() {
        [] => Placement::Gone,
        [only] => Placement::On(only.node.clone()),
        [source, target] => match (&source.node, &target.node) {
            _ if target.target_ready => Placement::On(target.node.clone()),
            (Some(s), Some(t)) if s != t => Placement::Migrating { source: s.clone(), target: t.clone() },
            _ => Placement::On(source.node.clone()),
        },
        more => Placement::Ambiguous(more.iter().map(|p| p.name.clone()).collect()),
    }
}

/// How the target of a live migration takes over the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationMode {
    /// Bound to both chassis during the migration, `activation-strategy=rarp`: the target's
    /// binding activates on the VM's first RARP after it resumes there (OVN multi-chassis binding).
    #[default]
    Rarp,
    /// Bound to the source until the target is ready, then to the target only.
    Switch,
}

impl std::str::FromStr for MigrationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rarp" => Ok(MigrationMode::Rarp),
            "switch" => Ok(MigrationMode::Switch),
            other => Err(format!("unknown VM migration mode {other:?}: expected rarp or switch")),
        }
    }
}

/// The chassis options of a VM's port (ovn-nb(5) `Logical_Switch_Port` `options`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChassisOptions {
    /// `requested-chassis`: node names (chassis host names), comma separated.
    pub requested_chassis: Option<String>,
    /// `activation-strategy`.
    pub activation_strategy: Option<&'static str>,
}

impl Placement {
    /// The port options for this placement; `None` when they must be left as they are
    /// ([`Placement::Ambiguous`]).
    pub fn chassis_options(&self, mode: MigrationMode) -> Option<ChassisOptions> {
        match self {
            Placement::Gone | Placement::On(None) => Some(ChassisOptions::default()),
            Placement::On(Some(node)) => Some(ChassisOptions { requested_chassis: Some(node.clone()), activation_strategy: None }),
            Placement::Migrating { source, target } => Some(match mode {
                MigrationMode::Rarp => {
                    ChassisOptions { requested_chassis: Some(format!("{source},{target}")), activation_strategy: Some("rarp") }
                }
                MigrationMode::Switch => ChassisOptions { requested_chassis: Some(source.clone()), activation_strategy: None },
            }),
            Placement::Ambiguous(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_match_kubevirt() {
        for (net, want) in [
            ("red", "podb1f51a511f1"),
            ("green", "podba4788b226a"),
            ("network1", "poda7662f44d65"),
            ("network2", "pod27f4a77f94e"),
            ("blue", "pod16477688c0e"),
        ] {
            assert_eq!(hashed_ifname(net), want, "{net}");
            crate::names::check_ifname(&hashed_ifname(net)).unwrap();
        }
        assert_eq!(bridge_name("podb1f51a511f1"), "k6t-b1f51a511f1");
        assert_eq!(tap_name("podb1f51a511f1"), "tapb1f51a511f1");
        assert_eq!(ordinal_ifname(1), "net1");
        assert_eq!(bridge_name("net1"), "k6t-net1");
        assert_eq!(tap_name("net1"), "tap1");
        for n in [bridge_name("podb1f51a511f1"), tap_name("podb1f51a511f1")] {
            assert!(n.len() <= 15, "{n}");
        }
    }

    fn pod(name: &str, node: Option<&str>, created: &str, living: bool, ready: bool) -> LauncherPod {
        LauncherPod { name: name.into(), node: node.map(Into::into), created: created.into(), living, target_ready: ready }
    }

    const T1: &str = "2026-11-30T10:00:00Z";
    const T2: &str = "2026-11-30T10:05:00Z";

    #[test]
    fn placement_follows_kubevirt_pod_states() {
        let a = pod("vl-a", Some("node1"), T1, true, false);
        assert_eq!(placement(&[]), Placement::Gone);
        assert_eq!(placement(std::slice::from_ref(&a)), Placement::On(Some("node1".into())));
        // The target is created, not scheduled yet: the source keeps the port.
        let b_unscheduled = pod("vl-b", None, T2, true, false);
        assert_eq!(placement(&[a.clone(), b_unscheduled]), Placement::On(Some("node1".into())));
        // Scheduled on another node, not ready: migrating (order of the input does not matter).
        let b = pod("vl-b", Some("node2"), T2, true, false);
        let migrating = Placement::Migrating { source: "node1".into(), target: "node2".into() };
        assert_eq!(placement(&[b.clone(), a.clone()]), migrating);
        // The domain runs on the target: the target only.
        let b_ready = pod("vl-b", Some("node2"), T2, true, true);
        assert_eq!(placement(&[a.clone(), b_ready]), Placement::On(Some("node2".into())));
        // The source finished (Succeeded) or was deleted: the target only.
        let a_done = pod("vl-a", Some("node1"), T1, false, false);
        assert_eq!(placement(&[a_done, b.clone()]), Placement::On(Some("node2".into())));
        // The target failed: back to the source.
        let b_failed = pod("vl-b", Some("node2"), T2, false, false);
        assert_eq!(placement(&[a.clone(), b_failed]), Placement::On(Some("node1".into())));
        // Same node for both (not a cross-node migration): the source.
        let b_same = pod("vl-b", Some("node1"), T2, true, false);
        assert_eq!(placement(&[a.clone(), b_same]), Placement::On(Some("node1".into())));
        // Three living pods: ambiguous.
        let c = pod("vl-c", Some("node3"), T2, true, false);
        assert!(matches!(placement(&[a.clone(), b.clone(), c]), Placement::Ambiguous(v) if v.len() == 3));
        // A creation-time tie is broken by name.
        let b_tie = pod("vl-b", Some("node2"), T1, true, false);
        assert_eq!(placement(&[b_tie, a]), migrating);
    }

    #[test]
    fn chassis_options_per_mode() {
        let m = Placement::Migrating { source: "node1".into(), target: "node2".into() };
        assert_eq!(
            m.chassis_options(MigrationMode::Rarp),
            Some(ChassisOptions { requested_chassis: Some("node1,node2".into()), activation_strategy: Some("rarp") })
        );
        assert_eq!(
            m.chassis_options(MigrationMode::Switch),
            Some(ChassisOptions { requested_chassis: Some("node1".into()), activation_strategy: None })
        );
        assert_eq!(
            Placement::On(Some("node2".into())).chassis_options(MigrationMode::Rarp),
            Some(ChassisOptions { requested_chassis: Some("node2".into()), activation_strategy: None })
        );
        assert_eq!(Placement::Gone.chassis_options(MigrationMode::Rarp), Some(ChassisOptions::default()));
        assert_eq!(Placement::Ambiguous(vec![]).chassis_options(MigrationMode::Rarp), None);
        assert_eq!("switch".parse::<MigrationMode>(), Ok(MigrationMode::Switch));
        assert!("gossip".parse::<MigrationMode>().is_err());
    }
}
