//! The pod network request annotation `k8s.v1.cni.cncf.io/networks` (NPWG multi-network spec).
//!
//! Two syntaxes are accepted:
//! - text: comma-separated `name`, `ns/name`, `name@iface`, `ns/name@iface` (spaces around
//!   elements are ignored);
//! - JSON: an array of objects with `name` (required), `namespace`, `interface`, `ips`, `mac`,
//!   `default-route`, `cni-args`; any other key (`infiniband-guid`, `portMappings`,
//!   `bandwidth`, ...) is kept verbatim in [`NetworkRequest::extra`].
//!
//! [`parse_requests`] checks syntax and values; [`resolve`] fills in the pod's namespace and the
//! interface names; [`parse`] does both. Requests are numbered from 1 in error messages
//! ("network request #1"), in the order they appear in the annotation.
//!
//! Interface naming rule: a request keeps the interface it names. Requests without one get
//! `net1`, `net2`, ... in request order, a counter that skips any name another request asks for
//! explicitly. Example: `a, b@net1, c` gives `a`=`net2`, `b`=`net1`, `c`=`net3`.

mod json;
mod names;
mod resolve;
mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use crate::addr::{IpError, MacAddr, MacError, RequestedIp};
pub use names::{check_dns1123_label, check_ifname, NameError, MAX_IFNAME_LEN, RESERVED_IFNAMES};
pub use resolve::resolve;

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
    /// Gateways for the default route through this interface (NPWG `default-route`).
    #[serde(default, rename = "default-route", skip_serializing_if = "Vec::is_empty")]
    pub default_route: Vec<IpAddr>,
    /// Extra CNI args (NPWG `cni-args`), passed through.
    #[serde(default, rename = "cni-args", skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<serde_json::Map<String, Value>>,
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
    /// Default-route gateways through this interface.
    #[serde(default, rename = "default-route", skip_serializing_if = "Vec::is_empty")]
    pub default_route: Vec<IpAddr>,
    /// Extra CNI args.
    #[serde(default, rename = "cni-args", skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<serde_json::Map<String, Value>>,
    /// Other keys of the JSON form, verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

impl NetworkSelection {
    /// The network this selection points at.
    pub fn network(&self) -> NetworkRef {
        NetworkRef { namespace: self.namespace.clone(), name: self.name.clone() }
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
}

/// What is wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestProblem {
    /// Nothing between two commas.
    #[error("is empty")]
    Empty,
    /// Bad network name.
    #[error("has network name \"{value}\" which {why}; network names are DNS-1123 labels (lowercase letters, digits and '-', at most 63)")]
    Name {
        /// The name.
        value: String,
        /// Why.
        why: NameError,
    },
    /// Bad namespace.
    #[error("has namespace \"{value}\" which {why}; namespaces are DNS-1123 labels")]
    Namespace {
        /// The namespace.
        value: String,
        /// Why.
        why: NameError,
    },
    /// Bad interface name.
    #[error("asks for interface name \"{value}\" which {why}; interface names are 1-15 printable characters without '/', ':', '%', '@', ',' or spaces, and not lo or eth0")]
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
    tracing::trace!(count = requests.len(), "parsed network requests");
    Ok(requests)
}

/// Parse the annotation and resolve it for a pod in `pod_namespace`.
pub fn parse(value: &str, pod_namespace: &str) -> Result<Vec<NetworkSelection>, AnnotationError> {
    resolve(parse_requests(value)?, pod_namespace)
}

/// The resolved selections of a pod: empty when it has no networks annotation. The namespace
/// is the pod's (`default` when unset).
pub fn from_pod(pod: &k8s_openapi::api::core::v1::Pod) -> Result<Vec<NetworkSelection>, AnnotationError> {
    let ns = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
    match pod.metadata.annotations.as_ref().and_then(|a| a.get(NETWORKS_ANNOTATION)) {
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
    check_dns1123_label(v).map_err(|why| RequestProblem::Name { value: shorten(v, 80), why })
}

fn check_namespace(v: &str) -> Result<(), RequestProblem> {
    check_dns1123_label(v).map_err(|why| RequestProblem::Namespace { value: shorten(v, 80), why })
}

fn check_interface(v: &str) -> Result<(), RequestProblem> {
    check_ifname(v).map_err(|why| RequestProblem::Interface { value: shorten(v, 40), why })
}

#[cfg(test)]
mod tests;
