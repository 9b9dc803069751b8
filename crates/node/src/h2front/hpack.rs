//! HPACK (RFC 7541): a full decoder (static and dynamic tables, size updates, integers, plain and
//! Huffman strings) and the front's trivial encoder, which writes every field as a literal without
//! indexing, with a literal name and no Huffman coding, so that its peer needs no table state.

use std::collections::VecDeque;

use super::huffman;

/// A header field: name and value, as octets.
pub type Field = (Vec<u8>, Vec<u8>);

/// Why a header block does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("header block ends inside a representation")]
    Truncated,
    #[error("integer too large")]
    IntegerOverflow,
    #[error("index {0} is not in the static or dynamic table")]
    BadIndex(usize),
    #[error("invalid Huffman string: {0}")]
    Huffman(&'static str),
    #[error("dynamic table size update to {size} above the limit {limit}")]
    TableSizeAboveLimit { size: usize, limit: usize },
    #[error("dynamic table size update after a header field")]
    LateSizeUpdate,
    #[error("decoded header list larger than {0} octets")]
    ListTooLarge(usize),
}

/// RFC 7541 Appendix A: the static table, index 1 to 61.
#[rustfmt::skip]
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""), ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""), ("accept-ranges", ""), ("accept", ""), ("access-control-allow-origin", ""),
    ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
    ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""),
    ("from", ""), ("host", ""), ("if-match", ""), ("if-modified-since", ""),
    ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""), ("last-modified", ""),
    ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
    ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
    ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
    ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""),
    ("www-authenticate", ""),
];

/// The size of an entry (RFC 7541 section 4.1).
pub fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

/// Decodes an integer with an `n`-bit prefix (RFC 7541 section 5.1) at `*pos`, advancing it.
/// Values above `u32::MAX` are refused.
pub fn decode_int(buf: &[u8], pos: &mut usize, n: u8) -> Result<usize, HpackError> {
    let mask = ((1u16 << n) - 1) as u8;
    let first = *buf.get(*pos).ok_or(HpackError::Truncated)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(first as usize);
    }
    let mut value = u64::from(mask);
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(value as usize);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// Appends `value` with an `n`-bit prefix; `flags` are the bits above the prefix in the first octet.
pub fn encode_int(value: usize, n: u8, flags: u8, out: &mut Vec<u8>) {
    let mask = (1usize << n) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Decodes a string literal (RFC 7541 section 5.2), plain or Huffman-coded, at `*pos`.
pub fn decode_string(buf: &[u8], pos: &mut usize) -> Result<Vec<u8>, HpackError> {
    let huffman = *buf.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = decode_int(buf, pos, 7)?;
    let end = pos.checked_add(len).filter(|&e| e <= buf.len()).ok_or(HpackError::Truncated)?;
    let raw = &buf[*pos..end];
    *pos = end;
    if huffman {
        let mut out = Vec::with_capacity(len * 8 / 5 + 1);
        huffman::decode(raw, &mut out)?;
        Ok(out)
    } else {
        Ok(raw.to_vec())
    }
}

/// Appends a plain (not Huffman-coded) string literal.
pub fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    encode_int(s.len(), 7, 0x00, out);
    out.extend_from_slice(s);
}

/// The trivial encoder: every field as a literal header field without indexing, with a literal
/// name (RFC 7541 section 6.2.2, index 0), no Huffman coding.
pub fn encode_literal_block(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|(n, v)| n.len() + v.len() + 8).sum());
    for (name, value) in fields {
        out.push(0x00);
        encode_string(name, &mut out);
        encode_string(value, &mut out);
    }
    out
}

/// The decoding context of one direction of one connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Newest first.
    table: VecDeque<Field>,
    size: usize,
    max_size: usize,
    limit: usize,
    max_list: usize,
}

impl Decoder {
    /// A decoder whose dynamic table starts with `max_size` octets and which accepts size updates
    /// up to `limit`.
    pub fn new(max_size: usize, limit: usize) -> Decoder {
        Decoder { table: VecDeque::new(), size: 0, max_size, limit, max_list: 1 << 20 }
    }

    /// Caps the decoded size of one header list (sum of entry sizes; 1 MiB by default).
    pub fn with_max_list(mut self, max_list: usize) -> Decoder {
        self.max_list = max_list;
        self
    }

    /// The dynamic table, newest entry first (index 62 onwards).
    pub fn table(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.table.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// The size of the dynamic table (sum of its entry sizes).
    pub fn table_size(&self) -> usize {
        self.size
    }

    pub fn max_size(&self) -> usize {
        self.max_size
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            let (n, v) = self.table.pop_back().expect("a table with a size has entries");
            self.size -= entry_size(&n, &v);
        }
    }

    /// Adds an entry (RFC 7541 section 4.4): older entries are evicted to make room; an entry
    /// larger than the table empties it.
    fn insert(&mut self, field: Field) {
        let size = entry_size(&field.0, &field.1);
        if size > self.max_size {
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.table.push_front(field);
    }

    fn get(&self, index: usize) -> Result<Field, HpackError> {
        match index {
            1..=61 => {
                let (n, v) = STATIC_TABLE[index - 1];
                Ok((n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            }
            _ => index.checked_sub(62).and_then(|i| self.table.get(i)).cloned().ok_or(HpackError::BadIndex(index)),
        }
    }

    fn literal(&mut self, block: &[u8], pos: &mut usize, prefix: u8) -> Result<Field, HpackError> {
        let index = decode_int(block, pos, prefix)?;
        let name = if index == 0 { decode_string(block, pos)? } else { self.get(index)?.0 };
        let value = decode_string(block, pos)?;
        Ok((name, value))
    }

    /// Decodes one complete header block, updating the dynamic table.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<Field>, HpackError> {
        let mut fields = Vec::new();
        let mut list_size = 0usize;
        let mut pos = 0;
        while pos < block.len() {
            let b = block[pos];
            let field = if b & 0x80 != 0 {
                // Indexed header field (6.1).
                let index = decode_int(block, &mut pos, 7)?;
                self.get(index)?
            } else if b & 0xc0 == 0x40 {
                // Literal with incremental indexing (6.2.1).
                let field = self.literal(block, &mut pos, 6)?;
                self.insert(field.clone());
                field
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update (6.3): only before the first field.
                if !fields.is_empty() {
                    return Err(HpackError::LateSizeUpdate);
                }
                let size = decode_int(block, &mut pos, 5)?;
                if size > self.limit {
                    return Err(HpackError::TableSizeAboveLimit { size, limit: self.limit });
                }
                self.max_size = size;
                self.evict_to(size);
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001) (6.2.2, 6.2.3).
                self.literal(block, &mut pos, 4)?
            };
            list_size += entry_size(&field.0, &field.1);
            if list_size > self.max_list {
                return Err(HpackError::ListTooLarge(self.max_list));
            }
            fields.push(field);
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn fields(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    fn table(d: &Decoder) -> Vec<(String, String)> {
        d.table().map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap())).collect()
    }

    fn strs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn integers_rfc7541_c1() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix; C.1.3: 42 at an octet boundary.
        for (value, n, coded) in [(10usize, 5u8, vec![0x0a]), (1337, 5, vec![0x1f, 0x9a, 0x0a]), (42, 8, vec![0x2a])] {
            let mut out = Vec::new();
            encode_int(value, n, 0, &mut out);
            assert_eq!(out, coded, "encode {value}");
            let mut pos = 0;
            assert_eq!(decode_int(&coded, &mut pos, n).unwrap(), value);
            assert_eq!(pos, coded.len());
        }
        // The bits above the prefix are not part of the value.
        let mut pos = 0;
        assert_eq!(decode_int(&[0xea], &mut pos, 5).unwrap(), 10);
        // Truncated and overflowing integers.
        assert_eq!(decode_int(&[0x1f, 0x9a], &mut 0, 5), Err(HpackError::Truncated));
        assert_eq!(decode_int(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f], &mut 0, 5), Err(HpackError::IntegerOverflow));
        assert_eq!(decode_int(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], &mut 0, 5), Err(HpackError::IntegerOverflow));
        for v in [0usize, 30, 31, 127, 128, 255, 16383, 1 << 20, u32::MAX as usize] {
            for n in 1..=8u8 {
                let mut out = Vec::new();
                encode_int(v, n, 0, &mut out);
                assert_eq!(decode_int(&out, &mut 0, n).unwrap(), v, "{v} with {n}-bit prefix");
            }
        }
    }

    #[test]
    fn strings_plain_and_huffman() {
        let mut pos = 0;
        assert_eq!(decode_string(&hex("0a 6375 7374 6f6d 2d6b 6579"), &mut pos).unwrap(), b"custom-key");
        assert_eq!(pos, 11);
        assert_eq!(decode_string(&hex("8c f1e3 c2e5 f23a 6ba0 ab90 f4ff"), &mut 0).unwrap(), b"www.example.com");
        assert_eq!(decode_string(&hex("0b 6375 7374 6f6d 2d6b 6579"), &mut 0), Err(HpackError::Truncated));
        let mut out = Vec::new();
        encode_string(b"localhost", &mut out);
        assert_eq!(out[0], 9);
        assert_eq!(decode_string(&out, &mut 0).unwrap(), b"localhost");
    }

    #[test]
    fn rfc7541_c2_single_representations() {
        // C.2.1 literal with indexing.
        let mut d = Decoder::new(4096, 4096);
        let got = d.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")).unwrap();
        assert_eq!(got, fields(&[("custom-key", "custom-header")]));
        assert_eq!(table(&d), strs(&[("custom-key", "custom-header")]));
        assert_eq!(d.table_size(), 55);
        // C.2.2 literal without indexing.
        let mut d = Decoder::new(4096, 4096);
        assert_eq!(d.decode(&hex("040c 2f73 616d 706c 652f 7061 7468")).unwrap(), fields(&[(":path", "/sample/path")]));
        assert_eq!(d.table_size(), 0);
        // C.2.3 never indexed.
        let mut d = Decoder::new(4096, 4096);
        assert_eq!(d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74")).unwrap(), fields(&[("password", "secret")]));
        assert_eq!(d.table_size(), 0);
        // C.2.4 indexed.
        let mut d = Decoder::new(4096, 4096);
        assert_eq!(d.decode(&hex("82")).unwrap(), fields(&[(":method", "GET")]));
        assert_eq!(d.table_size(), 0);
    }

    /// The three requests of C.3 (plain) or C.4 (Huffman): same header lists, same tables.
    fn request_sequence(blocks: [&str; 3]) {
        let mut d = Decoder::new(4096, 4096);
        let r1 = d.decode(&hex(blocks[0])).unwrap();
        assert_eq!(r1, fields(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]));
        assert_eq!(table(&d), strs(&[(":authority", "www.example.com")]));
        assert_eq!(d.table_size(), 57);

        let r2 = d.decode(&hex(blocks[1])).unwrap();
        assert_eq!(
            r2,
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        assert_eq!(table(&d), strs(&[("cache-control", "no-cache"), (":authority", "www.example.com")]));
        assert_eq!(d.table_size(), 110);

        let r3 = d.decode(&hex(blocks[2])).unwrap();
        assert_eq!(
            r3,
            fields(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(table(&d), strs(&[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")]));
        assert_eq!(d.table_size(), 164);
    }

    #[test]
    fn rfc7541_c3_requests_without_huffman() {
        request_sequence([
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]);
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman() {
        request_sequence([
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]);
    }

    #[test]
    fn eviction_and_size_updates() {
        // A 100-octet table: entries of 32 + 2 + 16 = 50 octets, two fit.
        let mut d = Decoder::new(100, 200);
        let lit = |name: &str, value: &str| {
            let mut b = vec![0x40];
            encode_string(name.as_bytes(), &mut b);
            encode_string(value.as_bytes(), &mut b);
            b
        };
        d.decode(&lit("k1", "aaaaaaaaaaaaaaaa")).unwrap();
        d.decode(&lit("k2", "bbbbbbbbbbbbbbbb")).unwrap();
        assert_eq!(d.table_size(), 100);
        d.decode(&lit("k3", "cccccccccccccccc")).unwrap();
        assert_eq!(table(&d), strs(&[("k3", "cccccccccccccccc"), ("k2", "bbbbbbbbbbbbbbbb")]));
        // Index 62 is the newest, 63 the next; 64 is gone.
        assert_eq!(d.decode(&[0xbe, 0xbf]).unwrap(), fields(&[("k3", "cccccccccccccccc"), ("k2", "bbbbbbbbbbbbbbbb")]));
        assert_eq!(d.decode(&[0xc0]), Err(HpackError::BadIndex(64)));
        assert_eq!(d.decode(&[0x80]), Err(HpackError::BadIndex(0)));
        // Size update to 60 keeps only the newest; to 0 empties; above the limit is an error.
        assert_eq!(d.decode(&[0x3f, 0x1d]).unwrap(), vec![]); // 31 + 29 = 60
        assert_eq!(d.max_size(), 60);
        assert_eq!(table(&d), strs(&[("k3", "cccccccccccccccc")]));
        assert_eq!(d.decode(&[0x20, 0x82]).unwrap(), fields(&[(":method", "GET")]));
        assert_eq!(d.table_size(), 0);
        assert_eq!(d.decode(&[0x3f, 0xaa, 0x01]), Err(HpackError::TableSizeAboveLimit { size: 201, limit: 200 }));
        assert_eq!(d.decode(&[0x82, 0x20]), Err(HpackError::LateSizeUpdate));
        // An entry larger than the table empties it.
        let mut d = Decoder::new(60, 60);
        d.decode(&lit("k", "v")).unwrap();
        d.decode(&lit("big", "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv")).unwrap();
        assert_eq!(d.table_size(), 0);
    }

    #[test]
    fn rfc7541_c5_responses_evict() {
        // C.5: a 256-octet table; the second response's :status 307 evicts :status 302.
        let mut d = Decoder::new(256, 256);
        let r1 = d
            .decode(&hex(
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 \
                 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            ))
            .unwrap();
        assert_eq!(
            r1,
            fields(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com")
            ])
        );
        assert_eq!(d.table_size(), 222);
        let r2 = d.decode(&hex("4803 3330 37c1 c0bf")).unwrap();
        assert_eq!(
            r2,
            fields(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com")
            ])
        );
        assert_eq!(
            table(&d),
            strs(&[
                (":status", "307"),
                ("location", "https://www.example.com"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("cache-control", "private")
            ])
        );
        assert_eq!(d.table_size(), 222);
    }

    #[test]
    fn list_size_is_bounded() {
        let mut d = Decoder::new(4096, 4096).with_max_list(100);
        // :method GET is 32 + 7 + 3 = 42: two fit, three do not.
        assert!(d.decode(&[0x82, 0x82]).is_ok());
        assert_eq!(d.decode(&[0x82, 0x82, 0x82]), Err(HpackError::ListTooLarge(100)));
    }

    #[test]
    fn literal_encoder_round_trips() {
        let list = fields(&[(":authority", "localhost"), ("x-long", &"v".repeat(300)), ("empty", "")]);
        let block = encode_literal_block(&list);
        assert_eq!(block[0], 0x00);
        let mut d = Decoder::new(0, 0);
        assert_eq!(d.decode(&block).unwrap(), list);
        assert_eq!(d.table_size(), 0);
    }
}
