//! The client handle. [`Client`] is cheap to clone: one task owns the connection; requests go to
//! it over a channel and replies come back matched by id.

mod config;
mod conn;
mod remote;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use config::{ClientConfig, ConnectionState, LockEvent};
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
            inner: Arc::new(Inner { tx, state, lock_events, schemas: Mutex::new(HashMap::new()), next_monitor: AtomicU64::new(1), config }),
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
            Ok(Ok(s)) => {
                Err(Error::Connect { remote: s.remote.clone().unwrap_or_default(), reason: s.last_error.clone().unwrap_or_default() })
            }
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                let s = self.inner.state.borrow().clone();
                Err(Error::Timeout(format!(
                    "not connected after {timeout:?} (last error: {})",
                    s.last_error.unwrap_or_else(|| "none".into())
                )))
            }
        }
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
        self.inner.tx.send(Command::Call { method: method.to_string(), params, reply }).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
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
    pub async fn transact_unchecked(&self, db: &str, ops: Vec<Operation>) -> Result<Vec<OpResult>> {
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
        self.inner.tx.send(Command::MonitorStart { key, req, events, reply }).map_err(|_| Error::Closed)?;
        let mut m = Monitor { client: self.clone(), key, rx, schema, canceled: false };
        match done.await {
            Ok(Ok(())) => Ok(m),
            Ok(Err(e)) => {
                m.canceled = true;
                Err(e)
            }
            Err(_) => {
                m.canceled = true;
                Err(Error::Closed)
            }
        }
    }

    pub(crate) async fn monitor_cond_change(&self, key: u64, conditions: BTreeMap<String, Vec<Condition>>) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.inner.tx.send(Command::CondChange { key, conditions, reply }).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub(crate) async fn monitor_cancel(&self, key: u64) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.inner.tx.send(Command::MonitorCancel { key, reply: Some(reply) }).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub(crate) fn monitor_cancel_nowait(&self, key: u64) {
        let _ = self.inner.tx.send(Command::MonitorCancel { key, reply: None });
    }

    async fn lock_cmd(&self, name: &str, method: &'static str) -> Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.inner.tx.send(Command::Lock { name: name.to_string(), method, reply }).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
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
