//! Resolution of requests for one pod: namespace defaulting and interface naming.

use std::collections::{BTreeMap, BTreeSet};

use super::{AnnotationError, NetworkRequest, NetworkSelection};

/// Resolve requests for a pod in `pod_namespace`.
///
/// A missing namespace becomes the pod's. Interfaces: the requested name, otherwise `net1`,
/// `net2`, ... in request order, skipping names that any request asks for explicitly.
/// Two requests naming the same interface is an error.
pub fn resolve(requests: Vec<NetworkRequest>, pod_namespace: &str) -> Result<Vec<NetworkSelection>, AnnotationError> {
    let mut explicit: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in requests.iter().enumerate() {
        if let Some(iface) = r.interface.as_deref() {
            if let Some(first) = explicit.insert(iface, i + 1) {
                return Err(AnnotationError::DuplicateInterface { first, second: i + 1, interface: iface.to_string() });
            }
        }
    }
    let taken: BTreeSet<String> = explicit.keys().map(|s| s.to_string()).collect();
    let mut counter = 0u32;
    let mut out = Vec::with_capacity(requests.len());
    for r in requests {
        let (interface, interface_requested) = match r.interface {
            Some(i) => (i, true),
            None => loop {
                counter += 1;
                let candidate = format!("net{counter}");
                if !taken.contains(&candidate) {
                    break (candidate, false);
                }
            },
        };
        out.push(NetworkSelection {
            namespace: r.namespace.unwrap_or_else(|| pod_namespace.to_string()),
            name: r.name,
            interface,
            interface_requested,
            ips: r.ips,
            mac: r.mac,
            ipoib_mac: r.ipoib_mac,
            default_route: r.default_route,
            ipam_claim_reference: r.ipam_claim_reference,
            infiniband_guid: r.infiniband_guid,
            port_mappings: r.port_mappings,
            bandwidth: r.bandwidth,
            cni_args: r.cni_args,
            security_profile: r.security_profile,
            extra: r.extra,
        });
    }
    Ok(out)
}
