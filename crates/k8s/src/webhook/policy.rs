//! Admission of MultiNetworkPolicies (CREATE and UPDATE): what the CRD's schema cannot say is
//! checked here so that `kubectl apply` shows it, with the same rules the controller applies
//! ([`policy::validate`]: every problem with its path, 400). The networks of `policy-for` are not
//! required to exist yet (a policy may be applied before its network); a missing one, a network of
//! another plugin, or no `policy-for` at all is admitted with a warning: the controller applies a
//! policy on none of its networks until every one exists, and never on another plugin's. An
//! UPDATE that leaves `spec` as it was, and a policy being deleted, pass unjudged.

use serde_json::Value;

use super::review::{AdmissionRequest, AdmissionResponse};
use super::source::NadSource;
use crate::mnp::MultiNetworkPolicy;

/// Decide on one MultiNetworkPolicy request.
pub(super) async fn admit_policy<S: NadSource>(req: &AdmissionRequest, nads: &S) -> AdmissionResponse {
    let uid = req.uid.as_str();
    let Some(object) = req.object.as_ref() else {
        return AdmissionResponse::deny(uid, 400, "MultiNetworkPolicy review carries no object");
    };
    // A policy being deleted, or an UPDATE that leaves the spec alone (labels, finalizers), is
    // not judged again: a stored policy must always be deletable and labelable.
    let same_spec = req.old_object.as_ref().is_some_and(|old| old.get("spec") == object.get("spec"));
    if same_spec || object.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return AdmissionResponse::allow(uid);
    }
    let mut object = object.clone();
    if object.pointer("/metadata/namespace").and_then(Value::as_str).is_none() {
        if let (Some(ns), Some(meta)) = (req.namespace.as_deref(), object.get_mut("metadata").and_then(Value::as_object_mut)) {
            meta.insert("namespace".into(), Value::from(ns));
        }
    }
    let p: MultiNetworkPolicy = match serde_json::from_value(object) {
        Ok(p) => p,
        Err(e) => return AdmissionResponse::deny(uid, 400, format!("not a MultiNetworkPolicy kubetron can read: {e}")),
    };
    let problems = policy::validate(&p.spec.policy);
    if !problems.is_empty() {
        let text = policy::describe(&problems);
        tracing::info!(policy = %p.key(), problems = %text, "refusing policy");
        return AdmissionResponse::deny(uid, 400, text);
    }
    let mut resp = AdmissionResponse::allow(uid);
    let networks = p.policy_for();
    if networks.is_empty() {
        resp.warnings.push(format!("no {} annotation: the policy applies to no network", policy::POLICY_FOR));
    }
    for (ns, name) in networks {
        match nads.get(&ns, &name).await {
            Ok(None) => resp.warnings.push(format!(
                "network {ns}/{name} does not exist (yet): the policy is applied on none of its networks until every one exists"
            )),
            Ok(Some(nad)) if !matches!(nad.kubetron_config(), Ok(Some(_))) => resp
                .warnings
                .push(format!("network {ns}/{name} is not a usable kubetron network: kubetron does not enforce the policy there")),
            Ok(Some(_)) => {}
            Err(e) => resp.warnings.push(format!("could not check network {ns}/{name}: {e}")),
        }
    }
    resp
}
