//! A live migration driven by the controller (issue 11), with the real binaries: a real kube-apiserver, a
//! real OVN (central + two chassis joined by an underlay), `kubetron controller` (default `rarp` mode), a
//! `kubetron node` agent per chassis and the `kubetron-cni` shim run in each chassis' netns. A VM with a
//! persistent IP (IPAMClaim `vm1.vms`, NAD with `"dhcp": true`) runs under qemu behind KubeVirt's bridge
//! binding in a launcher pod on node1 and leases the claim's address from OVN's DHCP. A migration target
//! launcher pod on node2 makes the controller bind the claim port to both chassis
//! (`requested-chassis=node1,node2`, `activation-strategy=rarp`); the target is plugged (the agent waits
//! for `ovn-installed`, which OVN sets on the additional chassis), a real qemu live migration runs while
//! a pod pings the VM every 10 ms, and the test then plays virt-handler (target ready annotation, source
//! phase Succeeded): the controller moves the port to node2 only. Checks: the NB options at each step
//! (their history is printed), SB `Port_Binding` chassis, no duplicate replies, pings and a TCP echo
//! through the target, the claim's `status.ips` unchanged. Outage and duplicate figures are printed.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (with the kube-apiserver binary) and the VM gate
//! (`KUBETRON_VM_TESTS=1`, root, qemu); otherwise it prints why and returns. Holds the machine-wide VM
//! slot. Needs the `kubetron-cni` binary built next to `kubetron`.

mod kube_support;
mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s::ipamclaim::{new_claim, IPAMClaim};
use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_support::*;
use model::handoff::{Addressing, Attachment};
use serde_json::{json, Value};
use support::{Pod as PodNetns, World};
use testkit::cni::{CniInvocation, CniOutcome};
use testkit::vm::{self, GuestImage, Nic, Pinger, Vm, VmConfig};

const SUBNET: &str = "10.69.0.0/24";
const NET: &str = "vms";
const CLAIM: &str = "vm1.vms";
const VM_MAC: &str = "02:5e:69:00:00:01";
const VMI_UID: &str = "vmi-uid-mig-1";
const SRC: &str = "virt-launcher-vm1-aaaaa";
const DST: &str = "virt-launcher-vm1-bbbbb";
const BOOT: Duration = Duration::from_secs(120);

/// A virt-launcher pod of VMI `vm1` on `node` (a migration target when `migration_job` is set), its
/// network-selection element as virt-controller writes it: hashed interface name, the VM's MAC, the claim.
fn launcher(name: &str, node: &str, migration_job: Option<&str>) -> Pod {
    let ifname = model::kubevirt::hashed_ifname(NET);
    let networks = json!([{"name": NET, "interface": ifname, "mac": VM_MAC, "ipam-claim-reference": CLAIM}]).to_string();
    let mut labels = json!({"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": VMI_UID, "vm.kubevirt.io/name": "vm1"});
    if let Some(job) = migration_job {
        labels[model::kubevirt::MIGRATION_JOB_LABEL] = json!(job);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"kubevirt.io/domain": "vm1", "k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": node, "containers": [{"name": "compute", "image": "example.invalid/virt-launcher:1"}]}
    }))
    .expect("pod json")
}

/// The shim run on `node` for pod netns `p` as a runtime runs it.
fn shim(world: &World, node: &Node, command: &str, p: &PodNetns, ifname: &str, args: &str, net: &Value) -> CniOutcome {
    let mut conf = net.clone();
    conf["agent_socket"] = json!(node.socket.display().to_string());
    conf["timeout_ms"] = json!(60_000);
    conf["port_up_timeout_ms"] = json!(30_000);
    p.call(world, &shim_bin(), node.index, command, ifname, &conf).args(args).run().expect("run the shim")
}

/// The claim port's chassis options in NB: (`requested-chassis`, `activation-strategy`).
type ChassisOpts = (Option<String>, Option<String>);

fn nb_options(world: &World, port: &str) -> ChassisOpts {
    let out = world.nbctl(&["--format=json", "--columns=options", "find", "Logical_Switch_Port", &format!("name=\"{port}\"")]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("ovn-nbctl json {out:?}: {e}"));
    let pairs = v["data"][0][0][1].as_array().cloned().unwrap_or_default();
    let get = |k: &str| pairs.iter().find(|p| p[0] == k).and_then(|p| p[1].as_str()).map(str::to_string);
    (get("requested-chassis"), get("activation-strategy"))
}

/// The claim port's NB options as the test saw them: one line per distinct value, in ms since `t0`, with
/// the step of the test it was seen in.
struct History {
    t0: Instant,
    lines: Vec<String>,
    last: Option<ChassisOpts>,
}

impl History {
    fn record(&mut self, step: &str, now: &ChassisOpts) {
        if self.last.as_ref() != Some(now) {
            let t = self.t0.elapsed().as_millis();
            self.lines.push(format!("  +{t} ms [{step}] requested-chassis={:?} activation-strategy={:?}", now.0, now.1));
            self.last = Some(now.clone());
        }
    }
    fn note(&mut self, what: &str) {
        self.lines.push(format!("  +{} ms {what}", self.t0.elapsed().as_millis()));
    }
}

/// Watches the claim port's NB options until `want` (recording every change in `history`); panics with
/// the history if `want` does not come within `bound`.
fn await_options(world: &World, port: &str, step: &str, want: (Option<&str>, Option<&str>), bound: Duration, history: &mut History) {
    let start = Instant::now();
    loop {
        let now = nb_options(world, port);
        history.record(step, &now);
        if (now.0.as_deref(), now.1.as_deref()) == want {
            return;
        }
        assert!(
            start.elapsed() < bound,
            "the controller did not set {want:?} on {port} within {bound:?}; NB options seen:\n{}",
            history.lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the controller's hand-off of pod `name` (with UID `uid`) and returns its attachment `ifname`.
async fn handoff(pods: &Api<Pod>, name: &str, uid: &str, ifname: &str) -> Attachment {
    let h = wait_for(&format!("the hand-off of {name}"), Duration::from_secs(30), || async {
        let v = pods.get(name).await.ok()?.metadata.annotations?.get(model::handoff::ANNOTATION)?.clone();
        model::handoff::parse(&v).ok()?.handoff().cloned().filter(|h| h.pod_uid == uid)
    })
    .await;
    h.interface(ifname).unwrap_or_else(|| panic!("{ifname} of {name} handed over: {h:?}")).clone()
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn controller_drives_vm_live_migration_rarp() {
    const TEST: &str = "controller_drives_vm_live_migration_rarp";
    if !enabled(TEST) || !vm::enabled(TEST) {
        return;
    }
    testkit::init_tracing();
    let ifname = model::kubevirt::hashed_ifname(NET);
    let img = GuestImage::ensure().expect("guest image");
    let _slot = vm::slot();
    let shim_path = shim_bin();

    let world = World::new(2);
    world.network(NET, Some(SUBNET));
    let dir = world.dir.path().to_path_buf();
    let nb = world.central.nb_remote();
    let rt = runtime();
    let ns = format!("cvm-{}", std::process::id());
    // The VM's network (DHCP, persistent IPs, the VM's MAC) and, on the same switch, a network for ordinary pods.
    let vms = json!({"cniVersion": "1.0.0", "name": NET, "type": "kubetron", "logical_switch": NET, "dhcp": true,
                     "allowPersistentIPs": true, "capabilities": {"mac": true}});
    let plain = json!({"cniVersion": "1.0.0", "name": "plain", "type": "kubetron", "logical_switch": NET});
    let mut k = KubeSide::start(&rt, &dir, &ns);
    let (controller_kc, node_kc, admin) = (k.controller_kc.clone(), k.node_kc.clone(), k.admin.clone());
    rt.block_on(async {
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        for (name, c) in [(NET, &vms), ("plain", &plain)] {
            nads.create(&PostParams::default(), &new_nad(&ns, name, &c.to_string(), &[])).await.expect("create NAD");
        }
        let claims: Api<IPAMClaim> = Api::namespaced(admin.clone(), &ns);
        claims.create(&PostParams::default(), &new_claim(&ns, CLAIM, NET, "")).await.expect("create claim");
    });

    // The controller in its default migration mode (rarp).
    let mut controller = spawn_controller(&dir, &nb, &controller_kc, "cvm-controller", &[]);
    let mut nodes: Vec<Node> = (0..2).map(|i| spawn_agent(&dir, i, &world.chassis[i], &node_kc)).collect();
    let (n1, n2) = (nodes[0].name.clone(), nodes[1].name.clone());
    assert_eq!((n1.as_str(), n2.as_str()), ("node1", "node2"), "chassis names are node names");

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let claims: Api<IPAMClaim> = Api::namespaced(admin.clone(), &ns);
    let pp = PostParams::default();
    let port = format!("claim:{ns}/{CLAIM}");
    let mut history = History { t0: Instant::now(), lines: Vec::new(), last: None };

    for n in &mut nodes {
        let status = json!({"cniVersion": "1.1.0", "name": NET, "type": "kubetron", "agent_socket": n.socket.display().to_string()});
        let agent = &mut n.agent;
        testkit::poll(&format!("STATUS of the agent on {}", n.name), Duration::from_secs(30), || {
            agent.assert_running();
            CniInvocation::new(&shim_path, "STATUS").config(&status).run().expect("shim STATUS").success().then_some(())
        });
    }

    // The pinger: an ordinary pod on node1, on the VM's switch.
    let pinger = PodNetns::new();
    let pinger_uid = rt.block_on(async {
        let uid = pods.create(&pp, &pod_on("pinger", &n1, "plain")).await.expect("create pinger").metadata.uid.expect("uid");
        handoff(&pods, "pinger", &uid, "net1").await;
        uid
    });
    let add = shim(&world, &nodes[0], "ADD", &pinger, "net1", &cni_args(&ns, "pinger", &pinger_uid, &pinger.id), &plain);
    assert_eq!(add.exit_code, 0, "ADD of the pinger: {} {}", add.json, add.stderr);

    // The source launcher on node1: the claim port, DHCP addressing, the VM's MAC, bound to node1.
    let src = PodNetns::new();
    let (src_uid, src_att) = rt.block_on(async {
        let uid = pods.create(&pp, &launcher(SRC, &n1, None)).await.expect("create source launcher").metadata.uid.expect("uid");
        (uid.clone(), handoff(&pods, SRC, &uid, &ifname).await)
    });
    controller.assert_running();
    assert_eq!(src_att.logical_port, port);
    assert_eq!(src_att.mac, VM_MAC, "the MAC the VM asked for");
    assert_eq!(src_att.addressing, Addressing::Dhcp);
    let claim_ip = match src_att.ips.first().map(|n| n.addr()) {
        Some(IpAddr::V4(v4)) => v4,
        other => panic!("the claim port's IPv4 address: {other:?} ({src_att:?})"),
    };
    await_options(&world, &port, "source launcher created", (Some(n1.as_str()), None), Duration::from_secs(30), &mut history);
    let src_args = cni_args(&ns, SRC, &src_uid, &src.id);
    let add = shim(&world, &nodes[0], "ADD", &src, &ifname, &src_args, &vms);
    assert_eq!(add.exit_code, 0, "ADD of the source launcher: {} {}", add.json, add.stderr);
    assert_eq!(add.json["interfaces"][1]["mac"], VM_MAC, "{}", add.json);
    let src_tap = vm::bridge_binding(src.ns.path(), &ifname, 1400).expect("bridge binding (source)");
    let vmdir = tempfile::tempdir().unwrap();
    let v1 = Vm::start(&img, VmConfig::new("vm1-src", src.ns.path(), vmdir.path(), vec![Nic { tap: src_tap, mac: VM_MAC.into() }]))
        .expect("source qemu");
    let lease = v1.wait_leases(1, BOOT).expect("the source VM's DHCP lease").remove(0);
    assert_eq!(lease.ip, claim_ip, "the VM leases the claim's address");
    v1.wait_console("VMPROBE ready", BOOT).expect("guest ready");
    assert!(pinger.ping_retry(&claim_ip.to_string()), "pinger -> source VM {claim_ip}");
    let ips_before = rt.block_on(async {
        wait_for("the claim's status", Duration::from_secs(30), || async {
            let c = claims.get(CLAIM).await.ok()?;
            (!c.status_ips().is_empty()).then(|| c.status_ips().to_vec())
        })
        .await
    });
    assert_eq!(ips_before, [format!("{claim_ip}/24")]);

    // The migration target launcher on node2: the controller binds the port to both chassis.
    let dst = PodNetns::new();
    let (dst_uid, dst_att) = rt.block_on(async {
        let uid = pods.create(&pp, &launcher(DST, &n2, Some("migration-job-1"))).await.expect("create target").metadata.uid.expect("uid");
        (uid.clone(), handoff(&pods, DST, &uid, &ifname).await)
    });
    assert_eq!((dst_att.logical_port.as_str(), dst_att.mac.as_str()), (port.as_str(), VM_MAC));
    assert_eq!(dst_att.ips, src_att.ips, "the target gets the claim's address");
    await_options(
        &world,
        &port,
        "target launcher created",
        (Some(&format!("{n1},{n2}")), Some("rarp")),
        Duration::from_secs(30),
        &mut history,
    );
    let (n1_uuid, n2_uuid) = (&world.chassis_uuid(&n1), &world.chassis_uuid(&n2));
    // The agent on node2 returns once ovn-installed is set, which OVN does on the additional chassis.
    let dst_args = cni_args(&ns, DST, &dst_uid, &dst.id);
    let add = shim(&world, &nodes[1], "ADD", &dst, &ifname, &dst_args, &vms);
    assert_eq!(add.exit_code, 0, "ADD of the target launcher: {} {}", add.json, add.stderr);
    let host_if = add.json["interfaces"][0]["name"].as_str().expect("host interface").to_string();
    let vsctl = |key: &str| world.chassis[1].vsctl(&["get", "Interface", &host_if, &format!("external_ids:{key}")]).unwrap();
    assert_eq!(vsctl("iface-id").trim().trim_matches('"'), port);
    assert_eq!(vsctl("iface-id-ver").trim().trim_matches('"'), VMI_UID);
    assert_eq!(vsctl("ovn-installed").trim().trim_matches('"'), "true");
    testkit::poll("SB additional_chassis = node2", Duration::from_secs(30), || {
        (&world.sb_port_binding(&port, "additional_chassis") == n2_uuid).then_some(())
    });
    assert_eq!(&world.sb_port_binding(&port, "chassis"), n1_uuid, "node1 stays the main chassis until the RARP");
    let dst_tap = vm::bridge_binding(dst.ns.path(), &ifname, 1400).expect("bridge binding (target)");
    let mut tcfg = VmConfig::new("vm1-dst", dst.ns.path(), vmdir.path(), vec![Nic { tap: dst_tap, mac: VM_MAC.into() }]);
    tcfg.incoming = true;
    let v2 = Vm::start(&img, tcfg).expect("target qemu");

    // The migration, with the pinger at 10 ms; on completion virt-handler marks the target ready and the
    // source's pod finishes.
    let ping = Pinger::start(pinger.ns.path(), IpAddr::V4(claim_ip)).expect("pinger");
    testkit::poll("pings answered by the source VM", Duration::from_secs(60), || (ping.snapshot().answered() >= 20).then_some(()));
    let mut handed_over_ms = 0;
    let report = v1
        .migrate_to(&v2, || {
            history.note("qemu: migration completed");
            history.last = None;
            history.record("migration completed", &nb_options(&world, &port));
            rt.block_on(async {
                let stamp = (vm::epoch_ms() / 1000).to_string();
                let ready = json!({"metadata": {"annotations": {model::kubevirt::TARGET_READY_ANNOTATION: stamp}}});
                pods.patch(DST, &PatchParams::default(), &Patch::Merge(&ready)).await.expect("annotate the target ready");
                let done = json!({"status": {"phase": "Succeeded"}});
                pods.patch_status(SRC, &PatchParams::default(), &Patch::Merge(&done)).await.expect("source phase Succeeded");
            });
            handed_over_ms = vm::epoch_ms();
            history.note("virt-handler: target annotated ready, source phase Succeeded");
        })
        .expect("live migration");
    eprintln!("migration {report:?}");
    assert_eq!(report.status, "completed", "{report:?}");
    let resumed = report.t_dst_resume_ms.expect("target RESUME event");
    await_options(&world, &port, "target ready, source Succeeded", (Some(n2.as_str()), None), Duration::from_secs(30), &mut history);
    testkit::poll("SB chassis = node2 and no additional chassis", Duration::from_secs(30), || {
        (&world.sb_port_binding(&port, "chassis") == n2_uuid && world.sb_port_binding(&port, "additional_chassis").is_empty()).then_some(())
    });
    testkit::poll("pings answered by the target VM", Duration::from_secs(60), || {
        (ping.snapshot().answered_after(resumed.max(handed_over_ms)) >= 20).then_some(())
    });
    assert_eq!(v2.qmp().unwrap().execute("query-status", None).unwrap()["status"], "running");

    // The source launcher goes: DEL, then the pod.
    v1.stop();
    let del = shim(&world, &nodes[0], "DEL", &src, &ifname, &src_args, &vms);
    assert_eq!(del.exit_code, 0, "DEL of the source launcher: {} {}", del.json, del.stderr);
    rt.block_on(async {
        pods.delete(SRC, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete source");
        wait_for("the source pod to go", Duration::from_secs(30), || async { pods.get_opt(SRC).await.ok()?.is_none().then_some(()) }).await;
    });
    let after_delete = vm::epoch_ms();
    testkit::poll("pings answered after the source pod went", Duration::from_secs(60), || {
        (ping.snapshot().answered_after(after_delete) >= 20).then_some(())
    });
    let log = ping.stop();
    let (_, line) = vm::migration_pings(&log, &report);
    eprintln!("{line}");
    assert_eq!(log.dups(), 0, "duplicate replies");
    vm::tcp_echo(&pinger.ns, claim_ip, 256 << 10);
    let now = nb_options(&world, &port);
    history.last = None;
    history.record("source pod deleted, TCP echo done", &now);
    eprintln!("NB options of {port} over time (ms since the agents started):\n{}", history.lines.join("\n"));
    assert_eq!((now.0.as_deref(), now.1.as_deref()), (Some(n2.as_str()), None), "the port stays on node2");
    assert_eq!(&world.sb_port_binding(&port, "chassis"), n2_uuid);
    let ips_after = rt.block_on(async { claims.get(CLAIM).await.expect("claim").status_ips().to_vec() });
    assert_eq!(ips_after, ips_before, "the claim's status.ips after the migration");
    controller.assert_running();
    for n in &mut nodes {
        n.agent.assert_running();
    }

    // Clean up: the VM, the target and the pinger, then the claim (its port goes with it).
    v2.stop();
    for (n, p, name, uid, ifn, net) in
        [(1, &dst, DST, &dst_uid, ifname.as_str(), &vms), (0, &pinger, "pinger", &pinger_uid, "net1", &plain)]
    {
        let del = shim(&world, &nodes[n], "DEL", p, ifn, &cni_args(&ns, name, uid, &p.id), net);
        assert_eq!(del.exit_code, 0, "DEL of {name}: {} {}", del.json, del.stderr);
    }
    rt.block_on(async {
        for name in [DST, "pinger"] {
            pods.delete(name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete pod");
        }
        claims.delete(CLAIM, &DeleteParams::default()).await.expect("delete claim");
        wait_for("every port to go", Duration::from_secs(30), || std::future::ready(world.lsps().is_empty().then_some(()))).await;
    });
    for n in &nodes {
        let ports = world.chassis[n.index].vsctl(&["list-ports", "br-int"]).unwrap();
        assert!(ports.lines().all(|l| l.starts_with("ovn-")), "OVS ports left on {}: {ports}", n.name);
    }
    controller.stop();
    for n in &mut nodes {
        n.agent.stop();
    }
    k.kas.stop().ok();
}
