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

/// Take an optional array of strings; `null` counts as empty.
fn string_list(obj: &mut Map<String, Value>, field: &'static str) -> Result<Vec<String>, RequestProblem> {
    let wrong = || RequestProblem::WrongType { field, expected: "an array of strings" };
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(wrong()),
            })
            .collect(),
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
    let ips = string_list(&mut obj, "ips")?
        .iter()
        .map(|s| s.parse::<RequestedIp>().map_err(RequestProblem::Ip))
        .collect::<Result<Vec<_>, _>>()?;
    let mac = opt_string(&mut obj, "mac")?.map(|s| s.parse::<MacAddr>().map_err(RequestProblem::Mac)).transpose()?;
    let default_route = string_list(&mut obj, "default-route")?
        .into_iter()
        .map(|s| s.parse::<IpAddr>().map_err(|_| RequestProblem::DefaultRoute(super::shorten(&s, 60))))
        .collect::<Result<Vec<_>, _>>()?;
    let cni_args = match obj.remove("cni-args") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(RequestProblem::WrongType { field: "cni-args", expected: "an object" }),
    };
    Ok(NetworkRequest { name, namespace, interface, ips, mac, default_route, cni_args, extra: obj.into_iter().collect() })
}
