//! Network config parsing: good and bad, every supported version.

use cni::{ErrorCode, NetConf};
use model::netconf::{DEFAULT_OVS_SOCKET, SUPPORTED_VERSIONS};
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<NetConf, cni::CniError> {
    NetConf::parse(v.to_string().as_bytes())
}

#[test]
fn minimal_config_every_version_gets_defaults() {
    for ver in SUPPORTED_VERSIONS {
        let c = parse(json!({"cniVersion": ver, "name": "net-a", "type": "kubetron"})).unwrap();
        assert_eq!(c.cni_version, ver);
        assert_eq!(c.version().unwrap().to_string(), ver);
        assert_eq!(c.logical_switch(), "net-a", "defaults to the network name");
        assert_eq!(c.kubetron.ovs_socket, DEFAULT_OVS_SOCKET);
        assert_eq!(c.kubetron.bridge, "br-int");
        assert_eq!(c.kubetron.mtu, 1400);
        assert!(!c.kubetron.dhcp);
        assert!(c.kubetron.nb.is_none());
        assert!(c.kubetron.port_up_timeout_ms > 0);
        assert!(c.prev_result().unwrap().is_none());
    }
}

#[test]
fn full_config_is_typed_and_unknown_fields_kept() {
    let c = parse(json!({
        "cniVersion": "1.1.0",
        "name": "blue",
        "type": "kubetron",
        "args": {"cni": {"ips": ["10.9.0.7"]}},
        "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"},
        "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
        "runtimeConfig": {
            "ips": ["10.9.0.5/24", "fd09::5/64"],
            "mac": "0a:58:0a:09:00:05",
            "portMappings": [{"hostPort": 8080, "containerPort": 80}, {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "198.51.100.1"}],
            "cgroupPath": "/kubepods/x"
        },
        "logical_switch": "ls-blue",
        "ovs_socket": "unix:/tmp/x/db.sock",
        "nb": "tcp:198.51.100.10:6641,ssl:198.51.100.11:6641",
        "nb_private_key": "/etc/kubetron/nb-key.pem",
        "nb_certificate": "/etc/kubetron/nb-cert.pem",
        "nb_ca_cert": "/etc/kubetron/nb-ca.pem",
        "bridge": "br-test",
        "mtu": 1442,
        "dhcp": true,
        "port_up_timeout_ms": 2500,
        "some_future_knob": {"x": 1}
    }))
    .unwrap();
    assert!(c.kubetron.ip_masq);
    assert_eq!(c.kubetron.ipam.as_ref().unwrap().ipam_type, "host-local");
    assert_eq!(c.kubetron.ipam.as_ref().unwrap().extra["subnet"], "10.9.0.0/24");
    assert_eq!(c.kubetron.dns.as_ref().unwrap().nameservers, vec!["10.96.0.10"]);
    let rc = c.runtime_config.as_ref().unwrap();
    assert_eq!(rc.mac.as_deref(), Some("0a:58:0a:09:00:05"));
    assert_eq!(rc.port_mappings.len(), 2);
    assert_eq!(rc.port_mappings[0].protocol, "tcp");
    assert_eq!(rc.port_mappings[1].host_ip.as_deref(), Some("198.51.100.1"));
    assert_eq!(rc.extra["cgroupPath"], "/kubepods/x");
    let ips: Vec<String> = c.requested_ips().unwrap().iter().map(|n| n.to_string()).collect();
    assert_eq!(ips, vec!["10.9.0.5/24", "fd09::5/64", "10.9.0.7/32"]);
    assert_eq!(c.logical_switch(), "ls-blue");
    assert_eq!(c.kubetron.ovs_socket, "unix:/tmp/x/db.sock");
    assert_eq!(c.kubetron.bridge, "br-test");
    assert_eq!((c.kubetron.mtu, c.kubetron.dhcp, c.kubetron.port_up_timeout_ms), (1442, true, 2500));
    assert_eq!(c.kubetron.extra["some_future_knob"], json!({"x": 1}));
    // Round trip keeps everything.
    let back = serde_json::to_value(&c).unwrap();
    assert_eq!(NetConf::from_value(back).unwrap(), c);
}

#[test]
fn bad_configs_get_the_right_codes() {
    let base = || json!({"cniVersion": "1.0.0", "name": "n", "type": "kubetron"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    let cases: Vec<(serde_json::Value, ErrorCode, &str)> = vec![
        (with("cniVersion", json!("0.2.0")), ErrorCode::IncompatibleVersion, "0.2.0"),
        (with("cniVersion", json!("2.0.0")), ErrorCode::IncompatibleVersion, "2.0.0"),
        (with("cniVersion", json!("one")), ErrorCode::Decode, "cniVersion"),
        (with("cniVersion", json!(1)), ErrorCode::Decode, "cniVersion"),
        (json!({"name": "n", "type": "kubetron"}), ErrorCode::InvalidNetworkConfig, "cniVersion"),
        (json!({"cniVersion": "1.0.0", "type": "kubetron"}), ErrorCode::InvalidNetworkConfig, "name"),
        (json!({"cniVersion": "1.0.0", "name": "n"}), ErrorCode::InvalidNetworkConfig, "type"),
        (with("name", json!("-bad")), ErrorCode::InvalidNetworkConfig, "network name"),
        (with("name", json!("a b")), ErrorCode::InvalidNetworkConfig, "network name"),
        (with("type", json!("")), ErrorCode::InvalidNetworkConfig, "type"),
        (with("mtu", json!(20)), ErrorCode::InvalidNetworkConfig, "mtu"),
        (with("mtu", json!("big")), ErrorCode::InvalidNetworkConfig, "invalid"),
        (with("mtu", json!(-1)), ErrorCode::InvalidNetworkConfig, "invalid"),
        (with("ovs_socket", json!("/var/run/db.sock")), ErrorCode::InvalidNetworkConfig, "ovs_socket"),
        (with("nb", json!("tcp:198.51.100.1")), ErrorCode::InvalidNetworkConfig, "nb"),
        (with("bridge", json!("a-very-long-bridge-name")), ErrorCode::InvalidNetworkConfig, "bridge"),
        (with("port_up_timeout_ms", json!(600_001)), ErrorCode::InvalidNetworkConfig, "port_up_timeout_ms"),
        (with("logical_switch", json!("")), ErrorCode::InvalidNetworkConfig, "logical_switch"),
        (with("dhcp", json!("yes")), ErrorCode::InvalidNetworkConfig, "invalid"),
        (with("runtimeConfig", json!({"mac": "zz"})), ErrorCode::InvalidNetworkConfig, "mac"),
        (with("runtimeConfig", json!({"ips": ["10.0.0.300/24"]})), ErrorCode::InvalidNetworkConfig, "10.0.0.300"),
        (with("prevResult", json!({"ips": [{"address": "nope"}]})), ErrorCode::Decode, "decode"),
        (json!([1, 2]), ErrorCode::Decode, "object"),
    ];
    for (conf, code, needle) in cases {
        let e = match parse(conf.clone()).and_then(|c| c.prev_result().map(|_| c)) {
            Ok(_) => panic!("accepted bad config {conf}"),
            Err(e) => e,
        };
        assert_eq!(e.code, code, "{conf} -> {e}");
        assert!(e.to_string().contains(needle), "{conf} -> {e} (want {needle:?})");
    }
    let e = NetConf::parse(b"{not json").unwrap_err();
    assert_eq!(e.code, ErrorCode::Decode);
}

#[test]
fn prev_result_of_old_and_new_shapes_parses() {
    let old = json!({"cniVersion": "0.4.0", "name": "n", "type": "kubetron", "prevResult": {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:09:00:05", "sandbox": "/var/run/netns/x"}],
        "ips": [{"version": "4", "address": "10.9.0.5/24", "gateway": "10.9.0.1", "interface": 0}]
    }});
    let p = parse(old).unwrap().prev_result().unwrap().unwrap();
    assert_eq!(p.ips[0].address.to_string(), "10.9.0.5/24");
    assert_eq!(p.interfaces[0].sandbox, "/var/run/netns/x");
    // A version that disagrees with the address is a decode error.
    let bad = json!({"cniVersion": "0.4.0", "name": "n", "type": "kubetron", "prevResult": {
        "ips": [{"version": "6", "address": "10.9.0.5/24"}]}});
    assert_eq!(parse(bad).unwrap().prev_result().unwrap_err().code, ErrorCode::Decode);
    // An interface index out of range is a decode error.
    let bad = json!({"cniVersion": "1.1.0", "name": "n", "type": "kubetron", "prevResult": {
        "ips": [{"address": "10.9.0.5/24", "interface": 2}]}});
    assert_eq!(parse(bad).unwrap().prev_result().unwrap_err().code, ErrorCode::Decode);
}

#[test]
fn gc_valid_attachments_parse() {
    let c = parse(json!({"cniVersion": "1.1.0", "name": "n", "type": "kubetron",
        "cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "eth0"}, {"containerID": "def", "ifname": "net1"}]}))
    .unwrap();
    let v = c.valid_attachments.unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!((v[1].container_id.as_str(), v[1].ifname.as_str()), ("def", "net1"));
}
