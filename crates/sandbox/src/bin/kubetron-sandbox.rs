//! `kubetron-sandbox up|down|status`: the sandbox as a command (a developer tool, not a product
//! binary). It plugs pods with the `kubetron` binary and starts `kubetron controller` / `kubetron
//! node` from it: the one next to this executable unless `--kubetron` / `KUBETRON_BIN` names another.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kubetron-sandbox", version, about = "A local kubetron sandbox: real OVN, networks red and blue, pods, traffic")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Where {
    /// State directory of the sandbox.
    #[arg(long, env = "KUBETRON_SANDBOX_DIR", default_value = "/tmp/kubetron-sandbox")]
    dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start OVN, make the networks and pods, plug and ping (harmless when already up).
    Up {
        #[command(flatten)]
        at: Where,
        /// Number of chassis (1 or 2); with 2, the pods sit on different chassis.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Prefix of the network namespaces the sandbox makes.
        #[arg(long, default_value = "kt-sbx")]
        prefix: String,
        /// Also run etcd + kube-apiserver, `kubetron controller` and a `kubetron node` per chassis (cluster
        /// mode): the pods are Kubernetes pods, plugged by the kubetron-cni shim (built next to the kubetron
        /// binary) from the controller's hand-off (the first run builds kube-apiserver: minutes).
        #[arg(long)]
        with_kube: bool,
        /// Also a VM the way KubeVirt runs one: a launcher pod plugged on red and blue, KubeVirt's bridge
        /// binding, a qemu guest (TCG) that gets its addresses from OVN's DHCP and pings the pods; with
        /// `--nodes 2`, one live migration node1 -> node2 while pod1 pings it (needs qemu: installed when missing).
        #[arg(long)]
        vm: bool,
        /// The networks from a real neutron-server (Debian's, ML2/OVN, no Keystone, a private
        /// PostgreSQL): red and blue made with Neutron's API and tagged for the NAD sync, the
        /// controller with `--backend neutron`; implies --with-kube.
        #[arg(long)]
        neutron: bool,
        /// The kubetron binary (CNI plugin, controller, node agent); without it, the `kubetron` next to this executable.
        #[arg(long = "kubetron", env = "KUBETRON_BIN", value_name = "PATH")]
        kubetron: Option<PathBuf>,
    },
    /// kubetron installed into a real one-node cluster (kubelet, containerd, control plane built from
    /// Debian's kubernetes source: the first run builds them, ~15 min) with `kubectl apply -k`, and the
    /// demo: pods on red and blue, Running, pinging. Stays up until Ctrl-C, then puts the host back.
    Cluster {
        /// State directory.
        #[arg(long, env = "KUBETRON_SANDBOX_DIR", default_value = "/tmp/kubetron-cluster")]
        dir: PathBuf,
        /// Images index (`<tag> <archive>` lines from scripts/images.sh); without it the images are built.
        #[arg(long)]
        images: Option<PathBuf>,
        /// Tear down right after the demo instead of waiting for Ctrl-C.
        #[arg(long)]
        no_wait: bool,
    },
    /// Stop every daemon by pid file and delete the namespaces and the state directory.
    Down {
        #[command(flatten)]
        at: Where,
    },
    /// Show the daemons and the pods' interfaces (exit status 3 when the sandbox is not fully up).
    Status {
        #[command(flatten)]
        at: Where,
    },
}

fn init_logging() {
    telemetry::init_logging("warn");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Cmd::Up { at, nodes, prefix, with_kube, vm, neutron, kubetron } => {
            let exe = std::env::current_exe().context("finding the kubetron-sandbox executable")?;
            let plugin = sandbox::find_kubetron(kubetron.as_deref(), &exe)?;
            let opts = sandbox::Options::new(at.dir, &prefix, nodes, plugin).with_kube(with_kube).with_vm(vm).with_neutron(neutron);
            sandbox::up(&opts).context("sandbox up")?;
        }
        Cmd::Cluster { dir, images, no_wait } => cluster(dir, images, no_wait)?,
        Cmd::Down { at } => {
            sandbox::down(&at.dir).context("sandbox down")?;
            println!("Sandbox in {} is down.", at.dir.display());
        }
        Cmd::Status { at } => {
            if !sandbox::status(&at.dir).context("sandbox status")? {
                std::process::exit(3);
            }
        }
    }
    Ok(())
}

fn cluster(dir: PathBuf, images: Option<PathBuf>, no_wait: bool) -> anyhow::Result<()> {
    use sandbox::cluster::{ClusterOptions, ClusterSandbox, DEMO_PODS};
    println!("Starting a one-node cluster and OVN in {}, installing kubetron with kubectl apply -k ...", dir.display());
    let sb = ClusterSandbox::up(&ClusterOptions { dir, images_index: images }).context("cluster sandbox up")?;
    let kubeconfig = sb.cluster.kubeconfig_path();
    println!("\n$ kubectl -n kubetron get pods -o wide\n{}", sb.kubectl(&["-n", "kubetron", "get", "pods", "-o", "wide"])?);
    println!("$ kubectl get network-attachment-definitions\n{}", sb.kubectl(&["get", "network-attachment-definitions"])?);
    let pods = sb.demo().context("the demo")?;
    println!("$ kubectl get pods -o wide\n{}", sb.kubectl(&["get", "pods", "-o", "wide"])?);
    for p in &pods {
        println!("{}: NETWORK_INTERFACE_RED={}", p.name, p.env_red);
        println!("{}: network-status {}", p.name, model::status::to_annotation(&p.network_status));
        println!("{}: addresses\n{}", p.name, p.addresses);
    }
    for net in ["red", "blue"] {
        println!("{} -> {} on {net}: ping ok", DEMO_PODS[0], DEMO_PODS[1]);
    }
    if !no_wait {
        println!("\nThe cluster is up: kubectl --kubeconfig {} get pods -A\nPress Ctrl-C to tear it down.", kubeconfig.display());
        wait_for_signal()?;
    }
    println!("Tearing down (the host is put back as it was) ...");
    sb.stop().context("tearing down")?;
    println!("Down: the cluster, OVN and the chassis are stopped and the host is as it was.");
    Ok(())
}

fn wait_for_signal() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    Ok(())
}
