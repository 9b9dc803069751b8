//! Connections to the Northbound and local Open_vSwitch databases, with the CNI error a runtime
//! understands when one cannot be reached (11: try again later; 50 for STATUS).

use std::time::Duration;

use ovsdb::{Client, ClientConfig, Remote, TlsConfig};

use crate::{call_nb_tls, call_probe, connected, connecting, KubetronPlugin};
use cni::{CniError, ErrorCode, Request};

/// Connects to `remote` (`what` names it in errors) without background reconnects: a plugin call
/// is short-lived and must fail fast and clearly. The connection sends inactivity probes
/// ([`crate::probe_interval`]): a server that stops answering drops it, and the requests in
/// flight fail with code 11. `ssl:` remotes use the config's `nb_private_key`, `nb_certificate`
/// and `nb_ca_cert`.
pub async fn connect(plugin: &KubetronPlugin, remote: &str, what: &str) -> Result<Client, CniError> {
    let slot = connecting(what, remote);
    let client = open(remote, what, plugin.connect_timeout, call_probe(), None, call_nb_tls()).await?;
    connected(slot, &client);
    Ok(client)
}

/// Opens one connection of the plugin's (a CNI call's, or `kubetron gc`'s): no background
/// reconnects, inactivity probes every `probe`, each request bounded by `request_timeout` when
/// set, and `tls` for `ssl:` remotes (an `ssl:` remote without it is a config error).
pub(super) async fn open(
    remote: &str,
    what: &str,
    connect_timeout: Duration,
    probe: Duration,
    request_timeout: Option<Duration>,
    tls: Option<TlsConfig>,
) -> Result<Client, CniError> {
    let mut cfg = ClientConfig::new(remote)
        .map_err(|e| CniError::invalid_config(format!("{what} remote {remote:?}: {e}")))?
        .reconnect(false)
        .connect_timeout(connect_timeout)
        .inactivity_probe(Some(probe))
        .request_timeout(request_timeout);
    if cfg.remotes.iter().any(|r| matches!(r, Remote::Ssl { .. })) {
        match tls {
            Some(tls) => cfg = cfg.tls(tls),
            None => {
                return Err(CniError::invalid_config(format!(
                    "{what} remote {remote:?} is ssl: but the network config lacks nb_private_key, nb_certificate, nb_ca_cert"
                )))
            }
        }
    }
    Client::connect(cfg).await.map_err(|e| match e {
        // Unreadable or invalid PEM files: retrying will not help.
        ovsdb::Error::Tls(_) => CniError::invalid_config(format!("{what} at {remote}: {e}")),
        e => CniError::try_again_later(format!("{what} is not reachable: {e}")),
    })
}

/// The Northbound remote from the config (required: ports live there).
pub fn nb_remote(req: &Request) -> Result<&str, CniError> {
    req.config
        .kubetron
        .nb
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CniError::invalid_config("kubetron network config needs \"nb\": the OVN Northbound database remote"))
}

/// STATUS: both databases answer a read (an echo alone would pass a server that answers
/// probes but not transactions, e.g. a stuck cluster member). Any failure is code 50; a server
/// that does not answer at all is bounded by the probe and the call's deadline.
pub async fn status(plugin: &KubetronPlugin, req: &Request) -> Result<(), CniError> {
    let not_available = |e: CniError| CniError::new(ErrorCode::NotAvailable, e.msg);
    let ovs = connect(plugin, &req.config.kubetron.ovs_socket, "local Open_vSwitch database").await.map_err(not_available)?;
    read_probe(&ovs, ovn::vswitch::DB, "Open_vSwitch", "local Open_vSwitch database").await?;
    let nb = connect(plugin, nb_remote(req)?, "OVN Northbound database").await.map_err(not_available)?;
    read_probe(&nb, ovn::nb::DB, "NB_Global", "OVN Northbound database").await?;
    Ok(())
}

/// A cheap read-only transaction: the `_uuid`s of `table`.
async fn read_probe(c: &Client, db: &str, table: &str, what: &str) -> Result<(), CniError> {
    let op = ovsdb::Operation::select(table).columns(["_uuid"]);
    c.transact_unchecked(db, vec![op])
        .await
        .map(|_| ())
        .map_err(|e| CniError::new(ErrorCode::NotAvailable, format!("{what} does not answer a read of {table}: {e}")))
}
