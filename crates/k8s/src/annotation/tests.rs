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
    assert_eq!(b.default_route, vec!["10.1.1.1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(b.cni_args.as_ref().unwrap()["foo"], "bar");
    assert!(b.extra.contains_key("infiniband-guid"));
    assert!(b.extra.contains_key("portMappings"));
    assert_eq!(b.extra.len(), 2);
}

#[test]
fn json_nulls_and_empty_strings_are_absent() {
    let got = parse(r#"[{"name":"a","namespace":"","interface":null,"ips":null,"mac":null}]"#, "ns").unwrap();
    assert_eq!(triples(&got), vec![sel("ns", "a", "net1")]);
}

#[test]
fn selection_serde_round_trip() {
    let got = parse(r#"[{"name":"a","ips":["10.0.0.1/8"],"mac":"02:00:00:00:00:01","x":1}]"#, "ns").unwrap();
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
    assert!(matches!(problem("-a"), (1, RequestProblem::Name { why: NameError::BadEdge, .. })));
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
    "[a-zA-Z0-9_.-]{1,15}".prop_filter("valid", |s| check_ifname(s).is_ok())
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
fn from_a_pod() {
    let mut pod = k8s_openapi::api::core::v1::Pod::default();
    assert_eq!(from_pod(&pod).unwrap(), vec![]);
    pod.metadata.namespace = Some("team".into());
    pod.metadata.annotations = Some([(NETWORKS_ANNOTATION.to_string(), "blue@x".to_string())].into());
    assert_eq!(triples(&from_pod(&pod).unwrap()), vec![sel("team", "blue", "x")]);
    pod.metadata.annotations = Some([(NETWORKS_ANNOTATION.to_string(), "a@x,b@x".to_string())].into());
    assert!(matches!(from_pod(&pod), Err(AnnotationError::DuplicateInterface { .. })));
}
