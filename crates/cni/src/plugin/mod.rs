//! The kubetron plugin itself: [`KubetronPlugin`] implements [`crate::Plugin`] on real OVN.
//!
//! One request flows one way: the config and environment name a logical switch and a pod
//! interface; [`port`] finds or creates the logical switch port in the Northbound database;
//! [`plumb`] makes the veth pair and addresses with netlink and plugs the host end into the
//! integration bridge through the local Open_vSwitch database; ADD then waits, bounded, until OVN
//! reports the port up. Whatever ADD made is undone when a later step fails ([`undo`]).

mod add;
mod check;
mod conn;
mod del;
mod gc;
mod plumb;
mod port;
mod undo;

use std::time::Duration;

use crate::{Attachment, CniError, CniResult, Plugin, Request};

/// The kubetron CNI plugin.
#[derive(Debug, Clone)]
pub struct KubetronPlugin {
    /// How long to wait for a database connection before answering "try again later".
    pub connect_timeout: Duration,
}

impl Default for KubetronPlugin {
    fn default() -> Self {
        KubetronPlugin { connect_timeout: Duration::from_secs(3) }
    }
}

impl KubetronPlugin {
    fn block_on<T>(&self, f: impl std::future::Future<Output = Result<T, CniError>>) -> Result<T, CniError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CniError::internal(format!("starting the async runtime: {e}")))?;
        rt.block_on(f)
    }
}

impl Plugin for KubetronPlugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        self.block_on(add::add(self, req))
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        self.block_on(del::del(self, req))
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.block_on(check::check(self, req))
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.block_on(conn::status(self, req))
    }
    fn gc(&self, req: &Request, valid: &[Attachment]) -> Result<(), CniError> {
        self.block_on(gc::gc(self, req, valid))
    }
}
