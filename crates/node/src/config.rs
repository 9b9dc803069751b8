//! Configuration of the node agent.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Where kubelet looks for device plugins and serves `kubelet.sock`.
pub const DEFAULT_DEVICE_PLUGIN_DIR: &str = "/var/lib/kubelet/device-plugins";
/// The local Open_vSwitch database of a Debian/Ubuntu OVS install.
pub const DEFAULT_OVS_REMOTE: &str = "unix:/var/run/openvswitch/db.sock";
/// Fake devices advertised per physical network (pods that may attach to it at once).
pub const DEFAULT_CAPACITY: usize = 100;
/// kubelet's registration socket, inside the device-plugins directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";

/// Settings of [`crate::run`].
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// OVSDB remote of the local Open_vSwitch database (`unix:...` or `tcp:...`).
    pub ovs_remote: String,
    /// kubelet's device-plugins directory: plugin sockets are created here, and `kubelet.sock`
    /// is expected here.
    pub device_plugin_dir: PathBuf,
    /// Number of devices (`<physnet>-0` .. `<physnet>-<capacity-1>`) per resource.
    pub capacity: usize,
    /// How often the kubelet socket and the plugin sockets are checked (kubelet restarts,
    /// deleted sockets, failed registrations are noticed at this pace).
    pub poll_interval: Duration,
    /// Time limit of one registration call to kubelet.
    pub register_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            ovs_remote: DEFAULT_OVS_REMOTE.to_string(),
            device_plugin_dir: PathBuf::from(DEFAULT_DEVICE_PLUGIN_DIR),
            capacity: DEFAULT_CAPACITY,
            poll_interval: Duration::from_secs(1),
            register_timeout: Duration::from_secs(5),
        }
    }
}

impl NodeConfig {
    pub fn ovs_remote(mut self, remote: impl Into<String>) -> Self {
        self.ovs_remote = remote.into();
        self
    }
    pub fn device_plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.device_plugin_dir = dir.into();
        self
    }
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
    pub fn register_timeout(mut self, d: Duration) -> Self {
        self.register_timeout = d;
        self
    }

    /// Path of kubelet's registration socket.
    pub fn kubelet_socket(&self) -> PathBuf {
        self.device_plugin_dir.join(KUBELET_SOCKET)
    }

    /// Checks the settings that have no sensible fallback.
    pub fn validate(&self) -> Result<()> {
        if self.capacity == 0 {
            return Err(Error::Config("capacity must be at least 1".into()));
        }
        if self.poll_interval.is_zero() {
            return Err(Error::Config("poll interval must be positive".into()));
        }
        if self.register_timeout.is_zero() {
            return Err(Error::Config("register timeout must be positive".into()));
        }
        if self.ovs_remote.trim().is_empty() {
            return Err(Error::Config("no OVSDB remote".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = NodeConfig::default();
        assert_eq!(c.kubelet_socket(), PathBuf::from("/var/lib/kubelet/device-plugins/kubelet.sock"));
        assert!(c.validate().is_ok());
        assert!(NodeConfig::default().capacity(0).validate().is_err());
        assert!(NodeConfig::default().poll_interval(Duration::ZERO).validate().is_err());
        assert!(NodeConfig::default().ovs_remote(" ").validate().is_err());
    }
}
