//! The controller: pods and NetworkAttachmentDefinitions -> desired OVN Northbound state ->
//! OVSDB transactions, with garbage collection.
//!
//! - [`desired`]: pure computation of the ports a pod should have ([`desired::desired`]).
//! - [`reconcile`]: desired vs. the NB replica -> one transaction per pod ([`reconcile::plan`]).
//! - [`status`]: `kubetron.io/interfaces` and `network-status` values from the replica.
//! - [`gc`]: removal of kubetron's ports (the controller's and the CNI plugin's) whose pod is gone.
//! - [`events`]: [`events::PodWriter`] (annotations + Events) and its kube implementation.
//! - [`lease`]: leader election on a coordination.k8s.io/v1 Lease.
//! - [`runner`]: the Kubernetes side (watchers, reflectors, debounce, backoff).
//! - [`nb`]: the Northbound client + replica + transaction counter.
//! - [`vm`]: KubeVirt launcher pods: the pods of one VM and where its ports are bound.
//! - [`policy`]: MultiNetworkPolicies -> Port_Group, Address_Set and ACL rows, planned against
//!   the replica ([`policy::plan_policies`]); [`policy_runner`]: their Kubernetes side.
//! - [`backend`]: the seam the runner sees ([`backend::Backend`]); [`backend::OvnBackend`] is all
//!   of the above, [`neutron::NeutronBackend`] makes Neutron's ports through Neutron's API instead.
//!
//! [`Controller`] ties the core together without Kubernetes I/O: it takes pod objects and a NAD
//! lookup, and writes to the Northbound database only while it is the leader.

pub mod backend;
pub mod batcher;
pub mod desired;
pub mod error;
pub mod events;
pub mod gc;
pub mod lease;
pub mod nb;
pub mod neutron;
pub mod policy;
pub mod policy_runner;
pub mod reconcile;
pub mod runner;
pub mod status;
pub mod vm;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;

pub use backend::{Backend, OvnBackend, Report, Stores};
pub use desired::{
    desired, desired_with_claims, Addressing, ClaimBinding, ClaimLookup, ClaimMap, DesiredPort, NadLookup, NadMap, NoClaims, NoPolicies,
    PodRef, PolicyGroups, VmIdentity,
};
pub use error::PodError;
pub use nb::{Nb, NbView};
pub use reconcile::{allocate, plan, Changes, Claims, Guard, PodPlan};
pub use status::PodStatus;

/// How long to wait for the replica to show our own writes.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a pod is planned again when a switch changed between the address check and
/// the write.
pub const ADDRESS_ATTEMPTS: usize = 5;
/// How long to wait for the replica to show the change that failed a guard.
const GUARD_CATCH_UP: Duration = Duration::from_secs(2);

/// The outcome of reconciling one pod.
#[derive(Debug, Clone)]
pub struct Reconciled {
    pub pod: PodRef,
    pub desired: Vec<DesiredPort>,
    pub changes: Changes,
}

/// The core controller.
#[derive(Clone)]
pub struct Controller {
    nb: Nb,
    nads: Arc<dyn NadLookup + Send + Sync>,
    claims: Arc<dyn ClaimLookup + Send + Sync>,
    policies: Arc<dyn PolicyGroups + Send + Sync>,
    leader: watch::Receiver<bool>,
    collector: Arc<gc::Collector>,
}

impl Controller {
    /// A controller that always considers itself the leader (see [`Controller::with_leadership`]).
    pub fn new(nb: Nb, nads: Arc<dyn NadLookup + Send + Sync>) -> Controller {
        // A receiver keeps the last value after its sender is gone.
        let (_, leader) = watch::channel(true);
        Controller {
            nb,
            nads,
            claims: Arc::new(NoClaims),
            policies: Arc::new(NoPolicies),
            leader,
            collector: Arc::new(gc::Collector::default()),
        }
    }

    /// New ports join the MultiNetworkPolicy groups `policies` names for them (default: none;
    /// the policy runner adds them later).
    pub fn with_policies(mut self, policies: Arc<dyn PolicyGroups + Send + Sync>) -> Controller {
        self.policies = policies;
        self
    }

    /// Reads IPAMClaims from `claims` (default: none, every `ipam-claim-reference` waits).
    pub fn with_claims(mut self, claims: Arc<dyn ClaimLookup + Send + Sync>) -> Controller {
        self.claims = claims;
        self
    }

    /// How long a CNI-made port must have been seen orphaned before GC removes it (default
    /// [`gc::CNI_GRACE`]; see [`gc`] for the rule).
    pub fn with_gc_grace(mut self, grace: Duration) -> Controller {
        self.collector = Arc::new(gc::Collector::new(grace));
        self
    }

    /// Writes only while `leader` says true.
    pub fn with_leadership(mut self, leader: watch::Receiver<bool>) -> Controller {
        self.leader = leader;
        self
    }

    pub fn nb(&self) -> &Nb {
        &self.nb
    }
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The ports `pod` should have, against the current replica.
    /// Persistent-IP ports without an address get the switch's first free one ([`allocate`]).
    pub fn desired(&self, pod: &Pod) -> Result<Vec<DesiredPort>, PodError> {
        self.desired_in(pod, &self.nb.view(), &mut Claims::new())
    }

    /// The desired ports against `view`, persistent-IP ports given their addresses (`claims`
    /// carries what earlier plans of a batch took).
    fn desired_in(&self, pod: &Pod, view: &NbView, claims: &mut Claims) -> Result<Vec<DesiredPort>, PodError> {
        let mut want = desired_with_claims(pod, self.nads.as_ref(), self.claims.as_ref(), view)?;
        for d in &mut want {
            d.policy_groups = self.policies.policy_groups(pod, &d.switch_name);
        }
        allocate(view, claims, &mut want)?;
        Ok(want)
    }

    /// Brings one pod's ports to the desired state in at most one transaction (none when
    /// nothing changes), then waits until the replica shows the result.
    ///
    /// Fixed addresses are checked against the replica and the check travels with the write
    /// (the plan's guards): when another port was added to a switch meanwhile, the transaction
    /// fails as a whole and the pod is planned again against the newer contents, up to
    /// [`ADDRESS_ATTEMPTS`] times.
    pub async fn reconcile_pod(&self, pod: &Pod) -> Result<Reconciled, PodError> {
        let pod_ref = PodRef::of(pod).ok_or(PodError::NoIdentity)?;
        let mut attempt = 0;
        let (p, want) = loop {
            attempt += 1;
            let view = self.nb.view();
            let mut claims = Claims::new();
            let want = self.desired_in(pod, &view, &mut claims)?;
            let p = plan(&view, &pod_ref, &want, &mut claims)?;
            match self.commit(std::slice::from_ref(&p)).await {
                Err(PodError::Ovsdb(e)) if ovn::nb::is_guard_failure(&e) && attempt < ADDRESS_ATTEMPTS => {
                    tracing::info!(pod = %pod_ref, attempt, "a switch changed since the address check; planning again");
                    self.wait_guards_visible(&p.guards).await;
                }
                r => {
                    r?;
                    break (p, want);
                }
            }
        };
        if !p.changes.is_empty() {
            tracing::info!(pod = %pod_ref, created = ?p.changes.created, updated = ?p.changes.updated,
                adopted = ?p.changes.adopted, removed = ?p.changes.removed, replaced = ?p.changes.replaced, "reconciled pod");
            self.wait_applied(&p, &want).await?;
        }
        Ok(Reconciled { pod: pod_ref, desired: want, changes: p.changes })
    }

    /// Removes every port the controller made for the pod with this UID (pod deleted or
    /// finished), in one transaction.
    pub async fn delete_pod(&self, pod: &PodRef) -> Result<Changes, PodError> {
        let view = self.nb.view();
        let p = plan(&view, pod, &[], &mut Claims::new())?;
        self.commit(std::slice::from_ref(&p)).await?;
        if !p.changes.is_empty() {
            tracing::info!(pod = %pod, removed = ?p.changes.removed, "removed ports of deleted pod");
            self.wait_applied(&p, &[]).await?;
        }
        Ok(p.changes)
    }

    /// Reconciles many pods against one snapshot, `per_txn` pods per transaction (each pod's
    /// operations stay whole inside one transaction, so each pod is still all-or-nothing).
    /// When a batched transaction fails, its pods are retried one per transaction so that one
    /// bad pod cannot hold back the others. Waits until the replica shows every write.
    pub async fn reconcile_batch(&self, pods: &[Pod], per_txn: usize) -> Vec<(Option<PodRef>, Result<Reconciled, PodError>)> {
        let view = self.nb.view();
        let mut claims = Claims::new();
        let mut out = Vec::with_capacity(pods.len());
        let mut plans: Vec<(usize, PodPlan, Vec<DesiredPort>)> = Vec::new();
        for (i, pod) in pods.iter().enumerate() {
            let r = PodRef::of(pod).ok_or(PodError::NoIdentity).and_then(|pr| {
                let want = self.desired_in(pod, &view, &mut claims)?;
                let p = plan(&view, &pr, &want, &mut claims)?;
                Ok((p, want))
            });
            match r {
                Ok((p, want)) => {
                    out.push((
                        Some(p.pod.clone()),
                        Ok(Reconciled { pod: p.pod.clone(), desired: want.clone(), changes: p.changes.clone() }),
                    ));
                    if !p.ops.is_empty() {
                        plans.push((i, p, want));
                    }
                }
                Err(e) => out.push((PodRef::of(pod), Err(e))),
            }
        }
        let mut replan: Vec<usize> = Vec::new();
        for chunk in plans.chunks(per_txn.max(1)) {
            let ps: Vec<PodPlan> = chunk.iter().map(|(_, p, _)| p.clone()).collect();
            if let Err(e) = self.commit(&ps).await {
                if matches!(&e, PodError::Ovsdb(o) if ovn::nb::is_guard_failure(o)) {
                    // A switch changed since the snapshot: these pods are planned again, one by
                    // one, against the newer contents.
                    replan.extend(chunk.iter().map(|(i, _, _)| *i));
                    continue;
                }
                if chunk.len() == 1 {
                    out[chunk[0].0].1 = Err(e);
                    continue;
                }
                tracing::warn!(pods = chunk.len(), "batched transaction failed ({e}); retrying one pod per transaction");
                for (i, p, _) in chunk {
                    if let Err(e) = self.commit(std::slice::from_ref(p)).await {
                        out[*i].1 = Err(e);
                    }
                }
            }
        }
        if !replan.is_empty() {
            tracing::info!(pods = replan.len(), "a switch changed since the address check; planning these pods again");
            if let Some(g) = plans.iter().find(|(i, _, _)| replan.contains(i)).map(|(_, p, _)| p.guards.clone()) {
                self.wait_guards_visible(&g).await;
            }
        }
        for i in &replan {
            out[*i].1 = self.reconcile_pod(&pods[*i]).await;
        }
        // Wait for the replica to show the last writes.
        let last: Vec<&(usize, PodPlan, Vec<DesiredPort>)> =
            plans.iter().filter(|(i, _, _)| out[*i].1.is_ok() && !replan.contains(i)).collect();
        if let Some((_, p, want)) = last.last() {
            if let Err(e) = self.wait_applied(p, want).await {
                tracing::warn!("replica did not catch up after batch: {e}");
            }
        }
        out
    }

    /// Sends the plans as one transaction, their address guards first (the plans of one batch
    /// share one snapshot, so one guard per switch covers them all).
    async fn commit(&self, plans: &[PodPlan]) -> Result<(), PodError> {
        let body: Vec<_> = plans.iter().flat_map(|p| p.ops.iter().cloned()).collect();
        if body.is_empty() {
            return Ok(());
        }
        let mut guards: Vec<&reconcile::Guard> = Vec::new();
        for g in plans.iter().filter(|p| !p.ops.is_empty()).flat_map(|p| &p.guards) {
            if !guards.iter().any(|h| h.switch == g.switch) {
                guards.push(g);
            }
        }
        let mut ops: Vec<_> = guards.iter().flat_map(|g| g.ops()).collect();
        ops.extend(body);
        if !self.is_leader() {
            return Err(PodError::NotLeader);
        }
        self.nb.transact(ops).await?;
        Ok(())
    }

    /// After a failed guard: waits (bounded) until the replica shows what changed, so that the
    /// next plan sees it.
    async fn wait_guards_visible(&self, guards: &[reconcile::Guard]) {
        let changed = |s: &ovsdb::replica::Snapshot| {
            let v = NbView(s.clone());
            guards.iter().any(|g| g.changed_in(&v))
        };
        let _ = self.nb.replica().wait_until(GUARD_CATCH_UP, changed).await;
    }

    /// Waits until the replica shows `p` applied: desired ports on their switches with the
    /// desired addresses, removed ports gone.
    async fn wait_applied(&self, p: &PodPlan, want: &[DesiredPort]) -> Result<(), PodError> {
        let removed: HashSet<&str> = p.changes.removed.iter().map(String::as_str).collect();
        let done = |s: &ovsdb::replica::Snapshot| {
            let v = NbView(s.clone());
            want.iter().all(|d| {
                v.port_by_name(&d.name)
                    .is_some_and(|(u, r)| v.switch_has_port(&d.switch, &u) && ovn::columns::string_set(&r, "addresses") == d.addresses())
            }) && removed.iter().all(|n| v.port_by_name(n).is_none())
        };
        self.nb.replica().wait_until(ECHO_TIMEOUT, done).await?;
        Ok(())
    }

    /// The annotation values of pod `pod` now (no waiting).
    pub fn status(&self, pod: &PodRef, desired: &[DesiredPort]) -> PodStatus {
        status::pod_status(&self.nb.view(), &pod.uid, desired)
    }

    /// Waits up to `timeout` until every port's addresses are known (northd allocated the
    /// dynamic ones), then returns the status; `interfaces` stays `None` on timeout.
    pub async fn wait_status(&self, pod: &PodRef, desired: &[DesiredPort], timeout: Duration) -> PodStatus {
        let ready = |s: &ovsdb::replica::Snapshot| status::pod_status(&NbView(s.clone()), &pod.uid, desired).interfaces.is_some();
        match self.nb.replica().wait_until(timeout, ready).await {
            Ok(s) => status::pod_status(&NbView(s), &pod.uid, desired),
            Err(_) => self.status(pod, desired),
        }
    }

    /// Garbage-collects ports of pods not in `live` (needs the complete pod UID set): the
    /// controller's at once, CNI-made ones with a pod identity from their second sighting after
    /// the grace period (see [`gc`]).
    pub async fn gc(&self, live: &HashSet<String>) -> Result<Vec<gc::Orphan>, PodError> {
        if !self.is_leader() {
            return Err(PodError::NotLeader);
        }
        Ok(gc::gc(&self.nb, &self.collector, live).await?)
    }

    /// [`Controller::gc`], and persistent-IP ports whose IPAMClaim UID is not in `live_claims`
    /// (the complete set from a synced claim list; `None`: not known, such ports are kept).
    pub async fn gc_with_claims(&self, live: &HashSet<String>, live_claims: Option<&HashSet<String>>) -> Result<Vec<gc::Orphan>, PodError> {
        if !self.is_leader() {
            return Err(PodError::NotLeader);
        }
        Ok(gc::gc_with_claims(&self.nb, &self.collector, live, live_claims).await?)
    }

    /// Removes the persistent-IP port of IPAMClaim `namespace/name` with UID `uid` (the claim was
    /// deleted): its addresses are free again. A port of another claim of that name (made again,
    /// another UID) is left alone. Returns whether a port was removed.
    pub async fn delete_claim(&self, namespace: &str, name: &str, uid: &str) -> Result<bool, PodError> {
        if !self.is_leader() {
            return Err(PodError::NotLeader);
        }
        let port = model::names::claim_port(namespace, name);
        let view = self.nb.view();
        let Some((u, row)) = view.port_by_name(&port) else { return Ok(false) };
        if row.map_str("external_ids", ovn::names::OWNER) != Some(ovn::names::OWNER_CONTROLLER)
            || row.map_str("external_ids", ovn::names::IPAMCLAIM_UID) != Some(uid)
        {
            return Ok(false);
        }
        self.nb
            .transact(vec![reconcile::detach(u), ovsdb::ops::Operation::comment(format!("kubetron: IPAMClaim {namespace}/{name} deleted"))])
            .await?;
        let gone = |s: &ovsdb::replica::Snapshot| NbView(s.clone()).port_by_name(&port).is_none();
        self.nb.replica().wait_until(ECHO_TIMEOUT, gone).await?;
        tracing::info!(port = %port, "removed the port of a deleted IPAMClaim");
        Ok(true)
    }
}
