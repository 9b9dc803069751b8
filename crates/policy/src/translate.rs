//! A policy on one switch -> the OVN rows that enforce it (pure; the controller plans them against
//! the Northbound replica and writes them).
//!
//! Per (policy, switch): one Port_Group holding the switch ports of the pods the policy selects,
//! carrying the allow ACLs (`allow-related`, priority [`ALLOW_PRIORITY`], so replies pass); one
//! Address_Set per rule and IP family with the IPs of the rule's selector peers on that switch
//! (kept current as pods come and go; a set with no address is not made, nor is its ACL). Each ACL
//! match is a plain conjunction referencing only the policy's own group and sets. Per switch: two
//! default-deny groups ([`deny_rows`]) holding every port some policy isolates in that direction,
//! with drop ACLs at [`DENY_PRIORITY`] and allows for ARP and DHCP requests.
//!
//! Every row carries `kubetron.io/owner=controller`, the policy, its UID, the switch, and a stable
//! identity (`kubetron.io/id`) that does not depend on the match, so a changed peer set or port
//! list is an update of the same row.

use std::collections::{BTreeMap, BTreeSet};

use model::names::OWN_GROUP_PREFIX;
use std::net::IpAddr;

use ovn::names;

use crate::spec::{Direction, IntOrString, IpBlock, PolicySpec, Protocol, Rule};
use crate::world::{PodView, World};

/// Priority of the ACLs allowing what a policy allows (ovn-kubernetes uses the same bands).
pub const ALLOW_PRIORITY: i64 = 1001;
/// Priority of the default-deny drops (and, at [`ALLOW_PRIORITY`], of their ARP/DHCP allows).
pub const DENY_PRIORITY: i64 = 1000;

/// A policy as the rows name it.
#[derive(Clone, Copy, Debug)]
pub struct PolicyRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

impl PolicyRef<'_> {
    /// `namespace/name`, the value of `kubetron.io/policy`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// An ACL to have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclRow {
    /// Stable identity (`kubetron.io/id`).
    pub id: String,
    /// `name` (for logs; at most 63 bytes).
    pub name: String,
    /// `to-lport` or `from-lport`.
    pub direction: &'static str,
    pub priority: i64,
    pub matches: String,
    /// `allow-related`, `allow` or `drop`.
    pub action: &'static str,
    pub external_ids: BTreeMap<String, String>,
}

/// A Port_Group to have, with its ports (logical switch port names) and ACLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortGroupRow {
    pub name: String,
    pub ports: BTreeSet<String>,
    pub acls: Vec<AclRow>,
    pub external_ids: BTreeMap<String, String>,
}

/// An Address_Set to have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressSetRow {
    pub name: String,
    pub addresses: BTreeSet<String>,
    pub external_ids: BTreeMap<String, String>,
}

/// The rows of one policy on one switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRows {
    pub port_group: PortGroupRow,
    pub address_sets: Vec<AddressSetRow>,
    /// The ports the policy isolates for ingress and for egress (each its group's ports, or none).
    pub isolated_ingress: BTreeSet<String>,
    pub isolated_egress: BTreeSet<String>,
}

/// How peers become matches: [`Mode::AddressSets`] (what kubetron writes) or [`Mode::Naive`] (one
/// ACL per peer address, no sets: the benchmark's baseline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    AddressSets,
    Naive,
}

/// 16 hex digits of SHA-256: OVN group and set names allow only `[a-zA-Z_.][a-zA-Z_.0-9]*`.
pub fn short_hash(s: &str) -> String {
    model::sha256::sha256(s.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The Port_Group name of policy `key` (`namespace/name`) on `switch`.
pub fn port_group_name(key: &str, switch: &str) -> String {
    format!("{OWN_GROUP_PREFIX}mnp_{}", short_hash(&format!("{key}|{switch}")))
}

/// The names of the default-deny groups of `switch`: (ingress, egress).
pub fn deny_group_names(switch: &str) -> (String, String) {
    let h = short_hash(switch);
    (format!("{OWN_GROUP_PREFIX}deny_in_{h}"), format!("{OWN_GROUP_PREFIX}deny_out_{h}"))
}

fn acl_name(prefix: &str, key: &str) -> String {
    let mut s = format!("{prefix}:{key}");
    let mut end = s.len().min(63);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip4"
    } else {
        "ip6"
    }
}

/// The Address_Set of identity `set_id` holding `ips` (of family `family`, `ip4`/`ip6`), added to
/// `sets` unless a rule's earlier port class added it; its name.
fn address_set(
    sets: &mut Vec<AddressSetRow>,
    external_ids: BTreeMap<String, String>,
    set_id: &str,
    family: &str,
    ips: &BTreeSet<IpAddr>,
) -> String {
    let name = format!("{OWN_GROUP_PREFIX}as_{}_{}", short_hash(set_id), if family == "ip4" { "v4" } else { "v6" });
    if !sets.iter().any(|s| s.name == name) {
        sets.push(AddressSetRow { name: name.clone(), addresses: ips.iter().map(IpAddr::to_string).collect(), external_ids });
    }
    name
}

/// The L3 parts (identity key, match) that admit `ips` (family `family`, as source or destination
/// per `side`): one Address_Set of identity `set_id`, or in [`Mode::Naive`] one match per address.
fn peer_matches(
    mode: Mode,
    sets: &mut Vec<AddressSetRow>,
    ids: &dyn Fn(String) -> BTreeMap<String, String>,
    set_id: &str,
    family: &str,
    side: &str,
    ips: &BTreeSet<IpAddr>,
) -> Vec<(String, String)> {
    match mode {
        Mode::AddressSets => {
            let name = address_set(sets, ids(set_id.to_string()), set_id, family, ips);
            vec![(format!("pods-{family}"), format!("{family}.{side} == ${name}"))]
        }
        Mode::Naive => ips.iter().map(|ip| (format!("pod-{ip}"), format!("{family}.{side} == {ip}"))).collect(),
    }
}

/// The peers of a rule: everyone, or the pods its selector peers name (`None` without selector
/// peers) and its IP blocks (with their index among the peers).
type Peers<'a> = (bool, Option<Vec<&'a PodView>>, Vec<(usize, &'a IpBlock)>);

/// One port entry class of a rule: the L4 part of a match.
enum L4 {
    /// No ports: every protocol.
    All,
    /// A protocol's numeric ports, a range, or the whole protocol: (identity key, match).
    Fixed(String, String),
    /// A named port: resolved per pod.
    Named(Protocol, String),
}

fn l4_classes(rule: &Rule) -> Vec<L4> {
    if rule.ports.is_empty() {
        return vec![L4::All];
    }
    let mut numbers: BTreeMap<Protocol, BTreeSet<i64>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut whole = BTreeSet::new();
    for p in rule.ports {
        let Some(proto) = Protocol::parse(p.protocol.as_deref()) else { continue };
        let f = proto.ovn();
        match (&p.port, p.end_port) {
            (None, _) => {
                if whole.insert(proto) {
                    out.push(L4::Fixed(format!("{f}:*"), f.to_string()));
                }
            }
            (Some(IntOrString::Int(n)), Some(end)) if end > *n => {
                out.push(L4::Fixed(format!("{f}:{n}-{end}"), format!("{f} && {n} <= {f}.dst <= {end}")))
            }
            (Some(IntOrString::Int(n)), _) => {
                numbers.entry(proto).or_default().insert(*n);
            }
            (Some(IntOrString::Str(name)), _) => out.push(L4::Named(proto, name.clone())),
        }
    }
    let mut classes = Vec::new();
    for (proto, ns) in numbers {
        let f = proto.ovn();
        let list: Vec<String> = ns.iter().map(i64::to_string).collect();
        let m =
            if list.len() == 1 { format!("{f} && {f}.dst == {}", list[0]) } else { format!("{f} && {f}.dst == {{{}}}", list.join(", ")) };
        classes.push(L4::Fixed(f.to_string(), m));
    }
    classes.extend(out);
    classes
}

/// Translates `spec` of `policy` for `switch` (the caller validated it: an invalid part is
/// skipped here, not reported).
pub fn translate(policy: PolicyRef, spec: &PolicySpec, switch: &str, world: &World, mode: Mode) -> PolicyRows {
    let key = policy.key();
    let pg = port_group_name(&key, switch);
    let mut base = BTreeMap::new();
    base.insert(names::OWNER.to_string(), names::OWNER_CONTROLLER.to_string());
    base.insert(names::POLICY.to_string(), key.clone());
    base.insert(names::POLICY_UID.to_string(), policy.uid.to_string());
    base.insert(names::LOGICAL_SWITCH.to_string(), switch.to_string());
    base.insert(names::POLICY_KIND.to_string(), "policy".to_string());
    let with_id = |id: String| {
        let mut e = base.clone();
        e.insert(names::ROW_ID.to_string(), id);
        e
    };

    let selected: Vec<&PodView> = world.selected(policy.namespace, &spec.pod_selector).collect();
    let ports: BTreeSet<String> = selected.iter().flat_map(|p| p.ports_on(switch).map(|x| x.lsp.clone())).collect();
    let mut acls = Vec::new();
    let mut sets = Vec::new();
    for dir in [Direction::Ingress, Direction::Egress] {
        if !spec.isolates(dir) {
            continue;
        }
        let (ovn_dir, port_field, ip_side) = match dir {
            Direction::Ingress => ("to-lport", "outport", "src"),
            Direction::Egress => ("from-lport", "inport", "dst"),
        };
        let own = format!("{port_field} == @{pg}");
        for (i, rule) in spec.rules(dir).iter().enumerate() {
            let rule_id = format!("{key}:{switch}:{}:{i}", dir.as_str());
            let mut acl = |l3_key: &str, l4_key: &str, m: String| {
                let id = format!("{rule_id}:{l3_key}:{l4_key}");
                acls.push(AclRow {
                    name: acl_name("mnp", &key),
                    direction: ovn_dir,
                    priority: ALLOW_PRIORITY,
                    matches: m,
                    action: "allow-related",
                    external_ids: with_id(id.clone()),
                    id,
                });
            };
            let join = |parts: &[&str]| parts.iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" && ");
            // Peers: everyone, or selector peers (their IPs on this switch) and IP blocks.
            let (any, peer_pods, blocks): Peers = match rule.peers {
                None => (true, None, Vec::new()),
                Some(peers) => {
                    let mut seen = BTreeSet::new();
                    let mut pods = Vec::new();
                    let mut has_selector = false;
                    for p in peers.iter().filter(|p| p.ip_block.is_none()) {
                        has_selector = true;
                        for pod in world.peer_pods(p, policy.namespace) {
                            if seen.insert((pod.namespace.as_str(), pod.name.as_str())) {
                                pods.push(pod);
                            }
                        }
                    }
                    let blocks = peers.iter().enumerate().filter_map(|(k, p)| p.ip_block.as_ref().map(|b| (k, b))).collect();
                    (false, has_selector.then_some(pods), blocks)
                }
            };
            let peer_ips = |pods: &[&PodView]| -> BTreeMap<&'static str, BTreeSet<IpAddr>> {
                let mut by_family: BTreeMap<&'static str, BTreeSet<IpAddr>> = BTreeMap::new();
                for pod in pods {
                    for ip in pod.ports_on(switch).flat_map(|p| p.ips.iter()) {
                        by_family.entry(family(ip)).or_default().insert(*ip);
                    }
                }
                by_family
            };
            // (identity key, L3 match) of every non-set peer class, and the selector peers' IPs.
            let mut l3_fixed: Vec<(String, String)> = Vec::new();
            if any {
                l3_fixed.push(("any".into(), String::new()));
            }
            for (k, b) in &blocks {
                let Ok(net) = b.cidr.parse::<ipnet::IpNet>() else { continue };
                let f = if matches!(net, ipnet::IpNet::V4(_)) { "ip4" } else { "ip6" };
                let mut m = format!("{f}.{ip_side} == {net}");
                let except: Vec<String> = b.except.iter().filter_map(|e| e.parse::<ipnet::IpNet>().ok()).map(|e| e.to_string()).collect();
                if !except.is_empty() {
                    m.push_str(&format!(" && {f}.{ip_side} != {{{}}}", except.join(", ")));
                }
                l3_fixed.push((format!("block{k}"), m));
            }
            let selector_ips = peer_pods.as_deref().map(peer_ips).unwrap_or_default();

            for l4 in l4_classes(rule) {
                match l4 {
                    L4::All | L4::Fixed(..) => {
                        let (l4_key, l4_match) = match &l4 {
                            L4::Fixed(k, m) => (k.as_str(), m.as_str()),
                            _ => ("all", ""),
                        };
                        for (l3_key, l3) in &l3_fixed {
                            acl(l3_key, l4_key, join(&[&own, l3, l4_match]));
                        }
                        for (f, ips) in &selector_ips {
                            let set_id = format!("{rule_id}:pods-{f}");
                            for (l3_key, l3) in peer_matches(mode, &mut sets, &with_id, &set_id, f, ip_side, ips) {
                                acl(&l3_key, l4_key, join(&[&own, &l3, l4_match]));
                            }
                        }
                    }
                    L4::Named(proto, port_name) => {
                        let f4 = proto.ovn();
                        let l4_key = format!("{f4}:name:{port_name}");
                        match dir {
                            // Resolved in each selected pod: one ACL per number, naming its ports.
                            Direction::Ingress => {
                                let mut by_number: BTreeMap<u16, BTreeSet<&str>> = BTreeMap::new();
                                for pod in &selected {
                                    if let Some(n) = pod.named_port(&port_name, proto) {
                                        by_number.entry(n).or_default().extend(pod.ports_on(switch).map(|p| p.lsp.as_str()));
                                    }
                                }
                                for (n, lsps) in by_number {
                                    let quoted: Vec<String> = lsps.iter().map(|l| format!("\"{l}\"")).collect();
                                    let target = format!("outport == {{{}}}", quoted.join(", "));
                                    let l4m = format!("{f4} && {f4}.dst == {n}");
                                    for (l3_key, l3) in &l3_fixed {
                                        acl(l3_key, &format!("{l4_key}:{n}"), join(&[&target, l3, &l4m]));
                                    }
                                    for (f, ips) in &selector_ips {
                                        let set_id = format!("{rule_id}:pods-{f}");
                                        for (l3_key, l3) in peer_matches(mode, &mut sets, &with_id, &set_id, f, "src", ips) {
                                            acl(&l3_key, &format!("{l4_key}:{n}"), join(&[&target, &l3, &l4m]));
                                        }
                                    }
                                }
                            }
                            // Resolved in each destination pod: one set per number.
                            Direction::Egress => {
                                let all_pods;
                                let dests: &[&PodView] = match &peer_pods {
                                    _ if any => {
                                        all_pods = world.pods().iter().filter(|p| p.ports_on(switch).next().is_some()).collect::<Vec<_>>();
                                        &all_pods
                                    }
                                    Some(p) => p,
                                    None => &[],
                                };
                                let mut by_number: BTreeMap<u16, Vec<&PodView>> = BTreeMap::new();
                                for pod in dests {
                                    if let Some(n) = pod.named_port(&port_name, proto) {
                                        by_number.entry(n).or_default().push(pod);
                                    }
                                }
                                for (n, pods) in by_number {
                                    for (f, ips) in peer_ips(&pods) {
                                        let l4m = format!("{f4} && {f4}.dst == {n}");
                                        let set_id = format!("{rule_id}:{l4_key}:{n}:pods-{f}");
                                        for (l3_key, l3) in peer_matches(mode, &mut sets, &with_id, &set_id, f, "dst", &ips) {
                                            acl(&l3_key, &format!("{l4_key}:{n}"), join(&[&own, &l3, &l4m]));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let isolated = |dir| if spec.isolates(dir) { ports.clone() } else { BTreeSet::new() };
    PolicyRows {
        isolated_ingress: isolated(Direction::Ingress),
        isolated_egress: isolated(Direction::Egress),
        port_group: PortGroupRow { name: pg, ports, acls, external_ids: with_id(format!("{key}:{switch}")) },
        address_sets: sets,
    }
}

/// The default-deny groups of `switch` (ingress, egress), holding `ingress` and `egress` (the
/// ports some policy isolates in that direction). Isolated ports still send and receive ARP, and
/// send DHCP requests (OVN answers them after the ACL stage; its replies pass on their own; IPv6
/// neighbour discovery always passes).
pub fn deny_rows(switch: &str, ingress: BTreeSet<String>, egress: BTreeSet<String>) -> [PortGroupRow; 2] {
    let (in_name, out_name) = deny_group_names(switch);
    let ids = |id: String| {
        let mut e = BTreeMap::new();
        e.insert(names::OWNER.to_string(), names::OWNER_CONTROLLER.to_string());
        e.insert(names::LOGICAL_SWITCH.to_string(), switch.to_string());
        e.insert(names::POLICY_KIND.to_string(), "deny".to_string());
        e.insert(names::ROW_ID.to_string(), id);
        e
    };
    let acl = |dir: &str, ovn_dir: &'static str, what: &str, priority: i64, m: String, action: &'static str| {
        let id = format!("deny:{switch}:{dir}:{what}");
        AclRow { name: acl_name("mnp-deny", switch), direction: ovn_dir, priority, matches: m, action, external_ids: ids(id.clone()), id }
    };
    let inp = format!("outport == @{in_name}");
    let outp = format!("inport == @{out_name}");
    [
        PortGroupRow {
            acls: vec![
                acl("ingress", "to-lport", "drop", DENY_PRIORITY, inp.clone(), "drop"),
                acl("ingress", "to-lport", "arp", ALLOW_PRIORITY, format!("{inp} && arp"), "allow"),
            ],
            external_ids: ids(format!("deny:{switch}:ingress")),
            name: in_name,
            ports: ingress,
        },
        PortGroupRow {
            acls: vec![
                acl("egress", "from-lport", "drop", DENY_PRIORITY, outp.clone(), "drop"),
                acl("egress", "from-lport", "arp", ALLOW_PRIORITY, format!("{outp} && arp"), "allow"),
                acl("egress", "from-lport", "dhcp", ALLOW_PRIORITY, format!("{outp} && udp && udp.src == 68 && udp.dst == 67"), "allow"),
                acl(
                    "egress",
                    "from-lport",
                    "dhcpv6",
                    ALLOW_PRIORITY,
                    format!("{outp} && udp && udp.src == 546 && udp.dst == 547"),
                    "allow",
                ),
            ],
            external_ids: ids(format!("deny:{switch}:egress")),
            name: out_name,
            ports: egress,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{ContainerPort, PortView};
    use serde_json::json;

    fn pod(ns: &str, name: &str, labels: &[(&str, &str)], ips: &[&str], http: Option<u16>) -> PodView {
        PodView {
            namespace: ns.into(),
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            container_ports: http.map(|n| ContainerPort { name: "http".into(), protocol: Protocol::Tcp, number: n }).into_iter().collect(),
            ports: vec![PortView {
                switch: "red".into(),
                lsp: format!("{ns}_{name}_net1"),
                ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            }],
        }
    }
    fn world(pods: Vec<PodView>) -> World {
        let ns = |n: &str, team: &str| (n.to_string(), [("team".to_string(), team.to_string())].into_iter().collect());
        World::new([ns("team-a", "a"), ns("team-b", "b")], pods)
    }
    fn pods() -> Vec<PodView> {
        vec![
            pod("team-a", "server", &[("app", "web")], &["10.0.0.10"], Some(8080)),
            pod("team-a", "server2", &[("app", "web")], &["10.0.0.20"], Some(8081)),
            pod("team-a", "client", &[("app", "client")], &["10.0.0.11"], None),
            pod("team-b", "other", &[("app", "client")], &["10.0.0.12", "fd00::12"], Some(9090)),
        ]
    }
    const P: PolicyRef = PolicyRef { namespace: "team-a", name: "web", uid: "u1" };
    fn spec(v: serde_json::Value) -> PolicySpec {
        let s: PolicySpec = serde_json::from_value(v).unwrap();
        assert!(crate::validate(&s).is_empty(), "{:?}", crate::validate(&s));
        s
    }
    fn matches(rows: &PolicyRows) -> Vec<String> {
        let sets: BTreeMap<&str, &str> = rows.address_sets.iter().map(|s| (s.name.as_str(), "")).collect();
        let pg = &rows.port_group.name;
        rows.port_group
            .acls
            .iter()
            .map(|a| {
                let mut m = a.matches.replace(pg.as_str(), "PG");
                for (i, name) in sets.keys().enumerate() {
                    m = m.replace(name, &format!("AS{i}"));
                }
                format!("{} {} {} {}", a.direction, a.priority, a.action, m)
            })
            .collect()
    }

    #[test]
    fn ingress_rules_become_sets_and_plain_conjunctions() {
        let s = spec(json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}, {"namespaceSelector": {"matchLabels": {"team": "b"}}},
                          {"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.12/32"]}}],
                 "ports": [{"port": 443}, {"port": 80}, {"protocol": "UDP", "port": 53}, {"port": 8000, "endPort": 8010}, {"port": "http"}]},
                {}
            ]
        }));
        let rows = translate(P, &s, "red", &world(pods()), Mode::AddressSets);
        assert_eq!(rows.port_group.ports, ["team-a_server2_net1", "team-a_server_net1"].map(String::from).into_iter().collect());
        assert_eq!(rows.isolated_ingress, rows.port_group.ports);
        assert!(rows.isolated_egress.is_empty());
        assert!(rows.port_group.name.starts_with("kt_mnp_") && rows.port_group.name.len() == 23);
        let sets: Vec<(&str, Vec<&str>)> =
            rows.address_sets.iter().map(|s| (&s.name[s.name.len() - 2..], s.addresses.iter().map(String::as_str).collect())).collect();
        assert_eq!(sets, [("v4", vec!["10.0.0.11", "10.0.0.12"]), ("v6", vec!["fd00::12"])]);
        let (v4, v6) = (&rows.address_sets[0].name, &rows.address_sets[1].name);
        let ms = matches(&rows);
        let (a4, a6) = if v4 < v6 { ("AS0", "AS1") } else { ("AS1", "AS0") };
        let want = [
            "to-lport 1001 allow-related outport == @PG && ip4.src == 10.0.0.0/24 && ip4.src != {10.0.0.12/32} && tcp && tcp.dst == {80, 443}".to_string(),
            format!("to-lport 1001 allow-related outport == @PG && ip4.src == ${a4} && tcp && tcp.dst == {{80, 443}}"),
            format!("to-lport 1001 allow-related outport == @PG && ip6.src == ${a6} && tcp && tcp.dst == {{80, 443}}"),
            "to-lport 1001 allow-related outport == @PG && ip4.src == 10.0.0.0/24 && ip4.src != {10.0.0.12/32} && udp && udp.dst == 53".to_string(),
            format!("to-lport 1001 allow-related outport == @PG && ip4.src == ${a4} && udp && udp.dst == 53"),
            format!("to-lport 1001 allow-related outport == @PG && ip6.src == ${a6} && udp && udp.dst == 53"),
            "to-lport 1001 allow-related outport == @PG && ip4.src == 10.0.0.0/24 && ip4.src != {10.0.0.12/32} && tcp && 8000 <= tcp.dst <= 8010".to_string(),
            format!("to-lport 1001 allow-related outport == @PG && ip4.src == ${a4} && tcp && 8000 <= tcp.dst <= 8010"),
            format!("to-lport 1001 allow-related outport == @PG && ip6.src == ${a6} && tcp && 8000 <= tcp.dst <= 8010"),
            // The named port, resolved in each selected pod: one ACL per number.
            "to-lport 1001 allow-related outport == {\"team-a_server_net1\"} && ip4.src == 10.0.0.0/24 && ip4.src != {10.0.0.12/32} && tcp && tcp.dst == 8080".to_string(),
            format!("to-lport 1001 allow-related outport == {{\"team-a_server_net1\"}} && ip4.src == ${a4} && tcp && tcp.dst == 8080"),
            format!("to-lport 1001 allow-related outport == {{\"team-a_server_net1\"}} && ip6.src == ${a6} && tcp && tcp.dst == 8080"),
            "to-lport 1001 allow-related outport == {\"team-a_server2_net1\"} && ip4.src == 10.0.0.0/24 && ip4.src != {10.0.0.12/32} && tcp && tcp.dst == 8081".to_string(),
            format!("to-lport 1001 allow-related outport == {{\"team-a_server2_net1\"}} && ip4.src == ${a4} && tcp && tcp.dst == 8081"),
            format!("to-lport 1001 allow-related outport == {{\"team-a_server2_net1\"}} && ip6.src == ${a6} && tcp && tcp.dst == 8081"),
            // The rule without peers or ports allows everything.
            "to-lport 1001 allow-related outport == @PG".to_string(),
        ];
        assert_eq!(ms, want);
        // Identities are unique and every row names the policy.
        let ids: BTreeSet<&str> = rows.port_group.acls.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids.len(), rows.port_group.acls.len());
        for a in &rows.port_group.acls {
            assert_eq!(a.external_ids[names::POLICY], "team-a/web");
            assert_eq!(a.external_ids[names::ROW_ID], a.id);
            assert!(a.name.len() <= 63);
        }
    }

    #[test]
    fn pod_churn_changes_set_contents_not_identities() {
        let s = spec(
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 80}]}]}),
        );
        let before = translate(P, &s, "red", &world(pods()), Mode::AddressSets);
        let mut fewer = pods();
        fewer.retain(|p| p.name != "server2");
        fewer.push(pod("team-a", "client2", &[("app", "client")], &["10.0.0.13"], None));
        let after = translate(P, &s, "red", &world(fewer), Mode::AddressSets);
        assert_eq!(before.port_group.name, after.port_group.name);
        let ids = |r: &PolicyRows| r.port_group.acls.iter().map(|a| (a.id.clone(), a.matches.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&before), ids(&after), "same ACLs, same matches");
        assert_eq!(before.address_sets[0].name, after.address_sets[0].name);
        assert_eq!(after.address_sets[0].addresses, ["10.0.0.11", "10.0.0.13"].map(String::from).into_iter().collect());
        assert!(!after.port_group.ports.contains("team-a_server2_net1"));
        // No peer left: no set and no ACL (an empty set is never referenced).
        let lonely =
            translate(P, &s, "red", &world(vec![pod("team-a", "server", &[("app", "web")], &["10.0.0.10"], None)]), Mode::AddressSets);
        assert!(lonely.address_sets.is_empty() && lonely.port_group.acls.is_empty());
        assert_eq!(lonely.isolated_ingress.len(), 1, "still isolated");
        // Another switch: nothing of red.
        let blue = translate(P, &s, "blue", &world(pods()), Mode::AddressSets);
        assert!(blue.port_group.ports.is_empty() && blue.address_sets.is_empty());
        assert_ne!(blue.port_group.name, before.port_group.name);
    }

    #[test]
    fn egress_named_ports_resolve_in_each_destination() {
        let s = spec(json!({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": "http"}]}, {"to": [{"ipBlock": {"cidr": "fd00::/64"}}]}]}));
        let rows = translate(P, &s, "red", &world(pods()), Mode::AddressSets);
        assert!(rows.isolated_ingress.is_empty());
        assert_eq!(rows.isolated_egress, ["team-a_client_net1".to_string()].into_iter().collect());
        let by_set: BTreeMap<String, Vec<String>> =
            rows.address_sets.iter().map(|s| (s.name.clone(), s.addresses.iter().cloned().collect())).collect();
        let ms: Vec<String> =
            rows.port_group.acls.iter().map(|a| format!("{} {}", a.direction, a.matches.replace(&rows.port_group.name, "PG"))).collect();
        let set_of = |n: u16| {
            let acl =
                rows.port_group.acls.iter().find(|a| a.matches.ends_with(&format!("tcp.dst == {n}")) && a.matches.contains("ip4")).unwrap();
            let name = acl.matches.split('$').nth(1).unwrap().split(' ').next().unwrap();
            by_set[name].clone()
        };
        assert_eq!(set_of(8080), ["10.0.0.10"]);
        assert_eq!(set_of(8081), ["10.0.0.20"]);
        assert_eq!(set_of(9090), ["10.0.0.12"]);
        assert!(ms.contains(&"from-lport inport == @PG && ip6.dst == fd00::/64".to_string()), "{ms:?}");
        assert_eq!(ms.len(), 5, "{ms:?}");
    }

    #[test]
    fn naive_mode_writes_one_acl_per_peer_address() {
        let s = spec(
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 80}, {"protocol": "UDP"}]}]}),
        );
        let smart = translate(P, &s, "red", &world(pods()), Mode::AddressSets);
        let naive = translate(P, &s, "red", &world(pods()), Mode::Naive);
        assert!(naive.address_sets.is_empty());
        assert_eq!((smart.port_group.acls.len(), naive.port_group.acls.len()), (4, 10), "2 families x 2 vs 5 addresses x 2");
        assert!(naive.port_group.acls.iter().any(|a| a.matches.ends_with("ip4.src == 10.0.0.20 && udp")));
    }

    #[test]
    fn deny_groups_drop_everything_but_arp_and_dhcp_requests() {
        let [inp, out] = deny_rows("red", ["a".to_string()].into(), BTreeSet::new());
        assert_eq!((inp.name.clone(), out.name.clone()), deny_group_names("red"));
        assert_eq!(inp.ports.len(), 1);
        let m: Vec<String> = inp
            .acls
            .iter()
            .chain(&out.acls)
            .map(|a| format!("{} {} {}", a.priority, a.action, a.matches.replace(&inp.name, "IN").replace(&out.name, "OUT")))
            .collect();
        assert_eq!(
            m,
            [
                "1000 drop outport == @IN",
                "1001 allow outport == @IN && arp",
                "1000 drop inport == @OUT",
                "1001 allow inport == @OUT && arp",
                "1001 allow inport == @OUT && udp && udp.src == 68 && udp.dst == 67",
                "1001 allow inport == @OUT && udp && udp.src == 546 && udp.dst == 547",
            ]
        );
        assert_ne!(deny_group_names("red"), deny_group_names("blue"));
    }
}
