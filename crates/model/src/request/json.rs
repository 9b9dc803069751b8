//! The JSON form: an array of NPWG network selection objects.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{check_interface, check_name, check_namespace, request_error, AnnotationError, NetworkRequest, RequestProblem};
use crate::addr::{MacAddr, RequestedIp};

/// Parse the JSON form (already trimmed, starts with `[` or `{`).
pub(super) fn parse(value: &str) -> Result<Vec<NetworkRequest>, AnnotationError> {
    let doc: Value = serde_json::from_str(value).map_err(|e| AnnotationError::Json(e.to_string()))?;
    let items = match doc {
        Value::Array(items) => items,
        other => return Err(AnnotationError::NotArray(kind(&other))),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let text = item.to_string();
            parse_element(item).map_err(|p| request_error(i + 1, &text, p))
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Take an optional string field; `null` and `""` count as absent.
fn opt_string(obj: &mut Map<String, Value>, field: &'static str) -> Result<Option<String>, RequestProblem> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RequestProblem::WrongType { field, expected: "a string" }),
    }
}

/// Take an optional array of strings; `null` counts as absent (`None`), `[]` is `Some(empty)`.
fn string_list(obj: &mut Map<String, Value>, field: &'static str) -> Result<Option<Vec<String>>, RequestProblem> {
    let wrong = || RequestProblem::WrongType { field, expected: "an array of strings" };
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(wrong()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

fn parse_element(item: Value) -> Result<NetworkRequest, RequestProblem> {
    let mut obj = match item {
        Value::Object(obj) => obj,
        _ => return Err(RequestProblem::NotObject),
    };
    let name = opt_string(&mut obj, "name")?.ok_or(RequestProblem::MissingName)?;
    check_name(&name)?;
    let namespace = opt_string(&mut obj, "namespace")?;
    if let Some(ns) = &namespace {
        check_namespace(ns)?;
    }
    let interface = opt_string(&mut obj, "interface")?;
    if let Some(i) = &interface {
        check_interface(i)?;
    }
    // `ips`: when present, at least one element, each an IP address.
    let ips = match string_list(&mut obj, "ips")? {
        Some(list) if list.is_empty() => return Err(RequestProblem::EmptyIps),
        list => {
            list.unwrap_or_default().iter().map(|s| s.parse::<RequestedIp>().map_err(RequestProblem::Ip)).collect::<Result<Vec<_>, _>>()?
        }
    };
    // `mac`: an Ethernet MAC, or a 20-byte IP-over-InfiniBand hardware address.
    let (mac, ipoib_mac) = match opt_string(&mut obj, "mac")? {
        Some(s) if is_hex_pairs(&s, 20) => (None, Some(s)),
        Some(s) => (Some(s.parse::<MacAddr>().map_err(RequestProblem::Mac)?), None),
        None => (None, None),
    };
    // `default-route`: present (even empty) means "the default route goes through here".
    let default_route = string_list(&mut obj, "default-route")?
        .map(|list| {
            list.into_iter()
                .map(|s| s.parse::<IpAddr>().map_err(|_| RequestProblem::DefaultRoute(super::shorten(&s, 60))))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let ipam_claim_reference = opt_string(&mut obj, "ipam-claim-reference")?;
    if let Some(claim) = &ipam_claim_reference {
        super::check_dns1123_subdomain(claim).map_err(|why| RequestProblem::IpamClaim { value: super::shorten(claim, 80), why })?;
        if !ips.is_empty() {
            return Err(RequestProblem::IpsWithClaim);
        }
    }
    let infiniband_guid = opt_string(&mut obj, "infiniband-guid")?;
    if let Some(guid) = &infiniband_guid {
        if !is_hex_pairs(guid, 8) {
            return Err(RequestProblem::InfinibandGuid(super::shorten(guid, 60)));
        }
    }
    let port_mappings = match obj.remove("portMappings") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m),
                _ => Err(RequestProblem::WrongType { field: "portMappings", expected: "an array of objects" }),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(RequestProblem::WrongType { field: "portMappings", expected: "an array of objects" }),
    };
    let bandwidth = opt_object(&mut obj, "bandwidth")?;
    let cni_args = opt_object(&mut obj, "cni-args")?;
    let security_profile = opt_string(&mut obj, super::SECURITY_PROFILE_KEY)?;
    if let Some(p) = &security_profile {
        if !is_port_group_name(p) || p.starts_with(crate::names::OWN_GROUP_PREFIX) {
            return Err(RequestProblem::SecurityProfile(super::shorten(p, 80)));
        }
    }
    Ok(NetworkRequest {
        name,
        namespace,
        interface,
        ips,
        mac,
        ipoib_mac,
        default_route,
        ipam_claim_reference,
        infiniband_guid,
        port_mappings,
        bandwidth,
        cni_args,
        security_profile,
        extra: obj.into_iter().collect(),
    })
}

/// An OVN Port_Group name (ovn-nb(5)): `[a-zA-Z_.][a-zA-Z_.0-9]*`.
fn is_port_group_name(s: &str) -> bool {
    let ok = |b: u8, first: bool| b.is_ascii_alphabetic() || b == b'_' || b == b'.' || (!first && b.is_ascii_digit());
    !s.is_empty() && s.bytes().enumerate().all(|(i, b)| ok(b, i == 0))
}

/// Take an optional object field; `null` counts as absent.
fn opt_object(obj: &mut Map<String, Value>, field: &'static str) -> Result<Option<Map<String, Value>>, RequestProblem> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(RequestProblem::WrongType { field, expected: "an object" }),
    }
}

/// `n` colon-separated pairs of hex digits (8: an InfiniBand GUID; 20: an IPoIB hardware address).
fn is_hex_pairs(s: &str, n: usize) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == n && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}
