//! Connections to the Northbound and local Open_vSwitch databases, with the CNI error a runtime
//! understands when one cannot be reached (11: try again later; 50 for STATUS).

use ovsdb::{Client, ClientConfig};

use super::KubetronPlugin;
use crate::{CniError, ErrorCode, Request};

/// Connects to `remote` (`what` names it in errors) without background reconnects: a plugin call
/// is short-lived and must fail fast and clearly.
pub async fn connect(plugin: &KubetronPlugin, remote: &str, what: &str) -> Result<Client, CniError> {
    let cfg = ClientConfig::new(remote)
        .map_err(|e| CniError::invalid_config(format!("{what} remote {remote:?}: {e}")))?
        .reconnect(false)
        .connect_timeout(plugin.connect_timeout)
        .inactivity_probe(None);
    Client::connect(cfg).await.map_err(|e| CniError::try_again_later(format!("{what} at {remote} is not reachable: {e}")))
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

/// Maps an OVSDB error during a request to a CNI error.
pub fn db_error(what: &str, e: ovsdb::Error) -> CniError {
    match e {
        ovsdb::Error::Disconnected { .. } | ovsdb::Error::Closed | ovsdb::Error::Connect { .. } => {
            CniError::try_again_later(format!("{what}: {e}"))
        }
        other => CniError::new(ErrorCode::Other(100), format!("{what}: {other}")),
    }
}

/// STATUS: both databases answer.
pub async fn status(plugin: &KubetronPlugin, req: &Request) -> Result<(), CniError> {
    let not_available = |e: CniError| CniError::new(ErrorCode::NotAvailable, e.msg);
    let ovs = connect(plugin, &req.config.kubetron.ovs_socket, "local Open_vSwitch database").await.map_err(not_available)?;
    ovs.echo(serde_json::json!([]))
        .await
        .map_err(|e| CniError::new(ErrorCode::NotAvailable, format!("local Open_vSwitch database: {e}")))?;
    let nb = connect(plugin, nb_remote(req)?, "OVN Northbound database").await.map_err(not_available)?;
    nb.echo(serde_json::json!([])).await.map_err(|e| CniError::new(ErrorCode::NotAvailable, format!("OVN Northbound database: {e}")))?;
    Ok(())
}
