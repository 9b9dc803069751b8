//! NetworkAttachmentDefinitions (`k8s.cni.cncf.io/v1`, NPWG): the CRD type, physical networks and
//! the namespace exposure rules.
//!
//! - [`NetworkAttachmentDefinition`]: the custom resource (`spec.config` is a JSON string).
//! - [`NetworkAttachmentDefinition::kubetron_config`]: kubetron's network config
//!   ([`model::netconf::NadConfig`], read and checked by `model`'s rules, the CNI plugin's), or
//!   `None` for NADs of other plugins (those belong to Multus, kubetron leaves them alone).
//! - [`authorize`]: may a pod in a namespace use this NAD?
//! - Physical networks: a NAD annotated `k8s.v1.cni.cncf.io/resourceName: kubetron.io/<net>`
//!   needs node resource `kubetron.io/<net>`; see [`NetworkAttachmentDefinition::physical_network`].

mod expose;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use model::netconf::{NadConfig, NadConfigError};
use serde::{Deserialize, Serialize};

pub use expose::{allowed_namespaces, authorize, check_capabilities, AllowedNamespaces, Refusal, ALLOWED_NAMESPACES_ANNOTATION};

/// API group of the CRD.
pub const GROUP: &str = "k8s.cni.cncf.io";
/// Annotation naming the device-plugin resource a NAD needs.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";
/// Prefix of kubetron's physical network resources.
pub const RESOURCE_PREFIX: &str = "kubetron.io/";

/// Spec of a NetworkAttachmentDefinition.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    singular = "network-attachment-definition",
    shortname = "net-attach-def",
    namespaced,
    schema = "disabled"
)]
pub struct NetworkAttachmentDefinitionSpec {
    /// The CNI configuration, a JSON document in a string. May be empty (Multus then reads it
    /// from disk); kubetron ignores such NADs.
    #[serde(default)]
    pub config: String,
}

impl NetworkAttachmentDefinition {
    /// Kubetron's config, `Ok(None)` when the NAD belongs to another plugin.
    pub fn kubetron_config(&self) -> Result<Option<NadConfig>, NadConfigError> {
        let fallback = self.metadata.name.as_deref().unwrap_or_default();
        NadConfig::parse(&self.spec.config, fallback)
    }

    /// The `k8s.v1.cni.cncf.io/resourceName` annotation, if any.
    pub fn resource_name(&self) -> Option<&str> {
        self.metadata.annotations.as_ref()?.get(RESOURCE_NAME_ANNOTATION).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// The physical network name when the resource is `kubetron.io/<network>`.
    pub fn physical_network(&self) -> Option<&str> {
        self.resource_name()?.strip_prefix(RESOURCE_PREFIX).filter(|n| !n.is_empty())
    }
}

/// The CRD with the permissive schema Multus ships (`spec` preserves unknown fields,
/// `spec.config` is a string); `deploy/crd.yaml` is this object.
pub fn crd() -> CustomResourceDefinition {
    crate::client::crd_with_schema::<NetworkAttachmentDefinition>(
        "A network a pod can attach to through the k8s.v1.cni.cncf.io/networks annotation.",
        serde_json::json!({
            "description": "The CNI configuration of the network.",
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "config": {"description": "CNI configuration (a JSON document, as a string).", "type": "string"}
            }
        }),
        None,
    )
}

/// Build a NAD value (handy for tests and in-memory sources).
pub fn new_nad(namespace: &str, name: &str, config: &str, annotations: &[(&str, &str)]) -> NetworkAttachmentDefinition {
    let mut nad = NetworkAttachmentDefinition::new(name, NetworkAttachmentDefinitionSpec { config: config.to_string() });
    nad.metadata.namespace = Some(namespace.to_string());
    if !annotations.is_empty() {
        nad.metadata.annotations = Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }
    nad
}

#[cfg(test)]
mod tests;
