//! The Kubernetes side of the controller: pod and NAD watchers feeding reflector stores, a
//! per-pod work queue with debounce and retry backoff, status annotations, Events, periodic
//! garbage collection, and pausing while not the leader.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use model::handoff;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::desired::{pod_is_active, PodRef};
use super::events::{EventType, PodWriter};
use super::{Controller, Nb};
use crate::nad::NetworkAttachmentDefinition;
use crate::status::{write_pod_annotations, WriteOutcome};
use model::status::{merge_network_status, INTERFACES_ANNOTATION, NETWORK_STATUS_ANNOTATION};

/// Timing of the runner.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Events of one pod within this window are handled once.
    pub debounce: Duration,
    /// First retry delay after a failure; doubles per failure up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Periodic garbage collection (also run after every pod list resync).
    pub gc_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            debounce: Duration::from_millis(100),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            gc_interval: Duration::from_secs(300),
        }
    }
}

/// Pods per Northbound transaction when many are due at once (startup, NAD changes).
pub const BATCH: usize = 50;

/// `namespace/name`.
type Key = (String, String);

#[derive(Debug)]
enum Trigger {
    Pod(Key),
    Deleted(PodRef),
    AllPods,
    PodsSynced,
    NbChanged,
    Leader(bool),
}

#[derive(Debug, Default)]
struct Entry {
    due: Option<Instant>,
    attempts: u32,
    gone: Option<PodRef>,
    last_event: Option<String>,
}

/// Aborts the runner's helper tasks (watchers, forwarders) when the runner is dropped, so that
/// cancelling [`run`] (shutdown) stops everything it started.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Runs the controller until the watchers end (they retry forever; this returns only on a
/// programming error such as a dropped store writer). To stop it (shutdown), drop the future:
/// every task it spawned is aborted with it.
pub async fn run<W: PodWriter + 'static>(client: kube::Client, nb: Nb, writer: W, leader: watch::Receiver<bool>, cfg: RunnerConfig) {
    let (nad_store, nad_writer) = reflector::store::<NetworkAttachmentDefinition>();
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let ctl = Controller::new(nb.clone(), Arc::new(nad_store)).with_leadership(leader.clone());
    let (tx, mut rx) = mpsc::unbounded_channel::<Trigger>();
    let mut tasks = Tasks(Vec::new());

    let pods = reflector::reflector(pod_writer, watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())).default_backoff();
    let t = tx.clone();
    tasks.0.push(tokio::spawn(async move {
        futures::pin_mut!(pods);
        while let Some(ev) = pods.next().await {
            let trig = match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => key_of(&p).map(Trigger::Pod),
                Ok(watcher::Event::Delete(p)) => PodRef::of(&p).map(Trigger::Deleted),
                Ok(watcher::Event::InitDone) => Some(Trigger::PodsSynced),
                Ok(watcher::Event::Init) => None,
                Err(e) => {
                    tracing::warn!("pod watch: {e}");
                    None
                }
            };
            if let Some(trig) = trig {
                let _ = t.send(trig);
            }
        }
    }));
    let nads =
        reflector::reflector(nad_writer, watcher(Api::<NetworkAttachmentDefinition>::all(client.clone()), watcher::Config::default()))
            .default_backoff();
    let t = tx.clone();
    tasks.0.push(tokio::spawn(async move {
        futures::pin_mut!(nads);
        while let Some(ev) = nads.next().await {
            match ev {
                Ok(watcher::Event::Apply(_)) | Ok(watcher::Event::Delete(_)) | Ok(watcher::Event::InitDone) => {
                    let _ = t.send(Trigger::AllPods);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("NetworkAttachmentDefinition watch: {e}"),
            }
        }
    }));
    let mut snaps = nb.replica().subscribe();
    let t = tx.clone();
    tasks.0.push(tokio::spawn(async move {
        while snaps.changed().await.is_ok() {
            let _ = t.send(Trigger::NbChanged);
        }
    }));
    let mut lead = leader.clone();
    let t = tx;
    tasks.0.push(tokio::spawn(async move {
        while lead.changed().await.is_ok() {
            let v = *lead.borrow();
            let _ = t.send(Trigger::Leader(v));
        }
    }));

    let mut r = Runner { ctl, writer, client, pods: pod_store, cfg, queue: HashMap::new(), waiting: HashSet::new(), synced: false };
    let mut next_gc = Instant::now() + r.cfg.gc_interval;
    loop {
        let next = r.queue.values().filter_map(|e| e.due).min().unwrap_or(next_gc).min(next_gc);
        tokio::select! {
            trig = rx.recv() => match trig {
                Some(t) => r.on_trigger(t),
                None => return,
            },
            _ = tokio::time::sleep_until(next) => {
                if Instant::now() >= next_gc {
                    next_gc = Instant::now() + r.cfg.gc_interval;
                    r.gc().await;
                }
                r.process_due().await;
            }
        }
    }
}

fn key_of(p: &Pod) -> Option<Key> {
    Some((p.metadata.namespace.clone()?, p.metadata.name.clone()?))
}

struct Runner<W> {
    ctl: Controller,
    writer: W,
    /// Writes the status annotations (through pods/status, see [`crate::status::write_pod_annotations`]).
    client: kube::Client,
    pods: Store<Pod>,
    cfg: RunnerConfig,
    queue: HashMap<Key, Entry>,
    /// Pods whose status annotations wait for the Northbound database (allocation, port up).
    waiting: HashSet<Key>,
    synced: bool,
}

impl<W: PodWriter> Runner<W> {
    fn schedule(&mut self, key: Key, delay: Duration) {
        let due = Instant::now() + delay;
        let e = self.queue.entry(key).or_default();
        e.due = Some(match e.due {
            Some(d) if d <= due && e.attempts == 0 => d,
            _ => due,
        });
    }

    fn on_trigger(&mut self, t: Trigger) {
        let d = self.cfg.debounce;
        match t {
            Trigger::Pod(k) => {
                if let Some(e) = self.queue.get_mut(&k) {
                    e.attempts = 0;
                }
                self.schedule(k, d)
            }
            Trigger::Deleted(p) => {
                let k = (p.namespace.clone(), p.name.clone());
                self.schedule(k.clone(), d);
                if let Some(e) = self.queue.get_mut(&k) {
                    e.gone = Some(p);
                }
            }
            Trigger::AllPods => {
                for p in self.pods.state() {
                    if let Some(k) = key_of(&p) {
                        self.schedule(k, d);
                    }
                }
            }
            Trigger::PodsSynced => {
                self.synced = true;
                // A resync may have missed deletions: collect soon.
                for p in self.pods.state() {
                    if let Some(k) = key_of(&p) {
                        self.schedule(k, d);
                    }
                }
                self.queue.entry(("".into(), "".into())).or_default().due = Some(Instant::now() + d);
            }
            Trigger::NbChanged => {
                for k in self.waiting.clone() {
                    self.schedule(k, d);
                }
            }
            Trigger::Leader(true) => {
                self.on_trigger(Trigger::AllPods);
                self.queue.entry(("".into(), "".into())).or_default().due = Some(Instant::now() + d);
            }
            Trigger::Leader(false) => {}
        }
    }

    async fn process_due(&mut self) {
        if !self.ctl.is_leader() {
            // Keep the queue; everything is rescheduled when leadership comes back.
            for e in self.queue.values_mut() {
                e.due = None;
            }
            return;
        }
        let now = Instant::now();
        let due: Vec<Key> = self.queue.iter().filter(|(_, e)| e.due.is_some_and(|d| d <= now)).map(|(k, _)| k.clone()).collect();
        let mut pods = Vec::with_capacity(due.len());
        for k in due {
            if let Some(e) = self.queue.get_mut(&k) {
                e.due = None;
            }
            if k.0.is_empty() {
                self.queue.remove(&k);
                self.gc().await;
            } else {
                pods.push(k);
            }
        }
        self.process_keys(pods).await;
    }

    /// Handles the due pods: deletions one by one, live pods in batches of [`BATCH`] pods per
    /// transaction (each pod's changes stay whole inside one transaction).
    async fn process_keys(&mut self, keys: Vec<Key>) {
        let mut live: Vec<(Key, Arc<Pod>)> = Vec::new();
        for key in keys {
            let pod = self.pods.get(&ObjectRef::new(&key.1).within(&key.0));
            let gone = self.queue.get_mut(&key).and_then(|e| e.gone.take());
            match (pod, gone) {
                (None, Some(old)) => {
                    let r = self.ctl.delete_pod(&old).await.map(|_| None);
                    self.handle(key, None, r).await;
                }
                (None, None) => self.handle(key, None, Ok(None)).await,
                (Some(p), old) => {
                    if let Some(old) = old.filter(|o| Some(&o.uid) != p.metadata.uid.as_ref()) {
                        if let Err(e) = self.ctl.delete_pod(&old).await {
                            tracing::warn!(pod = %old, "removing ports of the previous pod: {e}");
                        }
                    }
                    live.push((key, p));
                }
            }
        }
        for chunk in live.chunks(BATCH * 8) {
            let pods: Vec<Pod> = chunk.iter().map(|(_, p)| (**p).clone()).collect();
            let results = self.ctl.reconcile_batch(&pods, BATCH).await;
            for ((key, pod), (_, r)) in chunk.iter().zip(results) {
                self.handle(key.clone(), Some(pod.clone()), r.map(Some)).await;
            }
        }
    }

    async fn handle(&mut self, key: Key, pod: Option<Arc<Pod>>, result: Result<Option<super::Reconciled>, super::PodError>) {
        match result {
            Ok(None) => {
                self.waiting.remove(&key);
                self.queue.remove(&key);
            }
            Ok(Some(rec)) => {
                if let Some(p) = &pod {
                    self.write_status(&key, p, &rec).await;
                }
                if let Some(e) = self.queue.get_mut(&key) {
                    e.attempts = 0;
                }
                if self.queue.get(&key).is_some_and(|e| e.due.is_none() && !self.waiting.contains(&key)) {
                    self.queue.remove(&key);
                }
            }
            Err(err) => {
                let e = self.queue.entry(key.clone()).or_default();
                e.attempts += 1;
                let delay = if err.is_transient() {
                    self.cfg.backoff_min.saturating_mul(1 << e.attempts.min(16)).min(self.cfg.backoff_max)
                } else {
                    self.cfg.backoff_max
                };
                e.due = Some(Instant::now() + delay);
                let msg = err.to_string();
                tracing::warn!(pod = %format!("{}/{}", key.0, key.1), reason = err.reason(), retry_in = ?delay, "{msg}");
                let repeat = e.last_event.as_deref() == Some(msg.as_str());
                e.last_event = Some(msg.clone());
                if let (false, Some(pr)) = (repeat, pod.as_deref().and_then(PodRef::of)) {
                    if let Err(w) = self.writer.emit_event(&pr, EventType::Warning, err.reason(), &msg).await {
                        tracing::warn!("{w}");
                    }
                }
            }
        }
    }

    /// Writes the status annotations that differ from what the pod carries: the whole
    /// `kubetron.io/interfaces` (kubetron's own), and kubetron's entries of `network-status`
    /// merged into the entries other writers put there ([`merge_network_status`]), through
    /// pods/status with the pod's UID and resourceVersion as preconditions (re-merged on conflict).
    async fn write_status(&mut self, key: &Key, pod: &Pod, rec: &super::Reconciled) {
        let status = self.ctl.status(&rec.pod, &rec.desired);
        let want = status.annotations();
        let asks_nothing = rec.desired.is_empty();
        let desired_ifaces: BTreeSet<String> = rec.desired.iter().map(|d| d.interface.clone()).collect();
        let change = |current: &BTreeMap<String, String>| {
            let mut patch: BTreeMap<String, Option<String>> = BTreeMap::new();
            // Not ready yet: leave what is there unless the pod asks for nothing any more.
            match want.get(INTERFACES_ANNOTATION) {
                Some(v) => {
                    patch.insert(INTERFACES_ANNOTATION.to_string(), Some(v.clone()));
                }
                None if asks_nothing && current.contains_key(INTERFACES_ANNOTATION) => {
                    patch.insert(INTERFACES_ANNOTATION.to_string(), None);
                }
                None => {}
            }
            if status.network_status.is_some() || asks_nothing {
                // Ours: the interfaces the pod has now and those kubetron last recorded (in a
                // v1 hand-off, or a v0 list written by an older controller).
                let mut owned = desired_ifaces.clone();
                if let Some(prev) = current.get(INTERFACES_ANNOTATION).and_then(|v| handoff::parse(v).ok()) {
                    owned.extend(prev.interface_names().into_iter().map(str::to_string));
                }
                let ours = status.network_status.as_deref().unwrap_or_default();
                let cur = current.get(NETWORK_STATUS_ANNOTATION).map(String::as_str);
                if cur.is_some() || !ours.is_empty() {
                    patch.insert(NETWORK_STATUS_ANNOTATION.to_string(), merge_network_status(cur, ours, &owned));
                }
            }
            patch
        };
        let pending = !rec.desired.is_empty() && (status.interfaces.is_none() || status.network_status.is_none()) && pod_is_active(pod);
        if pending {
            self.waiting.insert(key.clone());
        } else {
            self.waiting.remove(key);
        }
        let written = write_pod_annotations(&self.client, &rec.pod.namespace, &rec.pod.name, &rec.pod.uid, Some(pod), change).await;
        match written {
            Ok(WriteOutcome::Written { attempts }) if attempts > 1 => {
                tracing::debug!(pod = %rec.pod, attempts, "status annotations written after conflicts")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("{e}");
                self.schedule(key.clone(), self.cfg.backoff_min);
            }
        }
        if !rec.changes.created.is_empty() {
            let msg = format!("created OVN logical switch ports {}", rec.changes.created.join(", "));
            let _ = self.writer.emit_event(&rec.pod, EventType::Normal, "LogicalPortsCreated", &msg).await;
        }
    }

    async fn gc(&mut self) {
        if !self.synced || !self.ctl.is_leader() {
            return;
        }
        let live: HashSet<String> = self.pods.state().iter().filter(|p| pod_is_active(p)).filter_map(|p| p.metadata.uid.clone()).collect();
        match self.ctl.gc(&live).await {
            Ok(removed) if !removed.is_empty() => tracing::info!(count = removed.len(), "garbage-collected logical switch ports"),
            Ok(_) => {}
            Err(e) => tracing::warn!("garbage collection: {e}"),
        }
    }
}
