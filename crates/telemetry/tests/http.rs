//! The endpoint over real HTTP on loopback.

use std::io::{Read, Write};

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let code = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness() {
    let t = telemetry::Telemetry::new();
    let c = t.registry.counter("kubetron_test_total", "A test counter.", &[("k", "v")]);
    c.add(7);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(telemetry::serve("127.0.0.1:0".parse().unwrap(), t.clone(), Some(tx), async {
        let _ = stop_rx.await;
    }));
    let addr = rx.await.unwrap();
    let (code, body) = tokio::task::spawn_blocking(move || get(addr, "/metrics")).await.unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("kubetron_test_total{k=\"v\"} 7"), "{body}");
    assert_eq!(tokio::task::spawn_blocking(move || get(addr, "/healthz")).await.unwrap().0, 200);
    assert_eq!(tokio::task::spawn_blocking(move || get(addr, "/readyz")).await.unwrap().0, 503);
    t.set_ready(true);
    assert_eq!(tokio::task::spawn_blocking(move || get(addr, "/readyz")).await.unwrap().0, 200);
    assert_eq!(tokio::task::spawn_blocking(move || get(addr, "/nope")).await.unwrap().0, 404);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
