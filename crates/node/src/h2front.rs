//! A byte-level HTTP/2 front between kubelet and the device plugins' gRPC server.
//!
//! kubelets older than 1.26 (grpc-go dialling the socket path as its target, kubernetes#112597)
//! send the unix socket path as the `:authority` of every request, e.g.
//! `/var/lib/kubelet/device-plugins/kubetron-physnet1.sock`. hyper's HTTP/2 (h2), under tonic,
//! rejects that as a malformed authority and resets the stream with `PROTOCOL_ERROR`, so every
//! call of such a kubelet fails. The front sits between each accepted connection and tonic:
//!
//! - server to client, bytes pass untouched;
//! - client to server, after the connection preface, frames (RFC 7540 section 4.1) pass unchanged
//!   except header blocks (HEADERS plus its CONTINUATION frames): the block is decoded with a full
//!   HPACK decoder ([`hpack`], RFC 7541) that follows the client's dynamic table, an `:authority`
//!   that is not a valid authority is replaced by `localhost`, and the whole block is re-encoded
//!   with literals only (no indexing, no Huffman, so tonic's decoder keeps an empty table) as one
//!   HEADERS frame (END_STREAM and priority kept, padding dropped) and CONTINUATION frames past
//!   16384 octets.
//!
//! A block that does not decode, a protocol violation the front cannot follow, or a header block
//! over 64 KiB closes the connection. The pure part is [`ClientFilter`], which works on byte
//! buffers; [`relay`] and [`front`] are the thin async glue.

pub mod hpack;
pub mod huffman;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::UnixStream;
use tracing::{debug, warn};

use hpack::{Decoder, Field, HpackError};

/// The client connection preface (RFC 7540 section 3.5).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The default SETTINGS_MAX_FRAME_SIZE: the largest frame the front writes.
pub const MAX_FRAME: usize = 16384;
/// The largest header block (its fragments, without padding or priority) the front accepts.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The value written instead of an invalid `:authority`.
pub const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";
/// The dynamic table size the client may use (SETTINGS_HEADER_TABLE_SIZE, which tonic leaves
/// at its default).
pub const HEADER_TABLE_SIZE: usize = 4096;
/// The largest dynamic table size update accepted (a generous bound over the default, in case the
/// server ever advertises more).
pub const HEADER_TABLE_LIMIT: usize = 64 * 1024;

pub const TYPE_DATA: u8 = 0x0;
pub const TYPE_HEADERS: u8 = 0x1;
pub const TYPE_RST_STREAM: u8 = 0x3;
pub const TYPE_SETTINGS: u8 = 0x4;
pub const TYPE_PUSH_PROMISE: u8 = 0x5;
pub const TYPE_CONTINUATION: u8 = 0x9;
pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

/// The largest HEADERS payload: a full block plus pad length, priority and 255 octets of padding.
const MAX_HEADERS_PAYLOAD: usize = MAX_HEADER_BLOCK + 1 + 5 + 255;

/// Why the front closes a connection.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("not an HTTP/2 connection preface")]
    BadPreface,
    #[error("header block does not decode: {0}")]
    Hpack(#[from] HpackError),
    #[error("header block larger than {MAX_HEADER_BLOCK} octets")]
    HeaderBlockTooLarge,
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A frame header (RFC 7540 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    pub fn parse(b: &[u8; 9]) -> FrameHeader {
        FrameHeader {
            len: (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize,
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let len = self.len as u32;
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
    }
}

/// Appends a whole frame.
pub fn write_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    FrameHeader { len: payload.len(), kind, flags, stream }.write(out);
    out.extend_from_slice(payload);
}

/// Whether `v` may stand as an `:authority`: `host[:port]`, the host a registered name or an IP
/// literal in brackets, the port digits. Stricter than RFC 3986 (no userinfo) on purpose: what
/// fails here is replaced by `localhost`, which the device plugin service does not look at. A
/// socket path (it has `/`) is not an authority.
pub fn is_valid_authority(v: &[u8]) -> bool {
    let name_char = |c: &u8| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(c);
    let (host_ok, port) = match v.strip_prefix(b"[") {
        Some(rest) => match rest.iter().position(|&c| c == b']') {
            Some(end) => {
                let inside = &rest[..end];
                (!inside.is_empty() && inside.iter().all(|c| c.is_ascii_hexdigit() || b":.".contains(c)), &rest[end + 1..])
            }
            None => return false,
        },
        None => {
            let (host, port) = v.split_at(v.iter().position(|&c| c == b':').unwrap_or(v.len()));
            (!host.is_empty() && host.iter().all(name_char), port)
        }
    };
    host_ok
        && match port {
            [] => true,
            [b':', digits @ ..] => (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit),
            _ => false,
        }
}

/// Replaces every `:authority` that is not a valid authority with [`REPLACEMENT_AUTHORITY`];
/// returns how many it replaced.
pub fn fix_authority(fields: &mut [Field]) -> usize {
    let mut n = 0;
    for (name, value) in fields.iter_mut() {
        if name == b":authority" && !is_valid_authority(value) {
            *value = REPLACEMENT_AUTHORITY.to_vec();
            n += 1;
        }
    }
    n
}

/// Appends a header block as one HEADERS frame (with END_HEADERS when it fits) followed by
/// CONTINUATION frames, none larger than [`MAX_FRAME`].
pub fn write_header_block(out: &mut Vec<u8>, stream: u32, end_stream: bool, priority: Option<[u8; 5]>, block: &[u8]) {
    let prio_len = if priority.is_some() { 5 } else { 0 };
    let first = block.len().min(MAX_FRAME - prio_len);
    let mut flags = if end_stream { FLAG_END_STREAM } else { 0 };
    if priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if first == block.len() {
        flags |= FLAG_END_HEADERS;
    }
    FrameHeader { len: prio_len + first, kind: TYPE_HEADERS, flags, stream }.write(out);
    if let Some(p) = priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(&block[..first]);
    let mut rest = &block[first..];
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME);
        let flags = if n == rest.len() { FLAG_END_HEADERS } else { 0 };
        write_frame(out, TYPE_CONTINUATION, flags, stream, &rest[..n]);
        rest = &rest[n..];
    }
}

/// A header block being collected: HEADERS seen, waiting for END_HEADERS.
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Octets of the preface seen so far.
    Preface(usize),
    /// Reading a frame header (into `buf`).
    Header,
    /// Passing this many more payload octets through.
    Pass(usize),
    /// Collecting the payload of a HEADERS or CONTINUATION frame (into `buf`).
    Collect(FrameHeader),
}

/// The client-to-server direction: feed it what the client sent, forward what it appends.
#[derive(Debug)]
pub struct ClientFilter {
    state: State,
    buf: Vec<u8>,
    block: Option<Block>,
    decoder: Decoder,
    rewritten: usize,
}

impl Default for ClientFilter {
    fn default() -> Self {
        ClientFilter::new()
    }
}

impl ClientFilter {
    pub fn new() -> ClientFilter {
        ClientFilter {
            state: State::Preface(0),
            buf: Vec::new(),
            block: None,
            decoder: Decoder::new(HEADER_TABLE_SIZE, HEADER_TABLE_LIMIT),
            rewritten: 0,
        }
    }

    /// How many `:authority` values were replaced so far.
    pub fn rewritten(&self) -> usize {
        self.rewritten
    }

    /// Takes the next octets from the client and appends what goes to the server to `out`. Any
    /// split of the input gives the same output. After an error the connection must be closed.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FrontError> {
        while !input.is_empty() {
            match self.state {
                State::Preface(seen) => {
                    let n = input.len().min(PREFACE.len() - seen);
                    if input[..n] != PREFACE[seen..seen + n] {
                        return Err(FrontError::BadPreface);
                    }
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if seen + n == PREFACE.len() { State::Header } else { State::Preface(seen + n) };
                }
                State::Header => {
                    let n = input.len().min(9 - self.buf.len());
                    self.buf.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.buf.len() == 9 {
                        let raw: [u8; 9] = self.buf[..].try_into().expect("nine octets");
                        self.buf.clear();
                        self.on_header(FrameHeader::parse(&raw), &raw, out)?;
                    }
                }
                State::Pass(rest) => {
                    let n = input.len().min(rest);
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if n == rest { State::Header } else { State::Pass(rest - n) };
                }
                State::Collect(h) => {
                    let n = input.len().min(h.len - self.buf.len());
                    self.buf.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.buf.len() == h.len {
                        self.on_payload(h, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn on_header(&mut self, h: FrameHeader, raw: &[u8; 9], out: &mut Vec<u8>) -> Result<(), FrontError> {
        if let Some(b) = &self.block {
            // RFC 7540 section 6.10: nothing but CONTINUATION of the same stream until END_HEADERS.
            if h.kind != TYPE_CONTINUATION || h.stream != b.stream {
                return Err(FrontError::Protocol("header block interrupted by another frame"));
            }
            if b.fragment.len() + h.len > MAX_HEADER_BLOCK {
                return Err(FrontError::HeaderBlockTooLarge);
            }
        }
        match h.kind {
            TYPE_HEADERS | TYPE_CONTINUATION => {
                if h.kind == TYPE_CONTINUATION && self.block.is_none() {
                    return Err(FrontError::Protocol("CONTINUATION without HEADERS"));
                }
                if h.len > MAX_HEADERS_PAYLOAD {
                    return Err(FrontError::HeaderBlockTooLarge);
                }
                self.state = State::Collect(h);
                if h.len == 0 {
                    self.on_payload(h, out)?;
                }
            }
            TYPE_PUSH_PROMISE => return Err(FrontError::Protocol("PUSH_PROMISE from a client")),
            _ => {
                out.extend_from_slice(raw);
                self.state = if h.len == 0 { State::Header } else { State::Pass(h.len) };
            }
        }
        Ok(())
    }

    fn on_payload(&mut self, h: FrameHeader, out: &mut Vec<u8>) -> Result<(), FrontError> {
        let payload = std::mem::take(&mut self.buf);
        self.state = State::Header;
        if h.kind == TYPE_HEADERS {
            let mut start = 0;
            let mut pad = 0;
            if h.flags & FLAG_PADDED != 0 {
                pad = *payload.first().ok_or(FrontError::Protocol("PADDED HEADERS without a pad length"))? as usize;
                start = 1;
            }
            let priority = if h.flags & FLAG_PRIORITY != 0 {
                let p: [u8; 5] = payload
                    .get(start..start + 5)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(FrontError::Protocol("HEADERS too short for its priority"))?;
                start += 5;
                Some(p)
            } else {
                None
            };
            if start + pad > payload.len() {
                return Err(FrontError::Protocol("padding exceeds the HEADERS payload"));
            }
            let fragment = payload[start..payload.len() - pad].to_vec();
            if fragment.len() > MAX_HEADER_BLOCK {
                return Err(FrontError::HeaderBlockTooLarge);
            }
            self.block = Some(Block { stream: h.stream, end_stream: h.flags & FLAG_END_STREAM != 0, priority, fragment });
        } else {
            let block = self.block.as_mut().expect("CONTINUATION checked to follow HEADERS");
            block.fragment.extend_from_slice(&payload);
        }
        if h.flags & FLAG_END_HEADERS != 0 {
            let block = self.block.take().expect("a block is being collected");
            let mut fields = self.decoder.decode(&block.fragment)?;
            let fixed = fix_authority(&mut fields);
            if fixed > 0 {
                self.rewritten += fixed;
                debug!(stream = block.stream, "replaced an invalid :authority with localhost");
            }
            let encoded = hpack::encode_literal_block(&fields);
            write_header_block(out, block.stream, block.end_stream, block.priority, &encoded);
        }
        Ok(())
    }
}

/// Relays one connection: `client` (kubelet) to `server` (tonic's end) through a
/// [`ClientFilter`], `server` to `client` untouched. Returns when either side is done; a
/// filter error closes both.
pub async fn relay(client: UnixStream, server: DuplexStream) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = tokio::io::split(server);
    let upstream = async {
        let mut filter = ClientFilter::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut out = Vec::with_capacity(32 * 1024);
        loop {
            let n = client_rx.read(&mut buf).await?;
            if n == 0 {
                server_tx.shutdown().await?;
                return Ok::<_, FrontError>(filter.rewritten());
            }
            out.clear();
            filter.feed(&buf[..n], &mut out)?;
            server_tx.write_all(&out).await?;
        }
    };
    let downstream = async {
        let r = tokio::io::copy(&mut server_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
        r
    };
    tokio::pin!(upstream, downstream);
    tokio::select! {
        r = &mut upstream => match r {
            Ok(n) => {
                debug!(rewritten = n, "client closed its side");
                let _ = downstream.await;
            }
            Err(FrontError::Io(e)) => debug!("connection ended: {e}"),
            Err(e) => warn!("closing a device plugin connection: {e}"),
        },
        _ = &mut downstream => debug!("server closed the connection"),
    }
}

/// Puts the front on `client`: returns the stream tonic serves, the relay running in a task.
pub fn front(client: UnixStream) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(relay(client, ours));
    theirs
}

#[cfg(test)]
mod tests {
    use super::hpack::{encode_literal_block, encode_string};
    use super::*;

    fn f(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    /// Parses frames back: (header, payload), after checking the preface.
    fn frames(mut b: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
        assert_eq!(&b[..24], PREFACE);
        b = &b[24..];
        let mut v = Vec::new();
        while !b.is_empty() {
            let h = FrameHeader::parse(b[..9].try_into().unwrap());
            v.push((h, b[9..9 + h.len].to_vec()));
            b = &b[9 + h.len..];
        }
        v
    }

    /// Feeds `input` in chunks of `step` octets.
    fn run(input: &[u8], step: usize) -> Result<Vec<u8>, FrontError> {
        let mut filter = ClientFilter::new();
        let mut out = Vec::new();
        for c in input.chunks(step) {
            filter.feed(c, &mut out)?;
        }
        Ok(out)
    }

    /// A request block as grpc-go writes it: indexed and Huffman fields, plus a literal
    /// `:authority` with incremental indexing (so it enters the dynamic table).
    fn kubelet_block(authority: &str) -> Vec<u8> {
        let mut b = vec![0x83, 0x86]; // :method POST, :scheme http
        b.push(0x44); // :path, literal with indexing
        encode_string(b"/v1beta1.DevicePlugin/ListAndWatch", &mut b);
        b.push(0x41); // :authority, literal with indexing
        encode_string(authority.as_bytes(), &mut b);
        b.push(0x5f); // content-type (31), literal with indexing
        let coded = huffman::encode(b"application/grpc");
        b.push(0x80 | coded.len() as u8);
        b.extend_from_slice(&coded);
        b.push(0x00);
        encode_string(b"te", &mut b);
        encode_string(b"trailers", &mut b);
        b
    }

    const SOCK: &str = "/var/lib/kubelet/device-plugins/x.sock";

    #[test]
    fn authorities() {
        for ok in ["localhost", "localhost:50051", "a.b-c_d~e", "10.0.0.1:1", "[::1]", "[::1]:80", "[fe80::1]:65535", "%41"] {
            assert!(is_valid_authority(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", SOCK, "/x", "a/b", "a b", "[::1", "[x]", "[]", "[::1]x", "a?b", "a#b", "a\"b", "a:b:c", "a:", ":80", "a:1x", "a:123456",
            "u@h",
        ] {
            assert!(!is_valid_authority(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn rewrites_a_socket_path_authority_and_keeps_the_rest() {
        let mut input = PREFACE.to_vec();
        write_frame(&mut input, TYPE_SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]);
        let block = kubelet_block(SOCK);
        write_frame(&mut input, TYPE_HEADERS, FLAG_END_HEADERS, 1, &block);
        write_frame(&mut input, TYPE_DATA, FLAG_END_STREAM, 1, &[0, 0, 0, 0, 0]);
        // A second request: the authority now comes from the dynamic table (index 63: :authority
        // was inserted before content-type, which is 62).
        write_frame(&mut input, TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &[0x83, 0x86, 0x04, 0x01, b'/', 0xbf, 0xbe]);
        for step in [1, 2, 7, 9, 10, 64, input.len()] {
            let out = run(&input, step).unwrap();
            let fr = frames(&out);
            assert_eq!(fr.len(), 4);
            assert_eq!(fr[0].0.kind, TYPE_SETTINGS);
            assert_eq!(fr[0].1, [0, 4, 0, 0, 0xff, 0xff]);
            let (h, payload) = &fr[1];
            assert_eq!((h.kind, h.flags, h.stream), (TYPE_HEADERS, FLAG_END_HEADERS, 1));
            let want = f(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/v1beta1.DevicePlugin/ListAndWatch"),
                (":authority", "localhost"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]);
            assert_eq!(payload, &encode_literal_block(&want));
            // The server side needs no table: a decoder with a zero-size table reads it.
            assert_eq!(Decoder::new(0, 0).decode(payload).unwrap(), want);
            assert_eq!(fr[2], (FrameHeader { len: 5, kind: TYPE_DATA, flags: FLAG_END_STREAM, stream: 1 }, vec![0; 5]));
            let (h, payload) = &fr[3];
            assert_eq!((h.kind, h.flags, h.stream), (TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3));
            let got = Decoder::new(0, 0).decode(payload).unwrap();
            assert_eq!(
                got,
                f(&[
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "localhost"),
                    ("content-type", "application/grpc")
                ])
            );
        }
        // A valid authority is kept.
        let mut input = PREFACE.to_vec();
        write_frame(&mut input, TYPE_HEADERS, FLAG_END_HEADERS, 1, &kubelet_block("localhost:1"));
        let out = run(&input, 5).unwrap();
        let fr = frames(&out);
        assert!(Decoder::new(0, 0).decode(&fr[0].1).unwrap().contains(&(b":authority".to_vec(), b"localhost:1".to_vec())));
    }

    #[test]
    fn headers_over_continuation_with_padding_and_priority() {
        let block = kubelet_block(SOCK);
        let (a, rest) = block.split_at(10);
        let (b, c) = rest.split_at(17);
        let mut input = PREFACE.to_vec();
        // HEADERS: PADDED (3 octets of padding), PRIORITY, END_STREAM; then two CONTINUATIONs.
        let prio = [0x80, 0, 0, 0, 0x0f];
        let mut payload = vec![3];
        payload.extend_from_slice(&prio);
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0, 0]);
        write_frame(&mut input, TYPE_HEADERS, FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM, 5, &payload);
        write_frame(&mut input, TYPE_CONTINUATION, 0, 5, b);
        write_frame(&mut input, TYPE_CONTINUATION, FLAG_END_HEADERS, 5, c);
        for step in [1, 3, 9, input.len()] {
            let fr = frames(&run(&input, step).unwrap());
            assert_eq!(fr.len(), 1, "one HEADERS frame");
            let (h, p) = &fr[0];
            assert_eq!((h.kind, h.flags, h.stream), (TYPE_HEADERS, FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS, 5));
            assert_eq!(p[..5], prio);
            let got = Decoder::new(0, 0).decode(&p[5..]).unwrap();
            assert_eq!(got[3], (b":authority".to_vec(), b"localhost".to_vec()));
            assert_eq!(got.len(), 6);
        }
    }

    #[test]
    fn large_blocks_are_split_into_continuations() {
        let mut input = PREFACE.to_vec();
        let big = "x".repeat(40_000);
        let mut block = vec![0x82, 0x41];
        encode_string(SOCK.as_bytes(), &mut block);
        block.push(0x00);
        encode_string(b"x-big", &mut block);
        encode_string(big.as_bytes(), &mut block);
        // Sent as HEADERS + CONTINUATIONs of 16000.
        let mut chunks = block.chunks(16000);
        write_frame(&mut input, TYPE_HEADERS, 0, 7, chunks.next().unwrap());
        let rest: Vec<&[u8]> = chunks.collect();
        for (i, c) in rest.iter().enumerate() {
            write_frame(&mut input, TYPE_CONTINUATION, if i + 1 == rest.len() { FLAG_END_HEADERS } else { 0 }, 7, c);
        }
        let fr = frames(&run(&input, 1000).unwrap());
        assert_eq!(fr.iter().map(|(h, _)| h.kind).collect::<Vec<_>>(), [TYPE_HEADERS, TYPE_CONTINUATION, TYPE_CONTINUATION]);
        assert!(fr.iter().all(|(h, p)| h.len == p.len() && h.len <= MAX_FRAME && h.stream == 7));
        assert_eq!(fr.iter().map(|(h, _)| h.flags & FLAG_END_HEADERS).collect::<Vec<_>>(), [0, 0, FLAG_END_HEADERS]);
        let joined: Vec<u8> = fr.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(Decoder::new(0, 0).decode(&joined).unwrap(), f(&[(":method", "GET"), (":authority", "localhost"), ("x-big", &big)]));
    }

    #[test]
    fn other_frames_pass_untouched() {
        let mut input = PREFACE.to_vec();
        write_frame(&mut input, TYPE_SETTINGS, 0, 0, &[]);
        write_frame(&mut input, TYPE_SETTINGS, FLAG_ACK, 0, &[]);
        let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        write_frame(&mut input, TYPE_DATA, FLAG_PADDED, 1, &data);
        write_frame(&mut input, 0x8, 0, 1, &[0, 0, 1, 0]); // WINDOW_UPDATE
        write_frame(&mut input, 0x6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]); // PING
        write_frame(&mut input, TYPE_RST_STREAM, 0, 1, &[0, 0, 0, 8]);
        write_frame(&mut input, 0xfa, 0xff, 9, b"unknown type"); // ignored by peers, passed on
        for step in [1, 5, 9, 100, input.len()] {
            assert_eq!(run(&input, step).unwrap(), input);
        }
    }

    #[test]
    fn broken_input_is_refused() {
        assert!(matches!(run(b"GET / HTTP/1.1\r\n\r\n", 4), Err(FrontError::BadPreface)));
        let with = |frames: &[(u8, u8, u32, Vec<u8>)]| {
            let mut input = PREFACE.to_vec();
            for (k, fl, s, p) in frames {
                write_frame(&mut input, *k, *fl, *s, p);
            }
            run(&input, 3)
        };
        // Index 70 with an empty dynamic table; a truncated literal; bad Huffman padding.
        assert!(matches!(with(&[(TYPE_HEADERS, FLAG_END_HEADERS, 1, vec![0xc6])]), Err(FrontError::Hpack(HpackError::BadIndex(70)))));
        assert!(matches!(with(&[(TYPE_HEADERS, FLAG_END_HEADERS, 1, vec![0x41, 0x05, b'a'])]), Err(FrontError::Hpack(_))));
        assert!(matches!(with(&[(TYPE_HEADERS, FLAG_END_HEADERS, 1, vec![0x41, 0x81, 0x00])]), Err(FrontError::Hpack(_))));
        // Another frame inside a header block; CONTINUATION of another stream or alone.
        let open = (TYPE_HEADERS, 0, 1, vec![0x82]);
        assert!(matches!(with(&[open.clone(), (TYPE_DATA, 0, 1, vec![])]), Err(FrontError::Protocol(_))));
        assert!(matches!(with(&[open.clone(), (TYPE_CONTINUATION, FLAG_END_HEADERS, 3, vec![])]), Err(FrontError::Protocol(_))));
        assert!(matches!(with(&[(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, vec![])]), Err(FrontError::Protocol(_))));
        // Padding longer than the payload.
        assert!(matches!(with(&[(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_PADDED, 1, vec![9, 0x82])]), Err(FrontError::Protocol(_))));
        // Over 64 KiB: in one HEADERS frame, or accumulated over CONTINUATIONs.
        assert!(matches!(
            with(&[(TYPE_HEADERS, FLAG_END_HEADERS, 1, vec![0x82; MAX_HEADERS_PAYLOAD + 1])]),
            Err(FrontError::HeaderBlockTooLarge)
        ));
        let mut many = vec![(TYPE_HEADERS, 0, 1, vec![0x82; 16000])];
        many.extend((0..4).map(|_| (TYPE_CONTINUATION, 0, 1, vec![0x82; 16000])));
        assert!(matches!(with(&many), Err(FrontError::HeaderBlockTooLarge)));
        // A block of exactly 64 KiB is fine: one field with a long value, in four frames.
        let mut block = vec![0x00];
        encode_string(b"x", &mut block);
        encode_string(&vec![b'v'; MAX_HEADER_BLOCK - 7], &mut block);
        assert_eq!(block.len(), MAX_HEADER_BLOCK);
        let parts: Vec<&[u8]> = block.chunks(MAX_FRAME).collect();
        let mut ok = vec![(TYPE_HEADERS, 0, 1, parts[0].to_vec())];
        ok.extend((1..4).map(|i| (TYPE_CONTINUATION, if i == 3 { FLAG_END_HEADERS } else { 0 }, 1, parts[i].to_vec())));
        let fr = frames(&with(&ok).unwrap());
        assert_eq!(fr.len(), 4);
        let joined: Vec<u8> = fr.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(joined, block);
    }
}
