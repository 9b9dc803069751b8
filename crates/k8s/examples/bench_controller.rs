//! Controller benchmark: N pods x 2 networks reconciled into an empty Northbound database
//! (real ovsdb-server + ovn-northd), pods fed straight to the core (no API server).
//!
//! `bench_controller --pods N [--batch K] [--prefill-switches S --prefill-ports P]`
//! (the allocator of ovsdb-server and ovn-northd from `KUBETRON_OVSDB_ALLOCATOR`, see
//! [`daemons::Allocator`]; this process runs on mimalloc like the `kubetron` binary): K = 1
//! (default) is the controller's normal path, one `reconcile_pod` (one transaction, then wait for
//! the replica to show it) after another; K > 1 uses `reconcile_batch` with K pods per
//! transaction. With `--prefill-switches`, the NB first gets S other logical switches (each with a
//! subnet) and P ports spread evenly over them (static addresses, tagged as the controller's
//! ports of other pods), written in transactions of about [`PREFILL_ROWS`] rows; then the
//! controller's replica is started (its initial load holds them all) and northd is waited for
//! (`ovn-nbctl --wait=sb sync`, then its `up` write-back on every port seen in the replica), so
//! neither the fill nor northd's work on it falls in the measured window (what northd spends
//! there, on the bench's own writes, is reported). Prints one line:
//! `pods=N batch=K allocator=A prefill_ls=S prefill_lsp=P prefill_secs=F load_secs=L settle_secs=W secs=S txns=T alloc_secs=A plan_us=U rss_mb=R`
//! where `prefill_secs` is the time to write the fill, `load_secs` the replica's initial load,
//! `settle_secs` that plus the time until northd had processed the fill, `secs` the reconcile
//! wall time, `alloc_secs` the time until northd had allocated every dynamic address, `plan_us`
//! the controller's own work per pod without I/O (desired ports + plan of N further pods against
//! the final replica), and `rss_mb` the peak RSS of this process (VmHWM: with a prefill, the
//! replica's initial load); then the CPU seconds spent during the reconcile by this process, the
//! NB ovsdb-server, ovn-northd and the SB ovsdb-server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s::controller::{plan, Claims, Controller, NadMap, Nb, PodRef};
use k8s::nad::new_nad;
use k8s_openapi::api::core::v1::Pod;
use model::addressing;
use ovn::names;
use ovn::nb::{add_port, create_switch, NewPort};
use ovsdb::datum::{Datum, Uuid};
use ovsdb::ops::{Mutation, Operation, Where};

/// The allocator of the `kubetron` binary, whose controller this measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rows per prefill transaction.
const PREFILL_ROWS: usize = 1000;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) of process `pid` ("self" for this one).
fn cpu_s(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": "bench", "name": format!("pod-{i}"), "uid": format!("uid-{i}"),
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "net-a, net-b"}},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"}
    }))
    .expect("pod")
}

/// Subnet of prefill switch `i` (10.128.0.0/24, 10.128.1.0/24, ...: never the bench's networks).
fn prefill_subnet(i: usize) -> [u8; 3] {
    [10, (128 + i / 256) as u8, (i % 256) as u8]
}

/// Fills the NB with `switches` logical switches and `ports` ports spread evenly over them, in
/// transactions of about [`PREFILL_ROWS`] rows (switch rows first, then ports with their
/// switches' `ports` mutations).
async fn prefill(client: &ovsdb::Client, switches: usize, ports: usize) -> Result<(), Box<dyn std::error::Error>> {
    if switches == 0 {
        return Ok(());
    }
    if switches > 256 * 100 || ports.div_ceil(switches) > 250 {
        return Err("prefill: at most 25,600 switches and 250 ports per switch".into());
    }
    let mut uuids: Vec<Uuid> = Vec::with_capacity(switches);
    for start in (0..switches).step_by(PREFILL_ROWS) {
        let ops: Vec<Operation> = (start..(start + PREFILL_ROWS).min(switches))
            .map(|i| {
                let [a, b, c] = prefill_subnet(i);
                let other = [("subnet".to_string(), format!("{a}.{b}.{c}.0/24")), ("exclude_ips".to_string(), format!("{a}.{b}.{c}.1"))];
                create_switch(&format!("prefill-{i}"), &other.into_iter().collect(), &Default::default(), &format!("ls{i}"))
            })
            .collect();
        for r in client.transact(ovn::nb::DB, ops).await? {
            uuids.extend(r.uuid);
        }
    }
    if uuids.len() != switches {
        return Err(format!("prefill: {} switches created of {switches}", uuids.len()).into());
    }
    // Port j goes to switch j % switches, host .(2 + j / switches) of its subnet. One transaction
    // holds the ports of consecutive switches, one `ports` mutation per switch.
    let per_switch = ports / switches;
    let extra = ports % switches;
    let mut ops: Vec<Operation> = Vec::new();
    let mut rows = 0usize;
    for (s, sw) in uuids.iter().enumerate() {
        let count = per_switch + usize::from(s < extra);
        let mut named = Vec::with_capacity(count);
        for k in 0..count {
            let j = k * switches + s;
            let [a, b, c] = prefill_subnet(s);
            let ip = std::net::Ipv4Addr::new(a, b, c, (2 + k) as u8);
            let (ns, pod, uid) = ("prefill", format!("pod-{j}"), format!("prefill-uid-{j}"));
            let port = NewPort {
                name: model::names::pod_port(ns, &pod, "net1"),
                addresses: vec![format!("{} {ip}", addressing::mac_for_ip(ip))],
                options: [(model::names::IFACE_ID_VER.to_string(), uid.clone())].into_iter().collect(),
                external_ids: [
                    (names::OWNER, names::OWNER_CONTROLLER.to_string()),
                    (model::names::POD_NAMESPACE, ns.to_string()),
                    (model::names::POD_NAME, pod.clone()),
                    (names::POD_UID, uid.clone()),
                    (names::NETWORK, format!("{ns}/prefill-{s}")),
                    (names::INTERFACE, "net1".to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                ..Default::default()
            };
            let name = format!("p{j}");
            let [insert, _] = add_port(*sw, &port, &name);
            ops.push(insert);
            named.push(ovsdb::datum::Atom::NamedUuid(name));
        }
        if count > 0 {
            let set = Datum::set(named);
            ops.push(Operation::mutate("Logical_Switch", Where::uuid(*sw)).mutation(Mutation::insert("ports", set)));
        }
        rows += count;
        if rows >= PREFILL_ROWS || s + 1 == uuids.len() {
            client.transact(ovn::nb::DB, std::mem::take(&mut ops)).await?;
            rows = 0;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = arg("--pods", 1000);
    let batch = arg("--batch", 1);
    let prefill_ls = arg("--prefill-switches", 0);
    let prefill_lsp = arg("--prefill-ports", 0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let allocator = match daemons::Allocator::from_env()? {
        daemons::Allocator::System => "system",
        daemons::Allocator::Jemalloc => "jemalloc",
    };
    let tmp = tempfile::tempdir()?;
    let central = daemons::Central::start(&tmp.path().join("central"), false)?;
    for (sw, cidr) in [("net-a", "10.100.0.0/16"), ("net-b", "10.101.0.0/16")] {
        central.nbctl(&["ls-add", sw, "--", "set", "Logical_Switch", sw, &format!("other_config:subnet={cidr}")])?;
        let router = cidr.replace(".0.0/16", ".0.1");
        central.nbctl(&["set", "Logical_Switch", sw, &format!("other_config:exclude_ips={router}")])?;
        central.nbctl(&["create", "DHCP_Options", &format!("cidr={cidr}"), &format!("options:router={router}")])?;
    }
    let mut nads = NadMap::default();
    for net in ["net-a", "net-b"] {
        nads.insert(new_nad("bench", net, &format!(r#"{{"cniVersion":"1.0.0","type":"kubetron","logical_switch":"{net}"}}"#), &[]));
    }
    let pods: Vec<Pod> = (0..n).map(pod).collect();

    let nb_pid = central.nb().pid().map(|p| p.to_string()).unwrap_or_default();
    let sb_pid = central.sb().pid().map(|p| p.to_string()).unwrap_or_default();
    let northd_pid = central.northd_pid().map(|p| p.to_string()).unwrap_or_default();
    let cpus = move || [cpu_s("self"), cpu_s(&nb_pid), cpu_s(&northd_pid), cpu_s(&sb_pid)];
    rt.block_on(async move {
        let client = ovsdb::Client::connect_to(&central.nb_remote()).await?;
        let t = Instant::now();
        prefill(&client, prefill_ls, prefill_lsp).await?;
        let prefill_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let nb = Nb::start(client).await?;
        let load_secs = t.elapsed().as_secs_f64();
        let (ls, lsp) = (nb.view().snapshot().len("Logical_Switch"), nb.view().snapshot().len("Logical_Switch_Port"));
        if ls != prefill_ls + 2 || lsp != prefill_lsp {
            return Err(format!("replica holds {ls} switches and {lsp} ports after the prefill").into());
        }
        // northd has processed everything written so far (its CPU for the fill stays out of the
        // measured window)...
        let settle = tokio::task::spawn_blocking(move || central.nbctl(&["--timeout=3600", "--wait=sb", "sync"]).map(|_| central));
        let central = settle.await??;
        // ...and its write-back to the NB (`up` of every port) is in the replica: the NB is quiet.
        let written_back = |s: &ovsdb::replica::Snapshot| s.rows("Logical_Switch_Port").all(|(_, r)| r.get("up").is_some());
        if prefill_lsp > 0 && nb.replica().wait_until(Duration::from_secs(600), written_back).await.is_err() {
            return Err("northd did not set `up` on every prefilled port within 600 s".into());
        }
        let settle_secs = t.elapsed().as_secs_f64();
        let ctl = Controller::new(nb.clone(), Arc::new(nads));
        let c0 = cpus();
        let t0 = Instant::now();
        let mut failed = 0usize;
        if batch <= 1 {
            for p in &pods {
                if let Err(e) = ctl.reconcile_pod(p).await {
                    failed += 1;
                    eprintln!("{e}");
                }
            }
        } else {
            for chunk in pods.chunks(batch * 16) {
                failed += ctl.reconcile_batch(chunk, batch).await.iter().filter(|(_, r)| r.is_err()).count();
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let c1 = cpus();
        let cpu: Vec<f64> = c1.iter().zip(c0.iter()).map(|(a, b)| a - b).collect();
        let txns = nb.transactions();
        let ports = nb.view().snapshot().len("Logical_Switch_Port") - prefill_lsp;
        // Time until northd allocated every dynamic address (not part of the controller's cost).
        let bench_ports: Vec<Uuid> = nb
            .view()
            .switches_rows()
            .filter(|(_, r)| matches!(r.str("name"), "net-a" | "net-b"))
            .flat_map(|(u, _)| nb.view().switch_ports(u))
            .collect();
        let allocated = |s: &ovsdb::replica::Snapshot| {
            bench_ports
                .iter()
                .all(|u| s.get("Logical_Switch_Port", u).is_some_and(|r| r.get("dynamic_addresses").is_some_and(|d| !d.is_empty())))
        };
        let alloc = match nb.replica().wait_until(Duration::from_secs(600), allocated).await {
            Ok(_) => t0.elapsed().as_secs_f64(),
            Err(_) => f64::NAN,
        };
        if failed > 0 || ports != 2 * n {
            return Err(format!("{failed} pods failed, {ports} ports for {n} pods").into());
        }
        // The controller's own per-pod work, without I/O: desired ports and plan of N further
        // pods against the replica as it is now (index lookups: flat in the size of the NB).
        let more: Vec<Pod> = (n..2 * n).map(pod).collect();
        let view = nb.view();
        let tp = Instant::now();
        let mut claims = Claims::new();
        for p in &more {
            let want = ctl.desired(p)?;
            let planned = plan(&view, &PodRef::of(p).ok_or("pod identity")?, &want, &mut claims)?;
            if planned.changes.created.len() != 2 {
                return Err(format!("plan of {:?}: {:?}", p.metadata.name, planned.changes).into());
            }
        }
        let plan_us = tp.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!(
            "pods={n} batch={batch} allocator={allocator} prefill_ls={prefill_ls} prefill_lsp={prefill_lsp} prefill_secs={prefill_secs:.1} load_secs={load_secs:.1} settle_secs={settle_secs:.1} secs={secs:.3} txns={txns} alloc_secs={alloc:.3} plan_us={plan_us:.1} rss_mb={:.1} cpu_ctl_s={:.2} cpu_nb_s={:.2} cpu_northd_s={:.2} cpu_sb_s={:.2}",
            vm_hwm_mb(), cpu[0], cpu[1], cpu[2], cpu[3]
        );
        drop(central);
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
