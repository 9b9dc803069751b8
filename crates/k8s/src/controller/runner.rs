//! The Kubernetes side of the controller, on kube-runtime's [`kube::runtime::Controller`]:
//!
//! - one pod watcher, reflected into a store, drives the controller (`for_stream`); its Delete
//!   events are tapped off to a deletion task that removes the pod's ports;
//! - the NetworkAttachmentDefinition watcher requeues only the pods whose networks annotation
//!   names the changed NAD ([`pods_using`], `watches_stream`);
//! - Northbound replica changes requeue the pods whose status waits for it (allocation, port up);
//! - every pod update (the kubelet reporting `status.podIPs` too) reconciles the pod again, and
//!   its status annotations are written only when they differ from what the pod carries;
//! - regaining leadership requeues every pod and collects garbage; while not the leader a
//!   reconcile does nothing and waits for the next change;
//! - failures are retried with exponential backoff (attempts kept per pod) and reported as a
//!   Warning Event once per distinct message;
//! - garbage collection runs as its own periodic task once the pod list is complete;
//! - IPAMClaims (persistent IPs) are reflected too: a claim event requeues the pods naming it
//!   ([`pods_claiming`]), a deleted claim's port is removed at once (and by GC, once the claim
//!   list is complete, when its UID is gone), and the claim's `status.ips` / `status.ownerPod`
//!   are written through ipamclaims/status once the pod's hand-off is known. Without the CRD the
//!   claim watch keeps failing (logged) and references to claims wait.
//!
//! kube-runtime's scheduler never runs two reconciles of one pod at once and runs different pods
//! concurrently (up to [`RunnerConfig::concurrency`]), so one slow pod never stalls the rest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::controller::{self as krc, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::{mpsc, watch, Notify};

use super::backend::{Backend, Report, Stores};
use super::desired::{pod_is_active, PodRef};
use super::events::{EventType, PodWriter};
use super::PodError;
use crate::ipamclaim::{self, IPAMClaim};
use crate::meta::MetaStr;
use crate::nad::NetworkAttachmentDefinition;
use crate::status::{write_pod_annotations, WriteOutcome};
use model::status::ClusterNetwork;

/// Timing of the runner.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Requests for one pod within this window are handled once (kube-runtime's trailing-edge
    /// debounce).
    pub debounce: Duration,
    /// First retry delay after a failure; doubles per failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Periodic garbage collection (also run after every pod list resync and when leadership
    /// is regained).
    pub gc_interval: Duration,
    /// Pods reconciled at the same time (0: unbounded).
    pub concurrency: u16,
    /// Reconciles arriving within this window share a snapshot and transactions
    /// ([`super::batcher`]).
    pub batch_window: Duration,
    /// The cluster default network's name: when set, `network-status` gets that network's `eth0`
    /// entry (the pod's IPs, `"default": true`) first, unless another writer (Multus) has one
    /// (the rule: [`model::status`]). For chained mode without Multus; `None`: off.
    pub default_network_name: Option<String>,
    /// How a VM's ports follow a live migration ([`model::kubevirt::MigrationMode`]).
    pub vm_migration: model::kubevirt::MigrationMode,
    /// Enforce MultiNetworkPolicies ([`super::policy_runner`]; OVN backend only).
    pub policies: bool,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            // Adds to every pod's time to its hand-off: small (docs/cluster-mode.md, section 9).
            debounce: Duration::from_millis(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            gc_interval: Duration::from_secs(300),
            concurrency: 64,
            batch_window: Duration::from_millis(2),
            default_network_name: None,
            vm_migration: model::kubevirt::MigrationMode::Rarp,
            policies: true,
        }
    }
}

type Key = ObjectRef<Pod>;

/// Failure bookkeeping of one reconciled object (a pod, a policy): failures in a row, and the
/// last Event sent, so a repeated one is not sent again.
#[derive(Debug, Default)]
pub(super) struct Retry {
    pub(super) attempts: u32,
    last_event: Option<String>,
}

impl Retry {
    /// Records `text` as the last Event; false when it repeats the one before.
    pub(super) fn is_new_event(&mut self, text: &str) -> bool {
        if self.last_event.as_deref() == Some(text) {
            return false;
        }
        self.last_event = Some(text.to_string());
        true
    }

    /// The delay before retrying a transient failure: `min` doubled per attempt, at most `max`.
    pub(super) fn backoff(&self, min: Duration, max: Duration) -> Duration {
        min.saturating_mul(1 << self.attempts.min(16)).min(max)
    }
}

/// Aborts the runner's helper tasks when the runner is dropped, so that cancelling [`run`]
/// (shutdown) stops everything it started. (The controller's own reconciles are aborted by
/// kube-runtime when its stream is dropped.)
pub(super) struct Tasks(pub(super) Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// What reconciles share.
struct Ctx<B, W> {
    backend: B,
    writer: W,
    /// Writes the status annotations (through pods/status, see [`crate::status::write_pod_annotations`]).
    client: kube::Client,
    /// True once the NADs are listed (kube-runtime's `Store::wait_until_ready` wakes only one of
    /// several concurrent waiters, so readiness is tracked here).
    nads_listed: watch::Receiver<bool>,
    cfg: RunnerConfig,
    retries: Mutex<HashMap<Key, Retry>>,
    /// Pods whose status annotations wait for the backend (allocation, port up).
    waiting: Arc<Mutex<HashSet<Key>>>,
    /// The IPAMClaims, and whether their list is complete (GC of claim ports needs it).
    claims: Store<IPAMClaim>,
    claims_listed: watch::Receiver<bool>,
    /// Claims whose `status.ownerPod` is an object in the installed CRD (R4: a 422 on the string
    /// form), by CRD: remembered for the process.
    owner_pod_object: std::sync::atomic::AtomicBool,
}

/// Runs the controller until the pod watcher ends (it retries forever; this returns only on a
/// programming error such as a dropped store writer). The backend is made by `backend` from the
/// runner's caches. To stop it (shutdown), drop the future: every task it spawned is aborted
/// with it.
pub async fn run<B: Backend, W: PodWriter + 'static>(
    client: kube::Client,
    backend: impl FnOnce(&Stores) -> B,
    writer: W,
    leader: watch::Receiver<bool>,
    cfg: RunnerConfig,
) {
    let (nad_store, nad_writer) = reflector::store::<NetworkAttachmentDefinition>();
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let (claim_store, claim_writer) = reflector::store::<IPAMClaim>();
    let (ns_store, ns_writer) = reflector::store::<Namespace>();
    let mut tasks = Tasks(Vec::new());
    let backend = backend(&Stores { nads: nad_store.clone(), pods: pod_store.clone(), claims: claim_store.clone(), namespaces: ns_store });
    // Namespaces are cached for the backend (their annotations: the Neutron project, allowed
    // security groups); their changes reconcile nothing by themselves.
    tasks.0.push(tokio::spawn(
        watcher(Api::<Namespace>::all(client.clone()), watcher::Config::default()).default_backoff().reflect(ns_writer).for_each(|ev| {
            if let Err(e) = ev {
                tracing::warn!("namespace watch: {e}");
            }
            std::future::ready(())
        }),
    ));
    let changes = backend.changes();
    let waiting = Arc::new(Mutex::new(HashSet::new()));
    let (nads_listed_tx, nads_listed) = watch::channel(false);
    let (pods_listed_tx, pods_listed) = watch::channel(false);
    let (claims_listed_tx, claims_listed) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        backend,
        writer,
        client: client.clone(),
        nads_listed,
        cfg: cfg.clone(),
        retries: Mutex::new(HashMap::new()),
        waiting: waiting.clone(),
        claims: claim_store.clone(),
        claims_listed,
        owner_pod_object: std::sync::atomic::AtomicBool::new(false),
    });

    // Pods: deletions go to their own task, a completed (re)list asks for garbage collection
    // (a resync may have missed deletions), everything else drives the controller.
    let (deleted_tx, deleted_rx) = mpsc::unbounded_channel::<Pod>();
    let collect = Arc::new(Notify::new());
    let listed = collect.clone();
    // A launcher pod's change (a migration target scheduled or ready, a source finished or
    // deleted) moves the ports of its whole VM: its sibling launcher pods are reconciled too.
    let (again_tx, again_rx) = mpsc::unbounded_channel::<Key>();
    let (siblings_tx, sibling_pods) = (again_tx.clone(), pod_store.clone());
    let requeue_siblings = move |p: &Pod| {
        for key in super::vm::sibling_refs(&sibling_pods.state(), p) {
            let _ = siblings_tx.send(key);
        }
    };
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .inspect(move |ev| match ev {
            Ok(watcher::Event::Delete(p)) => {
                requeue_siblings(p);
                let _ = deleted_tx.send(p.clone());
            }
            Ok(watcher::Event::Apply(p)) => requeue_siblings(p),
            Ok(watcher::Event::InitDone) => {
                pods_listed_tx.send_replace(true);
                listed.notify_one()
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("pod watch: {e}"),
        })
        .applied_objects();
    let nads = watcher(Api::<NetworkAttachmentDefinition>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(nad_writer)
        .inspect(move |ev| match ev {
            Ok(watcher::Event::InitDone) => {
                nads_listed_tx.send_replace(true);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("NetworkAttachmentDefinition watch: {e}"),
        })
        .touched_objects();

    let (claim_deleted_tx, claim_deleted_rx) = mpsc::unbounded_channel::<IPAMClaim>();
    let claims = watcher(Api::<IPAMClaim>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(claim_writer)
        .inspect(move |ev| match ev {
            Ok(watcher::Event::Delete(c)) => {
                let _ = claim_deleted_tx.send(c.clone());
            }
            Ok(watcher::Event::InitDone) => {
                claims_listed_tx.send_replace(true);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("IPAMClaim watch (is the CRD {} installed?): {e}", ipamclaim::CRD_NAME),
        })
        .touched_objects();
    tasks.0.push(tokio::spawn(claim_deletions(claim_deleted_rx, ctx.clone())));

    tasks.0.push(tokio::spawn(deletions(deleted_rx, ctx.clone(), pod_store.clone(), again_tx)));
    let mut gained = Box::pin(leader_gained(leader.clone()));
    let on_lead = collect.clone();
    tasks.0.push(tokio::spawn(async move {
        while gained.next().await.is_some() {
            on_lead.notify_one();
        }
    }));
    tasks.0.push(tokio::spawn(collect_garbage(ctx.clone(), pod_store.clone(), pods_listed, collect)));

    let users = pod_store.clone();
    let claimers = pod_store.clone();
    krc::Controller::for_stream(pods, pod_store)
        .with_config(krc::Config::default().debounce(cfg.debounce).concurrency(cfg.concurrency))
        .watches_stream(nads, move |nad: NetworkAttachmentDefinition| pods_using(&users.state(), &nad))
        .watches_stream(claims, move |claim: IPAMClaim| pods_claiming(&claimers.state(), &claim))
        .reconcile_on(waiting_pods(changes, waiting, cfg.debounce))
        .reconcile_on(stream::unfold(again_rx, |mut rx| async move { rx.recv().await.map(|k| (k, rx)) }))
        .reconcile_all_on(leader_gained(leader))
        .run(reconcile::<B, W>, error_policy::<B, W>, ctx)
        .for_each(|r| {
            match r {
                Ok(_) => {}
                // Logged by the reconciler and the error policy.
                Err(krc::Error::ReconcilerFailed(..)) => {}
                // A pod deleted between the request and its turn.
                Err(krc::Error::ObjectNotFound(obj)) => tracing::debug!("pod {obj} is gone"),
                // Watch errors, logged where they happen.
                Err(e) => tracing::debug!("controller: {e}"),
            }
            std::future::ready(())
        })
        .await;
}

/// The pods (among `pods`) whose networks annotation names `nad`: those a change of the NAD may
/// concern. Pods with an unreadable annotation are left out (their reconcile reports it).
pub fn pods_using(pods: &[Arc<Pod>], nad: &NetworkAttachmentDefinition) -> Vec<ObjectRef<Pod>> {
    let (Some(ns), Some(name)) = (nad.metadata.namespace.as_deref(), nad.metadata.name.as_deref()) else {
        return Vec::new();
    };
    pods.iter()
        .filter(|p| crate::annotation::from_pod(p).is_ok_and(|sels| sels.iter().any(|s| s.namespace == ns && s.name == name)))
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// The pods (among `pods`) whose networks annotation names IPAMClaim `claim` (same namespace,
/// `ipam-claim-reference`).
pub fn pods_claiming(pods: &[Arc<Pod>], claim: &IPAMClaim) -> Vec<ObjectRef<Pod>> {
    let (ns, name) = (claim.namespace_str(), claim.name_str());
    pods.iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| crate::annotation::from_pod(p).is_ok_and(|sels| sels.iter().any(|s| s.ipam_claim_reference.as_deref() == Some(name))))
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Removes the port of each deleted IPAMClaim (its addresses are free again). While not the
/// leader nothing is removed: GC does it later.
async fn claim_deletions<B: Backend, W: PodWriter>(mut rx: mpsc::UnboundedReceiver<IPAMClaim>, ctx: Arc<Ctx<B, W>>) {
    while let Some(c) = rx.recv().await {
        if !ctx.backend.is_leader() || c.uid_str().is_empty() {
            continue;
        }
        if let Err(e) = ctx.backend.delete_claim(c.namespace_str(), c.name_str(), c.uid_str()).await {
            tracing::warn!(claim = %format!("{}/{}", c.namespace_str(), c.name_str()), "removing the port of a deleted IPAMClaim (garbage collection retries): {e}");
        }
    }
}

/// Yields `()` each time leadership goes from false to true.
pub(super) fn leader_gained(rx: watch::Receiver<bool>) -> impl Stream<Item = ()> + Send + 'static {
    stream::unfold(rx, |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    })
}

/// After each tick of the backend's changes, the pods whose status waits for it; at most once
/// per `pause` so that a busy backend does not keep postponing them (the scheduler's debounce
/// restarts with every request).
fn waiting_pods(
    changes: futures::stream::BoxStream<'static, ()>,
    waiting: Arc<Mutex<HashSet<Key>>>,
    pause: Duration,
) -> impl Stream<Item = Key> + Send + 'static {
    stream::unfold((changes, waiting, false), move |(mut snaps, waiting, again)| async move {
        if again {
            tokio::time::sleep(pause).await;
        }
        snaps.next().await?;
        let keys: Vec<Key> = waiting.lock().expect("waiting set").iter().cloned().collect();
        Some((stream::iter(keys), (snaps, waiting, true)))
    })
    .flatten()
}

/// Removes the ports of deleted pods, one pod after the other. While not the leader nothing is
/// removed: the garbage collection after regaining leadership does it. A pod of the same name
/// that exists again is reconciled after the removal (its ports have the same names).
async fn deletions<B: Backend, W: PodWriter>(
    mut rx: mpsc::UnboundedReceiver<Pod>,
    ctx: Arc<Ctx<B, W>>,
    pods: Store<Pod>,
    again: mpsc::UnboundedSender<Key>,
) {
    while let Some(pod) = rx.recv().await {
        let key = ObjectRef::from_obj(&pod);
        ctx.retries.lock().expect("retries").remove(&key);
        ctx.waiting.lock().expect("waiting set").remove(&key);
        let Some(pr) = PodRef::of(&pod) else { continue };
        if !ctx.backend.is_leader() {
            continue;
        }
        if let Err(e) = ctx.backend.delete_pod(&pr).await {
            tracing::warn!(pod = %pr, "removing the ports of a deleted pod (garbage collection retries): {e}");
        }
        if pods.get(&key).is_some() {
            let _ = again.send(key);
        }
    }
}

/// Garbage collection: every `gc_interval`, and when `now` is notified (pod list complete,
/// leadership regained); only once the pod list is complete and while leading.
async fn collect_garbage<B: Backend, W: PodWriter>(
    ctx: Arc<Ctx<B, W>>,
    pods: Store<Pod>,
    mut listed: watch::Receiver<bool>,
    now: Arc<Notify>,
) {
    if listed.wait_for(|l| *l).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(ctx.cfg.gc_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = now.notified() => {}
        }
        if !ctx.backend.is_leader() {
            continue;
        }
        let live: HashSet<String> = pods.state().iter().filter(|p| pod_is_active(p)).filter_map(|p| p.metadata.uid.clone()).collect();
        let live_claims: Option<HashSet<String>> =
            (*ctx.claims_listed.borrow()).then(|| ctx.claims.state().iter().filter_map(|c| c.metadata.uid.clone()).collect());
        match ctx.backend.gc(&live, live_claims.as_ref()).await {
            Ok(removed) if removed > 0 => tracing::info!(count = removed, "garbage-collected the attachments of pods that are gone"),
            Ok(_) => {}
            Err(e) => tracing::warn!("garbage collection: {e}"),
        }
    }
}

/// One pod: its ports, then its status annotations. Not the leader: nothing (every pod is
/// requeued when leadership comes back).
async fn reconcile<B: Backend, W: PodWriter>(pod: Arc<Pod>, ctx: Arc<Ctx<B, W>>) -> Result<Action, PodError> {
    if !ctx.backend.is_leader() {
        return Ok(Action::await_change());
    }
    // Until the NADs are listed every pod would fail with "network not found".
    if ctx.nads_listed.clone().wait_for(|l| *l).await.is_err() {
        return Ok(Action::await_change());
    }
    let key = ObjectRef::from_obj(pod.as_ref());
    match ctx.backend.reconcile(&pod).await {
        Ok(rec) => {
            ctx.retries.lock().expect("retries").remove(&key);
            Ok(ctx.write_status(&key, &pod, &rec).await)
        }
        Err(err) => {
            let msg = err.to_string();
            let report = {
                let mut retries = ctx.retries.lock().expect("retries");
                let r = retries.entry(key).or_default();
                r.attempts += 1;
                r.is_new_event(&msg) && !matches!(err, PodError::NotLeader | PodError::Stopped)
            };
            if let (true, Some(pr)) = (report, PodRef::of(&pod)) {
                if let Err(w) = ctx.writer.emit_event(&pr, EventType::Warning, err.reason(), &msg).await {
                    tracing::warn!("{w}");
                }
            }
            Err(err)
        }
    }
}

/// Retry after a failure: transient ones (database, leadership) after `backoff_min` doubled per
/// attempt up to `backoff_max`, the others (the pod or its networks need fixing) after
/// `backoff_max`, sooner if the pod or a NAD it uses changes.
fn error_policy<B: Backend, W: PodWriter>(pod: Arc<Pod>, err: &PodError, ctx: Arc<Ctx<B, W>>) -> Action {
    let key = ObjectRef::from_obj(pod.as_ref());
    let backoff = ctx.retries.lock().expect("retries").get(&key).map(|r| r.backoff(ctx.cfg.backoff_min, ctx.cfg.backoff_max));
    let delay = if err.is_transient() { backoff.unwrap_or(ctx.cfg.backoff_min.saturating_mul(2)) } else { ctx.cfg.backoff_max };
    tracing::warn!(pod = %key, reason = err.reason(), retry_in = ?delay, "{err}");
    Action::requeue(delay)
}

impl<B: Backend, W: PodWriter> Ctx<B, W> {
    /// Writes the status annotations that differ from what the pod carries: the whole
    /// `kubetron.io/interfaces` (kubetron's own), and kubetron's entries of `network-status`
    /// merged into the entries other writers put there ([`super::status::annotation_patch`]),
    /// through pods/status with the pod's UID and resourceVersion as preconditions (re-merged on
    /// conflict). The cluster network's entry takes the IPs of `pod` (this reconcile's version;
    /// a newer one is reconciled again when it arrives).
    async fn write_status(&self, key: &Key, pod: &Pod, rec: &Report) -> Action {
        let (status, interfaces) = (&rec.status, &rec.interfaces);
        let ips = super::status::pod_ips(pod);
        let cluster = self.cfg.default_network_name.as_deref().map(|name| ClusterNetwork { name, ips: &ips });
        let change = |current: &BTreeMap<String, String>| super::status::annotation_patch(status, interfaces, cluster, current);
        let pending = !interfaces.is_empty() && (status.interfaces.is_none() || status.network_status.is_none()) && pod_is_active(pod);
        if pending {
            self.waiting.lock().expect("waiting set").insert(key.clone());
        } else {
            self.waiting.lock().expect("waiting set").remove(key);
        }
        let written = write_pod_annotations(&self.client, &rec.pod.namespace, &rec.pod.name, &rec.pod.uid, Some(pod), change).await;
        let next = match written {
            Ok(WriteOutcome::Written { attempts }) if attempts > 1 => {
                tracing::debug!(pod = %rec.pod, attempts, "status annotations written after conflicts");
                Action::await_change()
            }
            Ok(_) => Action::await_change(),
            Err(e) => {
                tracing::warn!("{e}");
                Action::requeue(self.cfg.backoff_min)
            }
        };
        self.write_claim_status(&rec.claims, &rec.pod.name).await;
        if let Some((reason, msg)) = &rec.created {
            let _ = self.writer.emit_event(&rec.pod, EventType::Normal, reason, msg).await;
        }
        next
    }

    /// Writes `status.ips` and `status.ownerPod` of the claims whose ports this pod uses, where
    /// they differ (ipamclaims/status, merge patch). `ownerPod` is the string of upstream's
    /// `types.go`; a CRD that declares it an object answers 422 and gets `{"name": ...}` instead
    /// (remembered). Failures are logged; the next reconcile of the pod tries again.
    async fn write_claim_status(&self, claims: &[(super::desired::ClaimBinding, Vec<String>)], pod_name: &str) {
        use std::sync::atomic::Ordering;
        for (c, ips) in claims {
            let api: Api<IPAMClaim> = Api::namespaced(self.client.clone(), &c.namespace);
            let pp = kube::api::PatchParams::default();
            let object = self.owner_pod_object.load(Ordering::Relaxed);
            let body = if object { ipamclaim::status_patch_object_owner(ips, pod_name) } else { ipamclaim::status_patch(ips, pod_name) };
            let mut r = api.patch_status(&c.name, &pp, &kube::api::Patch::Merge(&body)).await;
            if let (Err(kube::Error::Api(e)), false) = (&r, object) {
                if e.code == 422 {
                    let body = ipamclaim::status_patch_object_owner(ips, pod_name);
                    r = api.patch_status(&c.name, &pp, &kube::api::Patch::Merge(&body)).await;
                    if r.is_ok() {
                        self.owner_pod_object.store(true, Ordering::Relaxed);
                    }
                }
            }
            match r {
                Ok(_) => {
                    tracing::info!(claim = %format!("{}/{}", c.namespace, c.name), ?ips, owner_pod = pod_name, "IPAMClaim status written")
                }
                Err(e) => tracing::warn!(claim = %format!("{}/{}", c.namespace, c.name), "writing IPAMClaim status: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nad::new_nad;
    use model::request::NETWORKS_ANNOTATION;

    fn pod(ns: &str, name: &str, networks: Option<&str>) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p.metadata.annotations = networks.map(|n| [(NETWORKS_ANNOTATION.to_string(), n.to_string())].into());
        Arc::new(p)
    }

    fn names(refs: Vec<ObjectRef<Pod>>) -> Vec<String> {
        let mut v: Vec<String> = refs.into_iter().map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name)).collect();
        v.sort();
        v
    }

    #[test]
    fn a_claim_change_concerns_only_the_pods_naming_it_in_its_namespace() {
        let pods = vec![
            pod("a", "vm1", Some(r#"[{"name":"red","ipam-claim-reference":"vm1.red"}]"#)),
            pod("a", "vm1-target", Some(r#"[{"name":"blue"},{"name":"red","interface":"pod1","ipam-claim-reference":"vm1.red"}]"#)),
            pod("b", "vm1", Some(r#"[{"name":"red","ipam-claim-reference":"vm1.red"}]"#)),
            pod("a", "vm2", Some(r#"[{"name":"red","ipam-claim-reference":"vm2.red"}]"#)),
            pod("a", "plain", Some("red")),
            pod("a", "broken", Some("[{")),
        ];
        let c = crate::ipamclaim::new_claim("a", "vm1.red", "red", "");
        assert_eq!(names(pods_claiming(&pods, &c)), ["a/vm1", "a/vm1-target"]);
        assert!(pods_claiming(&pods, &crate::ipamclaim::new_claim("a", "vm3.red", "red", "")).is_empty());
    }

    #[test]
    fn a_nad_change_concerns_only_the_pods_naming_it() {
        let pods = vec![
            // Short name: the pod's namespace.
            pod("a", "short", Some("blue")),
            // Qualified name, from another namespace.
            pod("b", "qualified", Some("a/blue")),
            // JSON form, among other networks.
            pod("c", "json", Some(r#"[{"name":"red"},{"name":"blue","namespace":"a","interface":"n2"}]"#)),
            // Same name, other namespace.
            pod("b", "other-ns", Some("blue")),
            pod("a", "other-net", Some("red")),
            pod("a", "none", None),
            pod("a", "broken", Some("[{")),
        ];
        let blue = new_nad("a", "blue", "{}", &[]);
        assert_eq!(names(pods_using(&pods, &blue)), ["a/short", "b/qualified", "c/json"]);
        let red_b = new_nad("b", "red", "{}", &[]);
        assert!(pods_using(&pods, &red_b).is_empty());
        let red_a = new_nad("a", "red", "{}", &[]);
        assert_eq!(names(pods_using(&pods, &red_a)), ["a/other-net"]);
    }

    #[test]
    fn retry_reports_an_event_once_and_backs_off() {
        let mut r = Retry::default();
        assert!(r.is_new_event("a") && !r.is_new_event("a") && r.is_new_event("b") && r.is_new_event("a"));
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(60));
        r.attempts = 1;
        assert_eq!(r.backoff(min, max), Duration::from_secs(1));
        r.attempts = 3;
        assert_eq!(r.backoff(min, max), Duration::from_secs(4));
        r.attempts = 40;
        assert_eq!(r.backoff(min, max), max);
    }
}
