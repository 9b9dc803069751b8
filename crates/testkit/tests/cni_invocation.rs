//! The invoker against small shell-script plugins: what the plugin sees (environment, stdin), what comes
//! back (exit code, result, the spec's error object), and the bound that kills a plugin that hangs.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use testkit::cni::{CniError, CniInvocation, InvokeError};

/// A plugin made of `body` (a /bin/sh script) in `dir`.
fn plugin(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const ECHO_ENV: &str = r#"printf '{"command":"%s","cid":"%s","netns":"%s","ifname":"%s","args":"%s","path":"%s","extra":"%s","home":"%s","stdin":%s}' \
  "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$EXTRA" "${HOME-unset}" "$(cat)""#;

#[test]
fn the_plugin_sees_the_request_in_a_clean_environment() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin(&dir, "echo-env", ECHO_ENV);
    let out = CniInvocation::new(&p, "ADD")
        .container_id("c1")
        .netns("/run/netns/pod1")
        .ifname("net1")
        .args("IgnoreUnknown=1;K8S_POD_NAME=a")
        .env("EXTRA", "x")
        .config(&json!({"cniVersion": "1.0.0", "name": "red"}))
        .run()
        .unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.error(), None);
    let j = &out.json;
    assert_eq!(
        (&j["command"], &j["cid"], &j["netns"], &j["ifname"], &j["args"], &j["path"], &j["extra"]),
        (
            &json!("ADD"),
            &json!("c1"),
            &json!("/run/netns/pod1"),
            &json!("net1"),
            &json!("IgnoreUnknown=1;K8S_POD_NAME=a"),
            &json!("/usr/lib/cni"),
            &json!("x")
        ),
        "{out:?}"
    );
    assert_eq!(j["home"], "unset", "only PATH and CNI_* reach the plugin: {out:?}");
    assert_eq!(j["stdin"], json!({"cniVersion": "1.0.0", "name": "red"}));

    // Unset parts stay unset; inherit_env keeps the caller's environment.
    let out = CniInvocation::new(&p, "VERSION").inherit_env().stdin_bytes(*b"{}").run().unwrap();
    assert_eq!((&out.json["cid"], &out.json["ifname"]), (&json!(""), &json!("")), "{out:?}");
    if let Ok(home) = std::env::var("HOME") {
        assert_eq!(out.json["home"], home.as_str(), "{out:?}");
    }
}

#[test]
fn a_failing_plugin_gives_the_spec_error_and_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        plugin(&dir, "fail", r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no nb"}'; echo 'log line' >&2; exit 1"#);
    let out = CniInvocation::new(&p, "ADD").run().unwrap();
    assert_eq!(out.exit_code, 1);
    assert_eq!(
        out.error(),
        Some(CniError { cni_version: Some("1.0.0".into()), code: 7, msg: "bad config".into(), details: "no nb".into() })
    );
    assert_eq!(out.stderr, "log line\n");

    // Not JSON: kept as text; no error object.
    let p = plugin(&dir, "garbage", "echo 'not json'; exit 2");
    let out = CniInvocation::new(&p, "ADD").run().unwrap();
    assert_eq!((out.exit_code, out.json.clone(), out.error()), (2, json!("not json\n"), None));
}

#[test]
fn a_plugin_that_exits_without_reading_stdin_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin(&dir, "quick", "exit 0");
    let big = vec![b' '; 4 << 20];
    for bound in [None, Some(Duration::from_secs(60))] {
        let mut call = CniInvocation::new(&p, "ADD").stdin_bytes(big.clone());
        if let Some(b) = bound {
            call = call.timeout(b);
        }
        let out = call.run().unwrap();
        assert!(out.success(), "{out:?}");
        assert_eq!(out.json, serde_json::Value::Null);
    }
}

#[test]
fn a_hanging_plugin_is_killed_at_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let p = plugin(&dir, "hang", &format!("echo $$ > {}; exec sleep 600", pid_file.display()));
    let err = CniInvocation::new(&p, "DEL").timeout(Duration::from_secs(2)).run().unwrap_err();
    assert!(matches!(err, InvokeError::TimedOut { ref command, .. } if command == "DEL"), "{err}");
    assert!(err.to_string().contains("DEL did not return within"), "{err}");
    // Killed and reaped: the process is gone.
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "plugin {pid} still runs");

    // A plugin that answers in time is unaffected by the bound.
    let p = plugin(&dir, "ok", r#"echo '{"cniVersion":"1.0.0"}'"#);
    let out = CniInvocation::new(&p, "ADD").timeout(Duration::from_secs(60)).run().unwrap();
    assert_eq!(out.json, json!({"cniVersion": "1.0.0"}));
}
