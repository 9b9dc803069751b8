//! The `kubetron` binary: thin subcommands around the library crates. Run with `CNI_COMMAND` in its
//! environment (as a container runtime or Multus runs a plugin), it is the kubetron CNI plugin.

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
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBETRON_LOG").unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

fn main() {
    if std::env::var_os("CNI_COMMAND").is_some() {
        init_logging("warn");
        std::process::exit(cni::run_process(&cni::KubetronPlugin::default()));
    }
    let cli = Cli::parse();
    init_logging("info");
    match cli.command {
        Cmd::Cni => std::process::exit(cni::run_process(&cni::KubetronPlugin::default())),
    }
}
