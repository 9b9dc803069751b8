//! ethtool offloads over the `SIOCETHTOOL` ioctl (`linux/ethtool.h`): TX checksumming.
//!
//! On the OVS userspace datapath, checksums offloaded by a veth arrive wrong, so TX checksum offload
//! must be off inside every pod (see shared/ovn-on-these-machines.md).

use crate::error::{NetdevError, Result};
use crate::handle::Handle;
use crate::link::validate_ifname;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` pointer member of its union (40 bytes on 64-bit).
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 24 - std::mem::size_of::<*mut libc::c_void>()],
}

impl Handle {
    fn ethtool_value(&self, ifname: &str, cmd: u32, data: u32) -> Result<u32> {
        validate_ifname(ifname)?;
        let mut val = EthtoolValue { cmd, data };
        let mut ifr = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: &mut val as *mut _ as *mut libc::c_void,
            _pad: [0; 24 - std::mem::size_of::<*mut libc::c_void>()],
        };
        ifr.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
        // SAFETY: ifr and val are valid for the duration of the call and laid out as the kernel expects.
        let rc = unsafe { libc::ioctl(self.ioctl_fd(), SIOCETHTOOL as _, &mut ifr as *mut IfreqData) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENODEV) {
                return Err(NetdevError::LinkNotFound(ifname.to_string()));
            }
            return Err(NetdevError::io(format!("ethtool cmd {cmd:#x} on {ifname} in {}", self.netns_label()), e));
        }
        Ok(val.data)
    }

    /// Reads TX checksum offload (`ethtool -k IF` "tx-checksumming") of link `ifname`.
    pub fn tx_checksum(&self, ifname: &str) -> Result<bool> {
        Ok(self.ethtool_value(ifname, ETHTOOL_GTXCSUM, 0)? != 0)
    }

    /// Sets TX checksum offload (`ethtool -K IF tx on|off`) of link `ifname`.
    pub fn set_tx_checksum(&self, ifname: &str, on: bool) -> Result<()> {
        self.ethtool_value(ifname, ETHTOOL_STXCSUM, on as u32)?;
        tracing::debug!(link = ifname, on, netns = %self.netns_label(), "set tx checksum offload");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_kernel_size() {
        assert_eq!(std::mem::size_of::<IfreqData>(), std::mem::size_of::<libc::ifreq>());
    }
}
