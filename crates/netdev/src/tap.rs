//! Persistent tap devices (`ip tuntap add dev NAME mode tap vnet_hdr`): opened through `/dev/net/tun`
//! with `TUNSETIFF` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, `linux/if_tun.h`) and kept with `TUNSETPERSIST`,
//! so that a VMM (qemu `-netdev tap,ifname=NAME`) attaches to it later.
//!
//! The device is created in the netns of the `/dev/net/tun` file, i.e. of the thread that opens it: the
//! open runs inside the handle's netns.

use std::ffi::CString;

use crate::error::{NetdevError, Result};
use crate::handle::Handle;
use crate::link::{validate_ifname, Link};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `_IOW('T', 203, int)`.
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;

/// `struct ifreq` with the `ifr_flags` member of its union.
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn make_tap(name: &str) -> std::result::Result<(), (String, std::io::Error)> {
    let path = CString::new("/dev/net/tun").expect("no NUL");
    // SAFETY: open(2) of a constant path; the fd is closed below on every path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(("open /dev/net/tun".into(), std::io::Error::last_os_error()));
    }
    let mut ifr = IfreqFlags { name: [0; libc::IFNAMSIZ], flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, _pad: [0; 22] };
    ifr.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: ifr is a valid ifreq for the call; fd is ours.
    let res = if unsafe { libc::ioctl(fd, TUNSETIFF as _, &mut ifr as *mut IfreqFlags) } < 0 {
        Err((format!("TUNSETIFF {name}"), std::io::Error::last_os_error()))
    // SAFETY: TUNSETPERSIST takes an int by value.
    } else if unsafe { libc::ioctl(fd, TUNSETPERSIST as _, 1 as libc::c_ulong) } < 0 {
        Err((format!("TUNSETPERSIST {name}"), std::io::Error::last_os_error()))
    } else {
        Ok(())
    };
    // SAFETY: closing our own fd; the persistent device outlives it.
    unsafe { libc::close(fd) };
    res
}

impl Handle {
    /// Creates a persistent tap `name` (no packet-info header, with virtio-net headers, as KubeVirt and
    /// `ip tuntap ... vnet_hdr` make it) in this handle's netns, sets its MTU if given, and reads it back.
    /// `LinkExists` if a link of that name is there already (TUNSETIFF would attach to an existing tap
    /// instead of failing). Delete it with [`Handle::delete_link`].
    pub fn create_tap(&self, name: &str, mtu: Option<u32>) -> Result<Link> {
        validate_ifname(name)?;
        if self.link_by_name(name)?.is_some() {
            return Err(NetdevError::LinkExists { name: name.to_string(), netns: self.netns_label() });
        }
        let owned = name.to_string();
        self.run_in(move || make_tap(&owned))?.map_err(|(op, e)| {
            if e.raw_os_error() == Some(libc::EBUSY) || e.raw_os_error() == Some(libc::EEXIST) {
                NetdevError::LinkExists { name: name.to_string(), netns: self.netns_label() }
            } else {
                NetdevError::io(format!("{op} in {}", self.netns_label()), e)
            }
        })?;
        tracing::debug!(tap = name, netns = %self.netns_label(), "created persistent tap");
        if let Some(mtu) = mtu {
            if let Err(e) = self.set_link(name).mtu(mtu).apply() {
                let _ = self.delete_link(name);
                return Err(e);
            }
        }
        self.link_by_name(name)?.ok_or_else(|| NetdevError::LinkNotFound(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_flags_has_kernel_size() {
        assert_eq!(std::mem::size_of::<IfreqFlags>(), std::mem::size_of::<libc::ifreq>());
    }
}
