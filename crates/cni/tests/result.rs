//! Result JSON per version, and the error JSON shape.

use cni::{CniError, CniResult, ErrorCode, ErrorJson, Interface, IpConfig, RouteEntry};
use model::status::Dns;
use serde_json::json;

fn sample() -> CniResult {
    CniResult {
        cni_version: String::new(),
        interfaces: vec![
            Interface { name: "kt0123456789ab".into(), mac: "0a:00:00:00:00:01".into(), ..Default::default() },
            Interface {
                name: "eth0".into(),
                mac: "0a:58:0a:09:00:05".into(),
                mtu: Some(1400),
                sandbox: "/var/run/netns/p".into(),
                ..Default::default()
            },
        ],
        ips: vec![
            IpConfig { address: "10.9.0.5/24".parse().unwrap(), gateway: Some("10.9.0.1".parse().unwrap()), interface: Some(1) },
            IpConfig { address: "fd09::5/64".parse().unwrap(), gateway: None, interface: Some(1) },
        ],
        routes: vec![RouteEntry {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: Some("10.9.0.1".parse().unwrap()),
            mtu: Some(1400),
            advmss: None,
            priority: Some(10),
            table: None,
            scope: None,
        }],
        dns: Dns { nameservers: vec!["10.96.0.10".into()], ..Default::default() },
    }
}

#[test]
fn v1_1_0_keeps_everything() {
    let v = sample().to_version("1.1.0").unwrap();
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(v["interfaces"][1]["mtu"], 1400);
    assert_eq!(v["interfaces"][1]["sandbox"], "/var/run/netns/p");
    assert!(v["interfaces"][0].get("sandbox").is_none(), "host interface has no sandbox");
    assert_eq!(v["ips"][0], json!({"address": "10.9.0.5/24", "gateway": "10.9.0.1", "interface": 1}));
    assert_eq!(v["routes"][0], json!({"dst": "0.0.0.0/0", "gw": "10.9.0.1", "mtu": 1400, "priority": 10}));
    assert_eq!(v["dns"], json!({"nameservers": ["10.96.0.10"]}));
}

#[test]
fn v1_0_0_drops_1_1_fields() {
    let v = sample().to_version("1.0.0").unwrap();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert!(v["interfaces"][1].get("mtu").is_none());
    assert_eq!(v["routes"][0], json!({"dst": "0.0.0.0/0", "gw": "10.9.0.1"}));
    assert!(v["ips"][0].get("version").is_none());
}

#[test]
fn old_versions_get_ip_version_field() {
    for ver in ["0.3.0", "0.3.1", "0.4.0"] {
        let v = sample().to_version(ver).unwrap();
        assert_eq!(v["cniVersion"], ver);
        assert_eq!(v["ips"][0], json!({"version": "4", "address": "10.9.0.5/24", "gateway": "10.9.0.1", "interface": 1}));
        assert_eq!(v["ips"][1]["version"], "6");
        assert!(v["interfaces"][1].get("mtu").is_none());
        assert!(v["routes"][0].get("priority").is_none());
        // And it parses back to the same thing (minus 1.1 fields).
        let back = CniResult::from_value(&v).unwrap();
        assert_eq!(back.ips, sample().ips);
    }
}

#[test]
fn unsupported_version_and_invalid_results_are_refused() {
    assert_eq!(sample().to_version("0.2.0").unwrap_err().code, ErrorCode::IncompatibleVersion);
    let mut bad = sample();
    bad.ips[0].interface = Some(7);
    assert_eq!(bad.to_version("1.1.0").unwrap_err().code, ErrorCode::Internal);
    let mut bad = sample();
    bad.ips[0].gateway = Some("fd09::1".parse().unwrap());
    assert!(bad.validate().is_err());
}

#[test]
fn error_json_shape() {
    let e = CniError::invalid_env("CNI_NETNS missing").with_details("for ADD");
    let v: serde_json::Value = serde_json::from_slice(&e.to_json_bytes("1.0.0")).unwrap();
    assert_eq!(v, json!({"cniVersion": "1.0.0", "code": 4, "msg": "CNI_NETNS missing", "details": "for ADD"}));
    let v: serde_json::Value = serde_json::from_slice(&CniError::try_again_later("busy").to_json_bytes("")).unwrap();
    assert_eq!(v, json!({"cniVersion": "1.1.0", "code": 11, "msg": "busy"}), "no details key when empty");
    // Codes map both ways.
    for (code, n) in [
        (ErrorCode::IncompatibleVersion, 1),
        (ErrorCode::UnsupportedField, 2),
        (ErrorCode::UnknownContainer, 3),
        (ErrorCode::InvalidEnv, 4),
        (ErrorCode::Io, 5),
        (ErrorCode::Decode, 6),
        (ErrorCode::InvalidNetworkConfig, 7),
        (ErrorCode::TryAgainLater, 11),
        (ErrorCode::NotAvailable, 50),
        (ErrorCode::NotAvailableLimitedConnectivity, 51),
        (ErrorCode::Internal, 999),
        (ErrorCode::Other(120), 120),
    ] {
        assert_eq!(code.code(), n);
        assert_eq!(ErrorCode::from_code(n), code);
    }
    let parsed: ErrorJson = serde_json::from_value(json!({"cniVersion": "1.1.0", "code": 3, "msg": "gone"})).unwrap();
    assert_eq!(CniError::from(parsed).code, ErrorCode::UnknownContainer);
    assert!(CniError::unsupported_field("vlan", 5).msg.contains("vlan"));
}
