//! The node's `ovn-bridge-mappings`, read from the local Open_vSwitch database and followed with
//! a monitor.

use std::collections::BTreeMap;
use std::time::Duration;

use ovn::vswitch::{OpenVSwitch, DB};
use ovn::Model;
use ovsdb::{Client, ClientConfig, MonitorTable, Replica, ReplicaConfig, Snapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::Result;
use crate::names;

/// Physical network -> OVS bridge.
pub type Mappings = BTreeMap<String, String>;

/// Parses the mappings of an `Open_vSwitch` row, keeping the first bridge of a network named
/// twice and skipping networks whose names cannot be resource names.
pub fn from_row(row: &OpenVSwitch) -> Mappings {
    let mut out = Mappings::new();
    for (net, bridge) in row.bridge_mappings() {
        if !names::valid_physnet(&net) {
            warn!(physnet = %net, "physical network name cannot be a Kubernetes resource name; ignored");
            continue;
        }
        if let Some(first) = out.get(&net) {
            warn!(physnet = %net, %first, ignored = %bridge, "physical network mapped twice; keeping the first bridge");
            continue;
        }
        out.insert(net, bridge);
    }
    out
}

/// The mappings in a replica snapshot of the `Open_vSwitch` table (empty without a row).
pub fn from_snapshot(snap: &Snapshot) -> Mappings {
    snap.rows(OpenVSwitch::TABLE).next().map(|(_, row)| from_row(&OpenVSwitch::from_row(row))).unwrap_or_default()
}

/// Follows the mappings of the database at `remote` until `cancel`, publishing each distinct
/// value on `tx` (`None` until first read). While the database is unreachable the last value
/// stays published: a restarting ovsdb-server does not withdraw resources.
pub async fn watch(remote: String, tx: watch::Sender<Option<Mappings>>, cancel: CancellationToken) -> Result<()> {
    let client = Client::start(ClientConfig::new(&remote)?)?;
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = Replica::start(&client, replica_config()) => r,
        };
        match started {
            Ok(replica) => {
                backoff = Duration::from_millis(100);
                info!(%remote, "following ovn-bridge-mappings");
                follow(&replica, &tx, &cancel).await;
                if cancel.is_cancelled() {
                    return Ok(());
                }
            }
            Err(e) => warn!(%remote, "cannot monitor {DB}: {e}"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn replica_config() -> ReplicaConfig {
    ReplicaConfig::new(DB).table(MonitorTable::new(OpenVSwitch::TABLE).columns(["external_ids"]))
}

/// Publishes the mappings of every connected snapshot until the replica ends or `cancel`.
async fn follow(replica: &Replica, tx: &watch::Sender<Option<Mappings>>, cancel: &CancellationToken) {
    let mut rx = replica.subscribe();
    loop {
        let snap = rx.borrow_and_update().clone();
        if snap.connected() {
            let m = from_snapshot(&snap);
            tx.send_if_modified(|cur| {
                if cur.as_ref() == Some(&m) {
                    return false;
                }
                info!(mappings = ?m, "ovn-bridge-mappings");
                *cur = Some(m);
                true
            });
        } else if let Some(e) = snap.error() {
            debug!("replica not connected: {e}");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => if r.is_err() {
                warn!("replica of {DB} ended; starting a new one");
                return;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(m: &str) -> OpenVSwitch {
        let mut r = OpenVSwitch::from_row(&ovsdb::Row::new());
        r.external_ids.insert("ovn-bridge-mappings".into(), m.into());
        r
    }

    #[test]
    fn parse_mappings() {
        let m = from_row(&row("physnet1:br-ex, physnet2:br-vlan"));
        assert_eq!(m, Mappings::from([("physnet1".into(), "br-ex".into()), ("physnet2".into(), "br-vlan".into())]));
        let m = from_row(&row("a:br1,a:br2,bad/name:br3,:br4,b:"));
        assert_eq!(m, Mappings::from([("a".into(), "br1".into())]));
        assert!(from_row(&OpenVSwitch::from_row(&ovsdb::Row::new())).is_empty());
    }
}
