//! The connection task: owns the socket, matches replies to requests by id, answers the
//! server's echo requests, probes an idle connection, re-establishes monitors and locks after
//! a reconnect, and fails (never re-sends) requests that were in flight when a connection died.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::config::{ClientConfig, ConnectionState, LockEvent};
use super::remote::{open, Io, Remote};
use crate::cluster::{find_database, server_monitor_params, SERVER_MONITOR_ID};
use crate::codec::JsonCodec;
use crate::error::{Error, Result};
use crate::jsonrpc::{self, Incoming};
use crate::monitor::{decode_updates, MonitorMethod, MonitorRequest, RawEvent};
use crate::ops::Condition;

const ZERO_TXN: &str = "00000000-0000-0000-0000-000000000000";

pub(crate) enum Command {
    Call { method: String, params: Vec<u8>, reply: oneshot::Sender<Result<Bytes>> },
    MonitorStart { key: u64, req: MonitorRequest, events: mpsc::UnboundedSender<RawEvent>, reply: oneshot::Sender<Result<()>> },
    CondChange { key: u64, conditions: BTreeMap<String, Vec<Condition>>, reply: oneshot::Sender<Result<()>> },
    MonitorCancel { key: u64, reply: Option<oneshot::Sender<Result<()>>> },
    Lock { name: String, method: &'static str, reply: oneshot::Sender<Result<bool>> },
    Reconnect,
}

struct MonEntry {
    req: MonitorRequest,
    events: mpsc::UnboundedSender<RawEvent>,
    json_id: String,
    gen: u64,
    last_txn_id: Option<String>,
    start_reply: Option<oneshot::Sender<Result<()>>>,
    cond_change_pending: bool,
}

enum Pending {
    Call { method: String, reply: oneshot::Sender<Result<Bytes>> },
    MonStart { key: u64, gen: u64, method: MonitorMethod },
    CondChange { key: u64, old_id: String, reply: oneshot::Sender<Result<()>> },
    MonCancel { reply: Option<oneshot::Sender<Result<()>>> },
    Lock { name: String, method: &'static str, reply: Option<oneshot::Sender<Result<bool>>> },
    Echo,
    ServerMon,
}

enum End {
    /// Every client handle is gone.
    Closed,
    /// The session ended; the string says why.
    Lost(String),
}

pub(crate) struct Conn {
    cfg: Arc<ClientConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    rx: mpsc::UnboundedReceiver<Command>,
    backlog: VecDeque<Command>,
    monitors: HashMap<u64, MonEntry>,
    by_id: HashMap<String, u64>,
    locks: BTreeSet<String>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    next_remote: usize,
    /// Highest raft log index seen in `_Server`: a member behind it has stale data.
    max_index: Option<i64>,
    state: watch::Sender<ConnectionState>,
    lock_events: broadcast::Sender<LockEvent>,
}

type Stream = Framed<Box<dyn Io>, JsonCodec>;

fn rpc_err(method: &str, e: Value) -> Error {
    Error::Rpc { method: method.to_string(), error: e }
}

impl Conn {
    pub(crate) fn new(
        cfg: Arc<ClientConfig>,
        tls: Option<Arc<rustls::ClientConfig>>,
        rx: mpsc::UnboundedReceiver<Command>,
        state: watch::Sender<ConnectionState>,
        lock_events: broadcast::Sender<LockEvent>,
    ) -> Conn {
        Conn {
            cfg,
            tls,
            rx,
            backlog: VecDeque::new(),
            monitors: HashMap::new(),
            by_id: HashMap::new(),
            locks: BTreeSet::new(),
            pending: HashMap::new(),
            next_id: 1,
            next_remote: 0,
            max_index: None,
            state,
            lock_events,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut backoff = self.cfg.backoff_min;
        let mut failed_in_round = 0usize;
        loop {
            let remote = self.cfg.remotes[self.next_remote % self.cfg.remotes.len()].clone();
            self.next_remote = self.next_remote.wrapping_add(1);
            let mut was_ready = false;
            let end = match open(&remote, self.tls.as_ref(), self.cfg.connect_timeout).await {
                Ok(io) => {
                    let framed = Framed::new(io, JsonCodec::new(self.cfg.max_message_size));
                    self.session(&remote, framed, &mut was_ready).await
                }
                Err(Error::Connect { reason, .. }) => End::Lost(reason),
                Err(e) => End::Lost(e.to_string()),
            };
            let reason = match end {
                End::Closed => {
                    debug!("all client handles dropped; connection task exits");
                    self.shutdown("client closed");
                    return;
                }
                End::Lost(r) => r,
            };
            self.after_session(&remote, &reason, was_ready);
            if !self.cfg.reconnect {
                let why = if was_ready { "connection lost" } else { "connection failed" };
                self.shutdown(&format!("{why} and reconnecting is disabled: {reason}"));
                return;
            }
            if was_ready {
                backoff = self.cfg.backoff_min;
                failed_in_round = 0;
                info!(%remote, %reason, "connection lost; reconnecting");
            } else {
                debug!(%remote, %reason, "connection attempt failed");
                failed_in_round += 1;
            }
            // Try every remote once quickly, then back off.
            if failed_in_round >= self.cfg.remotes.len() {
                failed_in_round = 0;
                let deadline = tokio::time::Instant::now() + backoff;
                backoff = (backoff * 2).min(self.cfg.backoff_max);
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => break,
                        cmd = self.rx.recv() => match cmd {
                            None => { self.shutdown("client closed"); return; }
                            Some(c) => self.queue_while_disconnected(c),
                        }
                    }
                }
            }
        }
    }

    fn queue_while_disconnected(&mut self, c: Command) {
        match c {
            Command::Reconnect => {}
            Command::MonitorCancel { key, reply } => {
                self.drop_monitor(key);
                if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
            }
            other => self.backlog.push_back(other),
        }
    }

    fn drop_monitor(&mut self, key: u64) {
        if let Some(e) = self.monitors.remove(&key) {
            self.by_id.retain(|_, k| *k != key);
            let _ = e.events.send(RawEvent::Canceled);
        }
    }

    /// Fails everything that was in flight, tells monitors and lock holders.
    fn after_session(&mut self, remote: &Remote, reason: &str, was_ready: bool) {
        for (_, p) in self.pending.drain() {
            match p {
                Pending::Call { method, reply } => {
                    let _ = reply.send(Err(Error::Disconnected { remote: remote.to_string(), method, reason: reason.to_string() }));
                }
                Pending::CondChange { reply, key, .. } => {
                    // The monitor is re-created with the new conditions after reconnecting.
                    if let Some(e) = self.monitors.get_mut(&key) {
                        e.last_txn_id = None;
                    }
                    let _ = reply.send(Ok(()));
                }
                Pending::MonCancel { reply: Some(r) } => {
                    let _ = r.send(Ok(()));
                }
                Pending::Lock { reply: Some(r), method, .. } => {
                    let _ = r.send(Err(Error::Disconnected {
                        remote: remote.to_string(),
                        method: method.to_string(),
                        reason: reason.to_string(),
                    }));
                }
                _ => {}
            }
        }
        for e in self.monitors.values_mut() {
            if e.cond_change_pending {
                e.last_txn_id = None;
                e.cond_change_pending = false;
            }
            if was_ready {
                let _ = e.events.send(RawEvent::Disconnected);
            }
        }
        if was_ready {
            for l in &self.locks {
                let _ = self.lock_events.send(LockEvent::Lost(l.clone()));
            }
        }
        self.state.send_modify(|s| {
            s.connected = false;
            s.remote = Some(remote.to_string());
            s.last_error = Some(format!("{remote}: {reason}"));
        });
    }

    fn shutdown(&mut self, reason: &str) {
        let remote = self
            .state
            .borrow()
            .remote
            .clone()
            .unwrap_or_else(|| self.cfg.remotes.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(","));
        let closed = || Error::Closed { remote: remote.clone(), reason: reason.to_string() };
        for (_, p) in self.pending.drain() {
            if let Pending::Call { reply, .. } = p {
                let _ = reply.send(Err(closed()));
            }
        }
        for c in self.backlog.drain(..) {
            fail_command(c, closed);
        }
        self.rx.close();
        while let Ok(c) = self.rx.try_recv() {
            fail_command(c, closed);
        }
        for (_, e) in self.monitors.drain() {
            let _ = e.events.send(RawEvent::Canceled);
        }
        self.state.send_modify(|s| {
            s.connected = false;
            s.closed = true;
            s.last_error = Some(reason.to_string());
        });
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn session(&mut self, remote: &Remote, mut io: Stream, was_ready: &mut bool) -> End {
        let mut ready = false;
        let probe = self.cfg.inactivity_probe;
        let needs_server_check = self.cfg.database.is_some() && (self.cfg.leader_only || self.cfg.remotes.len() > 1);
        if needs_server_check {
            let id = self.id();
            self.pending.insert(id, Pending::ServerMon);
            let sent =
                async { io.send(jsonrpc::request(id, "monitor", &server_monitor_params())).await.map_err(|e| format!("sending: {e}")) };
            if let Err(r) = bounded(probe, sent).await {
                return End::Lost(r);
            }
        } else {
            if let Err(r) = bounded(probe, self.become_ready(remote, &mut io)).await {
                return End::Lost(r);
            }
            ready = true;
            *was_ready = true;
        }
        let mut tick = tokio::time::interval(probe.map(|p| (p / 4).max(Duration::from_millis(50))).unwrap_or(Duration::from_secs(3600)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_rx = Instant::now();
        let mut last_progress = io.codec().progress();
        let mut echo_sent: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                frame = io.next() => {
                    let frame = match frame {
                        None => return End::Lost("connection closed by the server".into()),
                        Some(Err(e)) => return End::Lost(e.to_string()),
                        Some(Ok(f)) => f,
                    };
                    last_rx = Instant::now();
                    echo_sent = None;
                    match bounded(probe, self.handle_frame(remote, &mut io, frame, ready)).await {
                        Ok(Some(true)) => {
                            // Server check passed.
                            if let Err(r) = bounded(probe, self.become_ready(remote, &mut io)).await {
                                return End::Lost(r);
                            }
                            ready = true;
                            *was_ready = true;
                        }
                        Ok(_) => {}
                        Err(reason) => return End::Lost(reason),
                    }
                }
                cmd = self.rx.recv(), if ready => {
                    let Some(cmd) = cmd else { return End::Closed };
                    // A peer that stopped reading would block this branch (and so the probe)
                    // forever once the socket buffer is full: bound the writes.
                    if let Err(r) = bounded(probe, self.send_batch(&mut io, cmd)).await {
                        return End::Lost(r);
                    }
                }
                _ = tick.tick() => {
                    // Part of a large message arriving counts as activity.
                    let progress = io.codec().progress();
                    if progress != last_progress {
                        last_progress = progress;
                        last_rx = Instant::now();
                        echo_sent = None;
                    }
                    if let Some(p) = probe {
                        if let Some(t) = echo_sent {
                            if t.elapsed() >= p {
                                return End::Lost(format!("no reply to inactivity probe within {p:?}"));
                            }
                        } else if last_rx.elapsed() >= p {
                            let id = self.id();
                            self.pending.insert(id, Pending::Echo);
                            let sent = async { io.send(jsonrpc::request(id, "echo", b"[]")).await.map_err(|e| format!("sending: {e}")) };
                            if let Err(r) = bounded(probe, sent).await {
                                return End::Lost(r);
                            }
                            echo_sent = Some(Instant::now());
                        }
                    }
                    if self.rx.is_closed() && self.monitors.is_empty() && self.pending.is_empty() {
                        return End::Closed;
                    }
                }
            }
        }
    }

    /// Sends `cmd` and whatever else is queued (up to 64 more), then flushes once.
    async fn send_batch(&mut self, io: &mut Stream, cmd: Command) -> std::result::Result<(), String> {
        self.handle_command(io, cmd).await?;
        let mut n = 0;
        while n < 64 {
            let Ok(cmd) = self.rx.try_recv() else { break };
            self.handle_command(io, cmd).await?;
            n += 1;
        }
        io.flush().await.map_err(|e| format!("sending: {e}"))
    }

    async fn become_ready(&mut self, remote: &Remote, io: &mut Stream) -> std::result::Result<(), String> {
        // Re-establish monitors and locks, then run what queued up while disconnected.
        let keys: Vec<u64> = self.monitors.keys().copied().collect();
        self.by_id.clear();
        for key in keys {
            self.send_monitor(io, key).await?;
        }
        let locks: Vec<String> = self.locks.iter().cloned().collect();
        for l in locks {
            let id = self.id();
            self.pending.insert(id, Pending::Lock { name: l.clone(), method: "lock", reply: None });
            let p = serde_json::to_vec(&[&l]).unwrap_or_default();
            io.feed(jsonrpc::request(id, "lock", &p)).await.map_err(|e| format!("sending: {e}"))?;
        }
        while let Some(c) = self.backlog.pop_front() {
            self.handle_command(io, c).await?;
        }
        io.flush().await.map_err(|e| format!("sending: {e}"))?;
        self.state.send_modify(|s| {
            s.connected = true;
            s.remote = Some(remote.to_string());
            s.epoch += 1;
        });
        info!(%remote, "connected");
        Ok(())
    }

    async fn send_monitor(&mut self, io: &mut Stream, key: u64) -> std::result::Result<(), String> {
        let Some(e) = self.monitors.get_mut(&key) else { return Ok(()) };
        e.gen += 1;
        e.json_id = format!("m{key}.{}", e.gen);
        let method = e.req.method;
        let requests = e.req.requests_json(method);
        let params = match method {
            MonitorMethod::CondSince => {
                json!([e.req.db, e.json_id, requests, e.last_txn_id.as_deref().unwrap_or(ZERO_TXN)])
            }
            _ => json!([e.req.db, e.json_id, requests]),
        };
        let name = method.name();
        let gen = e.gen;
        self.by_id.insert(e.json_id.clone(), key);
        let id = self.id();
        self.pending.insert(id, Pending::MonStart { key, gen, method });
        let p = serde_json::to_vec(&params).unwrap_or_default();
        io.feed(jsonrpc::request(id, name, &p)).await.map_err(|e| format!("sending: {e}"))
    }

    async fn handle_command(&mut self, io: &mut Stream, cmd: Command) -> std::result::Result<(), String> {
        match cmd {
            Command::Call { method, params, reply } => {
                if reply.is_closed() {
                    return Ok(());
                }
                let id = self.id();
                let msg = jsonrpc::request(id, &method, &params);
                self.pending.insert(id, Pending::Call { method, reply });
                io.feed(msg).await.map_err(|e| format!("sending: {e}"))?;
            }
            Command::MonitorStart { key, req, events, reply } => {
                self.monitors.insert(
                    key,
                    MonEntry {
                        req,
                        events,
                        json_id: String::new(),
                        gen: 0,
                        last_txn_id: None,
                        start_reply: Some(reply),
                        cond_change_pending: false,
                    },
                );
                self.send_monitor(io, key).await?;
            }
            Command::CondChange { key, conditions, reply } => {
                let Some(e) = self.monitors.get_mut(&key) else {
                    let _ = reply.send(Err(Error::MonitorCanceled(key.to_string())));
                    return Ok(());
                };
                let mut req = serde_json::Map::new();
                for t in e.req.tables.iter_mut() {
                    if let Some(c) = conditions.get(&t.table) {
                        t.conditions = Some(c.clone());
                        req.insert(t.table.clone(), json!([{"where": c}]));
                    }
                }
                if e.req.method == MonitorMethod::Monitor {
                    let _ = reply.send(Err(Error::Protocol("conditions need monitor_cond or monitor_cond_since".into())));
                    return Ok(());
                }
                let old_id = e.json_id.clone();
                e.gen += 1;
                e.json_id = format!("m{key}.{}", e.gen);
                e.cond_change_pending = true;
                let new_id = e.json_id.clone();
                self.by_id.insert(new_id.clone(), key);
                let id = self.id();
                self.pending.insert(id, Pending::CondChange { key, old_id: old_id.clone(), reply });
                let p = serde_json::to_vec(&json!([old_id, new_id, Value::Object(req)])).unwrap_or_default();
                io.feed(jsonrpc::request(id, "monitor_cond_change", &p)).await.map_err(|e| format!("sending: {e}"))?;
            }
            Command::MonitorCancel { key, reply } => {
                if let Some(e) = self.monitors.remove(&key) {
                    self.by_id.retain(|_, k| *k != key);
                    let id = self.id();
                    self.pending.insert(id, Pending::MonCancel { reply });
                    let p = serde_json::to_vec(&[&e.json_id]).unwrap_or_default();
                    io.feed(jsonrpc::request(id, "monitor_cancel", &p)).await.map_err(|e| format!("sending: {e}"))?;
                } else if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
            }
            Command::Lock { name, method, reply } => {
                if method == "unlock" {
                    self.locks.remove(&name);
                } else {
                    self.locks.insert(name.clone());
                }
                let id = self.id();
                let p = serde_json::to_vec(&[&name]).unwrap_or_default();
                self.pending.insert(id, Pending::Lock { name, method, reply: Some(reply) });
                io.feed(jsonrpc::request(id, method, &p)).await.map_err(|e| format!("sending: {e}"))?;
            }
            Command::Reconnect => return Err("reconnect requested".into()),
        }
        Ok(())
    }

    /// Handles one incoming frame. `Ok(Some(true))` means the `_Server` check just passed.
    async fn handle_frame(
        &mut self,
        remote: &Remote,
        io: &mut Stream,
        frame: Bytes,
        ready: bool,
    ) -> std::result::Result<Option<bool>, String> {
        let msg = jsonrpc::parse(&frame).map_err(|e| e.to_string())?;
        match msg {
            Incoming::Request { id, method, params } => {
                if method == "echo" {
                    io.send(jsonrpc::response(&id, &params)).await.map_err(|e| format!("sending: {e}"))?;
                } else {
                    warn!(%remote, %method, "ignoring unexpected request from server");
                }
            }
            Incoming::Notification { method, params } => self.handle_notification(&method, &params)?,
            Incoming::Response { id, raw_id, result } => {
                let Some(p) = id.and_then(|id| self.pending.remove(&id)) else {
                    debug!(%raw_id, "reply to an unknown request");
                    return Ok(None);
                };
                return self.handle_response(io, p, result, ready).await;
            }
        }
        Ok(None)
    }

    fn handle_notification(&mut self, method: &str, params: &Bytes) -> std::result::Result<(), String> {
        let parts: Vec<&RawValue> = match serde_json::from_slice(params) {
            Ok(p) => p,
            Err(e) => {
                warn!(%method, "malformed notification params: {e}");
                return Ok(());
            }
        };
        let first_str = || parts.first().and_then(|r| serde_json::from_str::<String>(r.get()).ok());
        match method {
            "update" | "update2" | "update3" => {
                let Some(mid) = first_str() else { return Ok(()) };
                if mid == SERVER_MONITOR_ID && method == "update" {
                    let body = parts.get(1).map(|r| jsonrpc::sub(params, r)).unwrap_or_default();
                    return self.check_server_update(&body).map(|_| ());
                }
                let Some(key) = self.by_id.get(&mid).copied() else {
                    debug!(%mid, "update for an unknown monitor");
                    return Ok(());
                };
                let Some(e) = self.monitors.get_mut(&key) else { return Ok(()) };
                let (body, txn) = if method == "update3" {
                    (parts.get(2), parts.get(1).and_then(|r| serde_json::from_str::<String>(r.get()).ok()))
                } else {
                    (parts.get(1), None)
                };
                let Some(body) = body else { return Ok(()) };
                if let Some(t) = txn {
                    e.last_txn_id = Some(t);
                }
                let _ = e.events.send(RawEvent::Update { body: jsonrpc::sub(params, body), v1: method == "update" });
            }
            "locked" | "stolen" => {
                if let Some(name) = first_str() {
                    if method == "stolen" {
                        self.locks.remove(&name);
                        let _ = self.lock_events.send(LockEvent::Stolen(name));
                    } else {
                        let _ = self.lock_events.send(LockEvent::Locked(name));
                    }
                }
            }
            "monitor_canceled" => {
                if let Some(mid) = first_str() {
                    if let Some(key) = self.by_id.get(&mid).copied() {
                        warn!(%mid, "server canceled monitor");
                        self.drop_monitor(key);
                    }
                }
            }
            other => debug!(method = other, "ignoring notification"),
        }
        Ok(())
    }

    /// Evaluates `_Server` contents; `Err` ends the session.
    fn check_server_update(&mut self, body: &[u8]) -> std::result::Result<bool, String> {
        let Some(db) = self.cfg.database.as_deref() else { return Ok(true) };
        let u = decode_updates(body, None, true).map_err(|e| e.to_string())?;
        match find_database(&u, db) {
            Some(Some(sd)) => {
                sd.acceptable(self.cfg.leader_only)?;
                if let (Some(seen), Some(idx)) = (self.max_index, sd.index) {
                    if sd.model == "clustered" && idx < seen {
                        return Err(format!("server is behind (raft index {idx} < {seen} seen before)"));
                    }
                }
                if sd.index.is_some() {
                    self.max_index = self.max_index.max(sd.index);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn handle_response(
        &mut self,
        io: &mut Stream,
        p: Pending,
        result: std::result::Result<Bytes, Value>,
        ready: bool,
    ) -> std::result::Result<Option<bool>, String> {
        match p {
            Pending::Call { method, reply } => {
                let _ = reply.send(result.map_err(|e| rpc_err(&method, e)));
            }
            Pending::Echo => {}
            Pending::ServerMon => {
                match result {
                    Ok(body) => {
                        let db = self.cfg.database.clone().unwrap_or_default();
                        if !self.check_server_update(&body)? {
                            return Err(format!("server does not host database {db}"));
                        }
                    }
                    Err(e) => {
                        // No _Server database (very old server): nothing to check.
                        debug!("no _Server database: {e}");
                    }
                }
                if !ready {
                    return Ok(Some(true));
                }
            }
            Pending::MonStart { key, gen, method } => {
                let Some(e) = self.monitors.get_mut(&key) else { return Ok(None) };
                if e.gen != gen {
                    return Ok(None);
                }
                match result {
                    Ok(body) => {
                        let ev = match method {
                            MonitorMethod::Monitor => RawEvent::Reset { body, v1: true },
                            MonitorMethod::Cond => RawEvent::Reset { body, v1: false },
                            MonitorMethod::CondSince => {
                                let parts: (bool, String, &RawValue) =
                                    serde_json::from_slice(&body).map_err(|err| format!("bad monitor_cond_since reply: {err}"))?;
                                let found = parts.0;
                                e.last_txn_id = Some(parts.1);
                                let b = jsonrpc::sub(&body, parts.2);
                                if found {
                                    RawEvent::Update { body: b, v1: false }
                                } else {
                                    RawEvent::Reset { body: b, v1: false }
                                }
                            }
                        };
                        let _ = e.events.send(ev);
                        if let Some(r) = e.start_reply.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Err(err) if method == MonitorMethod::CondSince && err.to_string().contains("unknown method") => {
                        info!("server has no monitor_cond_since; using monitor_cond");
                        e.req.method = MonitorMethod::Cond;
                        self.send_monitor(io, key).await?;
                        io.flush().await.map_err(|e| format!("sending: {e}"))?;
                    }
                    Err(err) => {
                        if let Some(e) = self.monitors.remove(&key) {
                            self.by_id.retain(|_, k| *k != key);
                            match e.start_reply {
                                Some(r) => {
                                    let _ = r.send(Err(rpc_err(method.name(), err)));
                                }
                                None => {
                                    warn!("re-establishing monitor failed: {err}");
                                    let _ = e.events.send(RawEvent::Canceled);
                                }
                            }
                        }
                    }
                }
            }
            Pending::CondChange { key, old_id, reply } => {
                if let Some(e) = self.monitors.get_mut(&key) {
                    e.cond_change_pending = false;
                }
                match result {
                    Ok(_) => {
                        self.by_id.remove(&old_id);
                        let _ = reply.send(Ok(()));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(rpc_err("monitor_cond_change", err)));
                    }
                }
            }
            Pending::MonCancel { reply } => {
                if let Some(r) = reply {
                    let _ = r.send(result.map(|_| ()).map_err(|e| rpc_err("monitor_cancel", e)));
                }
            }
            Pending::Lock { name, method, reply } => {
                let r = result.map_err(|e| rpc_err(method, e)).and_then(|b| {
                    #[derive(serde::Deserialize)]
                    struct L {
                        #[serde(default)]
                        locked: bool,
                    }
                    serde_json::from_slice::<L>(&b).map(|l| l.locked).map_err(|e| Error::Protocol(format!("bad {method} reply: {e}")))
                });
                if let Ok(true) = r {
                    let _ = self.lock_events.send(LockEvent::Locked(name));
                }
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
        }
        Ok(None)
    }
}

/// Bounds a step of the session that writes to the socket: a peer that stopped reading would
/// block it (and so the probe) forever once the socket buffers are full. Twice the probe interval,
/// as the probe's own bound; unbounded without a probe.
async fn bounded<T>(
    probe: Option<Duration>,
    f: impl std::future::Future<Output = std::result::Result<T, String>>,
) -> std::result::Result<T, String> {
    match probe {
        Some(p) => tokio::time::timeout(p * 2, f)
            .await
            .unwrap_or_else(|_| Err(format!("sending stalled for {:?} (the server is not reading)", p * 2))),
        None => f.await,
    }
}

fn fail_command(c: Command, closed: impl Fn() -> Error) {
    match c {
        Command::Call { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::MonitorStart { reply, .. } | Command::CondChange { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        Command::MonitorCancel { reply: Some(r), .. } => {
            let _ = r.send(Ok(()));
        }
        Command::Lock { reply, .. } => {
            let _ = reply.send(Err(closed()));
        }
        _ => {}
    }
}
