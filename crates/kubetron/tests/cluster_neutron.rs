//! The `neutron` backend end to end, with the real binaries: a real OVN (central + two chassis
//! joined by an underlay), a real neutron-server (Debian's, ML2/OVN, noauth, private PostgreSQL)
//! writing that OVN, a real kube-apiserver, `kubetron controller --backend neutron` (never given
//! the Northbound address), one `kubetron node` per chassis and the `kubetron-cni` shim as a
//! runtime runs it. The network is made with Neutron's API; the NAD names it by `network_id`.
//!
//! Checks: each pod gets one Neutron port (`device_owner` compute:kubetron, `device_id` the pod
//! UID, readable name, `binding:host_id` its node), a static request gets its MAC and IP; the
//! hand-off names the port's UUID, signed; the shim's ADD plugs it and the two pods ping across
//! chassis; once Neutron says ACTIVE the pod gets network-status; a pod asking for an
//! `ipam-claim-reference` gets a Warning Event and no port; a network tagged `kubetron:expose` and
//! `kubetron:ns=<ns>` in Neutron appears as a NAD (`network_id`, label synced-from=neutron) that a
//! pod then uses; a deleted pod's port goes; a leaked kubetron port (its pod gone) is
//! garbage-collected while another owner's port stays.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` and `KUBETRON_NEUTRON_TESTS=1` (scripts/test.sh sets both).

mod kube_support;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_support::*;
use serde_json::{json, Value};
use support::{Pod as PodNetns, World};

#[cfg_attr(
    not(all(kube_tests, neutron_tests)),
    ignore = "needs KUBETRON_KUBE_TESTS=1, KUBETRON_NEUTRON_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets them)"
)]
#[test]
fn neutron_backend_plugs_pods_into_neutron_ports() {
    if !enabled("neutron_backend_plugs_pods_into_neutron_ports") {
        return;
    }
    daemons::neutron::require("neutron_backend_plugs_pods_into_neutron_ports");
    let world = World::with_tcp(2, true);
    let dir = world.dir.path().to_path_buf();
    // PostgreSQL runs as `postgres`: it must get through the test directory.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    let mut stack = daemons::neutron::Stack::start(&dir, &world.central, None).expect("PostgreSQL and neutron-server");
    for c in &world.chassis {
        stack.wait_agent_alive(c.name(), Duration::from_secs(90)).expect("the chassis is a live OVN agent in Neutron");
    }
    let url = stack.server.url();
    let key = dir.join("handoff.key");
    std::fs::write(&key, [0x5au8; 32]).unwrap();
    let key_arg = key.display().to_string();

    let rt = runtime();
    let ns = format!("nb-{}", std::process::id());
    let mut k = KubeSide::start(&rt, &dir, &ns);
    let (controller_kc, node_kc, admin) = (k.controller_kc.clone(), k.node_kc.clone(), k.admin.clone());
    let nc = neutron::Client::new(neutron::ClientConfig::new(&url)).unwrap();
    let net = rt.block_on(async {
        let net = nc.create_network("red", json!({})).await.expect("network red");
        nc.create_subnet(&net.id, "10.77.0.0/24", json!({"gateway_ip": "10.77.0.1"})).await.expect("subnet");
        let red = json!({"cniVersion": "1.0.0", "name": "red", "type": "kubetron", "network_id": net.id,
                         "capabilities": {"ips": true, "mac": true}});
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        nads.create(&PostParams::default(), &new_nad(&ns, "red", &red.to_string(), &[])).await.expect("create NAD");
        net
    });
    let red = json!({"cniVersion": "1.0.0", "name": "red", "type": "kubetron", "network_id": net.id});

    let nb = world.central.nb_remote();
    let mut controller = spawn_controller_with(
        &dir,
        &controller_kc,
        "nb-controller",
        &["--backend", "neutron", "--neutron-url", &url, "--neutron-auth", "noauth", "--handoff-key-file", &key_arg]
            .into_iter()
            .chain(["--neutron-gc-grace-secs", "0", "--neutron-sync-interval-secs", "1"])
            .collect::<Vec<_>>(),
    );
    let mut nodes: Vec<Node> =
        (0..2).map(|i| spawn_agent_with(&dir, i, &world.chassis[i], &node_kc, &["--handoff-key-file", &key_arg])).collect();
    let conf = |node: &Node| {
        let mut c = red.clone();
        c["agent_socket"] = json!(node.socket.display().to_string());
        c["timeout_ms"] = json!(60_000);
        c
    };

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let wait = Duration::from_secs(60);
    let pp = PostParams::default();
    let (pa, pb) = (PodNetns::new(), PodNetns::new());
    rt.block_on(async {
        let requests = [
            ("web-a", &nodes[0], &pa, "red".to_string()),
            ("web-b", &nodes[1], &pb, r#"[{"name":"red","ips":["10.77.0.50/24"],"mac":"02:00:00:77:00:50"}]"#.to_string()),
        ];
        let mut ips = Vec::new();
        for (name, n, p, networks) in &requests {
            let uid = pods.create(&pp, &pod_on(name, &n.name, networks)).await.expect("create pod").metadata.uid.expect("uid");
            controller.assert_running();
            let h = wait_for(&format!("the hand-off of {name}"), wait, || async {
                let a = pods.get(name).await.ok()?.metadata.annotations?;
                model::handoff::parse(a.get(model::handoff::ANNOTATION)?).ok()?.handoff().cloned()
            })
            .await;
            assert_eq!(h.pod_uid, uid);
            let att = h.interface("net1").expect("net1 handed over").clone();
            assert!(att.signed_by(&[0x5au8; 32], &uid), "the hand-off is signed for the pod: {att:?}");
            assert_eq!(att.logical_switch, format!("neutron-{}", net.id));
            // The port in Neutron: the hand-off's logical port, made for this pod on its node.
            let port = nc.port(&att.logical_port).await.expect("read port").expect("the handed-over port exists in Neutron");
            assert_eq!(
                (port.device_owner.as_str(), port.device_id.as_str(), port.name.as_str(), port.host_id.as_deref()),
                ("compute:kubetron", uid.as_str(), format!("kubetron/{ns}/{name}/net1").as_str(), Some(n.name.as_str())),
                "{port:?}"
            );
            assert_eq!(port.mac_address, att.mac);
            if *name == "web-b" {
                assert_eq!(
                    (att.mac.as_str(), att.ips[0].to_string().as_str()),
                    ("02:00:00:77:00:50", "10.77.0.50/24"),
                    "the static request"
                );
            }
            let add = p.call(&world, &shim_bin(), n.index, "ADD", "net1", &conf(n)).args(&cni_args(&ns, name, &uid, &p.id)).run().unwrap();
            assert_eq!(add.exit_code, 0, "ADD of {name} on {}: {} {}", n.name, add.json, add.stderr);
            assert_eq!(add.json["interfaces"][1]["mac"], att.mac.as_str(), "{}", add.json);
            assert_eq!(add.json["ips"][0]["address"], att.ips[0].to_string().as_str(), "{}", add.json);
            ips.push(att.ips[0].addr().to_string());
            // ACTIVE in Neutron, then network-status on the pod.
            let status = wait_for(&format!("network-status of {name}"), wait, || async {
                let a = pods.get(name).await.ok()?.metadata.annotations?;
                a.get("k8s.v1.cni.cncf.io/network-status").cloned()
            })
            .await;
            let status: Value = serde_json::from_str(&status).unwrap();
            assert_eq!(status[0]["interface"], "net1", "{status}");
            assert_eq!(status[0]["mac"], att.mac.as_str(), "{status}");
            assert_eq!(nc.port(&att.logical_port).await.unwrap().unwrap().status, "ACTIVE");
        }
        assert!(pa.ping_retry(&ips[1]) && pb.ping_retry(&ips[0]), "web-a and web-b ping across chassis through Neutron's network");

        // Persistent IPs are not the neutron backend's: a Warning Event, no port.
        let claimer = pods
            .create(&pp, &pod_on("claimer", &nodes[0].name, r#"[{"name":"red","ipam-claim-reference":"c1"}]"#))
            .await
            .expect("create claimer");
        let claimer_uid = claimer.metadata.uid.unwrap();
        let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
        let ev = wait_for("the NotSupported event", wait, || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.involved_object.name.as_deref() == Some("claimer") && e.reason.as_deref() == Some("NotSupported"))
        })
        .await;
        assert!(ev.message.as_deref().unwrap_or("").contains("ipam-claim-reference"), "{ev:?}");
        assert!(nc.ports_of_device(&claimer_uid).await.unwrap().is_empty(), "no port for a refused pod");

        // NAD sync: a network tagged in Neutron becomes a NAD of the namespace, and pods use it.
        let blue = nc.create_network("blue", json!({})).await.expect("network blue");
        nc.create_subnet(&blue.id, "10.78.0.0/24", json!({})).await.expect("subnet blue");
        nc.set_network_tags(&blue.id, &["kubetron:expose", &format!("kubetron:ns={ns}")]).await.expect("tag blue");
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        let synced = wait_for("NAD blue synced from Neutron", wait, || async { nads.get("blue").await.ok() }).await;
        assert_eq!(synced.metadata.labels.as_ref().and_then(|l| l.get("kubetron.io/synced-from")).map(String::as_str), Some("neutron"));
        let config: Value = serde_json::from_str(&synced.spec.config).unwrap();
        assert_eq!((config["network_id"].as_str(), config["subnet"].as_str()), (Some(blue.id.as_str()), Some("10.78.0.0/24")), "{config}");
        let c_uid = pods.create(&pp, &pod_on("web-c", &nodes[0].name, "blue")).await.expect("create web-c").metadata.uid.unwrap();
        let h = wait_for("the hand-off of web-c", wait, || async {
            let a = pods.get("web-c").await.ok()?.metadata.annotations?;
            model::handoff::parse(a.get(model::handoff::ANNOTATION)?).ok()?.handoff().cloned()
        })
        .await;
        let port = nc.port(&h.interfaces[0].logical_port).await.unwrap().expect("web-c's port");
        assert_eq!((port.network_id.as_str(), port.device_id.as_str()), (blue.id.as_str(), c_uid.as_str()));
        assert!(h.interfaces[0].ips[0].to_string().starts_with("10.78.0."), "{h:?}");
        // Untagged again: the NAD goes.
        nc.set_network_tags(&blue.id, &[]).await.expect("untag blue");
        wait_for("NAD blue removed", wait, || async { nads.get("blue").await.is_err().then_some(()) }).await;

        // A deleted pod's port goes.
        let a_uid = pods.get("web-a").await.unwrap().metadata.uid.unwrap();
        let del =
            pa.call(&world, &shim_bin(), 0, "DEL", "net1", &conf(&nodes[0])).args(&cni_args(&ns, "web-a", &a_uid, &pa.id)).run().unwrap();
        assert_eq!(del.exit_code, 0, "DEL of web-a: {} {}", del.json, del.stderr);
        pods.delete("web-a", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete web-a");
        wait_for("web-a's port deleted", wait, || async { nc.ports_of_device(&a_uid).await.ok()?.is_empty().then_some(()) }).await;

        // Garbage collection: a kubetron port whose pod never existed goes; another owner's stays.
        let leaked = nc
            .create_port(&neutron::NewPort::for_pod(&net.id, "no-such-pod-uid", &format!("kubetron/{ns}/gone/net1"), None))
            .await
            .expect("a leaked port");
        let foreign = nc
            .create_port(&neutron::NewPort {
                device_owner: "compute:nova".into(),
                ..neutron::NewPort::for_pod(&net.id, "vm-1", "vm-1", None)
            })
            .await
            .expect("another owner's port");
        wait_for("the leaked port collected", wait, || async { nc.port(&leaked.id).await.ok()?.is_none().then_some(()) }).await;
        assert!(nc.port(&foreign.id).await.unwrap().is_some(), "another owner's port is never touched");
        assert!(
            nc.ports_of_device(&pods.get("web-b").await.unwrap().metadata.uid.unwrap()).await.unwrap().len() == 1,
            "a live pod's port stays"
        );
        controller.assert_running();
        for n in &mut nodes {
            n.agent.assert_running();
        }
    });
    assert!(!controller.log_text().contains(&nb), "the controller was never given the Northbound address");
    controller.stop();
    for n in &mut nodes {
        n.agent.stop();
    }
    k.kas.stop().ok();
    stack.stop().expect("stop neutron-server and PostgreSQL");
}
