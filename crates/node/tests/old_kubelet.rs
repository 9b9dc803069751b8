//! kubelets before 1.26 send the plugin socket's path as the HTTP/2 `:authority`
//! (kubernetes#112597). These tests speak HTTP/2 by hand over the plugin socket, as such a
//! kubelet does, against the agent's plugin server (behind its `h2front`) and against tonic
//! served directly (which refuses the request: what the front is for).

mod common;

use std::path::Path;

use common::{init_tracing, WAIT};
use node::h2front::hpack::{encode_literal_block, encode_string, Decoder, Field};
use node::h2front::{self, FrameHeader, PREFACE};
use node::plugin::{PhysnetPlugin, ResourceState};
use node::proto::device_plugin_server::DevicePluginServer;
use node::proto::DevicePluginOptions;
use node::server::PluginServer;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

const METHOD: &str = "/v1beta1.DevicePlugin/GetDevicePluginOptions";
const PROTOCOL_ERROR: u32 = 0x1;

/// How the server answered the call on stream 1.
#[derive(Debug)]
enum Outcome {
    /// Response headers, message bytes and trailers.
    Answered { headers: Vec<Field>, data: Vec<u8> },
    /// RST_STREAM with this error code.
    Reset(u32),
}

fn field<'a>(headers: &'a [Field], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| std::str::from_utf8(v).unwrap())
}

/// One unary gRPC call with an empty request, written frame by frame, with `authority` as the
/// request's `:authority` (a literal with incremental indexing, as grpc-go writes it).
async fn raw_call(socket: &Path, authority: &str) -> Outcome {
    let mut conn = UnixStream::connect(socket).await.expect("connect to the plugin socket");
    let mut out = PREFACE.to_vec();
    h2front::write_frame(&mut out, h2front::TYPE_SETTINGS, 0, 0, &[]);
    let mut block = encode_literal_block(&[
        (b":method".to_vec(), b"POST".to_vec()),
        (b":scheme".to_vec(), b"http".to_vec()),
        (b":path".to_vec(), METHOD.as_bytes().to_vec()),
    ]);
    block.push(0x41); // :authority (static index 1), literal with incremental indexing
    encode_string(authority.as_bytes(), &mut block);
    block.extend(encode_literal_block(&[(b"content-type".to_vec(), b"application/grpc".to_vec()), (b"te".to_vec(), b"trailers".to_vec())]));
    h2front::write_frame(&mut out, h2front::TYPE_HEADERS, h2front::FLAG_END_HEADERS, 1, &block);
    // A gRPC message frame: not compressed, length 0 (an empty Empty).
    h2front::write_frame(&mut out, h2front::TYPE_DATA, h2front::FLAG_END_STREAM, 1, &[0, 0, 0, 0, 0]);
    conn.write_all(&out).await.unwrap();

    let read = async {
        let mut decoder = Decoder::new(4096, 4096);
        let mut buf = Vec::new();
        let mut headers = Vec::new();
        let mut data = Vec::new();
        let mut block = Vec::new();
        loop {
            while buf.len() >= 9 {
                let h = FrameHeader::parse(buf[..9].try_into().unwrap());
                if buf.len() < 9 + h.len {
                    break;
                }
                let payload: Vec<u8> = buf[9..9 + h.len].to_vec();
                buf.drain(..9 + h.len);
                match h.kind {
                    h2front::TYPE_SETTINGS if h.flags & h2front::FLAG_ACK == 0 => {
                        let mut ack = Vec::new();
                        h2front::write_frame(&mut ack, h2front::TYPE_SETTINGS, h2front::FLAG_ACK, 0, &[]);
                        conn.write_all(&ack).await.unwrap();
                    }
                    h2front::TYPE_HEADERS | h2front::TYPE_CONTINUATION => {
                        assert_eq!(h.flags & (h2front::FLAG_PADDED | h2front::FLAG_PRIORITY), 0, "tonic pads or prioritises");
                        block.extend_from_slice(&payload);
                        if h.flags & h2front::FLAG_END_HEADERS != 0 {
                            headers.extend(decoder.decode(&block).expect("response headers decode"));
                            block.clear();
                        }
                        if h.flags & h2front::FLAG_END_STREAM != 0 {
                            assert_eq!(h.stream, 1);
                            return Outcome::Answered { headers, data };
                        }
                    }
                    h2front::TYPE_DATA if h.stream == 1 => data.extend_from_slice(&payload),
                    h2front::TYPE_RST_STREAM if h.stream == 1 => {
                        return Outcome::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap()));
                    }
                    0x7 => panic!("GOAWAY: {payload:?}"),
                    _ => {}
                }
            }
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await.expect("read from the plugin socket");
            assert!(n > 0, "connection closed before the call ended");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, read).await.unwrap_or_else(|_| panic!("no answer to {METHOD} within {WAIT:?}"))
}

fn assert_ok(outcome: Outcome) {
    let Outcome::Answered { headers, data } = outcome else { panic!("call failed: {outcome:?}") };
    assert_eq!(field(&headers, ":status"), Some("200"), "{headers:?}");
    assert_eq!(field(&headers, "grpc-status"), Some("0"), "{headers:?}");
    assert!(data.len() >= 5 && data[0] == 0, "one uncompressed gRPC message: {data:?}");
    let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
    assert_eq!(data.len(), 5 + len);
    let opts = DevicePluginOptions::decode(&data[5..]).unwrap();
    assert!(opts.get_preferred_allocation_available && !opts.pre_start_required, "{opts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_answers_a_kubelet_that_sends_the_socket_path_as_authority() {
    init_tracing();
    let tmp = tempfile::tempdir().unwrap();
    let server = PluginServer::start(tmp.path(), "physnet1", "br-ex", 4).unwrap();
    let socket = server.socket().to_path_buf();
    let path = socket.to_str().unwrap().to_string();
    // As kubelet < 1.26 calls: the socket path as authority.
    assert_ok(raw_call(&socket, &path).await);
    // Also with a valid authority, and a long path.
    assert_ok(raw_call(&socket, "localhost").await);
    assert_ok(raw_call(&socket, &format!("/var/lib/kubelet/device-plugins/{}", "x".repeat(300))).await);
    server.stop().await;
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_without_the_front_resets_a_socket_path_authority() {
    init_tracing();
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("direct.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let (_state, rx) = tokio::sync::watch::channel(ResourceState { bridge: "br-ex".to_string(), healthy: true, stopping: false });
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(DevicePluginServer::new(PhysnetPlugin::new("physnet1", 4, rx)))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), s.cancelled_owned())
            .await
    });
    // The hand-written call is right: with a valid authority tonic answers it.
    assert_ok(raw_call(&socket, "localhost").await);
    // With the socket path as authority, h2 refuses the request.
    match raw_call(&socket, socket.to_str().unwrap()).await {
        Outcome::Reset(code) => assert_eq!(code, PROTOCOL_ERROR),
        other => panic!("expected RST_STREAM PROTOCOL_ERROR, got {other:?}"),
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}
