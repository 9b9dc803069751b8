//! A minimal synchronous rtnetlink client: one `NETLINK_ROUTE` socket, request/ack and dumps,
//! and attribute encoding/decoding (formats from `linux/netlink.h` and `linux/rtnetlink.h`).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{NetdevError, Result};

pub(crate) const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

pub(crate) const NLM_F_REQUEST: u16 = 0x01;
pub(crate) const NLM_F_MULTI: u16 = 0x02;
pub(crate) const NLM_F_ACK: u16 = 0x04;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_CAP_ACK: libc::c_int = 10;

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;

const NLA_TYPE_MASK: u16 = 0x3fff;

#[inline]
pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A netlink message being built: a fixed family header followed by attributes.
pub(crate) struct MsgBuf {
    buf: Vec<u8>,
}

impl MsgBuf {
    /// Starts a message whose payload begins with the given fixed header (ifinfomsg, ...).
    pub fn new(fixed: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(fixed);
        buf.resize(align4(buf.len()), 0);
        MsgBuf { buf }
    }

    /// Appends raw bytes (padded to 4) as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn pad(&mut self) {
        self.buf.resize(align4(self.buf.len()), 0);
    }

    pub fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    pub fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(kind, &v)
    }

    /// Opens a nested attribute; close it with [`MsgBuf::end_nested`].
    pub fn begin_nested(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        at
    }

    pub fn end_nested(&mut self, at: usize) {
        self.pad();
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Iterates the attributes of a payload: yields (type without flag bits, data).
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let data = &self.rest[4..len];
        let adv = align4(len).min(self.rest.len());
        self.rest = &self.rest[adv..];
        Some((kind, data))
    }
}

pub(crate) fn parse_u32(d: &[u8]) -> Option<u32> {
    d.get(..4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn parse_str(d: &[u8]) -> String {
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

/// One reply message: its type and payload (everything after the nlmsghdr).
pub(crate) struct Reply {
    pub kind: u16,
    pub payload: Vec<u8>,
}

/// A `NETLINK_ROUTE` socket. It stays bound to the netns it was created in, whichever thread uses it.
pub(crate) struct NlSocket {
    fd: OwnedFd,
    seq: Cell<u32>,
}

impl NlSocket {
    pub fn new() -> Result<Self> {
        // SAFETY: plain socket(2) call; the fd is owned right after.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if raw < 0 {
            return Err(NetdevError::last_os("socket(AF_NETLINK, NETLINK_ROUTE)"));
        }
        // SAFETY: raw is a fresh, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value (pid 0 = kernel assigns).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: sa is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(fd.as_raw_fd(), &sa as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_nl>() as u32)
        };
        if rc < 0 {
            return Err(NetdevError::last_os("bind(AF_NETLINK)"));
        }
        let one: libc::c_int = 1;
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            // SAFETY: setsockopt with a valid int pointer; failure is harmless (older kernels).
            unsafe {
                libc::setsockopt(fd.as_raw_fd(), libc::SOL_NETLINK, opt, &one as *const _ as *const libc::c_void, 4);
            }
        }
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(1);
        Ok(NlSocket { fd, seq: Cell::new(seed) })
    }

    /// Sends one request and waits for its ack (flags get REQUEST|ACK added).
    pub fn request_ack(&self, op: &str, kind: u16, flags: u16, msg: &MsgBuf) -> Result<()> {
        self.exchange(op, kind, flags | NLM_F_ACK, msg, false).map(|_| ())
    }

    /// Sends a request that answers with one message (e.g. RTM_GETLINK by name).
    pub fn request_one(&self, op: &str, kind: u16, msg: &MsgBuf) -> Result<Option<Reply>> {
        Ok(self.exchange(op, kind, 0, msg, false)?.into_iter().next())
    }

    /// Sends a dump request and collects every message until NLMSG_DONE.
    pub fn dump(&self, op: &str, kind: u16, msg: &MsgBuf) -> Result<Vec<Reply>> {
        self.exchange(op, kind, NLM_F_DUMP, msg, true)
    }

    fn exchange(&self, op: &str, kind: u16, flags: u16, msg: &MsgBuf, dump: bool) -> Result<Vec<Reply>> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let body = msg.bytes();
        let total = NLMSG_HDRLEN + body.len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(body);
        tracing::trace!(op, kind, flags, len = total, "netlink request");
        // SAFETY: out is a valid buffer of its length; the kernel address is implied for netlink send.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), out.as_ptr() as *const libc::c_void, out.len(), 0) };
        if n < 0 {
            return Err(NetdevError::last_os(format!("netlink send ({op})")));
        }
        let wants_ack = flags & NLM_F_ACK != 0;
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: buf is a valid writable buffer of its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NetdevError::io(format!("netlink recv ({op})"), e));
            }
            let mut data = &buf[..n as usize];
            while data.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let mkind = u16::from_ne_bytes([data[4], data[5]]);
                let mflags = u16::from_ne_bytes([data[6], data[7]]);
                let mseq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                if len < NLMSG_HDRLEN || len > data.len() {
                    return Err(NetdevError::Malformed(format!("bad nlmsg length {len} in reply to {op}")));
                }
                let payload = &data[NLMSG_HDRLEN..len];
                data = &data[align4(len).min(data.len())..];
                if mseq != seq {
                    continue; // stale reply of an earlier request
                }
                match mkind {
                    NLMSG_ERROR => {
                        let code = payload.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
                        if code == 0 {
                            return Ok(replies);
                        }
                        let ext_ack = parse_ext_ack(payload, mflags);
                        return Err(NetdevError::Netlink { op: op.to_string(), source: io::Error::from_raw_os_error(-code), ext_ack });
                    }
                    NLMSG_DONE => {
                        if let Some(b) = payload.get(..4) {
                            let code = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                            if code < 0 {
                                return Err(NetdevError::Netlink {
                                    op: op.to_string(),
                                    source: io::Error::from_raw_os_error(-code),
                                    ext_ack: None,
                                });
                            }
                        }
                        return Ok(replies);
                    }
                    _ => {
                        replies.push(Reply { kind: mkind, payload: payload.to_vec() });
                        if !dump && !wants_ack && mflags & NLM_F_MULTI == 0 {
                            return Ok(replies);
                        }
                    }
                }
            }
        }
    }
}

/// Extracts NLMSGERR_ATTR_MSG from an error message (payload = errno + original header [+ body] + TLVs).
fn parse_ext_ack(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 4 + NLMSG_HDRLEN {
        return None;
    }
    let orig_len = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]) as usize;
    let skip = if flags & NLM_F_CAPPED != 0 { 4 + NLMSG_HDRLEN } else { 4 + align4(orig_len) };
    let tlvs = payload.get(skip..)?;
    attrs(tlvs).find(|(k, _)| *k == NLMSGERR_ATTR_MSG).map(|(_, d)| parse_str(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_roundtrip_with_nesting_and_padding() {
        let mut m = MsgBuf::new(&[1, 2, 3]);
        m.attr_str(3, "eth0");
        let n = m.begin_nested(18);
        m.attr_str(1, "veth");
        m.end_nested(n);
        m.attr_u32(4, 1400);
        let b = m.bytes();
        assert_eq!(b.len() % 4, 0);
        let got: Vec<_> = attrs(&b[4..]).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(parse_str(got[0].1), "eth0");
        assert_eq!(got[1].0, 18);
        let inner: Vec<_> = attrs(got[1].1).collect();
        assert_eq!(inner, vec![(1u16, &b"veth\0"[..])]);
        assert_eq!(parse_u32(got[2].1), Some(1400));
    }

    #[test]
    fn truncated_attrs_stop_without_panic() {
        let bad = [200u8, 0, 1, 0, 1, 2];
        assert_eq!(attrs(&bad).count(), 0);
        assert_eq!(attrs(&[1u8]).count(), 0);
    }
}
