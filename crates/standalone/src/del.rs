//! DEL: remove the bridge port, the veth pair and (when this attachment made it) the logical
//! switch port. Idempotent, and it never blocks a pod's deletion on something already gone:
//! no netns, no port, no veth are all fine.
//!
//! Whatever DEL could not finish is an error, so the runtime calls DEL again: every step is
//! attempted (local ones first, they need no database), and the first failure is returned once
//! all have run. A DEL that never succeeds (the pod was force-deleted while the Northbound
//! database was down) leaves its logical switch port to GC: CNI GC of the network, or
//! `kubetron gc` on the node (see [`crate::gc`]).

use netdev::host_ifname;
use ovn::names;
use ovsdb::Client;

use crate::conn::{connect, nb_remote};
use crate::{port, KubetronPlugin};
use cni::plumb;
use cni::{CniError, Request};

/// The first error of several steps; later ones are logged.
#[derive(Default)]
pub(crate) struct FirstError(Option<CniError>);

impl FirstError {
    pub(crate) fn note<T>(&mut self, what: &str, r: Result<T, CniError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(code = e.code.code(), "{what}: {}", e.msg);
                self.0.get_or_insert(e);
                None
            }
        }
    }
    pub(crate) fn into_result(self) -> Result<(), CniError> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

pub async fn del(plugin: &KubetronPlugin, req: &Request) -> Result<(), CniError> {
    let conf = &req.config.kubetron;
    let host_if = host_ifname(req.container_id(), req.ifname());
    let mut errors = FirstError::default();
    // Local first: the veth (its pod end goes with it) needs no database.
    errors.note("deleting the host veth", plumb::delete_veth(None, &host_if));

    if let Some(ovs) = errors.note("DEL", connect(plugin, &conf.ovs_socket, "local Open_vSwitch database").await) {
        errors.note("removing the bridge port", unplug_local(&ovs, req, &host_if).await);
    }
    if let Some(remote) = errors.note("DEL", nb_remote(req)) {
        if let Some(nb) = errors.note("DEL", connect(plugin, remote, "OVN Northbound database").await) {
            errors.note("removing the logical switch port", delete_own_port(&nb, req).await);
        }
    }
    errors.into_result()
}

/// Removes the bridge port named `host_if` and any other interface this attachment (container
/// ID + interface name) plugged.
async fn unplug_local(ovs: &Client, req: &Request, host_if: &str) -> Result<(), CniError> {
    let mut stale = Vec::new();
    if let Some(p) = plumb::port_by_name(ovs, host_if).await? {
        stale.push(p.uuid);
    }
    for (_, p) in plumb::tagged_interfaces(ovs, &[(names::CONTAINER_ID, req.container_id()), (names::INTERFACE, req.ifname())]).await? {
        if let Some(p) = p {
            if !stale.contains(&p.uuid) {
                stale.push(p.uuid);
            }
        }
    }
    for p in stale {
        plumb::unplug(ovs, p).await?;
    }
    Ok(())
}

/// Deletes the logical switch port if this attachment made it (a port of the controller, of an
/// administrator, or of a later container that replaced ours is left alone).
async fn delete_own_port(nb: &Client, req: &Request) -> Result<(), CniError> {
    let name = port::port_name(req);
    if let Some(lsp) = port::find_port(nb, &name).await? {
        if port::owned_by_container(&lsp, req.container_id()) {
            port::delete_port(nb, lsp.uuid).await?;
        }
    }
    Ok(())
}
