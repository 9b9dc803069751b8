//! Named network namespaces made with `ip netns`, for the chassis this crate runs. A [`NetnsGuard`]
//! deletes the namespace it created when dropped; it never deletes one it did not create.

use crate::process::run;
use crate::Error;

/// Whether the named netns exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Runs `cmd` inside the named netns (`ip netns exec NAME cmd...`); returns stdout.
pub fn exec(name: &str, cmd: &[&str]) -> Result<String, Error> {
    let mut args = vec!["netns", "exec", name];
    args.extend_from_slice(cmd);
    run("ip", &args)
}

/// A named netns this process created.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
    deleted: bool,
}

impl NetnsGuard {
    /// Creates the netns `name` with loopback up; fails if it already exists (so two users can
    /// never share one by accident).
    pub fn create(name: &str) -> Result<NetnsGuard, Error> {
        if exists(name) {
            return Err(Error::NotReady(format!("network namespace {name} already exists")));
        }
        run("ip", &["netns", "add", name])?;
        let guard = NetnsGuard { name: name.to_string(), deleted: false };
        exec(name, &["ip", "link", "set", "lo", "up"])?;
        Ok(guard)
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Deletes the namespace (idempotent).
    pub fn delete(&mut self) -> Result<(), Error> {
        if !self.deleted && exists(&self.name) {
            run("ip", &["netns", "del", &self.name])?;
        }
        self.deleted = true;
        Ok(())
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            tracing::warn!("deleting netns {}: {e}", self.name);
        }
    }
}
