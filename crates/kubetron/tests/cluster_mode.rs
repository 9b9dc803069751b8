//! Cluster mode end to end, with the real binaries: a real kube-apiserver, a real OVN (central +
//! two chassis joined by an underlay), `kubetron controller` (the only process with the
//! Northbound address), one `kubetron node` per chassis serving CNI on its socket, and the
//! `kubetron-cni` shim run inside each chassis' netns as a runtime runs a plugin. The network
//! config the runtime passes has no `nb`: no node-side process connects to the Northbound database.
//!
//! Checks: ADD returns exactly the controller's hand-off (MAC, IP); the OVS Interface carries
//! `iface-id`, `iface-id-ver` = pod UID and `ovn-installed`; the two pods ping across chassis;
//! an ADD that arrives before the pod exists completes once the controller hands over; an ADD for
//! a pod deleted while it waits fails (11) naming the deletion; STATUS is ready; DEL twice and
//! DEL of an unknown container succeed and leave nothing on the bridge or in the pod; a burst of
//! concurrent ADDs then DELs all succeed.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (scripts/test.sh sets it). Needs the `kubetron-cni` binary
//! built next to `kubetron` (`cargo build --workspace` does).

mod kube_support;
mod support;

use std::time::Duration;

use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_support::*;
use serde_json::{json, Value};
use support::{Pod as PodNetns, World};
use testkit::cni::{CniInvocation, CniOutcome};

const SUBNET: &str = "10.66.0.0/24";

/// A call of the shim on `node` for `pod` as a runtime makes it.
fn shim_call(world: &World, node: &Node, command: &str, p: &PodNetns, args: &str, conf: &Value) -> CniInvocation {
    p.call(world, &shim_bin(), node.index, command, "net1", conf).args(args)
}

/// [`shim_call`], run.
fn shim(world: &World, node: &Node, command: &str, p: &PodNetns, args: &str, conf: &Value) -> CniOutcome {
    shim_call(world, node, command, p, args, conf).run().expect("run the shim")
}

/// Starts `call` on a blocking thread: the test goes on (creating or deleting the pod) while it runs.
fn in_background(call: CniInvocation) -> tokio::task::JoinHandle<CniOutcome> {
    tokio::task::spawn_blocking(move || call.run().expect("run the shim"))
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn cluster_mode_plugs_from_the_handoff_without_any_node_nb_access() {
    if !enabled("cluster_mode_plugs_from_the_handoff_without_any_node_nb_access") {
        return;
    }
    let shim_path = shim_bin();
    let world = World::new(2);
    world.network("red", Some(SUBNET));
    let dir = world.dir.path().to_path_buf();
    let nb = world.central.nb_remote();
    let rt = runtime();
    let ns = format!("cm-{}", std::process::id());
    let red = json!({"cniVersion": "1.0.0", "name": "red", "type": "kubetron", "logical_switch": "red"});
    let blue = json!({"cniVersion": "1.0.0", "name": "blue", "type": "kubetron", "logical_switch": "no-such-switch"});
    let mut k = KubeSide::start(&rt, &dir, &ns);
    let (controller_kc, node_kc, admin) = (k.controller_kc.clone(), k.node_kc.clone(), k.admin.clone());
    rt.block_on(async {
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        for (name, c) in [("red", &red), ("blue", &blue)] {
            nads.create(&PostParams::default(), &new_nad(&ns, name, &c.to_string(), &[])).await.expect("create NAD");
        }
    });

    // The controller: the only process given the Northbound address.
    let mut controller = spawn_controller(&dir, &nb, &controller_kc, "cm-controller", &[]);
    let mut nodes: Vec<Node> = (0..2).map(|i| spawn_agent(&dir, i, &world.chassis[i], &node_kc)).collect();
    let conf = |net: &Value, node: &Node, timeout_ms: u64| {
        let mut c = net.clone();
        c["agent_socket"] = json!(node.socket.display().to_string());
        c["timeout_ms"] = json!(timeout_ms);
        c["port_up_timeout_ms"] = json!(timeout_ms / 2);
        c
    };
    assert!(conf(&red, &nodes[0], 30_000).get("nb").is_none(), "the node-side config has no NB address");

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let wait = Duration::from_secs(30);
    let pp = PostParams::default();
    rt.block_on(async {
        // STATUS through the shim: ready once each agent loaded its caches.
        for n in &mut nodes {
            let status = json!({"cniVersion": "1.1.0", "name": "red", "type": "kubetron", "agent_socket": n.socket.display().to_string()});
            let agent = &mut n.agent;
            wait_for(&format!("STATUS of the agent on {}", n.name), wait, || {
                agent.assert_running();
                let o = CniInvocation::new(&shim_path, "STATUS").config(&status).run().expect("shim STATUS");
                std::future::ready(o.success().then_some(()))
            })
            .await;
        }

        // Two pods on the two nodes.
        let (pa, pb) = (PodNetns::new(), PodNetns::new());
        let mut ips = Vec::new();
        for (name, n, p) in [("web-a", &nodes[0], &pa), ("web-b", &nodes[1], &pb)] {
            let uid = pods.create(&pp, &pod_on(name, &n.name, "red")).await.expect("create pod").metadata.uid.expect("uid");
            controller.assert_running();
            let value = wait_for(&format!("the hand-off of {name}"), wait, || async {
                let a = pods.get(name).await.ok()?.metadata.annotations?;
                let v = a.get(model::handoff::ANNOTATION)?.clone();
                model::handoff::parse(&v).ok()?.handoff().is_some().then_some(v)
            })
            .await;
            let h = model::handoff::parse(&value).unwrap().handoff().unwrap().clone();
            assert_eq!(h.pod_uid, uid);
            let att = h.interface("net1").expect("net1 handed over").clone();
            let add = shim(&world, n, "ADD", p, &cni_args(&ns, name, &uid, &p.id), &conf(&red, n, 30_000));
            assert_eq!(add.exit_code, 0, "ADD of {name} on {}: {} {}", n.name, add.json, add.stderr);
            let r = &add.json;
            assert_eq!(r["interfaces"][1]["mac"], att.mac.as_str(), "{r}");
            assert_eq!(r["ips"][0]["address"], att.ips[0].to_string().as_str(), "{r}");
            assert_eq!(r["interfaces"][1]["sandbox"], p.netns_path().display().to_string().as_str(), "{r}");
            // The OVS Interface: bound to the pod's port and generation, installed by ovn-controller.
            let host_if = r["interfaces"][0]["name"].as_str().expect("host interface").to_string();
            let vsctl = |key: &str| world.chassis[n.index].vsctl(&["get", "Interface", &host_if, &format!("external_ids:{key}")]).unwrap();
            assert_eq!(vsctl("iface-id").trim().trim_matches('"'), att.logical_port);
            assert_eq!(vsctl("iface-id-ver").trim().trim_matches('"'), uid);
            assert_eq!(vsctl("ovn-installed").trim().trim_matches('"'), "true");
            // Addresses in the pod.
            let addr = String::from_utf8_lossy(&p.exec(&["ip", "-o", "-4", "addr", "show", "net1"]).stdout).into_owned();
            assert!(addr.contains(&att.ips[0].to_string()), "{addr}");
            ips.push(att.ips[0].addr().to_string());
        }
        assert!(pa.ping_retry(&ips[1]) && pb.ping_retry(&ips[0]), "web-a and web-b ping across chassis");

        // An ADD that arrives before the pod exists waits for it and its hand-off.
        let pc = PodNetns::new();
        let early_args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME=web-c");
        let early = in_background(shim_call(&world, &nodes[0], "ADD", &pc, &early_args, &conf(&red, &nodes[0], 60_000)));
        pods.create(&pp, &pod_on("web-c", &nodes[0].name, "red")).await.expect("create web-c");
        let early = early.await.expect("ADD task");
        assert_eq!(early.exit_code, 0, "early ADD: {} {}", early.json, early.stderr);
        assert!(pc.ping_retry(&ips[1]), "web-c reaches web-b");

        // A pod whose hand-off never comes (its network's switch does not exist): its ADD waits,
        // and fails at once when the pod is deleted.
        let pd = PodNetns::new();
        let stuck_uid = pods.create(&pp, &pod_on("stuck", &nodes[0].name, "blue")).await.expect("create stuck").metadata.uid.unwrap();
        let stuck_args = cni_args(&ns, "stuck", &stuck_uid, &pd.id);
        // A short ADD proves the agent has the pod (it waits for the hand-off, not for the pod).
        let short = wait_for("the agent to have pod stuck", wait, || {
            let o = shim(&world, &nodes[0], "ADD", &pd, &stuck_args, &conf(&blue, &nodes[0], 1_000));
            std::future::ready(o.error().filter(|e| e.msg.contains("hand over")).map(|e| (o.exit_code, e)))
        })
        .await;
        assert_eq!((short.0, short.1.code), (1, 11u64), "{:?}", short.1);
        assert!(short.1.msg.contains("is kubetron-controller running"), "{:?}", short.1);
        let deleted = in_background(shim_call(&world, &nodes[0], "ADD", &pd, &stuck_args, &conf(&blue, &nodes[0], 60_000)));
        pods.delete("stuck", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete stuck");
        let deleted = deleted.await.expect("ADD task");
        let e = deleted.error().unwrap_or_else(|| panic!("ADD of a deleted pod: {deleted:?}"));
        assert_eq!(e.code, 11u64, "{e:?}");
        assert!(e.msg.contains("was deleted while its ADD waited"), "{e:?}");
        let stuck_if = netdev::host_ifname(&pd.id, "net1");
        assert!(world.chassis[0].vsctl(&["list-ports", "br-int"]).unwrap().lines().all(|l| l != stuck_if), "nothing plugged");

        // Chained mode (no Multus): the runtime calls kubetron after the default plugin with eth0's
        // result and the pod's annotations; every kubetron network of the pod is added in one call.
        let pe = PodNetns::new();
        let uid_e = pods.create(&pp, &pod_on("web-e", &nodes[0].name, "red")).await.expect("create web-e").metadata.uid.unwrap();
        let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": pe.netns_path().display().to_string()}],
                          "ips": [{"address": "10.244.0.5/24", "interface": 0}]});
        let chained = json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "kubetron", "mode": "chained",
            "agent_socket": nodes[0].socket.display().to_string(), "timeout_ms": 30000, "port_up_timeout_ms": 15000,
            "prevResult": prev,
            "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"k8s.v1.cni.cncf.io/networks": "red", "other": "x"}}});
        let chained_call = |command: &str| {
            CniInvocation::new(&shim_path, command)
                .in_named_netns(world.chassis[0].netns())
                .container_id(&pe.id)
                .netns(pe.netns_path())
                .ifname("eth0")
                .args(&cni_args(&ns, "web-e", &uid_e, &pe.id))
                .config(&chained)
        };
        let add = in_background(chained_call("ADD")).await.expect("chained ADD task");
        assert_eq!(add.exit_code, 0, "chained ADD: {} {}", add.json, add.stderr);
        let r = &add.json;
        let names: Vec<&str> = r["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap_or("")).collect();
        assert_eq!((names.len(), names[0], names[2]), (3, "eth0", "net1"), "prevResult then the host end and net1: {r}");
        assert_eq!(r["ips"][0]["address"], "10.244.0.5/24", "{r}");
        assert_eq!(r["ips"][1]["interface"], 2, "net1's IP points at net1's new index: {r}");
        let ip_e = r["ips"][1]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
        assert!(pe.ping_retry(&ips[1]), "web-e (chained) reaches web-b on the other node");
        assert!(pb.ping_retry(&ip_e));
        let del = chained_call("DEL").run().expect("chained DEL");
        assert_eq!(del.exit_code, 0, "chained DEL: {} {}", del.json, del.stderr);
        let links = String::from_utf8_lossy(&pe.exec(&["ip", "-o", "link"]).stdout).into_owned();
        assert!(!links.contains("net1"), "net1 left in web-e: {links}");

        // A burst: 40 pods handed over, then 40 ADDs at once, then 40 DELs at once; none fails.
        const BURST: usize = 40;
        let names: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
        for n in &names {
            pods.create(&pp, &pod_on(n, &nodes[1].name, "red")).await.expect("create burst pod");
        }
        let uids: Vec<String> = wait_for("every burst pod handed over", Duration::from_secs(120), || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            names
                .iter()
                .map(|n| {
                    let p = list.items.iter().find(|p| p.metadata.name.as_deref() == Some(n.as_str()))?;
                    let v = p.metadata.annotations.as_ref()?.get(model::handoff::ANNOTATION)?;
                    model::handoff::parse(v).ok()?.handoff()?;
                    p.metadata.uid.clone()
                })
                .collect::<Option<Vec<String>>>()
        })
        .await;
        let burst_pods: Vec<PodNetns> = (0..BURST).map(|_| PodNetns::new()).collect();
        // Without port_up_timeout_ms (as deployed): the agent waits for ovn-installed within the deadline.
        let mut burst_conf = conf(&red, &nodes[1], 110_000);
        burst_conf.as_object_mut().unwrap().remove("port_up_timeout_ms");
        for command in ["ADD", "DEL"] {
            let calls: Vec<_> = (0..BURST)
                .map(|i| {
                    in_background(shim_call(
                        &world,
                        &nodes[1],
                        command,
                        &burst_pods[i],
                        &cni_args(&ns, &names[i], &uids[i], &burst_pods[i].id),
                        &burst_conf,
                    ))
                })
                .collect();
            for (i, c) in calls.into_iter().enumerate() {
                let o = c.await.expect("burst task");
                assert_eq!(o.exit_code, 0, "burst {command} {i}: {} {}", o.json, o.stderr);
            }
        }
        for n in &names {
            pods.delete(n, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete burst pod");
        }

        // DEL: twice, and for a container the agent never knew.
        for (n, p, name) in [(&nodes[0], &pa, "web-a"), (&nodes[0], &pc, "web-c"), (&nodes[1], &pb, "web-b")] {
            for round in 0..2 {
                let del = shim(&world, n, "DEL", p, &cni_args(&ns, name, "", &p.id), &conf(&red, n, 30_000));
                assert_eq!(del.exit_code, 0, "DEL {round} of {name}: {} {}", del.json, del.stderr);
            }
            let links = String::from_utf8_lossy(&p.exec(&["ip", "-o", "link"]).stdout).into_owned();
            assert!(!links.contains("net1"), "net1 left in {name}: {links}");
        }
        let ghost = PodNetns::new();
        let del = shim(&world, &nodes[1], "DEL", &ghost, &cni_args(&ns, "ghost", "", &ghost.id), &conf(&red, &nodes[1], 30_000));
        assert_eq!(del.exit_code, 0, "DEL of an unknown container: {} {}", del.json, del.stderr);
        for n in &nodes {
            let ports = world.chassis[n.index].vsctl(&["list-ports", "br-int"]).unwrap();
            assert!(ports.lines().all(|l| l.starts_with("ovn-")), "OVS ports left on {}: {ports}", n.name);
        }
        for n in &mut nodes {
            n.agent.assert_running();
        }
    });
    // The agents never opened a Northbound connection: they were never told where it is.
    for n in &nodes {
        assert!(!n.agent.log_text().contains(&nb), "agent {} mentions the NB address", n.name);
    }
    controller.stop();
    for n in &mut nodes {
        n.agent.stop();
    }
    k.kas.stop().ok();
}
