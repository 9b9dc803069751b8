//! Stopping the admission webhook (what SIGTERM does in `kubetron webhook`): it stops accepting, the
//! request in flight still gets its answer, an idle keep-alive connection is closed, and `run_until`
//! returns once both are done.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use k8s::nad::NetworkAttachmentDefinition;
use k8s::webhook::{AdmissionReview, MemoryNads, NadSource, NadSourceError, TlsSource, WebhookConfig, WebhookServer};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsConnector;

const NAME: &str = "kubetron-webhook.kubetron.svc";
const BOUND: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> String {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// NADs from the fixtures, but every lookup waits until the test opens the gate (a slow API server).
#[derive(Clone)]
struct GatedNads {
    nads: MemoryNads,
    entered: Arc<Notify>,
    gate: Arc<Semaphore>,
}

impl NadSource for GatedNads {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<NetworkAttachmentDefinition>, NadSourceError> {
        self.entered.notify_one();
        let _permit = self.gate.acquire().await.expect("gate");
        self.nads.get(namespace, name).await
    }
    async fn offered_profiles(&self) -> Result<Option<k8s::profiles::Offers>, NadSourceError> {
        self.nads.offered_profiles().await
    }
}

async fn connect(addr: std::net::SocketAddr, connector: &TlsConnector) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = connector.connect(rustls::pki_types::ServerName::try_from(NAME).unwrap(), tcp).await.expect("TLS");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("HTTP handshake");
    tokio::spawn(conn);
    sender
}

fn request(method: &str, path: &str, body: String) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", NAME)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_finishes_the_request_in_flight_and_closes_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.crt");
    let nads = MemoryNads::new();
    let list: Vec<NetworkAttachmentDefinition> = serde_json::from_str(&fixture("nads.json")).unwrap();
    for n in list {
        nads.insert(n);
    }
    let gated = GatedNads { nads, entered: Arc::new(Notify::new()), gate: Arc::new(Semaphore::new(0)) };
    let config = WebhookConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: TlsSource::Generate { dns_names: vec![NAME.into()], ca_out: Some(ca_path.clone()) },
    };
    let server = WebhookServer::bind(&config, gated.clone()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let ca_pem = std::fs::read(&ca_path).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(client));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(server.run_until(async {
        let _ = stop_rx.await;
    }));

    // An idle keep-alive connection (one request answered, connection kept).
    let mut idle = connect(addr, &connector).await;
    let r = idle.send_request(request("GET", "/healthz", String::new())).await.expect("healthz");
    assert_eq!(r.status(), StatusCode::OK);
    r.into_body().collect().await.unwrap();

    // A review that is in the middle of its NAD lookup when the stop comes.
    let mut busy = connect(addr, &connector).await;
    let entered = gated.entered.notified();
    let review = tokio::spawn(async move {
        let r = busy.send_request(request("POST", "/mutate", fixture("review-pod-networks.json"))).await.expect("review answered");
        let status = r.status();
        (status, r.into_body().collect().await.expect("review body").to_bytes())
    });
    tokio::time::timeout(BOUND, entered).await.expect("the review reaches the NAD lookup");
    stop_tx.send(()).unwrap();

    // Stopped accepting (the listener is closed once the server saw the stop).
    let deadline = tokio::time::Instant::now() + BOUND;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting connections after the stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The idle connection is closed by the server.
    while !idle.is_closed() {
        assert!(tokio::time::Instant::now() < deadline, "the idle keep-alive connection is still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still draining: the review has not been answered yet, so the server has not returned.
    assert!(!server.is_finished(), "the server returned with a request in flight");

    // The lookup completes: the review gets its full answer, then the server returns.
    gated.gate.add_permits(100);
    let (status, body) = tokio::time::timeout(BOUND, review).await.expect("review finishes").unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: AdmissionReview = serde_json::from_slice(&body).expect("an AdmissionReview");
    assert!(answer.response.expect("response").allowed);
    tokio::time::timeout(BOUND, &mut server).await.expect("server returns after draining").unwrap().expect("run_until result");
}
