//! The client handle. [`Client`] is cheap to clone: one task owns the connection; requests go to
//! it over a channel and replies come back matched by id.

mod config;
mod conn;
mod remote;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use config::{ClientConfig, ConnectionState, LockEvent, DEFAULT_INACTIVITY_PROBE};
pub use remote::Remote;

use crate::cluster::ServerDatabase;
use crate::error::{Error, Result};
use crate::monitor::{Monitor, MonitorRequest};
use crate::ops::{parse_transact_reply, transact_params, Condition, OpResult, Operation};
use crate::schema::DatabaseSchema;
use conn::{Command, Conn};

struct Inner {
    tx: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnectionState>,
    lock_events: broadcast::Sender<LockEvent>,
    schemas: Mutex<HashMap<String, Arc<DatabaseSchema>>>,
    next_monitor: AtomicU64,
    config: Arc<ClientConfig>,
    /// Requests waiting for their reply, for [`Client::in_flight`].
    in_flight: Mutex<HashMap<u64, (String, Instant)>>,
    next_request: AtomicU64,
}

/// A request waiting for its reply (see [`Client::in_flight`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The JSON-RPC method (`transact`, `get_schema`, `monitor_cond_since`, `echo`, ...).
    pub method: String,
    /// How long it has been waiting (for a connection, then for the reply).
    pub waiting: Duration,
}

/// Removes a request from `Inner::in_flight` when its call ends (completed, failed or dropped).
struct Tracked<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

/// An OVSDB client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("state", &*self.inner.state.borrow()).finish()
    }
}

impl Client {
    /// Connects to a comma-separated list of remotes with default settings.
    pub async fn connect_to(remotes: &str) -> Result<Client> {
        Self::connect(ClientConfig::new(remotes)?).await
    }

    /// Starts the connection task and waits (up to `initial_timeout`) for the first connection.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let timeout = config.initial_timeout;
        let c = Self::start(config)?;
        c.wait_connected(timeout).await?;
        Ok(c)
    }

    /// Starts the connection task without waiting; requests queue until connected. Must be
    /// called inside a tokio runtime.
    pub fn start(config: ClientConfig) -> Result<Client> {
        if config.remotes.is_empty() {
            return Err(Error::InvalidRemote { remote: String::new(), reason: "no remote configured".into() });
        }
        let tls = match &config.tls {
            Some(t) => Some(crate::tls::client_config(t)?),
            None => None,
        };
        let config = Arc::new(config);
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(ConnectionState::default());
        let (lock_events, _) = broadcast::channel(64);
        let conn = Conn::new(config.clone(), tls, rx, state_tx, lock_events.clone());
        tokio::spawn(conn.run());
        Ok(Client {
            inner: Arc::new(Inner {
                tx,
                state,
                lock_events,
                schemas: Mutex::new(HashMap::new()),
                next_monitor: AtomicU64::new(1),
                config,
                in_flight: Mutex::new(HashMap::new()),
                next_request: AtomicU64::new(1),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The connection state; `changed()` on the receiver wakes on every change.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.clone()
    }

    /// Waits until connected.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.inner.state.clone();
        let r = tokio::time::timeout(timeout, rx.wait_for(|s| s.connected || s.closed)).await.map(|r| r.map(|s| s.clone()));
        match r {
            Ok(Ok(s)) if s.connected => Ok(()),
            Ok(Ok(s)) => Err(Error::Connect {
                remote: s.remote.clone().unwrap_or_else(|| self.remotes()),
                reason: s.last_error.clone().unwrap_or_else(|| "closed".into()),
            }),
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                let s = self.inner.state.borrow().clone();
                Err(Error::Timeout(format!(
                    "not connected to {} after {timeout:?} (last error: {})",
                    self.remotes(),
                    s.last_error.unwrap_or_else(|| "none yet".into())
                )))
            }
        }
    }

    /// The configured remotes, comma-separated, as given.
    pub fn remotes(&self) -> String {
        self.inner.config.remotes.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",")
    }

    /// The remote of the current (or last tried) connection, else the configured remotes: what
    /// error messages name.
    pub fn remote(&self) -> String {
        self.inner.state.borrow().remote.clone().unwrap_or_else(|| self.remotes())
    }

    /// The error for a request made after the connection task ended.
    pub(crate) fn closed_error(&self) -> Error {
        let s = self.inner.state.borrow().clone();
        Error::Closed {
            remote: s.remote.unwrap_or_else(|| self.remotes()),
            reason: s.last_error.unwrap_or_else(|| "the client was shut down".into()),
        }
    }

    /// Requests sent through this client (and its clones) still waiting for their reply,
    /// oldest first. Lets a caller with a deadline say what it was waiting for.
    pub fn in_flight(&self) -> Vec<InFlight> {
        let now = Instant::now();
        let mut v: Vec<InFlight> = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|(m, t)| InFlight { method: m.clone(), waiting: now.saturating_duration_since(*t) })
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.waiting));
        v
    }

    fn track(&self, method: &str) -> Tracked<'_> {
        let id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(id, (method.to_string(), Instant::now()));
        Tracked { inner: &self.inner, id }
    }

    /// Sends `cmd` and waits for its reply, bounded by `request_timeout`.
    async fn request<T>(&self, method: &str, cmd: Command, rx: oneshot::Receiver<Result<T>>) -> Result<T> {
        let _tracked = self.track(method);
        self.inner.tx.send(cmd).map_err(|_| self.closed_error())?;
        let r = match self.inner.config.request_timeout {
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r,
                Err(_) => return Err(Error::RequestTimeout { remote: self.remote(), method: method.to_string(), timeout: t }),
            },
            None => rx.await,
        };
        r.map_err(|_| self.closed_error())?
    }

    /// Drops the current connection and reconnects (requests in flight fail).
    pub fn reconnect(&self) {
        let _ = self.inner.tx.send(Command::Reconnect);
    }

    /// Lock notifications (`locked`, `stolen`, lost on disconnect).
    pub fn lock_events(&self) -> broadcast::Receiver<LockEvent> {
        self.inner.lock_events.subscribe()
    }

    /// Sends a request with already-serialized params and returns the raw result.
    pub async fn call_raw(&self, method: &str, params: Vec<u8>) -> Result<Bytes> {
        let (reply, rx) = oneshot::channel();
        self.request(method, Command::Call { method: method.to_string(), params, reply }, rx).await
    }

    /// Sends a request and deserializes its result.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: &Value) -> Result<T> {
        let p = serde_json::to_vec(params).map_err(|e| Error::Protocol(e.to_string()))?;
        let b = self.call_raw(method, p).await?;
        serde_json::from_slice(&b).map_err(|e| Error::Protocol(format!("bad {method} reply: {e}")))
    }

    pub async fn list_dbs(&self) -> Result<Vec<String>> {
        self.call("list_dbs", &Value::Array(vec![])).await
    }

    /// `echo`: the server returns the params.
    pub async fn echo(&self, params: Value) -> Result<Value> {
        self.call("echo", &params).await
    }

    /// Fetches (and caches) a database schema.
    pub async fn get_schema(&self, db: &str) -> Result<Arc<DatabaseSchema>> {
        if let Some(s) = self.inner.schemas.lock().unwrap_or_else(|e| e.into_inner()).get(db) {
            return Ok(s.clone());
        }
        self.refresh_schema(db).await
    }

    /// Fetches a database schema, replacing the cached one.
    pub async fn refresh_schema(&self, db: &str) -> Result<Arc<DatabaseSchema>> {
        let v: Value = match self.call("get_schema", &Value::Array(vec![Value::String(db.into())])).await {
            Err(Error::Rpc { error, .. }) if error.to_string().contains("unknown database") => {
                return Err(Error::UnknownDatabase(db.to_string()))
            }
            other => other?,
        };
        let s = Arc::new(DatabaseSchema::from_json(&v)?);
        self.inner.schemas.lock().unwrap_or_else(|e| e.into_inner()).insert(db.to_string(), s.clone());
        Ok(s)
    }

    /// Runs a transaction. Values are normalized and checked against the schema first (unless
    /// disabled in the configuration); a server-side failure of any operation (or of the commit)
    /// becomes [`Error::Transaction`] with the server's `error` and `details`.
    pub async fn transact(&self, db: &str, mut ops: Vec<Operation>) -> Result<Vec<OpResult>> {
        if self.inner.config.check_schema {
            let schema = self.get_schema(db).await?;
            for op in ops.iter_mut() {
                op.check(&schema)?;
            }
        }
        self.transact_unchecked(db, ops).await
    }

    /// Runs a transaction without checking it against the schema.
    /// Set mutations of one row are folded into one (see the `fold` module); the results are one
    /// per operation given, as always.
    /// An update, mutate or delete with an unrestricted `where` is still refused
    /// ([`Operation::check_where`]).
    pub async fn transact_unchecked(&self, db: &str, ops: Vec<Operation>) -> Result<Vec<OpResult>> {
        ops.iter().try_for_each(Operation::check_where)?;
        let f = crate::fold::fold(ops);
        let params = transact_params(db, &f.ops)?;
        let raw = self.call_raw("transact", params).await?;
        match parse_transact_reply(&f.ops, &raw) {
            Ok(r) => Ok(f.results(r)),
            Err(e) => Err(f.error(e)),
        }
    }

    /// Starts a monitor. When this returns, the initial contents are the first event of the
    /// returned [`Monitor`].
    pub async fn monitor(&self, mut req: MonitorRequest) -> Result<Monitor> {
        let schema = self.get_schema(&req.db).await?;
        req.check(&schema)?;
        let key = self.inner.next_monitor.fetch_add(1, Ordering::Relaxed);
        let (events, rx) = mpsc::unbounded_channel();
        let (reply, done) = oneshot::channel();
        let method = req.method.name();
        let mut m = Monitor { client: self.clone(), key, rx, schema, canceled: false };
        match self.request(method, Command::MonitorStart { key, req, events, reply }, done).await {
            Ok(()) => Ok(m),
            // Not answered in time: dropping `m` cancels it in the connection task.
            Err(e @ Error::RequestTimeout { .. }) => Err(e),
            Err(e) => {
                m.canceled = true;
                Err(e)
            }
        }
    }

    pub(crate) async fn monitor_cond_change(&self, key: u64, conditions: BTreeMap<String, Vec<Condition>>) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.request("monitor_cond_change", Command::CondChange { key, conditions, reply }, rx).await
    }

    pub(crate) async fn monitor_cancel(&self, key: u64) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.request("monitor_cancel", Command::MonitorCancel { key, reply: Some(reply) }, rx).await
    }

    pub(crate) fn monitor_cancel_nowait(&self, key: u64) {
        let _ = self.inner.tx.send(Command::MonitorCancel { key, reply: None });
    }

    async fn lock_cmd(&self, name: &str, method: &'static str) -> Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.request(method, Command::Lock { name: name.to_string(), method, reply }, rx).await
    }

    /// `lock`: true if acquired now; otherwise [`LockEvent::Locked`] follows when it is.
    pub async fn lock(&self, name: &str) -> Result<bool> {
        self.lock_cmd(name, "lock").await
    }
    /// `steal`: takes the lock from its holder (who gets `stolen`).
    pub async fn steal(&self, name: &str) -> Result<bool> {
        self.lock_cmd(name, "steal").await
    }
    /// `unlock`.
    pub async fn unlock(&self, name: &str) -> Result<()> {
        self.lock_cmd(name, "unlock").await.map(|_| ())
    }

    /// The `_Server.Database` row of `db` on the currently connected server.
    pub async fn server_database(&self, db: &str) -> Result<ServerDatabase> {
        let op = Operation::select("Database").filter(Condition::eq("name", db));
        let r = self.transact_unchecked("_Server", vec![op]).await?;
        let rows = r.into_iter().next().and_then(|r| r.rows).unwrap_or_default();
        rows.first().map(ServerDatabase::from_row).ok_or_else(|| Error::UnknownDatabase(db.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection error names the remote it failed on (it once read "connecting to :
    /// connection ... lost" when the first connection never came up).
    #[tokio::test]
    async fn connection_errors_name_the_remote() {
        let dir = std::env::temp_dir().join(format!("ovsdb-no-such-dir-{}", std::process::id()));
        let remote = format!("unix:{}", dir.join("db.sock").display());

        // Reconnecting disabled: the first failure closes the client.
        let e = Client::connect(ClientConfig::new(&remote).unwrap().reconnect(false)).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        assert!(msg.contains(&remote), "{msg}");
        assert!(!msg.contains("connecting to :"), "{msg}");

        // Reconnecting: the initial wait times out, naming the remote and the last error.
        let e = Client::connect(ClientConfig::new(&remote).unwrap().initial_timeout(Duration::from_millis(300))).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Timeout(_)), "{e:?}");
        assert!(msg.contains(&remote), "{msg}");

        // A request on a closed client names it too.
        let c = Client::start(ClientConfig::new(&remote).unwrap().reconnect(false)).unwrap();
        let mut st = c.state();
        tokio::time::timeout(Duration::from_secs(10), st.wait_for(|s| s.closed)).await.unwrap().unwrap();
        let e = c.list_dbs().await.unwrap_err();
        assert!(matches!(e, Error::Closed { .. }), "{e:?}");
        assert!(e.to_string().contains(&remote), "{e}");
        assert_eq!(c.remote(), remote);

        // Two remotes, neither up: the message names the one that failed last, or both.
        let other = format!("unix:{}", dir.join("other.sock").display());
        let e = Client::connect(ClientConfig::new(&format!("{remote},{other}")).unwrap().initial_timeout(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&remote) && e.to_string().contains(&other), "{e}");
    }
}
