//! The `kubetron` binary run as a CNI plugin picks its path by the config's `mode`: `cluster` and
//! `chained` go to the node agent (here the test agent of `crates/cni/tests/support`), `standalone`
//! (or `nb` without `mode`, what every config meant so far) stays the direct path. No daemons.

#[path = "../../cni/tests/support/test_agent.rs"]
mod test_agent;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use test_agent::{Answer, TestAgent};
use testkit::cni::{CniInvocation, CniOutcome};

const KUBETRON: &str = env!("CARGO_BIN_EXE_kubetron");

fn conf(socket: &Path) -> Value {
    json!({"cniVersion": "1.1.0", "name": "red", "type": "kubetron", "agent_socket": socket, "timeout_ms": 1000})
}

fn run(cmd: &str, config: &Value) -> CniOutcome {
    CniInvocation::new(KUBETRON, cmd)
        .container_id("c0ffee")
        .netns("/var/run/netns/cni-modes-test")
        .ifname("net1")
        .args("IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0")
        .config(config)
        .timeout(Duration::from_secs(60))
        .run()
        .expect("kubetron ran")
}

#[test]
fn cluster_and_chained_configs_go_to_the_agent() {
    let result = json!({"cniVersion": "1.1.0", "interfaces": [{"name": "net1", "mac": "0a:58:0a:01:00:0c", "sandbox": "/var/run/netns/cni-modes-test"}],
                        "ips": [{"address": "10.1.0.12/24", "interface": 0}]});
    let agent = TestAgent::start(Answer::Json(200, json!({ "result": result })));
    let mut chained = conf(agent.socket());
    chained["mode"] = json!("chained");
    for config in [conf(agent.socket()), chained] {
        let out = run("ADD", &config);
        assert!(out.success(), "{out:?}");
        assert_eq!(out.json, result);
        assert_eq!(agent.got().last().unwrap().body["config"], config);
    }
    assert_eq!(agent.got().len(), 2);
    // No agent: 11 at once, naming the socket.
    let missing = agent.dir().join("none.sock");
    let e = run("ADD", &conf(&missing)).error().unwrap();
    assert!(e.code == 11 && e.msg.contains(&missing.display().to_string()), "{e:?}");
}

#[test]
fn standalone_configs_stay_on_the_direct_path() {
    let agent = TestAgent::start(Answer::Json(200, json!({"result": null})));
    // Databases where nothing listens: the direct path fails on them, the agent is never asked.
    let nb = format!("unix:{}", agent.dir().join("nb.sock").display());
    let ovs = format!("unix:{}", agent.dir().join("db.sock").display());
    let mut implicit = conf(agent.socket());
    implicit["nb"] = json!(nb);
    implicit["ovs_socket"] = json!(ovs);
    let mut explicit = implicit.clone();
    explicit["mode"] = json!("standalone");
    for config in [implicit, explicit] {
        let e = run("STATUS", &config).error().unwrap();
        assert_eq!(e.code, 50, "{e:?}");
        assert!(e.msg.contains("database is not reachable") && !e.msg.contains("agent"), "the direct path answered: {e:?}");
    }
    // `mode: standalone` without `nb` is the direct path too (which then fails: no netns here).
    let mut no_nb = conf(agent.socket());
    no_nb["mode"] = json!("standalone");
    let e = run("ADD", &no_nb).error().unwrap();
    assert!(!e.msg.contains("agent"), "{e:?}");
    assert!(agent.got().is_empty(), "{:?}", agent.got());
}
