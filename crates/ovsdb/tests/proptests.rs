//! Property tests: datum encode/decode round trip, and the codec never panicking on arbitrary
//! bytes or arbitrary splits of valid input.

use bytes::BytesMut;
use ovsdb::{Atom, Datum, JsonCodec, Row, Uuid};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn atom() -> impl Strategy<Value = Atom> {
    prop_oneof![
        any::<i64>().prop_map(Atom::Integer),
        // Finite reals that survive a JSON round trip.
        (-1e15f64..1e15).prop_map(Atom::Real),
        any::<bool>().prop_map(Atom::Boolean),
        ".{0,12}".prop_map(Atom::String),
        any::<u128>().prop_map(|u| Atom::Uuid(Uuid::from_u128(u))),
        "[a-z][a-z0-9_]{0,8}".prop_map(Atom::NamedUuid),
    ]
}

fn datum() -> impl Strategy<Value = Datum> {
    prop_oneof![
        atom().prop_map(Datum::atom),
        prop::collection::vec(atom(), 0..8).prop_map(Datum::set),
        prop::collection::vec((atom(), atom()), 0..8).prop_map(Datum::map),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn datum_round_trip(d in datum()) {
        let json = serde_json::to_string(&d).unwrap();
        let back: Datum = serde_json::from_str(&json).unwrap();
        // An empty map encodes as ["map",[]] and decodes as a map; everything else is identical.
        prop_assert_eq!(&back, &d, "{}", json);
        // Canonical: encoding the decoded value gives the same text.
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn row_round_trip(cols in prop::collection::btree_map("[a-z_]{1,10}", datum(), 0..6)) {
        let row: Row = cols.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let json = serde_json::to_string(&row).unwrap();
        let back: Row = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, row);
    }

    #[test]
    fn datum_parse_never_panics(s in ".{0,64}") {
        let _ = serde_json::from_str::<Datum>(&s);
    }

    #[test]
    fn codec_never_panics(data in prop::collection::vec(any::<u8>(), 0..512), max in 1usize..256, chunk in 1usize..64) {
        let mut c = JsonCodec::new(max);
        let mut buf = BytesMut::new();
        'outer: for part in data.chunks(chunk) {
            buf.extend_from_slice(part);
            loop {
                match c.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
        let _ = c.decode_eof(&mut buf);
    }

    #[test]
    fn codec_frames_any_split(ds in prop::collection::vec(datum(), 1..6), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8), ws in "[ \n\t]{0,3}") {
        // A stream of messages with arbitrary whitespace between them, fed in arbitrary pieces,
        // yields exactly the messages.
        let msgs: Vec<String> = ds.iter().enumerate()
            .map(|(i, d)| serde_json::json!({"id": i, "result": [d], "error": null}).to_string())
            .collect();
        let stream = msgs.join(&ws);
        let bytes = stream.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort();
        let mut c = JsonCodec::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for w in points.windows(2) {
            buf.extend_from_slice(&bytes[w[0]..w[1]]);
            while let Some(f) = c.decode(&mut buf).unwrap() {
                out.push(String::from_utf8(f.to_vec()).unwrap());
            }
        }
        if let Some(f) = c.decode_eof(&mut buf).unwrap() {
            out.push(String::from_utf8(f.to_vec()).unwrap());
        }
        prop_assert_eq!(out, msgs);
    }
}
