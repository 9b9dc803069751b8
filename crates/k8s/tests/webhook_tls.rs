//! The admission webhook over real TLS: generated CA, rustls client, AdmissionReview fixtures,
//! returned JSONPatch applied to the pod.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use k8s::nad::NetworkAttachmentDefinition;
use k8s::webhook::{AdmissionReview, MemoryNads, TlsSource, WebhookConfig, WebhookServer};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const SERVICE_NAME: &str = "kubetron-webhook.kubetron.svc";

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn nads() -> MemoryNads {
    let list: Vec<NetworkAttachmentDefinition> = serde_json::from_str(&fixture("nads.json")).unwrap();
    let m = MemoryNads::new();
    for n in list {
        m.insert(n);
    }
    m
}

struct Harness {
    addr: std::net::SocketAddr,
    connector: TlsConnector,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.crt");
        let config = WebhookConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: TlsSource::Generate { dns_names: vec![SERVICE_NAME.into()], ca_out: Some(ca_path.clone()) },
        };
        let server = WebhookServer::bind(&config, nads()).await.unwrap();
        let addr = server.local_addr().unwrap();
        // Trust only the CA the server wrote to disk.
        let ca_pem = std::fs::read(&ca_path).unwrap();
        assert_eq!(server.ca_pem().unwrap().as_bytes(), &ca_pem[..]);
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run_until(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Harness { addr, connector: TlsConnector::from(Arc::new(client)), _dir: dir, shutdown: Some(tx), task }
    }

    async fn request(&self, server_name: &str, method: &str, path: &str, body: String) -> Result<(StatusCode, String), String> {
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let tls = self.connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", SERVICE_NAME)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, String::from_utf8(body.to_vec()).unwrap()))
    }

    async fn review(&self, fixture_name: &str) -> (Value, k8s::webhook::AdmissionResponse) {
        let text = fixture(fixture_name);
        let sent: Value = serde_json::from_str(&text).unwrap();
        let (status, body) = self.request(SERVICE_NAME, "POST", "/mutate", text).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let review: AdmissionReview = serde_json::from_str(&body).unwrap();
        assert_eq!(review.api_version, "admission.k8s.io/v1");
        assert_eq!(review.kind, "AdmissionReview");
        let resp = review.response.expect("response");
        assert_eq!(resp.uid, sent["request"]["uid"].as_str().unwrap(), "uid is echoed");
        (sent["request"]["object"].clone(), resp)
    }

    async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

fn apply(mut pod: Value, resp: &k8s::webhook::AdmissionResponse) -> Value {
    assert_eq!(resp.patch_type.as_deref(), Some("JSONPatch"));
    let raw = base64::engine::general_purpose::STANDARD.decode(resp.patch.as_ref().unwrap()).unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
    json_patch::patch(&mut pod, &patch).unwrap();
    pod
}

fn env_of(pod: &Value, pointer: &str) -> Vec<(String, String)> {
    pod.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no env at {pointer}: {pod}"))
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn networks_pod_gets_env_and_resources() {
    let h = Harness::start().await;
    let (pod, resp) = h.review("review-pod-networks.json").await;
    assert!(resp.allowed, "{resp:?}");
    assert!(resp.status.is_none());
    let out = apply(pod, &resp);
    // Annotation "blue, team-b/shared@data0, physnet-red, macvlan-conf": blue=net1, physnet-red=net2,
    // macvlan-conf=net3 (not kubetron: no variable).
    let ours = [("NETWORK_INTERFACE_BLUE", "net1"), ("NETWORK_INTERFACE_SHARED", "data0"), ("NETWORK_INTERFACE_PHYSNET_RED", "net2")];
    let mut app = vec![("LOG_LEVEL", "debug")];
    app.extend(ours);
    assert_eq!(env_of(&out, "/spec/containers/0/env"), pairs(&app), "appended to existing env");
    assert_eq!(env_of(&out, "/spec/containers/1/env"), pairs(&ours), "env created");
    assert_eq!(env_of(&out, "/spec/initContainers/0/env"), pairs(&ours), "init containers too");
    assert_eq!(out.pointer("/spec/containers/0/resources/requests").unwrap(), &json!({"cpu": "100m", "kubetron.io/physnet1": "1"}));
    assert_eq!(out.pointer("/spec/containers/0/resources/limits").unwrap(), &json!({"kubetron.io/physnet1": "1"}));
    assert!(out.pointer("/spec/containers/1/resources").is_none(), "only the first container gets the resource");
    assert!(!out.to_string().contains("MACVLAN"), "no env for non-kubetron networks");
    h.stop().await;
}

#[tokio::test]
async fn json_form_with_static_addresses() {
    let h = Harness::start().await;
    let (pod, resp) = h.review("review-pod-json-static.json").await;
    assert!(resp.allowed, "{resp:?}");
    let out = apply(pod, &resp);
    assert_eq!(
        env_of(&out, "/spec/containers/0/env"),
        pairs(&[("NETWORK_INTERFACE_STATIC_NET", "storage"), ("NETWORK_INTERFACE_SHARED", "net1")])
    );
    // `resources: {}` exists but no physical network: untouched.
    assert_eq!(out.pointer("/spec/containers/0/resources").unwrap(), &json!({}));
    h.stop().await;
}

#[tokio::test]
async fn pods_without_kubetron_networks_are_untouched() {
    let h = Harness::start().await;
    for f in ["review-pod-no-annotation.json", "review-pod-only-multus.json", "review-pod-update.json"] {
        let (_, resp) = h.review(f).await;
        assert!(resp.allowed, "{f}: {resp:?}");
        assert!(resp.patch.is_none() && resp.patch_type.is_none(), "{f}: no patch");
    }
    h.stop().await;
}

#[tokio::test]
async fn refusals_explain_themselves() {
    let h = Harness::start().await;
    let cases = [
        ("review-pod-malformed.json", 400, vec!["#2", "Team-B/Shared", "DNS-1123"]),
        ("review-pod-unknown-network.json", 404, vec!["network team-a/green does not exist"]),
        ("review-pod-forbidden.json", 403, vec!["team-b/private", "not shared", "team-a", "kubetron.io/allowed-namespaces"]),
        ("review-pod-static-denied.json", 403, vec!["static IPs", "10.10.0.9", "capabilities.ips"]),
        ("review-pod-broken-nad.json", 400, vec!["team-b/broken", "logical_switch"]),
    ];
    for (f, code, needles) in cases {
        let (_, resp) = h.review(f).await;
        assert!(!resp.allowed, "{f}");
        assert!(resp.patch.is_none(), "{f}");
        let status = resp.status.expect("status");
        assert_eq!(status.code, code, "{f}: {}", status.message);
        for n in needles {
            assert!(status.message.contains(n), "{f}: {:?} lacks {n:?}", status.message);
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn http_surface() {
    let h = Harness::start().await;
    assert_eq!(h.request(SERVICE_NAME, "GET", "/healthz", String::new()).await.unwrap(), (StatusCode::OK, "ok\n".into()));
    assert_eq!(h.request(SERVICE_NAME, "GET", "/nope", String::new()).await.unwrap().0, StatusCode::NOT_FOUND);
    assert_eq!(h.request(SERVICE_NAME, "GET", "/mutate", String::new()).await.unwrap().0, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = h.request(SERVICE_NAME, "POST", "/mutate", "{not json".into()).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not an AdmissionReview"), "{body}");
    let (status, _) = h
        .request(SERVICE_NAME, "POST", "/mutate", json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).to_string())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // One good admission, then the counters show both bad requests and it.
    let _ = h.review("review-pod-networks.json").await;
    let (status, metrics) = h.request(SERVICE_NAME, "GET", "/metrics", String::new()).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("kubetron_webhook_admissions_total{result=\"bad_request\"} 2"), "{metrics}");
    assert!(metrics.contains("kubetron_webhook_admissions_total{result=\"patched\"} 1"), "{metrics}");
    // The certificate is only valid for the service name.
    let err = h.request("evil.example", "GET", "/healthz", String::new()).await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    h.stop().await;
}
