//! The Kubernetes side of MultiNetworkPolicies, on kube-runtime's [`kube::runtime::Controller`]
//! (OVN backend only):
//!
//! - MultiNetworkPolicies drive the controller; pods, namespaces and NetworkAttachmentDefinitions
//!   are reflected and requeue the policies they may concern ([`policies_for_pod`],
//!   [`policies_for_namespace`], [`policies_for_nad`]: over-approximations, a reconcile that
//!   changes nothing writes nothing);
//! - a reconcile validates the policy ([`policy::validate`]), resolves `policy-for` to logical
//!   switches (kubetron NADs; other plugins' NADs are not kubetron's business), builds the world
//!   (pods and their ports from the pod cache and the Northbound replica), plans
//!   ([`super::policy::plan_policies`]) and writes one transaction, retried when the default-deny
//!   guard failed; reconciles run one at a time;
//! - a policy with problems, or naming a network that does not exist, is refused whole: nothing
//!   changes in OVN (a policy that applied before keeps its last good rows) and a Warning Event
//!   `PolicyRejected` on the policy says why; `PolicyApplied` (Normal) reports each new generation
//!   applied;
//! - a deleted policy's rows go at once; rows of policies deleted while no controller ran go when
//!   the policy list is complete and when leadership is regained.
//!
//! The pod cache is the runner's own (a second pod watch): a policy's world must be exactly as new
//! as the events that requeued it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use kube::runtime::controller::{self as krc, Action};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use policy::{ContainerPort, Mode, PodView, PolicyRef, PortView, Protocol, World};
use tokio::sync::{mpsc, watch};

use super::desired::{pod_is_active, PodRef, PolicyGroups, VmIdentity};
use super::events::{clip, COMPONENT};
use super::nb::{NbView, SwitchLookup};
use super::policy::{orphaned_policies, plan_policies, PolicyItem, PolicyPlanError};
use super::runner::{leader_gained, Retry, Tasks};
use super::Nb;
use crate::meta::MetaStr;
use crate::mnp::{self, MultiNetworkPolicy};
use crate::nad::NetworkAttachmentDefinition;
use ovn::columns::Model;

/// Timing of the policy runner.
#[derive(Debug, Clone)]
pub struct PolicyRunnerConfig {
    /// Requests for one policy within this window are handled once.
    pub debounce: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long to wait for the replica to show a write.
    pub echo_timeout: Duration,
}

impl Default for PolicyRunnerConfig {
    fn default() -> Self {
        PolicyRunnerConfig {
            debounce: Duration::from_millis(20),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            echo_timeout: Duration::from_secs(10),
        }
    }
}

/// How many times a plan is made again when the default-deny guard failed.
const GUARD_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Plan(#[from] PolicyPlanError),
    #[error("OVN Northbound: {0}")]
    Nb(#[from] ovsdb::Error),
    #[error("the default-deny groups kept changing under {GUARD_ATTEMPTS} attempts")]
    Contended,
}

/// Per policy: failures in a row and the last Event sent (no repeats), and the generation last
/// reported applied.
#[derive(Default)]
struct Reported {
    retry: Retry,
    applied: Option<i64>,
}

struct Ctx {
    nb: Nb,
    leader: watch::Receiver<bool>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    nads: Store<NetworkAttachmentDefinition>,
    /// Pods, namespaces and NADs listed (a world built before is incomplete).
    listed: watch::Receiver<[bool; 3]>,
    recorder: Option<Recorder>,
    cfg: PolicyRunnerConfig,
    reported: Mutex<HashMap<String, Reported>>,
}

/// Runs the policy side until its watches end (they retry forever). Drop the future to stop it.
/// The policies are reflected into `policies` (made with [`reflector::store`]; its reader also
/// serves [`StorePolicies`] on the pod side).
pub async fn run(
    client: kube::Client,
    nb: Nb,
    leader: watch::Receiver<bool>,
    instance: &str,
    cfg: PolicyRunnerConfig,
    policies: (Store<MultiNetworkPolicy>, reflector::store::Writer<MultiNetworkPolicy>),
) {
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let (ns_store, ns_writer) = reflector::store::<Namespace>();
    let (nad_store, nad_writer) = reflector::store::<NetworkAttachmentDefinition>();
    let (policy_store, policy_writer) = policies;
    let (listed_tx, listed) = watch::channel([false; 3]);
    let listed_tx = Arc::new(listed_tx);
    let (m0, m1, m2) = (mark(&listed_tx, 0, "pod"), mark(&listed_tx, 1, "namespace"), mark(&listed_tx, 2, "NetworkAttachmentDefinition"));
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .inspect(m0)
        .touched_objects();
    let namespaces = watcher(Api::<Namespace>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(ns_writer)
        .inspect(m1)
        .touched_objects();
    let nads = watcher(Api::<NetworkAttachmentDefinition>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(nad_writer)
        .inspect(m2)
        .touched_objects();
    let (deleted_tx, deleted_rx) = mpsc::unbounded_channel::<Option<MultiNetworkPolicy>>();
    let gc_tx = deleted_tx.clone();
    let policies = watcher(Api::<MultiNetworkPolicy>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(policy_writer)
        .inspect(move |ev| match ev {
            Ok(watcher::Event::Delete(p)) => {
                let _ = deleted_tx.send(Some(p.clone()));
            }
            // The list is complete: policies deleted while nobody watched can be found.
            Ok(watcher::Event::InitDone) => {
                let _ = gc_tx.send(None);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("MultiNetworkPolicy watch (is the CRD {} installed?): {e}", mnp::CRD_NAME),
        })
        .applied_objects();

    let reporter = Reporter { controller: COMPONENT.into(), instance: Some(instance.to_string()) };
    let ctx = Arc::new(Ctx {
        nb,
        leader: leader.clone(),
        pods: pod_store,
        namespaces: ns_store,
        nads: nad_store,
        listed,
        recorder: Some(Recorder::new(client.clone(), reporter)),
        cfg: cfg.clone(),
        reported: Mutex::new(HashMap::new()),
    });
    let deletions = tokio::spawn(removals(deleted_rx, ctx.clone(), policy_store.clone(), leader.clone()));
    let _tasks = Tasks(vec![deletions]);

    let (s1, s2, s3) = (policy_store.clone(), policy_store.clone(), policy_store.clone());
    krc::Controller::for_stream(policies, policy_store)
        .with_config(krc::Config::default().debounce(cfg.debounce).concurrency(1))
        .watches_stream(pods, move |p: Pod| policies_for_pod(&s1.state(), p.metadata.namespace.as_deref().unwrap_or_default()))
        .watches_stream(namespaces, move |n: Namespace| policies_for_namespace(&s2.state(), n.metadata.name.as_deref().unwrap_or_default()))
        .watches_stream(nads, move |n: NetworkAttachmentDefinition| policies_for_nad(&s3.state(), &n))
        .reconcile_all_on(leader_gained(leader))
        .run(reconcile, error_policy, ctx)
        .for_each(|r| {
            if let Err(e) = r {
                tracing::debug!("policy controller: {e}");
            }
            std::future::ready(())
        })
        .await;
}

/// Marks watch `i` listed at its first complete list; logs its errors.
fn mark<K>(tx: &Arc<watch::Sender<[bool; 3]>>, i: usize, what: &'static str) -> impl Fn(&Result<watcher::Event<K>, watcher::Error>) {
    let tx = tx.clone();
    move |ev| match ev {
        Ok(watcher::Event::InitDone) => tx.send_modify(|l| l[i] = true),
        Err(e) => tracing::warn!("{what} watch (policies): {e}"),
        _ => {}
    }
}

fn has_namespace_selector(p: &MultiNetworkPolicy) -> bool {
    let spec = &p.spec.policy;
    let peers = spec
        .ingress
        .iter()
        .flatten()
        .flat_map(|r| r.from.iter().flatten())
        .chain(spec.egress.iter().flatten().flat_map(|r| r.to.iter().flatten()));
    peers.into_iter().any(|peer| peer.namespace_selector.is_some())
}

/// The policies a change of a pod in namespace `ns` may concern: those of `ns` (it may be selected,
/// or a peer) and those with a namespace selector (it may be a peer).
pub fn policies_for_pod(policies: &[Arc<MultiNetworkPolicy>], ns: &str) -> Vec<ObjectRef<MultiNetworkPolicy>> {
    policies.iter().filter(|p| p.namespace_str() == ns || has_namespace_selector(p)).map(|p| ObjectRef::from_obj(p.as_ref())).collect()
}

/// The policies a change of namespace `ns` (its labels) may concern.
pub fn policies_for_namespace(policies: &[Arc<MultiNetworkPolicy>], ns: &str) -> Vec<ObjectRef<MultiNetworkPolicy>> {
    policies_for_pod(policies, ns)
}

/// The policies whose `policy-for` names `nad`.
pub fn policies_for_nad(policies: &[Arc<MultiNetworkPolicy>], nad: &NetworkAttachmentDefinition) -> Vec<ObjectRef<MultiNetworkPolicy>> {
    let key = (nad.namespace_str().to_string(), nad.name_str().to_string());
    policies.iter().filter(|p| p.policy_for().contains(&key)).map(|p| ObjectRef::from_obj(p.as_ref())).collect()
}

/// The world of a plan over `switches`: namespaces with their labels, and the active pods with
/// ports on those switches (names, IPs from the replica; labels and named container ports from
/// the pod). A pod's ports are those tagged with its UID and, for a VM (a KubeVirt launcher pod,
/// or a pod with persistent IPs), the IPAMClaim ports of that VM.
pub fn build_world(view: &NbView, pods: &[Arc<Pod>], namespaces: &[Arc<Namespace>], switches: &BTreeSet<String>) -> World {
    let mut on_switch: HashMap<ovsdb::datum::Uuid, &str> = HashMap::new();
    for name in switches {
        for sw in view.switches(name) {
            for port in view.switch_ports(&sw.uuid) {
                on_switch.insert(port, name.as_str());
            }
        }
    }
    let mut views = Vec::new();
    for pod in pods.iter().filter(|p| pod_is_active(p)) {
        let Some(pod_ref) = PodRef::of(pod) else { continue };
        // The pod's own ports, and its VM's persistent-IP ports (every living launcher pod of
        // the VM has them: both during a live migration).
        let vm = VmIdentity::of(pod, &pod_ref);
        let mut rows = view.ports_of_pod(&pod_ref.uid);
        if super::vm::is_living(pod) {
            rows.extend(view.ports_of_vm(&format!("{}/{}", pod_ref.namespace, vm.name), &vm.uid));
        }
        let ports: Vec<PortView> = rows
            .into_iter()
            .filter_map(|(uuid, row)| {
                let switch = on_switch.get(&uuid)?;
                let port = ovn::nb::LogicalSwitchPort::from_row(&row);
                let ips =
                    port.effective_addresses().map(|(_, ips)| ips.iter().filter_map(|ip| ip.parse().ok()).collect()).unwrap_or_default();
                Some(PortView { switch: switch.to_string(), lsp: port.name, ips })
            })
            .collect();
        if ports.is_empty() {
            continue;
        }
        let container_ports = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(ContainerPort {
                    name: p.name.clone()?,
                    protocol: Protocol::parse(p.protocol.as_deref())?,
                    number: u16::try_from(p.container_port).ok()?,
                })
            })
            .collect();
        views.push(PodView {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            container_ports,
            ports,
        });
    }
    let ns = namespaces.iter().map(|n| (n.metadata.name.clone().unwrap_or_default(), n.metadata.labels.clone().unwrap_or_default()));
    World::new(ns, views)
}

impl Ctx {
    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Plans `items` against the replica and writes them; again (with a fresh view) when the
    /// default-deny guard failed. How many operations were written.
    async fn apply(&self, items: &[PolicyItem<'_>], switches: &BTreeSet<String>) -> Result<usize, PolicyError> {
        for _ in 0..GUARD_ATTEMPTS {
            let view = self.nb.view();
            // A removal needs no world (nothing is translated), only the switches it leaves.
            let world = if switches.is_empty() {
                World::default()
            } else {
                build_world(&view, &self.pods.state(), &self.namespaces.state(), switches)
            };
            let plan = plan_policies(&view, &world, items, Mode::AddressSets)?;
            if plan.is_noop() {
                return Ok(0);
            }
            let n = plan.writes();
            let mut changes = self.nb.replica().subscribe();
            changes.borrow_and_update();
            match self.nb.transact(plan.ops.clone()).await {
                Ok(_) => {
                    self.nb.replica().wait_until(self.cfg.echo_timeout, |s| plan.shown_in(s)).await?;
                    return Ok(n);
                }
                // Another writer changed a deny group since the view (or made the same group at
                // once): catch up, plan again.
                Err(e) if ovn::nb::is_guard_failure(&e) || e.txn().is_some_and(|t| t.error == "constraint violation") => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), changes.changed()).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(PolicyError::Contended)
    }

    /// Sends an Event on `p` unless it repeats the last one sent for it.
    async fn event(&self, p: &MultiNetworkPolicy, type_: EventType, reason: &str, note: String) {
        {
            let mut reported = self.reported.lock().expect("reported");
            let entry = reported.entry(p.key()).or_default();
            let text = format!("{reason}: {note}");
            if !entry.retry.is_new_event(&text) {
                return;
            }
        }
        let level = if type_ == EventType::Warning { tracing::Level::WARN } else { tracing::Level::INFO };
        if level == tracing::Level::WARN {
            tracing::warn!(policy = %p.key(), reason, "{note}");
        } else {
            tracing::info!(policy = %p.key(), reason, "{note}");
        }
        let Some(recorder) = &self.recorder else { return };
        let regarding = ObjectReference {
            api_version: Some("k8s.cni.cncf.io/v1beta1".into()),
            kind: Some("MultiNetworkPolicy".into()),
            name: p.metadata.name.clone(),
            namespace: p.metadata.namespace.clone(),
            uid: p.metadata.uid.clone(),
            ..Default::default()
        };
        let ev = Event { type_, reason: reason.into(), note: Some(clip(&note)), action: "ApplyPolicy".into(), secondary: None };
        if let Err(e) = recorder.publish(&ev, &regarding).await {
            tracing::warn!(policy = %p.key(), "event: {e}");
        }
    }
}

/// [`PolicyGroups`] over the reflected policies and NADs: a new port of a pod on switch `s` joins
/// the group of every valid policy of the pod's namespace that selects the pod and applies to `s`,
/// and `s`'s default-deny groups for the directions those policies isolate.
pub struct StorePolicies {
    pub policies: Store<MultiNetworkPolicy>,
    pub nads: Store<NetworkAttachmentDefinition>,
}

impl PolicyGroups for StorePolicies {
    fn policy_groups(&self, pod: &Pod, switch: &str) -> Vec<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let (deny_in, deny_out) = policy::deny_group_names(switch);
        let mut groups = BTreeSet::new();
        for p in self.policies.state().iter().filter(|p| p.namespace_str() == ns) {
            let spec = &p.spec.policy;
            let applies = || resolve(p, &self.nads).is_ok_and(|s| s.contains(switch));
            if !spec.pod_selector.matches(&labels) || !policy::validate(spec).is_empty() || !applies() {
                continue;
            }
            groups.insert(policy::port_group_name(&p.key(), switch));
            if spec.isolates(policy::Direction::Ingress) {
                groups.insert(deny_in.clone());
            }
            if spec.isolates(policy::Direction::Egress) {
                groups.insert(deny_out.clone());
            }
        }
        groups.into_iter().collect()
    }
}

/// The logical switches `p`'s `policy-for` names (kubetron NADs only), or the networks that do
/// not exist / cannot be read.
fn resolve(p: &MultiNetworkPolicy, nads: &Store<NetworkAttachmentDefinition>) -> Result<BTreeSet<String>, Vec<String>> {
    let mut switches = BTreeSet::new();
    let mut missing = Vec::new();
    for (ns, name) in p.policy_for() {
        match nads.get(&ObjectRef::new(&name).within(&ns)).map(|n| n.kubetron_config()) {
            None => missing.push(format!("{ns}/{name} does not exist")),
            Some(Ok(Some(cfg))) => {
                switches.insert(cfg.logical_switch().to_string());
            }
            Some(Ok(None)) => {}
            Some(Err(e)) => missing.push(format!("{ns}/{name}: {e}")),
        }
    }
    if missing.is_empty() {
        Ok(switches)
    } else {
        Err(missing)
    }
}

async fn reconcile(p: Arc<MultiNetworkPolicy>, ctx: Arc<Ctx>) -> Result<Action, PolicyError> {
    if !ctx.is_leader() {
        return Ok(Action::await_change());
    }
    if ctx.listed.clone().wait_for(|l| l.iter().all(|x| *x)).await.is_err() {
        return Ok(Action::await_change());
    }
    let problems = policy::validate(&p.spec.policy);
    if !problems.is_empty() {
        let text = policy::describe(&problems);
        ctx.event(&p, EventType::Warning, "PolicyRejected", format!("not applied (OVN unchanged): {text}")).await;
        return Ok(Action::await_change());
    }
    let switches = match resolve(&p, &ctx.nads) {
        Ok(s) => s,
        Err(missing) => {
            ctx.event(&p, EventType::Warning, "PolicyRejected", format!("not applied (OVN unchanged): network {}", missing.join(", ")))
                .await;
            return Ok(Action::await_change());
        }
    };
    let key = p.key();
    let list: Vec<String> = switches.iter().cloned().collect();
    let item = PolicyItem {
        policy: PolicyRef { namespace: p.namespace_str(), name: p.name_str(), uid: p.uid_str() },
        spec: (!list.is_empty()).then_some(&p.spec.policy),
        switches: &list,
    };
    match ctx.apply(&[item], &switches).await {
        Ok(_) => {
            let generation = p.metadata.generation;
            let new = {
                let mut reported = ctx.reported.lock().expect("reported");
                let entry = reported.entry(key).or_default();
                entry.retry.attempts = 0;
                let new = entry.applied != generation;
                entry.applied = generation;
                new
            };
            if new && !list.is_empty() {
                ctx.event(&p, EventType::Normal, "PolicyApplied", format!("applied on logical switches {}", list.join(", "))).await;
            }
            Ok(Action::await_change())
        }
        Err(e) => {
            if let PolicyError::Plan(plan) = &e {
                ctx.event(&p, EventType::Warning, "PolicyRejected", format!("not applied (OVN unchanged): {plan}")).await;
            }
            Err(e)
        }
    }
}

fn error_policy(p: Arc<MultiNetworkPolicy>, err: &PolicyError, ctx: Arc<Ctx>) -> Action {
    let backoff = {
        let mut reported = ctx.reported.lock().expect("reported");
        let entry = reported.entry(p.key()).or_default();
        entry.retry.attempts += 1;
        entry.retry.backoff(ctx.cfg.backoff_min, ctx.cfg.backoff_max)
    };
    let delay = match err {
        PolicyError::Plan(_) => ctx.cfg.backoff_max,
        _ => backoff,
    };
    tracing::warn!(policy = %p.key(), retry_in = ?delay, "{err}");
    Action::requeue(delay)
}

/// Removes the rows of deleted policies (`Some`), and of every policy the replica holds that the
/// complete policy list does not (`None`, after each list). Only while leading; leadership
/// regained collects again.
async fn removals(
    mut rx: mpsc::UnboundedReceiver<Option<MultiNetworkPolicy>>,
    ctx: Arc<Ctx>,
    policies: Store<MultiNetworkPolicy>,
    leader: watch::Receiver<bool>,
) {
    let mut gained = Box::pin(leader_gained(leader));
    loop {
        let gone: Vec<String> = tokio::select! {
            ev = rx.recv() => match ev {
                None => return,
                Some(Some(p)) => vec![p.key()],
                Some(None) => orphans(&ctx, &policies),
            },
            Some(()) = gained.next() => orphans(&ctx, &policies),
        };
        if gone.is_empty() || !ctx.is_leader() {
            continue;
        }
        for key in gone {
            let (ns, name) = key.split_once('/').unwrap_or(("", key.as_str()));
            // A policy of the same name made again is the reconcile's.
            if policies.get(&ObjectRef::new(name).within(ns)).is_some() {
                continue;
            }
            let item = PolicyItem { policy: PolicyRef { namespace: ns, name, uid: "" }, spec: None, switches: &[] };
            match ctx.apply(&[item], &BTreeSet::new()).await {
                Ok(n) if n > 0 => tracing::info!(policy = %key, "removed the OVN rows of a deleted MultiNetworkPolicy"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(policy = %key, "removing the rows of a deleted MultiNetworkPolicy (retried at the next list or leadership): {e}")
                }
            }
            ctx.reported.lock().expect("reported").remove(&key);
        }
    }
}

fn orphans(ctx: &Ctx, policies: &Store<MultiNetworkPolicy>) -> Vec<String> {
    let live: HashSet<String> = policies.state().iter().map(|p| p.key()).collect();
    orphaned_policies(&ctx.nb.view(), &live).into_iter().collect()
}
