//! The cluster-mode shim (`kubetron-cni`) run as a runtime runs it (`testkit::cni::CniInvocation`)
//! against a test agent on a unix socket in a temp directory: what it sends, what it prints, and
//! its bounded failures. No daemons.

#[path = "support/test_agent.rs"]
mod test_agent;

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use test_agent::{Answer, TestAgent};
use testkit::cni::{CniInvocation, CniOutcome};

const SHIM: &str = env!("CARGO_BIN_EXE_kubetron-cni");
const ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_UID=5b0e6f6c";

fn conf(version: &str, socket: &Path) -> Value {
    json!({"cniVersion": version, "name": "red", "type": "kubetron", "agent_socket": socket, "timeout_ms": 1000,
           "logical_switch": "red-ls", "someUnknownKey": {"kept": true}})
}

fn invoke(cmd: &str, config: &Value) -> CniInvocation {
    CniInvocation::new(SHIM, cmd)
        .container_id("c0ffee")
        .netns("/var/run/netns/cni-shim-test")
        .ifname("net1")
        .args(ARGS)
        .config(config)
        // Generous: the shim's own bounds are what the tests check.
        .timeout(Duration::from_secs(60))
}

fn run(cmd: &str, config: &Value) -> CniOutcome {
    invoke(cmd, config).run().expect("the shim ran")
}

/// An ADD result at 1.1.0, as the agent answers.
fn agent_result() -> Value {
    json!({"cniVersion": "1.1.0",
           "interfaces": [{"name": "veth1a2b3c", "mac": "0a:58:0a:01:00:0d", "mtu": 1400},
                          {"name": "net1", "mac": "0a:58:0a:01:00:0c", "mtu": 1400, "sandbox": "/var/run/netns/cni-shim-test"}],
           "ips": [{"address": "10.1.0.12/24", "gateway": "10.1.0.1", "interface": 1}],
           "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
           "dns": {"nameservers": ["10.1.0.2"]}})
}

#[test]
fn add_sends_the_cni_env_and_the_config_and_prints_the_result() {
    let agent = TestAgent::start(Answer::Json(200, json!({"result": agent_result()})));
    let config = conf("1.1.0", agent.socket());
    let out = invoke("ADD", &config).env("HOME", "/root").env("KUBETRON_SECRET", "not for the agent").run().unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.json, agent_result(), "a 1.1.0 result passes through unchanged");
    let got = agent.got();
    assert_eq!(got.len(), 1, "{got:?}");
    let g = &got[0];
    assert_eq!((g.method.as_str(), g.path.as_str()), ("POST", "/cni"));
    assert_eq!(g.header("content-type"), Some("application/json"));
    assert_eq!(g.body["api"], json!(1));
    assert_eq!(g.body["deadline_ms"], json!(1000), "deadline = timeout_ms");
    assert_eq!(g.body["config"], config, "config = stdin, unknown keys included");
    assert_eq!(
        g.body["env"],
        json!({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/var/run/netns/cni-shim-test",
               "CNI_IFNAME": "net1", "CNI_ARGS": ARGS, "CNI_PATH": testkit::cni::DEFAULT_CNI_PATH}),
        "only the CNI_* variables travel"
    );
}

#[test]
fn the_result_is_converted_to_the_configs_version() {
    let agent = TestAgent::start(Answer::Json(200, json!({"result": agent_result()})));
    for version in ["1.0.0", "0.4.0", "0.3.1"] {
        let out = run("ADD", &conf(version, agent.socket()));
        assert!(out.success(), "{version}: {out:?}");
        let r = &out.json;
        assert_eq!(r["cniVersion"], json!(version));
        assert_eq!(r["interfaces"][1]["name"], json!("net1"));
        assert!(r["interfaces"][1].get("mtu").is_none(), "{version}: mtu is a 1.1.0 field: {r}");
        assert_eq!(r["ips"][0]["address"], json!("10.1.0.12/24"));
        assert_eq!(r["ips"][0].get("version").is_some(), version != "1.0.0", "{version}: {r}");
        assert_eq!(r["routes"], agent_result()["routes"]);
    }
    assert_eq!(agent.got().len(), 3);
}

#[test]
fn an_agent_error_passes_through_with_its_code() {
    for (code, msg) in [(7, "kubetron.io/interfaces names port other_pod_net1, not team-a_web-0_net1"), (11, "busy"), (101, "own code")] {
        let error = json!({"cniVersion": "1.1.0", "code": code, "msg": msg, "details": "more"});
        let agent = TestAgent::start(Answer::Json(200, json!({ "error": error })));
        let out = run("ADD", &conf("1.0.0", agent.socket()));
        assert_eq!(out.exit_code, 1, "{out:?}");
        let e = out.error().expect("an error object");
        assert_eq!((e.code, e.msg.as_str(), e.details.as_str()), (code, msg, "more"));
        assert_eq!(e.cni_version.as_deref(), Some("1.0.0"), "labelled with the config's version");
    }
}

#[test]
fn the_other_verbs_are_forwarded() {
    let agent = TestAgent::start(Answer::Json(200, json!({"result": null})));
    let mut check = conf("1.1.0", agent.socket());
    check["prevResult"] = agent_result();
    let mut gc = conf("1.1.0", agent.socket());
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c0ffee", "ifname": "net1"}]);
    for (cmd, config) in [("DEL", conf("1.1.0", agent.socket())), ("CHECK", check), ("STATUS", conf("1.1.0", agent.socket())), ("GC", gc)] {
        let out = run(cmd, &config);
        assert!(out.success(), "{cmd}: {out:?}");
        assert_eq!(out.stdout, "", "{cmd}");
        let got = agent.got();
        let last = got.last().unwrap();
        assert_eq!(last.body["env"]["CNI_COMMAND"], json!(cmd));
        assert_eq!(last.body["config"], config, "{cmd}");
    }
    assert_eq!(agent.got().len(), 4);
}

#[test]
fn an_http_error_is_try_again_later_naming_the_socket() {
    let agent = TestAgent::start(Answer::Json(500, json!({"oops": "boom"})));
    let out = run("ADD", &conf("1.1.0", agent.socket()));
    let e = out.error().unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(e.code, 11, "{e:?}");
    assert!(e.msg.contains("HTTP 500") && e.msg.contains("boom") && e.msg.contains(&agent.socket().display().to_string()), "{e:?}");
    // An answer that is not the protocol's.
    let agent = TestAgent::start(Answer::Json(200, json!({"something": "else"})));
    let e = run("ADD", &conf("1.1.0", agent.socket())).error().unwrap();
    assert_eq!(e.code, 11, "{e:?}");
    assert!(e.msg.contains("not a kubetron agent response"), "{e:?}");
}

#[test]
fn no_agent_fails_at_once_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("kubetron.sock");
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap()); // the file stays, nothing listens
    for socket in [&missing, &stale] {
        let config = conf("1.1.0", socket);
        let e = run("ADD", &config).error().unwrap();
        assert_eq!(e.code, 11, "{e:?}");
        assert!(e.msg.contains(&format!("not reachable at {}", socket.display())) && e.msg.contains("kubetron-node"), "{e:?}");
        let e = run("STATUS", &config).error().unwrap();
        assert_eq!(e.code, 50, "STATUS says 'not available': {e:?}");
        assert!(e.msg.contains(&socket.display().to_string()), "{e:?}");
    }
    // DEL: no socket file at all = no agent on this node: nothing to forward to, pod deletion goes on.
    let out = run("DEL", &conf("1.1.0", &missing));
    assert!(out.success(), "{out:?}");
    // A socket that is there but refuses: an agent that is down; the runtime retries DEL.
    let e = run("DEL", &conf("1.1.0", &stale)).error().unwrap();
    assert_eq!(e.code, 11, "{e:?}");
    assert!(e.msg.contains(&stale.display().to_string()), "{e:?}");
}

#[test]
fn an_agent_that_never_answers_is_bounded_by_timeout_ms() {
    let agent = TestAgent::start(Answer::Hang);
    let out = run("ADD", &conf("1.1.0", agent.socket()));
    let e = out.error().unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(e.code, 11, "{e:?}");
    assert!(e.msg.contains("did not answer ADD within 3000 ms") && e.msg.contains(&agent.socket().display().to_string()), "{e:?}");
    assert_eq!(agent.got().len(), 1, "the request got there");
}

#[test]
fn version_is_answered_locally() {
    let agent = TestAgent::start(Answer::Json(500, json!({})));
    for stdin in [json!({"cniVersion": "1.0.0"}), conf("1.1.0", agent.socket())] {
        let out = CniInvocation::new(SHIM, "VERSION").config(&stdin).timeout(Duration::from_secs(60)).run().unwrap();
        assert!(out.success(), "{out:?}");
        assert_eq!(out.json["cniVersion"], json!("1.1.0"));
        assert!(out.json["supportedVersions"].as_array().unwrap().contains(&json!("0.4.0")), "{out:?}");
    }
    assert!(agent.got().is_empty(), "VERSION never reaches the agent");
}

#[test]
fn bad_requests_never_reach_the_agent() {
    let agent = TestAgent::start(Answer::Json(200, json!({"result": agent_result()})));
    // A standalone config (nb without mode, or mode standalone) needs the kubetron binary.
    let mut nb = conf("1.1.0", agent.socket());
    nb["nb"] = json!("unix:/run/ovn/ovnnb_db.sock");
    let mut explicit = conf("1.1.0", agent.socket());
    explicit["mode"] = json!("standalone");
    for config in [nb, explicit] {
        let e = run("ADD", &config).error().unwrap();
        assert_eq!(e.code, 7, "{e:?}");
        assert!(e.msg.contains("mode standalone needs the kubetron binary"), "{e:?}");
    }
    // An invalid environment (no CNI_IFNAME) and an invalid config are the dispatcher's errors.
    let e = CniInvocation::new(SHIM, "ADD")
        .container_id("c0ffee")
        .netns("/var/run/netns/x")
        .config(&conf("1.1.0", agent.socket()))
        .timeout(Duration::from_secs(60))
        .run()
        .unwrap()
        .error()
        .unwrap();
    assert_eq!(e.code, 4, "{e:?}");
    let mut bad = conf("1.1.0", agent.socket());
    bad["mode"] = json!("clustered");
    assert_eq!(run("ADD", &bad).error().unwrap().code, 7);
    bad["mode"] = json!("cluster");
    bad["agent_socket"] = json!("relative.sock");
    let e = run("ADD", &bad).error().unwrap();
    assert!(e.code == 7 && e.msg.contains("agent_socket"), "{e:?}");
    assert!(agent.got().is_empty(), "{:?}", agent.got());
    // Explicit cluster and chained modes are forwarded.
    for mode in ["cluster", "chained"] {
        let mut c = conf("1.1.0", agent.socket());
        c["mode"] = json!(mode);
        assert!(run("ADD", &c).success(), "{mode}");
    }
    assert_eq!(agent.got().len(), 2);
}

/// Chained mode: a pod whose annotations (passed by the runtime) ask for no network is answered by
/// the shim alone, with no agent at all: ADD prints prevResult, DEL and CHECK succeed. A pod that
/// asks for networks is forwarded (and fails here: no agent).
#[test]
fn chained_pods_asking_for_nothing_never_reach_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap()); // nothing listens: any forwarded call fails with 11
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/cni-shim-test"}],
                      "ips": [{"address": "10.244.0.5/24", "interface": 0}]});
    let chained = |annotations: Value| {
        let mut c = conf("1.0.0", &stale);
        c["mode"] = json!("chained");
        c["prevResult"] = prev.clone();
        c["runtimeConfig"] = json!({"io.kubernetes.cri.pod-annotations": annotations});
        c
    };
    for annotations in [json!({}), json!({"k8s.v1.cni.cncf.io/networks": " "}), json!({"other": "x"})] {
        let c = chained(annotations.clone());
        let add = invoke("ADD", &c).ifname("eth0").run().unwrap();
        assert!(add.success(), "{annotations}: {add:?}");
        assert_eq!(add.json["interfaces"], prev["interfaces"], "{add:?}");
        assert_eq!(add.json["ips"], prev["ips"], "{add:?}");
        assert!(invoke("DEL", &c).ifname("eth0").run().unwrap().success());
        assert!(invoke("CHECK", &c).ifname("eth0").run().unwrap().success());
    }
    let asks = chained(json!({"k8s.v1.cni.cncf.io/networks": "red"}));
    let e = invoke("ADD", &asks).ifname("eth0").run().unwrap().error().unwrap();
    assert_eq!(e.code, 11, "forwarded to the (absent) agent: {e:?}");
    // Without the runtime's annotations the shim cannot tell: forwarded too.
    let mut unknown = chained(json!({}));
    unknown["runtimeConfig"] = json!({});
    assert_eq!(invoke("ADD", &unknown).ifname("eth0").run().unwrap().error().unwrap().code, 11);
}
