//! The MultiNetworkPolicy spec (k8snetworkplumbingwg/multi-networkpolicy, group `k8s.cni.cncf.io`:
//! the NetworkPolicy shape of `networking.k8s.io/v1`, plus `endPort` as in its v1beta2), the
//! `k8s.v1.cni.cncf.io/policy-for` annotation, and label selectors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The annotation naming the networks a MultiNetworkPolicy applies to: `net1, ns/net2`.
pub const POLICY_FOR: &str = "k8s.v1.cni.cncf.io/policy-for";

/// `spec` of a MultiNetworkPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// The pods (of the policy's namespace) the policy isolates; `{}` selects them all.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    /// `Ingress`, `Egress`; unset: Ingress, and Egress when the policy has an `egress` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PolicyPort>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<Peer>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PolicyPort>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<Peer>>,
}

/// One peer: pods by selectors (namespace x pod), or an IP block.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPort {
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// A number or a named container port; unset: every port of the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// With a numeric `port`: the last port of the range `port..=endPort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

/// A Kubernetes label selector: `matchLabels` ANDed with `matchExpressions`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<Requirement>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector (an empty selector selects everything; an unknown
    /// operator nothing: [`crate::validate`] refuses it first).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let labels_ok = self.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
        labels_ok
            && self.match_expressions.iter().flatten().all(|r| {
                let values = r.values.as_deref().unwrap_or_default();
                match (r.operator.as_str(), labels.get(&r.key)) {
                    ("In", Some(v)) => values.contains(v),
                    ("In", None) => false,
                    ("NotIn", Some(v)) => !values.contains(v),
                    ("NotIn", None) => true,
                    ("Exists", v) => v.is_some(),
                    ("DoesNotExist", v) => v.is_none(),
                    _ => false,
                }
            })
    }
    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.as_ref().is_none_or(BTreeMap::is_empty) && self.match_expressions.as_ref().is_none_or(Vec::is_empty)
    }
}

/// A traffic direction, from the selected pods' point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// One rule of either direction: its ports (empty: all traffic) and peers (`None`: everyone).
#[derive(Clone, Copy, Debug)]
pub struct Rule<'a> {
    pub ports: &'a [PolicyPort],
    pub peers: Option<&'a [Peer]>,
}

impl PolicySpec {
    /// Whether the policy isolates its pods in `dir` (its effective `policyTypes`).
    pub fn isolates(&self, dir: Direction) -> bool {
        match &self.policy_types {
            Some(types) => types.iter().any(|t| t == if dir == Direction::Ingress { "Ingress" } else { "Egress" }),
            None => dir == Direction::Ingress || self.egress.is_some(),
        }
    }
    /// The rules of direction `dir`, whether or not the policy isolates it. An empty `from`/`to`
    /// list, like a missing one, means every peer; empty `ports` every port and protocol.
    pub fn rules(&self, dir: Direction) -> Vec<Rule<'_>> {
        fn peers(p: &Option<Vec<Peer>>) -> Option<&[Peer]> {
            p.as_deref().filter(|p| !p.is_empty())
        }
        match dir {
            Direction::Ingress => self
                .ingress
                .iter()
                .flatten()
                .map(|r| Rule { ports: r.ports.as_deref().unwrap_or_default(), peers: peers(&r.from) })
                .collect(),
            Direction::Egress => {
                self.egress.iter().flatten().map(|r| Rule { ports: r.ports.as_deref().unwrap_or_default(), peers: peers(&r.to) }).collect()
            }
        }
    }
}

/// A transport protocol a port entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// From a Kubernetes protocol name (`TCP`, `UDP`, `SCTP`; unset is TCP).
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
    /// The OVN match field prefix: `tcp`, `udp`, `sctp`.
    pub fn ovn(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// The networks (`(namespace, name)` of NetworkAttachmentDefinitions) a `policy-for` value names:
/// comma-separated, spaces ignored, a bare name in the policy's namespace.
pub fn parse_policy_for(value: &str, policy_namespace: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('/') {
            Some((ns, name)) => (ns.trim().to_string(), name.trim().to_string()),
            None => (policy_namespace.to_string(), s.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
    fn sel(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn policy_types_default_like_kubernetes() {
        let ingress_only: PolicySpec = serde_json::from_value(json!({"podSelector": {}})).unwrap();
        assert!(ingress_only.isolates(Direction::Ingress) && !ingress_only.isolates(Direction::Egress));
        let both: PolicySpec = serde_json::from_value(json!({"podSelector": {}, "egress": []})).unwrap();
        assert!(both.isolates(Direction::Ingress) && both.isolates(Direction::Egress));
        let egress_only: PolicySpec = serde_json::from_value(json!({"policyTypes": ["Egress"], "ingress": [{}]})).unwrap();
        assert!(!egress_only.isolates(Direction::Ingress) && egress_only.isolates(Direction::Egress));
        // An empty `from` is every peer, like a missing one.
        let r: PolicySpec = serde_json::from_value(json!({"ingress": [{"from": []}, {}]})).unwrap();
        assert!(r.rules(Direction::Ingress).iter().all(|r| r.peers.is_none() && r.ports.is_empty()));
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel(json!({})).matches(&l));
        assert!(sel(json!({})).matches(&BTreeMap::new()));
        assert!(sel(json!({"matchLabels": {"app": "web"}})).matches(&l));
        assert!(!sel(json!({"matchLabels": {"app": "web", "x": "y"}})).matches(&l));
        assert!(sel(json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]})).matches(&l));
        assert!(!sel(json!({"matchExpressions": [{"key": "zz", "operator": "In", "values": ["db"]}]})).matches(&l));
        assert!(sel(json!({"matchExpressions": [{"key": "zz", "operator": "NotIn", "values": ["db"]}]})).matches(&l));
        assert!(!sel(json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]})).matches(&l));
        assert!(sel(json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})).matches(&l));
        assert!(!sel(json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})).matches(&l));
        // matchLabels AND matchExpressions.
        assert!(!sel(json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}))
            .matches(&l));
        assert!(!sel(json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]})).matches(&l));
    }

    #[test]
    fn policy_for_names_networks_like_ovn_kubernetes() {
        assert_eq!(
            parse_policy_for(" net1, other/net2 ,,net3", "team"),
            [("team".into(), "net1".into()), ("other".into(), "net2".into()), ("team".into(), "net3".into())]
        );
        assert!(parse_policy_for(" , ", "team").is_empty());
    }
}
