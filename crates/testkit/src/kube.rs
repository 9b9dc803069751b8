//! What the tests against a real kube-apiserver share: the gate (`KUBETRON_KUBE_TESTS=1`), the deployed
//! identities, kube-rs clients from kubeconfig files, bounded waits, and deploy/'s manifests (the CRD, the
//! `kubetron` namespace and RBAC, the webhook configuration) applied as a user applies them. Everything
//! panics on failure: these are test helpers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s::rbac::WEBHOOK_CONFIGURATION_NAME;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::Client;
use serde_json::{json, Value};

/// The kubetron namespace of deploy/ (service accounts, the leader election Role).
pub const KUBETRON_NS: &str = "kubetron";
pub const CONTROLLER_USER: &str = "system:serviceaccount:kubetron:kubetron-controller";
pub const WEBHOOK_USER: &str = "system:serviceaccount:kubetron:kubetron-webhook";
pub const NODE_USER: &str = "system:serviceaccount:kubetron:kubetron-node";
/// Groups a service account's token would carry.
pub const SA_GROUPS: &[&str] = &["system:serviceaccounts", "system:serviceaccounts:kubetron"];

/// Whether the kube tests run (`KUBETRON_KUBE_TESTS=1`); prints "skipped <test>" when they do not.
pub fn enabled(test: &str) -> bool {
    let on = std::env::var("KUBETRON_KUBE_TESTS").as_deref() == Ok("1");
    if !on {
        eprintln!("skipped {test}: set KUBETRON_KUBE_TESTS=1 to run the kube-apiserver tests");
    }
    on
}

/// A tokio runtime for one test (tests are plain `#[test]`s).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// A kube client from a kubeconfig file. Clients belong to the tokio runtime they are made in.
pub async fn client_from(path: &Path) -> Client {
    k8s::client::client_from_kubeconfig(path).await.expect("kube client")
}

/// Polls `f` every 100 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    k8s::client::wait_for(what, timeout, Duration::from_millis(100), f).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Creates `obj`; an AlreadyExists (409) answer is fine.
pub async fn create_or_exists<K>(api: &Api<K>, obj: &K)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    k8s::client::create_or_exists(api, obj).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Creates a namespace with `labels`; Ok when it already exists.
pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let labels: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("namespace");
    create_or_exists(&Api::<Namespace>::all(client.clone()), &ns).await;
}

/// The repository's deploy/ directory.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The YAML documents of `deploy/<file>`, as JSON values.
pub fn deploy_docs(file: &str) -> Vec<Value> {
    let path = deploy_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    k8s::client::yaml_documents(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Installs deploy/crd.yaml, deploy/crd-ipamclaims.yaml and deploy/crd-multinetworkpolicies.yaml
/// (idempotent) and waits until they are Established and served; returns the NAD CRD.
pub async fn install_crd(client: &Client) -> CustomResourceDefinition {
    install_ipamclaim_crd(client).await;
    let text = std::fs::read_to_string(deploy_dir().join("crd-multinetworkpolicies.yaml")).expect("deploy/crd-multinetworkpolicies.yaml");
    assert_eq!(deploy_docs("crd-multinetworkpolicies.yaml").len(), 1, "crd-multinetworkpolicies.yaml holds one CRD");
    k8s::client::install_mnp_crd(client, &text, Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(deploy_dir().join("crd.yaml")).expect("deploy/crd.yaml");
    assert_eq!(deploy_docs("crd.yaml").len(), 1, "crd.yaml holds one CRD");
    k8s::client::install_nad_crd(client, &text, Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Installs deploy/crd-ipamclaims.yaml (idempotent) and waits until it is Established and the
/// IPAMClaim API is served.
pub async fn install_ipamclaim_crd(client: &Client) -> CustomResourceDefinition {
    let text = std::fs::read_to_string(deploy_dir().join("crd-ipamclaims.yaml")).expect("deploy/crd-ipamclaims.yaml");
    assert_eq!(deploy_docs("crd-ipamclaims.yaml").len(), 1, "crd-ipamclaims.yaml holds one CRD");
    k8s::client::install_ipamclaim_crd(client, &text, Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{e}"))
}

/// The `kubetron` namespace as deploy/namespace.yaml makes it (with its labels), and every object of
/// deploy/rbac-*.yaml (created; existing objects are left as they are).
pub async fn apply_rbac(client: &Client) {
    let ns = deploy_docs("namespace.yaml").into_iter().find(|d| d["kind"] == "Namespace").expect("a Namespace in deploy/namespace.yaml");
    assert_eq!(ns["metadata"]["name"], KUBETRON_NS);
    let ns: Namespace = serde_json::from_value(ns).expect("typed Namespace");
    create_or_exists(&Api::<Namespace>::all(client.clone()), &ns).await;
    k8s::client::create_rbac_objects(client, &rbac_docs(), KUBETRON_NS).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Every document of deploy/rbac-*.yaml.
pub fn rbac_docs() -> Vec<Value> {
    let mut files: Vec<String> = std::fs::read_dir(deploy_dir())
        .expect("deploy dir")
        .map(|e| e.expect("dir entry").file_name().into_string().expect("utf-8 name"))
        .filter(|n| n.starts_with("rbac-") && n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "rbac manifests: {files:?}");
    files.iter().flat_map(|f| deploy_docs(f)).collect()
}

/// deploy/webhook-configuration.yaml renamed `name`, pointed at `url` with `ca_pem` instead of the
/// Service, and only for namespaces labelled `label=id` (tests share an apiserver).
pub fn webhook_configuration(name: &str, url: &str, ca_pem: impl AsRef<[u8]>, label: &str, id: &str) -> MutatingWebhookConfiguration {
    let docs = deploy_docs("webhook-configuration.yaml");
    let mut doc =
        docs.into_iter().find(|d| d["kind"] == "MutatingWebhookConfiguration").expect("a MutatingWebhookConfiguration in deploy/");
    assert_eq!(doc["metadata"]["name"], WEBHOOK_CONFIGURATION_NAME);
    doc["metadata"]["name"] = json!(name);
    let hooks = doc["webhooks"].as_array_mut().expect("webhooks");
    assert_eq!(hooks.len(), 2, "pods and MultiNetworkPolicies");
    for hook in hooks {
        assert_eq!(hook["clientConfig"]["service"]["path"], "/mutate", "the server's path");
        assert_eq!(hook["failurePolicy"], "Ignore");
        hook["clientConfig"] = json!({"url": url, "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem.as_ref())});
        hook["namespaceSelector"] = json!({"matchLabels": {label: id}});
    }
    serde_json::from_value(doc).expect("typed MutatingWebhookConfiguration")
}
