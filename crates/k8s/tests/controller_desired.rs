//! The pure desired-state computation: pods + NADs + switches -> ports, and its errors.

mod controller_support;

use std::collections::HashMap;

use controller_support::{finished, nads, pod};
use ipnet::Ipv4Net;
use k8s::controller::nb::{SwitchInfo, SwitchLookup};
use k8s::controller::{desired, Addressing, PodError};
use k8s::nad::new_nad;
use ovsdb::datum::Uuid;

struct Switches(HashMap<String, Vec<SwitchInfo>>, HashMap<String, Uuid>);

impl SwitchLookup for Switches {
    fn switches(&self, name: &str) -> Vec<SwitchInfo> {
        self.0.get(name).cloned().unwrap_or_default()
    }
    fn dhcpv4(&self, subnet: &Ipv4Net) -> Option<Uuid> {
        self.1.get(&subnet.to_string()).copied()
    }
}

fn switches() -> Switches {
    let sw = |n: &str, s: Option<&str>, id: u128| SwitchInfo {
        uuid: Uuid::from_u128(id),
        name: n.into(),
        subnet: s.map(|s| s.parse().unwrap()),
    };
    let mut m = HashMap::new();
    m.insert("blue".to_string(), vec![sw("blue", Some("10.10.0.0/24"), 1)]);
    m.insert("red".to_string(), vec![sw("red", Some("10.20.0.0/24"), 2)]);
    m.insert("flat".to_string(), vec![sw("flat", None, 3)]);
    let mut d = HashMap::new();
    d.insert("10.10.0.0/24".to_string(), Uuid::from_u128(99));
    Switches(m, d)
}

#[test]
fn ports_follow_the_annotation() {
    let p = pod(
        "ns1",
        "web",
        "u1",
        r#"[{"name":"blue"},{"name":"red","interface":"red0"},{"name":"flat","mac":"02:00:00:00:00:07"},{"name":"macvlan"}]"#,
    );
    let d = desired(&p, &nads(), &switches()).unwrap();
    assert_eq!(d.len(), 3, "macvlan NAD belongs to another plugin and is skipped");
    assert_eq!(d[0].name, "ns1_web_net1");
    assert_eq!(d[0].addressing, Addressing::Dynamic { mac: None });
    assert_eq!(d[0].dhcpv4_options, Some(Uuid::from_u128(99)));
    assert_eq!(d[0].switch, Uuid::from_u128(1));
    assert_eq!(d[1].name, "ns1_web_red0");
    assert_eq!(d[1].dhcpv4_options, None, "red has no DHCP_Options row");
    assert_eq!(d[2].addresses(), vec!["02:00:00:00:00:07"], "no subnet: MAC only");
    assert_eq!(d[0].external_ids["kubetron.io/owner"], "controller");
    assert_eq!(d[0].external_ids["kubetron.io/pod-uid"], "u1");
    assert_eq!(d[1].external_ids["kubetron.io/network"], "ns1/red");
    assert_eq!(d[1].external_ids["kubetron.io/interface"], "red0");
}

#[test]
fn static_addresses_and_macs() {
    let p = pod(
        "ns1",
        "s",
        "u1",
        r#"[{"name":"blue","ips":["10.10.0.5/24"]},{"name":"blue","ips":["10.10.0.6"],"mac":"02:00:00:00:00:01"},{"name":"blue","mac":"02:00:00:00:00:02"},{"name":"blue","ips":["fd00::5"],"mac":"02:00:00:00:00:03"}]"#,
    );
    let d = desired(&p, &nads(), &switches()).unwrap();
    assert_eq!(d[0].addresses(), vec!["0a:58:0a:0a:00:05 10.10.0.5"]);
    assert_eq!(d[0].prefixes.values().copied().collect::<Vec<_>>(), vec![24]);
    assert_eq!(d[1].addresses(), vec!["02:00:00:00:00:01 10.10.0.6"]);
    assert_eq!(d[2].addresses(), vec!["02:00:00:00:00:02 dynamic"]);
    assert_eq!(d[3].addresses(), vec!["02:00:00:00:00:03 fd00::5"], "IPv6 is not checked against the IPv4 subnet");
}

#[test]
fn flat_network_without_mac_gets_a_stable_generated_one() {
    let p = pod("ns1", "f", "u1", "flat");
    let a = desired(&p, &nads(), &switches()).unwrap();
    let b = desired(&p, &nads(), &switches()).unwrap();
    assert_eq!(a[0].addresses(), b[0].addresses());
    assert_eq!(a[0].addresses(), vec![model::addressing::mac_for_name("ns1_f_net1")]);
}

#[test]
fn inactive_pods_want_nothing() {
    let p = pod("ns1", "a", "u1", "blue");
    assert!(desired(&finished(p.clone()), &nads(), &switches()).unwrap().is_empty());
    let mut unscheduled = p.clone();
    unscheduled.spec.as_mut().unwrap().node_name = None;
    assert!(desired(&unscheduled, &nads(), &switches()).unwrap().is_empty());
    let mut failed = p;
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    assert!(desired(&failed, &nads(), &switches()).unwrap().is_empty());
}

#[test]
fn errors_are_typed_with_reasons() {
    let cases: &[(&str, &str, &str)] = &[
        ("nothere", "NetworkNotFound", "ns1/nothere"),
        ("ghost", "LogicalSwitchNotFound", "\"nope\""),
        (r#"[{"name":"blue","ips":["10.99.0.5"]}]"#, "InvalidStaticAddress", "10.10.0.0/24"),
        (r#"[{"name":"blue","ips":["10.10.0.0"]}]"#, "InvalidStaticAddress", "10.10.0.0"),
        (r#"[{"name":"blue","ips":["fd00::1"]}]"#, "InvalidStaticAddress", "mac"),
        (r#"[{"name":"red","ips":["10.20.0.5"]}]"#, "NetworkNotAllowed", "static IPs"),
        ("other/blue", "NetworkNotFound", "other/blue"),
        ("Bad_Name", "InvalidNetworkAnnotation", "Bad_Name"),
    ];
    for (ann, reason, needle) in cases {
        let e = desired(&pod("ns1", "a", "u1", ann), &nads(), &switches()).unwrap_err();
        assert_eq!(e.reason(), *reason, "{ann}: {e}");
        assert!(e.to_string().contains(needle), "{ann}: {e}");
        assert!(!e.is_transient());
    }
}

#[test]
fn cross_namespace_use_needs_sharing() {
    let mut n = nads();
    n.insert(new_nad("shared", "net", r#"{"type":"kubetron","logical_switch":"blue"}"#, &[("kubetron.io/allowed-namespaces", "ns1")]));
    n.insert(new_nad("private", "net", r#"{"type":"kubetron","logical_switch":"blue"}"#, &[]));
    assert_eq!(desired(&pod("ns1", "a", "u1", "shared/net"), &n, &switches()).unwrap().len(), 1);
    let e = desired(&pod("ns1", "a", "u1", "private/net"), &n, &switches()).unwrap_err();
    assert!(matches!(e, PodError::Refused(_)), "{e}");
    assert!(e.to_string().contains("not shared"), "{e}");
    let e = desired(&pod("ns2", "a", "u1", "shared/net"), &n, &switches()).unwrap_err();
    assert_eq!(e.reason(), "NetworkNotAllowed");
}

#[test]
fn ambiguous_switch_is_an_error() {
    let mut s = switches();
    let dup = s.0["blue"][0].clone();
    s.0.get_mut("blue").unwrap().push(SwitchInfo { uuid: Uuid::from_u128(7), ..dup });
    let e = desired(&pod("ns1", "a", "u1", "blue"), &nads(), &s).unwrap_err();
    assert!(e.to_string().contains("2 logical switches"), "{e}");
}
