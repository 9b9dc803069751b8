//! Test world for the CNI end-to-end tests: a real OVN (central + chassis in their own netns),
//! networks made the way an administrator makes them (ovn-nbctl), pods as network namespaces
//! this test creates, and the real `kubetron` binary run as a container runtime runs a plugin.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use daemons::{Central, Chassis, ChassisConfig};
use netdev::TempNetns;
use serde_json::{json, Value};
use testkit::cni::CniInvocation;
pub use testkit::cni::CniOutcome;

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
        World::with_tcp(nodes, false)
    }

    /// [`World::new`], NB and SB also listening on TCP 127.0.0.1 when `tcp` (for neutron-server).
    pub fn with_tcp(nodes: usize, tcp: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let central = Central::start(&dir.path().join("central"), tcp).expect("central");
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

    /// The real `kubetron` binary run in chassis `node`'s netns as a runtime runs it (a clean
    /// environment, `CNI_COMMAND=command`); the rest of the request is up to the caller.
    pub fn plugin(&self, node: usize, command: &str) -> CniInvocation {
        self.cni_binary(std::path::Path::new(kubetron_bin()), node, command)
    }

    /// CNI binary `bin` (the plugin, or the cluster-mode shim) run in chassis `node`'s netns as a
    /// runtime runs it.
    pub fn cni_binary(&self, bin: &std::path::Path, node: usize, command: &str) -> CniInvocation {
        CniInvocation::new(bin, command).in_named_netns(self.chassis[node].netns())
    }

    /// Column `column` of the SB Port_Binding of logical port `lsp` (bare).
    pub fn sb_port_binding(&self, lsp: &str, column: &str) -> String {
        self.central
            .sbctl(&["--bare", &format!("--columns={column}"), "find", "Port_Binding", &format!("logical_port=\"{lsp}\"")])
            .unwrap()
            .trim()
            .to_string()
    }
    /// The SB Chassis row UUID of chassis `name`.
    pub fn chassis_uuid(&self, name: &str) -> String {
        self.central.sbctl(&["--bare", "--columns=_uuid", "find", "Chassis", &format!("name={name}")]).unwrap().trim().to_string()
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
    /// Asserts that nothing of an attachment is left on chassis 0 (no logical switch port, no br-int port,
    /// no host veth) nor in `pods` (no `net1`).
    pub fn assert_clean(&self, pods: &[&Pod]) {
        assert!(self.lsps().is_empty(), "logical switch ports left: {:?}", self.lsps());
        assert!(self.bridge_ports(0).is_empty(), "bridge ports left: {:?}", self.bridge_ports(0));
        assert!(self.host_veths(0).is_empty(), "veths left: {:?}", self.host_veths(0));
        for pod in pods {
            let links = String::from_utf8(pod.exec(&["ip", "-o", "link"]).stdout).unwrap();
            assert!(!links.contains("net1"), "{links}");
        }
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

impl Pod {
    pub fn new() -> Pod {
        let ns = TempNetns::new("ktp").unwrap();
        let id = format!("{:x}{}", std::process::id(), unique("c"));
        Pod { ns, id }
    }
    pub fn netns_path(&self) -> PathBuf {
        self.ns.path().to_path_buf()
    }

    /// A call of CNI binary `bin` (the plugin, or the cluster-mode shim) for this pod inside chassis
    /// `node`'s netns, as a runtime makes it.
    pub fn call(&self, world: &World, bin: &std::path::Path, node: usize, command: &str, ifname: &str, conf: &Value) -> CniInvocation {
        world.cni_binary(bin, node, command).container_id(&self.id).netns(self.netns_path()).ifname(ifname).config(conf)
    }

    /// Runs the plugin binary inside chassis `node`'s netns, as a runtime would.
    pub fn cni(&self, world: &World, node: usize, command: &str, ifname: &str, conf: &Value, args: Option<&str>) -> CniOutcome {
        let mut call = self.call(world, std::path::Path::new(kubetron_bin()), node, command, ifname, conf);
        if let Some(a) = args {
            call = call.args(a);
        }
        call.run().expect("run the plugin")
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

/// The pod interface's first IPv4 address from an ADD result (without prefix).
pub fn result_ip(out: &CniOutcome) -> String {
    out.json["ips"][0]["address"].as_str().unwrap_or_else(|| panic!("no ip in {out:?}")).split('/').next().unwrap().to_string()
}
