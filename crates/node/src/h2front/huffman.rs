//! The static Huffman code of HPACK string literals (RFC 7541 section 5.2 and Appendix B).

use std::sync::OnceLock;

use super::hpack::HpackError;

/// RFC 7541 Appendix B, one row per symbol 0..=255 and EOS (256): the code right-aligned (the
/// "as hex aligned to LSB" column) and its length in bits.
#[rustfmt::skip]
pub(crate) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),              //   0..=3
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),          //   4..=7
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),          //   8..=11
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),         //  12..=15
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),          //  16..=19
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),         //  20..=23
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),          //  24..=27
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),          //  28..=31
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),                            //  ' ' ! " #
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),                             //  $ % & '
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),                            //  ( ) * +
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),                                  //  , - . /
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),                                     //  0 1 2 3
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),                                  //  4 5 6 7
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),                                  //  8 9 : ;
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),                           //  < = > ?
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),                               //  @ A B C
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),                                  //  D E F G
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),                                  //  H I J K
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),                                  //  L M N O
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),                                  //  P Q R S
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),                                  //  T U V W
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),                               //  X Y Z [
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),                        //  \ ] ^ _
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),                                 //  ` a b c
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),                                   //  d e f g
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),                                   //  h i j k
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),                                   //  l m n o
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),                                   //  p q r s
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),                                   //  t u v w
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),                               //  x y z {
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),                    //  | } ~ 127
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),                 // 128..=131
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),              // 132..=135
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),              // 136..=139
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),              // 140..=143
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),              // 144..=147
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),              // 148..=151
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),              // 152..=155
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),              // 156..=159
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),               // 160..=163
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),              // 164..=167
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),              // 168..=171
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),              // 172..=175
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),              // 176..=179
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),              // 180..=183
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),               // 184..=187
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),              // 188..=191
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),              // 192..=195
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),             // 196..=199
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),          // 200..=203
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),           // 204..=207
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),             // 208..=211
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),           // 212..=215
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),            // 216..=219
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),          // 220..=223
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),                // 224..=227
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),              // 228..=231
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),            // 232..=235
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),             // 236..=239
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),          // 240..=243
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),          // 244..=247
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),          // 248..=251
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),          // 252..=255
    (0x3fffffff, 30),                                                            // EOS
];

/// The EOS symbol: never valid inside a string (RFC 7541 section 5.2).
const EOS: u16 = 256;
/// A child that is a symbol rather than another node.
const LEAF: u16 = 0x8000;
/// No child yet (only while building).
const NONE: u16 = u16::MAX;

/// The code as a binary tree: node `i` has children `[bit 0, bit 1]`, each either the index of
/// another node or `LEAF | symbol`. Node 0 is the root.
fn tree() -> &'static [[u16; 2]] {
    static TREE: OnceLock<Vec<[u16; 2]>> = OnceLock::new();
    TREE.get_or_init(|| build(&CODES).expect("RFC 7541 Appendix B is a complete prefix code"))
}

/// Builds the decoding tree, or says why the table is not a complete prefix code.
fn build(codes: &[(u32, u8)]) -> Result<Vec<[u16; 2]>, String> {
    let mut nodes: Vec<[u16; 2]> = vec![[NONE, NONE]];
    for (sym, &(code, len)) in codes.iter().enumerate() {
        let mut node = 0usize;
        for i in (0..len).rev() {
            let bit = ((code >> i) & 1) as usize;
            let child = nodes[node][bit];
            if i == 0 {
                if child != NONE {
                    return Err(format!("symbol {sym}: code collides with another"));
                }
                nodes[node][bit] = LEAF | sym as u16;
            } else if child == NONE {
                nodes.push([NONE, NONE]);
                let next = (nodes.len() - 1) as u16;
                nodes[node][bit] = next;
                node = next as usize;
            } else if child & LEAF != 0 {
                return Err(format!("symbol {sym}: a shorter code is its prefix"));
            } else {
                node = child as usize;
            }
        }
    }
    if let Some(i) = nodes.iter().position(|n| n.contains(&NONE)) {
        return Err(format!("node {i} is missing a child: the code is not complete"));
    }
    Ok(nodes)
}

/// Appends the decoding of the Huffman-coded `src` to `out`. Padding must be fewer than 8 bits,
/// all ones (the most significant bits of EOS); EOS itself is an error.
pub fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let tree = tree();
    let mut node = 0usize;
    // Bits read since the last symbol, and whether they were all ones.
    let mut pending = 0u32;
    let mut ones = true;
    for &byte in src {
        for i in (0..8).rev() {
            let bit = (byte >> i) & 1;
            pending += 1;
            ones &= bit == 1;
            let child = tree[node][bit as usize];
            if child & LEAF != 0 {
                let sym = child & !LEAF;
                if sym == EOS {
                    return Err(HpackError::Huffman("EOS in a string"));
                }
                out.push(sym as u8);
                node = 0;
                pending = 0;
                ones = true;
            } else {
                node = child as usize;
            }
        }
    }
    if pending > 7 {
        return Err(HpackError::Huffman("padding longer than 7 bits"));
    }
    if !ones {
        return Err(HpackError::Huffman("padding is not a prefix of EOS"));
    }
    Ok(())
}

/// Huffman-codes `src` (padded with ones to an octet boundary). Only tests need it: the front's
/// own encoder writes plain strings.
#[cfg(test)]
pub fn encode(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for &b in src {
        let (code, len) = CODES[b as usize];
        acc = (acc << len) | code as u64;
        bits += len as u32;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn dec(src: &[u8]) -> Result<Vec<u8>, HpackError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    #[test]
    fn table_is_a_complete_prefix_code_with_codes_that_fit_their_length() {
        assert!(CODES.iter().all(|&(code, len)| (5..=30).contains(&len) && u64::from(code) < 1u64 << len));
        let nodes = build(&CODES).unwrap();
        // A complete binary tree with 257 leaves has 256 inner nodes.
        assert_eq!(nodes.len(), 256);
        // A broken table is noticed: a duplicate code, and a missing one.
        let mut dup = CODES;
        dup[1] = dup[0];
        assert!(build(&dup).is_err());
        assert!(build(&CODES[..256]).is_err());
    }

    #[test]
    fn every_symbol_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(dec(&encode(&all)).unwrap(), all);
        for b in 0..=255u8 {
            assert_eq!(dec(&encode(&[b])).unwrap(), [b], "symbol {b}");
        }
    }

    #[test]
    fn rfc7541_appendix_c_strings() {
        // C.4.1 .. C.4.3 (requests) and C.6.1 .. C.6.3 (responses).
        let cases = [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            ("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3", "https://www.example.com"),
            ("640e ff", "307"),
            ("9bd9 ab", "gzip"),
            (
                "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            ),
        ];
        for (coded, plain) in cases {
            assert_eq!(dec(&hex(coded)).unwrap(), plain.as_bytes(), "{plain}");
            assert_eq!(encode(plain.as_bytes()), hex(coded), "{plain}");
        }
    }

    #[test]
    fn bad_padding_and_eos_are_errors() {
        // "0" is 00000: padded with 111 is fine, with 000 ("000" would be another "0" short of bits) is not.
        assert_eq!(dec(&[0b0000_0111]).unwrap(), b"0");
        assert!(dec(&[0b0000_0101]).is_err());
        // A whole octet of padding (eight ones) is too long.
        assert!(dec(&[0b0000_0111, 0xff]).is_err());
        // EOS (30 ones) spelled out.
        assert!(dec(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(dec(&[]).unwrap(), b"");
    }
}
