//! CNI_* environment validation.

use cni::{Command, Env, ErrorCode};

fn env(pairs: &[(&str, &str)]) -> Result<Env, cni::CniError> {
    Env::from_vars(pairs.iter().copied())
}

const ADD: [(&str, &str); 6] = [
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "abc123_x.y-z"),
    ("CNI_NETNS", "/var/run/netns/p1"),
    ("CNI_IFNAME", "eth0"),
    (
        "CNI_ARGS",
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=1234-5678;K8S_POD_INFRA_CONTAINER_ID=abc123;X=y",
    ),
    ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
];

#[test]
fn full_add_env_parses() {
    let e = env(&ADD).unwrap();
    assert_eq!(e.command, Command::Add);
    assert_eq!(e.container_id.as_deref(), Some("abc123_x.y-z"));
    assert_eq!(e.netns.as_deref(), Some(std::path::Path::new("/var/run/netns/p1")));
    assert_eq!(e.ifname.as_deref(), Some("eth0"));
    assert_eq!(e.args.pod_namespace.as_deref(), Some("default"));
    assert_eq!(e.args.pod_name.as_deref(), Some("web-0"));
    assert_eq!(e.args.pod_uid.as_deref(), Some("1234-5678"));
    assert_eq!(e.args.infra_container_id.as_deref(), Some("abc123"));
    assert!(e.args.ignore_unknown);
    assert_eq!(e.args.get("X"), Some("y"));
    assert_eq!(e.path.len(), 2);
}

fn without(key: &str) -> Vec<(&'static str, &'static str)> {
    ADD.iter().copied().filter(|(k, _)| *k != key).collect()
}

fn with(cmd: &'static str, base: Vec<(&'static str, &'static str)>) -> Vec<(&'static str, &'static str)> {
    base.into_iter().map(|(k, v)| if k == "CNI_COMMAND" { (k, cmd) } else { (k, v) }).collect()
}

#[test]
fn missing_variables_are_code_4_and_named() {
    for (cmd, key) in [
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_NETNS"),
        ("ADD", "CNI_IFNAME"),
        ("CHECK", "CNI_NETNS"),
        ("DEL", "CNI_IFNAME"),
        ("DEL", "CNI_CONTAINERID"),
    ] {
        let e = env(&with(cmd, without(key))).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnv, "{cmd} without {key}");
        assert!(e.msg.contains(key), "{}", e.msg);
    }
    // Empty counts as missing.
    let mut v = ADD.to_vec();
    v[1] = ("CNI_CONTAINERID", "");
    assert!(env(&v).unwrap_err().msg.contains("CNI_CONTAINERID"));
    // No command / unknown command.
    assert_eq!(env(&without("CNI_COMMAND")).unwrap_err().code, ErrorCode::InvalidEnv);
    assert!(env(&with("FROB", ADD.to_vec())).unwrap_err().msg.contains("FROB"));
}

#[test]
fn del_without_netns_is_fine() {
    let e = env(&with("DEL", without("CNI_NETNS"))).unwrap();
    assert_eq!(e.command, Command::Del);
    assert!(e.netns.is_none());
    let mut v = with("DEL", ADD.to_vec());
    v[2] = ("CNI_NETNS", "");
    assert!(env(&v).unwrap().netns.is_none());
}

#[test]
fn status_gc_version_need_no_container() {
    assert_eq!(env(&[("CNI_COMMAND", "STATUS")]).unwrap().command, Command::Status);
    assert_eq!(env(&[("CNI_COMMAND", "VERSION")]).unwrap().command, Command::Version);
    let e = env(&[("CNI_COMMAND", "GC")]).unwrap_err();
    assert!(e.msg.contains("CNI_PATH"), "GC needs CNI_PATH: {e}");
    let g = env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")]).unwrap();
    assert!(g.container_id.is_none() && g.ifname.is_none());
}

#[test]
fn bad_values_are_rejected() {
    for (key, val) in [
        ("CNI_CONTAINERID", "-abc"),
        ("CNI_CONTAINERID", "a/b"),
        ("CNI_IFNAME", "this-is-too-long0"),
        ("CNI_IFNAME", "."),
        ("CNI_IFNAME", "a b"),
        ("CNI_IFNAME", "a:b"),
        ("CNI_IFNAME", "net%d"),
        ("CNI_ARGS", "K8S_POD_NAME"),
        ("CNI_ARGS", "=x"),
        ("CNI_ARGS", "FOO=bar"),
        ("CNI_ARGS", "IgnoreUnknown=maybe"),
    ] {
        let v: Vec<(&str, &str)> = ADD.iter().map(|&(k, v)| if k == key { (k, val) } else { (k, v) }).collect();
        let e = env(&v).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidEnv, "{key}={val}");
        assert!(e.msg.contains(key) || e.msg.contains("CNI_ARGS"), "{key}={val}: {e}");
    }
    // Unknown keys are fine with IgnoreUnknown=true.
    let v: Vec<(&str, &str)> = ADD.iter().map(|&(k, v)| if k == "CNI_ARGS" { (k, "FOO=bar;IgnoreUnknown=true") } else { (k, v) }).collect();
    assert!(env(&v).unwrap().args.ignore_unknown);
}
