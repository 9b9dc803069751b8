//! Network namespaces: open by path, create/delete named ones like `ip netns add/del`
//! (a bind mount under /run/netns), and run a closure inside one on a dedicated thread.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::error::{NetdevError, Result};

/// Where named network namespaces live (as with iproute2).
pub const NETNS_RUN_DIR: &str = "/run/netns";

static RUN_DIR_LOCK: Mutex<()> = Mutex::new(());

/// An open network namespace (holds an fd on it, so it stays alive while this value lives).
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens a netns by path: `/var/run/netns/NAME`, `/proc/PID/ns/net` (CNI_NETNS is such a path).
    /// Fails if the path does not exist or is not a network namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| NetdevError::NetnsOpen { path: path.clone(), source })?;
        let ns = Netns { file, path };
        // NS_GET_NSTYPE (_IO(0xb7, 0x3)) answers CLONE_NEWNET for a netns fd; ENOTTY for anything else.
        const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
        // SAFETY: ioctl without argument on a valid fd.
        let t = unsafe { libc::ioctl(ns.file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if t != libc::CLONE_NEWNET {
            return Err(NetdevError::NetnsOpen {
                path: ns.path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a network namespace"),
            });
        }
        Ok(ns)
    }

    /// The network namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        Netns::open(format!("/proc/self/task/{tid}/ns/net"))
    }

    /// The path of a named netns: `/run/netns/NAME`.
    pub fn named_path(name: &str) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(name)
    }

    /// Creates a named netns like `ip netns add NAME` and opens it. Fails with `NetnsExists` if taken.
    pub fn create(name: &str) -> Result<Netns> {
        validate_netns_name(name)?;
        let path = Netns::named_path(name);
        prepare_run_dir()?;
        // O_EXCL: refuse an existing name (another netns or a leftover file).
        let cpath = cstr(&path)?;
        // SAFETY: valid C string; the returned fd is closed right away.
        let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST) {
                return Err(NetdevError::NetnsExists(path));
            }
            return Err(NetdevError::io(format!("create {}", path.display()), e));
        }
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        // A new thread gets the fresh netns (unshare), then bind-mounts it over the file.
        let target = path.clone();
        let res = std::thread::spawn(move || -> Result<()> {
            // SAFETY: unshare of the network namespace affects only this (short-lived) thread.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
                return Err(NetdevError::last_os("unshare(CLONE_NEWNET)"));
            }
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            let src = cstr(Path::new(&format!("/proc/self/task/{tid}/ns/net")))?;
            let dst = cstr(&target)?;
            // SAFETY: valid C strings; a bind mount of this thread's netns file.
            let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), c"none".as_ptr(), libc::MS_BIND, std::ptr::null()) };
            if rc < 0 {
                return Err(NetdevError::last_os(format!("bind-mount netns on {}", target.display())));
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(NetdevError::ThreadPanicked(path.clone())));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        tracing::debug!(netns = %path.display(), "created network namespace");
        Netns::open(&path)
    }

    /// Deletes a named netns like `ip netns del NAME`: lazy unmount and unlink.
    /// Returns `Ok(false)` if it did not exist. The netns itself lives on while something uses it.
    pub fn delete(name: &str) -> Result<bool> {
        validate_netns_name(name)?;
        let path = Netns::named_path(name);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(false);
        }
        let cpath = cstr(&path)?;
        // SAFETY: valid C string. EINVAL (not a mount point) is fine: a leftover file.
        let rc = unsafe { libc::umount2(cpath.as_ptr(), libc::MNT_DETACH) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
                return Err(NetdevError::io(format!("umount {}", path.display()), e));
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetdevError::io(format!("remove {}", path.display()), e)),
        }
        tracing::debug!(netns = %path.display(), "deleted network namespace");
        Ok(true)
    }

    /// The path this netns was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The netns inode: two `Netns` with the same (dev, inode) are the same namespace.
    pub fn id(&self) -> Result<(u64, u64)> {
        let m = self.file.metadata().map_err(|e| NetdevError::io("fstat netns", e))?;
        Ok((m.dev(), m.ino()))
    }

    /// A second handle on the same namespace.
    pub fn try_clone(&self) -> Result<Netns> {
        Ok(Netns { file: self.file.try_clone().map_err(|e| NetdevError::io("dup netns fd", e))?, path: self.path.clone() })
    }

    /// Runs `f` inside this netns on a new thread (setns happens there, never on the caller's thread)
    /// and returns its result. A panic in `f` becomes `ThreadPanicked`.
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let fd = self.file.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(move || -> Result<T> {
                // SAFETY: fd is a valid netns fd owned by self, which outlives this scoped thread.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } < 0 {
                    return Err(NetdevError::last_os(format!("setns({})", self.path.display())));
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(NetdevError::ThreadPanicked(self.path.clone())))
        })
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A named netns that is deleted when dropped (tests, sandboxes). Names are unique per process.
#[derive(Debug)]
pub struct TempNetns {
    name: String,
    ns: Netns,
}

impl TempNetns {
    /// Creates `/run/netns/{prefix}-{pid}-{n}`.
    pub fn new(prefix: &str) -> Result<TempNetns> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let ns = Netns::create(&name)?;
        Ok(TempNetns { name, ns })
    }

    /// Its name (as for `ip netns exec NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The open namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }
}

impl std::ops::Deref for TempNetns {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

impl Drop for TempNetns {
    fn drop(&mut self) {
        if let Err(e) = Netns::delete(&self.name) {
            tracing::warn!(netns = %self.name, error = %e, "cannot delete temporary netns");
        }
    }
}

fn validate_netns_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Err(NetdevError::InvalidName { name: name.to_string(), reason: reason.to_string() });
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not names");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("contains '/' or NUL");
    }
    if name.len() > 255 {
        return bad("longer than 255 bytes");
    }
    Ok(())
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| NetdevError::InvalidArgument(format!("path {} contains NUL", p.display())))
}

/// Makes /run/netns exist and be a shared mount point (what `ip netns add` does), so that
/// netns mounts propagate to other mount namespaces.
fn prepare_run_dir() -> Result<()> {
    let _g = RUN_DIR_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| NetdevError::io(format!("mkdir {NETNS_RUN_DIR}"), e))?;
    let dir = cstr(Path::new(NETNS_RUN_DIR))?;
    for attempt in 0..2 {
        // SAFETY: valid C strings; changes propagation of an existing mount.
        let rc = unsafe { libc::mount(c"".as_ptr(), dir.as_ptr(), c"none".as_ptr(), libc::MS_SHARED | libc::MS_REC, std::ptr::null()) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) || attempt == 1 {
            return Err(NetdevError::io(format!("make {NETNS_RUN_DIR} shared"), e));
        }
        // Not a mount point yet: bind it on itself, then retry.
        // SAFETY: valid C strings; bind mount of a directory on itself.
        let rc = unsafe { libc::mount(dir.as_ptr(), dir.as_ptr(), c"none".as_ptr(), libc::MS_BIND | libc::MS_REC, std::ptr::null()) };
        if rc < 0 {
            return Err(NetdevError::last_os(format!("bind-mount {NETNS_RUN_DIR} on itself")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_names_are_validated() {
        for bad in ["", ".", "..", "a/b", "x\0y"] {
            assert!(matches!(validate_netns_name(bad), Err(NetdevError::InvalidName { .. })), "{bad:?}");
        }
        validate_netns_name("kt-test-1").unwrap();
    }

    #[test]
    fn open_rejects_non_netns_files() {
        let e = Netns::open("/proc/self/status").unwrap_err();
        assert!(matches!(e, NetdevError::NetnsOpen { .. }), "{e}");
        let e = Netns::open("/nonexistent/netns").unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }
}
