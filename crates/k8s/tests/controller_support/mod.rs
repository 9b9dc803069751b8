//! Shared helpers of the controller tests: a real OVN central (NB + SB + northd), pods, NADs.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use daemons::Central;
use k8s::controller::{Controller, NadMap, Nb};
use k8s::nad::new_nad;
use k8s_openapi::api::core::v1::Pod;

pub use testkit::init_tracing;

pub struct Ovn {
    pub central: Central,
    pub dir: tempfile::TempDir,
}

impl Ovn {
    pub fn start() -> Ovn {
        init_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let central = Central::start(&dir.path().join("central"), false).expect("start OVN central");
        Ovn { central, dir }
    }
    pub fn nbctl(&self, args: &[&str]) -> String {
        self.central.nbctl(args).unwrap_or_else(|e| panic!("ovn-nbctl {args:?}: {e}")).trim().to_string()
    }
    /// A switch with an IPv4 subnet and DHCP options (router .1) for it; returns nothing.
    pub fn subnet_switch(&self, name: &str, cidr: &str, router: &str) {
        self.nbctl(&["ls-add", name]);
        self.nbctl(&["set", "Logical_Switch", name, &format!("other_config:subnet={cidr}"), &format!("other_config:exclude_ips={router}")]);
        self.nbctl(&[
            "create",
            "DHCP_Options",
            &format!("cidr={cidr}"),
            &format!("options:router={router}"),
            "options:lease_time=3600",
            &format!("options:server_id={router}"),
            "options:server_mac=0a:00:00:00:00:01",
        ]);
    }
    /// Marks `port` up the way a real chassis would: a fake SB chassis claims its Port_Binding,
    /// and northd then sets `up=true` in NB (northd overwrites `up` written by hand).
    pub fn bind(&self, port: &str) {
        let _ = self.central.sbctl(&["--may-exist", "chassis-add", "fake-ch", "geneve", "127.0.0.1"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.central.sbctl(&["lsp-bind", port, "fake-ch"]) {
                Ok(_) => return,
                Err(e) if std::time::Instant::now() > deadline => panic!("lsp-bind {port}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    pub fn plain_switch(&self, name: &str) {
        self.nbctl(&["ls-add", name]);
    }
    pub async fn nb(&self) -> Nb {
        let client = ovsdb::Client::connect_to(&self.central.nb_remote()).await.expect("connect NB");
        Nb::start(client).await.expect("replica")
    }
    /// The value of `column` of port `port` (ovn-nbctl's rendering).
    pub fn port_col(&self, port: &str, column: &str) -> String {
        self.nbctl(&["--if-exists", "get", "Logical_Switch_Port", port, column])
    }
    pub fn port_exists(&self, port: &str) -> bool {
        !self.nbctl(&["--bare", "--columns=_uuid", "find", "Logical_Switch_Port", &format!("name=\"{port}\"")]).is_empty()
    }
    pub fn ports_of(&self, switch: &str) -> Vec<String> {
        let out = self.nbctl(&["lsp-list", switch]);
        let mut v: Vec<String> =
            out.lines().filter_map(|l| l.split_whitespace().nth(1)).map(|s| s.trim_matches(|c| c == '(' || c == ')').to_string()).collect();
        v.sort();
        v
    }
}

pub fn nads() -> NadMap {
    let mut m = NadMap::default();
    m.insert(new_nad(
        "ns1",
        "blue",
        r#"{"cniVersion":"1.0.0","type":"kubetron","logical_switch":"blue","capabilities":{"ips":true,"mac":true}}"#,
        &[],
    ));
    m.insert(new_nad("ns1", "red", r#"{"cniVersion":"1.0.0","type":"kubetron","logical_switch":"red"}"#, &[]));
    m.insert(new_nad(
        "ns1",
        "flat",
        r#"{"cniVersion":"1.0.0","type":"kubetron","logical_switch":"flat","capabilities":{"mac":true}}"#,
        &[],
    ));
    // blue's switch again, with a CNI network name of its own, an MTU and DHCP in the pod.
    m.insert(new_nad(
        "ns1",
        "purple",
        r#"{"cniVersion":"1.0.0","type":"kubetron","name":"purple-net","logical_switch":"blue","mtu":1300,"dhcp":true}"#,
        &[],
    ));
    m.insert(new_nad("ns1", "ghost", r#"{"cniVersion":"1.0.0","type":"kubetron","logical_switch":"nope"}"#, &[]));
    m.insert(new_nad("ns1", "macvlan", r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0"}"#, &[]));
    m
}

/// The standard test networks: `blue` 10.10.0.0/24 (DHCP, router .1), `red` 10.20.0.0/24 (no DHCP
/// options), `flat` without subnet.
pub fn standard_switches(ovn: &Ovn) {
    ovn.subnet_switch("blue", "10.10.0.0/24", "10.10.0.1");
    ovn.nbctl(&["ls-add", "red", "--", "set", "Logical_Switch", "red", "other_config:subnet=10.20.0.0/24"]);
    ovn.plain_switch("flat");
}

pub fn controller(nb: &Nb) -> Controller {
    Controller::new(nb.clone(), Arc::new(nads()))
}

/// A scheduled, running pod in `ns` with the networks annotation `networks`.
pub fn pod(ns: &str, name: &str, uid: &str, networks: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": ns, "name": name, "uid": uid,
                     "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"}
    }))
    .expect("pod json")
}

pub fn finished(mut p: Pod) -> Pod {
    p.status.as_mut().expect("status").phase = Some("Succeeded".into());
    p
}

pub const WAIT: Duration = Duration::from_secs(10);
