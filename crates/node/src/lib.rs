//! `node`: the node agent. Two jobs:
//!
//! - the **CNI server** of cluster and chained modes ([`attach`]): the `kubetron-cni` shim forwards
//!   each CNI call over a unix socket; the agent plugs pods from its caches (this node's pods, the
//!   local Open_vSwitch database) with the attachment the controller handed over in the pod
//!   annotation `kubetron.io/interfaces`, and waits for ovn-controller's `ovn-installed`;
//! - a **kubelet device plugin** (v1beta1) advertising one resource per physical network found in
//!   the local `ovn-bridge-mappings` (below).
//!
//! For every physical network `P` mapped to a bridge `B` in `external_ids:ovn-bridge-mappings` of
//! the local `Open_vSwitch` row, the agent serves a device plugin on
//! `<device-plugins dir>/kubetron-P.sock` and registers the extended resource `kubetron.io/P` with
//! kubelet (`kubelet.sock` in the same directory). The resource has `capacity` fake devices
//! `P-0` .. `P-<capacity-1>`, all `Healthy`: they only count how many pods may attach to the network.
//!
//! **Allocate** returns, for every container, exactly one environment variable:
//! `KUBETRON_PHYSNET_<NET>=<bridge>`, where `<NET>` is `P` upper-cased with every character other
//! than `A-Z`/`0-9` replaced by `_` (physnet `ext-net.1` on `br-ex` gives
//! `KUBETRON_PHYSNET_EXT_NET_1=br-ex`). It names the bridge at allocation time.
//!
//! Changes are followed: a newly mapped network gets a plugin and a registration; a network that
//! is no longer mapped has its devices reported `Unhealthy` on every `ListAndWatch` stream, the
//! streams end and its socket is removed; a bridge change only affects later allocations. kubelet
//! restarts are noticed by polling the identity (inode, ctime) of `kubelet.sock`: every plugin
//! registers again, and a plugin whose socket kubelet deleted is served anew first.
//!
//! Old kubelets: kubelets before 1.26 (grpc-go dialling the socket path, kubernetes#112597) send
//! the plugin socket's path as the HTTP/2 `:authority` of every call, which hyper/h2 under tonic
//! rejects (`RST_STREAM` `PROTOCOL_ERROR`: every `ListAndWatch` fails). Every plugin connection
//! therefore goes through [`h2front`], a byte-level HTTP/2 relay that decodes each request header
//! block (HPACK), replaces an invalid `:authority` with `localhost` and re-encodes the block; all
//! other frames, and everything tonic sends back, pass untouched.
//!
//! Must not touch: the OVN Northbound and Southbound databases (no node holds their credentials;
//! the controller is their only writer). Pod interfaces only through [`attach`].
//!
//! Layout: [`config`] (settings), [`mappings`] (OVSDB monitor of the mappings), [`plugin`] (the
//! `DevicePlugin` service), [`server`] (one gRPC server per resource), [`h2front`] (the HTTP/2
//! `:authority` fix in front of it), [`kubelet`] (registration), [`agent`] (the loop), [`names`],
//! [`uds`] (gRPC over unix sockets), [`proto`] (generated from `proto/deviceplugin_v1beta1.proto`).

pub mod agent;
pub mod attach;
pub mod config;
pub mod error;
pub mod h2front;
pub mod kubelet;
pub mod mappings;
pub mod names;
pub mod plugin;
pub mod server;
pub mod uds;

/// The kubelet device plugin API v1beta1: messages, clients and servers.
pub mod proto {
    tonic::include_proto!("v1beta1");
}

pub use agent::run_until;
pub use config::NodeConfig;
pub use error::{Error, Result};

use tokio_util::sync::CancellationToken;
use tracing::info;

/// Runs the agent until SIGINT or SIGTERM. Embedders that need their own shutdown signal use
/// [`run_until`].
pub async fn run(config: NodeConfig) -> Result<()> {
    let shutdown = CancellationToken::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Config(format!("cannot watch SIGTERM: {e}")))?;
    let stop = shutdown.clone();
    let signals = tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = stop.cancelled() => {}
        }
        stop.cancel();
    });
    let r = run_until(config, shutdown.clone()).await;
    shutdown.cancel();
    let _ = signals.await;
    r
}
