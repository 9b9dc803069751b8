//! The dispatcher end to end with a recording fake plugin.

use std::cell::RefCell;

use cni::{Attachment, CniError, CniResult, Command, ErrorCode, Interface, IpConfig, Plugin, Request};
use model::netconf::SUPPORTED_VERSIONS;
use serde_json::{json, Value};

#[derive(Default)]
struct Fake {
    calls: RefCell<Vec<(Command, String)>>,
    gc_seen: RefCell<Vec<Attachment>>,
    fail_with: Option<CniError>,
    panic: bool,
}

impl Fake {
    fn record(&self, req: &Request) -> Result<(), CniError> {
        if self.panic {
            panic!("kaboom");
        }
        self.calls.borrow_mut().push((req.command(), req.container_id().to_string()));
        match &self.fail_with {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Plugin for Fake {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        self.record(req)?;
        Ok(CniResult {
            interfaces: vec![Interface {
                name: req.ifname().into(),
                mac: "0a:58:0a:09:00:05".into(),
                mtu: Some(req.config.kubetron.mtu),
                sandbox: req.netns().unwrap().display().to_string(),
                ..Default::default()
            }],
            ips: vec![IpConfig { address: "10.9.0.5/24".parse().unwrap(), gateway: None, interface: Some(0) }],
            ..Default::default()
        })
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        self.record(req)
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        assert!(req.prev_result.is_some());
        self.record(req)
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.record(req)
    }
    fn gc(&self, req: &Request, valid: &[Attachment]) -> Result<(), CniError> {
        self.gc_seen.borrow_mut().extend_from_slice(valid);
        self.record(req)
    }
}

fn vars(cmd: &str) -> Vec<(String, String)> {
    [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/var/run/netns/p1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn conf(ver: &str) -> Vec<u8> {
    json!({"cniVersion": ver, "name": "blue", "type": "kubetron"}).to_string().into_bytes()
}

fn err_json(out: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(out).expect("stdout is JSON");
    assert!(v["code"].is_u64() && v["msg"].is_string() && v["cniVersion"].is_string(), "{v}");
    v
}

#[test]
fn add_prints_result_in_config_version() {
    for ver in SUPPORTED_VERSIONS {
        let p = Fake::default();
        let (code, out) = cni::run(vars("ADD"), &conf(ver), &p);
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cniVersion"], ver);
        assert_eq!(v["interfaces"][0]["sandbox"], "/var/run/netns/p1");
        let has_version = v["ips"][0].get("version").is_some();
        assert_eq!(has_version, ver.starts_with("0."), "{ver}: {v}");
        assert_eq!(v["interfaces"][0].get("mtu").is_some(), ver == "1.1.0");
        assert_eq!(p.calls.borrow().as_slice(), &[(Command::Add, "c1".to_string())]);
    }
}

#[test]
fn plugin_errors_become_error_json_exit_1() {
    let p = Fake { fail_with: Some(CniError::try_again_later("ovsdb busy").with_details("retry")), ..Default::default() };
    let (code, out) = cni::run(vars("ADD"), &conf("1.0.0"), &p);
    assert_eq!(code, 1);
    assert_eq!(err_json(&out), json!({"cniVersion": "1.0.0", "code": 11, "msg": "ovsdb busy", "details": "retry"}));
}

#[test]
fn panics_are_caught() {
    let p = Fake { panic: true, ..Default::default() };
    let (code, out) = cni::run(vars("ADD"), &conf("1.1.0"), &p);
    assert_eq!(code, 1);
    let v = err_json(&out);
    assert_eq!(v["code"], 999);
    assert!(v["details"].as_str().unwrap().contains("kaboom"));
}

#[test]
fn del_without_netns_and_with_bad_prev_result_succeeds() {
    let p = Fake::default();
    let mut v: Vec<(String, String)> = vars("DEL").into_iter().filter(|(k, _)| k != "CNI_NETNS").collect();
    let stdin =
        json!({"cniVersion": "1.1.0", "name": "blue", "type": "kubetron", "prevResult": {"ips": [{"address": "junk"}]}}).to_string();
    let (code, out) = cni::run(v.clone(), stdin.as_bytes(), &p);
    assert_eq!((code, out.as_slice()), (0, &b""[..]));
    v.push(("CNI_NETNS".into(), String::new()));
    let (code, _) = cni::run(v, &conf("0.3.1"), &p);
    assert_eq!(code, 0);
    assert_eq!(p.calls.borrow().len(), 2);
}

#[test]
fn check_rules() {
    let p = Fake::default();
    // CHECK needs 0.4.0+.
    let (code, out) = cni::run(vars("CHECK"), &conf("0.3.1"), &p);
    assert_eq!((code, err_json(&out)["code"].as_u64()), (1, Some(1)));
    // CHECK needs prevResult.
    let (code, out) = cni::run(vars("CHECK"), &conf("1.0.0"), &p);
    assert_eq!((code, err_json(&out)["code"].as_u64()), (1, Some(7)));
    let stdin = json!({"cniVersion": "1.0.0", "name": "blue", "type": "kubetron",
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": [{"address": "10.9.0.5/24", "interface": 0}]}})
    .to_string();
    let (code, out) = cni::run(vars("CHECK"), stdin.as_bytes(), &p);
    assert_eq!((code, out.len()), (0, 0));
    assert!(p.calls.borrow().contains(&(Command::Check, "c1".to_string())));
}

#[test]
fn status_and_gc() {
    let p = Fake::default();
    let status = vec![("CNI_COMMAND".to_string(), "STATUS".to_string())];
    assert_eq!(cni::run(status.clone(), &conf("1.1.0"), &p).0, 0);
    // STATUS needs 1.1.0.
    let (code, out) = cni::run(status, &conf("1.0.0"), &p);
    assert_eq!((code, err_json(&out)["code"].as_u64()), (1, Some(1)));
    let not_ready = Fake { fail_with: Some(CniError::new(ErrorCode::NotAvailable, "ovn-controller down")), ..Default::default() };
    let (code, out) = cni::run(vec![("CNI_COMMAND", "STATUS")], &conf("1.1.0"), &not_ready);
    assert_eq!((code, err_json(&out)["code"].as_u64()), (1, Some(50)));

    let gc = vec![("CNI_COMMAND", "GC"), ("CNI_PATH", "/usr/lib/cni")];
    let stdin = json!({"cniVersion": "1.1.0", "name": "blue", "type": "kubetron",
        "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
    .to_string();
    let (code, _) = cni::run(gc, stdin.as_bytes(), &p);
    assert_eq!(code, 0);
    assert_eq!(p.gc_seen.borrow().as_slice(), &[Attachment { container_id: "c1".into(), ifname: "eth0".into() }]);
}

#[test]
fn version_command() {
    let p = Fake::default();
    for stdin in [&b""[..], br#"{"cniVersion":"1.0.0"}"#] {
        let (code, out) = cni::run(vec![("CNI_COMMAND", "VERSION")], stdin, &p);
        assert_eq!(code, 0);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}));
    }
    let (code, out) = cni::run(vec![("CNI_COMMAND", "VERSION")], b"{junk", &p);
    assert_eq!((code, err_json(&out)["code"].as_u64()), (1, Some(6)));
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn request_errors_have_spec_codes() {
    let p = Fake::default();
    // Unknown version -> 1, labelled with the current version.
    let (code, out) = cni::run(vars("ADD"), &conf("0.2.0"), &p);
    let v = err_json(&out);
    assert_eq!((code, v["code"].as_u64(), v["cniVersion"].as_str()), (1, Some(1), Some("1.1.0")));
    // Not JSON -> 6.
    let (_, out) = cni::run(vars("ADD"), b"not json", &p);
    assert_eq!(err_json(&out)["code"], 6);
    // Missing env -> 4.
    let (_, out) = cni::run(vec![("CNI_COMMAND", "ADD")], &conf("1.0.0"), &p);
    let v = err_json(&out);
    assert_eq!(v["code"], 4);
    assert_eq!(v["cniVersion"], "1.0.0", "labelled with the config's version");
    // Invalid config -> 7.
    let (_, out) =
        cni::run(vars("ADD"), json!({"cniVersion": "1.0.0", "name": "blue", "type": "kubetron", "mtu": 5}).to_string().as_bytes(), &p);
    assert_eq!(err_json(&out)["code"], 7);
    assert!(p.calls.borrow().is_empty(), "plugin never called on bad requests");
}
