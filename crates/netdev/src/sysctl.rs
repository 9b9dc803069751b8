//! Per-interface sysctls under /proc/sys/net (they follow the netns of the writing thread).

use std::path::PathBuf;

use crate::error::{NetdevError, Result};
use crate::handle::Handle;
use crate::link::validate_ifname;

fn disable_ipv6_path(ifname: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"))
}

impl Handle {
    /// Turns IPv6 off on `ifname` (`net.ipv6.conf.IF.disable_ipv6=1`) in this handle's netns.
    /// `Ok(false)` when IPv6 is absent (no such sysctl): nothing to do.
    pub fn disable_ipv6(&self, ifname: &str) -> Result<bool> {
        self.write_ipv6_disable(ifname, true)
    }

    /// Reads `net.ipv6.conf.IF.disable_ipv6`; `None` when absent.
    pub fn ipv6_disabled(&self, ifname: &str) -> Result<Option<bool>> {
        validate_ifname(ifname)?;
        let p = disable_ipv6_path(ifname);
        self.run_in(move || match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s.trim() == "1")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NetdevError::io(format!("read {}", p.display()), e)),
        })?
    }

    fn write_ipv6_disable(&self, ifname: &str, disable: bool) -> Result<bool> {
        validate_ifname(ifname)?;
        let p = disable_ipv6_path(ifname);
        let label = self.netns_label();
        self.run_in(move || {
            if !p.exists() {
                tracing::debug!(link = ifname, "no IPv6 sysctl, nothing to disable");
                return Ok(false);
            }
            std::fs::write(&p, if disable { "1" } else { "0" })
                .map_err(|e| NetdevError::io(format!("write {} in {label}", p.display()), e))?;
            Ok(true)
        })?
    }
}
