use super::*;
use model::netconf::NadConfig;
use model::request::parse;

fn parse_config(config: &str, nad_name: &str) -> NadConfig {
    NadConfig::parse(config, nad_name).unwrap().unwrap()
}

const BLUE: &str = r#"{"cniVersion":"1.0.0","name":"blue","type":"kubetron","logical_switch":"ls-blue","capabilities":{"ips":true,"mac":true},"subnet":"10.1.0.0/24"}"#;

#[test]
fn physical_network_from_resource_name() {
    let n = new_nad("ns", "phys", BLUE, &[(RESOURCE_NAME_ANNOTATION, "kubetron.io/physnet1")]);
    assert_eq!(n.resource_name(), Some("kubetron.io/physnet1"));
    assert_eq!(n.physical_network(), Some("physnet1"));
    let sriov = new_nad("ns", "s", BLUE, &[(RESOURCE_NAME_ANNOTATION, "intel.com/sriov")]);
    assert_eq!(sriov.physical_network(), None);
    assert_eq!(new_nad("ns", "p", BLUE, &[]).physical_network(), None);
}

#[test]
fn exposure_rules() {
    let own = new_nad("team-a", "blue", BLUE, &[]);
    let s = parse("blue", "team-a").unwrap().remove(0);
    assert_eq!(authorize("team-a", &s, &own), Ok(()));

    let s = parse("team-a/blue", "team-b").unwrap().remove(0);
    let e = authorize("team-b", &s, &own).unwrap_err();
    assert!(matches!(e, Refusal::NotShared { .. }));
    let msg = e.to_string();
    assert!(msg.contains("team-a/blue") && msg.contains("team-b") && msg.contains(ALLOWED_NAMESPACES_ANNOTATION), "{msg}");

    let listed = new_nad("team-a", "blue", BLUE, &[(ALLOWED_NAMESPACES_ANNOTATION, "team-c, team-b")]);
    assert_eq!(authorize("team-b", &s, &listed), Ok(()));
    let s_d = parse("team-a/blue", "team-d").unwrap().remove(0);
    let e = authorize("team-d", &s_d, &listed).unwrap_err();
    assert_eq!(e.to_string(), "network team-a/blue is shared only with namespaces team-c, team-b (annotation kubetron.io/allowed-namespaces), not with namespace team-d");

    let all = new_nad("team-a", "blue", BLUE, &[(ALLOWED_NAMESPACES_ANNOTATION, "*")]);
    assert_eq!(authorize("team-d", &s_d, &all), Ok(()));
    assert_eq!(allowed_namespaces(&new_nad("a", "b", "", &[(ALLOWED_NAMESPACES_ANNOTATION, " , ")])), AllowedNamespaces::OwnOnly);

    let other = new_nad("team-a", "red", BLUE, &[]);
    assert!(matches!(authorize("team-a", &parse("blue", "team-a").unwrap()[0], &other), Err(Refusal::Mismatch { .. })));
}

#[test]
fn capability_checks() {
    let none = parse_config(r#"{"type":"kubetron","name":"n"}"#, "n");
    let full = parse_config(BLUE, "n");
    let ip = parse(r#"[{"name":"n","ips":["10.1.0.5/24"]}]"#, "ns").unwrap().remove(0);
    let mac = parse(r#"[{"name":"n","mac":"02:00:00:00:00:05"}]"#, "ns").unwrap().remove(0);
    let e = check_capabilities(&ip, &none).unwrap_err();
    assert!(e.to_string().contains("10.1.0.5/24") && e.to_string().contains("capabilities.ips"), "{e}");
    assert!(matches!(check_capabilities(&mac, &none), Err(Refusal::StaticMac { .. })));
    assert_eq!(check_capabilities(&ip, &full), Ok(()));
    assert_eq!(check_capabilities(&mac, &full), Ok(()));
}

#[test]
fn unhonourable_requests_are_refused() {
    let alone = parse_config(BLUE, "n");
    assert!(alone.chain_capabilities.is_empty());
    let chained = parse_config(
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"kubetron","capabilities":{"ips":true}},
            {"type":"portmap","capabilities":{"portMappings":true}},{"type":"bandwidth","capabilities":{"bandwidth":false}}]}"#,
        "n",
    );
    assert_eq!(chained.chain_capabilities.iter().map(String::as_str).collect::<Vec<_>>(), vec!["portMappings"]);
    let ports =
        parse(r#"[{"name":"n","interface":"data0","portMappings":[{"hostPort":8080,"containerPort":80}]}]"#, "ns").unwrap().remove(0);
    let bw = parse(r#"[{"name":"n","bandwidth":{"ingressRate":1000}}]"#, "ns").unwrap().remove(0);
    let guid = parse(r#"[{"name":"n","infiniband-guid":"00:11:22:33:44:55:66:77"}]"#, "ns").unwrap().remove(0);
    let claim = parse(r#"[{"name":"n","ipam-claim-reference":"vm1"}]"#, "ns").unwrap().remove(0);
    let empty = parse(r#"[{"name":"n","portMappings":[],"bandwidth":{}}]"#, "ns").unwrap().remove(0);

    let e = check_capabilities(&ports, &alone).unwrap_err();
    assert!(matches!(e, Refusal::Unhonoured { key: "portMappings", capability: "portMappings", .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("ns/n") && msg.contains("data0") && msg.contains("portmap"), "{msg}");
    assert_eq!(check_capabilities(&ports, &chained), Ok(()), "a chained portmap plugin honours it");
    assert!(matches!(check_capabilities(&bw, &alone), Err(Refusal::Unhonoured { key: "bandwidth", .. })));
    assert!(matches!(check_capabilities(&bw, &chained), Err(Refusal::Unhonoured { key: "bandwidth", .. })), "declared false");
    assert!(matches!(check_capabilities(&guid, &alone), Err(Refusal::Unhonoured { capability: "infinibandGUID", .. })));
    let e = check_capabilities(&claim, &chained).unwrap_err();
    assert!(matches!(e, Refusal::IpamClaim { .. }) && e.to_string().contains("vm1"), "{e}");
    assert!(e.to_string().contains("allowPersistentIPs"), "{e}");
    assert_eq!(check_capabilities(&empty, &alone), Ok(()), "empty requests ask for nothing");
    let ib = parse(r#"[{"name":"n","mac":"80:00:00:48:fe:80:00:00:00:00:00:00:02:c9:03:00:00:0f:f0:11"}]"#, "ns").unwrap().remove(0);
    assert!(matches!(check_capabilities(&ib, &alone), Err(Refusal::InfinibandMac { .. })));
}

/// M6: `ipam-claim-reference` needs `"allowPersistentIPs": true` in the NAD config (top level of
/// a single plugin config or of a conflist, or kubetron's plugin object); `ips` with it stays refused
/// by the annotation rules.
#[test]
fn claim_reference_needs_allow_persistent_ips() {
    let claim = parse(r#"[{"name":"n","ipam-claim-reference":"vm1.n"}]"#, "ns").unwrap().remove(0);
    let without = parse_config(BLUE, "n");
    assert!(!without.allow_persistent_ips);
    let e = check_capabilities(&claim, &without).unwrap_err();
    assert!(matches!(&e, Refusal::IpamClaim { claim, .. } if claim == "vm1.n"), "{e:?}");
    assert!(e.to_string().contains("does not allow persistent IPs"), "{e}");
    for config in [
        r#"{"cniVersion":"1.0.0","name":"n","type":"kubetron","allowPersistentIPs":true}"#,
        r#"{"cniVersion":"1.0.0","name":"n","allowPersistentIPs":true,"plugins":[{"type":"kubetron"}]}"#,
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"kubetron","allowPersistentIPs":true}]}"#,
    ] {
        let with = parse_config(config, "n");
        assert!(with.allow_persistent_ips, "{config}");
        assert_eq!(check_capabilities(&claim, &with), Ok(()), "{config}");
    }
    let off = parse_config(r#"{"cniVersion":"1.0.0","name":"n","type":"kubetron","allowPersistentIPs":false}"#, "n");
    assert!(check_capabilities(&claim, &off).is_err());
    assert!(model::netconf::NadConfig::parse(
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"kubetron"}],"allowPersistentIPs":"yes"}"#,
        "n"
    )
    .is_err());
    // "ips" together with a claim is refused before any network is looked at.
    let e = parse(r#"[{"name":"n","ips":["10.0.0.5"],"ipam-claim-reference":"vm1.n"}]"#, "ns").unwrap_err();
    assert!(e.to_string().contains("ipam-claim-reference"), "{e}");
}

#[test]
fn nad_serde_and_crd() {
    let nad = new_nad("ns", "blue", BLUE, &[]);
    let v = serde_json::to_value(&nad).unwrap();
    assert_eq!(v["apiVersion"], "k8s.cni.cncf.io/v1");
    assert_eq!(v["kind"], "NetworkAttachmentDefinition");
    assert_eq!(v["spec"]["config"], BLUE);
    let back: NetworkAttachmentDefinition = serde_json::from_value(v).unwrap();
    assert_eq!(back.kubetron_config().unwrap().unwrap().logical_switch(), "ls-blue");
    // A NAD without spec.config (Multus allows it) still deserializes.
    let bare: NetworkAttachmentDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "x", "namespace": "y"}, "spec": {}
    }))
    .unwrap();
    assert_eq!(bare.kubetron_config(), Ok(None));

    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crd.yaml")).unwrap();
    let from_file: CustomResourceDefinition = serde_yaml::from_str(&file).unwrap();
    let generated = crd();
    assert_eq!(from_file.metadata.name, generated.metadata.name);
    assert_eq!(from_file.spec.group, generated.spec.group);
    assert_eq!(from_file.spec.names.plural, "network-attachment-definitions");
    assert_eq!(from_file.spec.names.short_names, Some(vec!["net-attach-def".to_string()]));
    assert_eq!(from_file.spec.names, generated.spec.names);
    assert_eq!(from_file.spec.scope, generated.spec.scope);
    assert_eq!(from_file.spec.versions.len(), 1);
    let (f, g) = (&from_file.spec.versions[0], &generated.spec.versions[0]);
    assert_eq!((f.name.as_str(), f.served, f.storage), (g.name.as_str(), g.served, g.storage));
    assert_eq!(f.schema, g.schema);
    let spec = &f.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap().properties.as_ref().unwrap()["spec"];
    assert_eq!(spec.x_kubernetes_preserve_unknown_fields, Some(true));
}
