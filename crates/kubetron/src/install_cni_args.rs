//! `kubetron install-cni` options: the command line that fills [`cni::install::InstallConfig`], and the
//! three ways to run it (install once, `--watch`, `--uninstall`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cni::install::{self, InstallConfig};

/// `kubetron install-cni` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallCniArgs {
    /// The shim binary to install (in the kubetron image).
    #[arg(long, default_value = install::DEFAULT_BIN_SRC)]
    pub bin_src: PathBuf,
    /// The container runtime's CNI bin dir (the host's /opt/cni/bin, mounted); the shim becomes <bin-dir>/kubetron.
    #[arg(long, default_value = install::DEFAULT_BIN_DIR)]
    pub bin_dir: PathBuf,
    /// The container runtime's CNI conf dir (the host's /etc/cni/net.d, mounted): kubetron is chained into
    /// its primary (lexically first) network configuration.
    #[arg(long, default_value = install::DEFAULT_CONF_DIR)]
    pub conf_dir: PathBuf,
    /// The node agent's socket as a path on the host (written into kubetron's entry; the agent's
    /// --cni-socket-dir + /kubetron.sock).
    #[arg(long, default_value = model::netconf::DEFAULT_AGENT_SOCKET)]
    pub agent_socket: String,
    /// How long to wait for the default network plugin's configuration to appear (e.g. 300s, 5m).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// Remove kubetron's chained entry from every configuration in --conf-dir, then the binary.
    #[arg(long, conflicts_with = "watch")]
    pub uninstall: bool,
    /// After installing, keep running: install again whenever the binary or the entry is gone (e.g. the
    /// default plugin rewrote its configuration), until SIGTERM.
    #[arg(long)]
    pub watch: bool,
}

/// `300`, `300s`, `5m`, `1h`, `500ms`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 300s, 5m)"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

impl InstallCniArgs {
    /// The installer's settings.
    pub fn config(&self) -> InstallConfig {
        InstallConfig {
            bin_src: self.bin_src.clone(),
            bin_dir: self.bin_dir.clone(),
            conf_dir: self.conf_dir.clone(),
            agent_socket: self.agent_socket.clone(),
            wait_timeout: self.wait_timeout,
            ..InstallConfig::default()
        }
    }
}

/// Runs `kubetron install-cni`.
pub fn main(a: InstallCniArgs) -> anyhow::Result<()> {
    let cfg = a.config();
    if a.uninstall {
        let r = install::uninstall(&cfg).context("install-cni --uninstall")?;
        tracing::info!(configs = r.configs.len(), binary_removed = r.binary_removed, "kubetron uninstalled from this node");
        return Ok(());
    }
    if !a.watch {
        install::install(&cfg).context("install-cni")?;
        return Ok(());
    }
    crate::run_until_signal(|shutdown| async move {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut watching = tokio::task::spawn_blocking(move || install::watch(&cfg, &flag));
        let r = tokio::select! {
            r = &mut watching => r,
            _ = shutdown.cancelled() => {
                stop.store(true, Ordering::Relaxed);
                watching.await
            }
        };
        r.context("install-cni watch task")?.context("install-cni --watch")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        for bad in ["", "m", "5x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
