//! `kubetron controller`: pods and NetworkAttachmentDefinitions -> OVN Northbound rows (backend
//! `ovn`) or Neutron ports (backend `neutron`), with leader election on a Lease, garbage
//! collection, and a telemetry endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use k8s::controller::backend::run_ovn as run;
use k8s::controller::events::KubePodWriter;
use k8s::controller::lease::{LeaderElector, LeaseConfig};
use k8s::controller::nb::Nb;
use k8s::controller::neutron::{NeutronBackend, NeutronSettings};
use k8s::controller::runner::RunnerConfig;

/// Where the controller makes attachments.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Logical switch ports in the OVN Northbound database (`--nb`).
    Ovn,
    /// Ports made through OpenStack Neutron's API (`--neutron-url`); the Northbound database is
    /// never opened.
    Neutron,
}

#[derive(clap::Args)]
pub struct ControllerArgs {
    /// Where attachments are made.
    #[arg(long, env = "KUBETRON_BACKEND", value_enum, default_value = "ovn")]
    backend: BackendKind,
    #[command(flatten)]
    nb: crate::nb_args::NbArgs,
    #[command(flatten)]
    neutron: crate::neutron_args::NeutronArgs,
    /// kubetron's namespace: the coordination.k8s.io Lease the replicas elect a leader with (and
    /// its name, below), and the ConfigMap of offered security profiles (ovn backend).
    #[arg(long, env = "KUBETRON_NAMESPACE", default_value = "kubetron")]
    lease_namespace: String,
    #[arg(long, default_value = "kubetron-controller")]
    lease_name: String,
    /// This replica's identity in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How often ports of pods that no longer exist are collected.
    #[arg(long, default_value = "60")]
    gc_interval_secs: u64,
    /// Where to serve /metrics, /healthz and /readyz (ready = leading).
    #[arg(long, env = "KUBETRON_METRICS_ADDR", default_value = "0.0.0.0:9101")]
    metrics_addr: SocketAddr,
    /// Do not mirror marked logical switches (`external_ids:kubetron.io/namespaces`), or with the
    /// neutron backend Neutron networks tagged `kubetron:expose`, into NADs.
    #[arg(long)]
    no_nad_sync: bool,
    /// The neutron backend: how often Neutron's tagged networks are listed for the NAD sync
    /// (Neutron has no watch).
    #[arg(long, default_value = "10")]
    neutron_sync_interval_secs: u64,
    /// How often the NAD sync re-checks everything (hand edits, new namespaces for `*`).
    #[arg(long, default_value = "60")]
    nad_resync_secs: u64,
    /// The cluster default network's name (its conflist's `name`): when set, network-status gets
    /// that network's eth0 entry (the pod's IPs, "default": true) first, unless another writer
    /// (Multus) has one. For chained mode without Multus; empty: off.
    #[arg(long, env = "KUBETRON_DEFAULT_NETWORK_NAME", default_value = "")]
    default_network_name: String,
    /// How a VM's port (persistent IPs, IPAMClaim) follows a KubeVirt live migration: `rarp`
    /// binds it to the source and target nodes while both launcher pods live and lets OVN
    /// activate the target on the VM's first RARP there; `switch` moves it to the target when
    /// KubeVirt marks the target ready.
    #[arg(long, env = "KUBETRON_VM_MIGRATION", default_value = "rarp")]
    vm_migration: model::kubevirt::MigrationMode,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "kubetron".into())
}

/// Runs the controller until `shutdown` is cancelled (SIGTERM/SIGINT), then stops writing and
/// releases the Lease so that a standby replica takes over at once.
pub async fn main(a: ControllerArgs, shutdown: telemetry::CancellationToken) -> anyhow::Result<()> {
    // Startup (connecting to the API server and the Northbound database) may block on an
    // unreachable remote: a shutdown signal stops it too.
    let started = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = start(&a) => Some(r?),
    };
    let Some((client, store, identity)) = started else {
        tracing::info!("controller stopped before it started");
        return Ok(());
    };

    let elector = LeaderElector::new(client.clone(), LeaseConfig::new(&a.lease_namespace, &a.lease_name, &identity));
    let leader = elector.subscribe();
    // The elector runs until the writers below have stopped, then releases the Lease.
    let writers_stopped = telemetry::CancellationToken::new();
    let elector = tokio::spawn(elector.run_until(writers_stopped.clone().cancelled_owned()));

    let t = telemetry::Telemetry::new();
    let leading = t.registry.gauge("kubetron_controller_leader", "1 while this replica holds the Lease.", &[]);
    let txns = t.registry.gauge("kubetron_controller_nb_transactions", "Northbound transactions sent.", &[]);
    let gauges = {
        let (t, nb, mut leader) = (t.clone(), store.nb().cloned(), leader.clone());
        tokio::spawn(async move {
            loop {
                let l = *leader.borrow();
                leading.set(l as i64);
                t.set_ready(l);
                if let Some(nb) = &nb {
                    txns.set(nb.transactions() as i64);
                }
                tokio::select! {
                    _ = leader.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        })
    };
    let endpoint = tokio::spawn(telemetry::serve(a.metrics_addr, t, None, shutdown.clone().cancelled_owned()));

    tracing::info!(%identity, backend = ?a.backend, "controller starting");
    let default_network_name = Some(a.default_network_name.trim().to_string()).filter(|n| !n.is_empty());
    if let Some(name) = &default_network_name {
        tracing::info!(network = %name, "writing the cluster network's eth0 entry in network-status");
    }
    let rcfg = RunnerConfig {
        gc_interval: Duration::from_secs(a.gc_interval_secs.max(1)),
        default_network_name,
        vm_migration: a.vm_migration,
        ..Default::default()
    };
    let nadsync = match (&store, a.no_nad_sync) {
        (Store::Ovn(nb), false) => {
            let settings = k8s::nadsync::SyncSettings::new();
            let resync = Duration::from_secs(a.nad_resync_secs.max(1));
            let source = k8s::nadsync::OvnSource::new(nb.clone());
            Some(tokio::spawn(k8s::nadsync::run(client.clone(), source, settings, leader.clone(), Duration::from_millis(200), resync)))
        }
        (Store::Neutron(nc, _), false) => {
            let settings = k8s::nadsync::SyncSettings { source: k8s::nadsync::SYNCED_NEUTRON, ..Default::default() };
            let resync = Duration::from_secs(a.nad_resync_secs.max(1));
            let source = k8s::nadsync::NeutronSource::new(nc.clone(), Duration::from_secs(a.neutron_sync_interval_secs.max(1)));
            Some(tokio::spawn(k8s::nadsync::run(client.clone(), source, settings, leader.clone(), Duration::from_millis(200), resync)))
        }
        (_, true) => None,
    };
    // Offered security profiles, for the webhook (profiles are an OVN feature: not with Neutron).
    let profiles = store.nb().map(|nb| {
        let resync = Duration::from_secs(a.nad_resync_secs.max(1));
        let ns = a.lease_namespace.clone();
        tokio::spawn(k8s::profiles::run(client.clone(), nb.clone(), ns, leader.clone(), Duration::from_millis(200), resync))
    });
    let writer = KubePodWriter::new(client.clone(), identity);
    let runner = async {
        match store {
            Store::Ovn(nb) => run(client, nb, writer, leader, rcfg).await,
            Store::Neutron(nc, settings) => {
                let l = leader.clone();
                let make = move |stores: &k8s::controller::Stores| NeutronBackend::from_stores(nc, stores, l, settings);
                k8s::controller::runner::run(client, make, writer, leader, rcfg).await
            }
        }
    };
    tokio::select! {
        _ = runner => tracing::warn!("controller runner ended"),
        _ = shutdown.cancelled() => {}
    }
    tracing::info!("controller stopping");
    // Writers first (the runner was dropped above), then the Lease: whoever takes over never
    // overlaps with a write of ours.
    for n in [nadsync, profiles].into_iter().flatten() {
        n.abort();
        let _ = n.await;
    }
    writers_stopped.cancel();
    if tokio::time::timeout(Duration::from_secs(15), elector).await.is_err() {
        tracing::warn!("leader election did not stop in time");
    }
    gauges.abort();
    shutdown.cancel();
    let _ = endpoint.await;
    tracing::info!("controller stopped");
    Ok(())
}

/// What the backend writes to.
enum Store {
    Ovn(Nb),
    Neutron(neutron::Client, NeutronSettings),
}

impl Store {
    fn nb(&self) -> Option<&Nb> {
        match self {
            Store::Ovn(nb) => Some(nb),
            Store::Neutron(..) => None,
        }
    }
}

/// Connects to the API server and the backend's store (the Northbound database; for Neutron the
/// options are checked and the key read, the first request tells whether Neutron answers).
async fn start(a: &ControllerArgs) -> anyhow::Result<(kube::Client, Store, String)> {
    let identity = a.identity.clone().unwrap_or_else(hostname);
    if a.backend == BackendKind::Neutron {
        // Options first: a mistake is reported before any connection is tried.
        let (nc, settings) = a.neutron.build()?;
        let client = kube::Client::try_default().await.context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")?;
        return Ok((client, Store::Neutron(nc, settings), identity));
    }
    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")?;
    let remote = a.nb.remote()?;
    let mut cfg = ovsdb::ClientConfig::new(remote).context("--nb")?.database(ovn::nb::DB);
    if let Some(tls) = a.nb.tls() {
        cfg = cfg.tls(tls);
    }
    let ovsdb = ovsdb::Client::connect(cfg).await.with_context(|| format!("connecting to the Northbound database {remote}"))?;
    let nb = Nb::start(ovsdb).await.context("loading the Northbound database")?;
    Ok((client, Store::Ovn(nb), identity))
}
