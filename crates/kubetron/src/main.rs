//! The `kubetron` binary: thin subcommands around the library crates. Run with `CNI_COMMAND` in its
//! environment (as a container runtime or Multus runs a plugin), it is the kubetron CNI plugin.

use std::path::PathBuf;

mod controller;
mod install_cni_args;
mod nb_args;
mod neutron_args;
mod webhook_args;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// mimalloc, not glibc's malloc: the controller keeps a replica of the Northbound tables it
/// reads (~400 MB at 100,000 ports), and in a heap that size glibc's malloc made the controller's
/// own work per pod three times slower than in an empty NB (`bench/controller`, `plan_us` and
/// `cpu_ctl_s`); with mimalloc it stays flat. `bench_controller` runs the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kubetron", version, about = "OVN multi-network plugin for Kubernetes", after_help = ENVIRONMENT)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Act as the CNI plugin (the same as running with CNI_COMMAND set).
    Cni,
    /// The controller: pods' network requests -> OVN logical switch ports, pod annotations,
    /// events, garbage collection; replicas elect a leader on a Lease.
    Controller(Box<controller::ControllerArgs>),
    /// The admission webhook: validates pods' network requests, injects NETWORK_INTERFACE_<NET>
    /// variables and physical-network resource requests (HTTPS, AdmissionReview v1).
    Webhook(webhook_args::WebhookArgs),
    /// The node agent: the CNI server of cluster and chained modes (the kubetron-cni shim's
    /// requests, answered from this node's pods and the local Open_vSwitch database, with no
    /// Northbound connection), and a kubelet device plugin advertising `kubetron.io/<network>` for
    /// every physical network in this node's `ovn-bridge-mappings`.
    Node(NodeArgs),
    /// On a node: remove kubetron CNI attachments whose pod network namespace no longer exists
    /// (bridge ports, host veths, and the logical switch ports the CNI plugin made for them here),
    /// e.g. those of pods force-deleted while the Northbound database was down. Prints what it removed.
    Gc(GcArgs),
    /// On a node (the DaemonSet's init container): install the kubetron-cni shim as <bin-dir>/kubetron and
    /// chain kubetron (mode chained) after the cluster's default plugin in the container runtime's primary
    /// network configuration; --uninstall removes both, --watch keeps them installed.
    InstallCni(install_cni_args::InstallCniArgs),
}

#[derive(clap::Args)]
struct NodeArgs {
    /// The node's Open_vSwitch database.
    #[arg(long, env = "KUBETRON_OVS_REMOTE", default_value = "unix:/var/run/openvswitch/db.sock")]
    ovs_remote: String,
    /// The kubelet's device plugin directory (holds kubelet.sock).
    #[arg(long, env = "KUBETRON_DEVICE_PLUGIN_DIR", default_value = "/var/lib/kubelet/device-plugins")]
    device_plugin_dir: PathBuf,
    /// How many pods per node may attach to each physical network.
    #[arg(long, env = "KUBETRON_PHYSNET_CAPACITY", default_value_t = 100)]
    capacity: usize,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "KUBETRON_METRICS_ADDR", default_value = "0.0.0.0:9102")]
    metrics_addr: std::net::SocketAddr,
    /// This node's name (the downward API's spec.nodeName): serves CNI for the pods scheduled
    /// here. Without it the agent is only the device plugin.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Directory of the CNI server's socket (re-made, root only, at start).
    #[arg(long, env = "KUBETRON_CNI_SOCKET_DIR", default_value = node::attach::DEFAULT_SOCKET_DIR)]
    cni_socket_dir: PathBuf,
    /// The integration bridge pods are plugged into.
    #[arg(long, env = "KUBETRON_BRIDGE", default_value = model::netconf::DEFAULT_BRIDGE)]
    bridge: String,
    /// CNI requests plugging (netlink and the OVS transaction) at once; waiting requests hold nothing.
    #[arg(long, env = "KUBETRON_CNI_PLUG_CONCURRENCY", default_value_t = 8)]
    cni_plug_concurrency: usize,
    /// CNI requests served at once; beyond, a request is answered "try again later" at once.
    #[arg(long, env = "KUBETRON_CNI_MAX_REQUESTS", default_value_t = 1024)]
    cni_max_requests: usize,
    /// Network namespace (a path) where host veth ends are made, instead of the agent's own (tests
    /// run one agent per chassis namespace).
    #[arg(long, hide = true)]
    host_netns: Option<PathBuf>,
    /// The cluster's hand-off key: a file of at least 16 random bytes (deploy/ mounts the optional
    /// Secret kubetron-handoff-key). With it the agent also plugs ports the controller signed for a
    /// pod (a backend's own port IDs); a path that does not exist means no key.
    #[arg(long, env = "KUBETRON_HANDOFF_KEY_FILE")]
    handoff_key_file: Option<PathBuf>,
}

#[derive(clap::Args)]
struct GcArgs {
    #[command(flatten)]
    nb: nb_args::NbArgs,
    /// This node's Open_vSwitch database.
    #[arg(long, env = "KUBETRON_OVS_REMOTE", default_value = model::netconf::DEFAULT_OVS_SOCKET)]
    ovs: String,
    /// Only attachments of this CNI network (the network configuration's `name`).
    #[arg(long)]
    network: Option<String>,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Environment variables every subcommand reads (besides the `[env: ...]` of each option).
const ENVIRONMENT: &str = "Environment:
  KUBETRON_LOG  log filter (tracing EnvFilter syntax, e.g. debug or k8s=debug,info; default info, warn for the CNI plugin)
  KUBECONFIG    kubeconfig of controller and webhook (default: ~/.kube/config, else the in-cluster service account)
  CNI_COMMAND   set: run as the CNI plugin (CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH as the CNI spec says)";

fn init_logging(default: &str) {
    telemetry::init_logging(default);
}

/// A multi-threaded runtime running `f` with the process's shutdown signal (SIGTERM or SIGINT),
/// installed before anything else happens.
fn run_until_signal<F, Fut, T>(f: F) -> anyhow::Result<T>
where
    F: FnOnce(telemetry::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    tokio::runtime::Runtime::new()?.block_on(async {
        let shutdown = telemetry::shutdown_on_signals().context("installing the SIGTERM/SIGINT handlers")?;
        f(shutdown).await
    })
}

/// The CNI plugin by the config's `mode`: `standalone` (or `nb` without `mode`) is the direct path,
/// `cluster` and `chained` forward to the node agent (`cni::shim`).
fn run_cni() -> ! {
    init_logging("warn");
    std::process::exit(cni::run_process(&standalone::ByMode::default()))
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os("CNI_COMMAND").is_some() {
        run_cni();
    }
    let cli = Cli::parse();
    match cli.command {
        Cmd::Cni => run_cni(),
        Cmd::Controller(a) => {
            init_logging("info");
            run_until_signal(|stop| controller::main(*a, stop))?;
        }
        Cmd::Webhook(args) => {
            init_logging("info");
            run_until_signal(|stop| async move { k8s::webhook::run(args.settings(), stop.cancelled_owned()).await.context("webhook") })?;
        }
        Cmd::Node(a) => {
            init_logging("info");
            let cfg = node::NodeConfig::default().ovs_remote(&a.ovs_remote).device_plugin_dir(&a.device_plugin_dir).capacity(a.capacity);
            let t = telemetry::Telemetry::new();
            t.registry
                .gauge("kubetron_node_agent_info", "The node agent runs (value 1).", &[("version", env!("CARGO_PKG_VERSION"))])
                .set(1);
            run_until_signal(|stop| async move {
                let endpoint = tokio::spawn(telemetry::serve(a.metrics_addr, t.clone(), None, stop.clone().cancelled_owned()));
                let cni_server = match &a.node_name {
                    Some(node_name) => {
                        let mut c = node::attach::AttachConfig::new(node_name);
                        c.socket_dir = a.cni_socket_dir.clone();
                        c.ovs_remote = a.ovs_remote.clone();
                        c.bridge = a.bridge.clone();
                        c.plug_concurrency = a.cni_plug_concurrency;
                        c.max_requests = a.cni_max_requests;
                        c.host_netns = a.host_netns.clone();
                        if let Some(path) = &a.handoff_key_file {
                            c.handoff_key = node::attach::read_handoff_key(path)?;
                            if c.handoff_key.is_none() {
                                tracing::info!(path = %path.display(), "no hand-off key: only ports named after a pod or its IPAMClaim are plugged");
                            }
                        }
                        let client = kube::Client::try_default().await.context("kube client (KUBECONFIG or in-cluster)")?;
                        let stop = stop.clone();
                        // A CNI server that cannot run (socket directory, OVS remote) stops the agent.
                        Some(tokio::spawn(async move {
                            let r = node::attach::serve(c, client, stop.clone()).await;
                            if r.is_err() {
                                stop.cancel();
                            }
                            r
                        }))
                    }
                    None => {
                        tracing::warn!("no --node-name (NODE_NAME): the CNI server is off, only the device plugin runs");
                        None
                    }
                };
                t.set_ready(true);
                let r = node::run_until(cfg, stop.clone()).await;
                stop.cancel();
                let cni = match cni_server {
                    Some(h) => h.await.context("CNI server task")?,
                    None => Ok(()),
                };
                let _ = endpoint.await;
                r.context("node agent")?;
                cni.context("CNI server")
            })?;
        }
        Cmd::InstallCni(a) => {
            init_logging("info");
            install_cni_args::main(a)?;
        }
        Cmd::Gc(a) => {
            init_logging("warn");
            let mut opts = standalone::NodeGc::new(a.nb.remote()?, &a.ovs);
            opts.network = a.network;
            opts.dry_run = a.dry_run;
            opts.nb_tls = a.nb.tls();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let removed = rt.block_on(standalone::node_gc(&opts)).map_err(|e| anyhow::anyhow!("gc: {}", e.msg))?;
            let verb = if a.dry_run { "would remove" } else { "removed" };
            for r in &removed {
                println!("{verb} {r}");
            }
            println!("{} attachment(s) {verb}", removed.len());
        }
    }
    Ok(())
}
