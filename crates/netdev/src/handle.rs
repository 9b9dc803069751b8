//! `Handle`: a netlink socket bound to one network namespace, the entry point of every operation.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{NetdevError, Result};
use crate::netns::Netns;
use crate::nl::NlSocket;

/// Talks to the kernel about the links, addresses and routes of one network namespace.
///
/// Sockets belong to the netns they were created in, so a `Handle` made with [`Handle::in_netns`]
/// acts on that netns from any thread, without the caller ever calling `setns`.
/// A `Handle` is `Send` but not `Sync`: use one per thread/task.
pub struct Handle {
    pub(crate) nl: NlSocket,
    /// AF_INET datagram socket for ioctls (ethtool), in the same netns.
    ioctl: OwnedFd,
    /// The netns, when not the creator's own (needed for /proc/sys writes).
    pub(crate) netns: Option<Netns>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("netns", &self.netns.as_ref().map(|n| n.path().to_path_buf())).finish()
    }
}

impl Handle {
    /// A handle on the calling thread's current network namespace.
    pub fn new() -> Result<Handle> {
        Ok(Handle { nl: NlSocket::new()?, ioctl: ioctl_socket()?, netns: None })
    }

    /// A handle on `ns`: its sockets are created on a helper thread inside `ns`.
    pub fn in_netns(ns: &Netns) -> Result<Handle> {
        let (nl, ioctl) = ns.run(|| -> Result<(NlSocket, OwnedFd)> { Ok((NlSocket::new()?, ioctl_socket()?)) })??;
        Ok(Handle { nl, ioctl, netns: Some(ns.try_clone()?) })
    }

    /// Where this handle acts, for messages: the netns path or "current netns".
    pub fn netns_label(&self) -> String {
        self.netns.as_ref().map(|n| n.path().display().to_string()).unwrap_or_else(|| "the current netns".to_string())
    }

    /// Runs `f` in this handle's netns: directly for a current-netns handle, else on a thread in it.
    pub(crate) fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        match &self.netns {
            Some(ns) => ns.run(f),
            None => Ok(f()),
        }
    }

    pub(crate) fn ioctl_fd(&self) -> RawFd {
        self.ioctl.as_raw_fd()
    }
}

fn ioctl_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); owned right after.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(NetdevError::last_os("socket(AF_INET, SOCK_DGRAM)"));
    }
    // SAFETY: fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
