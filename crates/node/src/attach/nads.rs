//! The NetworkAttachmentDefinitions of the cluster, as chained mode needs them: which of the
//! networks a pod asks for are kubetron's (the others belong to other plugins).

use futures::StreamExt;
use k8s::nad::NetworkAttachmentDefinition;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

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
        let (synced_tx, synced) = watch::channel(false);
        let stream = watcher(Api::<NetworkAttachmentDefinition>::all(client), watcher::Config::default())
            .default_backoff()
            .modify(|n| n.metadata.managed_fields = None)
            .reflect(writer);
        tokio::spawn(async move {
            tokio::pin!(stream);
            let mut failing = false;
            loop {
                let ev = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    ev = stream.next() => ev,
                };
                match ev {
                    None => return,
                    Some(Ok(watcher::Event::InitDone)) if !*synced_tx.borrow() => {
                        info!("NAD cache synced");
                        synced_tx.send_replace(true);
                    }
                    Some(Ok(_)) => failing = false,
                    Some(Err(e)) => {
                        if !failing {
                            warn!("watching NetworkAttachmentDefinitions: {e} (retrying)");
                        }
                        failing = true;
                    }
                }
            }
        });
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
