//! Which namespaces may use a NAD.
//!
//! A NAD is usable in its own namespace. From another namespace only when its annotation
//! `kubetron.io/allowed-namespaces` lists that namespace (comma-separated, spaces ignored) or
//! contains `*`.

use model::netconf::NadConfig;
use model::request::NetworkSelection;
use thiserror::Error;

use super::NetworkAttachmentDefinition;
use crate::meta::MetaStr;

/// Annotation on a NAD sharing it with other namespaces.
pub const ALLOWED_NAMESPACES_ANNOTATION: &str = "kubetron.io/allowed-namespaces";

/// The parsed `kubetron.io/allowed-namespaces` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedNamespaces {
    /// Not set or empty: own namespace only.
    OwnOnly,
    /// `*`: every namespace.
    All,
    /// These namespaces (plus its own).
    Listed(Vec<String>),
}

/// Read the sharing annotation of a NAD.
pub fn allowed_namespaces(nad: &NetworkAttachmentDefinition) -> AllowedNamespaces {
    let raw = nad.metadata.annotations.as_ref().and_then(|a| a.get(ALLOWED_NAMESPACES_ANNOTATION));
    let list: Vec<String> =
        raw.map(|r| r.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default();
    if list.iter().any(|s| s == "*") {
        AllowedNamespaces::All
    } else if list.is_empty() {
        AllowedNamespaces::OwnOnly
    } else {
        AllowedNamespaces::Listed(list)
    }
}

/// Why a pod may not use a network.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The NAD given is not the one the selection names (a caller bug, reported plainly).
    #[error("network {wanted} was requested but NetworkAttachmentDefinition {got} was found")]
    Mismatch {
        /// `ns/name` requested.
        wanted: String,
        /// `ns/name` of the NAD.
        got: String,
    },
    /// Another namespace's network, not shared at all.
    #[error("network {network} belongs to namespace {owner} and is not shared with other namespaces; ask its owner to add namespace {pod_namespace} to its annotation kubetron.io/allowed-namespaces")]
    NotShared {
        /// `ns/name`.
        network: String,
        /// The NAD's namespace.
        owner: String,
        /// The pod's namespace.
        pod_namespace: String,
    },
    /// Another namespace's network, shared with others only.
    #[error("network {network} is shared only with namespaces {allowed} (annotation kubetron.io/allowed-namespaces), not with namespace {pod_namespace}")]
    NotListed {
        /// `ns/name`.
        network: String,
        /// Comma-separated list.
        allowed: String,
        /// The pod's namespace.
        pod_namespace: String,
    },
    /// Static IPs asked for but not granted.
    #[error(
        "network {network} does not allow static IPs (its config does not set capabilities.ips), but interface {interface} asks for {ips}"
    )]
    StaticIps {
        /// `ns/name`.
        network: String,
        /// Interface.
        interface: String,
        /// The IPs asked for.
        ips: String,
    },
    /// A capability no plugin of the network can honour (`portMappings`, `bandwidth`,
    /// `infinibandGUID`): the spec says the attachment must fail rather than ignore it.
    #[error("network {network} cannot honour \"{key}\" asked for interface {interface}: kubetron does not implement the CNI capability {capability} and no plugin chained in the network's config declares it (add one, e.g. the {plugin} plugin with \"capabilities\": {{\"{capability}\": true}}, or drop the request)")]
    Unhonoured {
        /// `ns/name`.
        network: String,
        /// Interface.
        interface: String,
        /// The annotation key.
        key: &'static str,
        /// The CNI capability name.
        capability: &'static str,
        /// A plugin that implements it.
        plugin: &'static str,
    },
    /// An IP-over-InfiniBand hardware address on a kubetron (Ethernet) network.
    #[error("network {network} cannot honour \"mac\" {mac} asked for interface {interface}: it is a 20-byte IP-over-InfiniBand address and kubetron's interfaces are Ethernet (6-byte MACs)")]
    InfinibandMac {
        /// `ns/name`.
        network: String,
        /// Interface.
        interface: String,
        /// The address asked for.
        mac: String,
    },
    /// `ipam-claim-reference` on a network whose config does not allow persistent IPs.
    #[error("network {network} does not allow persistent IPs (its config does not set \"allowPersistentIPs\": true), but interface {interface} names IPAMClaim {claim} in \"ipam-claim-reference\"; use a network that allows them, or \"ips\" for fixed addresses")]
    IpamClaim {
        /// `ns/name`.
        network: String,
        /// Interface.
        interface: String,
        /// The claim named.
        claim: String,
    },
    /// Static MAC asked for but not granted.
    #[error("network {network} does not allow static MAC addresses (its config does not set capabilities.mac), but interface {interface} asks for {mac}")]
    StaticMac {
        /// `ns/name`.
        network: String,
        /// Interface.
        interface: String,
        /// The MAC asked for.
        mac: String,
    },
}

/// May a pod in `pod_ns` use `nad` for `selection`?
pub fn authorize(pod_ns: &str, selection: &NetworkSelection, nad: &NetworkAttachmentDefinition) -> Result<(), Refusal> {
    let network = selection.network().to_string();
    let owner = nad.namespace_str();
    if owner != selection.namespace || nad.name_str() != selection.name {
        return Err(Refusal::Mismatch { wanted: network, got: format!("{}/{}", owner, nad.name_str()) });
    }
    if owner == pod_ns {
        return Ok(());
    }
    match allowed_namespaces(nad) {
        AllowedNamespaces::All => Ok(()),
        AllowedNamespaces::Listed(list) if list.iter().any(|n| n == pod_ns) => Ok(()),
        AllowedNamespaces::Listed(list) => Err(Refusal::NotListed { network, allowed: list.join(", "), pod_namespace: pod_ns.to_string() }),
        AllowedNamespaces::OwnOnly => Err(Refusal::NotShared { network, owner: owner.to_string(), pod_namespace: pod_ns.to_string() }),
    }
}

/// Does the network's config grant and honour what the selection asks for? Static IPs and MAC
/// need kubetron's `capabilities.ips` / `capabilities.mac`; `portMappings`, `bandwidth` and
/// `infiniband-guid` need a chained plugin declaring that capability; `ipam-claim-reference`
/// needs `"allowPersistentIPs": true`. Anything else would be silently ignored, which the spec
/// forbids.
pub fn check_capabilities(selection: &NetworkSelection, config: &NadConfig) -> Result<(), Refusal> {
    const CHAINED: &[(&str, &str, &str)] = &[
        ("infiniband-guid", "infinibandGUID", "ib-sriov"),
        ("portMappings", "portMappings", "portmap"),
        ("bandwidth", "bandwidth", "bandwidth"),
    ];
    let requested = selection.requested_capabilities();
    for (key, capability, plugin) in CHAINED {
        if requested.contains(capability) && !config.chain_capabilities.contains(*capability) {
            return Err(Refusal::Unhonoured {
                network: selection.network().to_string(),
                interface: selection.interface.clone(),
                key,
                capability,
                plugin,
            });
        }
    }
    if let Some(mac) = &selection.ipoib_mac {
        return Err(Refusal::InfinibandMac {
            network: selection.network().to_string(),
            interface: selection.interface.clone(),
            mac: mac.clone(),
        });
    }
    if let (Some(claim), false) = (&selection.ipam_claim_reference, config.allow_persistent_ips) {
        return Err(Refusal::IpamClaim {
            network: selection.network().to_string(),
            interface: selection.interface.clone(),
            claim: claim.clone(),
        });
    }
    let granted = config.kubetron.granted();
    if !selection.ips.is_empty() && !granted.ips {
        return Err(Refusal::StaticIps {
            network: selection.network().to_string(),
            interface: selection.interface.clone(),
            ips: selection.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
        });
    }
    if let (Some(mac), false) = (selection.mac, granted.mac) {
        return Err(Refusal::StaticMac {
            network: selection.network().to_string(),
            interface: selection.interface.clone(),
            mac: mac.to_string(),
        });
    }
    Ok(())
}
