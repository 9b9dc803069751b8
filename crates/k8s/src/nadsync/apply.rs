//! Makes the API's synced NADs equal to the desired ones.

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Client;

use super::SYNCED_LABEL;
use crate::nad::NetworkAttachmentDefinition;

/// What one sync changed, as `namespace/name` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    /// Desired NADs not written because a NAD of that name exists without the sync label.
    pub conflicts: Vec<String>,
}

impl SyncReport {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty() && self.conflicts.is_empty()
    }
}

fn key(n: &NetworkAttachmentDefinition) -> (String, String) {
    (n.metadata.namespace.clone().unwrap_or_default(), n.metadata.name.clone().unwrap_or_default())
}

fn same(a: &NetworkAttachmentDefinition, b: &NetworkAttachmentDefinition) -> bool {
    a.spec == b.spec && a.metadata.annotations == b.metadata.annotations && a.metadata.labels == b.metadata.labels
}

/// Creates the desired NADs that are missing, updates synced NADs that differ, deletes synced NADs
/// no longer desired (whatever source synced them: one backend per cluster, and a NAD synced from
/// the other one is stale). NADs without the sync label are never changed.
pub async fn apply(client: &Client, desired: &[NetworkAttachmentDefinition]) -> Result<SyncReport, kube::Error> {
    let all: Api<NetworkAttachmentDefinition> = Api::all(client.clone());
    let selector = SYNCED_LABEL.to_string();
    let mut existing: BTreeMap<(String, String), NetworkAttachmentDefinition> =
        all.list(&ListParams::default().labels(&selector)).await?.items.into_iter().map(|n| (key(&n), n)).collect();
    let mut report = SyncReport::default();
    for want in desired {
        let k = key(want);
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), &k.0);
        let id = format!("{}/{}", k.0, k.1);
        match existing.remove(&k) {
            Some(have) if same(&have, want) => {}
            Some(have) => {
                let mut next = want.clone();
                next.metadata.resource_version = have.metadata.resource_version.clone();
                api.replace(&k.1, &PostParams::default(), &next).await?;
                report.updated.push(id);
            }
            None => match api.create(&PostParams::default(), want).await {
                Ok(_) => report.created.push(id),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    tracing::warn!(nad = %id, "a NAD of this name exists and was not made by the sync; leaving it alone");
                    report.conflicts.push(id);
                }
                // The namespace does not exist (yet): nothing to do until it does.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    tracing::debug!(nad = %id, "namespace not found; skipped");
                }
                Err(e) => return Err(e),
            },
        }
    }
    for ((ns, name), _) in existing {
        match Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), &ns).delete(&name, &DeleteParams::default()).await {
            Ok(_) => report.deleted.push(format!("{ns}/{name}")),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
