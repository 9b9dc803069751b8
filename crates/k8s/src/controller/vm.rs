//! KubeVirt launcher pods in the controller: which pods belong to one VM and where its ports are
//! bound ([`model::kubevirt::placement`] over the VM's launcher pods, read from pod objects).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use model::kubevirt::{self, ChassisOptions, LauncherPod, MigrationMode, Placement};

/// The VM a launcher pod runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// The VMI name (annotation `kubevirt.io/domain`).
    pub domain: String,
    /// The VMI UID (label `kubevirt.io/created-by`), when set.
    pub vmi_uid: Option<String>,
}

/// The VM `pod` runs, if it is a KubeVirt launcher pod (label `kubevirt.io=virt-launcher` and the
/// domain annotation).
pub fn launcher(pod: &Pod) -> Option<Launcher> {
    let m = &pod.metadata;
    let is_launcher = m.labels.as_ref().and_then(|l| l.get(kubevirt::APP_LABEL)).is_some_and(|v| v == kubevirt::LAUNCHER);
    let domain = m.annotations.as_ref().and_then(|a| a.get(kubevirt::DOMAIN_ANNOTATION)).filter(|d| !d.is_empty())?;
    is_launcher.then(|| Launcher {
        domain: domain.clone(),
        vmi_uid: m.labels.as_ref().and_then(|l| l.get(kubevirt::CREATED_BY_LABEL)).filter(|u| !u.is_empty()).cloned(),
    })
}

/// Whether a launcher pod still runs its VM (or will): not being deleted, not finished. The one
/// rule for both the VM's placement and the "claim in use" check.
pub fn is_living(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !super::desired::pod_is_finished(pod)
}

/// `pod` as [`kubevirt::placement`] reads it.
pub fn launcher_pod(pod: &Pod) -> LauncherPod {
    let m = &pod.metadata;
    LauncherPod {
        name: m.name.clone().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        created: m.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
        living: is_living(pod),
        target_ready: m.annotations.as_ref().is_some_and(|a| a.contains_key(kubevirt::TARGET_READY_ANNOTATION)),
    }
}

/// The launcher pods among `pods` that run the same VM as `pod` (same namespace and domain),
/// `pod` included; empty when `pod` is no launcher pod.
pub fn siblings<'a>(pods: &'a [Arc<Pod>], pod: &Pod) -> Vec<&'a Arc<Pod>> {
    let Some(vm) = launcher(pod) else { return Vec::new() };
    let ns = pod.metadata.namespace.as_deref();
    pods.iter().filter(|p| p.metadata.namespace.as_deref() == ns && launcher(p).is_some_and(|l| l.domain == vm.domain)).collect()
}

/// The other launcher pods of `pod`'s VM, as keys to reconcile again when `pod` changes (a new
/// migration target moves the source's ports too).
pub fn sibling_refs(pods: &[Arc<Pod>], pod: &Pod) -> Vec<ObjectRef<Pod>> {
    siblings(pods, pod).into_iter().filter(|p| p.metadata.uid != pod.metadata.uid).map(|p| ObjectRef::from_obj(p.as_ref())).collect()
}

/// Where the ports of `pod`'s VM are bound, from its launcher pods among `pods` (`pod` itself is
/// taken as given, whether or not `pods` holds it yet).
pub fn placement(pods: &[Arc<Pod>], pod: &Pod) -> Placement {
    let mut all: Vec<LauncherPod> =
        siblings(pods, pod).into_iter().filter(|p| p.metadata.uid != pod.metadata.uid).map(|p| launcher_pod(p)).collect();
    all.push(launcher_pod(pod));
    kubevirt::placement(&all)
}

/// The chassis options of `pod`'s VM ports (`None`: leave them as they are).
pub fn chassis_options(pods: &[Arc<Pod>], pod: &Pod, mode: MigrationMode) -> Option<ChassisOptions> {
    placement(pods, pod).chassis_options(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, domain: &str, node: &str, created: &str, extra: serde_json::Value) -> Arc<Pod> {
        let mut v = serde_json::json!({
            "metadata": {"namespace": "vms", "name": name, "uid": uid, "creationTimestamp": created,
                         "labels": {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": "vmi-uid-1"},
                         "annotations": {"kubevirt.io/domain": domain}},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running"}
        });
        json_merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).expect("pod"))
    }

    fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn launcher_pods_of_one_vm_give_its_placement() {
        let none = serde_json::json!({});
        let src = pod("virt-launcher-vm1-aaaaa", "u1", "vm1", "node1", "2026-11-30T10:00:00Z", none.clone());
        let other_vm = pod("virt-launcher-vm2-ccccc", "u3", "vm2", "node3", "2026-11-30T10:01:00Z", none.clone());
        let not_launcher = Arc::new(
            serde_json::from_value::<Pod>(serde_json::json!({
                "metadata": {"namespace": "vms", "name": "plain", "uid": "u9", "annotations": {"kubevirt.io/domain": "vm1"}},
                "spec": {"nodeName": "node4", "containers": []}
            }))
            .unwrap(),
        );
        assert_eq!(launcher(&not_launcher), None);
        assert_eq!(launcher(&src), Some(Launcher { domain: "vm1".into(), vmi_uid: Some("vmi-uid-1".into()) }));

        let mut pods = vec![src.clone(), other_vm.clone(), not_launcher];
        assert_eq!(placement(&pods, &src), Placement::On(Some("node1".into())));

        let target = pod(
            "virt-launcher-vm1-bbbbb",
            "u2",
            "vm1",
            "node2",
            "2026-11-30T10:05:00Z",
            serde_json::json!({"metadata": {"labels": {"kubevirt.io/migrationJobUID": "m1"}}}),
        );
        // The target is judged with its siblings even before the store holds it.
        assert_eq!(placement(&pods, &target), Placement::Migrating { source: "node1".into(), target: "node2".into() });
        pods.push(target.clone());
        assert_eq!(sibling_refs(&pods, &src), vec![ObjectRef::from_obj(target.as_ref())]);
        assert_eq!(
            chassis_options(&pods, &src, MigrationMode::Rarp),
            Some(ChassisOptions { requested_chassis: Some("node1,node2".into()), activation_strategy: Some("rarp") })
        );
        // The domain runs on the target.
        let ready = pod(
            "virt-launcher-vm1-bbbbb",
            "u2",
            "vm1",
            "node2",
            "2026-11-30T10:05:00Z",
            serde_json::json!({"metadata": {"annotations": {"kubevirt.io/migration-target-ready-timestamp": "2026-11-30T10:05:09Z"}}}),
        );
        *pods.last_mut().unwrap() = ready;
        assert_eq!(placement(&pods, &src), Placement::On(Some("node2".into())));
        // The source completes: still the target.
        let done = pod(
            "virt-launcher-vm1-aaaaa",
            "u1",
            "vm1",
            "node1",
            "2026-11-30T10:00:00Z",
            serde_json::json!({"status": {"phase": "Succeeded"}}),
        );
        pods[0] = done.clone();
        assert_eq!(placement(&pods, &done), Placement::On(Some("node2".into())));
        assert_eq!(placement(&pods, &other_vm), Placement::On(Some("node3".into())));
    }
}
