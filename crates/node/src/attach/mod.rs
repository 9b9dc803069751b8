//! The CNI server of cluster and chained modes: the node agent answers the `kubetron-cni` shim's
//! requests ([`cni::agent`] is the protocol) from its own caches and plugs pods with netlink and
//! the local Open_vSwitch database only. No Northbound or Southbound connection is made here: the
//! controller made the logical switch port and handed it over in the pod annotation
//! `kubetron.io/interfaces` ([`model::handoff`]).
//!
//! - [`pods`]: this node's pods (field selector `spec.nodeName`, metadata only, trimmed).
//! - [`nads`]: the cluster's NADs (chained mode tells kubetron networks from others).
//! - [`ovs`]: one client of the local OVS and a replica of its `Interface` table; ADD waits there
//!   for ovn-controller's `ovn-installed`.
//! - [`verbs`]: ADD, DEL, CHECK, STATUS, GC.
//! - [`http`]: the unix socket (a root-only directory, the socket 0600) and HTTP/1.1 on it.
//!
//! Bounds: at most `max_requests` requests at once (more are refused at once with code 11, "agent
//! busy"); waiting (for the pod, the hand-off, `ovn-installed`) holds no resource; netlink and the
//! OVS transaction of at most `plug_concurrency` requests run at once. Every request runs under its
//! deadline (`deadline_ms` of the request, the config's `timeout_ms`), and a failed or cancelled
//! ADD undoes what it made within the cleanup reserve of that deadline.

pub mod http;
pub mod nads;
pub mod ovs;
pub mod pods;
pub mod verbs;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use netdev::Netns;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// The socket's file name in the socket directory (the shim's default is
/// [`model::netconf::DEFAULT_AGENT_SOCKET`]).
pub const SOCKET_NAME: &str = "kubetron.sock";
/// The default socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/run/kubetron/cni";

/// Settings of the CNI server.
#[derive(Debug, Clone)]
pub struct AttachConfig {
    /// This node's name (`spec.nodeName` of its pods).
    pub node_name: String,
    /// Where the socket is made (re-made 0700 at start).
    pub socket_dir: PathBuf,
    /// The local Open_vSwitch database.
    pub ovs_remote: String,
    /// The integration bridge.
    pub bridge: String,
    /// Requests plugging (netlink + OVS transaction) at once.
    pub plug_concurrency: usize,
    /// Requests served at once; more are refused with code 11.
    pub max_requests: usize,
    /// The network namespace of the node side (host veth ends); `None`: the agent's own. Tests
    /// run an agent per chassis namespace from the root namespace (where the API server is).
    pub host_netns: Option<PathBuf>,
    /// The cluster's hand-off key ([`read_handoff_key`]): with it, ports the controller signed for
    /// a pod are plugged too (a backend's own port IDs); without, only ports named after the pod
    /// or its IPAMClaim.
    pub handoff_key: Option<Arc<[u8]>>,
}

/// The hand-off key in `path` (a mounted Secret): `None` when the file does not exist (the
/// Secret is optional); an error when it cannot be read or is shorter than
/// [`model::hmac::MIN_KEY_LEN`] bytes.
pub fn read_handoff_key(path: &std::path::Path) -> Result<Option<Arc<[u8]>>> {
    model::hmac::read_key_file(path).map(|k| k.map(Into::into)).map_err(|e| Error::Config(e.to_string()))
}

impl AttachConfig {
    /// Defaults for `node_name`.
    pub fn new(node_name: &str) -> AttachConfig {
        AttachConfig {
            node_name: node_name.to_string(),
            socket_dir: PathBuf::from(DEFAULT_SOCKET_DIR),
            ovs_remote: crate::config::DEFAULT_OVS_REMOTE.to_string(),
            bridge: model::netconf::DEFAULT_BRIDGE.to_string(),
            plug_concurrency: 8,
            max_requests: 1024,
            host_netns: None,
            handoff_key: None,
        }
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        self.socket_dir.join(SOCKET_NAME)
    }

    fn validate(&self) -> Result<()> {
        if self.node_name.is_empty() {
            return Err(Error::Config("the CNI server needs the node name (--node-name / NODE_NAME)".into()));
        }
        if self.plug_concurrency == 0 || self.max_requests == 0 {
            return Err(Error::Config("--cni-plug-concurrency and --cni-max-requests must be at least 1".into()));
        }
        Ok(())
    }
}

/// What every request shares.
pub struct Agent {
    pub(crate) config: AttachConfig,
    pub(crate) pods: pods::Pods,
    pub(crate) nads: nads::Nads,
    pub(crate) ovs: ovs::LocalOvs,
    /// The node side's netns when not the agent's own.
    pub(crate) host: Option<Arc<Netns>>,
    pub(crate) plug_permits: Semaphore,
    pub(crate) request_permits: Arc<Semaphore>,
    /// One lock per container ID: its ADD and DEL never overlap.
    containers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The cancel token of each container's ADD in progress (a DEL cancels it first).
    adds: Mutex<HashMap<String, CancellationToken>>,
}

impl Agent {
    /// Starts the caches (pods, local OVS); they load in the background.
    pub fn start(config: AttachConfig, client: kube::Client, shutdown: &CancellationToken) -> Result<Arc<Agent>> {
        config.validate()?;
        let host = match &config.host_netns {
            Some(p) => Some(Arc::new(Netns::open(p).map_err(|e| Error::Config(format!("--host-netns {}: {e}", p.display())))?)),
            None => None,
        };
        let pods = pods::Pods::start(client.clone(), &config.node_name, shutdown.child_token());
        let nads = nads::Nads::start(client, shutdown.child_token());
        let ovs = ovs::LocalOvs::start(&config.ovs_remote, shutdown.child_token())?;
        Ok(Arc::new(Agent {
            plug_permits: Semaphore::new(config.plug_concurrency),
            request_permits: Arc::new(Semaphore::new(config.max_requests)),
            config,
            pods,
            nads,
            ovs,
            host,
            containers: Mutex::new(HashMap::new()),
            adds: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether the caches are loaded (STATUS, `/healthz`).
    pub fn ready(&self) -> bool {
        self.pods.synced() && self.ovs.ready()
    }

    /// The cluster's hand-off key, if the agent has one.
    pub(crate) fn handoff_key(&self) -> Option<&[u8]> {
        self.config.handoff_key.as_deref()
    }

    /// The node side's netns, `None` for the agent's own.
    pub(crate) fn host(&self) -> Option<&Netns> {
        self.host.as_deref()
    }

    /// The lock of a container ID (made on first use, dropped with its last user).
    pub(crate) async fn lock_container(&self, id: &str) -> ContainerGuard<'_> {
        let m = {
            let mut map = self.containers.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(id.to_string()).or_default().clone()
        };
        let guard = m.clone().lock_owned().await;
        ContainerGuard { agent: self, id: id.to_string(), _guard: guard }
    }

    /// Registers the ADD of `id` in progress; a DEL of `id` cancels the token.
    pub(crate) fn register_add(&self, id: &str, token: CancellationToken) {
        self.adds.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), token);
    }

    pub(crate) fn unregister_add(&self, id: &str) {
        self.adds.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Cancels the ADD of `id` in progress, if any.
    pub(crate) fn cancel_add(&self, id: &str) -> bool {
        match self.adds.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }
}

/// Holds a container's lock; the map entry goes when nobody else holds or waits for it.
pub(crate) struct ContainerGuard<'a> {
    agent: &'a Agent,
    id: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.agent.containers.lock().unwrap_or_else(|e| e.into_inner());
        // Ours plus the map's: nobody else holds or waits.
        if map.get(&self.id).is_some_and(|m| Arc::strong_count(m) <= 2) {
            map.remove(&self.id);
        }
    }
}

/// Serves CNI on the socket until `shutdown`: makes the caches, the socket, and answers.
pub async fn serve(config: AttachConfig, client: kube::Client, shutdown: CancellationToken) -> Result<()> {
    let agent = Agent::start(config, client, &shutdown)?;
    http::serve(agent, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handoff_key_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_handoff_key(&dir.path().join("absent")).unwrap().is_none(), "an absent (optional) Secret: no key");
        std::fs::write(dir.path().join("short"), b"too short").unwrap();
        let e = read_handoff_key(&dir.path().join("short")).unwrap_err().to_string();
        assert!(e.contains("9 bytes") && e.contains("at least 16"), "{e}");
        std::fs::write(dir.path().join("key"), [7u8; 32]).unwrap();
        assert_eq!(read_handoff_key(&dir.path().join("key")).unwrap().as_deref(), Some(&[7u8; 32][..]));
        assert!(read_handoff_key(dir.path()).is_err(), "a directory is an error");
    }
}
