//! Incremental framing of JSON values sent back to back with no delimiter (as ovsdb-server does).
//!
//! The decoder scans bytes once (resuming where it stopped on the previous call), tracking string
//! and escape state and bracket depth; a frame ends when the depth of the top-level object or
//! array returns to zero. It yields the raw bytes of each message; parsing them is left to
//! [`crate::jsonrpc`]. Garbage between messages, nesting beyond a limit, messages above the
//! configured maximum size, and input that ends inside a message are errors, never panics.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::CodecError;

/// Default maximum size of one message: 512 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 512 << 20;
/// Maximum nesting depth accepted (ovsdb messages nest at most ~10 deep).
pub const MAX_DEPTH: usize = 128;

/// Tokio codec for back-to-back JSON values.
#[derive(Debug, Clone)]
pub struct JsonCodec {
    max: usize,
    /// Bytes of the current message already scanned.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escape: bool,
    /// Bytes consumed by the decoder so far (for error offsets).
    consumed: usize,
}

impl Default for JsonCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE)
    }
}

impl JsonCodec {
    /// A codec that refuses messages larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        JsonCodec { max: max_message.max(2), scanned: 0, depth: 0, in_string: false, escape: false, consumed: 0 }
    }

    pub fn max_message(&self) -> usize {
        self.max
    }

    /// Total bytes scanned so far, including a message still incomplete: grows whenever data
    /// arrives, so a caller can tell a slow large message from a silent peer.
    pub fn progress(&self) -> u64 {
        (self.consumed + self.scanned) as u64
    }

    fn skip_ws(&mut self, src: &mut BytesMut) -> Result<(), CodecError> {
        let n = src.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).count();
        if n > 0 {
            let _ = src.split_to(n);
            self.consumed += n;
        }
        if let Some(&b) = src.first() {
            if b != b'{' && b != b'[' {
                return Err(CodecError::Garbage { byte: b, offset: self.consumed });
            }
        }
        Ok(())
    }
}

impl Decoder for JsonCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if self.scanned == 0 {
            self.skip_ws(src)?;
            if src.is_empty() {
                return Ok(None);
            }
        }
        let limit = src.len().min(self.max);
        let buf = &src[..limit];
        let mut i = self.scanned;
        while i < buf.len() {
            let b = buf[i];
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                } else {
                    // Fast skip over plain string bytes.
                    let rest = &buf[i + 1..];
                    let skip = rest.iter().position(|&c| c == b'"' || c == b'\\').unwrap_or(rest.len());
                    i += skip;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => {
                        self.depth += 1;
                        if self.depth > MAX_DEPTH {
                            return Err(CodecError::TooDeep(MAX_DEPTH));
                        }
                    }
                    b'}' | b']' => {
                        // depth >= 1 here: the first byte of a message is '{' or '['.
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            let end = i + 1;
                            self.scanned = 0;
                            self.in_string = false;
                            self.escape = false;
                            self.consumed += end;
                            return Ok(Some(src.split_to(end).freeze()));
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        self.scanned = i;
        if src.len() >= self.max {
            return Err(CodecError::TooLarge { max: self.max });
        }
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None => {
                let pending = src.iter().filter(|b| !b.is_ascii_whitespace()).count();
                if pending == 0 {
                    src.clear();
                    Ok(None)
                } else {
                    Err(CodecError::Truncated(src.len()))
                }
            }
        }
    }
}

impl Encoder<Bytes> for JsonCodec {
    type Error = CodecError;
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], chunk: usize, max: usize) -> Result<Vec<Bytes>, CodecError> {
        let mut c = JsonCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(part);
            while let Some(f) = c.decode(&mut buf)? {
                out.push(f);
            }
        }
        if let Some(f) = c.decode_eof(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn back_to_back() {
        let input = br#"{"id":1,"result":["a}\"]"],"error":null}  [1,2]
{"x":{"y":"\\"}}"#;
        for chunk in 1..input.len() + 1 {
            let f = frames(input, chunk, 1 << 20).unwrap();
            assert_eq!(f.len(), 3, "chunk {chunk}");
            assert_eq!(&f[0][..], br#"{"id":1,"result":["a}\"]"],"error":null}"#);
            assert_eq!(&f[1][..], b"[1,2]");
            assert_eq!(&f[2][..], br#"{"x":{"y":"\\"}}"#);
        }
    }

    #[test]
    fn garbage_truncated_large() {
        assert!(matches!(frames(b"  x{}", 4, 100), Err(CodecError::Garbage { byte: b'x', .. })));
        assert!(matches!(frames(b"{} 12", 4, 100), Err(CodecError::Garbage { byte: b'1', .. })));
        assert!(matches!(frames(b"{\"a\":[1,2", 3, 100), Err(CodecError::Truncated(_))));
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(200));
        assert!(matches!(frames(big.as_bytes(), 7, 100), Err(CodecError::TooLarge { max: 100 })));
        assert_eq!(frames(big.as_bytes(), 7, 1000).unwrap().len(), 1);
        let deep = "[".repeat(1000);
        assert!(matches!(frames(deep.as_bytes(), 10, 10000), Err(CodecError::TooDeep(_))));
    }
}
