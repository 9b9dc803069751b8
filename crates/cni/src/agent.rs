//! The shim <-> node agent protocol (cluster and chained modes), defined once for both ends, and the
//! shim's blocking client.
//!
//! One CNI call is one HTTP/1.1 exchange over the agent's unix socket
//! ([`model::netconf::DEFAULT_AGENT_SOCKET`], or the config's `agent_socket`), one request per connection:
//!
//! ```text
//! POST /cni HTTP/1.1
//! Host: kubetron
//! Content-Type: application/json
//! Content-Length: N
//! Connection: close
//!
//! {"api": 1,
//!  "env": {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "9f3c", "CNI_NETNS": "/var/run/netns/cni-1b2c",
//!          "CNI_IFNAME": "net1", "CNI_PATH": "/opt/cni/bin",
//!          "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_UID=5b0e"},
//!  "config": <the network config exactly as read on stdin, as JSON>,
//!  "deadline_ms": 30000}
//! ```
//!
//! The agent answers `200 OK` with an [`AgentResponse`]: `{"result": <CniResult at
//! CURRENT_VERSION, or null for DEL/CHECK/STATUS/GC>}` or `{"error": <the spec's error object>}`.
//! Any other HTTP status is a transport failure (the shim answers code 11 with the status and body).
//! Only `CNI_*` variables travel ([`AgentRequest::env`]); the agent parses `config` with the same
//! [`crate::NetConf`], so its config errors are the ones the standalone plugin gives. `GET
//! /healthz` is 200 once the agent's caches synced.
//!
//! The client ([`call`]) is std only (no async runtime: the shim is a short-lived process that
//! must start fast and stay small). Its bounds: [`CONNECT_TIMEOUT`] to connect, then
//! `deadline_ms` + [`ANSWER_MARGIN`] for the whole exchange (the agent gives up at `deadline_ms`
//! and answers first).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::env::Env;
use crate::error::ErrorJson;
use crate::result::CniResult;

/// The protocol version in [`AgentRequest::api`].
pub const API_VERSION: u32 = 1;
/// The HTTP path of CNI requests.
pub const CNI_PATH: &str = "/cni";
/// The HTTP path of the agent's health check.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Largest request or response body either end accepts.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How long the shim waits to connect (a listening agent accepts at once; a full backlog does not).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// What the shim waits beyond `deadline_ms` for the answer: the agent answers at its deadline first.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// What the shim sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRequest {
    /// [`API_VERSION`].
    pub api: u32,
    /// The `CNI_*` environment of the call (nothing else).
    pub env: BTreeMap<String, String>,
    /// The network config as read on stdin.
    pub config: Value,
    /// The call's deadline (the config's `timeout_ms`): the agent runs the verb under it.
    pub deadline_ms: u64,
}

impl AgentRequest {
    /// A request for a validated environment and the config as received.
    pub fn new(env: &Env, config: Value, deadline_ms: u64) -> AgentRequest {
        AgentRequest { api: API_VERSION, env: env_vars(env), config, deadline_ms }
    }
}

/// What the agent answers (with HTTP 200).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentResponse {
    /// Success: ADD's result (at [`model::netconf::CURRENT_VERSION`]; the shim converts it to the config's
    /// version), `null` for the other verbs.
    Result(Option<CniResult>),
    /// A CNI error, passed to the runtime as it is (relabelled with the config's version).
    Error(ErrorJson),
}

/// The `CNI_*` variables of a validated environment, as a runtime sets them.
pub fn env_vars(env: &Env) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("CNI_COMMAND".to_string(), env.command.to_string());
    if let Some(id) = &env.container_id {
        m.insert("CNI_CONTAINERID".to_string(), id.clone());
    }
    if let Some(n) = &env.netns {
        m.insert("CNI_NETNS".to_string(), n.to_string_lossy().into_owned());
    }
    if let Some(i) = &env.ifname {
        m.insert("CNI_IFNAME".to_string(), i.clone());
    }
    if !env.args.pairs.is_empty() {
        let args: Vec<String> = env.args.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        m.insert("CNI_ARGS".to_string(), args.join(";"));
    }
    if !env.path.is_empty() {
        let p: Vec<String> = env.path.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        m.insert("CNI_PATH".to_string(), p.join(":"));
    }
    m
}

/// Why an exchange with the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection: nothing listens (the socket file is missing or stale) or the agent did not
    /// accept within [`CONNECT_TIMEOUT`].
    #[error("cannot connect to {}: {source}", socket.display())]
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// The connect error (`NotFound`: no socket file; `TimedOut`: not accepted in time).
        source: io::Error,
    },
    /// Connected, but no complete answer within the bound.
    #[error("no answer from {} within {} ms", socket.display(), bound.as_millis())]
    NoAnswer {
        /// The socket.
        socket: PathBuf,
        /// The bound.
        bound: Duration,
    },
    /// The exchange broke or the answer is not HTTP.
    #[error("exchange with {} failed: {what}", socket.display())]
    Transport {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// An HTTP status other than 200.
    #[error("{} answered HTTP {status}: {body}", socket.display())]
    Status {
        /// The socket.
        socket: PathBuf,
        /// The status code.
        status: u16,
        /// The body (cut to 1000 bytes).
        body: String,
    },
    /// HTTP 200 with a body that is not an [`AgentResponse`].
    #[error("{} answered something that is not a kubetron agent response: {what}", socket.display())]
    BadAnswer {
        /// The socket.
        socket: PathBuf,
        /// The decode error.
        what: String,
    },
}

/// Sends one request to the agent at `socket` and returns its answer, within `bound` after the
/// connection (connecting is bounded separately by [`CONNECT_TIMEOUT`]).
pub fn call(socket: &Path, req: &AgentRequest, bound: Duration) -> Result<AgentResponse, CallError> {
    let body = serde_json::to_vec(req).map_err(|e| CallError::Transport { socket: socket.into(), what: format!("encoding: {e}") })?;
    let mut stream = connect(socket, CONNECT_TIMEOUT)?;
    let deadline = Instant::now() + bound;
    let (status, body) = exchange(&mut stream, &body, deadline).map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => CallError::NoAnswer { socket: socket.into(), bound },
        _ => CallError::Transport { socket: socket.into(), what: e.to_string() },
    })?;
    if status != 200 {
        let mut text = String::from_utf8_lossy(&body).into_owned();
        if text.len() > 1000 {
            let mut cut = 1000;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        return Err(CallError::Status { socket: socket.into(), status, body: text.trim().to_string() });
    }
    serde_json::from_slice(&body).map_err(|e| CallError::BadAnswer { socket: socket.into(), what: e.to_string() })
}

/// Connects within `bound`. std has no connect timeout for unix sockets: a connect blocked on a full
/// backlog runs on a helper thread that is left behind (the shim process ends soon after).
fn connect(socket: &Path, bound: Duration) -> Result<UnixStream, CallError> {
    let (tx, rx) = mpsc::channel();
    let path = socket.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(UnixStream::connect(&path));
    });
    match rx.recv_timeout(bound) {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) => Err(CallError::Unreachable { socket: socket.into(), source }),
        Err(_) => Err(CallError::Unreachable {
            socket: socket.into(),
            source: io::Error::new(io::ErrorKind::TimedOut, format!("not accepted within {} ms", bound.as_millis())),
        }),
    }
}

/// Sets the socket's timeouts to what is left until `deadline`.
fn arm(stream: &UnixStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
    }
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))
}

/// Writes the request, reads the response: (status, body).
fn exchange(stream: &mut UnixStream, body: &[u8], deadline: Instant) -> io::Result<(u16, Vec<u8>)> {
    arm(stream, deadline)?;
    let head = format!(
        "POST {CNI_PATH} HTTP/1.1\r\nHost: kubetron\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut r = Reader { stream, deadline, buf: Vec::new(), pos: 0 };
    // Status line and headers.
    let status_line = r.line()?;
    let mut parts = status_line.splitn(3, ' ');
    let (Some(proto), Some(code)) = (parts.next(), parts.next()) else {
        return Err(bad(format!("not an HTTP status line: {status_line:?}")));
    };
    if !proto.starts_with("HTTP/1.") {
        return Err(bad(format!("not an HTTP/1 status line: {status_line:?}")));
    }
    let status: u16 = code.parse().map_err(|_| bad(format!("bad HTTP status {code:?}")))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    loop {
        let line = r.line()?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { return Err(bad(format!("bad header line {line:?}"))) };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| bad(format!("bad Content-Length {value:?}")))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let body = if chunked {
        let mut out = Vec::new();
        loop {
            let size_line = r.line()?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad(format!("bad chunk size {size_hex:?}")))?;
            if size == 0 {
                break;
            }
            if out.len() + size > MAX_BODY_BYTES {
                return Err(bad(format!("answer larger than {MAX_BODY_BYTES} bytes")));
            }
            out.extend_from_slice(&r.exact(size)?);
            r.line()?;
        }
        out
    } else if let Some(n) = length {
        if n > MAX_BODY_BYTES {
            return Err(bad(format!("answer of {n} bytes is larger than {MAX_BODY_BYTES}")));
        }
        r.exact(n)?
    } else {
        r.rest()?
    };
    Ok((status, body))
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Buffered reads under the deadline.
struct Reader<'a> {
    stream: &'a mut UnixStream,
    deadline: Instant,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader<'_> {
    /// Reads more; false at EOF.
    fn fill(&mut self) -> io::Result<bool> {
        arm(self.stream, self.deadline)?;
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        if self.buf.len() + n > MAX_BODY_BYTES + 64 * 1024 {
            return Err(bad(format!("answer larger than {MAX_BODY_BYTES} bytes")));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// One CRLF- (or LF-) terminated line, without the terminator.
    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let raw = &self.buf[self.pos..self.pos + i];
                let line = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw)).into_owned();
                self.pos += i + 1;
                return Ok(line);
            }
            if !self.fill()? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the answer was complete"));
            }
        }
    }

    /// Exactly `n` bytes.
    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            if !self.fill()? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the answer was complete"));
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// Everything up to EOF.
    fn rest(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? {}
        Ok(self.buf[self.pos..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CniError, ErrorCode};
    use serde_json::json;

    #[test]
    fn wire_shapes() {
        let env = Env::from_vars([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/p"),
            ("CNI_IFNAME", "net1"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=a"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
            ("HOME", "/root"),
        ])
        .unwrap();
        let req = AgentRequest::new(&env, json!({"cniVersion": "1.0.0"}), 30_000);
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            json!({"api": 1, "deadline_ms": 30000, "config": {"cniVersion": "1.0.0"}, "env": {
                "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "net1",
                "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=a", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"}})
        );
        // The agent reads the same environment back.
        assert_eq!(Env::from_vars(&req.env).unwrap(), env);
        assert_eq!(serde_json::to_value(AgentResponse::Result(None)).unwrap(), json!({"result": null}));
        let e = CniError::try_again_later("busy").to_json("1.1.0");
        let v = serde_json::to_value(AgentResponse::Error(e.clone())).unwrap();
        assert_eq!(v, json!({"error": {"cniVersion": "1.1.0", "code": 11, "msg": "busy"}}));
        assert_eq!(serde_json::from_value::<AgentResponse>(v).unwrap(), AgentResponse::Error(e));
        let r: AgentResponse =
            serde_json::from_value(json!({"result": {"cniVersion": "1.1.0", "interfaces": [{"name": "net1"}]}})).unwrap();
        assert!(matches!(r, AgentResponse::Result(Some(ref x)) if x.interfaces[0].name == "net1"), "{r:?}");
        assert_eq!(ErrorCode::from_code(11), ErrorCode::TryAgainLater);
    }

    /// A chunked answer (what an HTTP server sends when it does not know the length up front).
    #[test]
    fn chunked_answers_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("a.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers and the (small) body arrive before the client reads.
            while !String::from_utf8_lossy(&seen).contains("\"deadline_ms\"") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                seen.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"result": null}"#;
            let (a, b) = body.split_at(5);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            );
            conn.write_all(reply.as_bytes()).unwrap();
            String::from_utf8_lossy(&seen).into_owned()
        });
        let env = Env::from_vars([("CNI_COMMAND", "STATUS")]).unwrap();
        let r = call(&socket, &AgentRequest::new(&env, json!({}), 1000), Duration::from_secs(30)).unwrap();
        assert_eq!(r, AgentResponse::Result(None));
        let seen = server.join().unwrap();
        assert!(seen.starts_with("POST /cni HTTP/1.1\r\n") && seen.contains("Connection: close\r\n"), "{seen}");
    }
}
