//! The node agent's main loop: one device-plugin server per mapped physical network, kept
//! registered with kubelet.

use std::collections::BTreeMap;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::NodeConfig;
use crate::error::{Error, Result};
use crate::kubelet;
use crate::mappings::{self, Mappings};
use crate::server::PluginServer;
use crate::uds::{file_id, FileId};

/// A running plugin and the kubelet socket it last registered with.
struct Managed {
    server: PluginServer,
    registered: Option<FileId>,
    /// Registration attempts failed in a row (only the first is logged as a warning).
    failures: u32,
}

/// Runs the agent until `shutdown` is cancelled, then stops every plugin (streams report the
/// devices Unhealthy and end; sockets are removed).
pub async fn run_until(config: NodeConfig, shutdown: CancellationToken) -> Result<()> {
    config.validate()?;
    let dir = &config.device_plugin_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (tx, mut mappings_rx) = watch::channel(None::<Mappings>);
    let watcher_stop = shutdown.child_token();
    let watcher = tokio::spawn(mappings::watch(config.ovs_remote.clone(), tx, watcher_stop.clone()));
    let mut plugins: BTreeMap<String, Managed> = BTreeMap::new();
    let mut tick = tokio::time::interval(config.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(dir = %dir.display(), ovs = %config.ovs_remote, capacity = config.capacity, "node agent started");
    let result = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            r = mappings_rx.changed() => {
                if r.is_err() {
                    if shutdown.is_cancelled() {
                        break Ok(());
                    }
                    // The watcher returned before shutdown: only a bad remote does that.
                    break match watcher.await {
                        Ok(Err(e)) => Err(e),
                        _ => Err(Error::Config(format!("cannot follow {}", config.ovs_remote))),
                    };
                }
                let m = mappings_rx.borrow_and_update().clone();
                if let Some(m) = m {
                    reconcile(&config, &mut plugins, &m).await;
                }
            }
            _ = tick.tick() => {}
        }
        maintain(&config, &mut plugins, &shutdown).await;
    };
    watcher_stop.cancel();
    for (_, m) in std::mem::take(&mut plugins) {
        m.server.stop().await;
    }
    info!("node agent stopped");
    result
}

/// Starts plugins for new networks, stops those of removed ones, follows bridge changes.
async fn reconcile(config: &NodeConfig, plugins: &mut BTreeMap<String, Managed>, want: &Mappings) {
    let gone: Vec<String> = plugins.keys().filter(|n| !want.contains_key(*n)).cloned().collect();
    for net in gone {
        if let Some(m) = plugins.remove(&net) {
            info!(physnet = %net, "physical network no longer mapped; withdrawing its resource");
            m.server.stop().await;
        }
    }
    for (net, bridge) in want {
        match plugins.get(net) {
            Some(m) => m.server.set_bridge(bridge),
            None => match PluginServer::start(&config.device_plugin_dir, net, bridge, config.capacity) {
                Ok(server) => {
                    plugins.insert(net.clone(), Managed { server, registered: None, failures: 0 });
                }
                Err(e) => warn!(physnet = %net, "cannot start device plugin: {e}"),
            },
        }
    }
}

/// Restarts plugins whose socket vanished and (re-)registers every plugin not registered with
/// the current kubelet socket.
async fn maintain(config: &NodeConfig, plugins: &mut BTreeMap<String, Managed>, shutdown: &CancellationToken) {
    for (net, m) in plugins.iter_mut() {
        if m.server.is_intact() {
            continue;
        }
        warn!(physnet = %net, "device plugin socket gone; serving it again");
        let bridge = m.server.bridge();
        match PluginServer::start(&config.device_plugin_dir, net, &bridge, config.capacity) {
            Ok(server) => {
                let old = std::mem::replace(&mut m.server, server);
                m.registered = None;
                // The old socket path is now the new server's: stopping the old one leaves it.
                old.stop().await;
            }
            Err(e) => warn!(physnet = %net, "cannot restart device plugin: {e}"),
        }
    }
    let kubelet_sock = config.kubelet_socket();
    let kubelet = file_id(&kubelet_sock);
    for (net, m) in plugins.iter_mut() {
        if kubelet.is_none() {
            m.registered = None;
            continue;
        }
        if m.registered == kubelet || shutdown.is_cancelled() {
            continue;
        }
        let r = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = kubelet::register(&kubelet_sock, net, config.register_timeout) => r,
        };
        match r {
            Ok(()) => {
                m.registered = kubelet;
                m.failures = 0;
            }
            Err(e) => {
                if m.failures == 0 {
                    warn!(physnet = %net, "registration with kubelet failed (will retry): {e}");
                } else {
                    debug!(physnet = %net, attempt = m.failures + 1, "registration with kubelet failed: {e}");
                }
                m.failures = m.failures.saturating_add(1);
            }
        }
    }
}
