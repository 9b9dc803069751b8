//! `kubetron controller`: pods and NetworkAttachmentDefinitions -> OVN Northbound rows, with leader
//! election on a Lease, garbage collection, and a telemetry endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s::controller::events::KubePodWriter;
use k8s::controller::lease::{LeaderElector, LeaseConfig};
use k8s::controller::nb::Nb;
use k8s::controller::runner::{run, RunnerConfig};

#[derive(clap::Args)]
pub struct ControllerArgs {
    /// The OVN Northbound database (`unix:`, `tcp:`, `ssl:`; comma-separated for a cluster).
    #[arg(long, env = "KUBETRON_OVN_NB")]
    nb: String,
    /// Private key, certificate and CA certificate for `ssl:` remotes (PEM files).
    #[arg(long, env = "KUBETRON_OVN_NB_KEY", requires_all = ["nb_cert", "nb_ca"])]
    nb_key: Option<PathBuf>,
    #[arg(long, env = "KUBETRON_OVN_NB_CERT")]
    nb_cert: Option<PathBuf>,
    #[arg(long, env = "KUBETRON_OVN_NB_CA")]
    nb_ca: Option<PathBuf>,
    /// Namespace and name of the coordination.k8s.io Lease the replicas elect a leader with.
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
    /// Do not mirror marked logical switches (`external_ids:kubetron.io/namespaces`) into NADs.
    #[arg(long)]
    no_nad_sync: bool,
    /// The Northbound remote written into synced NADs for the CNI plugin on the nodes (default: --nb).
    #[arg(long, env = "KUBETRON_NAD_NB")]
    nad_nb: Option<String>,
    /// How often the NAD sync re-checks everything (hand edits, new namespaces for `*`).
    #[arg(long, default_value = "60")]
    nad_resync_secs: u64,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "kubetron".into())
}

pub async fn main(a: ControllerArgs) -> anyhow::Result<()> {
    let identity = a.identity.clone().unwrap_or_else(hostname);
    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")?;
    let mut cfg = ovsdb::ClientConfig::new(&a.nb).context("--nb")?.database(ovn::nb::DB);
    if let (Some(k), Some(c), Some(ca)) = (&a.nb_key, &a.nb_cert, &a.nb_ca) {
        cfg = cfg.tls(ovsdb::TlsConfig::new(k, c, ca));
    }
    let ovsdb = ovsdb::Client::connect(cfg).await.with_context(|| format!("connecting to the Northbound database {}", a.nb))?;
    let nb = Nb::start(ovsdb).await.context("loading the Northbound database")?;

    let elector = LeaderElector::new(client.clone(), LeaseConfig::new(&a.lease_namespace, &a.lease_name, &identity));
    let leader = elector.subscribe();
    tokio::spawn(elector.run());

    let t = telemetry::Telemetry::new();
    let leading = t.registry.gauge("kubetron_controller_leader", "1 while this replica holds the Lease.", &[]);
    let txns = t.registry.gauge("kubetron_controller_nb_transactions", "Northbound transactions sent.", &[]);
    {
        let (t, nb, mut leader) = (t.clone(), nb.clone(), leader.clone());
        tokio::spawn(async move {
            loop {
                let l = *leader.borrow();
                leading.set(l as i64);
                t.set_ready(l);
                txns.set(nb.transactions() as i64);
                tokio::select! {
                    _ = leader.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        });
    }
    tokio::spawn(telemetry::serve(a.metrics_addr, t, None, std::future::pending()));

    tracing::info!(%identity, nb = %a.nb, "controller starting");
    let rcfg = RunnerConfig { gc_interval: Duration::from_secs(a.gc_interval_secs.max(1)), ..Default::default() };
    if !a.no_nad_sync {
        let settings = k8s::nadsync::SyncSettings::new(a.nad_nb.as_deref().unwrap_or(&a.nb));
        let resync = Duration::from_secs(a.nad_resync_secs.max(1));
        tokio::spawn(k8s::nadsync::run(client.clone(), nb.clone(), settings, leader.clone(), Duration::from_millis(200), resync));
    }
    let writer = KubePodWriter::new(client.clone(), identity);
    tokio::select! {
        _ = run(client, nb, writer, leader, rcfg) => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("controller stopping");
            Ok(())
        }
    }
}
