//! Controller benchmark: N pods x 2 networks reconciled into an empty Northbound database
//! (real ovsdb-server + ovn-northd), pods fed straight to the core (no API server).
//!
//! `bench_controller --pods N [--batch K]`: K = 1 (default) is the controller's normal path,
//! one `reconcile_pod` (one transaction, then wait for the replica to show it) after another;
//! K > 1 uses `reconcile_batch` with K pods per transaction. Prints one line:
//! `pods=N batch=K secs=S txns=T alloc_secs=A rss_mb=R` where `secs` is the reconcile wall time,
//! `alloc_secs` the time until northd had allocated every dynamic address, and `rss_mb` the
//! peak RSS of this process (VmHWM); then the CPU seconds spent during the reconcile by this
//! process, the NB ovsdb-server, ovn-northd and the SB ovsdb-server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s::controller::{Controller, NadMap, Nb, NbView};
use k8s::nad::new_nad;
use k8s_openapi::api::core::v1::Pod;

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = arg("--pods", 1000);
    let batch = arg("--batch", 1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
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
    let northd_pid = std::fs::read_to_string(tmp.path().join("central/northd.pid")).unwrap_or_default().trim().to_string();
    let cpus = move || [cpu_s("self"), cpu_s(&nb_pid), cpu_s(&northd_pid), cpu_s(&sb_pid)];
    rt.block_on(async move {
        let client = ovsdb::Client::connect_to(&central.nb_remote()).await?;
        let nb = Nb::start(client).await?;
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
        let ports = nb.view().snapshot().len("Logical_Switch_Port");
        // Time until northd allocated every dynamic address (not part of the controller's cost).
        let allocated = |s: &ovsdb::replica::Snapshot| {
            s.rows("Logical_Switch_Port").all(|(_, r)| r.get("dynamic_addresses").is_some_and(|d| !d.is_empty()))
        };
        let alloc = match nb.replica().wait_until(Duration::from_secs(600), allocated).await {
            Ok(_) => t0.elapsed().as_secs_f64(),
            Err(_) => f64::NAN,
        };
        let _ = NbView::default();
        if failed > 0 || ports != 2 * n {
            return Err(format!("{failed} pods failed, {ports} ports for {n} pods").into());
        }
        println!(
            "pods={n} batch={batch} secs={secs:.3} txns={txns} alloc_secs={alloc:.3} rss_mb={:.1} cpu_ctl_s={:.2} cpu_nb_s={:.2} cpu_northd_s={:.2} cpu_sb_s={:.2}",
            vm_hwm_mb(), cpu[0], cpu[1], cpu[2], cpu[3]
        );
        drop(central);
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
