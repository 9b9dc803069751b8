//! Per-pod status annotations: the pure part (types, parsing, merging) is [`model::status`];
//! this module writes them.
//!
//! kubetron writes `k8s.v1.cni.cncf.io/network-status` and `kubetron.io/interfaces` through the
//! `pods/status` subresource with the pod's UID and resourceVersion as preconditions, re-reading
//! and re-merging ([`model::status::merge_network_status`]) on conflict ([`write_pod_annotations`]).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use thiserror::Error;

/// A write of pod annotations through `pods/status` that did not happen.
#[derive(Debug, Error)]
pub enum StatusWriteError {
    /// The API server refused or failed.
    #[error("writing the annotations of pod {pod} through pods/status: {source}")]
    Api {
        /// `namespace/name`.
        pod: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// Every attempt met a concurrent update.
    #[error("writing the annotations of pod {pod} through pods/status: still conflicting after {attempts} attempts")]
    Conflicts {
        /// `namespace/name`.
        pod: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// What [`write_pod_annotations`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; `attempts` > 1 when conflicts were retried.
    Written {
        /// Attempts made (1 without conflict).
        attempts: u32,
    },
    /// Nothing to change (after `attempts` reads).
    Unchanged {
        /// Attempts made.
        attempts: u32,
    },
    /// The pod is gone, or the name now belongs to another pod (another UID).
    Gone,
}

/// How many times [`write_pod_annotations`] tries before giving up on conflicts.
pub const MAX_WRITE_ATTEMPTS: u32 = 8;

/// Changes the annotations of the pod `namespace/name` with UID `uid` through the `pods/status`
/// subresource: `change` gets the pod's current annotations and returns the ones to set
/// (`Some`) or remove (`None`); an empty map means nothing to do.
///
/// The first attempt starts from `cached` (the caller's copy, e.g. from a watch) when given,
/// else from a fresh read. Each write is a merge patch carrying the UID and resourceVersion it
/// was computed from, so the API server applies it only to that very pod at that very version;
/// on a conflict (HTTP 409) the pod is read again and `change` is asked again, up to
/// [`MAX_WRITE_ATTEMPTS`] times.
pub async fn write_pod_annotations<F>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    cached: Option<&Pod>,
    mut change: F,
) -> Result<WriteOutcome, StatusWriteError>
where
    F: FnMut(&BTreeMap<String, String>) -> BTreeMap<String, Option<String>>,
{
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod_name = format!("{namespace}/{name}");
    let api_err = |source| StatusWriteError::Api { pod: pod_name.clone(), source };
    let mut base: Option<Pod> = cached.cloned();
    for attempt in 1..=MAX_WRITE_ATTEMPTS {
        let pod = match base.take() {
            Some(p) => p,
            None => match api.get_opt(name).await.map_err(api_err)? {
                Some(p) => p,
                None => return Ok(WriteOutcome::Gone),
            },
        };
        if pod.metadata.uid.as_deref() != Some(uid) {
            return Ok(WriteOutcome::Gone);
        }
        let current = pod.metadata.annotations.clone().unwrap_or_default();
        let patch = change(&current);
        let patch: BTreeMap<String, Option<String>> = patch.into_iter().filter(|(k, v)| current.get(k) != v.as_ref()).collect();
        if patch.is_empty() {
            return Ok(WriteOutcome::Unchanged { attempts: attempt });
        }
        let body = serde_json::json!({"metadata": {
            "uid": uid,
            "resourceVersion": pod.metadata.resource_version,
            "annotations": patch,
        }});
        match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => return Ok(WriteOutcome::Written { attempts: attempt }),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::debug!(pod = %pod_name, attempt, "pods/status write conflicted; re-reading");
                // Another writer got in between: re-read and merge again (a tiny pause spreads
                // out writers that keep colliding).
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(WriteOutcome::Gone),
            Err(e) => return Err(api_err(e)),
        }
    }
    Err(StatusWriteError::Conflicts { pod: pod_name, attempts: MAX_WRITE_ATTEMPTS })
}
