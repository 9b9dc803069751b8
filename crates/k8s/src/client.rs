//! Small API-client helpers shared by the sandbox, the binaries' tests and the e2e suites: a client
//! from a kubeconfig file, an idempotent create, polling until the API shows something, and YAML
//! manifests (`deploy/`) read as JSON values, installed (the NAD CRD, RBAC objects).
//!
//! Owns no state; must not decide anything about networks (that is the controller's job).

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::Client;
use serde::Deserialize;
use serde_json::Value;

use crate::nad::NetworkAttachmentDefinition;

/// How often the waits here poll.
const EVERY: Duration = Duration::from_millis(100);

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
    let cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.map_err(|e| err(e.to_string()))?;
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

/// Installs the NAD CRD from its manifest (idempotent), waits until it is Established and the NAD
/// API answers, and returns the CRD as the API server has it.
pub async fn install_nad_crd(client: &Client, crd_yaml: &str, timeout: Duration) -> Result<CustomResourceDefinition, ClientError> {
    install_crd::<NetworkAttachmentDefinition>(client, crd_yaml, "NAD", timeout).await
}

/// Creates the IPAMClaim CRD from `crd_yaml` (`deploy/crd-ipamclaims.yaml`; an existing one is
/// left as it is) and waits until it is Established and the IPAMClaim API answers.
pub async fn install_ipamclaim_crd(client: &Client, crd_yaml: &str, timeout: Duration) -> Result<CustomResourceDefinition, ClientError> {
    install_crd::<crate::ipamclaim::IPAMClaim>(client, crd_yaml, "IPAMClaim", timeout).await
}

/// The CRD of `K` (kube's derive) with an OpenAPI v3 schema on every version: an object of
/// `apiVersion`, `kind`, `metadata`, the given `spec` and, when given, `status` (which also turns
/// on the status subresource). `deploy/crd*.yaml` hold what these give (tests compare).
pub fn crd_with_schema<K: kube::CustomResourceExt>(description: &str, spec: Value, status: Option<Value>) -> CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceSubresourceStatus, CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
    };
    let mut crd = K::crd();
    let mut properties = serde_json::json!({
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec,
    });
    if let Some(st) = &status {
        properties["status"] = st.clone();
    }
    let schema: JSONSchemaProps =
        serde_json::from_value(serde_json::json!({"description": description, "type": "object", "properties": properties}))
            .unwrap_or_default();
    for v in &mut crd.spec.versions {
        v.schema = Some(CustomResourceValidation { open_api_v3_schema: Some(schema.clone()) });
        if status.is_some() {
            v.subresources =
                Some(CustomResourceSubresources { status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))), scale: None });
        }
    }
    crd
}

/// Creates the MultiNetworkPolicy CRD from `crd_yaml` (`deploy/crd-multinetworkpolicies.yaml`; an
/// existing one is left as it is) and waits until it is Established and served.
pub async fn install_mnp_crd(client: &Client, crd_yaml: &str, timeout: Duration) -> Result<CustomResourceDefinition, ClientError> {
    install_crd::<crate::mnp::MultiNetworkPolicy>(client, crd_yaml, "MultiNetworkPolicy", timeout).await
}

/// Creates the CRD of `K` from `crd_yaml` (its first document; an existing one is left as it is)
/// and waits until it is Established and `K`'s API answers a list (Established can come a moment
/// before the REST endpoint is served). `what` names the kind in timeout errors.
async fn install_crd<K>(client: &Client, crd_yaml: &str, what: &str, timeout: Duration) -> Result<CustomResourceDefinition, ClientError>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let doc = yaml_documents(crd_yaml)?.into_iter().next().ok_or_else(|| ClientError::Yaml("the CRD manifest holds no document".into()))?;
    let crd: CustomResourceDefinition = serde_json::from_value(doc).map_err(|e| ClientError::Yaml(format!("not a CRD: {e}")))?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    create_or_exists(&api, &crd).await?;
    let established = wait_for(&format!("the {what} CRD to be Established"), timeout, EVERY, || async {
        let c = api.get(&name).await.ok()?;
        let ok = c.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == "Established" && c.status == "True");
        ok.then_some(c)
    })
    .await?;
    let objects: Api<K> = Api::all(client.clone());
    wait_for(&format!("the {what} API to be served"), timeout, EVERY, || async { objects.list(&Default::default()).await.ok() }).await?;
    Ok(established)
}

/// Creates each RBAC object among `docs` (ServiceAccount, ClusterRole, ClusterRoleBinding, Role,
/// RoleBinding; existing ones are left as they are); namespaced objects without a namespace go to
/// `default_ns`.
pub async fn create_rbac_objects(client: &Client, docs: &[Value], default_ns: &str) -> Result<(), ClientError> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    async fn create<K>(api: Api<K>, doc: &Value) -> Result<(), ClientError>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
    {
        let obj: K = serde_json::from_value(doc.clone()).map_err(|e| ClientError::Yaml(format!("{}: {e}", doc["kind"])))?;
        create_or_exists(&api, &obj).await.map(drop)
    }
    for doc in docs {
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or(default_ns);
        let c = client.clone();
        match doc["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => create(Api::<ServiceAccount>::namespaced(c, ns), doc).await?,
            "ClusterRole" => create(Api::<ClusterRole>::all(c), doc).await?,
            "ClusterRoleBinding" => create(Api::<ClusterRoleBinding>::all(c), doc).await?,
            "Role" => create(Api::<Role>::namespaced(c, ns), doc).await?,
            "RoleBinding" => create(Api::<RoleBinding>::namespaced(c, ns), doc).await?,
            other => return Err(ClientError::Yaml(format!("unexpected kind {other:?} among RBAC objects"))),
        }
    }
    Ok(())
}
