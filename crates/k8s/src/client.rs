//! Small API-client helpers shared by the sandbox, the binaries' tests and the e2e suites: a client
//! from a kubeconfig file, an idempotent create, polling until the API shows something, and YAML
//! manifests (`deploy/`) read as JSON values.
//!
//! Owns no state; must not decide anything about networks (that is the controller's job).

use std::path::Path;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kube::Client;
use serde::Deserialize;
use serde_json::Value;

/// What the helpers here can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {path}: {msg}")]
    Kubeconfig { path: String, msg: String },
    #[error("creating {name}: {source}")]
    Create { name: String, source: kube::Error },
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
    #[error("YAML: {0}")]
    Yaml(String),
}

/// A client for the cluster a kubeconfig file names (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client, ClientError> {
    let err = |msg: String| ClientError::Kubeconfig { path: path.display().to_string(), msg };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.map_err(|e| err(e.to_string()))?;
    Ok(Client::try_from(cfg)?)
}

/// Creates `obj`; an AlreadyExists (409) answer is fine. Returns whether this call created it.
pub async fn create_or_exists<K>(api: &Api<K>, obj: &K) -> Result<bool, ClientError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(source) => Err(ClientError::Create { name: obj.meta().name.clone().unwrap_or_default(), source }),
    }
}

/// Calls `f` every `every` until it returns `Some`, or fails naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut f: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout { what: what.to_string(), timeout });
        }
        tokio::time::sleep(every).await;
    }
}

/// The non-empty documents of a multi-document YAML text, as JSON values.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, ClientError> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).map_err(|e| ClientError::Yaml(e.to_string())))
        .filter(|v| !matches!(v, Ok(Value::Null)))
        .collect()
}
