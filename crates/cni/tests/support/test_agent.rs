//! A stand-in for the node agent: a small HTTP/1.1 server (std only) on a unix socket in a temp
//! directory that records every request and answers each with one canned answer. Shared by
//! `crates/cni/tests/shim.rs` and the `kubetron` binary's tests (included with `#[path]`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::Value;

/// How the test agent answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and JSON body.
    Json(u16, Value),
    /// Reads the request, then keeps the connection open without answering.
    Hang,
}

/// One request the agent got.
#[derive(Debug, Clone)]
pub struct Got {
    /// Request line's method.
    pub method: String,
    /// Request line's path.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as JSON.
    pub body: Value,
}

impl Got {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The running test agent; stopped (and its directory removed) on drop.
pub struct TestAgent {
    dir: tempfile::TempDir,
    socket: PathBuf,
    got: Arc<Mutex<Vec<Got>>>,
    held: Arc<Mutex<Vec<UnixStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestAgent {
    /// Listens on `<tempdir>/kubetron.sock` and answers every request with `answer`.
    pub fn start(answer: Answer) -> TestAgent {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("kubetron.sock");
        let listener = UnixListener::bind(&socket).expect("bind the test agent's socket");
        let got = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (got, held, stop) = (got.clone(), held.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let Some(req) = read_request(&conn) else { continue };
                    got.lock().unwrap().push(req);
                    match &answer {
                        Answer::Json(status, body) => {
                            let body = body.to_string();
                            let reply = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = conn.write_all(reply.as_bytes());
                        }
                        Answer::Hang => held.lock().unwrap().push(conn),
                    }
                }
            })
        };
        TestAgent { dir, socket, got, held, stop, thread: Some(thread) }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temp directory the socket is in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What it got so far.
    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.held.lock().unwrap().clear();
    }
}

/// Reads one request: request line, headers, `content-length` body.
fn read_request(conn: &UnixStream) -> Option<Got> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Got { method, path, headers, body })
}
