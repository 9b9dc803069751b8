//! Garbage collection: kubetron's logical switch ports whose pod no longer exists.
//!
//! Which ports are considered:
//! - `kubetron.io/owner=controller` ports: their pod UID (`kubetron.io/pod-uid`) must be in the
//!   live set, else they are removed at once. The controller makes them only for pods its own
//!   cache holds, so a port of a UID missing from a synced pod list belongs to a deleted pod.
//! - `kubetron.io/owner=cni` ports that carry a pod identity (`kubetron.io/pod-namespace`,
//!   `pod-name` and `pod-uid`, which the plugin records from the runtime's `K8S_POD_*` args):
//!   the plugin makes them on its own, possibly for a pod the controller's cache has not seen yet
//!   (a lagging watch), so they are removed only when they are found orphaned in two GC passes
//!   at least [`CNI_GRACE`] apart (the same row, by UUID, still tagged with the same UID). A
//!   port whose pod was deleted, or re-created under the same name with a new UID, is therefore
//!   removed one grace period after it was first seen orphaned; a port of a live pod (a
//!   standalone NAD under a cluster with the controller) is never removed.
//! - Persistent-IP ports (`owner=controller` with `kubetron.io/ipamclaim-uid`, named
//!   `claim:{ns}/{claim}`): they outlive their pods, so the pod rule does not apply; they are
//!   removed when their claim's UID is not in the complete set of IPAMClaim UIDs (from a synced
//!   claim list), and kept while that list is not known.
//! - Every other port (no `kubetron.io/owner`, an unknown owner, CNI ports without a pod
//!   identity: the runtime called the plugin without Kubernetes) is never touched here; CNI GC
//!   and DEL own those.
//!
//! The live set must be the complete set of pod UIDs from a synced pod list (the runner only
//! collects after its pod watcher's initial list completed), or live pods lose their ports.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ovn::names;
use ovsdb::datum::Uuid;

use super::nb::{Nb, NbView, LSP};
use super::reconcile::detach;

/// Ports removed per transaction (keeps each request and its monitor update small).
pub const GC_CHUNK: usize = 500;

/// How long a CNI-made port must have been seen orphaned before it is removed.
pub const CNI_GRACE: Duration = Duration::from_secs(60);

/// A port GC would remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub uuid: Uuid,
    pub name: String,
    /// The pod UID it is tagged with (empty when the tag is missing).
    pub pod_uid: String,
    /// Made by the CNI plugin (`owner=cni`), so subject to the grace period.
    pub cni: bool,
}

/// kubetron's ports whose pod UID is not in `live` (controller ports, and CNI ports with a pod
/// identity), regardless of the grace period.
pub fn orphans(view: &NbView, live: &HashSet<String>) -> Vec<Orphan> {
    orphans_with_claims(view, live, None)
}

/// [`orphans`], and persistent-IP ports whose IPAMClaim UID is not in `live_claims` (`None`: the
/// claim list is not known, every such port is kept).
pub fn orphans_with_claims(view: &NbView, live: &HashSet<String>, live_claims: Option<&HashSet<String>>) -> Vec<Orphan> {
    view.snapshot()
        .rows(LSP)
        .filter_map(|(u, r)| {
            let id = |k: &str| r.map_str("external_ids", k).filter(|v| !v.is_empty());
            let cni = match r.map_str("external_ids", names::OWNER) {
                Some(names::OWNER_CONTROLLER) if id(names::IPAMCLAIM_UID).is_some() => {
                    let uid = id(names::IPAMCLAIM_UID).unwrap_or("");
                    let gone = live_claims.is_some_and(|c| !c.contains(uid));
                    return gone.then(|| Orphan { uuid: *u, name: r.str("name").to_string(), pod_uid: String::new(), cni: false });
                }
                Some(names::OWNER_CONTROLLER) => false,
                Some(names::OWNER_CNI)
                    if id(model::names::POD_NAMESPACE).is_some()
                        && id(model::names::POD_NAME).is_some()
                        && id(names::POD_UID).is_some() =>
                {
                    true
                }
                _ => return None,
            };
            let uid = id(names::POD_UID).unwrap_or("");
            (!live.contains(uid)).then(|| Orphan { uuid: *u, name: r.str("name").to_string(), pod_uid: uid.to_string(), cni })
        })
        .collect()
}

/// The state of GC between passes: when each CNI-made orphan was first seen.
#[derive(Debug)]
pub struct Collector {
    grace: Duration,
    seen: Mutex<HashMap<(Uuid, String), Instant>>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector::new(CNI_GRACE)
    }
}

impl Collector {
    pub fn new(grace: Duration) -> Collector {
        Collector { grace, seen: Mutex::new(HashMap::new()) }
    }

    /// The orphans to remove now: controller ports at once, CNI ports seen orphaned (same row,
    /// same UID) in an earlier pass at least the grace period ago. Remembers the CNI orphans
    /// seen for the first time and forgets those that are no longer orphans.
    pub fn due(&self, found: Vec<Orphan>, now: Instant) -> Vec<Orphan> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let current: HashSet<(Uuid, String)> = found.iter().filter(|o| o.cni).map(|o| (o.uuid, o.pod_uid.clone())).collect();
        seen.retain(|k, _| current.contains(k));
        found
            .into_iter()
            .filter(|o| {
                if !o.cni {
                    return true;
                }
                let first = *seen.entry((o.uuid, o.pod_uid.clone())).or_insert(now);
                let due = now.duration_since(first) >= self.grace && first != now;
                if !due {
                    tracing::debug!(port = %o.name, pod_uid = %o.pod_uid, "CNI-made port of a pod not in the pod list; removed if still so after the grace period");
                }
                due
            })
            .collect()
    }

    fn forget(&self, removed: &[Orphan]) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for o in removed {
            seen.remove(&(o.uuid, o.pod_uid.clone()));
        }
    }
}

/// Removes the orphans of the current replica view that are due (see [`Collector::due`]);
/// returns what was removed. `live` must be the complete set of pod UIDs (from a synced pod
/// list), or live pods lose their ports.
pub async fn gc(nb: &Nb, collector: &Collector, live: &HashSet<String>) -> Result<Vec<Orphan>, ovsdb::Error> {
    gc_with_claims(nb, collector, live, None).await
}

/// [`gc`], also removing persistent-IP ports whose claim UID is not in `live_claims` (see
/// [`orphans_with_claims`]).
pub async fn gc_with_claims(
    nb: &Nb,
    collector: &Collector,
    live: &HashSet<String>,
    live_claims: Option<&HashSet<String>>,
) -> Result<Vec<Orphan>, ovsdb::Error> {
    let found = collector.due(orphans_with_claims(&nb.view(), live, live_claims), Instant::now());
    for chunk in found.chunks(GC_CHUNK) {
        let mut ops: Vec<_> = chunk.iter().map(|o| detach(o.uuid)).collect();
        ops.push(ovsdb::ops::Operation::comment(format!("kubetron: gc of {} ports", chunk.len())));
        nb.transact(ops).await?;
        collector.forget(chunk);
        for o in chunk {
            let owner = if o.cni { names::OWNER_CNI } else { names::OWNER_CONTROLLER };
            tracing::info!(port = %o.name, pod_uid = %o.pod_uid, owner, "removed logical switch port of a pod that no longer exists");
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan(n: u128, cni: bool) -> Orphan {
        Orphan { uuid: Uuid::from_u128(n), name: format!("p{n}"), pod_uid: format!("uid{n}"), cni }
    }

    #[test]
    fn cni_orphans_wait_for_a_second_pass_after_the_grace() {
        let c = Collector::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let due = c.due(vec![orphan(1, false), orphan(2, true)], t0);
        assert_eq!(due, vec![orphan(1, false)], "controller ports at once, CNI ports not on first sight");
        // A second pass within the grace: not yet.
        assert!(c.due(vec![orphan(2, true)], t0 + Duration::from_secs(30)).is_empty());
        // The port stopped being an orphan (its pod showed up): forgotten, the clock restarts.
        assert!(c.due(vec![], t0 + Duration::from_secs(40)).is_empty());
        assert!(c.due(vec![orphan(2, true)], t0 + Duration::from_secs(70)).is_empty());
        assert_eq!(c.due(vec![orphan(2, true)], t0 + Duration::from_secs(130)), vec![orphan(2, true)]);
        // Zero grace still needs two passes.
        let c = Collector::new(Duration::ZERO);
        assert!(c.due(vec![orphan(3, true)], t0).is_empty());
        assert_eq!(c.due(vec![orphan(3, true)], t0 + Duration::from_millis(1)).len(), 1);
    }
}
