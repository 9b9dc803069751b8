//! `kubetron-sandbox up --vm`: a virtual machine the way KubeVirt runs one, on red and blue.
//!
//! A launcher pod (a netns named like KubeVirt's `virt-launcher-<vm>-<suffix>` pod) is plugged by the
//! kubetron CNI plugin (standalone mode) on red and blue under KubeVirt's interface names
//! ([`model::kubevirt::hashed_ifname`]) with the MACs the VM's network-selection elements ask for and
//! no address on the pod side (DHCP mode: the VM asks OVN). Inside it, KubeVirt's bridge binding
//! (`k6t-*` bridge + tap per interface) and a qemu guest (`testkit::vm`, TCG) whose NICs carry those
//! MACs; it gets its addresses from OVN's native DHCP and pings pod1 on both networks.
//!
//! With two nodes, one live migration node1 -> node2 while pod1 pings the VM every 10 ms: a target
//! launcher on node2 plugged the way the node agent plugs a migration target (a veth on br-int with the
//! same `iface-id`), the ports bound to both chassis with `activation-strategy=rarp`
//! ([`model::kubevirt::Placement::chassis_options`]) before the target qemu starts, then to the target
//! only once QMP reported completion. The outage and duplicate replies are printed.
//!
//! qemu keeps running after `up` returns; `down` stops it by its pid file (only a process whose
//! command line names the sandbox directory) before the namespaces go.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model::kubevirt::{MigrationMode, Placement};
use netdev::{Handle, Netns};
use serde::{Deserialize, Serialize};
use serde_json::json;
use testkit::cni::CniInvocation;
use testkit::vm::{self, GuestImage, Nic, Pinger, Vm, VmConfig};

use crate::state::{IfaceState, SandboxState};
use crate::Error;

/// The VM's name (KubeVirt: the VMI, annotation `kubevirt.io/domain`).
pub const VM_NAME: &str = "vm1";
/// The launcher pod's name.
pub const LAUNCHER_POD: &str = "virt-launcher-vm1-x7k2p";
/// The MACs the VM asks for on red and blue (the network-selection elements' `mac`).
const MACS: [(&str, &str); 2] = [("red", "02:6b:74:01:00:01"), ("blue", "02:6b:74:02:00:01")];
const BOOT: Duration = Duration::from_secs(180);
/// Subdirectory of the state directory with qemu's pid file, QMP socket and console log.
pub const VM_DIR: &str = "vm";

/// The VM of a `--vm` sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VmState {
    pub name: String,
    /// The launcher pod it runs in now.
    pub pod: String,
    /// Node index (into [`SandboxState::nodes`]).
    pub node: usize,
    /// The launcher pod's netns.
    pub netns: String,
    /// qemu's pid file.
    pub pidfile: PathBuf,
    /// qemu's QMP socket.
    pub qmp: PathBuf,
    /// The serial console log.
    pub console: PathBuf,
    /// The VM's interfaces: pod interface name, network, the VM's MAC, the address it leased.
    pub interfaces: Vec<IfaceState>,
    /// Every launcher netns made (the source of a migration too), for `down`.
    pub netns_all: Vec<String>,
    /// One line per live migration done.
    #[serde(default)]
    pub migrations: Vec<String>,
}

impl VmState {
    /// qemu's pid when it runs (its pid file names a living process whose command line names `dir`).
    pub fn running_pid(&self, dir: &Path) -> Option<i32> {
        let pid = daemons::process::read_pidfile(&self.pidfile).ok().flatten()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()).then_some(pid)
    }
}

/// qemu's resident set size in MB.
pub fn rss_mb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())))
        .unwrap_or(0)
        / 1024
}

fn step_err(what: &str) -> impl Fn(vm::VmError) -> Error + '_ {
    move |e| Error::Step(format!("{what}: {e}"))
}

fn standalone_conf(st: &SandboxState, net: &str, node: usize, mac: &str) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0", "name": net, "type": "kubetron", "mode": "standalone",
        "nb": st.nb_remote, "ovs_socket": st.nodes[node].db_remote, "dhcp": true,
        "capabilities": {"mac": true}, "runtimeConfig": {"mac": mac},
    })
}

/// The guest image (built from Debian packages on the first run, then cached).
pub fn guest_image() -> Result<GuestImage, Error> {
    GuestImage::ensure().map_err(step_err("building the guest image"))
}

/// Makes the launcher pod on node 0, plugs it on red and blue, does the bridge binding, starts qemu and
/// waits for both leases and the guest's pings to pod1. Returns the state and the running VM.
pub fn start(plugin: &Path, dir: &Path, st: &SandboxState, img: &GuestImage) -> Result<(VmState, Vm), Error> {
    let node = 0;
    let netns = format!("{}-{LAUNCHER_POD}", st.prefix);
    let guard = daemons::netns::NetnsGuard::create(&netns)?;
    let netns_path = Netns::named_path(&netns);
    let mut interfaces = Vec::new();
    let mut nics = Vec::new();
    for (net, mac) in MACS {
        let ifname = model::kubevirt::hashed_ifname(net);
        let out = CniInvocation::new(plugin, "ADD")
            .inherit_env()
            .in_named_netns(&st.nodes[node].netns)
            .container_id(&format!("sandbox-{LAUNCHER_POD}"))
            .netns(&netns_path)
            .ifname(&ifname)
            .args(&format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={LAUNCHER_POD}", crate::kube::NAMESPACE))
            .config(&standalone_conf(st, net, node, mac))
            .timeout(Duration::from_secs(120))
            .run()
            .map_err(|e| Error::Step(e.to_string()))?;
        if !out.success() {
            let msg = out.error().map(|e| e.msg).unwrap_or_else(|| out.stderr.clone());
            return Err(Error::Step(format!("CNI ADD {ifname} of {LAUNCHER_POD} failed: {msg}")));
        }
        let tap = vm::bridge_binding(&netns_path, &ifname, 1400).map_err(step_err("bridge binding"))?;
        nics.push(Nic { tap, mac: mac.to_string() });
        interfaces.push(IfaceState { ifname, network: net.to_string(), mac: mac.to_string(), ip: String::new() });
    }
    let vmdir = dir.join(VM_DIR);
    std::fs::create_dir_all(&vmdir).map_err(|e| Error::Io { path: vmdir.clone(), source: e })?;
    let pod1 = &st.pods[0];
    let targets: Vec<&str> = pod1.interfaces.iter().map(|i| i.ip.split('/').next().unwrap_or("")).collect();
    let mut cfg = VmConfig::new(VM_NAME, &netns_path, &vmdir, nics);
    cfg.append = format!("vmprobe.ping={}", targets.join(","));
    let v = Vm::start(img, cfg).map_err(step_err("starting qemu"))?;
    let leases = v.wait_leases(2, BOOT).map_err(step_err("waiting for the VM's DHCP leases"))?;
    for (i, l) in interfaces.iter_mut().zip(&leases) {
        i.ip = format!("{}/{}", l.ip, l.prefix);
    }
    for dst in &targets {
        let gp = v.wait_console(&format!("VMPROBE guest-ping dst={dst} "), BOOT).map_err(step_err("the VM's ping"))?;
        if !gp.text.contains("result=ok") {
            return Err(Error::Step(format!("VM -> pod1 {dst}: {}", gp.text)));
        }
    }
    let state = VmState {
        name: VM_NAME.into(),
        pod: LAUNCHER_POD.into(),
        node,
        netns: netns.clone(),
        pidfile: vmdir.join(format!("{VM_NAME}.pid")),
        qmp: v.qmp_path().to_path_buf(),
        console: vmdir.join(format!("{VM_NAME}.console")),
        interfaces,
        netns_all: vec![netns],
        migrations: Vec::new(),
    };
    std::mem::forget(guard);
    Ok((state, v))
}

/// pod1 -> VM pings on both networks; prints one line per network.
pub fn ping_from_pod1(st: &SandboxState, vmst: &VmState) -> Result<(), Error> {
    let from = &st.pods[0];
    for i in &vmst.interfaces {
        let ip = i.ip.split('/').next().unwrap_or("");
        let mut last = String::new();
        let ok = (0..10).any(|_| {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &from.netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", ip])
                .output();
            match out {
                Ok(o) => {
                    last = String::from_utf8_lossy(&o.stdout).into_owned();
                    o.status.success()
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        });
        if !ok {
            return Err(Error::Step(format!("{} -> {} {ip} on {}: no reply\n{last}", from.name, vmst.name, i.network)));
        }
        let rtt = last.lines().find(|l| l.contains("min/avg")).and_then(|l| l.split('=').nth(1)).unwrap_or("").trim().to_string();
        println!("{} {} -> {} {ip}: rtt min/avg/max/mdev {rtt}", i.network, from.name, vmst.name);
    }
    Ok(())
}

fn nbctl(st: &SandboxState, args: &[&str]) -> Result<String, Error> {
    let db = format!("--db={}", st.nb_remote);
    let mut a = vec![db.as_str(), "--timeout=30"];
    a.extend_from_slice(args);
    Ok(daemons::process::run("ovn-nbctl", &a)?)
}

fn sbctl(st: &SandboxState, args: &[&str]) -> Result<String, Error> {
    let db = format!("--db={}", st.sb_remote);
    let mut a = vec![db.as_str(), "--timeout=30"];
    a.extend_from_slice(args);
    Ok(daemons::process::run("ovn-sbctl", &a)?)
}

fn vsctl(st: &SandboxState, node: usize, args: &[&str]) -> Result<String, Error> {
    let db = format!("--db={}", st.nodes[node].db_remote);
    let mut a = vec![db.as_str(), "--timeout=30"];
    a.extend_from_slice(args);
    Ok(daemons::process::run("ovs-vsctl", &a)?)
}

fn set_chassis_options(st: &SandboxState, lsps: &[String], p: &Placement) -> Result<(), Error> {
    let o = p.chassis_options(MigrationMode::Rarp).unwrap_or_default();
    let mut args: Vec<String> = Vec::new();
    for lsp in lsps {
        args.push("--".into());
        match &o.requested_chassis {
            Some(c) => args.extend(["set", "Logical_Switch_Port", lsp, &format!("options:requested-chassis={c}")].map(String::from)),
            None => args.extend(["remove", "Logical_Switch_Port", lsp, "options", "requested-chassis"].map(String::from)),
        }
        args.push("--".into());
        match o.activation_strategy {
            Some(s) => args.extend(["set", "Logical_Switch_Port", lsp, &format!("options:activation-strategy={s}")].map(String::from)),
            None => args.extend(["remove", "Logical_Switch_Port", lsp, "options", "activation-strategy"].map(String::from)),
        }
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    nbctl(st, &a)?;
    Ok(())
}

fn poll<T>(what: &str, bound: Duration, mut f: impl FnMut() -> Result<Option<T>, Error>) -> Result<T, Error> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(t) = f()? {
            return Ok(t);
        }
        if Instant::now() >= deadline {
            return Err(Error::Step(format!("timed out after {bound:?} waiting for {what}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One live migration of the VM from its node to node 1 (node2) while pod1 pings it every 10 ms;
/// returns the new VM and a summary line (also recorded in the state).
pub fn migrate(st: &SandboxState, vmst: &mut VmState, dir: &Path, img: &GuestImage, src_vm: Vm) -> Result<(Vm, String), Error> {
    let (src, dst) = (vmst.node, 1 - vmst.node);
    let (src_name, dst_name) = (st.nodes[src].name.clone(), st.nodes[dst].name.clone());
    let lsps: Vec<String> = vmst.interfaces.iter().map(|i| model::names::pod_port(crate::kube::NAMESPACE, &vmst.pod, &i.ifname)).collect();
    // The source pins the ports before a second interface with their iface-ids exists.
    set_chassis_options(st, &lsps, &Placement::On(Some(src_name.clone())))?;
    nbctl(st, &["--wait=hv", "sync"])?;

    // The target launcher pod on node2, plugged as the node agent plugs a migration target.
    let pod = "virt-launcher-vm1-m9q4z";
    let netns = format!("{}-{pod}", st.prefix);
    let guard = daemons::netns::NetnsGuard::create(&netns)?;
    vmst.netns_all.push(netns.clone());
    let netns_path = Netns::named_path(&netns);
    let pod_ns = Netns::open(&netns_path).map_err(|e| Error::Step(format!("open {netns}: {e}")))?;
    let chassis_ns = Netns::open(Netns::named_path(&st.nodes[dst].netns)).map_err(|e| Error::Step(e.to_string()))?;
    let h = Handle::in_netns(&chassis_ns).map_err(|e| Error::Step(e.to_string()))?;
    let mut nics = Vec::new();
    for (k, (i, lsp)) in vmst.interfaces.iter().zip(&lsps).enumerate() {
        let host = format!("ktvm{k}{}", std::process::id() % 10000);
        h.veth(&host, &i.ifname).peer_netns(&pod_ns).mtu(1400).host_up().create().map_err(|e| Error::Step(format!("veth {host}: {e}")))?;
        let _ = h.disable_ipv6(&host);
        vsctl(st, dst, &["add-port", "br-int", &host, "--", "set", "Interface", &host, &format!("external_ids:iface-id={lsp}")])?;
        let tap = vm::bridge_binding(&netns_path, &i.ifname, 1400).map_err(step_err("target bridge binding"))?;
        nics.push(Nic { tap, mac: i.mac.clone() });
    }
    // Both chassis, the target activated by the VM's RARP: in NB before the target qemu runs.
    set_chassis_options(st, &lsps, &Placement::Migrating { source: src_name.clone(), target: dst_name.clone() })?;
    nbctl(st, &["--wait=hv", "sync"])?;
    let dst_uuid = sbctl(st, &["--bare", "--columns=_uuid", "find", "Chassis", &format!("name={dst_name}")])?.trim().to_string();
    for lsp in &lsps {
        poll("the target chassis as additional chassis", Duration::from_secs(30), || {
            let a = sbctl(st, &["--bare", "--columns=additional_chassis", "find", "Port_Binding", &format!("logical_port={lsp}")])?;
            Ok((a.trim() == dst_uuid).then_some(()))
        })?;
    }
    let name = format!("{VM_NAME}-{dst_name}");
    let vmdir = dir.join(VM_DIR);
    let mut cfg = VmConfig::new(&name, &netns_path, &vmdir, nics);
    cfg.incoming = true;
    let target = Vm::start(img, cfg).map_err(step_err("starting the target qemu"))?;

    let vm_ip: IpAddr = vmst.interfaces[0].ip.split('/').next().unwrap_or("").parse().map_err(|e| Error::Step(format!("VM IP: {e}")))?;
    let pod1_ns = Netns::named_path(&st.pods[0].netns);
    let pinger = Pinger::start(&pod1_ns, vm_ip).map_err(step_err("ping"))?;
    poll("pings answered by the source VM", Duration::from_secs(60), || Ok((pinger.snapshot().answered() >= 30).then_some(())))?;
    let report = src_vm.migrate_to(&target, || {}).map_err(step_err("live migration"))?;
    if report.status != "completed" {
        return Err(Error::Step(format!("live migration ended {}", report.status)));
    }
    // Done: the target only.
    set_chassis_options(st, &lsps, &Placement::On(Some(dst_name.clone())))?;
    nbctl(st, &["--wait=hv", "sync"])?;
    let since = report.t_dst_resume_ms.unwrap_or(report.t_completed_ms);
    poll("pings answered by the VM on node2", Duration::from_secs(60), || {
        Ok((pinger.snapshot().answered_after(since) >= 100).then_some(()))
    })?;
    let log = pinger.stop();
    let outage = log.outage_around(report.t_completed_ms, Duration::from_secs(3));
    let line = format!(
        "{VM_NAME} {src_name} -> {dst_name}: migration {} ms (qemu downtime {} ms); pod1 pinging every 10 ms: outage {:.0} ms, {} lost, {} duplicate replies",
        report.total_ms,
        report.downtime_ms,
        outage.duration_ms,
        outage.lost,
        log.dups()
    );
    // The source launcher: qemu stopped, its interfaces off br-int (its netns goes with `down`).
    src_vm.stop();
    for lsp in &lsps {
        let found = vsctl(st, src, &["--bare", "--columns=name", "find", "Interface", &format!("external_ids:iface-id={lsp}")])?;
        for port in found.split_whitespace() {
            vsctl(st, src, &["--if-exists", "del-port", "br-int", port])?;
        }
    }
    vmst.node = dst;
    vmst.pod = pod.into();
    vmst.netns = netns;
    vmst.pidfile = vmdir.join(format!("{name}.pid"));
    vmst.qmp = target.qmp_path().to_path_buf();
    vmst.console = vmdir.join(format!("{name}.console"));
    vmst.migrations.push(line.clone());
    std::mem::forget(guard);
    Ok((target, line))
}

/// Lets qemu run on after this process exits (`down` stops it by its pid file).
pub fn keep(v: Vm) {
    std::mem::forget(v);
}

/// Stops the VM's qemu (SIGTERM, SIGKILL after 5 s) by its pid file, only if that process's command
/// line names `dir`.
pub fn stop(dir: &Path, vmst: &VmState) {
    let vmdir = dir.join(VM_DIR);
    let mut pidfiles = vec![vmst.pidfile.clone()];
    if let Ok(rd) = std::fs::read_dir(&vmdir) {
        pidfiles.extend(rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pid")));
    }
    for pf in pidfiles {
        let Some(pid) = daemons::process::read_pidfile(&pf).ok().flatten() else { continue };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&*dir.to_string_lossy()))
            .unwrap_or(false);
        if ours {
            let _ = daemons::process::stop_pid(pid, Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&pf);
    }
}

/// The VM table: VM, node, pod interface, network, MAC, IP (leased by DHCP), qemu.
pub fn print(dir: &Path, st: &SandboxState, vmst: &VmState) {
    let node = st.nodes.get(vmst.node).map(|n| n.name.as_str()).unwrap_or("?");
    let qemu = match vmst.running_pid(dir) {
        Some(pid) => format!("pid {pid}, rss {} MB", rss_mb(pid)),
        None => "STOPPED".into(),
    };
    println!("\n{:<6} {:<6} {:<15} {:<8} {:<18} {:<24} QEMU", "VM", "NODE", "POD IFACE", "NETWORK", "MAC", "IP");
    for i in &vmst.interfaces {
        println!("{:<6} {:<6} {:<15} {:<8} {:<18} {:<24} {qemu}", vmst.name, node, i.ifname, i.network, i.mac, format!("{} (DHCP)", i.ip));
    }
    println!("launcher pod {} (netns {}), KubeVirt bridge binding; console {}", vmst.pod, vmst.netns, vmst.console.display());
    for m in &vmst.migrations {
        println!("{m}");
    }
}
