//! The NetworkAttachmentDefinitions of the cluster, as chained mode needs them: which of the
//! networks a pod asks for are kubetron's (the others belong to other plugins).

use k8s::nad::NetworkAttachmentDefinition;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The cluster's NADs.
#[derive(Clone)]
pub struct Nads {
    store: Store<NetworkAttachmentDefinition>,
    synced: watch::Receiver<bool>,
}

impl Nads {
    /// Starts following every NAD until `shutdown`.
    pub fn start(client: kube::Client, shutdown: CancellationToken) -> Nads {
        let (store, writer) = reflector::store();
        let stream = watcher(Api::<NetworkAttachmentDefinition>::all(client), watcher::Config::default())
            .default_backoff()
            .modify(|n| n.metadata.managed_fields = None)
            .reflect(writer);
        let synced = super::pods::follow(stream, "NetworkAttachmentDefinitions".into(), shutdown, |_| {});
        Nads { store, synced }
    }

    /// Waits until the first list is loaded (false: the watch stopped).
    pub async fn wait_synced(&self) -> bool {
        let mut rx = self.synced.clone();
        let synced = rx.wait_for(|s| *s).await.is_ok();
        synced
    }

    /// The NAD `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<NetworkAttachmentDefinition>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }
}
