//! The pods of this node, as the CNI server needs them: a reflector of pod metadata (field
//! selector `spec.nodeName`, metadata-only requests) trimmed to the two annotations kubetron
//! reads (plus KubeVirt's `kubevirt.io/domain` annotation and `kubevirt.io/created-by` label, which
//! bound the claim ports a launcher pod may use), and a way to wait for a pod to reach a state
//! without polling.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The annotations the agent keeps; every other annotation is dropped from its cache.
pub const KEPT_ANNOTATIONS: [&str; 2] = [model::request::NETWORKS_ANNOTATION, model::handoff::ANNOTATION];

/// A cached pod: metadata only.
pub type PodMeta = PartialObjectMeta<Pod>;

/// The node's pods.
#[derive(Clone)]
pub struct Pods {
    store: Store<PodMeta>,
    /// Bumped on every watch event: waiters re-check their pod when it changes.
    events: watch::Receiver<u64>,
    synced: watch::Receiver<bool>,
    /// UIDs of pods seen deleted (the newest [`DELETED_KEPT`]): a request for one fails at once.
    deleted: Arc<Mutex<Deleted>>,
}

/// How many deleted pod UIDs are remembered.
pub const DELETED_KEPT: usize = 4096;

#[derive(Default)]
struct Deleted {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Deleted {
    fn insert(&mut self, uid: String) {
        if self.set.insert(uid.clone()) {
            self.order.push_back(uid);
            if self.order.len() > DELETED_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// What a waiter decided about the pod as cached now.
pub enum Step<T, E> {
    /// Done.
    Ready(T),
    /// Give up at once.
    Fail(E),
    /// Not yet; the text says what is missing (for the deadline's message).
    Wait(String),
}

impl Pods {
    /// Starts following the pods whose `spec.nodeName` is `node` until `shutdown`.
    pub fn start(client: kube::Client, node: &str, shutdown: CancellationToken) -> Pods {
        let (store, writer) = reflector::store();
        let (tx, events) = watch::channel(0u64);
        let api: Api<PodMeta> = Api::all(client);
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let stream = watcher(api, config).default_backoff().modify(trim).reflect(writer);
        let deleted = Arc::new(Mutex::new(Deleted::default()));
        let record = deleted.clone();
        let synced = follow(stream, format!("the pods of node {node}"), shutdown, move |e| {
            if let watcher::Event::Delete(p) = e {
                if let Some(uid) = &p.metadata.uid {
                    record.lock().unwrap_or_else(|e| e.into_inner()).insert(uid.clone());
                }
            }
            tx.send_modify(|v| *v += 1);
        });
        Pods { store, events, synced, deleted }
    }

    /// Whether the first list has been loaded.
    pub fn synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Whether a pod with this UID was seen deleted.
    pub fn was_deleted(&self, uid: &str) -> bool {
        self.deleted.lock().unwrap_or_else(|e| e.into_inner()).set.contains(uid)
    }

    /// The cached pod `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// Calls `decide` with the cached pod now and after every change of the cache until it is
    /// `Ready` or `Fail`, or `deadline` passes (then `Err(Err(what it was waiting for))`).
    pub async fn wait<T, E>(
        &self,
        namespace: &str,
        name: &str,
        deadline: Instant,
        mut decide: impl FnMut(Option<&PodMeta>) -> Step<T, E>,
    ) -> Result<T, Result<E, String>> {
        let mut events = self.events.clone();
        loop {
            events.borrow_and_update();
            let waiting = match decide(self.get(namespace, name).as_deref()) {
                Step::Ready(t) => return Ok(t),
                Step::Fail(e) => return Err(Ok(e)),
                Step::Wait(what) => what,
            };
            tokio::select! {
                r = events.changed() => if r.is_err() {
                    return Err(Err(format!("{waiting} (the pod watch stopped)")));
                },
                _ = tokio::time::sleep_until(deadline) => return Err(Err(waiting)),
            }
        }
    }
}

/// Drives a reflector's `stream` until `shutdown` or its end: `on_event` sees every event; the
/// receiver turns true once the first list is loaded. Watch errors are logged once per outage
/// (the stream retries with backoff).
pub(crate) fn follow<K, S>(
    stream: S,
    what: String,
    shutdown: CancellationToken,
    mut on_event: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> watch::Receiver<bool>
where
    K: Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (synced_tx, synced) = watch::channel(false);
    tokio::spawn(async move {
        tokio::pin!(stream);
        let mut failing = false;
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = stream.next() => ev,
            };
            match ev {
                None => return,
                Some(Ok(e)) => {
                    if failing {
                        info!("watching {what} again");
                        failing = false;
                    }
                    if matches!(e, watcher::Event::InitDone) && !*synced_tx.borrow() {
                        info!("cache of {what} loaded");
                        synced_tx.send_replace(true);
                    }
                    on_event(&e);
                }
                Some(Err(e)) => {
                    if !failing {
                        warn!("watching {what}: {e} (retrying)");
                    } else {
                        debug!("watching {what}: {e}");
                    }
                    failing = true;
                }
            }
        }
    });
    synced
}

/// Labels the agent keeps: KubeVirt's launcher label naming the VMI UID (the only `iface_id_ver`
/// besides the pod UID a hand-off may name).
pub const KEPT_LABELS: [&str; 1] = [model::kubevirt::CREATED_BY_LABEL];
/// Annotations the agent keeps besides [`KEPT_ANNOTATIONS`]: KubeVirt's `kubevirt.io/domain` (the
/// VMI name of a launcher pod).
pub const KEPT_VM_ANNOTATIONS: [&str; 1] = [model::kubevirt::DOMAIN_ANNOTATION];

/// Drops what the agent never reads: managed fields, every label but [`KEPT_LABELS`] and every
/// annotation but [`KEPT_ANNOTATIONS`] and [`KEPT_VM_ANNOTATIONS`] (a pod then costs about a
/// kilobyte, however large its spec and annotations).
fn trim(p: &mut PodMeta) {
    p.metadata.managed_fields = None;
    p.metadata.owner_references = None;
    if let Some(l) = p.metadata.labels.as_mut() {
        l.retain(|k, _| KEPT_LABELS.contains(&k.as_str()));
    }
    if p.metadata.labels.as_ref().is_some_and(|l| l.is_empty()) {
        p.metadata.labels = None;
    }
    if let Some(a) = p.metadata.annotations.as_mut() {
        a.retain(|k, _| KEPT_ANNOTATIONS.contains(&k.as_str()) || KEPT_VM_ANNOTATIONS.contains(&k.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// N2: the cache keeps what the agent checks hand-offs against (the networks request, the
    /// hand-off, a launcher's `kubevirt.io/created-by` and `kubevirt.io/domain`) and drops the rest.
    #[test]
    fn trim_keeps_domain_and_created_by() {
        let mut p: PodMeta = serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "virt-launcher-vm1-x", "namespace": "ns", "uid": "u1",
                "labels": {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": "vmi-1", "vm.kubevirt.io/name": "vm1", "app": "x"},
                "annotations": {"kubevirt.io/domain": "vm1", "k8s.v1.cni.cncf.io/networks": "red", "kubetron.io/interfaces": "{}",
                                "kubectl.kubernetes.io/last-applied-configuration": "big"},
                "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "name": "vm1", "uid": "vmi-1"}],
                "managedFields": [{"manager": "virt-controller"}]}}))
        .unwrap();
        trim(&mut p);
        let labels: Vec<&str> = p.metadata.labels.as_ref().unwrap().keys().map(String::as_str).collect();
        assert_eq!(labels, ["kubevirt.io/created-by"]);
        let annotations: Vec<&str> = p.metadata.annotations.as_ref().unwrap().keys().map(String::as_str).collect();
        assert_eq!(annotations, ["k8s.v1.cni.cncf.io/networks", "kubetron.io/interfaces", "kubevirt.io/domain"]);
        assert!(p.metadata.owner_references.is_none() && p.metadata.managed_fields.is_none());
        // An ordinary pod keeps no labels at all.
        let mut q: PodMeta = serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}}}))
        .unwrap();
        trim(&mut q);
        assert!(q.metadata.labels.is_none());
    }
}
