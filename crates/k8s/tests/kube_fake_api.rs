//! The kube-backed pieces against a fake API server on 127.0.0.1: request paths, verbs and
//! bodies are what a real API server expects.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s::webhook::{register_ca_bundle, KubeSource, NadSource};
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: String,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
    )
}

fn answer(method: &str, path: &str) -> (StatusCode, Value) {
    match (method, path) {
        ("GET", "/apis/k8s.cni.cncf.io/v1/namespaces/team-a/network-attachment-definitions/blue") => (
            StatusCode::OK,
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": "blue", "namespace": "team-a", "resourceVersion": "7"},
                   "spec": {"config": "{\"type\":\"kubetron\",\"name\":\"blue\"}"}}),
        ),
        ("GET", "/apis/k8s.cni.cncf.io/v1/namespaces/team-a/network-attachment-definitions/boom") => (
            StatusCode::FORBIDDEN,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "forbidden: no get", "reason": "Forbidden", "code": 403}),
        ),
        ("GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kubetron-webhook")
        | ("PATCH", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kubetron-webhook") => (
            StatusCode::OK,
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                   "metadata": {"name": "kubetron-webhook"},
                   "webhooks": [{"name": "pods.kubetron.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                                 "clientConfig": {"service": {"name": "kubetron-webhook", "namespace": "kubetron"}}}]}),
        ),
        ("GET", "/api/v1/namespaces/kubetron/configmaps/kubetron-security-profiles") => (
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "kubetron-security-profiles", "namespace": "kubetron"},
                   "data": {"web_tier": "team-a,team-b"}}),
        ),
        _ => not_found(path),
    }
}

async fn fake_api() -> (kube::Client, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let log = log2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_string();
                        let content_type =
                            req.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_string()).unwrap_or_default();
                        let body = String::from_utf8_lossy(&req.into_body().collect().await.unwrap().to_bytes()).to_string();
                        let (status, value) = answer(&method, &path);
                        log.lock().unwrap().push(Seen { method, path, content_type, body });
                        let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
                        *resp.status_mut() = status;
                        resp.headers_mut().insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    (kube::Client::try_from(config).unwrap(), log)
}

#[tokio::test]
async fn client_nad_source_uses_the_crd_paths() {
    let (client, log) = fake_api().await;
    let client = KubeSource::new(client, "kubetron");
    let nad = client.get("team-a", "blue").await.unwrap().expect("found");
    assert_eq!(nad.kubetron_config().unwrap().unwrap().name, "blue");
    assert!(client.get("team-a", "nope").await.unwrap().is_none(), "404 is Ok(None)");
    let err = client.get("team-a", "boom").await.unwrap_err();
    assert!(err.to_string().contains("team-a/boom") && err.to_string().contains("forbidden"), "{err}");
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.method == "GET"));
    assert_eq!(seen[0].path, "/apis/k8s.cni.cncf.io/v1/namespaces/team-a/network-attachment-definitions/blue");
}

#[tokio::test]
async fn client_source_reads_the_published_profiles() {
    let (client, log) = fake_api().await;
    let offers = KubeSource::new(client.clone(), "kubetron").offered_profiles().await.unwrap().expect("published");
    assert_eq!(offers.get("web_tier").map(String::as_str), Some("team-a,team-b"));
    assert_eq!(KubeSource::new(client, "elsewhere").offered_profiles().await.unwrap(), None, "404 is Ok(None)");
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/api/v1/namespaces/kubetron/configmaps/kubetron-security-profiles");
}

#[tokio::test]
async fn ca_bundle_is_published_with_a_strategic_merge_patch() {
    let (client, log) = fake_api().await;
    register_ca_bundle(client.clone(), "kubetron-webhook", "-----BEGIN CERTIFICATE-----\nX\n", Duration::from_secs(1)).await.unwrap();
    let seen = log.lock().unwrap().clone();
    let patch = seen.iter().find(|s| s.method == "PATCH").expect("a PATCH");
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    let body: Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(body["webhooks"][0]["name"], "pods.kubetron.io");
    let bundle = body["webhooks"][0]["clientConfig"]["caBundle"].as_str().unwrap();
    use base64::Engine;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(bundle).unwrap(), b"-----BEGIN CERTIFICATE-----\nX\n");

    // A missing configuration is an error after the wait runs out.
    let err = register_ca_bundle(client, "other", "pem", Duration::from_millis(10)).await.unwrap_err();
    assert!(err.to_string().contains("other") && err.to_string().contains("does not exist"), "{err}");
}
