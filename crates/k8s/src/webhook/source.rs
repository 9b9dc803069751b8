//! Where the webhook looks up NetworkAttachmentDefinitions and the security profiles the
//! controller publishes ([`crate::profiles`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use thiserror::Error;

use crate::meta::MetaStr;
use crate::nad::NetworkAttachmentDefinition;
use crate::profiles::{self, Offers};

/// A failed lookup (not "not found", which is `Ok(None)`).
#[derive(Debug, Error)]
#[error("looking up {kind} {namespace}/{name}: {message}")]
pub struct NadSourceError {
    /// What was looked up (`NetworkAttachmentDefinition`, `ConfigMap`).
    pub kind: &'static str,
    /// Namespace asked for.
    pub namespace: String,
    /// Name asked for.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

/// A source of NetworkAttachmentDefinitions and offered security profiles.
pub trait NadSource: Send + Sync + 'static {
    /// The NAD `namespace/name`, `Ok(None)` when it does not exist.
    fn get(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<NetworkAttachmentDefinition>, NadSourceError>> + Send;
    /// The offered security profiles, `Ok(None)` when the controller has published none.
    fn offered_profiles(&self) -> impl Future<Output = Result<Option<Offers>, NadSourceError>> + Send;
}

/// Reads from the API server: NADs, and ConfigMap [`profiles::CONFIGMAP`] in the controller's
/// namespace.
#[derive(Clone)]
pub struct KubeSource {
    client: kube::Client,
    namespace: String,
}

impl KubeSource {
    /// Lookups through `client`; profiles are read from `namespace` (kubetron's, where the
    /// controller runs).
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> KubeSource {
        KubeSource { client, namespace: namespace.into() }
    }
}

impl NadSource for KubeSource {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<NetworkAttachmentDefinition>, NadSourceError> {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name).await.map_err(|e| NadSourceError {
            kind: "NetworkAttachmentDefinition",
            namespace: namespace.to_string(),
            name: name.to_string(),
            message: e.to_string(),
        })
    }
    async fn offered_profiles(&self) -> Result<Option<Offers>, NadSourceError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        match api.get_opt(profiles::CONFIGMAP).await {
            Ok(cm) => Ok(cm.as_ref().map(profiles::from_configmap)),
            Err(e) => Err(NadSourceError {
                kind: "ConfigMap",
                namespace: self.namespace.clone(),
                name: profiles::CONFIGMAP.to_string(),
                message: e.to_string(),
            }),
        }
    }
}

/// An in-memory set of NADs and profiles (tests, or a cache fed by a watch). Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct MemoryNads {
    inner: Arc<RwLock<BTreeMap<(String, String), NetworkAttachmentDefinition>>>,
    profiles: Arc<RwLock<Option<Offers>>>,
}

impl MemoryNads {
    /// Empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace a NAD (keyed by its namespace and name).
    pub fn insert(&self, nad: NetworkAttachmentDefinition) {
        let key = (nad.namespace_str().to_string(), nad.name_str().to_string());
        self.inner.write().unwrap_or_else(|p| p.into_inner()).insert(key, nad);
    }

    /// Remove a NAD.
    pub fn remove(&self, namespace: &str, name: &str) -> Option<NetworkAttachmentDefinition> {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).remove(&(namespace.to_string(), name.to_string()))
    }

    /// Set the published profiles (`None`: nothing published).
    pub fn set_profiles(&self, offers: Option<Offers>) {
        *self.profiles.write().unwrap_or_else(|p| p.into_inner()) = offers;
    }
}

impl NadSource for MemoryNads {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<NetworkAttachmentDefinition>, NadSourceError> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(&(namespace.to_string(), name.to_string())).cloned())
    }
    async fn offered_profiles(&self) -> Result<Option<Offers>, NadSourceError> {
        Ok(self.profiles.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl<T: NadSource> NadSource for Arc<T> {
    fn get(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<NetworkAttachmentDefinition>, NadSourceError>> + Send {
        (**self).get(namespace, name)
    }
    fn offered_profiles(&self) -> impl Future<Output = Result<Option<Offers>, NadSourceError>> + Send {
        (**self).offered_profiles()
    }
}
