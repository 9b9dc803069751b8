//! Where the webhook looks NetworkAttachmentDefinitions up.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use kube::api::Api;
use thiserror::Error;

use crate::meta::MetaStr;
use crate::nad::NetworkAttachmentDefinition;

/// A failed lookup (not "not found", which is `Ok(None)`).
#[derive(Debug, Error)]
#[error("looking up NetworkAttachmentDefinition {namespace}/{name}: {message}")]
pub struct NadSourceError {
    /// Namespace asked for.
    pub namespace: String,
    /// Name asked for.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

/// A source of NetworkAttachmentDefinitions.
pub trait NadSource: Send + Sync + 'static {
    /// The NAD `namespace/name`, `Ok(None)` when it does not exist.
    fn get(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<NetworkAttachmentDefinition>, NadSourceError>> + Send;
}

/// Reads NADs from the API server.
impl NadSource for kube::Client {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<NetworkAttachmentDefinition>, NadSourceError> {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.clone(), namespace);
        api.get_opt(name).await.map_err(|e| NadSourceError {
            namespace: namespace.to_string(),
            name: name.to_string(),
            message: e.to_string(),
        })
    }
}

/// An in-memory set of NADs (tests, or a cache fed by a watch). Cloning shares the set.
#[derive(Debug, Clone, Default)]
pub struct MemoryNads {
    inner: Arc<RwLock<BTreeMap<(String, String), NetworkAttachmentDefinition>>>,
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
}

impl NadSource for MemoryNads {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<NetworkAttachmentDefinition>, NadSourceError> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(&(namespace.to_string(), name.to_string())).cloned())
    }
}

impl<T: NadSource> NadSource for Arc<T> {
    fn get(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<NetworkAttachmentDefinition>, NadSourceError>> + Send {
        (**self).get(namespace, name)
    }
}
