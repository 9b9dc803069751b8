//! The MultiNetworkPolicy custom resource (`multi-networkpolicies.k8s.cni.cncf.io/v1beta1`,
//! k8snetworkplumbingwg/multi-networkpolicy): the NetworkPolicy shape ([`policy::PolicySpec`], with
//! `endPort`), applied to the networks its `k8s.v1.cni.cncf.io/policy-for` annotation names. No
//! status subresource (upstream has none): the controller reports through Events.
//!
//! [`crd()`] is the CRD `deploy/crd-multinetworkpolicies.yaml` holds: upstream's group, version and
//! names, and a structural schema of the NetworkPolicy shape with `endPort`, so the apiserver
//! refuses a policy of the wrong shape (a watch of policies must be able to read every one) and
//! prunes no field kubetron uses; what a schema cannot say is checked by the webhook and the
//! controller ([`policy::validate`]). An upstream CRD already installed works, except that its
//! v1beta1 schema prunes `endPort` (a range then allows only its first port): install this one
//! instead, or use single ports.

use crate::meta::MetaStr;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The CRD's name.
pub const CRD_NAME: &str = "multi-networkpolicies.k8s.cni.cncf.io";

/// `spec` of a MultiNetworkPolicy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1beta1",
    kind = "MultiNetworkPolicy",
    plural = "multi-networkpolicies",
    singular = "multi-networkpolicy",
    shortname = "multi-policy",
    namespaced,
    schema = "disabled"
)]
pub struct MultiNetworkPolicySpec {
    #[serde(flatten)]
    pub policy: policy::PolicySpec,
}

impl MultiNetworkPolicy {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace_str(), self.name_str())
    }
    /// The networks (`(namespace, NAD name)`) its `policy-for` annotation names; empty without one.
    pub fn policy_for(&self) -> Vec<(String, String)> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(policy::POLICY_FOR))
            .map(|v| policy::parse_policy_for(v, self.namespace_str()))
            .unwrap_or_default()
    }
}

/// A new policy (tests, sandbox).
pub fn new_policy(namespace: &str, name: &str, policy_for: &str, spec: policy::PolicySpec) -> MultiNetworkPolicy {
    let mut p = MultiNetworkPolicy::new(name, MultiNetworkPolicySpec { policy: spec });
    p.metadata.namespace = Some(namespace.to_string());
    p.metadata.annotations = Some([(policy::POLICY_FOR.to_string(), policy_for.to_string())].into_iter().collect());
    p
}

/// The CRD kubetron ships (`deploy/crd-multinetworkpolicies.yaml`).
pub fn crd() -> CustomResourceDefinition {
    let selector = json!({
        "type": "object",
        "properties": {
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
            "matchExpressions": {"type": "array", "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"type": "string"},
                    "values": {"type": "array", "items": {"type": "string"}}
                }
            }}
        }
    });
    let ports = json!({"type": "array", "items": {
        "type": "object",
        "properties": {
            "protocol": {"type": "string"},
            "port": {"x-kubernetes-int-or-string": true},
            "endPort": {"type": "integer", "format": "int32"}
        }
    }});
    let peers = json!({"type": "array", "items": {
        "type": "object",
        "properties": {
            "podSelector": selector,
            "namespaceSelector": selector,
            "ipBlock": {
                "type": "object",
                "required": ["cidr"],
                "properties": {"cidr": {"type": "string"}, "except": {"type": "array", "items": {"type": "string"}}}
            }
        }
    }});
    let mut crd = crate::client::crd_with_schema::<MultiNetworkPolicy>(
        "MultiNetworkPolicy: a NetworkPolicy for the networks named by the k8s.v1.cni.cncf.io/policy-for annotation.",
        json!({
            "description": "The NetworkPolicy spec (podSelector, policyTypes, ingress, egress; ports may carry endPort).",
            "type": "object",
            "properties": {
                "podSelector": selector,
                "policyTypes": {"type": "array", "items": {"type": "string"}},
                "ingress": {"type": "array", "items": {"type": "object", "properties": {"ports": ports, "from": peers}}},
                "egress": {"type": "array", "items": {"type": "object", "properties": {"ports": ports, "to": peers}}}
            }
        }),
        None,
    );
    // A policy without a spec could not be read by a typed watch (one would stall them all).
    for v in &mut crd.spec.versions {
        if let Some(schema) = v.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            schema.required = Some(vec!["spec".to_string()]);
        }
    }
    crd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_follows_the_upstream_shape() {
        let v = json!({"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
            "metadata": {"name": "web", "namespace": "team", "uid": "u1", "annotations": {"k8s.v1.cni.cncf.io/policy-for": "red, other/blue"}},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 8000, "endPort": 8010}]}]}});
        let p: MultiNetworkPolicy = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(p.key(), "team/web");
        assert_eq!(p.policy_for(), [("team".to_string(), "red".to_string()), ("other".to_string(), "blue".to_string())]);
        assert_eq!(p.spec.policy.ingress.as_ref().unwrap()[0].ports.as_ref().unwrap()[0].end_port, Some(8010));
        assert_eq!(serde_json::to_value(&p).unwrap()["spec"], v["spec"]);
    }

    #[test]
    fn schema_is_typed_all_the_way_down() {
        let v = serde_json::to_value(crd()).unwrap();
        let spec = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert!(spec.get("x-kubernetes-preserve-unknown-fields").is_none(), "{spec}");
        assert_eq!(v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["required"], json!(["spec"]));
        let port = &spec["properties"]["ingress"]["items"]["properties"]["ports"]["items"]["properties"];
        assert_eq!(port["port"]["x-kubernetes-int-or-string"], true, "{port}");
        assert_eq!(port["endPort"]["type"], "integer");
        let peer = &spec["properties"]["egress"]["items"]["properties"]["to"]["items"]["properties"];
        assert_eq!(peer["ipBlock"]["required"], json!(["cidr"]));
        assert_eq!(peer["namespaceSelector"]["properties"]["matchLabels"]["additionalProperties"]["type"], "string");
    }

    #[test]
    fn deploy_file_is_crd() {
        let c = crd();
        assert_eq!(c.metadata.name.as_deref(), Some(CRD_NAME));
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crd-multinetworkpolicies.yaml")).unwrap();
        let from_file: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(&c).unwrap(),
            "deploy/crd-multinetworkpolicies.yaml is crd()"
        );
    }
}
