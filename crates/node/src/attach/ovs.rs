//! The node's Open_vSwitch database, as the CNI server uses it: one long-lived client for the
//! plug and unplug transactions, and a replica of the `Interface` table (`name`,
//! `external_ids`) that every ADD waits on for `external_ids:ovn-installed` (set by
//! ovn-controller once the interface's flows are installed), without polling.

use std::time::Duration;

use ovn::vswitch::{Interface, DB};
use ovn::Model;
use ovsdb::{Client, ClientConfig, MonitorTable, Replica, ReplicaConfig, Snapshot};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::Result;

/// `external_ids` key ovn-controller sets to `true` on an Interface once its flows are in.
pub const OVN_INSTALLED: &str = "ovn-installed";

/// The local OVS database.
#[derive(Clone)]
pub struct LocalOvs {
    client: Client,
    replica: watch::Receiver<Option<Replica>>,
}

/// Why waiting for an interface failed.
#[derive(Debug)]
pub enum InstallError {
    /// The deadline passed; the text says what was last seen.
    Timeout(String),
    /// The interface now belongs to another logical port (another ADD took it).
    Taken(String),
    /// The replica stopped (the agent is shutting down).
    Gone,
}

impl LocalOvs {
    /// Connects to `remote` (reconnecting for ever) and keeps the replica until `shutdown`.
    pub fn start(remote: &str, shutdown: CancellationToken) -> Result<LocalOvs> {
        let client = Client::start(ClientConfig::new(remote)?)?;
        let (tx, replica) = watch::channel(None);
        tokio::spawn(follow(client.clone(), remote.to_string(), tx, shutdown));
        Ok(LocalOvs { client, replica })
    }

    /// The client (for transactions).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The remote, for messages.
    pub fn remote(&self) -> String {
        self.client.remote().to_string()
    }

    /// Whether the replica is loaded and connected.
    pub fn ready(&self) -> bool {
        self.replica.borrow().as_ref().is_some_and(|r| r.snapshot().connected())
    }

    /// The current snapshot, if the replica is loaded.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.replica.borrow().as_ref().map(Replica::snapshot)
    }

    /// Waits until the Interface `name` carries `ovn-installed=true` while bound to `iface_id`.
    pub async fn wait_installed(&self, name: &str, iface_id: &str, deadline: Instant) -> std::result::Result<(), InstallError> {
        let mut replicas = self.replica.clone();
        loop {
            let current = replicas.borrow_and_update().clone();
            let Some(replica) = current else {
                tokio::select! {
                    r = replicas.changed() => if r.is_err() { return Err(InstallError::Gone) } else { continue },
                    _ = tokio::time::sleep_until(deadline) => {
                        return Err(InstallError::Timeout("the local Open_vSwitch database is not loaded".into()))
                    }
                }
            };
            let mut snaps = replica.subscribe();
            loop {
                let seen = {
                    let snap = snaps.borrow_and_update();
                    match interface(&snap, name) {
                        Some(i) => {
                            let bound = i.external_ids.get("iface-id").map(String::as_str).unwrap_or("");
                            if bound != iface_id {
                                return Err(InstallError::Taken(format!(
                                    "interface {name} is now bound to {bound:?}, not {iface_id:?} (probably a later ADD of the same pod interface)"
                                )));
                            }
                            if i.external_ids.get(OVN_INSTALLED).map(String::as_str) == Some("true") {
                                return Ok(());
                            }
                            format!("ovn-controller to set {OVN_INSTALLED} on interface {name} (logical port {iface_id})")
                        }
                        None if !snap.connected() => format!("the local Open_vSwitch database at {} (disconnected)", self.client.remote()),
                        None => format!("interface {name} to appear in the local Open_vSwitch database"),
                    }
                };
                tokio::select! {
                    r = snaps.changed() => if r.is_err() { break },
                    r = replicas.changed() => if r.is_err() { return Err(InstallError::Gone) } else { break },
                    _ = tokio::time::sleep_until(deadline) => return Err(InstallError::Timeout(seen)),
                }
            }
        }
    }
}

/// The Interface `name` in a snapshot.
pub fn interface(snap: &Snapshot, name: &str) -> Option<Interface> {
    snap.find_one(Interface::TABLE, "name", name).map(|(_, row)| Interface::from_row(&row))
}

fn replica_config() -> ReplicaConfig {
    ReplicaConfig::new(DB).table(MonitorTable::new(Interface::TABLE).columns(["name", "external_ids"])).index(Interface::TABLE, "name")
}

/// Keeps a loaded replica published on `tx` (a new one after the old one ends) until `shutdown`.
async fn follow(client: Client, remote: String, tx: watch::Sender<Option<Replica>>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = Replica::start(&client, replica_config()) => r,
        };
        match started {
            Ok(replica) => {
                backoff = Duration::from_millis(100);
                info!(%remote, "following the local Open_vSwitch interfaces");
                let mut snaps = replica.subscribe();
                tx.send_replace(Some(replica));
                // Until the replica ends (its monitor closed with the connection).
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = snaps.changed() => if r.is_err() { break },
                    }
                    if !snaps.borrow().connected() {
                        break;
                    }
                }
                warn!(%remote, "lost the local Open_vSwitch database; following it again");
                tx.send_replace(None);
            }
            Err(e) => warn!(%remote, "cannot monitor {DB}: {e}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
