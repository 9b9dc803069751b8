//! The controller runner against a REAL kube-apiserver and a real OVN central (NB + SB + northd):
//! pods with the networks annotation get logical switch ports and the `kubetron.io/interfaces` annotation,
//! deleted pods lose their ports, orphans are garbage-collected, and leader election on a real Lease lets
//! exactly one of two runners write, the survivor taking over when the leader dies. The first runner has no
//! default network name (network-status gets no eth0 entry from it), the second one has (chained mode
//! without Multus): once the kubelet (here: the test, through pods/status) reports the pod's IPs, the pod's
//! network-status gets the cluster network's eth0 entry first.
//!
//! The runners run in-process as the deployed controller identity (deploy/rbac-controller.yaml), each on its
//! own tokio runtime so that "killing" one drops every task and connection it had.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (else prints "skipped"). Needs ovsdb-server, ovn-northd, ovn-nbctl.
//! Run: `KUBETRON_KUBE_TESTS=1 cargo test -p k8s --test kube_e2e_controller`
//!
//! One #[test]: the runners watch pods cluster-wide, so scenarios sharing the apiserver must not overlap.

mod kube_e2e_support;

use std::time::{Duration, Instant};

use daemons::{Central, Chassis, ChassisConfig};
use k8s::controller::backend::run_ovn as run;
use k8s::controller::events::KubePodWriter;
use k8s::controller::lease::{LeaderElector, LeaseConfig};
use k8s::controller::runner::RunnerConfig;
use k8s::controller::Nb;
use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_e2e_support::*;
use model::handoff::{self, Addressing};
use model::status::{parse_network_status, INTERFACES_ANNOTATION, NETWORK_STATUS_ANNOTATION};
use serde_json::json;
use tokio::sync::watch;

const SWITCH: &str = "e2e-blue";
const SUBNET: &str = "10.77.0.0/24";
/// The cluster default network's name the second runner is given.
const CLUSTER_NET: &str = "e2e-cluster-net";

/// One controller replica: leader elector + runner, on its own runtime.
struct Replica {
    identity: String,
    rt: Option<tokio::runtime::Runtime>,
    nb: Nb,
    leader: watch::Receiver<bool>,
}

impl Replica {
    fn start(h: &Harness, nb_remote: &str, lease: &str, identity: &str, default_network_name: Option<&str>) -> Replica {
        let rt = runtime();
        let (nb, leader) = rt.block_on(async {
            let client = h.user(CONTROLLER_USER, SA_GROUPS).await;
            let ovsdb = ovsdb::Client::connect_to(nb_remote).await.expect("connect NB");
            let nb = Nb::start(ovsdb).await.expect("NB replica");
            let mut cfg = LeaseConfig::new(KUBETRON_NS, lease, identity);
            cfg.lease_duration = Duration::from_secs(4);
            cfg.renew_deadline = Duration::from_secs(3);
            cfg.retry_period = Duration::from_millis(300);
            let elector = LeaderElector::new(client.clone(), cfg);
            let leader = elector.subscribe();
            tokio::spawn(elector.run());
            let rcfg = RunnerConfig {
                gc_interval: Duration::from_secs(2),
                backoff_min: Duration::from_millis(200),
                // Longer than any wait below: a pod that gets fixed within a wait was requeued by
                // the change that fixed it, not by a retry.
                backoff_max: Duration::from_secs(600),
                default_network_name: default_network_name.map(str::to_string),
                ..Default::default()
            };
            tokio::spawn(run(client.clone(), nb.clone(), KubePodWriter::new(client, identity), leader.clone(), rcfg));
            (nb, leader)
        });
        Replica { identity: identity.into(), rt: Some(rt), nb, leader }
    }

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Simulates a crash: every task and connection of this replica goes away at once.
    fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pod(name: &str, networks: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "example.invalid/c:1"}]}
    }))
    .expect("pod json")
}

struct Ovn {
    /// Stopped before the central (declaration order).
    chassis: Chassis,
    central: Central,
    _dir: tempfile::TempDir,
}

impl Ovn {
    fn nbctl(&self, args: &[&str]) -> String {
        self.central.nbctl(args).unwrap_or_else(|e| panic!("ovn-nbctl {args:?}: {e}")).trim().to_string()
    }
    /// The port's columns, or None when it does not exist.
    fn port(&self, name: &str) -> Option<String> {
        let out = self.nbctl(&["--if-exists", "list", "Logical_Switch_Port", name]);
        (!out.is_empty()).then_some(out)
    }
    fn switch_ports(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nbctl(&["lsp-list", SWITCH])
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|s| s.trim_matches(|c| c == '(' || c == ')').to_string())
            .collect();
        v.sort();
        v
    }
}

async fn wait_port(ovn: &Ovn, name: &str, present: bool, timeout: Duration) -> Option<String> {
    wait_for(&format!("port {name} {}", if present { "to appear" } else { "to go" }), timeout, || async {
        match (ovn.port(name), present) {
            (Some(p), true) => Some(Some(p)),
            (None, false) => Some(None),
            _ => None,
        }
    })
    .await
}

/// Plugs `port` on the node as the CNI plugin does (an OVS interface with iface-id and iface-id-ver):
/// ovn-controller binds it and northd sets it up.
fn plug(ovn: &Ovn, ifname: &str, port: &str, uid: &str) {
    ovn.chassis
        .vsctl(&[
            "add-port",
            "br-int",
            ifname,
            "--",
            "set",
            "Interface",
            ifname,
            "type=internal",
            &format!("external_ids:iface-id={port}"),
            &format!("external_ids:iface-id-ver={uid}"),
        ])
        .unwrap_or_else(|e| panic!("plug {port}: {e}"));
}

/// What the kubelet does once the pod's sandbox has its network: reports the pod's IPs through pods/status.
async fn set_pod_ips(pods: &Api<Pod>, name: &str, ips: &[&str]) {
    let list: Vec<serde_json::Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    let body = json!({"status": {"podIP": ips[0], "podIPs": list}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&body)).await.unwrap_or_else(|e| panic!("set podIPs of {name}: {e}"));
}

/// The pod's network-status entries (empty when it has none).
async fn network_status(pods: &Api<Pod>, name: &str) -> Vec<serde_json::Value> {
    let p = pods.get(name).await.unwrap_or_else(|e| panic!("get {name}: {e}"));
    match p.metadata.annotations.unwrap_or_default().get(NETWORK_STATUS_ANNOTATION) {
        Some(v) => serde_json::from_str(v).unwrap_or_else(|e| panic!("network-status of {name} {v}: {e}")),
        None => Vec::new(),
    }
}

fn interfaces_of(entries: &[serde_json::Value]) -> Vec<&str> {
    entries.iter().map(|e| e["interface"].as_str().unwrap_or("-")).collect()
}

async fn lease_holder(api: &Api<Lease>, name: &str) -> Option<(String, i32)> {
    let l = api.get_opt(name).await.ok()??;
    let s = l.spec?;
    Some((s.holder_identity?, s.lease_transitions.unwrap_or(0)))
}

async fn events(api: &Api<Event>, pod: &str) -> Vec<Event> {
    let lp = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    api.list(&lp).await.expect("list events").items
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn controller_runners_against_real_apiserver_and_ovn() {
    let Some(h) = harness("controller_runners_against_real_apiserver_and_ovn") else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let central = Central::start(&dir.path().join("central"), false).expect("start OVN central");
    // One node, so that ports can go up (ovn-controller binds them) and network-status gets written.
    let netns = format!("ke2e{}", std::process::id() % 100_000);
    let cfg = ChassisConfig::new("node-1", dir.path().join("node-1"), &netns, &central.sb_remote(), "198.51.100.77");
    let chassis = Chassis::start(cfg).expect("start chassis");
    chassis.wait_registered(&central.sb_remote(), Duration::from_secs(20)).expect("chassis registered");
    let ovn = Ovn { chassis, central, _dir: dir };
    ovn.nbctl(&["ls-add", SWITCH]);
    ovn.nbctl(&["set", "Logical_Switch", SWITCH, &format!("other_config:subnet={SUBNET}"), "other_config:exclude_ips=10.77.0.1"]);
    let nb_remote = ovn.central.nb_remote();

    let rt = runtime();
    let ns = unique("e2e-ctl");
    let lease_name = unique("e2e-ctl-lease");
    let admin = rt.block_on(async {
        let admin = h.deployed_admin().await;
        create_namespace(&admin, &ns, &[]).await;
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        let config = format!(r#"{{"cniVersion":"1.0.0","name":"blue","type":"kubetron","logical_switch":"{SWITCH}"}}"#);
        nads.create(&PostParams::default(), &new_nad(&ns, "blue", &config, &[])).await.expect("create NAD");
        // The controller identity's bindings were just made: wait until it may use them.
        let ctl = h.user(CONTROLLER_USER, SA_GROUPS).await;
        let leases: Api<Lease> = Api::namespaced(ctl.clone(), KUBETRON_NS);
        let pods: Api<Pod> = Api::all(ctl);
        wait_for("the controller identity to be authorized", Duration::from_secs(20), || async {
            (pods.list(&ListParams::default().limit(1)).await.is_ok() && leases.get_opt("probe").await.is_ok()).then_some(())
        })
        .await;
        admin
    });
    eprintln!("setup done in {:?}", t0.elapsed());

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let ev: Api<Event> = Api::namespaced(admin.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(admin.clone(), KUBETRON_NS);
    let pp = PostParams::default();
    let gone = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    let wait = Duration::from_secs(20);

    // --- One replica: it becomes the leader and reconciles. ---
    let mut a = Replica::start(h, &nb_remote, &lease_name, "ctl-a", None);
    rt.block_on(async {
        let (holder, _) = wait_for("ctl-a to hold the Lease", wait, || async { lease_holder(&leases, &lease_name).await }).await;
        assert_eq!(holder, "ctl-a");
        wait_for("ctl-a to see itself leader", wait, || async { a.is_leader().then_some(()) }).await;

        // p1 asks for its default route through blue (named gateway).
        let p1 = pods.create(&pp, &pod("p1", r#"[{"name":"blue","default-route":["10.77.0.1"]}]"#)).await.expect("create p1");
        let uid = p1.metadata.uid.clone().expect("uid");
        let port = model::names::pod_port(&ns, "p1", "net1");
        let row = wait_port(&ovn, &port, true, wait).await.expect("port row");
        assert!(row.contains(&uid), "port tagged with the pod UID: {row}");
        assert!(row.contains("controller"), "owned by the controller: {row}");
        assert!(ovn.switch_ports().contains(&port), "port on {SWITCH}");

        // The pod gets kubetron.io/interfaces once northd has allocated the address.
        let value = wait_for("the kubetron.io/interfaces annotation", wait, || async {
            pods.get("p1").await.ok()?.metadata.annotations?.get(INTERFACES_ANNOTATION).cloned()
        })
        .await;
        // It is the v1 hand-off: version, the pod's UID, every field of section 2 of docs/cluster-mode.md.
        let parsed = handoff::parse(&value).expect("annotation parses");
        let h = parsed.handoff().expect("a v1 hand-off, not a v0 list");
        assert_eq!(h.version, 1, "{value}");
        assert_eq!(h.pod_uid, uid, "{value}");
        assert_eq!(h.interfaces.len(), 1, "{value}");
        let i = &h.interfaces[0];
        assert_eq!(i.interface, "net1");
        assert_eq!(i.network, format!("{ns}/blue"));
        assert_eq!(i.cni_network, "blue");
        assert_eq!(i.logical_switch, SWITCH);
        assert_eq!(i.logical_port, port);
        assert_eq!(i.logical_port, model::names::pod_port(&ns, "p1", "net1"));
        assert_eq!(i.mtu, model::netconf::DEFAULT_MTU);
        assert_eq!(i.addressing, Addressing::Static);
        let raw: serde_json::Value = serde_json::from_str(&value).expect("JSON");
        for key in [
            "interface",
            "network",
            "cni_network",
            "logical_switch",
            "logical_port",
            "mac",
            "ips",
            "gateways",
            "routes",
            "mtu",
            "addressing",
        ] {
            assert!(raw["interfaces"][0].get(key).is_some(), "{key} missing in {value}");
        }
        let dynamic = ovn.nbctl(&["get", "Logical_Switch_Port", &port, "dynamic_addresses"]);
        assert!(dynamic.contains(&i.mac), "annotation MAC {} is NB's {dynamic}", i.mac);
        assert_eq!(i.ips.len(), 1, "{value}");
        let ip = i.ips[0].addr().to_string();
        let ip = ip.as_str();
        assert!(ip.starts_with("10.77.0.") && ip != "10.77.0.1", "{ip} from {SUBNET}, not the excluded router");
        assert!(dynamic.contains(ip), "annotation IP {ip} is NB's {dynamic}");
        assert_eq!(i.ips[0].prefix_len(), 24, "{:?}", i.ips);
        // The pod asked for its default route through blue, via its named gateway.
        let gw: std::net::IpAddr = "10.77.0.1".parse().unwrap();
        assert_eq!(i.routes, vec![handoff::Route { dst: "0.0.0.0/0".parse().unwrap(), gw }], "{value}");
        // The port is bound to this pod generation.
        assert_eq!(ovn.nbctl(&["get", "Logical_Switch_Port", &port, "options:iface-id-ver"]).trim_matches('"'), uid);
        let evs = events(&ev, "p1").await;
        assert!(evs.iter().any(|e| e.reason.as_deref() == Some("LogicalPortsCreated")), "{evs:?}");
        let annotations = pods.get("p1").await.unwrap().metadata.annotations.unwrap_or_default();
        assert!(!annotations.contains_key(NETWORK_STATUS_ANNOTATION), "no network-status while the port is down");

        // Multus writes the cluster network's entry (eth0) once the pod's sandbox is up: kubetron must keep it.
        let multus_eth0 = json!({"name": "kindnet", "interface": "eth0", "ips": ["10.244.0.9"], "mtu": 1450, "default": true, "dns": {}});
        let multus = json!({"metadata": {"annotations": {NETWORK_STATUS_ANNOTATION: json!([multus_eth0]).to_string()}}});
        pods.patch("p1", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&multus)).await.expect("Multus's write");
        // The node plugs the port (an OVS interface with iface-id = the port, as the CNI plugin makes it):
        // ovn-controller binds it, northd sets it up, and the controller writes network-status.
        plug(&ovn, "p1if", &port, &uid);
        let value = wait_for("kubetron's entry in the network-status annotation", wait, || async {
            let v = pods.get("p1").await.ok()?.metadata.annotations?.get(NETWORK_STATUS_ANNOTATION).cloned()?;
            v.contains("net1").then_some(v)
        })
        .await;
        assert_eq!(ovn.nbctl(&["get", "Logical_Switch_Port", &port, "up"]), "true");
        let raw: Vec<serde_json::Value> = serde_json::from_str(&value).expect("a JSON list");
        assert_eq!(raw.len(), 2, "{value}");
        assert_eq!(raw[0], multus_eth0, "Multus's eth0 entry is kept, verbatim and first: {value}");
        let status = parse_network_status(&value).expect("network-status parses");
        assert_eq!(status[1].name, format!("{ns}/blue"));
        assert_eq!(status[1].interface.as_deref(), Some("net1"));
        assert_eq!(status[1].ips, vec![ip.to_string()]);
        assert_eq!(status[1].mac.as_deref(), Some(i.mac.as_str()));
        // The default route's interface is not "default" (the cluster network's): it lists its gateway.
        assert!(!status[1].default, "{value}");
        assert_eq!(status[1].gateway, vec!["10.77.0.1".to_string()], "{value}");
        assert_eq!(status[1].default_route, vec!["10.77.0.1".to_string()], "{value}");

        // A pod asking for a network that does not exist gets no port and a Warning event.
        pods.create(&pp, &pod("ghost", "nope")).await.expect("create ghost");
        let e = wait_for("a Warning event on ghost", wait, || async {
            events(&ev, "ghost").await.into_iter().find(|e| e.type_.as_deref() == Some("Warning"))
        })
        .await;
        assert!(e.message.as_deref().unwrap_or("").contains("nope"), "{e:?}");
        let ghost_port = model::names::pod_port(&ns, "ghost", "net1");
        assert!(ovn.port(&ghost_port).is_none());
        // Creating the missing network requeues the pod that names it: it gets its port.
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        let config = format!(r#"{{"cniVersion":"1.0.0","name":"nope","type":"kubetron","logical_switch":"{SWITCH}"}}"#);
        nads.create(&pp, &new_nad(&ns, "nope", &config, &[])).await.expect("create NAD nope");
        let row = wait_port(&ovn, &ghost_port, true, wait).await.expect("ghost's port");
        assert!(row.contains("controller"), "{row}");

        // A capability the network cannot honour (port mappings: no chained portmap plugin) is not silently
        // ignored: no port, and a Warning event that says why.
        pods.create(&pp, &pod("mapped", r#"[{"name":"blue","portMappings":[{"hostPort":8080,"containerPort":80}]}]"#))
            .await
            .expect("create mapped");
        let e = wait_for("a Warning event on mapped", wait, || async {
            events(&ev, "mapped").await.into_iter().find(|e| e.type_.as_deref() == Some("Warning"))
        })
        .await;
        let msg = e.message.as_deref().unwrap_or("");
        assert!(msg.contains("portMappings") && msg.contains("cannot honour"), "{e:?}");
        assert!(ovn.port(&model::names::pod_port(&ns, "mapped", "net1")).is_none());

        // A static IP that another pod's port holds (p1's, allocated by OVN): no port, and a Warning event
        // naming the holder's port and pod.
        let config = format!(
            r#"{{"cniVersion":"1.0.0","name":"blue-static","type":"kubetron","logical_switch":"{SWITCH}","capabilities":{{"ips":true}}}}"#
        );
        nads.create(&pp, &new_nad(&ns, "blue-static", &config, &[])).await.expect("create NAD blue-static");
        pods.create(&pp, &pod("taken", &format!(r#"[{{"name":"blue-static","ips":["{ip}/24"]}}]"#))).await.expect("create taken");
        let e = wait_for("a StaticIPConflict event on taken", wait, || async {
            events(&ev, "taken").await.into_iter().find(|e| e.reason.as_deref() == Some("StaticIPConflict"))
        })
        .await;
        assert_eq!(e.type_.as_deref(), Some("Warning"), "{e:?}");
        let msg = e.message.as_deref().unwrap_or("");
        assert!(msg.contains(ip) && msg.contains(&port) && msg.contains(&format!("{ns}/p1")), "{e:?}");
        assert!(ovn.port(&model::names::pod_port(&ns, "taken", "net1")).is_none());

        // Orphans: a controller-owned port of a pod that does not exist is garbage-collected; a port the
        // administrator made is not.
        ovn.nbctl(&[
            "lsp-add",
            SWITCH,
            "orphan",
            "--",
            "set",
            "Logical_Switch_Port",
            "orphan",
            "external_ids:\"kubetron.io/owner\"=controller",
            "external_ids:\"kubetron.io/pod-uid\"=00000000-0000-0000-0000-00000000dead",
        ]);
        ovn.nbctl(&["lsp-add", SWITCH, "admin-port"]);
        wait_port(&ovn, "orphan", false, wait).await;
        assert!(ovn.port("admin-port").is_some(), "not the controller's: kept");

        // Deleting the pod removes its port.
        pods.delete("p1", &gone).await.expect("delete p1");
        wait_port(&ovn, &port, false, wait).await;
        ovn.chassis.vsctl(&["del-port", "br-int", "p1if"]).expect("unplug p1");
        pods.delete("ghost", &gone).await.expect("delete ghost");
        wait_port(&ovn, &ghost_port, false, wait).await;
        pods.delete("mapped", &gone).await.expect("delete mapped");
    });
    eprintln!("single replica done at {:?}", t0.elapsed());

    // --- Two replicas: only the Lease holder writes; when it dies the other takes over. ---
    let b = Replica::start(h, &nb_remote, &lease_name, "ctl-b", Some(CLUSTER_NET));
    rt.block_on(async {
        let p2 = pods.create(&pp, &pod("p2", "blue")).await.expect("create p2");
        let port2 = model::names::pod_port(&ns, "p2", "net1");
        let uid2 = p2.metadata.uid.clone().expect("uid");
        let row = wait_port(&ovn, &port2, true, wait).await.unwrap();
        assert!(row.contains(&uid2));
        wait_for("p2's annotation", wait, || async {
            pods.get("p2").await.ok()?.metadata.annotations?.get(INTERFACES_ANNOTATION).cloned()
        })
        .await;
        // The leader (ctl-a) has no default network name: the pod's IPs are known before its port goes up,
        // and the network-status written after that has kubetron's entry only.
        set_pod_ips(&pods, "p2", &["10.244.2.2"]).await;
        plug(&ovn, "p2if", &port2, &uid2);
        let entries = wait_for("p2's network-status", wait, || async {
            let e = network_status(&pods, "p2").await;
            (!e.is_empty()).then_some(e)
        })
        .await;
        assert_eq!(interfaces_of(&entries), ["net1"], "no eth0 entry without a default network name: {entries:?}");
        assert!(entries.iter().all(|e| e.get("default").is_none()), "{entries:?}");
        // b has been running for several of its retry periods by now.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(a.is_leader() && !b.is_leader(), "exactly one leader");
        assert_eq!(lease_holder(&leases, &lease_name).await.unwrap().0, "ctl-a");
        assert_eq!(b.nb.transactions(), 0, "the follower never wrote to the Northbound database");
        assert!(a.nb.transactions() > 0);
    });

    let (_, transitions_before) = rt.block_on(lease_holder(&leases, &lease_name)).unwrap();
    let killed = Instant::now();
    a.kill();
    rt.block_on(async {
        let (holder, transitions) = wait_for("ctl-b to take the Lease over", Duration::from_secs(30), || async {
            lease_holder(&leases, &lease_name).await.filter(|(h, _)| h == "ctl-b")
        })
        .await;
        eprintln!("failover after {:?} (lease duration 4 s)", killed.elapsed());
        assert_eq!(holder, "ctl-b");
        assert_eq!(transitions, transitions_before + 1, "leaseTransitions counts the takeover");
        assert!(killed.elapsed() >= Duration::from_secs(2), "not before the old lease could expire");
        wait_for("ctl-b to see itself leader", wait, || async { b.is_leader().then_some(()) }).await;

        // ctl-b has a default network name: taking over, it reconciles every pod, and p2 (IPs known, port up)
        // gets the cluster network's entry, first.
        let entries = wait_for("p2's eth0 entry from ctl-b", wait, || async {
            let e = network_status(&pods, "p2").await;
            (e.len() == 2).then_some(e)
        })
        .await;
        assert_eq!(
            entries[0],
            json!({"name": CLUSTER_NET, "interface": "eth0", "ips": ["10.244.2.2"], "default": true, "dns": {}}),
            "{entries:?}"
        );
        assert_eq!(entries[1]["interface"], "net1", "{entries:?}");

        // The new leader reconciles new pods and removes ports of pods deleted after the failover.
        let p3 = pods.create(&pp, &pod("p3", "blue")).await.expect("create p3");
        let uid3 = p3.metadata.uid.clone().expect("uid");
        let port3 = model::names::pod_port(&ns, "p3", "net1");
        let row = wait_port(&ovn, &port3, true, wait).await.unwrap();
        assert!(row.contains(&uid3));
        wait_for("p3's annotation by ctl-b", wait, || async {
            pods.get("p3").await.ok()?.metadata.annotations?.get(INTERFACES_ANNOTATION).cloned()
        })
        .await;
        // As on a node: the port goes up during the sandbox's CNI ADD, so network-status is written while the
        // pod has no IPs yet: no eth0 entry. The kubelet reports the IPs afterwards (a pod update, not an
        // OVN change): the controller writes the eth0 entry then, first, with those IPs.
        plug(&ovn, "p3if", &port3, &uid3);
        let entries = wait_for("p3's network-status", wait, || async {
            let e = network_status(&pods, "p3").await;
            (!e.is_empty()).then_some(e)
        })
        .await;
        assert_eq!(interfaces_of(&entries), ["net1"], "no IPs yet, no eth0 entry: {entries:?}");
        set_pod_ips(&pods, "p3", &["10.244.3.3"]).await;
        let entries = wait_for("p3's eth0 entry", wait, || async {
            let e = network_status(&pods, "p3").await;
            (e.len() == 2).then_some(e)
        })
        .await;
        assert_eq!(interfaces_of(&entries), ["eth0", "net1"], "{entries:?}");
        assert_eq!(
            entries[0],
            json!({"name": CLUSTER_NET, "interface": "eth0", "ips": ["10.244.3.3"], "default": true, "dns": {}}),
            "{entries:?}"
        );
        assert!(entries[1].get("default").is_none(), "{entries:?}");
        let status = parse_network_status(&json!(entries).to_string()).expect("network-status parses");
        assert!(status[0].default && status[0].ips == ["10.244.3.3"]);
        // The IPs change (dual-stack here): the entry is replaced, not duplicated.
        set_pod_ips(&pods, "p3", &["10.244.3.4", "fd00:10:244::34"]).await;
        let entries = wait_for("p3's eth0 entry with the new IPs", wait, || async {
            let e = network_status(&pods, "p3").await;
            (e.first().is_some_and(|f| f["ips"] == json!(["10.244.3.4", "fd00:10:244::34"]))).then_some(e)
        })
        .await;
        assert_eq!(interfaces_of(&entries), ["eth0", "net1"], "{entries:?}");
        assert_eq!(entries[0]["default"], true, "{entries:?}");
        pods.delete("p2", &gone).await.expect("delete p2");
        wait_port(&ovn, &model::names::pod_port(&ns, "p2", "net1"), false, wait).await;
        ovn.chassis.vsctl(&["del-port", "br-int", "p2if"]).expect("unplug p2");
        assert!(b.nb.transactions() > 0, "{} writes now", b.identity);
        let evs = events(&ev, "p3").await;
        assert!(
            evs.iter().any(|e| e.reason.as_deref() == Some("LogicalPortsCreated") && e.reporting_instance.as_deref() == Some("ctl-b")),
            "the event names the replica that did it: {evs:?}"
        );
        pods.delete("p3", &gone).await.expect("delete p3");
        wait_port(&ovn, &port3, false, wait).await;
        ovn.chassis.vsctl(&["del-port", "br-int", "p3if"]).expect("unplug p3");
        assert_eq!(ovn.switch_ports(), vec!["admin-port".to_string()], "only the administrator's port is left");
    });
    drop(b);
    eprintln!("controller e2e done in {:?}", t0.elapsed());
}
