//! MultiNetworkPolicy benchmark (bench/policy): P policies (default 1,000) over N pods (default
//! 10,000; Northbound rows, not real ports) reconciled into a real Northbound database with
//! ovn-northd, by kubetron's planner ([`k8s::controller::policy::plan_policies`]: a Port_Group per
//! policy and switch, Address_Sets of peers, default-deny groups per switch) and, same run, on a
//! fresh database, the same policies translated naively (one ACL per peer address, no sets).
//!
//! `policy_bench [--policies P] [--pods N] [--batch B] [--skip-naive]`
//!
//! The world: 100 namespaces (labels `team`, `env`), pods spread over them and over 4 switches
//! (labels `app`, `tier`; a named container port `http`, 8080 or 8081), one logical switch port
//! each with a static IPv4 address. Policies, 10 per namespace: 40% pod-selector peers (TCP 80,
//! 443), 30% namespace-selector peers (a TCP range and UDP 53), 15% namespace x pod peers (named
//! port), 10% ipBlock with except (TCP 22), 5% egress to pod-selector peers (named port); each on
//! one or two switches.
//!
//! Measured per translation: the reconcile time (planning and writing in batches of B policies
//! per transaction, each confirmed in the controller's replica), northd's settle time after it
//! (`--wait=sb sync`), the ACL, Address_Set and Port_Group counts, the Southbound logical flows,
//! and northd's full recompute (median of 5 `inc-engine/recompute`, its `ovnnb_db_run` stopwatch).
//! Last line: `policies1k_s=X acls=N acls_vs_naive=X northd_recompute_ms=X` (the key says 1k
//! whatever P is; the table says P).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use daemons::Central;
use k8s::controller::nb::{ACL, AS, LS, LSP, PG};
use k8s::controller::policy::{plan_policies, PolicyItem};
use k8s::controller::Nb;
use ovsdb::datum::{Datum, Row};
use ovsdb::ops::{Mutation, Operation, Where};
use policy::{ContainerPort, Mode, PodView, PolicyRef, PolicySpec, PortView, Protocol, World};
use serde_json::json;

const NAMESPACES: usize = 100;
const SWITCHES: usize = 4;

struct Args {
    policies: usize,
    pods: usize,
    batch: usize,
    naive: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args { policies: 1000, pods: 10_000, batch: 50, naive: true };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow!("{k} needs a value"));
        match k.as_str() {
            "--policies" => a.policies = v()?.parse()?,
            "--pods" => a.pods = v()?.parse()?,
            "--batch" => a.batch = v()?.parse()?,
            "--skip-naive" => a.naive = false,
            _ => bail!("usage: policy_bench [--policies P] [--pods N] [--batch B] [--skip-naive]"),
        }
    }
    if a.policies == 0 || a.pods < NAMESPACES || a.batch == 0 {
        bail!("--policies and --batch must be positive, --pods at least {NAMESPACES}");
    }
    Ok(a)
}

fn switch(s: usize) -> String {
    format!("sw{s}")
}

/// Pod `i`: namespace `i % 100`, index `k = i / 100` in it; switch `k % 4`.
fn world(pods: usize) -> World {
    let namespaces = (0..NAMESPACES).map(|n| {
        (format!("ns{n}"), [("team".to_string(), format!("t{}", n % 10)), ("env".to_string(), format!("e{}", n % 3))].into_iter().collect())
    });
    let pods = (0..pods)
        .map(|i| {
            let (n, k) = (i % NAMESPACES, i / NAMESPACES);
            let ip = format!("10.{}.{}.{}", k % SWITCHES, i / 250, i % 250 + 1);
            PodView {
                namespace: format!("ns{n}"),
                name: format!("p{k}"),
                labels: [("app".to_string(), format!("a{}", k % 10)), ("tier".to_string(), format!("t{}", k % 3))].into_iter().collect(),
                container_ports: vec![ContainerPort { name: "http".into(), protocol: Protocol::Tcp, number: 8080 + (k % 2) as u16 }],
                ports: vec![PortView { switch: switch(k % SWITCHES), lsp: format!("ns{n}_p{k}_net1"), ips: vec![ip.parse().unwrap()] }],
            }
        })
        .collect();
    World::new(namespaces, pods)
}

struct Bench {
    namespace: String,
    name: String,
    uid: String,
    spec: PolicySpec,
    switches: Vec<String>,
}

fn policies(count: usize) -> Vec<Bench> {
    (0..count)
        .map(|j| {
            let (n, q) = (j % NAMESPACES, j / NAMESPACES);
            let app = |x: usize| json!({"matchLabels": {"app": format!("a{}", x % 10)}});
            let team = json!({"matchLabels": {"team": format!("t{}", q % 10)}});
            let spec = match j % 20 {
                0..=7 => json!({"podSelector": app(q), "ingress": [{"from": [{"podSelector": app(q + 1)}], "ports": [{"port": 80}, {"port": 443}]}]}),
                8..=13 => json!({"podSelector": app(q), "ingress": [{"from": [{"namespaceSelector": team}],
                    "ports": [{"port": 8000, "endPort": 8100}, {"protocol": "UDP", "port": 53}]}]}),
                14..=16 => json!({"podSelector": app(q), "ingress": [{"from": [{"namespaceSelector": team, "podSelector": app(q)}], "ports": [{"port": "http"}]}]}),
                17..=18 => json!({"podSelector": app(q), "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}], "ports": [{"port": 22}]}]}),
                _ => json!({"podSelector": app(q), "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": app(q + 3)}], "ports": [{"port": "http"}]}]}),
            };
            let mut switches = vec![switch(j % SWITCHES)];
            if j % 3 == 0 {
                switches.push(switch((j + 1) % SWITCHES));
            }
            Bench { namespace: format!("ns{n}"), name: format!("pol{q}"), uid: format!("uid-{j}"), spec: serde_json::from_value(spec).unwrap(), switches }
        })
        .collect()
}

#[derive(Default)]
struct Stats {
    reconcile_s: f64,
    plan_s: f64,
    transactions: usize,
    settle_s: f64,
    acls: usize,
    address_sets: usize,
    port_groups: usize,
    lflows: usize,
    recompute_ms: f64,
}

/// Makes the switches and one port per pod (1,000 per transaction).
async fn populate(central: &Central, client: &ovsdb::Client, world: &World) -> Result<()> {
    let mut uuids = BTreeMap::new();
    for s in 0..SWITCHES {
        central.nbctl(&["ls-add", &switch(s)])?;
        uuids.insert(switch(s), central.nbctl(&["get", "Logical_Switch", &switch(s), "_uuid"])?.trim().parse::<ovsdb::datum::Uuid>()?);
    }
    for (c, chunk) in world.pods().chunks(1000).enumerate() {
        let mut ops = Vec::new();
        for (i, pod) in chunk.iter().enumerate() {
            let port = &pod.ports[0];
            let name = format!("p{i}");
            let g = c * 1000 + i;
            let mac = format!("0a:00:00:{:02x}:{:02x}:{:02x}", g >> 16 & 255, g >> 8 & 255, g & 255);
            ops.push(
                Operation::insert(LSP)
                    .row(
                        Row::new()
                            .with("name", port.lsp.as_str())
                            .with("addresses", Datum::set([format!("{mac} {}", port.ips[0])]))
                            .with("external_ids", Datum::map([("kubetron.io/owner", "controller")])),
                    )
                    .uuid_name(&name),
            );
            ops.push(Operation::mutate(LS, Where::uuid(uuids[&port.switch])).mutation(Mutation::insert("ports", Datum::named_uuid(&name))));
        }
        client.transact(ovn::nb::DB, ops).await.context("populate NB")?;
    }
    Ok(())
}

/// northd's full recompute: median of 5 `ovnnb_db_run` stopwatch maxima.
fn recompute_ms(central: &Central) -> Result<f64> {
    let mut v = Vec::new();
    for _ in 0..5 {
        central.northd_appctl(&["stopwatch/reset"])?;
        central.northd_appctl(&["inc-engine/recompute"])?;
        central.nbctl(&["--wait=sb", "sync"])?;
        let out = central.northd_appctl(&["stopwatch/show", "ovnnb_db_run"])?;
        let max = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum:"))
            .and_then(|m| m.trim().trim_end_matches("msec").trim().parse::<f64>().ok())
            .ok_or_else(|| anyhow!("no Maximum in northd's stopwatch: {out}"))?;
        v.push(max);
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

async fn phase(args: &Args, world: &World, pols: &[Bench], mode: Mode) -> Result<Stats> {
    let dir = tempfile::tempdir()?;
    let mut central = Central::start(&dir.path().join("central"), false)?;
    let client = ovsdb::Client::connect_to(&central.nb_remote()).await?;
    populate(&central, &client, world).await?;
    let nb = Nb::start(client).await?;
    central.nbctl(&["--wait=sb", "sync"])?;
    let items: Vec<PolicyItem> = pols
        .iter()
        .map(|p| PolicyItem {
            policy: PolicyRef { namespace: &p.namespace, name: &p.name, uid: &p.uid },
            spec: Some(&p.spec),
            switches: &p.switches,
        })
        .collect();
    let mut st = Stats::default();
    let t0 = Instant::now();
    for chunk in items.chunks(args.batch) {
        let tp = Instant::now();
        let plan = plan_policies(&nb.view(), world, chunk, mode)?;
        st.plan_s += tp.elapsed().as_secs_f64();
        nb.transact(plan.ops.clone()).await?;
        nb.replica().wait_until(Duration::from_secs(120), |s| plan.shown_in(s)).await?;
        st.transactions += 1;
    }
    st.reconcile_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    central.nbctl(&["--timeout=600", "--wait=sb", "sync"])?;
    st.settle_s = t1.elapsed().as_secs_f64();
    let snap = nb.view();
    st.acls = snap.snapshot().rows(ACL).count();
    st.address_sets = snap.snapshot().rows(AS).count();
    st.port_groups = snap.snapshot().rows(PG).count();
    st.lflows = central.sbctl(&["--bare", "--columns=_uuid", "list", "Logical_Flow"])?.lines().filter(|l| !l.is_empty()).count();
    st.recompute_ms = recompute_ms(&central)?;
    drop(nb);
    central.stop()?;
    Ok(st)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let world = world(args.pods);
    let pols = policies(args.policies);
    for p in &pols {
        let problems = policy::validate(&p.spec);
        if !problems.is_empty() {
            bail!("bench policy {}/{} invalid: {problems:?}", p.namespace, p.name);
        }
    }
    eprintln!("policy_bench: {} policies, {} pods, {} per transaction", args.policies, args.pods, args.batch);
    let ours = phase(&args, &world, &pols, Mode::AddressSets).await.context("kubetron's translation")?;
    let naive = if args.naive { Some(phase(&args, &world, &pols, Mode::Naive).await.context("naive translation")?) } else { None };

    println!("{:<28} {:>12} {:>12}", "", "kubetron", "naive");
    let row = |label: &str, a: String, b: Option<String>| println!("{label:<28} {a:>12} {:>12}", b.unwrap_or_else(|| "-".into()));
    let n = naive.as_ref();
    row("policies", args.policies.to_string(), n.map(|_| args.policies.to_string()));
    row("reconcile_s", format!("{:.2}", ours.reconcile_s), n.map(|s| format!("{:.2}", s.reconcile_s)));
    row("  of which planning_s", format!("{:.2}", ours.plan_s), n.map(|s| format!("{:.2}", s.plan_s)));
    row("transactions", ours.transactions.to_string(), n.map(|s| s.transactions.to_string()));
    row("northd_settle_s", format!("{:.2}", ours.settle_s), n.map(|s| format!("{:.2}", s.settle_s)));
    row("acls", ours.acls.to_string(), n.map(|s| s.acls.to_string()));
    row("address_sets", ours.address_sets.to_string(), n.map(|s| s.address_sets.to_string()));
    row("port_groups", ours.port_groups.to_string(), n.map(|s| s.port_groups.to_string()));
    row("sb_logical_flows", ours.lflows.to_string(), n.map(|s| s.lflows.to_string()));
    row("northd_recompute_ms", format!("{:.0}", ours.recompute_ms), n.map(|s| format!("{:.0}", s.recompute_ms)));
    let ratio = n.map_or("n/a".to_string(), |s| format!("{:.3}", ours.acls as f64 / s.acls.max(1) as f64));
    println!("policies1k_s={:.2} acls={} acls_vs_naive={ratio} northd_recompute_ms={:.0}", ours.reconcile_s, ours.acls, ours.recompute_ms);
    Ok(())
}
