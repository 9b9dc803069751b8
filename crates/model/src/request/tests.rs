use super::*;
use proptest::prelude::*;

fn sel(ns: &str, name: &str, iface: &str) -> (String, String, String) {
    (ns.to_string(), name.to_string(), iface.to_string())
}

fn triples(v: &[NetworkSelection]) -> Vec<(String, String, String)> {
    v.iter().map(|s| (s.namespace.clone(), s.name.clone(), s.interface.clone())).collect()
}

fn problem(value: &str) -> (usize, RequestProblem) {
    match parse(value, "pod-ns") {
        Err(AnnotationError::Request { index, problem, .. }) => (index, problem),
        other => panic!("expected a request error for {value:?}, got {other:?}"),
    }
}

#[test]
fn text_all_forms() {
    let got = parse("blue, other/red@data0,green@eth1 , ns2/yellow", "pod-ns").unwrap();
    assert_eq!(
        triples(&got),
        vec![sel("pod-ns", "blue", "net1"), sel("other", "red", "data0"), sel("pod-ns", "green", "eth1"), sel("ns2", "yellow", "net2"),]
    );
    assert!(!got[0].interface_requested);
    assert!(got[1].interface_requested);
    assert_eq!(got[1].network().to_string(), "other/red");
}

#[test]
fn empty_means_nothing() {
    assert_eq!(parse("", "a").unwrap(), vec![]);
    assert_eq!(parse("  \n", "a").unwrap(), vec![]);
    assert_eq!(parse("[]", "a").unwrap(), vec![]);
}

#[test]
fn generated_names_skip_explicit_ones() {
    let got = parse("a, b@net1, c, d@net3, e", "ns").unwrap();
    let ifaces: Vec<_> = got.iter().map(|s| s.interface.as_str()).collect();
    assert_eq!(ifaces, vec!["net2", "net1", "net4", "net3", "net5"]);
}

#[test]
fn same_network_twice_gets_two_interfaces() {
    let got = parse("a,a", "ns").unwrap();
    assert_eq!(triples(&got), vec![sel("ns", "a", "net1"), sel("ns", "a", "net2")]);
}

#[test]
fn json_full_form() {
    let v = r#"[
      {"name":"blue","namespace":"other","interface":"data0","ips":["10.1.1.5/24","fd00::5"],
       "mac":"c2:11:22:33:44:55","default-route":["10.1.1.1"],"cni-args":{"foo":"bar"},
       "infiniband-guid":"c2:11:22:33:44:55:66:77","portMappings":[{"hostPort":8080,"containerPort":80}]},
      {"name":"red"}
    ]"#;
    let got = parse(v, "pod-ns").unwrap();
    assert_eq!(triples(&got), vec![sel("other", "blue", "data0"), sel("pod-ns", "red", "net1")]);
    let b = &got[0];
    assert_eq!(b.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(), vec!["10.1.1.5/24", "fd00::5"]);
    assert_eq!(b.mac.unwrap().to_string(), "c2:11:22:33:44:55");
    assert_eq!(b.default_route, Some(vec!["10.1.1.1".parse::<std::net::IpAddr>().unwrap()]));
    assert_eq!(b.cni_args.as_ref().unwrap()["foo"], "bar");
    assert_eq!(b.infiniband_guid.as_deref(), Some("c2:11:22:33:44:55:66:77"));
    assert_eq!(b.port_mappings.len(), 1);
    assert_eq!(b.port_mappings[0]["hostPort"], 8080);
    assert!(b.extra.is_empty(), "{:?}", b.extra);
    assert_eq!(b.requested_capabilities(), vec!["ips", "mac", "infinibandGUID", "portMappings"]);
    assert_eq!(got[1].default_route, None);
    assert!(got[1].requested_capabilities().is_empty());
}

#[test]
fn unknown_keys_are_kept() {
    let got = parse(r#"[{"name":"a","org.example.color":"blue","future":[1]}]"#, "ns").unwrap();
    assert_eq!(got[0].extra.len(), 2);
    assert_eq!(got[0].extra["org.example.color"], "blue");
}

#[test]
fn names_are_object_names_with_dots() {
    // NAD names are Kubernetes object names: DNS-1123 subdomains, dots allowed (the NAD sync makes such names).
    let got = parse("red.net, team-a/blue.v2@data0", "ns").unwrap();
    assert_eq!(triples(&got), vec![sel("ns", "red.net", "net1"), sel("team-a", "blue.v2", "data0")]);
    let got = parse(r#"[{"name":"red.net","namespace":"team-a"}]"#, "ns").unwrap();
    assert_eq!(got[0].name, "red.net");
    let long = format!("{}.{}", "a".repeat(200), "b".repeat(52));
    assert_eq!(parse(&long, "ns").unwrap()[0].name.len(), 253);
    assert!(matches!(problem(&format!("{long}c")), (1, RequestProblem::Name { why: NameError::TooLong { len: 254, max: 253 }, .. })));
    assert!(matches!(problem("red..net"), (1, RequestProblem::Name { why: NameError::BadPart(_), .. })));
    assert!(matches!(problem("red.-net"), (1, RequestProblem::Name { why: NameError::BadPart(_), .. })));
    assert!(matches!(problem("Red.net"), (1, RequestProblem::Name { why: NameError::BadChar('R'), .. })));
    // Namespaces stay DNS-1123 labels: no dots.
    assert!(matches!(problem("team.a/red"), (1, RequestProblem::Namespace { why: NameError::BadChar('.'), .. })));
    assert!(matches!(problem(r#"[{"name":"red","namespace":"a.b"}]"#), (1, RequestProblem::Namespace { .. })));
    let msg = parse("Red.net", "ns").unwrap_err().to_string();
    assert!(msg.contains("DNS-1123 subdomains") && msg.contains("253"), "{msg}");
}

#[test]
fn interface_names_follow_the_kernel() {
    // JSON form: any name the kernel takes (and kubetron can honour).
    let got = parse(r#"[{"name":"a","interface":"a@b"},{"name":"b","interface":"x,y"}]"#, "ns").unwrap();
    assert_eq!(got[0].interface, "a@b");
    assert_eq!(got[1].interface, "x,y");
    for bad in ["a:b", "a/b", "a b", r"a\tb", r"a\u0001b", "eth%d", "lo", "eth0", ".", "..", "abcdefghijklmnop"] {
        let v = format!(r#"[{{"name":"a","interface":"{bad}"}}]"#);
        assert!(matches!(problem(&v), (1, RequestProblem::Interface { .. })), "{bad}");
    }
}

#[test]
fn default_route_on_one_element_only() {
    // An empty list is valid: the default route through this attachment, via the network's gateway.
    let got = parse(r#"[{"name":"a","default-route":[]},{"name":"b"}]"#, "ns").unwrap();
    assert_eq!(got[0].default_route, Some(vec![]));
    assert_eq!(got[1].default_route, None);
    // Both families on one element are fine.
    let got = parse(r#"[{"name":"a","default-route":["10.0.0.1","fd00::1"]}]"#, "ns").unwrap();
    assert_eq!(got[0].default_route.as_ref().unwrap().len(), 2);
    // On two elements: the whole annotation is invalid, whichever family each names.
    for v in [
        r#"[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["10.1.0.1"]}]"#,
        r#"[{"name":"a","default-route":["10.0.0.1"]},{"name":"b"},{"name":"c","default-route":["fd00::1"]}]"#,
        r#"[{"name":"a","default-route":[]},{"name":"b","default-route":[]}]"#,
    ] {
        let e = parse(v, "ns").unwrap_err();
        assert!(matches!(e, AnnotationError::SeveralDefaultRoutes { first: 1, .. }), "{v}: {e:?}");
        assert!(e.to_string().contains("default-route"), "{e}");
    }
    assert_eq!(
        parse(r#"[{"name":"a"},{"name":"b","default-route":[]},{"name":"c","default-route":[]}]"#, "ns"),
        Err(AnnotationError::SeveralDefaultRoutes { first: 2, second: 3 })
    );
    // null counts as absent.
    assert_eq!(
        parse(r#"[{"name":"a","default-route":null},{"name":"b","default-route":[]}]"#, "ns").unwrap()[1].default_route,
        Some(vec![])
    );
    assert!(matches!(
        problem(r#"[{"name":"a","default-route":"10.0.0.1"}]"#),
        (1, RequestProblem::WrongType { field: "default-route", .. })
    ));
}

#[test]
fn ips_when_present_list_at_least_one_address() {
    assert_eq!(problem(r#"[{"name":"a","ips":[]}]"#), (1, RequestProblem::EmptyIps));
    assert_eq!(problem(r#"[{"name":"a"},{"name":"b","ips":[]}]"#), (2, RequestProblem::EmptyIps));
    assert!(parse(r#"[{"name":"a","ips":null}]"#, "ns").unwrap()[0].ips.is_empty(), "null is absent");
    let msg = parse(r#"[{"name":"a","ips":[]}]"#, "ns").unwrap_err().to_string();
    assert!(msg.contains("at least one"), "{msg}");
}

#[test]
fn ipam_claim_reference() {
    let got = parse(r#"[{"name":"a","ipam-claim-reference":"vm1.net1"}]"#, "ns").unwrap();
    assert_eq!(got[0].ipam_claim_reference.as_deref(), Some("vm1.net1"));
    assert!(got[0].requested_capabilities().is_empty(), "not a CNI capability");
    assert_eq!(problem(r#"[{"name":"a","ips":["10.0.0.5"],"ipam-claim-reference":"c"}]"#), (1, RequestProblem::IpsWithClaim));
    assert!(matches!(problem(r#"[{"name":"a","ipam-claim-reference":"Bad"}]"#), (1, RequestProblem::IpamClaim { .. })));
    assert_eq!(
        problem(r#"[{"name":"a","ipam-claim-reference":5}]"#),
        (1, RequestProblem::WrongType { field: "ipam-claim-reference", expected: "a string" })
    );
    // With a MAC it is fine.
    assert!(parse(r#"[{"name":"a","mac":"02:00:00:00:00:01","ipam-claim-reference":"c"}]"#, "ns").is_ok());
}

#[test]
fn mac_is_ethernet_or_ipoib() {
    let ib = "80:00:00:48:fe:80:00:00:00:00:00:00:02:c9:03:00:00:0f:f0:11";
    let got = parse(&format!(r#"[{{"name":"a","mac":"{ib}"}}]"#), "ns").unwrap();
    assert_eq!(got[0].mac, None);
    assert_eq!(got[0].ipoib_mac.as_deref(), Some(ib));
    assert_eq!(got[0].requested_capabilities(), vec!["mac"]);
    let got = parse(r#"[{"name":"a","mac":"02:00:00:00:00:01"}]"#, "ns").unwrap();
    assert!(got[0].mac.is_some() && got[0].ipoib_mac.is_none());
    assert!(matches!(
        problem(r#"[{"name":"a","mac":"80:00:00:48:fe:80:00:00:00:00:00:00:02:c9:03:00:00:0f:f0"}]"#),
        (1, RequestProblem::Mac(_))
    ));
}

#[test]
fn capability_keys_are_checked_for_shape() {
    let got = parse(r#"[{"name":"a","portMappings":[],"bandwidth":{}}]"#, "ns").unwrap();
    assert!(got[0].requested_capabilities().is_empty(), "empty requests ask for nothing");
    let got = parse(r#"[{"name":"a","bandwidth":{"ingressRate":1000,"ingressBurst":100}}]"#, "ns").unwrap();
    assert_eq!(got[0].requested_capabilities(), vec!["bandwidth"]);
    assert_eq!(
        problem(r#"[{"name":"a","portMappings":{"hostPort":1}}]"#),
        (1, RequestProblem::WrongType { field: "portMappings", expected: "an array of objects" })
    );
    assert_eq!(
        problem(r#"[{"name":"a","portMappings":[1]}]"#),
        (1, RequestProblem::WrongType { field: "portMappings", expected: "an array of objects" })
    );
    assert_eq!(problem(r#"[{"name":"a","bandwidth":5}]"#), (1, RequestProblem::WrongType { field: "bandwidth", expected: "an object" }));
    assert!(matches!(problem(r#"[{"name":"a","infiniband-guid":"zz"}]"#), (1, RequestProblem::InfinibandGuid(_))));
    assert!(matches!(problem(r#"[{"name":"a","infiniband-guid":"c2:11:22:33:44:55"}]"#), (1, RequestProblem::InfinibandGuid(_))));
}

#[test]
fn json_nulls_and_empty_strings_are_absent() {
    let got = parse(r#"[{"name":"a","namespace":"","interface":null,"ips":null,"mac":null}]"#, "ns").unwrap();
    assert_eq!(triples(&got), vec![sel("ns", "a", "net1")]);
}

#[test]
fn selection_serde_round_trip() {
    let got = parse(
        r#"[{"name":"a","ips":["10.0.0.1/8"],"mac":"02:00:00:00:00:01","x":1,"default-route":[],"portMappings":[{"hostPort":1}],"bandwidth":{"egressRate":1},"infiniband-guid":"00:11:22:33:44:55:66:77"},{"name":"b","ipam-claim-reference":"c"}]"#,
        "ns",
    )
    .unwrap();
    let s = serde_json::to_string(&got).unwrap();
    let back: Vec<NetworkSelection> = serde_json::from_str(&s).unwrap();
    assert_eq!(back, got);
}

#[test]
fn text_errors() {
    assert_eq!(problem("a,,b"), (2, RequestProblem::Empty));
    assert_eq!(problem("a,"), (2, RequestProblem::Empty));
    assert_eq!(problem("a/b/c"), (1, RequestProblem::Repeated('/')));
    assert_eq!(problem("a@b@c"), (1, RequestProblem::Repeated('@')));
    assert!(matches!(problem("ok, Bad"), (2, RequestProblem::Name { why: NameError::BadChar('B'), .. })));
    assert!(matches!(problem("/a"), (1, RequestProblem::Namespace { why: NameError::Empty, .. })));
    assert!(matches!(problem("x_y/a"), (1, RequestProblem::Namespace { why: NameError::BadChar('_'), .. })));
    assert!(matches!(problem("a@"), (1, RequestProblem::Interface { why: NameError::Empty, .. })));
    assert!(matches!(problem("a@abcdefghijklmnop"), (1, RequestProblem::Interface { why: NameError::TooLong { .. }, .. })));
    assert!(matches!(problem("a@eth0"), (1, RequestProblem::Interface { why: NameError::Reserved, .. })));
    assert!(matches!(problem("a@x y"), (1, RequestProblem::Interface { why: NameError::BadChar(' '), .. })));
    assert!(matches!(problem("-a"), (1, RequestProblem::Name { why: NameError::BadPart(_), .. })));
}

#[test]
fn json_errors() {
    assert!(matches!(parse("[{", "ns"), Err(AnnotationError::Json(_))));
    assert_eq!(parse(r#"{"name":"a"}"#, "ns"), Err(AnnotationError::NotArray("an object")));
    assert_eq!(problem(r#"[{"name":"a"}, "b"]"#), (2, RequestProblem::NotObject));
    assert_eq!(problem(r#"[{"namespace":"a"}]"#), (1, RequestProblem::MissingName));
    assert_eq!(problem(r#"[{"name":5}]"#), (1, RequestProblem::WrongType { field: "name", expected: "a string" }));
    assert_eq!(
        problem(r#"[{"name":"a","ips":"10.0.0.1"}]"#),
        (1, RequestProblem::WrongType { field: "ips", expected: "an array of strings" })
    );
    assert_eq!(problem(r#"[{"name":"a","ips":[1]}]"#), (1, RequestProblem::WrongType { field: "ips", expected: "an array of strings" }));
    assert!(matches!(problem(r#"[{"name":"a","ips":["10.0.0.300"]}]"#), (1, RequestProblem::Ip(IpError::Addr(_)))));
    assert!(matches!(problem(r#"[{"name":"a","ips":["10.0.0.3/40"]}]"#), (1, RequestProblem::Ip(IpError::Prefix(_)))));
    assert!(matches!(problem(r#"[{"name":"a","mac":"c2:11"}]"#), (1, RequestProblem::Mac(MacError::Syntax(_)))));
    assert!(matches!(problem(r#"[{"name":"a","mac":"01:11:22:33:44:55"}]"#), (1, RequestProblem::Mac(MacError::Multicast(_)))));
    assert_eq!(problem(r#"[{"name":"a","default-route":["gw"]}]"#), (1, RequestProblem::DefaultRoute("gw".into())));
    assert_eq!(problem(r#"[{"name":"a","cni-args":[]}]"#), (1, RequestProblem::WrongType { field: "cni-args", expected: "an object" }));
    assert!(matches!(problem(r#"[{"name":"a","interface":"a/b"}]"#), (1, RequestProblem::Interface { .. })));
    assert!(matches!(problem(r#"[{"name":"a","namespace":"A"}]"#), (1, RequestProblem::Namespace { .. })));
}

#[test]
fn duplicate_interfaces() {
    assert_eq!(
        parse("a@data, b, c@data", "ns"),
        Err(AnnotationError::DuplicateInterface { first: 1, second: 3, interface: "data".into() })
    );
    assert!(matches!(
        parse(r#"[{"name":"a","interface":"x"},{"name":"b","interface":"x"}]"#, "ns"),
        Err(AnnotationError::DuplicateInterface { first: 1, second: 2, .. })
    ));
}

#[test]
fn messages_name_the_element() {
    let msg = parse("good, other/Bad@x", "ns").unwrap_err().to_string();
    assert!(msg.contains("#2"), "{msg}");
    assert!(msg.contains("other/Bad@x"), "{msg}");
    assert!(msg.contains("\"Bad\""), "{msg}");
    assert!(msg.contains("DNS-1123"), "{msg}");
    let msg = parse(r#"[{"name":"a","mac":"zz"}]"#, "ns").unwrap_err().to_string();
    assert!(msg.contains("#1") && msg.contains("\"zz\"") && msg.contains("MAC"), "{msg}");
    let long = "B".repeat(300);
    let msg = parse(&long, "ns").unwrap_err().to_string();
    assert!(msg.len() < 600, "message is shortened: {}", msg.len());
}

#[test]
fn non_array_json_kinds() {
    // A bare number does not start like JSON: it is a text-form name.
    assert_eq!(triples(&parse("5", "ns").unwrap()), vec![sel("ns", "5", "net1")]);
    assert!(matches!(parse("[1,2]", "ns"), Err(AnnotationError::Request { index: 1, problem: RequestProblem::NotObject, .. })));
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn ifname() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,15}".prop_filter("valid", |s| check_request_ifname(s).is_ok())
}

fn request() -> impl Strategy<Value = (Option<String>, String, Option<String>)> {
    (proptest::option::of(label()), label(), proptest::option::of(ifname()))
}

proptest! {
    #[test]
    fn never_panics(s in ".{0,200}") {
        let _ = parse(&s, "ns");
    }

    #[test]
    fn never_panics_jsonish(s in r#"[\[\]{}",:@/a-z0-9 ]{0,80}"#) {
        let _ = parse(&s, "ns");
    }

    #[test]
    fn text_and_json_agree(reqs in proptest::collection::vec(request(), 1..6)) {
        // Drop requests that repeat an interface so that the list is valid.
        let mut seen = std::collections::BTreeSet::new();
        let reqs: Vec<_> = reqs.into_iter().filter(|(_, _, i)| i.as_ref().is_none_or(|i| seen.insert(i.clone()))).collect();
        let text = reqs.iter().map(|(ns, n, i)| {
            let mut s = String::new();
            if let Some(ns) = ns { s.push_str(ns); s.push('/'); }
            s.push_str(n);
            if let Some(i) = i { s.push('@'); s.push_str(i); }
            s
        }).collect::<Vec<_>>().join(", ");
        let json = serde_json::Value::Array(reqs.iter().map(|(ns, n, i)| {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), n.clone().into());
            if let Some(ns) = ns { m.insert("namespace".into(), ns.clone().into()); }
            if let Some(i) = i { m.insert("interface".into(), i.clone().into()); }
            serde_json::Value::Object(m)
        }).collect()).to_string();
        let a = parse(&text, "pod-ns").unwrap();
        let b = parse(&json, "pod-ns").unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.len(), reqs.len());
        let ifaces: std::collections::BTreeSet<_> = a.iter().map(|s| s.interface.clone()).collect();
        prop_assert_eq!(ifaces.len(), a.len(), "interface names are unique");
        for (s, (ns, n, i)) in a.iter().zip(&reqs) {
            prop_assert_eq!(&s.name, n);
            prop_assert_eq!(&s.namespace, ns.as_ref().map_or("pod-ns", |v| v.as_str()));
            if let Some(i) = i { prop_assert_eq!(&s.interface, i); }
        }
    }
}

#[test]
fn from_a_pods_annotations() {
    assert_eq!(from_annotations(None, None).unwrap(), vec![]);
    let a: BTreeMap<String, String> = [(NETWORKS_ANNOTATION.to_string(), "blue@x".to_string())].into();
    assert_eq!(triples(&from_annotations(Some("team"), Some(&a)).unwrap()), vec![sel("team", "blue", "x")]);
    assert_eq!(triples(&from_annotations(Some(""), Some(&a)).unwrap()), vec![sel("default", "blue", "x")]);
    let a: BTreeMap<String, String> = [(NETWORKS_ANNOTATION.to_string(), "a@x,b@x".to_string())].into();
    assert!(matches!(from_annotations(Some("team"), Some(&a)), Err(AnnotationError::DuplicateInterface { .. })));
}

#[test]
fn security_profile_key() {
    let got = parse(r#"[{"name":"a","kubetron.io/security-profile":"web_tier.v2"},{"name":"b"}]"#, "ns").unwrap();
    assert_eq!(got[0].security_profile.as_deref(), Some("web_tier.v2"));
    assert!(got[0].extra.is_empty(), "the key is typed, not extra");
    assert_eq!(got[1].security_profile, None, "absent: none");
    for bad in ["9web", "web-tier", "kt_mnp_0123", "a b"] {
        let value = format!(r#"[{{"name":"a","kubetron.io/security-profile":"{bad}"}}]"#);
        assert_eq!(problem(&value), (1, RequestProblem::SecurityProfile(bad.to_string())), "{bad}");
    }
    let value = r#"[{"name":"a","kubetron.io/security-profile":7}]"#;
    assert!(matches!(problem(value), (1, RequestProblem::WrongType { .. })));
}
