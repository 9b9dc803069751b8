//! NAD sync: logical switches an administrator marks in OVN appear as NetworkAttachmentDefinitions,
//! so networks made with `ovn-nbctl` or by an OVN manager show up in
//! `kubectl get network-attachment-definitions -A` without hand work.
//!
//! A switch is marked with `external_ids:kubetron.io/namespaces="ns1,ns2"` (or `"*"`: every
//! namespace); `external_ids:kubetron.io/nad-name` optionally names the NAD (default: the switch
//! name made a valid object name). A switch with a `localnet` port is a physical network: its NADs
//! carry `k8s.v1.cni.cncf.io/resourceName: kubetron.io/<options:network_name>`.
//!
//! - [`desired`]: the Northbound view -> the NADs that should exist (pure).
//! - [`neutron`]: the same from Neutron networks marked with tags (the Neutron backend).
//! - [`apply`]: makes the API match: creates, updates and deletes NADs that carry the sync label.
//! - [`run`]: re-syncs on every change of its [`Source`] (the Northbound replica, [`OvnSource`];
//!   Neutron's networks polled, [`NeutronSource`]: Neutron has no watch), on namespace and
//!   synced-NAD events (a new namespace for `*`, a synced NAD edited or deleted by hand), and
//!   periodically, while this replica leads.
//!
//! Reads OVN or Neutron, never writes them. Must not touch NADs without [`SYNCED_LABEL`] (hand-made ones win a
//! name clash; the clash is logged and reported).

mod apply;
mod desired;
pub mod neutron;

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::watch;

use crate::nad::NetworkAttachmentDefinition;

use crate::controller::Nb;
use crate::mirror::Mirror;

pub use apply::{apply, SyncReport};
pub use desired::{desired_nads, marked_switches, nad_name, MarkedSwitch, SyncSettings, Targets};

/// Label on every NAD the sync made (value [`SYNCED_VALUE`]); the sync owns exactly these.
pub const SYNCED_LABEL: &str = "kubetron.io/synced-from";
pub const SYNCED_VALUE: &str = "ovn";
/// [`SYNCED_LABEL`]'s value on NADs synced from Neutron networks.
pub const SYNCED_NEUTRON: &str = "neutron";
/// Annotation on a synced NAD naming its logical switch.
pub const SWITCH_ANNOTATION: &str = "kubetron.io/logical-switch";

/// Namespace names, for switches marked `*`.
async fn namespaces(client: &Client) -> Result<Vec<String>, kube::Error> {
    let list = Api::<Namespace>::all(client.clone()).list(&ListParams::default()).await?;
    Ok(list.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

/// Where marked networks come from.
pub trait Source: Send {
    /// The marked switches now.
    fn marked(&mut self) -> impl Future<Output = Result<Vec<MarkedSwitch>, String>> + Send;
    /// Resolves when the marked switches may have changed; `false`: they never will again.
    fn changed(&mut self) -> impl Future<Output = bool> + Send;
}

/// Logical switches marked in the Northbound database ([`marked_switches`]), re-read on every
/// replica change.
pub struct OvnSource {
    nb: Nb,
    changes: watch::Receiver<ovsdb::replica::Snapshot>,
}

impl OvnSource {
    pub fn new(nb: Nb) -> OvnSource {
        let changes = nb.replica().subscribe();
        OvnSource { nb, changes }
    }
}

impl Source for OvnSource {
    async fn marked(&mut self) -> Result<Vec<MarkedSwitch>, String> {
        Ok(marked_switches(&self.nb.view()))
    }
    async fn changed(&mut self) -> bool {
        self.changes.changed().await.is_ok()
    }
}

/// Neutron networks tagged for exposure ([`neutron::marked_networks`]), listed every `poll`.
pub struct NeutronSource {
    client: ::neutron::Client,
    poll: Duration,
}

impl NeutronSource {
    pub fn new(client: ::neutron::Client, poll: Duration) -> NeutronSource {
        NeutronSource { client, poll }
    }
}

impl Source for NeutronSource {
    async fn marked(&mut self) -> Result<Vec<MarkedSwitch>, String> {
        let networks = self.client.networks(neutron::EXPOSED_QUERY).await.map_err(|e| e.to_string())?;
        let ids: Vec<String> = networks.iter().map(|n| n.id.clone()).collect();
        let subnets = self.client.subnets_of(&ids).await.map_err(|e| e.to_string())?;
        Ok(neutron::marked_networks(&networks, &subnets))
    }
    async fn changed(&mut self) -> bool {
        tokio::time::sleep(self.poll).await;
        true
    }
}

/// One sync: the desired NADs from the current Northbound view, applied.
pub async fn sync_once(client: &Client, nb: &Nb, settings: &SyncSettings) -> Result<SyncReport, kube::Error> {
    sync_switches(client, &marked_switches(&nb.view()), settings).await
}

/// The NADs `switches` call for, applied.
pub async fn sync_switches(client: &Client, switches: &[MarkedSwitch], settings: &SyncSettings) -> Result<SyncReport, kube::Error> {
    let all = if switches.iter().any(|s| s.targets == Targets::All) { namespaces(client).await? } else { Vec::new() };
    apply(client, &desired_nads(switches, &all, settings)).await
}

/// Keeps NADs in sync with the marked switches of `source`: after every change it reports, every
/// namespace or synced-NAD event (coalesced over `debounce`), and every `resync`, while `leader`
/// is true. Failures are logged and retried at the next trigger.
pub async fn run<S: Source>(
    client: Client,
    mut source: S,
    settings: SyncSettings,
    mut leader: watch::Receiver<bool>,
    debounce: Duration,
    resync: Duration,
) {
    // Kubernetes events that call for a full sync; what they carry does not matter.
    let namespaces = watcher(Api::<Namespace>::all(client.clone()), watcher::Config::default()).default_backoff().map(|_| ());
    let synced = watcher(Api::<NetworkAttachmentDefinition>::all(client.clone()), watcher::Config::default().labels(SYNCED_LABEL))
        .default_backoff()
        .map(|_| ());
    let mut kube_events = futures::stream::select(namespaces, synced).boxed();
    let mut mirror = Mirror::new(resync, debounce.max(Duration::from_secs(1)));
    loop {
        match if *leader.borrow() { Some(source.marked().await) } else { None } {
            Some(Err(e)) => {
                tracing::warn!("NAD sync: reading the marked networks failed (retrying): {e}");
                mirror.failed();
            }
            Some(Ok(now)) if mirror.due(&now) => match sync_switches(&client, &now, &settings).await {
                Ok(r) => {
                    if !r.is_empty() {
                        tracing::info!(created = ?r.created, updated = ?r.updated, deleted = ?r.deleted, conflicts = ?r.conflicts, "NAD sync");
                    }
                    mirror.written(now);
                }
                Err(e) => {
                    tracing::warn!("NAD sync failed (retrying): {e}");
                    mirror.failed();
                }
            },
            Some(Ok(_)) => {}
            None => mirror.forget(),
        }
        let wait = mirror.wait();
        tokio::select! {
            more = source.changed() => {
                if !more {
                    return;
                }
                tokio::time::sleep(debounce).await;
            }
            e = kube_events.next() => {
                if e.is_none() {
                    return;
                }
                tokio::time::sleep(debounce).await;
                // Take what else arrived meanwhile, then sync everything.
                while futures::FutureExt::now_or_never(kube_events.next()).flatten().is_some() {}
                mirror.resync_now();
            }
            r = leader.changed() => {
                if r.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
