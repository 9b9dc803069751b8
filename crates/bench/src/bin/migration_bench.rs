//! Live-migration benchmark (bench/migration): a real qemu VM (TCG) on a kubetron network, migrated
//! back and forth between two OVN chassis while a pod pings it every 10 ms.
//!
//! `migration_bench --kubetron PATH [--migrations N]` (N >= 5, default 6)
//!
//! The world is the standalone test world: OVN central + chassis node1 and node2 (each in its own
//! netns, joined by an underlay on 198.51.100.0/24), network `red` with OVN native DHCP. The pinger
//! pod and the VM's first launcher pod (node1) are plugged by the real `kubetron` binary in standalone
//! mode (the launcher with KubeVirt's interface name and the VM's MAC, DHCP mode); every later target
//! launcher is plugged the way the node agent plugs a migration target (a veth on br-int carrying the
//! same `iface-id`). Inside each launcher: KubeVirt's bridge binding and qemu from `testkit::vm`.
//!
//! Two series of N migrations each, alternating node1 -> node2 -> node1, in one run (one VM):
//! - `rarp`: before the target qemu starts, the port gets
//!   `Placement::Migrating{src,dst}.chassis_options(MigrationMode::Rarp)` (`requested-chassis=src,dst`,
//!   `activation-strategy=rarp`); once QMP reported `completed` and the target resumed, the target only.
//! - `switch`: the source only during the migration (`MigrationMode::Switch`), switched to the target
//!   the moment QMP reports `completed` (an ideal controller).
//!
//! Per migration: pings lost and the outage (the longest gap between answered probes, by send time,
//! in [start - 1 s, completed + 3 s]), duplicate replies in that window, qemu's total time and
//! downtime. The last line is the key=value summary (outage and duplicates over the rarp series).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use daemons::{Central, Chassis, ChassisConfig};
use model::kubevirt::{ChassisOptions, MigrationMode, Placement};
use netdev::{Handle, Netns, TempNetns};
use serde_json::{json, Value};
use testkit::cni::CniInvocation;
use testkit::vm::{self, GuestImage, Nic, PingLog, Pinger, Vm, VmConfig};

const SUBNET: &str = "10.90.0.0/24";
const VM_MAC: &str = "02:5e:90:00:00:01";
const NAMESPACE: &str = "vms";
const BOOT: Duration = Duration::from_secs(180);
/// Window of a migration's outage: from 1 s before `migrate` to 3 s after completion.
const BEFORE_MS: u64 = 1000;
const AFTER_MS: u64 = 3000;

struct Args {
    kubetron: PathBuf,
    migrations: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args { kubetron: PathBuf::new(), migrations: 6 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow!("{k} needs a value"));
        match k.as_str() {
            "--kubetron" => a.kubetron = v()?.into(),
            "--migrations" => a.migrations = v()?.parse()?,
            _ => bail!("usage: migration_bench --kubetron PATH [--migrations N (>= 5)]"),
        }
    }
    if !a.kubetron.is_file() {
        bail!("--kubetron {} does not exist", a.kubetron.display());
    }
    if a.migrations < 5 {
        bail!("--migrations must be at least 5");
    }
    Ok(a)
}

/// Polls `f` every 20 ms until it gives `Some`, within `bound`.
fn poll<T>(what: &str, bound: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(t) = f()? {
            return Ok(t);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {bound:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct World {
    central: Central,
    chassis: Vec<Chassis>,
    kubetron: PathBuf,
}

impl World {
    fn nbctl(&self, args: &[&str]) -> Result<String> {
        self.central.nbctl(args).map_err(|e| anyhow!("ovn-nbctl {args:?}: {e}"))
    }
    fn sbctl(&self, args: &[&str]) -> Result<String> {
        self.central.sbctl(args).map_err(|e| anyhow!("ovn-sbctl {args:?}: {e}"))
    }
    fn conf(&self, node: usize) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": "red", "type": "kubetron", "mode": "standalone",
            "nb": self.central.nb_remote(), "ovs_socket": self.chassis[node].db_remote(), "port_up_timeout_ms": 30000,
        })
    }
    /// The launcher's config: DHCP mode (the VM asks OVN) and the VM's MAC, as Multus passes the element's `mac`.
    fn launcher_conf(&self, node: usize) -> Value {
        let mut c = self.conf(node);
        c["dhcp"] = json!(true);
        c["capabilities"] = json!({"mac": true});
        c["runtimeConfig"] = json!({"mac": VM_MAC});
        c
    }
    fn cni(&self, node: usize, command: &str, ns: &TempNetns, pod: &str, ifname: &str, conf: &Value) -> Result<Value> {
        let out = CniInvocation::new(&self.kubetron, command)
            .in_named_netns(self.chassis[node].netns())
            .container_id(&format!("bench-{pod}"))
            .netns(ns.path())
            .ifname(ifname)
            .args(&format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME={pod}"))
            .config(conf)
            .timeout(Duration::from_secs(120))
            .run()?;
        if !out.success() {
            bail!("CNI {command} {pod}/{ifname} failed (exit {}): {}{}", out.exit_code, out.stdout, out.stderr);
        }
        Ok(out.json)
    }
    fn chassis_uuid(&self, node: usize) -> Result<String> {
        Ok(self
            .sbctl(&["--bare", "--columns=_uuid", "find", "Chassis", &format!("name={}", self.chassis[node].name())])?
            .trim()
            .to_string())
    }
    fn binding(&self, lsp: &str, column: &str) -> Result<String> {
        Ok(self
            .sbctl(&["--bare", &format!("--columns={column}"), "find", "Port_Binding", &format!("logical_port={lsp}")])?
            .trim()
            .to_string())
    }
    /// Writes the chassis options (absent keys removed), without waiting for the hypervisors.
    fn set_options(&self, lsp: &str, o: &ChassisOptions) -> Result<()> {
        let mut args: Vec<String> = vec!["--".into()];
        match &o.requested_chassis {
            Some(c) => args.extend(["set".into(), "Logical_Switch_Port".into(), lsp.into(), format!("options:requested-chassis={c}")]),
            None => args.extend(["remove".into(), "Logical_Switch_Port".into(), lsp.into(), "options".into(), "requested-chassis".into()]),
        }
        args.push("--".into());
        match o.activation_strategy {
            Some(s) => args.extend(["set".into(), "Logical_Switch_Port".into(), lsp.into(), format!("options:activation-strategy={s}")]),
            None => {
                args.extend(["remove".into(), "Logical_Switch_Port".into(), lsp.into(), "options".into(), "activation-strategy".into()])
            }
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.nbctl(&a)?;
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        self.nbctl(&["--wait=hv", "sync"])?;
        Ok(())
    }
}

/// A launcher pod: its netns, the node, and (for a target plugged like the agent plugs one) the host end on br-int.
struct Launcher {
    ns: TempNetns,
    node: usize,
    host: String,
}

/// Plugs a migration target on `node` as the node agent does: a veth whose host end is on br-int with
/// the port's `iface-id`, the pod end named as KubeVirt asks; then the bridge binding. Returns it and its tap.
fn plug_target(w: &World, node: usize, lsp: &str, ifname: &str, host: &str) -> Result<(Launcher, String)> {
    let ns = TempNetns::new("ktmig-l")?;
    let chassis_ns = Netns::open(Netns::named_path(w.chassis[node].netns()))?;
    let h = Handle::in_netns(&chassis_ns)?;
    h.veth(host, ifname).peer_netns(&ns).mtu(1400).host_up().create()?;
    let _ = h.disable_ipv6(host);
    w.chassis[node]
        .vsctl(&["add-port", "br-int", host, "--", "set", "Interface", host, &format!("external_ids:iface-id={lsp}")])
        .map_err(|e| anyhow!("add-port {host}: {e}"))?;
    let tap = vm::bridge_binding(ns.path(), ifname, 1400)?;
    Ok((Launcher { ns, node, host: host.to_string() }, tap))
}

fn unplug(w: &World, l: &Launcher) {
    let _ = w.chassis[l.node].vsctl(&["--if-exists", "del-port", "br-int", &l.host]);
}

#[derive(Debug)]
struct Row {
    mode: MigrationMode,
    from: String,
    to: String,
    total_ms: u64,
    downtime_ms: u64,
    resume_after_ms: i64,
    lost: usize,
    outage_ms: f64,
    dups: usize,
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[(s.len() - 1) / 2]
}

fn main() -> Result<()> {
    let a = parse_args()?;
    testkit::init_tracing();
    bench::raise_nofile();
    let t0 = Instant::now();
    let img = GuestImage::ensure().context("guest image")?;
    eprintln!("[migration-bench] guest image ready in {:.1}s", t0.elapsed().as_secs_f64());
    let _slot = vm::slot();
    let dir = tempfile::Builder::new().prefix("migration-bench").tempdir()?;
    let vmdir = dir.path().join("vm");
    std::fs::create_dir_all(&vmdir)?;

    let central = Central::start(&dir.path().join("central"), false)?;
    let sb = central.sb_remote();
    let tag = std::process::id() % 100000;
    let mut chassis = Vec::new();
    for i in 0..2 {
        let name = format!("node{}", i + 1);
        let cfg =
            ChassisConfig::new(&name, dir.path().join(&name), &format!("ktmig{tag}-{}", i + 1), &sb, &format!("198.51.100.{}", i + 1));
        chassis.push(Chassis::start(cfg)?);
    }
    daemons::link_underlay(&chassis[0], &chassis[1])?;
    for c in &chassis {
        c.wait_registered(&sb, Duration::from_secs(30))?;
    }
    let w = World { central, chassis, kubetron: a.kubetron.clone() };
    let names = [w.chassis[0].name().to_string(), w.chassis[1].name().to_string()];
    eprintln!("[migration-bench] OVN central + 2 chassis up in {:.1}s", t0.elapsed().as_secs_f64());

    let base = SUBNET.rsplit_once('.').map(|(b, _)| b).unwrap_or("10.90.0");
    w.nbctl(&["ls-add", "red"])?;
    w.nbctl(&[
        "set",
        "Logical_Switch",
        "red",
        &format!("other_config:subnet={SUBNET}"),
        &format!("other_config:exclude_ips={base}.1..{base}.9"),
    ])?;
    w.nbctl(&[
        "create",
        "DHCP_Options",
        &format!("cidr={SUBNET}"),
        &format!(
            "options=\"lease_time\"=\"3600\" \"router\"=\"{base}.1\" \"server_id\"=\"{base}.1\" \"server_mac\"=\"0a:00:00:00:00:01\" \"mtu\"=\"1400\""
        ),
    ])?;

    // The pinger pod on node1 and the VM's first launcher pod on node1, both plugged by kubetron.
    let pinger_ns = TempNetns::new("ktmig-p")?;
    w.cni(0, "ADD", &pinger_ns, "pinger", "net1", &w.conf(0))?;
    let ifname = model::kubevirt::hashed_ifname("red");
    let launcher_pod = "virt-launcher-vm1-a0001";
    let first_ns = TempNetns::new("ktmig-l")?;
    let r = w.cni(0, "ADD", &first_ns, launcher_pod, &ifname, &w.launcher_conf(0))?;
    if r["interfaces"][1]["mac"] != VM_MAC {
        bail!("the launcher's interface does not carry the VM's MAC: {r}");
    }
    let lsp = model::names::pod_port(NAMESPACE, launcher_pod, &ifname);
    let vm_ip: Ipv4Addr = poll("the port's dynamic address", Duration::from_secs(30), || {
        let d = w.nbctl(&["get", "Logical_Switch_Port", &lsp, "dynamic_addresses"])?;
        Ok(d.trim().trim_matches('"').split_whitespace().nth(1).and_then(|ip| ip.parse().ok()))
    })?;
    let first_host = w.chassis[0]
        .vsctl(&["--bare", "--columns=name", "find", "Interface", &format!("external_ids:iface-id={lsp}")])
        .map_err(|e| anyhow!("{e}"))?
        .trim()
        .to_string();
    let tap = vm::bridge_binding(first_ns.path(), &ifname, 1400)?;
    let mut cur = Launcher { ns: first_ns, node: 0, host: first_host };
    let mut first_kept: Option<Launcher> = None;

    let mut vm = Vm::start(&img, VmConfig::new("vm1-0", cur.ns.path(), &vmdir, vec![Nic { tap, mac: VM_MAC.into() }]))?;
    let lease = vm.wait_leases(1, BOOT)?.remove(0);
    if lease.ip != vm_ip {
        bail!("the VM leased {} but its port has {vm_ip}", lease.ip);
    }
    let vm_dhcp_s = lease.at_ms as f64 / 1000.0;
    vm.wait_console("VMPROBE ready", BOOT)?;
    eprintln!("[migration-bench] VM {vm_ip} leased its address {vm_dhcp_s:.1}s after qemu started (qemu cpu {} ms)", vm.cpu_ms());
    w.set_options(&lsp, &Placement::On(Some(names[0].clone())).chassis_options(MigrationMode::Rarp).unwrap_or_default())?;
    w.sync()?;

    let pinger = Pinger::start(pinger_ns.path(), IpAddr::V4(vm_ip))?;
    poll("pings answered by the VM", Duration::from_secs(60), || Ok((pinger.snapshot().answered() >= 50).then_some(())))?;

    let uuids = [w.chassis_uuid(0)?, w.chassis_uuid(1)?];
    let mut windows = Vec::new();
    let mut reports = Vec::new();
    let mut prev_done: Option<u64> = None;
    let total = 2 * a.migrations;
    for i in 0..total {
        let mode = if i < a.migrations { MigrationMode::Rarp } else { MigrationMode::Switch };
        let (src, dst) = (cur.node, 1 - cur.node);
        let host = format!("ktmig{tag}h{i}");
        let (target, tap) = plug_target(&w, dst, &lsp, &ifname, &host)?;
        let migrating = Placement::Migrating { source: names[src].clone(), target: names[dst].clone() };
        w.set_options(&lsp, &migrating.chassis_options(mode).unwrap_or_default())?;
        w.sync()?;
        if mode == MigrationMode::Rarp {
            poll("SB additional_chassis = target", Duration::from_secs(30), || {
                Ok((w.binding(&lsp, "additional_chassis")? == uuids[dst]).then_some(()))
            })?;
        }
        let name = format!("vm1-{}", i + 1);
        let mut cfg = VmConfig::new(&name, target.ns.path(), &vmdir, vec![Nic { tap, mac: VM_MAC.into() }]);
        cfg.incoming = true;
        let next = Vm::start(&img, cfg)?;
        // Windows of successive migrations do not overlap.
        if let Some(p) = prev_done {
            poll("the previous migration's window to pass", Duration::from_secs(30), || {
                Ok((vm::epoch_ms() >= p + AFTER_MS + BEFORE_MS).then_some(()))
            })?;
        }
        let final_opts = Placement::On(Some(names[dst].clone())).chassis_options(mode).unwrap_or_default();
        let mut switch_err = None;
        let report = vm.migrate_to(&next, || {
            if mode == MigrationMode::Switch {
                switch_err = w.set_options(&lsp, &final_opts).err();
            }
        })?;
        if let Some(e) = switch_err {
            return Err(e);
        }
        if report.status != "completed" {
            bail!("migration {} -> {} ended {}", names[src], names[dst], report.status);
        }
        if mode == MigrationMode::Rarp {
            w.set_options(&lsp, &final_opts)?;
        }
        w.sync()?;
        poll("SB chassis = target, no additional chassis", Duration::from_secs(30), || {
            Ok((w.binding(&lsp, "chassis")? == uuids[dst] && w.binding(&lsp, "additional_chassis")?.is_empty()).then_some(()))
        })?;
        let since = report.t_dst_resume_ms.unwrap_or(report.t_completed_ms);
        poll("pings answered by the target VM", Duration::from_secs(60), || {
            Ok((pinger.snapshot().answered_after(since) >= 30).then_some(()))
        })?;
        eprintln!(
            "[migration-bench] #{} {:?} {} -> {}: total {} ms, downtime {} ms",
            i + 1,
            mode,
            names[src],
            names[dst],
            report.total_ms,
            report.downtime_ms
        );
        // The source launcher goes away (qemu stopped, its interface off br-int).
        vm.stop();
        vm = next;
        unplug(&w, &cur);
        let old = std::mem::replace(&mut cur, target);
        if i == 0 {
            // The first launcher was plugged by kubetron: its CNI DEL comes at the end (it removes the port).
            first_kept = Some(old);
        }
        prev_done = Some(report.t_completed_ms);
        windows.push((mode, names[src].clone(), names[dst].clone()));
        reports.push(report);
    }
    poll("the last migration's window to pass", Duration::from_secs(30), || {
        Ok((vm::epoch_ms() >= prev_done.unwrap_or(0) + AFTER_MS).then_some(()))
    })?;
    let log = pinger.stop();

    let rows: Vec<Row> = windows
        .into_iter()
        .zip(&reports)
        .map(|((mode, from, to), r)| {
            let (lo, hi) = (r.t_start_ms - BEFORE_MS, r.t_completed_ms + AFTER_MS);
            let o = log.outage_around((lo + hi) / 2, Duration::from_millis((hi - lo) / 2));
            Row {
                mode,
                from,
                to,
                total_ms: r.total_ms,
                downtime_ms: r.downtime_ms,
                resume_after_ms: r.t_dst_resume_ms.map(|t| t as i64 - r.t_completed_ms as i64).unwrap_or(-1),
                lost: o.lost,
                outage_ms: o.duration_ms,
                dups: dups_in(&log, lo as f64, hi as f64),
            }
        })
        .collect();

    println!();
    println!(
        "{:<3} {:<7} {:<14} {:>9} {:>17} {:>16} {:>5} {:>10} {:>5}",
        "#", "mode", "from -> to", "total_ms", "qemu_downtime_ms", "resume_after_ms", "lost", "outage_ms", "dups"
    );
    for (i, r) in rows.iter().enumerate() {
        let mode = if r.mode == MigrationMode::Rarp { "rarp" } else { "switch" };
        println!(
            "{:<3} {:<7} {:<14} {:>9} {:>17} {:>16} {:>5} {:>10.0} {:>5}",
            i + 1,
            mode,
            format!("{} -> {}", r.from, r.to),
            r.total_ms,
            r.downtime_ms,
            r.resume_after_ms,
            r.lost,
            r.outage_ms,
            r.dups
        );
    }
    let rarp: Vec<&Row> = rows.iter().filter(|r| r.mode == MigrationMode::Rarp).collect();
    let switch: Vec<&Row> = rows.iter().filter(|r| r.mode == MigrationMode::Switch).collect();
    let rarp_outages: Vec<f64> = rarp.iter().map(|r| r.outage_ms).collect();
    let switch_outages: Vec<f64> = switch.iter().map(|r| r.outage_ms).collect();
    let dup_replies: usize = rarp.iter().map(|r| r.dups).sum();
    println!();
    println!(
        "pings: {} sent, {} answered, {} duplicates in all; VM {vm_ip} ({} -> {}), qemu rss {} kB",
        log.transmitted.unwrap_or(0),
        log.answered(),
        log.dups(),
        names[0],
        names[1],
        vm.rss_kb()
    );
    println!(
        "rarp: outage p50 {:.0} ms max {:.0} ms, qemu downtime p50 {:.0} ms; switch: outage p50 {:.0} ms max {:.0} ms, duplicates {}",
        median(&rarp_outages),
        rarp_outages.iter().cloned().fold(0.0, f64::max),
        median(&rarp.iter().map(|r| r.downtime_ms as f64).collect::<Vec<_>>()),
        median(&switch_outages),
        switch_outages.iter().cloned().fold(0.0, f64::max),
        switch.iter().map(|r| r.dups).sum::<usize>()
    );
    println!(
        "machine load average at the end (1, 5, 15 min): {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    // Clean up: qemu by its pid file, the ports, the netns, the daemons (by their guards).
    vm.stop();
    unplug(&w, &cur);
    drop(cur);
    if let Some(first) = first_kept.take() {
        w.cni(0, "DEL", &first.ns, launcher_pod, &ifname, &w.launcher_conf(0))?;
    }
    w.cni(0, "DEL", &pinger_ns, "pinger", "net1", &w.conf(0))?;
    drop(pinger_ns);
    let left = w.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"])?;
    if !left.trim().is_empty() {
        eprintln!("[migration-bench] ports left in NB: {}", left.trim());
    }
    drop(w);
    println!(
        "outage_p50_ms={:.0} outage_max_ms={:.0} dup_replies={dup_replies} switch_outage_p50_ms={:.0} vm_dhcp_s={vm_dhcp_s:.1}",
        median(&rarp_outages),
        rarp_outages.iter().cloned().fold(0.0, f64::max),
        median(&switch_outages)
    );
    Ok(())
}

/// Duplicate replies to probes sent in [lo, hi] (epoch ms).
fn dups_in(log: &PingLog, lo: f64, hi: f64) -> usize {
    log.replies.iter().filter(|r| r.dup && r.sent_ms() >= lo && r.sent_ms() <= hi).count()
}
