//! The `kubetron` binary: thin subcommands around the library crates. Run with `CNI_COMMAND` in its
//! environment (as a container runtime or Multus runs a plugin), it is the kubetron CNI plugin.

use std::path::PathBuf;

mod controller;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kubetron", version, about = "OVN multi-network plugin for Kubernetes")]
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
    Controller(controller::ControllerArgs),
    /// The admission webhook: validates pods' network requests, injects NETWORK_INTERFACE_<NET>
    /// variables and physical-network resource requests (HTTPS, AdmissionReview v1).
    Webhook(k8s::webhook::WebhookArgs),
    /// The node agent: a kubelet device plugin advertising `kubetron.io/<network>` for every
    /// physical network in this node's `ovn-bridge-mappings`.
    Node(NodeArgs),
    /// A local sandbox: real OVN, networks red and blue, pods plugged by this binary, traffic.
    Sandbox {
        #[command(subcommand)]
        action: SandboxCmd,
    },
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
}

#[derive(clap::Args, Clone)]
struct SandboxWhere {
    /// State directory of the sandbox.
    #[arg(long, env = "KUBETRON_SANDBOX_DIR", default_value = "/tmp/kubetron-sandbox")]
    dir: PathBuf,
}

#[derive(Subcommand)]
enum SandboxCmd {
    /// Start OVN, make the networks and pods, plug and ping (harmless when already up).
    Up {
        #[command(flatten)]
        at: SandboxWhere,
        /// Number of chassis (1 or 2); with 2, the pods sit on different chassis.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Prefix of the network namespaces the sandbox makes.
        #[arg(long, default_value = "kt-sbx")]
        prefix: String,
        /// Also run etcd + kube-apiserver and `kubetron controller`: the pods are Kubernetes pods
        /// that get their addresses from the controller (the first run builds kube-apiserver: minutes).
        #[arg(long)]
        with_kube: bool,
    },
    /// Stop every daemon by pid file and delete the namespaces and the state directory.
    Down {
        #[command(flatten)]
        at: SandboxWhere,
    },
    /// Show the daemons and the pods' interfaces.
    Status {
        #[command(flatten)]
        at: SandboxWhere,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBETRON_LOG").unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

fn run_cni() -> ! {
    init_logging("warn");
    std::process::exit(cni::run_process(&cni::KubetronPlugin::default()))
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
            tokio::runtime::Runtime::new()?.block_on(controller::main(a))?;
        }
        Cmd::Webhook(args) => {
            init_logging("info");
            tokio::runtime::Runtime::new()?.block_on(k8s::webhook::run(args)).context("webhook")?;
        }
        Cmd::Node(a) => {
            init_logging("info");
            let cfg = node::NodeConfig::default().ovs_remote(&a.ovs_remote).device_plugin_dir(&a.device_plugin_dir).capacity(a.capacity);
            let t = telemetry::Telemetry::new();
            t.registry
                .gauge("kubetron_node_agent_info", "The node agent runs (value 1).", &[("version", env!("CARGO_PKG_VERSION"))])
                .set(1);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let endpoint = tokio::spawn(telemetry::serve(a.metrics_addr, t.clone(), None, std::future::pending()));
                t.set_ready(true);
                let r = node::run(cfg).await;
                endpoint.abort();
                r
            })
            .context("node agent")?;
        }
        Cmd::Sandbox { action } => {
            init_logging("warn");
            match action {
                SandboxCmd::Up { at, nodes, prefix, with_kube } => {
                    let plugin = std::env::current_exe().context("finding the kubetron binary")?;
                    let opts = sandbox::Options::new(at.dir, &prefix, nodes, plugin).with_kube(with_kube);
                    sandbox::up(&opts).context("sandbox up")?;
                }
                SandboxCmd::Down { at } => {
                    sandbox::down(&at.dir).context("sandbox down")?;
                    println!("Sandbox in {} is down.", at.dir.display());
                }
                SandboxCmd::Status { at } => {
                    if !sandbox::status(&at.dir).context("sandbox status")? {
                        std::process::exit(3);
                    }
                }
            }
        }
    }
    Ok(())
}
