//! The comma-separated text form: `name`, `ns/name`, `name@iface`, `ns/name@iface`.

use super::{check_interface, check_name, check_namespace, request_error, AnnotationError, NetworkRequest, RequestProblem};

/// Parse the text form (already trimmed, non-empty).
pub(super) fn parse(value: &str) -> Result<Vec<NetworkRequest>, AnnotationError> {
    value
        .split(',')
        .enumerate()
        .map(|(i, raw)| {
            let element = raw.trim();
            parse_element(element).map_err(|p| request_error(i + 1, element, p))
        })
        .collect()
}

fn parse_element(element: &str) -> Result<NetworkRequest, RequestProblem> {
    if element.is_empty() {
        return Err(RequestProblem::Empty);
    }
    let (target, interface) = match element.split_once('@') {
        Some((t, i)) => {
            if i.contains('@') {
                return Err(RequestProblem::Repeated('@'));
            }
            (t, Some(i))
        }
        None => (element, None),
    };
    let (namespace, name) = match target.split_once('/') {
        Some((ns, n)) => {
            if n.contains('/') {
                return Err(RequestProblem::Repeated('/'));
            }
            (Some(ns), n)
        }
        None => (None, target),
    };
    if let Some(ns) = namespace {
        check_namespace(ns)?;
    }
    check_name(name)?;
    if let Some(i) = interface {
        check_interface(i)?;
    }
    Ok(NetworkRequest {
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        interface: interface.map(str::to_string),
        ..Default::default()
    })
}
