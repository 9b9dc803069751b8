//! Test world for the CNI end-to-end tests: a real OVN (central + chassis in their own netns),
//! networks made the way an administrator makes them (ovn-nbctl), pods as network namespaces
//! this test creates, and the real `kubetron` binary run as a container runtime runs a plugin.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use daemons::{Central, Chassis, ChassisConfig};
use netdev::TempNetns;
use serde_json::{json, Value};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call, short enough for a netns or an interface.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}x{}", std::process::id() % 100000, COUNTER.fetch_add(1, Ordering::SeqCst))
}

pub struct World {
    pub chassis: Vec<Chassis>,
    pub central: Central,
    pub dir: tempfile::TempDir,
}

impl World {
    /// Central + `nodes` chassis (joined by an underlay when more than one), all registered.
    pub fn new(nodes: usize) -> World {
        let dir = tempfile::tempdir().unwrap();
        let central = Central::start(&dir.path().join("central"), false).expect("central");
        let sb = central.sb_remote();
        let mut chassis = Vec::new();
        for i in 0..nodes {
            let name = format!("node{}", i + 1);
            let cfg = ChassisConfig::new(&name, dir.path().join(&name), &unique("ktn"), &sb, &format!("198.51.100.{}", i + 1));
            chassis.push(Chassis::start(cfg).expect("chassis"));
        }
        for i in 1..nodes {
            daemons::link_underlay(&chassis[0], &chassis[i]).expect("underlay");
        }
        for c in &chassis {
            c.wait_registered(&sb, Duration::from_secs(20)).expect("registered");
        }
        World { chassis, central, dir }
    }

    pub fn nbctl(&self, args: &[&str]) -> String {
        self.central.nbctl(args).unwrap_or_else(|e| panic!("ovn-nbctl {args:?}: {e}"))
    }

    /// A network as an administrator makes it: a switch, optionally with a subnet (the first 9
    /// addresses excluded from dynamic allocation, .1 the router) and native DHCP.
    pub fn network(&self, name: &str, subnet: Option<&str>) {
        self.nbctl(&["ls-add", name]);
        if let Some(s) = subnet {
            let base = s.rsplit_once('.').unwrap().0;
            self.nbctl(&[
                "set",
                "Logical_Switch",
                name,
                &format!("other_config:subnet={s}"),
                &format!("other_config:exclude_ips={base}.1..{base}.9"),
            ]);
            let uuid = self.nbctl(&[
                "create", "DHCP_Options", &format!("cidr={s}"),
                &format!("options=\"lease_time\"=\"3600\" \"router\"=\"{base}.1\" \"server_id\"=\"{base}.1\" \"server_mac\"=\"0a:00:00:00:00:01\" \"mtu\"=\"1400\""),
            ]);
            assert!(!uuid.trim().is_empty());
        }
    }

    /// The CNI network config for `network` on chassis `node`.
    pub fn conf(&self, network: &str, node: usize) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": network,
            "type": "kubetron",
            "nb": self.central.nb_remote(),
            "ovs_socket": self.chassis[node].db_remote(),
            "port_up_timeout_ms": 20000,
        })
    }

    /// Logical switch port names in NB.
    pub fn lsps(&self) -> Vec<String> {
        self.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"]).split_whitespace().map(str::to_string).collect()
    }
    /// Bridge ports on br-int of chassis `node` other than the tunnels.
    pub fn bridge_ports(&self, node: usize) -> Vec<String> {
        self.chassis[node]
            .vsctl(&["list-ports", "br-int"])
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("ovn-"))
            .map(str::to_string)
            .collect()
    }
    /// Links in chassis `node`'s netns whose names kubetron gives host ends (`kt...`).
    pub fn host_veths(&self, node: usize) -> Vec<String> {
        let out = daemons::netns::exec(self.chassis[node].netns(), &["ip", "-o", "link"]).unwrap();
        out.lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap().to_string()))
            .filter(|n| n.starts_with("kt"))
            .collect()
    }
}

/// A pod: a network namespace this test made.
pub struct Pod {
    pub ns: TempNetns,
    pub id: String,
}

/// The result of one plugin run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
}

impl Pod {
    pub fn new() -> Pod {
        let ns = TempNetns::new("ktp").unwrap();
        let id = format!("{:x}{}", std::process::id(), unique("c"));
        Pod { ns, id }
    }
    pub fn netns_path(&self) -> PathBuf {
        self.ns.path().to_path_buf()
    }

    /// Runs the plugin binary inside chassis `node`'s netns, as a runtime would.
    pub fn cni(&self, world: &World, node: usize, command: &str, ifname: &str, conf: &Value, args: Option<&str>) -> Out {
        cni_raw(world.chassis[node].netns(), command, &self.id, Some(&self.netns_path()), ifname, conf.to_string().as_bytes(), args)
    }

    /// Runs a command in the pod.
    pub fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", self.ns.name()]).args(cmd).output().unwrap()
    }
    pub fn ping(&self, ip: &str) -> bool {
        self.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "2", ip]).status.success()
    }
    pub fn ping_retry(&self, ip: &str) -> bool {
        (0..10).any(|_| self.ping(ip))
    }
}

pub fn kubetron_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kubetron")
}

/// Runs the plugin with full control over the environment and stdin.
pub fn cni_raw(
    node_ns: &str,
    command: &str,
    container_id: &str,
    netns: Option<&std::path::Path>,
    ifname: &str,
    stdin: &[u8],
    args: Option<&str>,
) -> Out {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", node_ns, kubetron_bin()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = netns {
        c.env("CNI_NETNS", n);
    }
    if let Some(a) = args {
        c.env("CNI_ARGS", a);
    }
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let json = if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Out { code: out.status.code().unwrap_or(-1), json, stderr: String::from_utf8_lossy(&out.stderr).to_string() }
}

/// The pod interface's first IPv4 address from an ADD result (without prefix).
pub fn result_ip(out: &Out) -> String {
    out.json["ips"][0]["address"].as_str().unwrap_or_else(|| panic!("no ip in {out:?}")).split('/').next().unwrap().to_string()
}
