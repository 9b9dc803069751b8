//! DEL: remove the bridge port, the veth pair and (when this attachment made it) the logical
//! switch port. Idempotent, and it never blocks a pod's deletion on something already gone:
//! no netns, no port, no veth are all fine. An unreachable database is reported (the runtime
//! retries) only after everything local has been removed.

use netdev::host_ifname;
use ovn::names;

use super::conn::{connect, nb_remote};
use super::{plumb, port, KubetronPlugin};
use crate::{CniError, Request};

pub async fn del(plugin: &KubetronPlugin, req: &Request) -> Result<(), CniError> {
    let conf = &req.config.kubetron;
    let host_if = host_ifname(req.container_id(), req.ifname());
    // Local first: the veth (its pod end goes with it) needs no database.
    plumb::delete_veth(&host_if)?;

    let mut first_error = None;
    match connect(plugin, &conf.ovs_socket, "local Open_vSwitch database").await {
        Ok(ovs) => {
            let mut stale = Vec::new();
            if let Some(p) = plumb::port_by_name(&ovs, &host_if).await? {
                stale.push(p.uuid);
            }
            for (iface, p) in plumb::kubetron_interfaces(&ovs).await? {
                let ours = iface.external_ids.get(names::CONTAINER_ID).map(String::as_str) == Some(req.container_id())
                    && iface.external_ids.get(names::INTERFACE).map(String::as_str) == Some(req.ifname());
                if let (true, Some(p)) = (ours, p) {
                    if !stale.contains(&p.uuid) {
                        stale.push(p.uuid);
                    }
                }
            }
            for p in stale {
                plumb::unplug(&ovs, p).await?;
            }
        }
        Err(e) => first_error = Some(e),
    }

    let nb_remote = nb_remote(req)?;
    match connect(plugin, nb_remote, "OVN Northbound database").await {
        Ok(nb) => {
            let name = port::port_name(req);
            if let Some(lsp) = port::find_port(&nb, &name).await? {
                if port::owned_by_container(&lsp, req.container_id()) {
                    port::delete_port(&nb, lsp.uuid).await?;
                }
            }
        }
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
