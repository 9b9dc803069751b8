//! One running device-plugin gRPC server: a resource's [`PhysnetPlugin`] served on its own unix
//! socket in the device-plugins directory, every connection through the [`h2front`](crate::h2front).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::names;
use crate::plugin::{PhysnetPlugin, ResourceState};
use crate::proto::device_plugin_server::DevicePluginServer;
use crate::uds::{file_id, FileId};

/// How long a stopping server may take to close its streams before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The connections of `listener`, each behind the [`h2front`](crate::h2front) (kubelets before
/// 1.26 send the socket path as `:authority`, which tonic would refuse).
pub fn incoming(listener: UnixListener) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::io::DuplexStream>> {
    UnixListenerStream::new(listener).map(|conn| conn.map(crate::h2front::front))
}

/// A device-plugin server for one physical network.
pub struct PluginServer {
    physnet: String,
    socket: PathBuf,
    socket_id: Option<FileId>,
    state: watch::Sender<ResourceState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl PluginServer {
    /// Serves the plugin of `physnet` (mapped to `bridge`) on `<dir>/kubetron-<physnet>.sock`,
    /// replacing a stale socket file of an earlier run.
    pub fn start(dir: &Path, physnet: &str, bridge: &str, capacity: usize) -> Result<PluginServer> {
        let socket = dir.join(names::socket_name(physnet));
        match std::fs::remove_file(&socket) {
            Ok(()) => debug!(path = %socket.display(), "removed stale socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&socket, e)),
        }
        let listener = UnixListener::bind(&socket).map_err(|e| Error::io(&socket, e))?;
        let socket_id = file_id(&socket);
        let (state, rx) = watch::channel(ResourceState { bridge: bridge.to_string(), healthy: true, stopping: false });
        let plugin = PhysnetPlugin::new(physnet, capacity, rx);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let path = socket.clone();
        let task = tokio::spawn(async move {
            let r = Server::builder()
                .add_service(DevicePluginServer::new(plugin))
                .serve_with_incoming_shutdown(incoming(listener), stop.cancelled_owned())
                .await;
            if let Err(source) = r {
                warn!("{}", Error::Serve { path, source });
            }
        });
        info!(%physnet, %bridge, capacity, socket = %socket.display(), "device plugin serving");
        Ok(PluginServer { physnet: physnet.to_string(), socket, socket_id, state, shutdown, task: Some(task) })
    }

    pub fn physnet(&self) -> &str {
        &self.physnet
    }

    /// Path of the plugin's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn bridge(&self) -> String {
        self.state.borrow().bridge.clone()
    }

    /// Changes the bridge handed out by later allocations.
    pub fn set_bridge(&self, bridge: &str) {
        self.state.send_if_modified(|s| {
            let changed = s.bridge != bridge;
            s.bridge = bridge.to_string();
            changed
        });
    }

    /// Reports the devices Healthy or Unhealthy on every `ListAndWatch` stream.
    pub fn set_healthy(&self, healthy: bool) {
        self.state.send_if_modified(|s| std::mem::replace(&mut s.healthy, healthy) != healthy);
    }

    /// Whether the server is running and its socket file is still the one it bound (kubelet
    /// deletes plugin sockets when it starts).
    pub fn is_intact(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished()) && self.socket_id.is_some() && file_id(&self.socket) == self.socket_id
    }

    /// Stops the server: streams report every device Unhealthy and end, the server shuts down
    /// (aborted if it does not within a grace period) and its socket file is removed if it is
    /// still the one it bound.
    pub async fn stop(mut self) {
        self.state.send_modify(|s| s.stopping = true);
        self.shutdown.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                warn!(physnet = %self.physnet, "device plugin server did not stop in time; aborting it");
                task.abort();
            }
        }
        if self.socket_id.is_some() && file_id(&self.socket) == self.socket_id {
            if let Err(e) = std::fs::remove_file(&self.socket) {
                warn!(path = %self.socket.display(), "cannot remove socket: {e}");
            }
        }
        info!(physnet = %self.physnet, "device plugin stopped");
    }
}

impl Drop for PluginServer {
    fn drop(&mut self) {
        // Dropped without stop(): end streams and the server; the socket file stays.
        self.state.send_modify(|s| s.stopping = true);
        self.shutdown.cancel();
    }
}
