//! A plain HTTP/1.1 client for the harness's own calls to daemons on 127.0.0.1 (readiness, setup
//! of Keystone and Neutron in tests): one request per connection, JSON bodies.

use std::io::{Read, Write};
use std::time::Duration;

use crate::Error;

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when empty, a string when not JSON).
    pub fn json(&self) -> serde_json::Value {
        if self.body.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&self.body).unwrap_or_else(|_| serde_json::Value::String(self.body.clone()))
    }
}

/// `method path` on 127.0.0.1:`port` with extra `headers` and a JSON `body`.
pub fn call(method: &str, port: u16, path: &str, headers: &[(&str, &str)], body: Option<&serde_json::Value>) -> Result<Answer, Error> {
    let io = |e: std::io::Error| Error::NotReady(format!("{method} {path} on 127.0.0.1:{port}: {e}"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(120))).map_err(io)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(io)?;
    let (head, rest) = out.split_once("\r\n\r\n").unwrap_or((out.as_str(), ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::NotReady(format!("bad HTTP answer to {method} {path}: {head:?}")))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    Ok(Answer { status, headers, body })
}

/// The body of a chunked transfer.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
