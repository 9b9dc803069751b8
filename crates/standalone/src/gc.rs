//! Garbage collection of CNI attachments, two ways.
//!
//! **CNI GC** ([`gc`], spec 1.1): the runtime names a network and the attachments still valid
//! *on that network* (`cni.dev/valid-attachments`). Only attachments of that network (the
//! network name recorded at ADD, `kubetron.io/cni-network`) are considered; the others are
//! removed: the bridge port, the host veth (the pod end goes with it), and the logical switch
//! port when the attachment made it. Logical switch ports that the plugin made on this node
//! (`owner=cni`, `kubetron.io/node` = this chassis) for an attachment of the network that is not
//! valid are removed even when nothing is left on the node (a DEL that removed the local side
//! and then could not reach the Northbound database). Attachments of other networks, ports of
//! other nodes and ports of the controller (`owner=controller`) are never touched.
//!
//! **Node GC** ([`node_gc`], `kubetron gc`): for an operator, without a runtime's list: the
//! attachments of this node whose pod network namespace (CNI_NETNS recorded at ADD,
//! `kubetron.io/netns`) no longer exists.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ovn::names;
use ovn::vswitch::{Interface, Port};
use ovsdb::Client;

use crate::conn::{connect, nb_remote, open};
use crate::del::FirstError;
use crate::{port, KubetronPlugin};
use cni::plumb;
use cni::{Attachment, CniError, Request};

fn tag<'a>(ids: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    ids.get(key).map(String::as_str).unwrap_or("")
}

/// CNI GC of the request's network.
pub async fn gc(plugin: &KubetronPlugin, req: &Request, valid: &[Attachment]) -> Result<(), CniError> {
    let keep: HashSet<(&str, &str)> = valid.iter().map(|a| (a.container_id.as_str(), a.ifname.as_str())).collect();
    let network = req.config.name.as_str();
    let ovs = connect(plugin, &req.config.kubetron.ovs_socket, "local Open_vSwitch database").await?;
    let nb = connect(plugin, nb_remote(req)?, "OVN Northbound database").await?;
    let node = plumb::system_id(&ovs).await?;
    // Only for interfaces plugged before the network was recorded on them.
    let switch = port::switch_named(&nb, req.config.logical_switch()).await?;
    let mut errors = FirstError::default();

    for (iface, p) in plumb::kubetron_interfaces(&ovs).await? {
        let (cid, ifname) = (tag(&iface.external_ids, names::CONTAINER_ID), tag(&iface.external_ids, names::INTERFACE));
        if keep.contains(&(cid, ifname)) {
            continue;
        }
        let lsp = match iface.external_ids.get("iface-id") {
            Some(n) => port::find_port(&nb, n).await?,
            None => None,
        };
        let ours = match iface.external_ids.get(names::CNI_NETWORK) {
            Some(n) => n == network,
            // Plugged by a version that did not record the network: the network whose switch
            // holds its logical port.
            None => matches!((&lsp, &switch), (Some(l), Some(s)) if s.ports.contains(&l.uuid)),
        };
        if !ours {
            continue;
        }
        tracing::info!(network, container = cid, ifname, host_if = %iface.name, "gc: removing an attachment that is no longer valid");
        errors.note("gc: removing the bridge port and veth", remove_local(&ovs, &iface, p.as_ref()).await);
        if let Some(l) = lsp.filter(|l| port::owned_by_container(l, cid)) {
            errors.note("gc: removing the logical switch port", port::delete_port(&nb, l.uuid).await);
        }
    }

    match node.as_deref() {
        Some(node) => {
            for lsp in port::cni_ports_of_node(&nb, node).await? {
                let ids = &lsp.external_ids;
                if tag(ids, names::CNI_NETWORK) != network || keep.contains(&(tag(ids, names::CONTAINER_ID), tag(ids, names::INTERFACE))) {
                    continue;
                }
                tracing::info!(network, port = %lsp.name, container = tag(ids, names::CONTAINER_ID), "gc: removing a logical switch port this node made for an attachment that is no longer valid");
                errors.note("gc: removing the logical switch port", port::delete_port(&nb, lsp.uuid).await);
            }
        }
        None => tracing::warn!("gc: the local Open_vSwitch row has no external_ids:system-id; logical switch ports without a local interface are not collected"),
    }
    errors.into_result()
}

/// Removes the bridge port (with its interface) and the host veth.
async fn remove_local(ovs: &Client, iface: &Interface, port: Option<&Port>) -> Result<(), CniError> {
    if let Some(p) = port {
        plumb::unplug(ovs, p.uuid).await?;
    }
    plumb::delete_veth(None, &iface.name)?;
    Ok(())
}

/// What `kubetron gc` works on.
#[derive(Debug, Clone)]
pub struct NodeGc {
    /// The OVN Northbound database remote(s).
    pub nb: String,
    /// TLS files for `ssl:` Northbound remotes.
    pub nb_tls: Option<ovsdb::TlsConfig>,
    /// This node's Open_vSwitch database.
    pub ovs: String,
    /// Only attachments of this CNI network (the network configuration's `name`).
    pub network: Option<String>,
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// How long to wait for each database connection.
    pub connect_timeout: Duration,
}

impl NodeGc {
    pub fn new(nb: &str, ovs: &str) -> NodeGc {
        NodeGc {
            nb: nb.to_string(),
            nb_tls: None,
            ovs: ovs.to_string(),
            network: None,
            dry_run: false,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// One attachment [`node_gc`] removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Removed {
    /// The CNI network (empty if it was not recorded).
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// The pod network namespace that no longer exists.
    pub netns: String,
    /// The logical switch port deleted with it (only ports the plugin made for this attachment).
    pub logical_port: Option<String>,
    /// The host end / bridge port removed.
    pub host_interface: Option<String>,
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network={} container={} ifname={} netns={}", self.network, self.container_id, self.ifname, self.netns)?;
        if let Some(l) = &self.logical_port {
            write!(f, " logical_switch_port={l}")?;
        }
        if let Some(h) = &self.host_interface {
            write!(f, " host_interface={h}")?;
        }
        Ok(())
    }
}

/// Whether the network namespace `path` recorded at ADD is gone. Conservative: a path this
/// process cannot judge (its directory is not visible, e.g. not run in the host's mount
/// namespace) counts as still there.
pub fn netns_gone(path: &Path) -> bool {
    if path.as_os_str().is_empty() || path.exists() {
        return false;
    }
    if let Ok(rest) = path.strip_prefix("/proc") {
        // /proc/<pid>/ns/net: gone with its process (this process must see the host's PIDs).
        return match rest.components().next() {
            Some(pid) if pid.as_os_str().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) => !Path::new("/proc").join(pid).exists(),
            _ => false,
        };
    }
    // A bind-mounted namespace (/var/run/netns/NAME): gone when its directory is there but it is not.
    path.parent().is_some_and(Path::is_dir)
}

/// Removes (or with `dry_run` only lists) this node's kubetron CNI attachments whose pod network
/// namespace no longer exists: bridge ports and host veths, and the logical switch ports the
/// plugin made for them on this node. Ports of the controller, of other nodes and attachments
/// that recorded no netns are never touched.
pub async fn node_gc(opts: &NodeGc) -> Result<Vec<Removed>, CniError> {
    // An operator command, not a CNI call: every request is bounded all the same, and a server
    // that stops answering is dropped by the probe.
    let (probe, bound) = (ovsdb::client::DEFAULT_INACTIVITY_PROBE, Some(NODE_GC_REQUEST_TIMEOUT));
    let ovs = open(&opts.ovs, "local Open_vSwitch database", opts.connect_timeout, probe, bound, None).await?;
    let nb = open(&opts.nb, "OVN Northbound database", opts.connect_timeout, probe, bound, opts.nb_tls.clone()).await?;
    let node = plumb::system_id(&ovs).await?;
    let wanted = |network: &str| opts.network.as_deref().is_none_or(|n| n == network);
    let mut removed = Vec::new();
    let mut done: HashSet<(String, String)> = HashSet::new();
    let mut errors = FirstError::default();

    for (iface, p) in plumb::kubetron_interfaces(&ovs).await? {
        let ids = &iface.external_ids;
        let netns = tag(ids, names::NETNS);
        if !wanted(tag(ids, names::CNI_NETWORK)) || !netns_gone(&PathBuf::from(netns)) {
            continue;
        }
        let (cid, ifname) = (tag(ids, names::CONTAINER_ID), tag(ids, names::INTERFACE));
        let lsp = match ids.get("iface-id") {
            Some(n) => port::find_port(&nb, n).await?.filter(|l| port::owned_by_container(l, cid)),
            None => None,
        };
        removed.push(Removed {
            network: tag(ids, names::CNI_NETWORK).to_string(),
            container_id: cid.to_string(),
            ifname: ifname.to_string(),
            netns: netns.to_string(),
            logical_port: lsp.as_ref().map(|l| l.name.clone()),
            host_interface: Some(iface.name.clone()),
        });
        done.insert((cid.to_string(), ifname.to_string()));
        if !opts.dry_run {
            errors.note("removing the bridge port and veth", remove_local(&ovs, &iface, p.as_ref()).await);
            if let Some(l) = lsp {
                errors.note("removing the logical switch port", port::delete_port(&nb, l.uuid).await);
            }
        }
    }

    match node.as_deref() {
        Some(node) => {
            for lsp in port::cni_ports_of_node(&nb, node).await? {
                let ids = &lsp.external_ids;
                let netns = tag(ids, names::NETNS);
                let key = (tag(ids, names::CONTAINER_ID).to_string(), tag(ids, names::INTERFACE).to_string());
                if !wanted(tag(ids, names::CNI_NETWORK)) || done.contains(&key) || !netns_gone(&PathBuf::from(netns)) {
                    continue;
                }
                removed.push(Removed {
                    network: tag(ids, names::CNI_NETWORK).to_string(),
                    container_id: key.0.clone(),
                    ifname: key.1.clone(),
                    netns: netns.to_string(),
                    logical_port: Some(lsp.name.clone()),
                    host_interface: None,
                });
                if !opts.dry_run {
                    errors.note("removing the logical switch port", port::delete_port(&nb, lsp.uuid).await);
                }
            }
        }
        None => tracing::warn!(
            "the local Open_vSwitch row has no external_ids:system-id; logical switch ports without a local interface are not collected"
        ),
    }
    errors.into_result()?;
    removed.sort();
    Ok(removed)
}

/// The bound on each database request of [`node_gc`].
pub const NODE_GC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_gone_is_conservative() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("ns1");
        std::fs::write(&present, b"").unwrap();
        assert!(!netns_gone(&present));
        assert!(netns_gone(&dir.path().join("ns2")), "missing file in a visible directory");
        assert!(!netns_gone(&dir.path().join("nodir/ns3")), "directory not visible: unknown, kept");
        assert!(!netns_gone(Path::new("")));
        let me = format!("/proc/{}/ns/net", std::process::id());
        assert!(!netns_gone(Path::new(&me)));
        assert!(netns_gone(Path::new("/proc/999999999/ns/net")));
        assert!(!netns_gone(Path::new("/proc/self/ns/nope")));
    }
}
