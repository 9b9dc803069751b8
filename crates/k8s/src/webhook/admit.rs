//! The admission decision for one AdmissionRequest.
//!
//! Pods on CREATE with a `k8s.v1.cni.cncf.io/networks` annotation are checked:
//! - an annotation the NPWG spec makes invalid is refused (400, [`model::request`]: bad
//!   names, `default-route` on two elements, `"ips": []`, `ips` with `ipam-claim-reference`, ...);
//! - every requested NAD must exist (404 otherwise);
//! - for kubetron NADs: the config must parse, the pod's namespace must be allowed to use it
//!   ([`crate::nad::authorize`], 403), static IPs/MAC need the network's capabilities, and
//!   requests the network cannot honour (`portMappings`, `bandwidth`, `infiniband-guid` without
//!   a chained plugin declaring that capability; `ipam-claim-reference` on a network whose config
//!   does not set `"allowPersistentIPs": true`) are refused (403,
//!   [`crate::nad::check_capabilities`]) instead of being silently ignored;
//! - a security profile (`kubetron.io/security-profile`) must be offered to the pod's namespace,
//!   per what the controller published ([`crate::profiles::check`], 403).
//!
//! NADs of other CNI plugins are Multus's business: they are neither authorized nor given env
//! vars. If every problem is collected, the message lists them all, separated by `; `.
//!
//! MultiNetworkPolicies on CREATE and UPDATE are checked by [`super::policy`].
//!
//! Admitted pods with kubetron networks get a JSONPatch: `NETWORK_INTERFACE_<NET>` variables
//! (see [`model::env`]) on every container and init container, and for physical networks the
//! resource `kubetron.io/<network>: "1"` in the first container's requests and limits.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::Value;

use super::patch::{env_ops, resource_ops};
use super::review::{AdmissionRequest, AdmissionResponse};
use super::source::NadSource;
use crate::nad::{authorize, check_capabilities};
use model::env::env_vars;
use model::netconf::NadConfig;
use model::request::{self, NetworkSelection, NETWORKS_ANNOTATION};

/// Decide on one request.
pub async fn admit<S: NadSource>(req: &AdmissionRequest, nads: &S) -> AdmissionResponse {
    let uid = req.uid.as_str();
    if req.kind.group == "k8s.cni.cncf.io" && req.kind.kind == "MultiNetworkPolicy" && matches!(req.operation.as_str(), "CREATE" | "UPDATE")
    {
        return super::policy::admit_policy(req, nads).await;
    }
    if req.operation != "CREATE" || req.kind.kind != "Pod" || !req.kind.group.is_empty() {
        return AdmissionResponse::allow(uid);
    }
    let Some(pod) = req.object.as_ref() else {
        return AdmissionResponse::deny(uid, 400, "pod CREATE review carries no object");
    };
    let pod_name = pod.pointer("/metadata/name").or_else(|| pod.pointer("/metadata/generateName")).and_then(Value::as_str).unwrap_or("");
    let namespace = req
        .namespace
        .as_deref()
        .or_else(|| pod.pointer("/metadata/namespace").and_then(Value::as_str))
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    let annotation = match pod.pointer("/metadata/annotations").and_then(|a| a.get(NETWORKS_ANNOTATION)) {
        None | Some(Value::Null) => return AdmissionResponse::allow(uid),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return AdmissionResponse::deny(uid, 400, format!("annotation {NETWORKS_ANNOTATION} must be a string")),
    };
    let selections = match request::parse(annotation, namespace) {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(namespace, pod = pod_name, error = %e, "refusing pod: malformed network annotation");
            return AdmissionResponse::deny(uid, 400, e.to_string());
        }
    };

    let mut problems: Vec<(u16, String)> = Vec::new();
    let mut ours: Vec<NetworkSelection> = Vec::new();
    let mut resources = BTreeSet::new();
    for sel in &selections {
        let network = sel.network();
        let nad = match nads.get(&sel.namespace, &sel.name).await {
            Ok(Some(nad)) => nad,
            Ok(None) => {
                problems.push((
                    404,
                    format!(
                        "network {network} does not exist (no NetworkAttachmentDefinition {} in namespace {})",
                        sel.name, sel.namespace
                    ),
                ));
                continue;
            }
            Err(e) => {
                problems.push((500, format!("could not check network {network}: {e}")));
                continue;
            }
        };
        let config = match nad.kubetron_config() {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                problems.push((400, format!("network {network} has an unusable kubetron config: {e}")));
                continue;
            }
        };
        if let Err(r) = authorize(namespace, sel, &nad).and_then(|_| check_capabilities(sel, &config)) {
            problems.push((403, r.to_string()));
            continue;
        }
        if let Some(m) = static_address_problem(sel, &config) {
            problems.push((400, m));
            continue;
        }
        if let (Some(_), Some(resource)) = (nad.physical_network(), nad.resource_name()) {
            resources.insert(resource.to_string());
        }
        ours.push(sel.clone());
    }
    if let Some(p) = profile_problem(namespace, &ours, nads).await {
        problems.push(p);
    }

    if !problems.is_empty() {
        let code = problems.iter().map(|(c, _)| *c).max().unwrap_or(403);
        let message = problems.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; ");
        tracing::info!(namespace, pod = pod_name, %message, "refusing pod");
        return AdmissionResponse::deny(uid, code, message);
    }
    if ours.is_empty() {
        return AdmissionResponse::allow(uid);
    }

    let mut ops = env_ops(pod, &env_vars(&ours));
    ops.extend(resource_ops(pod, &resources));
    tracing::info!(namespace, pod = pod_name, networks = ours.len(), ops = ops.len(), "admitting pod");
    let mut resp = AdmissionResponse::allow(uid);
    if !ops.is_empty() {
        match serde_json::to_vec(&ops) {
            Ok(bytes) => {
                resp.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                resp.patch_type = Some("JSONPatch".to_string());
            }
            Err(e) => return AdmissionResponse::deny(uid, 500, format!("could not encode the pod patch: {e}")),
        }
    }
    resp
}

/// The first security profile among `ours` not offered to `namespace` (the published offers are
/// read only when a profile is asked for).
async fn profile_problem<S: NadSource>(namespace: &str, ours: &[NetworkSelection], nads: &S) -> Option<(u16, String)> {
    let asked: Vec<(&NetworkSelection, &str)> = ours.iter().filter_map(|s| s.security_profile.as_deref().map(|p| (s, p))).collect();
    if asked.is_empty() {
        return None;
    }
    let offers = match nads.offered_profiles().await {
        Ok(o) => o,
        Err(e) => return Some((500, format!("could not check security profiles: {e}"))),
    };
    asked.into_iter().find_map(|(sel, profile)| {
        crate::profiles::check(offers.as_ref(), profile, namespace)
            .err()
            .map(|m| (403, format!("network {}, interface {}: {m}", sel.network(), sel.interface)))
    })
}

/// Static IPs the network can never give, when the NAD's kubetron config names the switch's
/// `subnet` (and `exclude_ips`), with the rules of [`model::addressing::SwitchRules`]: outside the
/// subnet, its network or broadcast address, excluded. Addresses held by other ports are refused
/// by the controller and the CNI plugin, which read OVN; the webhook cannot know them.
fn static_address_problem(sel: &NetworkSelection, config: &NadConfig) -> Option<String> {
    let subnet = config.kubetron.subnet.as_deref().and_then(|s| s.parse::<ipnet::Ipv4Net>().ok());
    let exclude = config.kubetron.exclude_ips.as_deref();
    if subnet.is_none() && exclude.is_none() {
        return None;
    }
    let rules = model::addressing::SwitchRules::new(subnet, exclude);
    sel.ips.iter().find_map(|ip| {
        rules.check_ip(ip.addr).err().map(|e| format!("network {}, interface {}: requested {e}", sel.network(), sel.interface))
    })
}

#[cfg(test)]
#[path = "admit_tests.rs"]
mod tests;
