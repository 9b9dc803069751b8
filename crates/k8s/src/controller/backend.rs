//! The seam between the Kubernetes side of the controller ([`super::runner`]) and where a pod's
//! attachments live: the OVN Northbound database ([`OvnBackend`], kubetron's own ports) or
//! OpenStack Neutron ([`super::neutron::NeutronBackend`], Neutron's ports through its API).
//!
//! The runner (watches, debounce, retries, Events, status annotations, leadership, GC timing) is
//! the same for both and names neither: it sees [`Backend`] and the [`Report`] of a reconcile,
//! whose types are kubetron's own (hand-off, network-status), never NB rows or Neutron JSON.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use tokio::sync::watch;

use super::batcher::Batcher;
use super::desired::{ClaimBinding, PodRef};
use super::{Controller, Nb, PodError, PodStatus};
use crate::ipamclaim::IPAMClaim;
use crate::nad::NetworkAttachmentDefinition;

/// What one reconcile of a pod leaves for the runner to write.
#[derive(Debug, Clone)]
pub struct Report {
    pub pod: PodRef,
    /// The annotation values known now (`None` entries: not yet; the pod is reconciled again
    /// when [`Backend::changes`] ticks).
    pub status: PodStatus,
    /// The interfaces the pod asked for (kubetron's entries of `network-status`).
    pub interfaces: BTreeSet<String>,
    /// The Normal Event to emit, if this reconcile made something: reason and message.
    pub created: Option<(&'static str, String)>,
    /// IPAMClaims whose `status.ips` / `status.ownerPod` should be written, with the addresses.
    pub claims: Vec<(ClaimBinding, Vec<String>)>,
}

/// The caches the runner keeps, for a backend to read.
#[derive(Clone)]
pub struct Stores {
    pub nads: Store<NetworkAttachmentDefinition>,
    pub pods: Store<Pod>,
    pub claims: Store<IPAMClaim>,
    pub namespaces: Store<k8s_openapi::api::core::v1::Namespace>,
}

/// Where attachments are made. Every write happens only while [`Backend::is_leader`].
pub trait Backend: Send + Sync + 'static {
    /// Whether this controller is the leader (writes nothing otherwise).
    fn is_leader(&self) -> bool;
    /// Brings the pod's attachments to what it asks for (made, fixed, extra ones removed; none
    /// for a pod that is not scheduled or has finished), then reports their state. Idempotent.
    fn reconcile(&self, pod: &Pod) -> impl Future<Output = Result<Report, PodError>> + Send;
    /// Removes every attachment of the deleted pod `pod`.
    fn delete_pod(&self, pod: &PodRef) -> impl Future<Output = Result<(), PodError>> + Send;
    /// The IPAMClaim `namespace/name` with UID `uid` was deleted: frees what it held. Whether
    /// something was removed.
    fn delete_claim(&self, namespace: &str, name: &str, uid: &str) -> impl Future<Output = Result<bool, PodError>> + Send;
    /// Removes attachments of pods not in `live` (the complete set of active pod UIDs), and of
    /// claims not in `live_claims` (`None`: the claim list is not complete, keep them). How many
    /// were removed.
    fn gc(&self, live: &HashSet<String>, live_claims: Option<&HashSet<String>>) -> impl Future<Output = Result<usize, PodError>> + Send;
    /// Ticks when the state of attachments may have changed (an address allocated, a port up):
    /// the runner then reconciles the pods whose status was incomplete.
    fn changes(&self) -> BoxStream<'static, ()>;
}

/// The `ovn` backend: kubetron's own logical switch ports in the Northbound database
/// ([`Controller`]), pods reconciled in batches ([`Batcher`]).
pub struct OvnBackend {
    ctl: Controller,
    batcher: Batcher,
    batching: tokio::task::JoinHandle<()>,
}

impl Drop for OvnBackend {
    fn drop(&mut self) {
        self.batching.abort();
    }
}

impl OvnBackend {
    /// The backend over `nb`, reading NADs, IPAMClaims and launcher pods from `stores`, and the
    /// MultiNetworkPolicies from `policies` (new ports join their groups at once);
    /// reconciles arriving within `batch_window` share a snapshot and transactions.
    pub fn new(
        nb: Nb,
        stores: &Stores,
        leader: watch::Receiver<bool>,
        vm_migration: model::kubevirt::MigrationMode,
        batch_window: Duration,
        policies: Option<Store<crate::mnp::MultiNetworkPolicy>>,
    ) -> OvnBackend {
        let claims = StoreClaims { claims: stores.claims.clone(), pods: stores.pods.clone(), migration: vm_migration };
        let mut ctl = Controller::new(nb, Arc::new(stores.nads.clone())).with_claims(Arc::new(claims)).with_leadership(leader);
        if let Some(policies) = policies {
            ctl = ctl.with_policies(Arc::new(super::policy_runner::StorePolicies { policies, nads: stores.nads.clone() }));
        }
        let (batcher, batching) = Batcher::start(ctl.clone(), batch_window);
        OvnBackend { ctl, batcher, batching }
    }

    pub fn controller(&self) -> &Controller {
        &self.ctl
    }
}

impl Backend for OvnBackend {
    fn is_leader(&self) -> bool {
        self.ctl.is_leader()
    }

    async fn reconcile(&self, pod: &Pod) -> Result<Report, PodError> {
        let rec = self.batcher.reconcile(pod).await?;
        let status = self.ctl.status(&rec.pod, &rec.desired);
        let claims = match &status.interfaces {
            Some(h) => {
                super::status::claim_status_updates(&rec.desired, h, &rec.pod.name).into_iter().map(|(c, ips)| (c.clone(), ips)).collect()
            }
            None => Vec::new(),
        };
        let created = (!rec.changes.created.is_empty())
            .then(|| ("LogicalPortsCreated", format!("created OVN logical switch ports {}", rec.changes.created.join(", "))));
        Ok(Report { interfaces: rec.desired.iter().map(|d| d.interface.clone()).collect(), pod: rec.pod, status, created, claims })
    }

    async fn delete_pod(&self, pod: &PodRef) -> Result<(), PodError> {
        self.ctl.delete_pod(pod).await.map(|_| ())
    }

    async fn delete_claim(&self, namespace: &str, name: &str, uid: &str) -> Result<bool, PodError> {
        self.ctl.delete_claim(namespace, name, uid).await
    }

    async fn gc(&self, live: &HashSet<String>, live_claims: Option<&HashSet<String>>) -> Result<usize, PodError> {
        self.ctl.gc_with_claims(live, live_claims).await.map(|removed| removed.len())
    }

    fn changes(&self) -> BoxStream<'static, ()> {
        let snaps = self.ctl.nb().replica().subscribe();
        futures::stream::unfold(snaps, |mut snaps| async move { snaps.changed().await.ok().map(|_| ((), snaps)) }).boxed()
    }
}

/// The OVN backend's [`super::ClaimLookup`]: the claim reflector, and the pod reflector for living VMs.
struct StoreClaims {
    claims: Store<IPAMClaim>,
    pods: Store<Pod>,
    migration: model::kubevirt::MigrationMode,
}

impl super::ClaimLookup for StoreClaims {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<IPAMClaim>> {
        self.claims.get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
    }
    fn vm_is_living(&self, namespace: &str, vm: &str) -> bool {
        self.pods.state().iter().any(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && super::vm::is_living(p)
                && super::desired::pod_is_active(p)
                && PodRef::of(p).is_some_and(|r| super::VmIdentity::of(p, &r).name == vm)
        })
    }
    fn chassis_options(&self, pod: &Pod) -> Option<model::kubevirt::ChassisOptions> {
        super::vm::chassis_options(&self.pods.state(), pod, self.migration)
    }
}

/// [`super::runner::run`] with the `ovn` backend over `nb`, and (unless `cfg.policies` is off)
/// the MultiNetworkPolicy runner ([`super::policy_runner::run`]) over the same `nb`.
pub async fn run_ovn<W: super::events::PodWriter + 'static>(
    client: kube::Client,
    nb: Nb,
    writer: W,
    leader: watch::Receiver<bool>,
    cfg: super::runner::RunnerConfig,
) {
    let (migration, window, l) = (cfg.vm_migration, cfg.batch_window, leader.clone());
    // One policy reflector: the policy runner's, read by the pod side too (new ports join their
    // policy groups as they are made).
    let (mnps, mnp_writer) = kube::runtime::reflector::store();
    let read = cfg.policies.then(|| mnps.clone());
    let policies = cfg.policies.then(|| {
        super::policy_runner::run(
            client.clone(),
            nb.clone(),
            leader.clone(),
            super::events::COMPONENT,
            Default::default(),
            (mnps, mnp_writer),
        )
    });
    let pods = super::runner::run(client, move |stores| OvnBackend::new(nb, stores, l, migration, window, read), writer, leader, cfg);
    match policies {
        Some(policies) => {
            tokio::select! {
                _ = pods => {}
                _ = policies => tracing::warn!("the MultiNetworkPolicy runner ended"),
            }
        }
        None => pods.await,
    }
}
