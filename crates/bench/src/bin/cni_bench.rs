//! CNI benchmark (bench/cni): ADD+DEL cycles of the real `kubetron` CNI binary against a real OVN
//! (central + one chassis in its own netns, from the `daemons` crate), beside Debian's reference
//! `bridge` plugin with `host-local` IPAM doing the same attaches in the same chassis netns.
//!
//! `cni_bench --kubetron PATH [--kubetron-cni PATH] [--cycles N] [--warmup N] [--burst N] [--bridge PATH] [--strace]`
//!
//! With `--kubetron-cni` (the shim), cluster mode is measured in the same run ([`bench::cni_cluster`]):
//! a real kube-apiserver, `kubetron controller`, `kubetron node` on the chassis, the shim's ADD/DEL
//! cycles, and a burst of `--burst` concurrent ADDs then DELs (failures, the agent's peak RSS).
//! `cluster_vs_bridge` compares the cluster ADD with bridge ADDs taken between the cluster cycles
//! (one after each), not with the first phase's: this machine's load moves the bridge baseline
//! alone by half from one minute to the next.
//!
//! Every plugin process is started the way a container runtime starts one: a fresh process with
//! CNI_* in its environment and the network config on stdin, in the node's network namespace
//! (here: `setns` into the chassis netns between fork and exec, so that no `ip netns exec` is
//! timed). The clock runs from spawn to exit. Each cycle makes a fresh pod netns and, interleaved:
//! kubetron ADD (no port-up wait) + DEL, kubetron ADD (waiting for the port to be up) + DEL,
//! kubetron ADD with dynamic addresses from OVN (no up wait) + DEL, bridge ADD + DEL.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bench::cni_cluster::Cluster;
use bench::{ms, ok, percentile};
use daemons::{Central, Chassis, ChassisConfig};
use netdev::TempNetns;
use serde_json::{json, Value};
use testkit::cni::{CniInvocation, CniOutcome};

struct Plugin {
    path: PathBuf,
    node_ns: Arc<File>,
}

impl Plugin {
    /// One CNI call as a runtime makes it (a fresh process, `setns` into the node netns, the config on stdin).
    fn call(&self, command: &str, container: &str, netns: Option<&Path>, ifname: &str, conf: &Value) -> CniInvocation {
        let c =
            CniInvocation::new(&self.path, command).in_netns_file(self.node_ns.clone()).container_id(container).ifname(ifname).config(conf);
        match netns {
            Some(n) => c.netns(n),
            None => c,
        }
    }

    fn run(&self, command: &str, container: &str, netns: Option<&Path>, ifname: &str, conf: &Value) -> Result<CniOutcome> {
        Ok(self.call(command, container, netns, ifname, conf).run()?)
    }
}

#[derive(Default)]
struct Samples {
    add: Vec<Duration>,
    add_up: Vec<Duration>,
    add_dyn: Vec<Duration>,
    del: Vec<Duration>,
    del_up: Vec<Duration>,
    del_dyn: Vec<Duration>,
    br_add: Vec<Duration>,
    br_del: Vec<Duration>,
    version: Vec<Duration>,
    br_version: Vec<Duration>,
}

struct Args {
    kubetron: PathBuf,
    /// The cluster-mode shim; `None`: no cluster-mode part.
    shim: Option<PathBuf>,
    bridge: PathBuf,
    cycles: usize,
    warmup: usize,
    burst: usize,
    strace: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        kubetron: PathBuf::new(),
        shim: None,
        bridge: "/usr/lib/cni/bridge".into(),
        cycles: 200,
        warmup: 5,
        burst: 500,
        strace: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow!("{k} needs a value"));
        match k.as_str() {
            "--kubetron" => a.kubetron = v()?.into(),
            "--bridge" => a.bridge = v()?.into(),
            "--cycles" => a.cycles = v()?.parse()?,
            "--warmup" => a.warmup = v()?.parse()?,
            "--strace" => a.strace = true,
            "--kubetron-cni" => a.shim = Some(v()?.into()),
            "--burst" => a.burst = v()?.parse()?,
            _ => bail!(
                "usage: cni_bench --kubetron PATH [--kubetron-cni PATH] [--cycles N] [--warmup N] [--burst N] [--bridge PATH] [--strace]"
            ),
        }
    }
    if !a.kubetron.exists() {
        bail!("--kubetron {} does not exist", a.kubetron.display());
    }
    Ok(a)
}

fn nbctl(central: &Central, args: &[&str]) -> Result<String> {
    central.nbctl(args).map_err(|e| anyhow!("ovn-nbctl {args:?}: {e}"))
}

fn main() -> Result<()> {
    let a = parse_args()?;
    bench::raise_nofile();
    let dir = tempfile::Builder::new().prefix("cni-bench").tempdir()?;
    let t = Instant::now();
    let central = Central::start(&dir.path().join("central"), false)?;
    let sb = central.sb_remote();
    let node_ns = format!("ktbench{}", std::process::id() % 100000);
    let chassis = Chassis::start(ChassisConfig::new("bench1", dir.path().join("node1"), &node_ns, &sb, "198.51.100.1"))?;
    chassis.wait_registered(&sb, Duration::from_secs(20))?;
    eprintln!("[cni-bench] OVN up in {:.2}s (chassis netns {node_ns})", t.elapsed().as_secs_f64());

    let net = "benchnet";
    nbctl(&central, &["ls-add", net])?;
    nbctl(&central, &["set", "Logical_Switch", net, "other_config:subnet=10.77.0.0/24", "other_config:exclude_ips=10.77.0.1..10.77.0.9"])?;
    nbctl(&central, &[
        "create", "DHCP_Options", "cidr=10.77.0.0/24",
        "options=\"lease_time\"=\"3600\" \"router\"=\"10.77.0.1\" \"server_id\"=\"10.77.0.1\" \"server_mac\"=\"0a:00:00:00:00:01\" \"mtu\"=\"1400\"",
    ])?;

    let ns_file = Arc::new(File::open(format!("/run/netns/{node_ns}"))?);
    let kt = Plugin { path: a.kubetron.clone(), node_ns: ns_file.clone() };
    let br = Plugin { path: a.bridge.clone(), node_ns: ns_file };
    let base = json!({
        "cniVersion": "1.0.0", "name": net, "type": "kubetron",
        "nb": central.nb_remote(), "ovs_socket": chassis.db_remote(),
    });
    let conf_static = |ip: &str, wait: bool| {
        let mut c = base.clone();
        if !wait {
            c["port_up_timeout_ms"] = json!(0);
        }
        c["runtimeConfig"] = json!({"ips": [format!("{ip}/24")]});
        c
    };
    let mut conf_dyn = base.clone();
    conf_dyn["port_up_timeout_ms"] = json!(0);
    let bridge_name = format!("ktbrb{}", std::process::id() % 100000);
    let bconf = json!({
        "cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": bridge_name,
        "ipam": {"type": "host-local", "subnet": "10.78.0.0/24", "dataDir": dir.path().join("ipam")}
    });

    let mut s = Samples::default();
    let pid = std::process::id();
    let total = a.warmup + a.cycles;
    let t_all = Instant::now();
    for i in 0..total {
        let record = i >= a.warmup;
        let pod = TempNetns::new("ktbp")?;
        let p = pod.path().to_path_buf();
        let ip = format!("10.77.0.{}", 10 + i % 200);
        let if_ = "net1";

        let cid = format!("b{pid}c{i}s");
        let c = conf_static(&ip, false);
        let r1 = ok(kt.run("ADD", &cid, Some(&p), if_, &c)?, "kubetron ADD")?;
        let r2 = ok(kt.run("DEL", &cid, Some(&p), if_, &c)?, "kubetron DEL")?;

        let cid = format!("b{pid}c{i}w");
        let c = conf_static(&ip, true);
        let r3 = ok(kt.run("ADD", &cid, Some(&p), if_, &c)?, "kubetron ADD (up wait)")?;
        let r4 = ok(kt.run("DEL", &cid, Some(&p), if_, &c)?, "kubetron DEL")?;

        let cid = format!("b{pid}c{i}d");
        let r5 = ok(kt.run("ADD", &cid, Some(&p), if_, &conf_dyn)?, "kubetron ADD (dynamic)")?;
        let r6 = ok(kt.run("DEL", &cid, Some(&p), if_, &conf_dyn)?, "kubetron DEL")?;

        let cid = format!("b{pid}c{i}r");
        let r7 = ok(br.run("ADD", &cid, Some(&p), if_, &bconf)?, "bridge ADD")?;
        let r8 = ok(br.run("DEL", &cid, Some(&p), if_, &bconf)?, "bridge DEL")?;

        let v1 = ok(kt.run("VERSION", "", None, if_, &base)?, "kubetron VERSION")?;
        let v2 = ok(br.run("VERSION", "", None, if_, &bconf)?, "bridge VERSION")?;
        if i == a.warmup && r1.json["ips"][0]["address"] != json!(format!("{ip}/24")) {
            bail!("unexpected ADD result: {}", r1.stdout);
        }
        if record {
            s.add.push(r1.elapsed);
            s.del.push(r2.elapsed);
            s.add_up.push(r3.elapsed);
            s.del_up.push(r4.elapsed);
            s.add_dyn.push(r5.elapsed);
            s.del_dyn.push(r6.elapsed);
            s.br_add.push(r7.elapsed);
            s.br_del.push(r8.elapsed);
            s.version.push(v1.elapsed);
            s.br_version.push(v2.elapsed);
        }
        drop(pod);
        if (i + 1) % 50 == 0 {
            eprintln!("[cni-bench] {}/{total} cycles, {:.1}s", i + 1, t_all.elapsed().as_secs_f64());
        }
    }

    // Nothing left behind by the cycles.
    let lsps = nbctl(&central, &["--bare", "--columns=name", "list", "Logical_Switch_Port"])?;
    let ports = chassis.vsctl(&["list-ports", "br-int"]).map_err(|e| anyhow!("{e}"))?;
    let left_lsp = lsps.split_whitespace().count();
    let left_ports = ports.lines().filter(|l| !l.starts_with("ovn-")).count();

    let probe = probe_db(&central.nb_remote(), &chassis.db_remote(), &node_ns)?;
    let cluster = match &a.shim {
        Some(shim) => {
            let t = Instant::now();
            let cdir = dir.path().join("cluster");
            let ovs_remote = chassis.db_remote();
            let on = bench::cni_cluster::Chassis { node: "bench1", ovs_remote: &ovs_remote, netns: &node_ns };
            std::fs::create_dir_all(&cdir)?;
            // Its own network, large enough for the burst (the controller allocates every pod's address).
            let cnet = "clusternet";
            nbctl(&central, &["ls-add", cnet])?;
            nbctl(&central, &["set", "Logical_Switch", cnet, "other_config:subnet=10.80.0.0/20", "other_config:exclude_ips=10.80.0.1"])?;
            let c = Cluster::start(&a.kubetron, shim, &cdir, &central.nb_remote(), &on, cnet)?;
            eprintln!("[cni-bench] cluster mode up in {:.1}s (apiserver, controller, agent)", t.elapsed().as_secs_f64());
            // The reference plugin again, interleaved with the cluster cycles (same load).
            let mut peer = |i: usize| -> Result<Duration> {
                let pod = TempNetns::new("ktbq")?;
                let cid = format!("q{pid}c{i}r");
                let add = ok(br.run("ADD", &cid, Some(pod.path()), "net1", &bconf)?, "bridge ADD")?;
                ok(br.run("DEL", &cid, Some(pod.path()), "net1", &bconf)?, "bridge DEL")?;
                Ok(add.elapsed)
            };
            let cycles = c.cycles(cnet, a.warmup, a.cycles, &mut peer)?;
            let burst = c.burst(cnet, a.burst)?;
            Some((cycles, burst))
        }
        None => None,
    };
    let strace = if a.strace { Some(strace_phases(&kt, &conf_static("10.77.0.250", false), dir.path())?) } else { None };

    let row = |name: &str, v: &[Duration]| {
        println!(
            "{name:<52} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            ms(percentile(v, 50.0)),
            ms(percentile(v, 90.0)),
            ms(percentile(v, 99.0)),
            ms(*v.iter().max().unwrap_or(&Duration::ZERO))
        )
    };
    println!();
    println!(
        "CNI benchmark: {} ADD+DEL cycles each ({} warm-up cycles not counted), one chassis (userspace datapath),",
        a.cycles, a.warmup
    );
    println!("plugins run as a runtime runs them (fresh process, setns into the node netns, config on stdin); ms from spawn to exit");
    println!(
        "machine load average at the end (1, 5, 15 min): {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!();
    println!("{:<52} {:>8} {:>8} {:>8} {:>8}", "operation", "p50", "p90", "p99", "max");
    row("kubetron ADD, static IP, port_up_timeout_ms=0", &s.add);
    row("kubetron ADD, static IP, waits for port up (default)", &s.add_up);
    row("kubetron ADD, dynamic IP from OVN, no up wait", &s.add_dyn);
    row("kubetron DEL (after the no-wait ADD)", &s.del);
    row("kubetron DEL (after the up-wait ADD)", &s.del_up);
    row("kubetron DEL (after the dynamic ADD)", &s.del_dyn);
    row("bridge + host-local ADD", &s.br_add);
    row("bridge + host-local DEL", &s.br_del);
    if let Some((c, _)) = &cluster {
        row("cluster mode: shim -> agent ADD, waits for ovn-installed", &c.add);
        row("cluster mode: shim -> agent ADD, port_up_timeout_ms=0", &c.add_nowait);
        row("cluster mode: shim -> agent DEL", &c.del);
        row("bridge + host-local ADD, between the cluster cycles", &c.peer_add);
    }
    row("kubetron VERSION (process start, no DB)", &s.version);
    row("bridge VERSION (process start)", &s.br_version);
    println!();
    println!("left behind after all cycles: {left_lsp} logical switch ports, {left_ports} br-int ports (want 0, 0)");
    if let Some((_, b)) = &cluster {
        println!();
        println!(
            "burst: {} pods handed over, {} shims started at once: ADD {} failed ({:.1}s wall), then DEL {} failed ({:.1}s wall); agent peak RSS {:.1} MB",
            b.pods,
            b.pods,
            b.add_failed,
            b.add_wall.as_secs_f64(),
            b.del_failed,
            b.del_wall.as_secs_f64(),
            b.agent_hwm_kib as f64 / 1024.0
        );
        if let Some(e) = &b.first_error {
            println!("burst: first failure: {e}");
        }
    }
    println!();
    println!("{probe}");
    if let Some(st) = &strace {
        println!();
        println!("{st}");
    }
    let add_p50 = ms(percentile(&s.add, 50.0));
    let br_p50 = ms(percentile(&s.br_add, 50.0));
    let up_p50 = ms(percentile(&s.add_up, 50.0));
    let vs = add_p50 / br_p50;
    println!();
    println!("targets: ADD (no wait) p50 <= 1.5x bridge p50: {vs:.2}x {}", if vs <= 1.5 { "met" } else { "MISSED" });
    println!("         ADD (up wait) p50 <= 150 ms: {up_p50:.1} ms {}", if up_p50 <= 150.0 { "met" } else { "MISSED" });
    // Tear down while timing nothing: chassis first (its netns holds the reference bridge too).
    drop(chassis);
    drop(central);
    let cluster_keys = match &cluster {
        Some((c, b)) => {
            let p50 = ms(percentile(&c.add, 50.0));
            // Against the bridge ADDs taken between the cluster cycles (same load as them).
            let peer_p50 = ms(percentile(&c.peer_add, 50.0));
            format!(
                " cluster_add_p50_ms={p50:.2} cluster_add_p99_ms={:.2} cluster_add_nowait_p50_ms={:.2} cluster_vs_bridge={:.2} burst{}_failed={} burst{}_rss_mb={:.1}",
                ms(percentile(&c.add, 99.0)),
                ms(percentile(&c.add_nowait, 50.0)),
                p50 / peer_p50,
                b.pods,
                b.add_failed + b.del_failed,
                b.pods,
                b.agent_hwm_kib as f64 / 1024.0
            )
        }
        None => String::new(),
    };
    println!(
        "add_p50_ms={:.2} add_p99_ms={:.2} add_up_p50_ms={:.2} del_p50_ms={:.2} bridge_add_p50_ms={:.2} add_vs_bridge={:.2}{cluster_keys}",
        add_p50,
        ms(percentile(&s.add, 99.0)),
        up_p50,
        ms(percentile(&s.del, 50.0)),
        br_p50,
        vs
    );
    Ok(())
}

/// The database part of an ADD, in this process with the plugin's client settings, 50 times:
/// connecting to NB and the local OVSDB, fetching both schemas (the first transact on a client
/// does), and one select round trip; p50 of each. What is left of an ADD is process start,
/// netlink and the plugin's own work.
fn probe_db(nb: &str, ovs: &str, _node_ns: &str) -> Result<String> {
    use ovsdb::{Client, ClientConfig, Condition, Operation};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let cfg = |r: &str| -> Result<ClientConfig> { Ok(ClientConfig::new(r)?.reconnect(false).inactivity_probe(None)) };
    let (mut rt_build, mut conn, mut s_nb, mut s_ovs, mut sel, mut sel2) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..50 {
        let t = Instant::now();
        let rt2 = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt_build.push(t.elapsed());
        drop(rt2);
        rt.block_on(async {
            let t = Instant::now();
            let (n, o) = tokio::try_join!(Client::connect(cfg(nb)?), Client::connect(cfg(ovs)?))?;
            conn.push(t.elapsed());
            let t = Instant::now();
            n.get_schema("OVN_Northbound").await?;
            s_nb.push(t.elapsed());
            let t = Instant::now();
            o.get_schema("Open_vSwitch").await?;
            s_ovs.push(t.elapsed());
            let t = Instant::now();
            n.transact("OVN_Northbound", vec![Operation::select("Logical_Switch").filter(Condition::eq("name", "benchnet"))]).await?;
            sel.push(t.elapsed());
            let t = Instant::now();
            o.transact("Open_vSwitch", vec![Operation::select("Bridge").filter(Condition::eq("name", "br-int"))]).await?;
            sel2.push(t.elapsed());
            Ok::<(), anyhow::Error>(())
        })?;
    }
    let p = |v: &[Duration]| ms(percentile(v, 50.0));
    Ok(format!(
        "database phases of an ADD, measured in-process with the plugin's client settings (p50 of 50, ms):\n  \
         new tokio runtime {:.3} | connect NB + local OVSDB (parallel) {:.2} | get_schema NB {:.2} | get_schema Open_vSwitch {:.2} | \
         select round trip NB {:.2} | select round trip OVSDB {:.2}",
        p(&rt_build),
        p(&conn),
        p(&s_nb),
        p(&s_ovs),
        p(&sel),
        p(&sel2)
    ))
}

/// One extra ADD+DEL of kubetron under `strace -f -ttt`: where the wall time of a single ADD goes,
/// by syscall milestones (exec, first socket connects, netlink, exit).
fn strace_phases(kt: &Plugin, conf: &Value, dir: &Path) -> Result<String> {
    let out = dir.join("strace.txt");
    let pod = TempNetns::new("ktbs")?;
    let p = pod.path().to_path_buf();
    let o = out.display().to_string();
    let wrap = [
        "strace",
        "-f",
        "-ttt",
        "-o",
        o.as_str(),
        "-e",
        "trace=execve,connect,socket,sendto,sendmsg,recvfrom,recvmsg,write,read,exit_group,setns,clone,clone3",
    ];
    let r = ok(kt.call("ADD", "bstrace", Some(&p), "net1", conf).wrapped_in(&wrap).run()?, "kubetron ADD under strace")?;
    let _ = kt.run("DEL", "bstrace", Some(&p), "net1", conf)?;
    let text = std::fs::read_to_string(&out)?;
    Ok(format!("one ADD under strace ({:.1} ms with strace overhead); milestones (ms since execve):\n{}", ms(r.elapsed), milestones(&text)))
}

fn milestones(text: &str) -> String {
    let mut t0 = None;
    let mut lines = Vec::new();
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let (Some(_pid), Some(ts)) = (it.next(), it.next()) else { continue };
        let Ok(ts) = ts.parse::<f64>() else { continue };
        // `PID  TIMESTAMP CALL...`: strace pads the pid, so skip two whitespace-separated fields.
        let rest: &str = l.trim_start().split_once(char::is_whitespace).map_or("", |(_, r)| r).trim_start();
        let rest: String = rest.split_once(char::is_whitespace).map_or("", |(_, r)| r).trim().to_string();
        if rest.starts_with("execve(") && t0.is_none() && !rest.contains("strace") {
            t0 = Some(ts);
        }
        let Some(t0) = t0 else { continue };
        let keep = rest.starts_with("connect(")
            || rest.starts_with("socket(")
            || rest.starts_with("exit_group")
            || rest.starts_with("execve(")
            || rest.starts_with("setns(");
        if keep {
            let mut r = rest.clone();
            r.truncate(110);
            lines.push(format!("  {:>8.2}  {r}", (ts - t0) * 1000.0));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn milestones_read_strace_lines_with_padded_pids() {
        let text = "12345  1700000000.100000 execve(\"/opt/cni/bin/kubetron\", [...]) = 0\n\
                    12345  1700000000.102500 socket(AF_UNIX, SOCK_STREAM, 0) = 3\n\
                    12345  1700000000.103000 read(3, \"x\", 1) = 1\n\
                    12345  1700000000.110000 exit_group(0) = ?\n";
        let m = super::milestones(text);
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines.len(), 3, "{m}");
        assert!(lines[0].contains("0.00") && lines[0].contains("execve("), "{m}");
        assert!(lines[1].contains("2.50") && lines[1].contains("socket("), "{m}");
        assert!(lines[2].contains("10.00") && lines[2].contains("exit_group"), "{m}");
    }
}
