//! The pod network request annotation `k8s.v1.cni.cncf.io/networks` (NPWG multi-network spec,
//! "Kubernetes Network Custom Resource Definition De-facto Standard" v1.3, section 4).
//!
//! This is the one parser of the annotation: the webhook, the controller and the tests use it
//! (the CNI plugin never reads the annotation: Multus hands it `runtimeConfig` and `args`).
//!
//! Two syntaxes are accepted:
//! - text: comma-separated `name`, `ns/name`, `name@iface`, `ns/name@iface` (spaces around
//!   elements are ignored);
//! - JSON: an array of objects, key by key as the spec defines them:
//!   - `name` (required string): a NetworkAttachmentDefinition name, a DNS-1123 subdomain (dots
//!     allowed, at most 253 characters) like every Kubernetes object name;
//!   - `namespace` (string; missing or empty: the pod's): a DNS-1123 label;
//!   - `interface` (string): a valid Linux interface name (see [`check_request_ifname`]);
//!   - `ips` (string array): when present it must hold at least one address (`"ips": []` is
//!     invalid), each an IPv4 or IPv6 address (a `/prefix` is accepted, as Multus does);
//!   - `mac` (string): a 6-byte Ethernet MAC address, or a 20-byte IP-over-InfiniBand hardware
//!     address (kept in `ipoib_mac`; kubetron's networks are Ethernet and refuse it);
//!   - `default-route` (string array of gateway IPs, possibly empty): this attachment gets the
//!     default route; the key may be set on ONE element only;
//!   - `ipam-claim-reference` (string): the IPAMClaim holding this attachment's addresses; it
//!     may not be combined with `ips`;
//!   - `infiniband-guid` (string), `portMappings` (array of objects), `bandwidth` (object):
//!     capability requests, checked for shape here; whether the network can honour them is
//!     checked against the NAD (`k8s::nad::check_capabilities`);
//!   - `cni-args` (object): passed through;
//!   - `kubetron.io/security-profile` (string, kubetron's): an administrator's OVN Port_Group
//!     offered to the pod's namespace that the attachment's port joins;
//!   - any other key is kept verbatim in [`NetworkRequest::extra`] (the spec reserves keys
//!     without a dot for itself and gives dotted keys to implementations).
//!
//! Anything invalid makes the whole annotation invalid (the spec: "the Network Attachment
//! Selection Annotation shall be invalid"): the webhook refuses the pod and the controller
//! reports an event instead of attaching part of it.
//!
//! [`parse_requests`] checks syntax and values; [`resolve`] fills in the pod's namespace and the
//! interface names; [`parse`] does both. Requests are numbered from 1 in error messages
//! ("network request #1"), in the order they appear in the annotation.
//!
//! Interface naming rule: a request keeps the interface it names. Requests without one get
//! `net1`, `net2`, ... in request order, a counter that skips any name another request asks for
//! explicitly. Example: `a, b@net1, c` gives `a`=`net2`, `b`=`net1`, `c`=`net3`.

mod json;
mod resolve;
mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use crate::addr::{IpError, MacAddr, MacError, RequestedIp};
pub use crate::names::{
    check_dns1123_label, check_dns1123_subdomain, check_request_ifname, NameError, MAX_IFNAME_LEN, MAX_LABEL_LEN, MAX_SUBDOMAIN_LEN,
    RESERVED_IFNAMES,
};
pub use resolve::resolve;

/// kubetron's key in a JSON element: the security profile (an OVN Port_Group an administrator made
/// and offered to namespaces with `external_ids:kubetron.io/namespaces`) the attachment joins.
pub const SECURITY_PROFILE_KEY: &str = "kubetron.io/security-profile";

/// The annotation a pod uses to ask for extra networks.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";

/// One element of the annotation, as written (namespace and interface may be missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NetworkRequest {
    /// The NetworkAttachmentDefinition name.
    pub name: String,
    /// Its namespace; `None` means the pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The interface name asked for inside the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Static IPs asked for (NPWG `ips`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<RequestedIp>,
    /// Static MAC asked for (NPWG `mac`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The default route goes through this interface (NPWG `default-route`): `Some` with the
    /// gateways asked for, `Some(vec![])` for "the network's gateway", `None` when not asked.
    #[serde(default, rename = "default-route", skip_serializing_if = "Option::is_none")]
    pub default_route: Option<Vec<IpAddr>>,
    /// The IPAMClaim holding the addresses (NPWG `ipam-claim-reference`).
    #[serde(default, rename = "ipam-claim-reference", skip_serializing_if = "Option::is_none")]
    pub ipam_claim_reference: Option<String>,
    /// A 20-byte IP-over-InfiniBand hardware address given as `mac` (the spec allows it next to
    /// Ethernet MACs); kept apart from [`NetworkRequest::mac`], which is Ethernet.
    #[serde(default, rename = "ipoib-mac", skip_serializing_if = "Option::is_none")]
    pub ipoib_mac: Option<String>,
    /// InfiniBand GUID asked for (NPWG `infiniband-guid`).
    #[serde(default, rename = "infiniband-guid", skip_serializing_if = "Option::is_none")]
    pub infiniband_guid: Option<String>,
    /// Port mappings asked for (NPWG `portMappings`, CNI capability `portMappings`); empty: none.
    #[serde(default, rename = "portMappings", skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<serde_json::Map<String, Value>>,
    /// Bandwidth limits asked for (NPWG `bandwidth`, CNI capability `bandwidth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<serde_json::Map<String, Value>>,
    /// Extra CNI args (NPWG `cni-args`), passed through.
    #[serde(default, rename = "cni-args", skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<serde_json::Map<String, Value>>,
    /// The security profile (an administrator's OVN Port_Group offered to the pod's namespace)
    /// this attachment joins (kubetron's key [`SECURITY_PROFILE_KEY`]).
    #[serde(default, rename = "kubetron.io/security-profile", skip_serializing_if = "Option::is_none")]
    pub security_profile: Option<String>,
    /// Every other key of the JSON form, kept verbatim.
    #[serde(flatten, default)]
    pub extra: BTreeMap<String, Value>,
}

/// A request resolved for one pod: namespace and interface name are always set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSelection {
    /// Namespace of the NetworkAttachmentDefinition.
    pub namespace: String,
    /// Name of the NetworkAttachmentDefinition.
    pub name: String,
    /// Interface name inside the pod.
    pub interface: String,
    /// True when the user named the interface, false when it was generated (`netN`).
    #[serde(default)]
    pub interface_requested: bool,
    /// Static IPs asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<RequestedIp>,
    /// Static MAC asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The default route goes through this interface: `Some` with the gateways asked for
    /// (empty: the network's gateway), `None` when not asked.
    #[serde(default, rename = "default-route", skip_serializing_if = "Option::is_none")]
    pub default_route: Option<Vec<IpAddr>>,
    /// The IPAMClaim holding the addresses.
    #[serde(default, rename = "ipam-claim-reference", skip_serializing_if = "Option::is_none")]
    pub ipam_claim_reference: Option<String>,
    /// A 20-byte IP-over-InfiniBand hardware address given as `mac`.
    #[serde(default, rename = "ipoib-mac", skip_serializing_if = "Option::is_none")]
    pub ipoib_mac: Option<String>,
    /// InfiniBand GUID asked for.
    #[serde(default, rename = "infiniband-guid", skip_serializing_if = "Option::is_none")]
    pub infiniband_guid: Option<String>,
    /// Port mappings asked for (empty: none).
    #[serde(default, rename = "portMappings", skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<serde_json::Map<String, Value>>,
    /// Bandwidth limits asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<serde_json::Map<String, Value>>,
    /// Extra CNI args.
    #[serde(default, rename = "cni-args", skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<serde_json::Map<String, Value>>,
    /// The security profile this attachment joins ([`SECURITY_PROFILE_KEY`]).
    #[serde(default, rename = "kubetron.io/security-profile", skip_serializing_if = "Option::is_none")]
    pub security_profile: Option<String>,
    /// Other keys of the JSON form, verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

impl NetworkSelection {
    /// The network this selection points at.
    pub fn network(&self) -> NetworkRef {
        NetworkRef { namespace: self.namespace.clone(), name: self.name.clone() }
    }

    /// The CNI capabilities this selection asks the network's plugins to honour (CNI
    /// `capabilities` names: `ips`, `mac`, `infinibandGUID`, `portMappings`, `bandwidth`), in
    /// that order. `ipam-claim-reference` is not a CNI capability and is not listed.
    pub fn requested_capabilities(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.ips.is_empty() {
            out.push("ips");
        }
        if self.mac.is_some() || self.ipoib_mac.is_some() {
            out.push("mac");
        }
        if self.infiniband_guid.is_some() {
            out.push("infinibandGUID");
        }
        if !self.port_mappings.is_empty() {
            out.push("portMappings");
        }
        if self.bandwidth.as_ref().is_some_and(|b| !b.is_empty()) {
            out.push("bandwidth");
        }
        out
    }
}

/// A NetworkAttachmentDefinition reference; displays as `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetworkRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for NetworkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why the annotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnnotationError {
    /// Starts like JSON but does not parse.
    #[error("annotation {NETWORKS_ANNOTATION} is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an array.
    #[error("annotation {NETWORKS_ANNOTATION} in JSON form must be an array of objects, but it is {0}")]
    NotArray(&'static str),
    /// One element is wrong.
    #[error("annotation {NETWORKS_ANNOTATION}: network request #{index} ({text}) {problem}")]
    Request {
        /// 1-based position in the annotation.
        index: usize,
        /// The element as written (shortened when long).
        text: String,
        /// What is wrong with it.
        problem: RequestProblem,
    },
    /// Two requests name the same interface.
    #[error("annotation {NETWORKS_ANNOTATION}: network requests #{first} and #{second} both ask for interface \"{interface}\"")]
    DuplicateInterface {
        /// 1-based position of the first.
        first: usize,
        /// 1-based position of the second.
        second: usize,
        /// The interface name.
        interface: String,
    },
    /// `default-route` on more than one element (the spec allows it on one only).
    #[error("annotation {NETWORKS_ANNOTATION}: network requests #{first} and #{second} both set \"default-route\"; the default route can go through one attachment only")]
    SeveralDefaultRoutes {
        /// 1-based position of the first.
        first: usize,
        /// 1-based position of the second.
        second: usize,
    },
}

/// What is wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestProblem {
    /// Nothing between two commas.
    #[error("is empty")]
    Empty,
    /// A security profile that is not an OVN Port_Group name, or is one of kubetron's own.
    #[error(
        "asks for security profile \"{0}\", which is not an OVN Port_Group name ([a-zA-Z_.][a-zA-Z_.0-9]*) or is kubetron's own (kt_...)"
    )]
    SecurityProfile(String),
    /// Bad network name.
    #[error("has network name \"{value}\" which {why}; network names are NetworkAttachmentDefinition names, DNS-1123 subdomains (lowercase letters, digits, '-' and '.', at most 253)")]
    Name {
        /// The name.
        value: String,
        /// Why.
        why: NameError,
    },
    /// Bad namespace.
    #[error("has namespace \"{value}\" which {why}; namespaces are DNS-1123 labels (lowercase letters, digits and '-', at most 63)")]
    Namespace {
        /// The namespace.
        value: String,
        /// Why.
        why: NameError,
    },
    /// Bad interface name.
    #[error("asks for interface name \"{value}\" which {why}; interface names are Linux interface names: 1-15 bytes without '/', ':', '%', whitespace or control characters, not \".\", \"..\", lo or eth0")]
    Interface {
        /// The name.
        value: String,
        /// Why.
        why: NameError,
    },
    /// A separator appears twice (`a/b/c`, `a@b@c`).
    #[error("has more than one '{0}'")]
    Repeated(char),
    /// Bad IP.
    #[error("asks for an invalid IP: {0}")]
    Ip(IpError),
    /// Bad MAC.
    #[error("asks for an invalid MAC: {0}")]
    Mac(MacError),
    /// Bad default-route gateway.
    #[error("has default-route entry \"{0}\" which is not an IP address")]
    DefaultRoute(String),
    /// `"ips": []`.
    #[error("has \"ips\" with no address; when the key is present it must list at least one IP (leave it out for automatic addresses)")]
    EmptyIps,
    /// `ips` and `ipam-claim-reference` together.
    #[error("has both \"ips\" and \"ipam-claim-reference\"; the spec allows one or the other (static addresses, or the addresses of an IPAMClaim)")]
    IpsWithClaim,
    /// Bad IPAMClaim name.
    #[error("has ipam-claim-reference \"{value}\" which {why}; it names an IPAMClaim, a DNS-1123 subdomain")]
    IpamClaim {
        /// The name.
        value: String,
        /// Why.
        why: NameError,
    },
    /// Bad InfiniBand GUID.
    #[error("has infiniband-guid \"{0}\" which is not an InfiniBand GUID (eight colon-separated hex pairs like c2:11:22:33:44:55:66:77)")]
    InfinibandGuid(String),
    /// JSON element not an object.
    #[error("is not a JSON object")]
    NotObject,
    /// JSON element without name.
    #[error("has no \"name\"")]
    MissingName,
    /// JSON field of the wrong type.
    #[error("has field \"{field}\" that must be {expected}")]
    WrongType {
        /// Field name.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
}

/// Parse the annotation value into requests, in order. Empty or blank means no request.
pub fn parse_requests(value: &str) -> Result<Vec<NetworkRequest>, AnnotationError> {
    let trimmed = value.trim();
    let requests = if trimmed.is_empty() {
        Vec::new()
    } else if trimmed.starts_with('[') || trimmed.starts_with('{') {
        json::parse(trimmed)?
    } else {
        text::parse(trimmed)?
    };
    let mut with_default_route = requests.iter().enumerate().filter(|(_, r)| r.default_route.is_some()).map(|(i, _)| i + 1);
    if let (Some(first), Some(second)) = (with_default_route.next(), with_default_route.next()) {
        return Err(AnnotationError::SeveralDefaultRoutes { first, second });
    }
    tracing::trace!(count = requests.len(), "parsed network requests");
    Ok(requests)
}

/// Parse the annotation and resolve it for a pod in `pod_namespace`.
pub fn parse(value: &str, pod_namespace: &str) -> Result<Vec<NetworkSelection>, AnnotationError> {
    resolve(parse_requests(value)?, pod_namespace)
}

/// The resolved selections of a pod in `namespace` with `annotations`: empty when it has no
/// networks annotation. The namespace is `default` when unset or empty (as the API server
/// defaults it). `k8s::annotation::from_pod` hands a Pod's metadata to it.
pub fn from_annotations(
    namespace: Option<&str>,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Vec<NetworkSelection>, AnnotationError> {
    let ns = namespace.filter(|n| !n.is_empty()).unwrap_or("default");
    match annotations.and_then(|a| a.get(NETWORKS_ANNOTATION)) {
        Some(value) => parse(value, ns),
        None => Ok(Vec::new()),
    }
}

/// Shorten `s` to at most `max` characters for error messages.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

fn request_error(index: usize, text: &str, problem: RequestProblem) -> AnnotationError {
    AnnotationError::Request { index, text: shorten(text, 80), problem }
}

fn check_name(v: &str) -> Result<(), RequestProblem> {
    check_dns1123_subdomain(v).map_err(|why| RequestProblem::Name { value: shorten(v, 80), why })
}

fn check_namespace(v: &str) -> Result<(), RequestProblem> {
    check_dns1123_label(v).map_err(|why| RequestProblem::Namespace { value: shorten(v, 80), why })
}

fn check_interface(v: &str) -> Result<(), RequestProblem> {
    check_request_ifname(v).map_err(|why| RequestProblem::Interface { value: shorten(v, 40), why })
}

#[cfg(test)]
mod tests;
