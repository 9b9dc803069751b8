//! Garbage collection: the controller's ports whose pod no longer exists.
//!
//! Only rows tagged `kubetron.io/owner=controller` are ever considered; ports made by an
//! administrator or by the CNI plugin (`owner=cni`) are never touched here.

use std::collections::HashSet;

use ovn::names;
use ovsdb::datum::Uuid;

use super::nb::{Nb, NbView, LSP};
use super::reconcile::detach;

/// Ports removed per transaction (keeps each request and its monitor update small).
pub const GC_CHUNK: usize = 500;

/// A port GC would remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub uuid: Uuid,
    pub name: String,
    /// The pod UID it is tagged with (empty when the tag is missing).
    pub pod_uid: String,
}

/// The controller's ports whose pod UID is not in `live`.
pub fn orphans(view: &NbView, live: &HashSet<String>) -> Vec<Orphan> {
    view.snapshot()
        .rows(LSP)
        .filter(|(_, r)| r.map_str("external_ids", names::OWNER) == Some(names::OWNER_CONTROLLER))
        .filter_map(|(u, r)| {
            let uid = r.map_str("external_ids", names::POD_UID).unwrap_or("");
            (!live.contains(uid)).then(|| Orphan { uuid: *u, name: r.str("name").to_string(), pod_uid: uid.to_string() })
        })
        .collect()
}

/// Removes the orphans of the current replica view; returns what was removed. `live` must be
/// the complete set of pod UIDs (from a synced pod list), or live pods lose their ports.
pub async fn gc(nb: &Nb, live: &HashSet<String>) -> Result<Vec<Orphan>, ovsdb::Error> {
    let found = orphans(&nb.view(), live);
    for chunk in found.chunks(GC_CHUNK) {
        let mut ops: Vec<_> = chunk.iter().map(|o| detach(o.uuid)).collect();
        ops.push(ovsdb::ops::Operation::comment(format!("kubetron: gc of {} ports", chunk.len())));
        nb.transact(ops).await?;
        for o in chunk {
            tracing::info!(port = %o.name, pod_uid = %o.pod_uid, "removed logical switch port of a pod that no longer exists");
        }
    }
    Ok(found)
}
