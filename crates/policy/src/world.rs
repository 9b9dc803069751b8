//! What a translation looks at: namespaces with their labels, and pods with their labels, named
//! container ports and kubetron ports (switch, logical switch port name, IPs). The caller builds
//! it from its Kubernetes caches and the Northbound replica; tests and the benchmark build it by
//! hand.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::spec::{LabelSelector, Peer, Protocol};

pub type Labels = BTreeMap<String, String>;

/// One kubetron port of a pod: a logical switch port on a switch, with its IPs.
#[derive(Clone, Debug, PartialEq)]
pub struct PortView {
    pub switch: String,
    pub lsp: String,
    pub ips: Vec<IpAddr>,
}

/// A named container port (`spec.containers[].ports[]` with a `name`).
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPort {
    pub name: String,
    pub protocol: Protocol,
    pub number: u16,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub container_ports: Vec<ContainerPort>,
    pub ports: Vec<PortView>,
}

impl PodView {
    /// The pod's ports on `switch`.
    pub fn ports_on<'a>(&'a self, switch: &'a str) -> impl Iterator<Item = &'a PortView> + 'a {
        self.ports.iter().filter(move |p| p.switch == switch)
    }
    /// The number a named port resolves to in this pod.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.container_ports.iter().find(|c| c.name == name && c.protocol == protocol).map(|c| c.number)
    }
}

/// Namespaces and pods, indexed by namespace.
#[derive(Clone, Debug, Default)]
pub struct World {
    namespaces: BTreeMap<String, Labels>,
    pods: Vec<PodView>,
    by_namespace: HashMap<String, Vec<usize>>,
}

impl World {
    pub fn new(namespaces: impl IntoIterator<Item = (String, Labels)>, pods: Vec<PodView>) -> World {
        let mut by_namespace: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, p) in pods.iter().enumerate() {
            by_namespace.entry(p.namespace.clone()).or_default().push(i);
        }
        World { namespaces: namespaces.into_iter().collect(), pods, by_namespace }
    }
    pub fn pods(&self) -> &[PodView] {
        &self.pods
    }
    /// The pods of namespace `ns`.
    pub fn pods_in<'a>(&'a self, ns: &str) -> impl Iterator<Item = &'a PodView> + 'a {
        self.by_namespace.get(ns).into_iter().flatten().map(|&i| &self.pods[i])
    }
    /// The pods of namespace `ns` that `selector` selects.
    pub fn selected<'a>(&'a self, ns: &str, selector: &'a LabelSelector) -> impl Iterator<Item = &'a PodView> + 'a {
        self.pods_in(ns).filter(move |p| selector.matches(&p.labels))
    }
    /// The pods a selector peer of a policy in `policy_ns` names (none for an `ipBlock`): with a
    /// `namespaceSelector`, pods of the namespaces it selects (all of them without a
    /// `podSelector`), else pods of `policy_ns`.
    pub fn peer_pods<'a>(&'a self, peer: &'a Peer, policy_ns: &'a str) -> Vec<&'a PodView> {
        let all = LabelSelector::default();
        let pods = peer.pod_selector.as_ref().unwrap_or(&all);
        match (&peer.namespace_selector, &peer.pod_selector) {
            (_, _) if peer.ip_block.is_some() => Vec::new(),
            (Some(ns_sel), _) => self
                .namespaces
                .iter()
                .filter(|(_, labels)| ns_sel.matches(labels))
                .flat_map(|(ns, _)| self.pods_in(ns).filter(|p| pods.matches(&p.labels)))
                .collect(),
            (None, Some(_)) => self.pods_in(policy_ns).filter(|p| pods.matches(&p.labels)).collect(),
            (None, None) => Vec::new(),
        }
    }
}
