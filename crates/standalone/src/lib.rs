//! `standalone`: kubetron's CNI plugin in standalone mode (no Kubernetes): the direct path, where
//! the plugin itself writes the pod's logical switch port to the OVN Northbound database.
//! [`KubetronPlugin`] implements [`cni::Plugin`] on real OVN; [`ByMode`] is what the `kubetron`
//! binary runs as a CNI plugin (standalone configs here, cluster and chained ones to
//! [`cni::shim::Shim`]); [`node_gc`] is `kubetron gc`.
//!
//! Owns: the plugin's Northbound reads and writes. Must not touch: Kubernetes. Cluster mode never
//! links it into the node side: the node agent (`node`) and the shim (`cni`) have no Northbound
//! code at all (`cni/tests/no_nb.rs`).
//!
//! One request flows one way: the config and environment name a logical switch and a pod
//! interface; [`port`] finds or creates the logical switch port in the Northbound database;
//! [`cni::plumb`] makes the veth pair and addresses with netlink and plugs the host end into the
//! integration bridge through the local Open_vSwitch database; ADD then waits, bounded, until OVN
//! reports the port up. Whatever ADD made is undone when a later step fails ([`undo`]).
//!
//! Every verb runs under one deadline, `timeout_ms` of the network config ([`KubetronPlugin::run`]
//! is the single place every verb passes through). When it passes the call fails with code 11
//! (STATUS: 50) naming what it was waiting for: the database connections a call opens are
//! registered with the call ([`Call`]), and the oldest request still unanswered on each is named.
//! ADD stops its plug step a little earlier ([`plug_deadline`]) so that the undo of what it made
//! still runs, with its own bound, inside the deadline.

mod add;
mod check;
mod conn;
mod del;
mod gc;
mod port;
mod undo;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ovsdb::Client;

use cni::shim::Shim;
use cni::Command;
use cni::{Attachment, CniError, CniResult, ErrorCode, Plugin, Request};
use model::netconf::cleanup_reserve_ms;
use model::netconf::Mode;

pub use gc::{node_gc, NodeGc, Removed};

/// The kubetron CNI plugin.
#[derive(Debug, Clone)]
pub struct KubetronPlugin {
    /// How long to wait for a database connection (TCP connect plus TLS handshake) before
    /// answering "try again later".
    pub connect_timeout: Duration,
}

impl Default for KubetronPlugin {
    fn default() -> Self {
        KubetronPlugin { connect_timeout: Duration::from_secs(3) }
    }
}

/// A database connection of one call, for the deadline's error message.
struct Conn {
    what: String,
    remote: String,
    client: Option<Client>,
}

/// One plugin call: its deadline, the settings its connections use and the connections it made.
pub(crate) struct Call {
    command: Command,
    started: tokio::time::Instant,
    timeout: Duration,
    /// Inactivity probe of the call's database connections.
    probe: Duration,
    /// TLS files for `ssl:` Northbound remotes (private key, certificate, CA certificate).
    nb_tls: Option<ovsdb::TlsConfig>,
    conns: Mutex<Vec<Conn>>,
}

tokio::task_local! {
    static CALL: Arc<Call>;
}

impl Call {
    fn new(req: &Request) -> Call {
        let k = &req.config.kubetron;
        let timeout = Duration::from_millis(k.timeout_ms);
        Call {
            command: req.command(),
            started: tokio::time::Instant::now(),
            timeout,
            probe: probe_interval(timeout),
            nb_tls: k.nb_tls().map(|(key, cert, ca)| ovsdb::TlsConfig::new(key, cert, ca)),
            conns: Mutex::new(Vec::new()),
        }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the call was waiting for when its deadline passed.
    fn waiting_for(&self) -> String {
        let mut parts = Vec::new();
        for c in self.conns().iter() {
            match &c.client {
                None => parts.push(format!("connecting to the {} at {}", c.what, c.remote)),
                Some(client) => {
                    if let Some(r) = client.in_flight().first() {
                        parts.push(format!(
                            "the {} at {} to answer {} (waiting {} ms)",
                            c.what,
                            client.remote(),
                            r.method,
                            r.waiting.as_millis()
                        ));
                    } else if !client.state().borrow().connected {
                        let last = client.state().borrow().last_error.clone().unwrap_or_default();
                        parts.push(format!("the {} at {}, which is not connected ({last})", c.what, client.remote()));
                    }
                }
            }
        }
        if parts.is_empty() {
            "no database request was outstanding (plugging the interface or waiting for OVN to report the port)".into()
        } else {
            parts.join("; ")
        }
    }

    fn expired(&self, code: ErrorCode, limit: Duration) -> CniError {
        let msg = format!(
            "{} did not finish within {} ms (timeout_ms {}); it was waiting for {}",
            self.command,
            limit.as_millis(),
            self.timeout.as_millis(),
            self.waiting_for()
        );
        CniError::new(code, msg)
    }

    /// The part of the deadline kept for undoing a failed ADD.
    fn cleanup_reserve(&self) -> Duration {
        Duration::from_millis(cleanup_reserve_ms(self.timeout.as_millis() as u64))
    }
}

/// The inactivity probe of the plugin's database connections: an echo after this long without
/// traffic, the connection dropped (in-flight requests fail, code 11) after as long again. 5 s as
/// ovn-controller, or a quarter of `timeout_ms` when that is shorter (so a silent server is
/// noticed before the deadline).
pub fn probe_interval(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(250), ovsdb::client::DEFAULT_INACTIVITY_PROBE)
}

/// Runs `f` with the current call (`None` outside [`KubetronPlugin::run`], e.g. in unit tests).
fn with_call<T>(f: impl FnOnce(Option<&Call>) -> T) -> T {
    match CALL.try_with(|c| c.clone()) {
        Ok(c) => f(Some(&c)),
        Err(_) => f(None),
    }
}

/// Registers a connection being opened; returns its slot for [`connected`].
fn connecting(what: &str, remote: &str) -> Option<usize> {
    with_call(|c| {
        c.map(|c| {
            let mut v = c.conns();
            v.push(Conn { what: what.to_string(), remote: remote.to_string(), client: None });
            v.len() - 1
        })
    })
}

/// Records the client of a connection registered with [`connecting`].
fn connected(slot: Option<usize>, client: &Client) {
    let Some(i) = slot else { return };
    with_call(|c| {
        if let Some(conn) = c.map(|c| c.conns()).as_mut().and_then(|v| v.get_mut(i)) {
            conn.client = Some(client.clone());
        }
    })
}

/// The inactivity probe for this call's connections.
fn call_probe() -> Duration {
    with_call(|c| c.map(|c| c.probe).unwrap_or(ovsdb::client::DEFAULT_INACTIVITY_PROBE))
}

/// TLS files for `ssl:` Northbound remotes of this call.
fn call_nb_tls() -> Option<ovsdb::TlsConfig> {
    with_call(|c| c.and_then(|c| c.nb_tls.clone()))
}

/// When ADD's plug step must stop so that undoing it still fits in the deadline.
pub(crate) fn plug_deadline() -> tokio::time::Instant {
    with_call(|c| match c {
        Some(c) => c.started + c.timeout.saturating_sub(c.cleanup_reserve()),
        None => tokio::time::Instant::now() + Duration::from_secs(86400),
    })
}

/// Runs ADD's plug step until [`plug_deadline`]; past it, the step is dropped (canceled) and the
/// error names what it was waiting for (code 11).
pub(crate) async fn until_plug_deadline<T>(f: impl Future<Output = Result<T, CniError>>) -> Result<T, CniError> {
    let at = plug_deadline();
    tokio::pin!(f);
    tokio::select! {
        r = &mut f => r,
        // `f` is still alive here, so its requests still show as in flight.
        _ = tokio::time::sleep_until(at) => Err(with_call(|c| match c {
            Some(c) => c.expired(ErrorCode::TryAgainLater, c.timeout.saturating_sub(c.cleanup_reserve())),
            None => CniError::try_again_later("ADD did not finish in time"),
        })),
    }
}

/// Runs an undo within the part of the deadline kept for it (failures are the undo's to log).
pub(crate) async fn bounded_cleanup(f: impl Future<Output = ()>) {
    let reserve = with_call(|c| c.map(|c| c.cleanup_reserve()).unwrap_or(Duration::from_secs(5)));
    if tokio::time::timeout(reserve, f).await.is_err() {
        tracing::warn!("undoing a failed ADD did not finish within {} ms; some of it may be left behind", reserve.as_millis());
    }
}

impl KubetronPlugin {
    /// Runs one verb under the call's deadline (`timeout_ms`): the single place every verb
    /// passes through. Past the deadline the verb is dropped and the call fails with
    /// `on_expiry` (11, or 50 for STATUS) naming what it was waiting for.
    fn run<T, F: Future<Output = Result<T, CniError>>>(&self, req: &Request, on_expiry: ErrorCode, f: F) -> Result<T, CniError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CniError::internal(format!("starting the async runtime: {e}")))?;
        let out = rt.block_on(async {
            let call = Arc::new(Call::new(req));
            let timeout = call.timeout;
            let bounded = async {
                tokio::pin!(f);
                tokio::select! {
                    r = &mut f => r,
                    // `f` is still alive here, so its requests still show as in flight.
                    _ = tokio::time::sleep(timeout) => Err(call.expired(on_expiry, timeout)),
                }
            };
            CALL.scope(call.clone(), bounded).await
        });
        // Do not wait for blocking work still running (e.g. a slow DNS lookup of a remote's host
        // name): the answer is decided, and the process must not outlive its deadline.
        rt.shutdown_background();
        out
    }
}

impl Plugin for KubetronPlugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        self.run(req, ErrorCode::TryAgainLater, add::add(self, req))
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        self.run(req, ErrorCode::TryAgainLater, del::del(self, req))
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.run(req, ErrorCode::TryAgainLater, check::check(self, req))
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.run(req, ErrorCode::NotAvailable, conn::status(self, req))
    }
    fn gc(&self, req: &Request, valid: &[Attachment]) -> Result<(), CniError> {
        self.run(req, ErrorCode::TryAgainLater, gc::gc(self, req, valid))
    }
}

/// The plugin by the config's mode (see [`model::netconf::KubetronNetConf::mode`]): `standalone` ->
/// [`KubetronPlugin`] (the direct path), `cluster` and `chained` -> [`Shim`].
#[derive(Debug, Clone, Default)]
pub struct ByMode {
    /// The direct path.
    pub standalone: KubetronPlugin,
    /// The shim.
    pub shim: Shim,
}

impl ByMode {
    fn pick(&self, req: &Request) -> &dyn Plugin {
        match req.config.kubetron.mode() {
            Mode::Standalone => &self.standalone,
            Mode::Cluster | Mode::Chained => &self.shim,
        }
    }
}

impl Plugin for ByMode {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        self.pick(req).add(req)
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        self.pick(req).del(req)
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.pick(req).check(req)
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.pick(req).status(req)
    }
    fn gc(&self, req: &Request, valid_attachments: &[Attachment]) -> Result<(), CniError> {
        self.pick(req).gc(req, valid_attachments)
    }
}
