//! JSON-RPC 1.0 messages as ovsdb-server speaks them.
//!
//! Incoming frames are classified without copying their payload: the `params`/`result` member is
//! returned as a slice of the frame (a cheap [`Bytes`] clone) to be parsed later, by whoever
//! needs it, straight into typed values.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// A classified incoming message.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A reply to one of our requests. `result` is the raw JSON of the result member, or the
    /// `error` member's value if it is not null.
    Response { id: Option<u64>, raw_id: String, result: std::result::Result<Bytes, serde_json::Value> },
    /// A request from the server (e.g. `echo`) that needs a reply with the same `id`.
    Request { id: Box<RawValue>, method: String, params: Bytes },
    /// A notification (`update`, `update2`, `update3`, `locked`, `stolen`, `monitor_canceled`).
    Notification { method: String, params: Bytes },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The bytes of `raw` as a slice of `frame` (no copy) when `raw` was borrowed from it.
pub(crate) fn sub(frame: &Bytes, raw: &RawValue) -> Bytes {
    let s = raw.get().as_bytes();
    let (f0, s0) = (frame.as_ptr() as usize, s.as_ptr() as usize);
    if s0 >= f0 && s0 + s.len() <= f0 + frame.len() {
        frame.slice(s0 - f0..s0 - f0 + s.len())
    } else {
        Bytes::copy_from_slice(s)
    }
}

/// Classifies one frame produced by [`crate::codec::JsonCodec`].
pub fn parse(frame: &Bytes) -> Result<Incoming> {
    let env: Envelope = serde_json::from_slice(frame).map_err(|e| Error::Protocol(format!("bad JSON-RPC message: {e}")))?;
    let id = env.id.filter(|r| r.get() != "null");
    match (env.method, id) {
        (Some(method), Some(id)) => Ok(Incoming::Request {
            id: id.to_owned(),
            method,
            params: env.params.map(|p| sub(frame, p)).unwrap_or_else(|| Bytes::from_static(b"[]")),
        }),
        (Some(method), None) => {
            Ok(Incoming::Notification { method, params: env.params.map(|p| sub(frame, p)).unwrap_or_else(|| Bytes::from_static(b"[]")) })
        }
        (None, Some(id)) => {
            let raw_id = id.get().to_string();
            let result = match env.error {
                Some(e) if !e.is_null() => Err(e),
                _ => Ok(env.result.map(|r| sub(frame, r)).unwrap_or_else(|| Bytes::from_static(b"null"))),
            };
            Ok(Incoming::Response { id: raw_id.parse().ok(), raw_id, result })
        }
        (None, None) => Err(Error::Protocol("message with neither method nor id".into())),
    }
}

/// Encodes a request whose params are already-serialized JSON.
pub fn request(id: u64, method: &str, params: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(params.len() + method.len() + 40);
    b.put_slice(b"{\"id\":");
    b.put_slice(id.to_string().as_bytes());
    b.put_slice(b",\"method\":");
    b.put_slice(serde_json::to_string(method).unwrap_or_default().as_bytes());
    b.put_slice(b",\"params\":");
    b.put_slice(params);
    b.put_slice(b"}");
    b.freeze()
}

/// Encodes a reply to a server request.
pub fn response(id: &RawValue, result: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(result.len() + 40);
    b.put_slice(b"{\"id\":");
    b.put_slice(id.get().as_bytes());
    b.put_slice(b",\"result\":");
    b.put_slice(result);
    b.put_slice(b",\"error\":null}");
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        let f = Bytes::from_static(br#"{"id":7,"result":{"a":[1,2]},"error":null}"#);
        match parse(&f).unwrap() {
            Incoming::Response { id: Some(7), result: Ok(r), .. } => assert_eq!(&r[..], br#"{"a":[1,2]}"#),
            other => panic!("{other:?}"),
        }
        let f = Bytes::from_static(br#"{"id":"echo","method":"echo","params":[]}"#);
        assert!(matches!(parse(&f).unwrap(), Incoming::Request { ref method, .. } if method == "echo"));
        let f = Bytes::from_static(br#"{"id":null,"method":"update2","params":["m",{}]}"#);
        assert!(matches!(parse(&f).unwrap(), Incoming::Notification { ref method, .. } if method == "update2"));
        let f = Bytes::from_static(br#"{"id":3,"result":null,"error":{"error":"unknown database"}}"#);
        assert!(matches!(parse(&f).unwrap(), Incoming::Response { result: Err(_), .. }));
        assert!(parse(&Bytes::from_static(b"[1,2]")).is_err());
        assert!(parse(&Bytes::from_static(b"{}")).is_err());
        let r = request(5, "echo", b"[]");
        assert_eq!(&r[..], br#"{"id":5,"method":"echo","params":[]}"#);
    }
}
