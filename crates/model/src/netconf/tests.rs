use serde_json::json;

use super::*;

const BLUE: &str = r#"{"cniVersion":"1.0.0","name":"blue","type":"kubetron","logical_switch":"ls-blue","capabilities":{"ips":true,"mac":true},"subnet":"10.1.0.0/24"}"#;

fn parse(config: &str, nad_name: &str) -> Result<Option<NadConfig>, NadConfigError> {
    NadConfig::parse(config, nad_name)
}

#[test]
fn single_plugin_config() {
    let c = parse(BLUE, "nad").unwrap().unwrap();
    assert_eq!(c.cni_version.as_deref(), Some("1.0.0"));
    assert_eq!(c.name, "blue");
    assert_eq!(c.logical_switch(), "ls-blue");
    assert_eq!(c.kubetron.granted(), Capabilities { ips: true, mac: true });
    assert_eq!(c.kubetron.subnet.as_deref(), Some("10.1.0.0/24"));
    assert!(c.kubetron.extra.is_empty(), "{:?}", c.kubetron.extra);
}

#[test]
fn defaults() {
    let c = parse(r#"{"type":"kubetron"}"#, "nad-name").unwrap().unwrap();
    assert_eq!(c.name, "nad-name");
    assert_eq!(c.logical_switch(), "nad-name");
    assert_eq!(c.kubetron.granted(), Capabilities::default());
    assert_eq!(c.kubetron, KubetronNetConf::default());
    let c = parse(r#"{"type":"kubetron","name":"n"}"#, "nad-name").unwrap().unwrap();
    assert_eq!(c.logical_switch(), "n");
}

#[test]
fn conflist() {
    let cfg = r#"{"cniVersion":"0.4.0","name":"red","plugins":[{"type":"kubetron","logical_switch":"ls-red"},{"type":"tuning"}]}"#;
    let c = parse(cfg, "x").unwrap().unwrap();
    assert_eq!((c.name.as_str(), c.logical_switch(), c.cni_version.as_deref()), ("red", "ls-red", Some("0.4.0")));
    let two = r#"{"name":"red","plugins":[{"type":"kubetron"},{"type":"kubetron"}]}"#;
    assert_eq!(parse(two, "x"), Err(NadConfigError::SeveralPlugins(2)));
    let chained = parse(
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"kubetron","capabilities":{"ips":true}},
            {"type":"portmap","capabilities":{"portMappings":true}},{"type":"bandwidth","capabilities":{"bandwidth":false}}]}"#,
        "n",
    )
    .unwrap()
    .unwrap();
    assert_eq!(chained.chain_capabilities.iter().map(String::as_str).collect::<Vec<_>>(), vec!["portMappings"]);
    assert_eq!(chained.kubetron.granted(), Capabilities { ips: true, mac: false });
    assert!(parse(BLUE, "n").unwrap().unwrap().chain_capabilities.is_empty());
}

#[test]
fn other_plugins_are_not_ours() {
    assert_eq!(parse(r#"{"type":"macvlan","name":"m"}"#, "x"), Ok(None));
    assert_eq!(parse(r#"{"name":"m","plugins":[{"type":"bridge"}]}"#, "x"), Ok(None));
    assert_eq!(parse("", "x"), Ok(None));
}

#[test]
fn config_errors() {
    assert!(matches!(parse("{", "x"), Err(NadConfigError::Json(_))));
    assert_eq!(parse("[]", "x"), Err(NadConfigError::NotObject));
    assert!(matches!(parse(r#"{"type":"kubetron","logical_switch":5}"#, "x"), Err(NadConfigError::NetConf(NetConfError::Parse(_)))));
    assert_eq!(parse(r#"{"type":"kubetron","logical_switch":" "}"#, "x"), Err(NetConfError::EmptyLogicalSwitch.into()));
    assert_eq!(parse(r#"{"type":"kubetron","capabilities":{"ips":"yes"}}"#, "x"), Err(NetConfError::Capability("ips").into()));
    assert_eq!(parse(r#"{"type":"kubetron","network_id":""}"#, "x"), Err(NetConfError::NetworkId(String::new()).into()));
    assert_eq!(parse(r#"{"type":"kubetron","network_id":"a/b"}"#, "x"), Err(NetConfError::NetworkId("a/b".into()).into()));
    assert_eq!(
        parse(r#"{"type":"kubetron","network_id":"n1","nb":"tcp:127.0.0.1:6641"}"#, "x"),
        Err(NetConfError::NetworkId("n1".into()).into())
    );
    let c = parse(r#"{"type":"kubetron","network_id":"9c2a"}"#, "x").unwrap().unwrap();
    assert_eq!(c.kubetron.network_id.as_deref(), Some("9c2a"));
    assert!(c.kubetron.extra.is_empty(), "network_id is a field, not an unknown key");
    assert!(matches!(parse(r#"{"type":"kubetron","capabilities":[1]}"#, "x"), Err(NadConfigError::NetConf(NetConfError::Parse(_)))));
    assert!(matches!(parse(r#"{"name":"a","plugins":{}}"#, "x"), Err(NadConfigError::Field { field: "plugins", .. })));
    assert!(matches!(parse(r#"{"type":"kubetron"}"#, ""), Err(NadConfigError::Field { field: "name", .. })));
    assert!(matches!(parse(r#"{"type":"kubetron","name":7}"#, "x"), Err(NadConfigError::Field { field: "name", .. })));
}

/// A NAD whose kubetron config the CNI plugin would refuse on every ADD is refused when read, with
/// the plugin's own message (the rules are written once, here).
#[test]
fn configs_the_cni_plugin_refuses_are_refused() {
    let bad = [
        (r#"{"cniVersion": "1.0.0", "name": "a", "type": "kubetron", "timeout_ms": 5}"#, "timeout_ms"),
        (r#"{"cniVersion": "1.0.0", "name": "a", "type": "kubetron", "mode": "sideways"}"#, "sideways"),
        (r#"{"cniVersion": "9.9.9", "name": "a", "type": "kubetron"}"#, "9.9.9"),
        (r#"{"name": "n", "plugins": [{"type": "kubetron", "mtu": "big"}]}"#, "big"),
        (r#"{"name": "a b", "type": "kubetron"}"#, "network name"),
        (r#"{"name": "n", "type": "kubetron", "nb": "ssl:10.0.0.1:6641"}"#, "nb_private_key"),
        (r#"{"name": "n", "type": "kubetron", "args": {"cni": {"ips": ["10.0.0.300"]}}}"#, "10.0.0.300"),
    ];
    for (config, what) in bad {
        match parse(config, "x") {
            Err(e @ NadConfigError::NetConf(_)) => assert!(e.to_string().contains(what), "{config}: {e}"),
            other => panic!("{config}: {other:?}"),
        }
    }
    // What the plugin accepts stays accepted, with or without cniVersion.
    for good in [
        r#"{"name": "a", "type": "kubetron"}"#,
        r#"{"cniVersion": "1.0.0", "name": "a", "type": "kubetron", "mode": "chained", "timeout_ms": 60000, "someKey": 1}"#,
        r#"{"cniVersion": "0.4.0", "name": "n", "plugins": [{"type": "kubetron", "nb": "tcp:127.0.0.1:6641"}]}"#,
        r#"{"name": "n", "type": "kubetron", "args": {"cni": {"ips": ["10.0.0.3", "fd00::3/64"]}}}"#,
    ] {
        assert!(matches!(parse(good, "x"), Ok(Some(_))), "{good}: {:?}", parse(good, "x"));
    }
}

#[test]
fn timeout_defaults_and_bounds() {
    let plugin = |v: Value| KubetronNetConf::from_plugin(v.as_object().unwrap());
    let c = plugin(json!({})).unwrap();
    assert_eq!(c.timeout_ms, DEFAULT_TIMEOUT_MS);
    const { assert!(DEFAULT_TIMEOUT_MS < 120_000 && MAX_TIMEOUT_MS < 120_000, "must stay under the kubelet's 2 minutes") };
    assert!(c.port_up_timeout_ms + 2 * cleanup_reserve_ms(DEFAULT_TIMEOUT_MS) <= DEFAULT_TIMEOUT_MS);
    for bad in [0, 999, 110_001, 600_000] {
        assert_eq!(plugin(json!({"timeout_ms": bad})), Err(NetConfError::Timeout(bad)));
    }
    // port_up_timeout_ms must leave room for the rest of ADD and its cleanup: clamped, not
    // refused (a DEL with the config saved at ADD time must still work).
    assert_eq!(plugin(json!({"timeout_ms": 30_000, "port_up_timeout_ms": 25_000})).unwrap().port_up_timeout_ms, 20_000);
    assert_eq!(plugin(json!({"timeout_ms": 1000})).unwrap().port_up_timeout_ms, 500, "the default shrinks to fit");
    assert_eq!(plugin(json!({"port_up_timeout_ms": 600_001})), Err(NetConfError::PortUpTimeout(600_001)));
}

#[test]
fn mode_and_agent_socket() {
    let plugin = |v: Value| KubetronNetConf::from_plugin(v.as_object().unwrap());
    assert_eq!(plugin(json!({"nb": "unix:/run/ovn/ovnnb_db.sock"})).unwrap().mode(), Mode::Standalone, "nb without mode");
    let c = plugin(json!({})).unwrap();
    assert_eq!((c.mode(), c.agent_socket()), (Mode::Cluster, DEFAULT_AGENT_SOCKET));
    for (m, want) in [("cluster", Mode::Cluster), ("chained", Mode::Chained), ("standalone", Mode::Standalone)] {
        let c = plugin(json!({"mode": m, "nb": "tcp:10.0.0.1:6641"})).unwrap();
        assert_eq!(c.mode(), want, "explicit mode wins over nb");
        assert_eq!(want.to_string(), m);
    }
    assert_eq!(plugin(json!({"agent_socket": "a.sock"})), Err(NetConfError::AgentSocket("a.sock".into())));
}

/// Serialized, the config names only what differs from the defaults, `type` first: the shapes the
/// NAD sync and `kubetron install-cni` write.
#[test]
fn plugin_object_names_what_it_sets() {
    let c = KubetronNetConf {
        logical_switch: Some("ls".into()),
        capabilities: Some(Capabilities { ips: true, mac: true }.to_map()),
        subnet: Some("10.1.0.0/24".into()),
        ..KubetronNetConf::default()
    };
    assert_eq!(
        Value::Object(c.to_plugin()).to_string(),
        r#"{"type":"kubetron","logical_switch":"ls","capabilities":{"ips":true,"mac":true},"subnet":"10.1.0.0/24"}"#
    );
    let back = KubetronNetConf::from_plugin(&c.to_plugin()).unwrap();
    assert_eq!(back, c);
    let given = json!({"type": "kubetron", "mtu": 1442, "bridge": "br-x", "some_future_knob": {"x": 1}});
    let c = KubetronNetConf::from_plugin(given.as_object().unwrap()).unwrap();
    assert_eq!(Value::Object(c.to_plugin()), given);
}

#[test]
fn a_mistyped_field_is_named() {
    let e = parse(r#"{"type":"kubetron","mtu":1400,"logical_switch":7}"#, "n").expect_err("refused").to_string();
    assert!(e.contains("logical_switch") && e.contains("integer"), "{e}");
    let e = parse(r#"{"type":"kubetron","mtu":"big"}"#, "n").expect_err("refused").to_string();
    assert!(e.contains("mtu"), "{e}");
}
