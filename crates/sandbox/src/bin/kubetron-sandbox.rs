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
        /// The kubetron binary (CNI plugin, controller, node agent); without it, the `kubetron` next to this executable.
        #[arg(long = "kubetron", env = "KUBETRON_BIN", value_name = "PATH")]
        kubetron: Option<PathBuf>,
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
        Cmd::Up { at, nodes, prefix, with_kube, kubetron } => {
            let exe = std::env::current_exe().context("finding the kubetron-sandbox executable")?;
            let plugin = sandbox::find_kubetron(kubetron.as_deref(), &exe)?;
            let opts = sandbox::Options::new(at.dir, &prefix, nodes, plugin).with_kube(with_kube);
            sandbox::up(&opts).context("sandbox up")?;
        }
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
