//! Security profiles offered to namespaces, published for the admission webhook.
//!
//! A security profile is an OVN Port_Group an administrator made (with its ACLs) and marked
//! `external_ids:kubetron.io/namespaces="ns1,ns2"` (or `"*"`), as switches are marked for the NAD
//! sync. A pod asks for one per network element (`kubetron.io/security-profile`,
//! [`model::request::SECURITY_PROFILE_KEY`]); the controller puts the pod's port in the group.
//!
//! The webhook never opens the Northbound database, so the controller publishes which groups are
//! offered to which namespaces as the ConfigMap [`CONFIGMAP`] in its own namespace (one key per
//! group, the value the group's `kubetron.io/namespaces`), and the webhook reads it ([`check`])
//! to refuse a profile that is not offered at create time, where the user sees it.
//!
//! - [`offered`]: the Northbound view -> the offers (pure).
//! - [`publish`] / [`run`]: the ConfigMap made to match (server-side apply), on every change
//!   while this replica leads.
//!
//! Reads OVN, never writes it; writes only the ConfigMap [`CONFIGMAP`].

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use tokio::sync::watch;

use crate::controller::{nb::PG, Nb, NbView};
use crate::mirror::Mirror;
use crate::nadsync::Targets;
use ovn::names;

/// Name of the ConfigMap (in the controller's namespace) listing the offered profiles.
pub const CONFIGMAP: &str = "kubetron-security-profiles";
/// Field manager of the controller's apply.
const FIELD_MANAGER: &str = "kubetron-controller";

/// Offered profiles: Port_Group name -> the namespaces it is offered to (`"ns1,ns2"` or `"*"`).
pub type Offers = BTreeMap<String, String>;

/// The Port_Groups of `view` marked `external_ids:kubetron.io/namespaces`, and the names of
/// those left out: a name that cannot be a ConfigMap key, or one of kubetron's own (`kt_...`)
/// (one such name must not stop every other offer from being published). Pure.
pub fn offered(view: &NbView) -> (Offers, Vec<String>) {
    let mut offers = Offers::new();
    let mut left_out = Vec::new();
    for (_, row) in view.snapshot().rows(PG) {
        let Some(ns) = row.map_str("external_ids", names::EXPOSE_NAMESPACES) else { continue };
        let name = row.str("name");
        if publishable(name) {
            offers.insert(name.to_string(), ns.to_string());
        } else {
            left_out.push(name.to_string());
        }
    }
    (offers, left_out)
}

/// Whether Port_Group `name` can be offered: a ConfigMap key (`[-._a-zA-Z0-9]`, at most 253
/// characters, not `.`, `..` or starting with `..`) and not kubetron's (`kt_`, which a pod may
/// not ask for either).
pub fn publishable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && !name.starts_with("..")
        && !name.starts_with(model::names::OWN_GROUP_PREFIX)
}

/// Whether `profile` may be asked for in `namespace`, per `offers` (`None`: nothing published).
/// The error is the user's message.
pub fn check(offers: Option<&Offers>, profile: &str, namespace: &str) -> Result<(), String> {
    match offers.and_then(|o| o.get(profile)) {
        Some(targets) if Targets::parse(targets).includes(namespace) => Ok(()),
        Some(_) => Err(format!(
            "security profile {profile:?} is not offered to namespace {namespace} (its Port_Group's external_ids:kubetron.io/namespaces)"
        )),
        None => Err(format!(
            "security profile {profile:?} is not offered to any namespace (no Port_Group of that name marked external_ids:kubetron.io/namespaces{})",
            if offers.is_none() { format!("; the controller has not published ConfigMap {CONFIGMAP}") } else { String::new() }
        )),
    }
}

/// The offers as the ConfigMap's data (read back by the webhook).
pub fn from_configmap(cm: &ConfigMap) -> Offers {
    cm.data.clone().unwrap_or_default()
}

/// Makes ConfigMap `namespace`/[`CONFIGMAP`] hold `offers` (server-side apply: the keys the
/// controller wrote for groups no longer offered go; a key added by hand is not the controller's
/// and stays: only administrators can write in kubetron's namespace, and the controller's own
/// check still refuses a group that is not offered).
pub async fn publish(client: &Client, namespace: &str, offers: &Offers) -> Result<(), kube::Error> {
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kubetron"},
            "annotations": {"kubetron.io/description": "OVN Port_Groups offered as security profiles: name -> namespaces (written by the controller)"},
        },
        "data": offers,
    });
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    api.patch(CONFIGMAP, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&cm)).await.map(drop)
}

/// Keeps the ConfigMap in `namespace` equal to the offers of `nb` while `leader` is true: after
/// every Northbound change that alters them (coalesced over `debounce`), on gaining leadership,
/// and every `resync` (a hand edit or deletion is undone). Failures are logged and retried.
pub async fn run(client: Client, nb: Nb, namespace: String, mut leader: watch::Receiver<bool>, debounce: Duration, resync: Duration) {
    let mut changes = nb.replica().subscribe();
    let mut mirror = Mirror::new(resync, debounce.max(Duration::from_secs(1)));
    loop {
        if *leader.borrow() {
            let (now, left_out) = offered(&nb.view());
            if mirror.due(&now) {
                if !left_out.is_empty() {
                    tracing::warn!(port_groups = ?left_out, "not offered as security profiles: kubetron's own groups, or names that cannot be ConfigMap keys");
                }
                match publish(&client, &namespace, &now).await {
                    Ok(()) => {
                        tracing::info!(profiles = now.len(), "published the offered security profiles");
                        mirror.written(now);
                    }
                    Err(e) => {
                        tracing::warn!("publishing ConfigMap {namespace}/{CONFIGMAP} failed (retrying): {e}");
                        mirror.failed();
                    }
                }
            }
        } else {
            mirror.forget();
        }
        let wait = mirror.wait();
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
                tokio::time::sleep(debounce).await;
            }
            r = leader.changed() => {
                if r.is_err() {
                    return;
                }
                mirror.resync_now();
            }
            _ = tokio::time::sleep(wait), if *leader.borrow() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishable_names() {
        for ok in ["web", "web_tier.v2", "a-b", "_x", ".x"] {
            assert!(publishable(ok), "{ok}");
        }
        for bad in ["", ".", "..", "..x", "kt_mnp_1", "a/b", "a b", &"x".repeat(254)] {
            assert!(!publishable(bad), "{bad}");
        }
    }

    #[test]
    fn check_offers() {
        let offers: Offers = [("web".to_string(), "a, b".to_string()), ("any".to_string(), "*".to_string())].into();
        assert_eq!(check(Some(&offers), "web", "a"), Ok(()));
        assert_eq!(check(Some(&offers), "any", "zzz"), Ok(()));
        let e = check(Some(&offers), "web", "c").unwrap_err();
        assert!(e.contains("not offered to namespace c"), "{e}");
        let e = check(Some(&offers), "db", "a").unwrap_err();
        assert!(e.contains("\"db\" is not offered to any namespace") && !e.contains("ConfigMap"), "{e}");
        let e = check(None, "db", "a").unwrap_err();
        assert!(e.contains(CONFIGMAP), "{e}");
    }
}
