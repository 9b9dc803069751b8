//! Client configuration and connection state.

use std::time::Duration;

use super::remote::Remote;
use crate::codec::DEFAULT_MAX_MESSAGE;
use crate::error::Result;
use crate::tls::TlsConfig;

/// Default [`ClientConfig::inactivity_probe`]: 5 s, as ovsdb-server's connections and
/// ovn-controller's `ovn-remote-probe-interval`.
pub const DEFAULT_INACTIVITY_PROBE: Duration = Duration::from_secs(5);

/// How to connect. Build with [`ClientConfig::new`] and the builder methods.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Servers to try, in order (`unix:`, `tcp:`, `ssl:`).
    pub remotes: Vec<Remote>,
    /// PEM files for `ssl:` remotes.
    pub tls: Option<TlsConfig>,
    /// The database this client mainly uses. With it, each connection first checks the server's
    /// `_Server.Database` row: a clustered member that is not connected to its cluster (or, with
    /// `leader_only`, not the leader) is skipped and the next remote tried.
    pub database: Option<String>,
    /// Only use the cluster leader (default true; needs `database`).
    pub leader_only: bool,
    /// Send an echo after this long without receiving anything, and drop the connection if
    /// nothing arrives for as long again, as ovsdb-server and ovn-controller do (default 5 s,
    /// their default too; `None` disables). Requests in flight then fail with
    /// [`crate::Error::Disconnected`] naming the remote. Sending that stalls for twice this long
    /// (a peer that stopped reading) drops the connection too.
    pub inactivity_probe: Option<Duration>,
    /// Bound on every request (transact, monitor start, echo, lock, ...): with no reply within
    /// it, the request fails with [`crate::Error::RequestTimeout`] (it may still be applied by
    /// the server). The time waiting for a connection counts. Default `None`: requests wait as
    /// long as the connection lives (the inactivity probe bounds a connected, silent server).
    pub request_timeout: Option<Duration>,
    /// Largest message accepted from the server (default 512 MiB).
    pub max_message_size: usize,
    /// Timeout of one connection attempt (TCP connect plus TLS handshake).
    pub connect_timeout: Duration,
    /// How long [`crate::Client::connect`] waits for the first connection.
    pub initial_timeout: Duration,
    /// Reconnect after losing the connection (default true).
    pub reconnect: bool,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Check transactions against the schema before sending (default true).
    pub check_schema: bool,
}

impl ClientConfig {
    /// A configuration for a comma-separated list of remotes.
    pub fn new(remotes: &str) -> Result<ClientConfig> {
        Ok(ClientConfig {
            remotes: Remote::parse_list(remotes)?,
            tls: None,
            database: None,
            leader_only: true,
            inactivity_probe: Some(DEFAULT_INACTIVITY_PROBE),
            request_timeout: None,
            max_message_size: DEFAULT_MAX_MESSAGE,
            connect_timeout: Duration::from_secs(5),
            initial_timeout: Duration::from_secs(10),
            reconnect: true,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(8),
            check_schema: true,
        })
    }
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }
    pub fn database(mut self, db: &str) -> Self {
        self.database = Some(db.to_string());
        self
    }
    pub fn leader_only(mut self, yes: bool) -> Self {
        self.leader_only = yes;
        self
    }
    pub fn inactivity_probe(mut self, p: Option<Duration>) -> Self {
        self.inactivity_probe = p;
        self
    }
    /// See [`ClientConfig::request_timeout`].
    pub fn request_timeout(mut self, t: Option<Duration>) -> Self {
        self.request_timeout = t;
        self
    }
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }
    pub fn reconnect(mut self, yes: bool) -> Self {
        self.reconnect = yes;
        self
    }
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }
    pub fn initial_timeout(mut self, t: Duration) -> Self {
        self.initial_timeout = t;
        self
    }
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    pub fn check_schema(mut self, yes: bool) -> Self {
        self.check_schema = yes;
        self
    }
}

/// The connection state, published on a watch channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionState {
    pub connected: bool,
    /// The remote of the current connection, or of the last one tried.
    pub remote: Option<String>,
    /// Number of connections established so far.
    pub epoch: u64,
    /// Why the last connection ended.
    pub last_error: Option<String>,
    /// The client was closed; it will not reconnect.
    pub closed: bool,
}

/// Lock notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockEvent {
    /// The lock is now held by this client.
    Locked(String),
    /// Another client stole the lock.
    Stolen(String),
    /// The connection was lost; the lock is requested again after reconnecting.
    Lost(String),
}
