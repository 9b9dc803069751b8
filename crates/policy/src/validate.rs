//! What makes a policy unusable, found all at once and named by JSON path (the apiserver checks
//! none of it for a custom resource): the controller refuses such a policy whole (no OVN change)
//! and says why in an Event.

use std::fmt;

use ipnet::IpNet;

use crate::spec::{Direction, IntOrString, LabelSelector, Peer, PolicyPort, PolicySpec, Protocol};

/// One problem of a policy: where (`spec.ingress[0].ports[1].endPort`) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// `problems` as users are shown them (an Event, an admission refusal): each with its path,
/// `; `-separated.
pub fn describe(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The problems of `spec`, every one of them (empty: the policy is usable).
pub fn validate(spec: &PolicySpec) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut bad = |path: String, message: String| out.push(Problem { path, message });
    selector(&spec.pod_selector, "spec.podSelector", &mut bad);
    for (i, t) in spec.policy_types.iter().flatten().enumerate() {
        if t != "Ingress" && t != "Egress" {
            bad(format!("spec.policyTypes[{i}]"), format!("{t:?} is neither \"Ingress\" nor \"Egress\""));
        }
    }
    for dir in [Direction::Ingress, Direction::Egress] {
        let (section, peers_key) = match dir {
            Direction::Ingress => ("ingress", "from"),
            Direction::Egress => ("egress", "to"),
        };
        for (i, rule) in spec.rules(dir).iter().enumerate() {
            for (j, p) in rule.ports.iter().enumerate() {
                port(p, &format!("spec.{section}[{i}].ports[{j}]"), &mut bad);
            }
            for (j, p) in rule.peers.iter().copied().flatten().enumerate() {
                peer(p, &format!("spec.{section}[{i}].{peers_key}[{j}]"), &mut bad);
            }
        }
    }
    out
}

fn selector(s: &LabelSelector, path: &str, bad: &mut impl FnMut(String, String)) {
    for (i, r) in s.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let n = r.values.as_ref().map_or(0, Vec::len);
        match r.operator.as_str() {
            "In" | "NotIn" if n == 0 => bad(format!("{at}.values"), format!("operator {} needs values", r.operator)),
            "Exists" | "DoesNotExist" if n > 0 => bad(format!("{at}.values"), format!("operator {} takes no values", r.operator)),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => bad(format!("{at}.operator"), format!("{other:?} is not one of In, NotIn, Exists, DoesNotExist")),
        }
        if r.key.is_empty() {
            bad(format!("{at}.key"), "must not be empty".into());
        }
    }
}

fn port(p: &PolicyPort, path: &str, bad: &mut impl FnMut(String, String)) {
    if Protocol::parse(p.protocol.as_deref()).is_none() {
        bad(format!("{path}.protocol"), format!("{:?} is not one of TCP, UDP, SCTP", p.protocol.as_deref().unwrap_or_default()));
    }
    match &p.port {
        Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => bad(format!("{path}.port"), format!("{n} is not within 1-65535")),
        Some(IntOrString::Str(name)) if !is_port_name(name) => {
            bad(format!("{path}.port"), format!("{name:?} is not a port number or a port name (IANA_SVC_NAME)"))
        }
        _ => {}
    }
    if let Some(end) = p.end_port {
        match &p.port {
            Some(IntOrString::Int(start)) if end < *start => bad(format!("{path}.endPort"), format!("{end} is below port {start}")),
            Some(IntOrString::Int(_)) if end > 65535 => bad(format!("{path}.endPort"), format!("{end} is not within 1-65535")),
            Some(IntOrString::Int(_)) => {}
            _ => bad(format!("{path}.endPort"), "needs a numeric port".into()),
        }
    }
}

fn peer(p: &Peer, path: &str, bad: &mut impl FnMut(String, String)) {
    if let Some(s) = &p.pod_selector {
        selector(s, &format!("{path}.podSelector"), bad);
    }
    if let Some(s) = &p.namespace_selector {
        selector(s, &format!("{path}.namespaceSelector"), bad);
    }
    match &p.ip_block {
        Some(_) if p.pod_selector.is_some() || p.namespace_selector.is_some() => {
            bad(path.to_string(), "ipBlock cannot be combined with podSelector or namespaceSelector".into())
        }
        None if p.pod_selector.is_none() && p.namespace_selector.is_none() => {
            bad(path.to_string(), "a peer needs podSelector, namespaceSelector or ipBlock".into())
        }
        Some(b) => match b.cidr.parse::<IpNet>() {
            Err(_) => bad(format!("{path}.ipBlock.cidr"), format!("{:?} is not a CIDR", b.cidr)),
            Ok(net) => {
                for (k, e) in b.except.iter().enumerate() {
                    let at = format!("{path}.ipBlock.except[{k}]");
                    match e.parse::<IpNet>() {
                        Err(_) => bad(at, format!("{e:?} is not a CIDR")),
                        Ok(ex) if !net.contains(&ex) || ex.prefix_len() <= net.prefix_len() => {
                            bad(at, format!("{e} is not strictly inside {}", b.cidr))
                        }
                        Ok(_) => {}
                    }
                }
            }
        },
        None => {}
    }
}

/// IANA_SVC_NAME (RFC 6335 section 5.1), as Kubernetes checks a container port's name: at most 15
/// lowercase letters, digits and `-`, at least one letter, no `-` at either end or twice in a row.
pub fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: serde_json::Value) -> Vec<String> {
        validate(&serde_json::from_value(v).unwrap()).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_good_policy_has_no_problems() {
        let p = problems(json!({
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}, "namespaceSelector": {"matchLabels": {"a": "b"}}}, {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}],
                         "ports": [{"port": 80}, {"protocol": "UDP", "port": "dns"}, {"port": 8000, "endPort": 8010}, {"protocol": "SCTP"}]}],
            "egress": [{}]
        }));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let p = problems(json!({
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]},
            "policyTypes": ["Sideways"],
            "ingress": [{"ports": [{"port": 9000, "endPort": 8000}, {"port": "http", "endPort": 90}, {"protocol": "ICMP"}, {"port": 0}, {"port": "Not_A_Name"}],
                         "from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24", "10.0.0.0/16"]}}, {}, {"ipBlock": {"cidr": "x"}, "podSelector": {}}]}],
            "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}, {"key": "k", "operator": "Near", "values": ["v"]}]}}]}]
        }));
        let expect = [
            "spec.podSelector.matchExpressions[0].values: operator In needs values",
            "spec.policyTypes[0]: \"Sideways\" is neither \"Ingress\" nor \"Egress\"",
            "spec.ingress[0].ports[0].endPort: 8000 is below port 9000",
            "spec.ingress[0].ports[1].endPort: needs a numeric port",
            "spec.ingress[0].ports[2].protocol: \"ICMP\" is not one of TCP, UDP, SCTP",
            "spec.ingress[0].ports[3].port: 0 is not within 1-65535",
            "spec.ingress[0].ports[4].port: \"Not_A_Name\" is not a port number or a port name (IANA_SVC_NAME)",
            "spec.ingress[0].from[0].ipBlock.except[0]: 10.1.0.0/24 is not strictly inside 10.0.0.0/16",
            "spec.ingress[0].from[0].ipBlock.except[1]: 10.0.0.0/16 is not strictly inside 10.0.0.0/16",
            "spec.ingress[0].from[1]: a peer needs podSelector, namespaceSelector or ipBlock",
            "spec.ingress[0].from[2]: ipBlock cannot be combined with podSelector or namespaceSelector",
            "spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values: operator Exists takes no values",
            "spec.egress[0].to[0].namespaceSelector.matchExpressions[1].operator: \"Near\" is not one of In, NotIn, Exists, DoesNotExist",
        ];
        assert_eq!(p, expect);
    }

    #[test]
    fn port_names_follow_iana_svc_name() {
        for ok in ["http", "h2c", "web-80", "a"] {
            assert!(is_port_name(ok), "{ok}");
        }
        for bad in ["", "80", "-http", "http-", "ht--tp", "HTTP", "sixteen-letters-", "a_b"] {
            assert!(!is_port_name(bad), "{bad}");
        }
    }
}
