//! Feeds arbitrary bytes, in pieces whose sizes come from the input, through the wire codec and
//! the JSON-RPC / table-updates parsers: errors are fine, panics are not.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let chunk = (first as usize % 64) + 1;
    let mut codec = ovsdb::JsonCodec::new(4096);
    let mut buf = BytesMut::new();
    for part in rest.chunks(chunk) {
        buf.extend_from_slice(part);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Ok(msg) = ovsdb::jsonrpc::parse(&frame) {
                        if let ovsdb::jsonrpc::Incoming::Response { result: Ok(body), .. } = msg {
                            let _ = ovsdb::monitor::decode_updates(&body, None, false);
                            let _ = ovsdb::monitor::decode_updates(&body, None, true);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
