//! The IPAMClaim custom resource (`ipamclaims.k8s.cni.cncf.io/v1alpha1`, NPWG multi-network spec
//! v1.3 section 8.2): a pod interface's persistent addresses, named by the `ipam-claim-reference`
//! of a networks element. KubeVirt's ipam-extensions creates one per VM and network
//! (`<vm>.<network>`, owned by the VM) when the NAD config has `"allowPersistentIPs": true`.
//!
//! The controller keeps a claim's addresses in a logical switch port of the claim's own
//! ([`model::names::claim_port`]) that lives as long as the claim, and writes `status.ips` and
//! `status.ownerPod` through the status subresource.
//!
//! [`crd()`] is the CRD `deploy/crd-ipamclaims.yaml` holds: upstream's fields without its CEL
//! validations (`x-kubernetes-validations` needs Kubernetes 1.25; the project's apiserver is
//! 1.20), so the immutability of `spec` is not enforced by the apiserver. An upstream CRD already
//! installed (by ipam-extensions) works unchanged: same group, version and fields.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The CRD's name.
pub const CRD_NAME: &str = "ipamclaims.k8s.cni.cncf.io";

/// `spec` of an IPAMClaim.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1alpha1",
    kind = "IPAMClaim",
    plural = "ipamclaims",
    singular = "ipamclaim",
    namespaced,
    status = "IPAMClaimStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct IPAMClaimSpec {
    /// The CNI network name (the NAD config's `name`) the claim is for.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub network: String,
    /// The pod interface the claim is for; may be empty (ipam-extensions leaves it so). Empty is
    /// not written: the v1.20 apiserver here reads `""` in a custom resource as null and refuses it
    /// for a `type: string` field (observed), so our CRD does not require it and allows null.
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// Addresses asked for (CIDRs, at most two).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_requests: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// `status` of an IPAMClaim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IPAMClaimStatus {
    /// The addresses the claim holds (CIDR strings, `10.1.0.12/24`).
    #[serde(default)]
    pub ips: Vec<String>,
    /// The pod the addresses were last handed to (a name in upstream's `types.go`; an object in
    /// some later versions, kept as raw JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_pod: Option<Value>,
    /// Conditions (kept as written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Value>,
}

impl IPAMClaim {
    /// `status.ips`, empty when there is no status.
    pub fn status_ips(&self) -> &[String] {
        self.status.as_ref().map(|s| s.ips.as_slice()).unwrap_or_default()
    }
    /// `status.ownerPod` as a pod name (the string form, or the object form's `name`).
    pub fn owner_pod(&self) -> Option<&str> {
        match self.status.as_ref()?.owner_pod.as_ref()? {
            Value::String(s) => Some(s),
            Value::Object(o) => o.get("name")?.as_str(),
            _ => None,
        }
    }
}

/// A new claim (tests, sandbox).
pub fn new_claim(namespace: &str, name: &str, network: &str, interface: &str) -> IPAMClaim {
    let mut c = IPAMClaim::new(name, IPAMClaimSpec { network: network.into(), interface: interface.into(), ip_requests: Vec::new() });
    c.metadata.namespace = Some(namespace.to_string());
    c
}

/// The merge patch of the status subresource setting `ips` and `ownerPod` (the string form of
/// upstream's `types.go`).
pub fn status_patch(ips: &[String], owner_pod: &str) -> Value {
    json!({"status": {"ips": ips, "ownerPod": owner_pod}})
}

/// The same patch with `ownerPod` in the object form (`{"name": ...}`) for CRDs that declare it so.
pub fn status_patch_object_owner(ips: &[String], owner_pod: &str) -> Value {
    json!({"status": {"ips": ips, "ownerPod": {"name": owner_pod}}})
}

/// The CRD kubetron ships (`deploy/crd-ipamclaims.yaml`): v1alpha1, namespaced, status
/// subresource, upstream's fields, no CEL (works on Kubernetes 1.20).
pub fn crd() -> CustomResourceDefinition {
    crate::client::crd_with_schema::<IPAMClaim>(
        "IPAMClaim: the persistent addresses of a pod interface (NPWG multi-network spec v1.3, section 8.2).",
        json!({
            "type": "object",
            "required": ["network"],
            "properties": {
                "network": {"description": "The CNI network name (the NAD config's name).", "type": "string"},
                "interface": {"description": "The pod interface name (may be empty or absent).", "type": "string", "nullable": true},
                "ipRequests": {"description": "Addresses asked for (CIDRs).", "type": "array", "maxItems": 2, "items": {"type": "string"}}
            }
        }),
        Some(json!({
            "type": "object",
            "properties": {
                "ips": {"description": "The addresses the claim holds (CIDRs).", "type": "array", "maxItems": 2, "items": {"type": "string"}},
                "ownerPod": {"description": "The pod the addresses were handed to.", "type": "string"},
                "conditions": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MetaStr;

    #[test]
    fn serde_follows_the_upstream_shape() {
        let v = json!({"apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": "IPAMClaim",
            "metadata": {"name": "vm1.red", "namespace": "ns", "uid": "u1"},
            "spec": {"network": "red", "interface": "", "ipRequests": ["10.1.0.7/24"]},
            "status": {"ips": ["10.1.0.7/24"], "ownerPod": "virt-launcher-vm1-x"}});
        let c: IPAMClaim = serde_json::from_value(v).unwrap();
        assert_eq!((c.namespace_str(), c.name_str(), c.uid_str()), ("ns", "vm1.red", "u1"));
        assert_eq!(c.spec.ip_requests, vec!["10.1.0.7/24"]);
        assert_eq!(c.status_ips(), ["10.1.0.7/24"]);
        assert_eq!(c.owner_pod(), Some("virt-launcher-vm1-x"));
        let mut o = c.clone();
        o.status.as_mut().unwrap().owner_pod = Some(json!({"name": "p2"}));
        assert_eq!(o.owner_pod(), Some("p2"));
        let back = serde_json::to_value(new_claim("ns", "c", "red", "net1")).unwrap();
        assert_eq!(back["apiVersion"], "k8s.cni.cncf.io/v1alpha1");
        assert_eq!(back["spec"], json!({"network": "red", "interface": "net1"}));
        // An empty interface is not written; null and absent read as empty.
        assert_eq!(serde_json::to_value(new_claim("ns", "c", "red", "")).unwrap()["spec"], json!({"network": "red"}));
        let n: IPAMClaimSpec = serde_json::from_value(json!({"network": "red", "interface": null})).unwrap();
        assert_eq!(n.interface, "");
        assert_eq!(status_patch(&["10.1.0.7/24".into()], "p")["status"]["ownerPod"], "p");
        assert_eq!(status_patch_object_owner(&[], "p")["status"]["ownerPod"]["name"], "p");
    }

    #[test]
    fn crd_has_status_subresource_and_no_cel() {
        let c = crd();
        assert_eq!(c.metadata.name.as_deref(), Some(CRD_NAME));
        assert_eq!(c.spec.scope, "Namespaced");
        assert_eq!(c.spec.versions.len(), 1);
        let v = &c.spec.versions[0];
        assert_eq!((v.name.as_str(), v.served, v.storage), ("v1alpha1", true, true));
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let text = serde_json::to_string(&c).unwrap();
        assert!(!text.contains("x-kubernetes-validations"), "no CEL on Kubernetes 1.20");
        let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crd-ipamclaims.yaml")).unwrap();
        let from_file: CustomResourceDefinition = serde_yaml::from_str(&file).unwrap();
        assert_eq!(serde_json::to_value(&from_file).unwrap(), serde_json::to_value(&c).unwrap(), "deploy/crd-ipamclaims.yaml is crd()");
    }
}
