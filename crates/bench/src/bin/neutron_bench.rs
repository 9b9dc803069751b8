//! Neutron backend benchmark (bench/neutron): N pod attachments (default 100) through kubetron's
//! Neutron backend ([`k8s::controller::neutron::NeutronBackend`], in-process, pods reconciled as
//! the controller's runner does: up to 64 at once, transient failures retried) against the same N
//! ports created one by one with plain HTTP calls (a serial client), same run, same server.
//!
//! `neutron_bench [--ports N] [--api-workers W] [--rounds R]`
//!
//! The world: a real OVN (central + one chassis), Debian's neutron-server (ML2/OVN, noauth) on a
//! private PostgreSQL, W API workers (default: the number of cores, as neutron-server's own
//! default). Each round runs the serial client, then kubetron, and deletes every port after.
//! Ports are counted per (device_id, name) at the end of each kubetron round: a second port of one
//! attachment is a duplicate. The last line is the key=value summary
//! `ports100_s=X ports100_vs_serial=X dup_ports=N` (medians over the rounds; the key names say 100
//! whatever N is, the table says N).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use daemons::neutron::Deployment;
use futures::StreamExt;
use k8s::controller::neutron::{NeutronBackend, NeutronSettings};
use k8s::controller::{Backend, NadMap};
use k8s::nad::new_nad;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

const NODE: &str = "bench-node1";
/// Pods reconciled at once (the runner's default concurrency).
const PODS_AT_ONCE: usize = 64;

struct Args {
    ports: usize,
    workers: u32,
    rounds: usize,
    /// The client's coalescing (`None`: its defaults).
    window_ms: Option<u64>,
    coalesce_max: Option<usize>,
}

fn parse_args() -> Result<Args> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let mut a = Args { ports: 100, workers: cores, rounds: 1, window_ms: None, coalesce_max: None };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow!("{k} needs a value"));
        match k.as_str() {
            "--ports" => a.ports = v()?.parse()?,
            "--api-workers" => a.workers = v()?.parse()?,
            "--rounds" => a.rounds = v()?.parse()?,
            "--window-ms" => a.window_ms = Some(v()?.parse()?),
            "--coalesce-max" => a.coalesce_max = Some(v()?.parse()?),
            _ => bail!("usage: neutron_bench [--ports N] [--api-workers W] [--rounds R] [--window-ms MS] [--coalesce-max N]"),
        }
    }
    if a.ports == 0 || a.rounds == 0 || a.workers == 0 {
        bail!("--ports, --rounds and --api-workers must be positive");
    }
    Ok(a)
}

fn pod(i: usize, round: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("pod-{i}"), "uid": format!("kt-{round}-{i}"),
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "red"}},
        "spec": {"nodeName": NODE, "containers": []}
    }))
    .expect("pod")
}

/// The serial client: one POST after the other, plain HTTP, the same port body kubetron sends.
fn serial(port: u16, network: &str, n: usize, round: usize) -> Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        let body = json!({"port": {"network_id": network, "name": format!("serial/pod-{i}/net1"), "device_owner": neutron::DEVICE_OWNER,
                                   "device_id": format!("serial-{round}-{i}"), "binding:host_id": NODE, "admin_state_up": true}});
        let a = daemons::http::call("POST", port, "/v2.0/ports", &[], Some(&body))?;
        if a.status != 201 {
            bail!("serial POST {i}: {} {}", a.status, a.body);
        }
    }
    Ok(start.elapsed())
}

/// kubetron: every pod reconciled through the backend, `PODS_AT_ONCE` at a time.
async fn kubetron(b: Arc<NeutronBackend>, n: usize, round: usize) -> Result<(Duration, usize)> {
    let start = Instant::now();
    let results: Vec<Result<usize>> = futures::stream::iter(0..n)
        .map(|i| {
            let b = b.clone();
            async move {
                let p = pod(i, round);
                let mut retries = 0;
                loop {
                    match b.reconcile(&p).await {
                        Ok(_) => return Ok(retries),
                        Err(e) if e.is_transient() && retries < 10 => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => return Err(anyhow!("pod {i}: {e}")),
                    }
                }
            }
        })
        .buffer_unordered(PODS_AT_ONCE)
        .collect()
        .await;
    let retries = results.into_iter().collect::<Result<Vec<usize>>>()?.into_iter().sum();
    Ok((start.elapsed(), retries))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let a = parse_args()?;
    // Warnings (a bulk create that failed, retries) go to stderr.
    telemetry::init_logging("warn");
    if !daemons::neutron::available() {
        bail!("neutron-server and PostgreSQL 15 are not installed (scripts/install-deps.sh with KUBETRON_NEUTRON=1)");
    }
    let tmp = tempfile::tempdir()?;
    let netns = format!("ktbn{}", std::process::id() % 100000);
    let world = Deployment::start_with(tmp.path(), NODE, &netns, None, a.workers).context("OVN, PostgreSQL and neutron-server")?;
    let port = world.stack.server.port();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut cfg = neutron::ClientConfig::new(&world.stack.server.url());
    if let Some(ms) = a.window_ms {
        cfg.coalesce_window = Duration::from_millis(ms);
    }
    if let Some(n) = a.coalesce_max {
        cfg.coalesce_max = n;
    }
    let (window, max) = (cfg.coalesce_window, cfg.coalesce_max);
    let client = neutron::Client::new(cfg)?;
    let net = rt.block_on(async {
        let net = client.create_network("red", json!({})).await?;
        client.create_subnet(&net.id, "10.91.0.0/20", json!({})).await?;
        anyhow::Ok(net)
    })?;
    let mut nads = NadMap::default();
    let conf = json!({"cniVersion": "1.0.0", "type": "kubetron", "name": "red", "network_id": net.id});
    nads.insert(new_nad("bench", "red", &conf.to_string(), &[]));
    let (_, leader) = tokio::sync::watch::channel(true);
    let settings = NeutronSettings::new(Arc::from(vec![1u8; 32]));
    let backend = Arc::new(NeutronBackend::new(client.clone(), Arc::new(nads), leader, settings));

    println!(
        "neutron-server: {} API workers; {} ports per series; kubetron: {PODS_AT_ONCE} pods at once, 8 writes in flight, coalescing {window:?} up to {max}",
        a.workers, a.ports
    );
    println!("{:<6} {:<10} {:>8} {:>9} {:>8} {:>5}", "round", "client", "ports", "seconds", "ports/s", "dups");
    let (mut kt, mut ratio, mut dups_total) = (Vec::new(), Vec::new(), 0usize);
    for round in 0..a.rounds {
        let s = serial(port, &net.id, a.ports, round)?;
        println!(
            "{round:<6} {:<10} {:>8} {:>9.2} {:>8.1} {:>5}",
            "serial",
            a.ports,
            s.as_secs_f64(),
            a.ports as f64 / s.as_secs_f64(),
            "-"
        );
        let (k, retries) = rt.block_on(kubetron(backend.clone(), a.ports, round))?;
        let owned = rt.block_on(client.owned_ports())?;
        let mut per: HashMap<(&str, &str), usize> = HashMap::new();
        for p in owned.iter().filter(|p| p.device_id.starts_with(&format!("kt-{round}-"))) {
            *per.entry((p.device_id.as_str(), p.name.as_str())).or_default() += 1;
        }
        if per.len() != a.ports {
            bail!("round {round}: {} of {} attachments have a port", per.len(), a.ports);
        }
        let dups: usize = per.values().map(|c| c - 1).sum();
        dups_total += dups;
        println!(
            "{round:<6} {:<10} {:>8} {:>9.2} {:>8.1} {:>5}{}",
            "kubetron",
            a.ports,
            k.as_secs_f64(),
            a.ports as f64 / k.as_secs_f64(),
            dups,
            if retries > 0 { format!("  ({retries} pod retries)") } else { String::new() }
        );
        kt.push(k.as_secs_f64());
        ratio.push(s.as_secs_f64() / k.as_secs_f64());
        // Clean for the next round (and the quota).
        rt.block_on(async {
            futures::stream::iter(owned.iter().map(|p| client.delete_port(&p.id))).buffer_unordered(8).collect::<Vec<_>>().await
        })
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    }
    drop(world);
    println!("ports100_s={:.2} ports100_vs_serial={:.2} dup_ports={dups_total}", median(&mut kt), median(&mut ratio));
    Ok(())
}
