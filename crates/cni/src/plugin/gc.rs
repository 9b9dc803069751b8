//! GC: remove what kubetron plugged on this node for attachments the runtime no longer knows
//! (`cni.dev/valid-attachments`): bridge ports, host veths, and the logical switch ports those
//! attachments made themselves. Rows of other nodes and ports the controller owns are never
//! touched: only attachments found on this node's bridge are considered.

use std::collections::HashSet;

use ovn::names;

use super::conn::{connect, nb_remote};
use super::{plumb, port, KubetronPlugin};
use crate::{Attachment, CniError, Request};

pub async fn gc(plugin: &KubetronPlugin, req: &Request, valid: &[Attachment]) -> Result<(), CniError> {
    let keep: HashSet<(&str, &str)> = valid.iter().map(|a| (a.container_id.as_str(), a.ifname.as_str())).collect();
    let ovs = connect(plugin, &req.config.kubetron.ovs_socket, "local Open_vSwitch database").await?;
    let nb = connect(plugin, nb_remote(req)?, "OVN Northbound database").await?;
    for (iface, p) in plumb::kubetron_interfaces(&ovs).await? {
        let cid = iface.external_ids.get(names::CONTAINER_ID).map(String::as_str).unwrap_or("");
        let ifname = iface.external_ids.get(names::INTERFACE).map(String::as_str).unwrap_or("");
        if keep.contains(&(cid, ifname)) {
            continue;
        }
        tracing::info!("gc: removing stale attachment {cid}/{ifname} ({})", iface.name);
        if let Some(p) = p {
            plumb::unplug(&ovs, p.uuid).await?;
        }
        plumb::delete_veth(&iface.name)?;
        if let Some(lsp_name) = iface.external_ids.get("iface-id") {
            if let Some(lsp) = port::find_port(&nb, lsp_name).await? {
                if port::owned_by_container(&lsp, cid) {
                    port::delete_port(&nb, lsp.uuid).await?;
                }
            }
        }
    }
    Ok(())
}
