//! Persistent IPs (IPAMClaim) end to end in cluster mode, with the real binaries: a real kube-apiserver,
//! a real OVN (central + one chassis), `kubetron controller`, `kubetron node`, and the `kubetron-cni` shim
//! run in the chassis' netns as a runtime runs it. A KubeVirt-shaped launcher pod naming an IPAMClaim is
//! plugged into the claim's port `claim:{ns}/{claim}` with the OVS Interface's `iface-id-ver` = the VMI UID
//! (ovn-controller binds and installs it); the launcher is deleted and a new one (new pod, new VMI UID, as
//! when a VM restarts) gets the same IP and MAC and is installed again; the claim's `status.ips` is written.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (scripts/test.sh sets it). Needs the `kubetron-cni` binary built next to
//! `kubetron` (`cargo build --workspace` does).

mod kube_support;
mod support;

use std::time::Duration;

use k8s::ipamclaim::{new_claim, IPAMClaim};
use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube_support::*;
use serde_json::json;
use support::{Pod as PodNetns, World};
use testkit::cni::CniInvocation;

const SUBNET: &str = "10.67.0.0/24";
const IFNAME: &str = "podb1f51a511f1";

fn launcher(name: &str, node: &str, vmi_uid: &str) -> Pod {
    let networks = format!(r#"[{{"name":"vms","interface":"{IFNAME}","ipam-claim-reference":"vm1.vms"}}]"#);
    serde_json::from_value(json!({
        "metadata": {"name": name,
                     "labels": {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": vmi_uid, "vm.kubevirt.io/name": "vm1"},
                     "annotations": {"kubevirt.io/domain": "vm1", "k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": node, "containers": [{"name": "compute", "image": "example.invalid/virt-launcher:1"}]}
    }))
    .expect("pod json")
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn launcher_keeps_claim_ip_and_mac_across_recreation() {
    if !enabled("launcher_keeps_claim_ip_and_mac_across_recreation") {
        return;
    }
    let shim_path = shim_bin();
    let world = World::new(1);
    world.network("vms", Some(SUBNET));
    let dir = world.dir.path().to_path_buf();
    let nb = world.central.nb_remote();
    let rt = runtime();
    let ns = format!("cc-{}", std::process::id());
    let vms = json!({"cniVersion": "1.0.0", "name": "vms", "type": "kubetron", "logical_switch": "vms", "allowPersistentIPs": true});
    let mut k = KubeSide::start(&rt, &dir, &ns);
    let (controller_kc, node_kc, admin) = (k.controller_kc.clone(), k.node_kc.clone(), k.admin.clone());
    rt.block_on(async {
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        nads.create(&PostParams::default(), &new_nad(&ns, "vms", &vms.to_string(), &[])).await.expect("create NAD");
        let claims: Api<IPAMClaim> = Api::namespaced(admin.clone(), &ns);
        claims.create(&PostParams::default(), &new_claim(&ns, "vm1.vms", "vms", "")).await.expect("create claim");
    });

    let mut controller = spawn_controller(&dir, &nb, &controller_kc, "cc-controller", &[]);
    let Node { name: node, socket, mut agent, .. } = spawn_agent(&dir, 0, &world.chassis[0], &node_kc);
    let mut conf = vms.clone();
    conf["agent_socket"] = json!(socket.display().to_string());
    conf["timeout_ms"] = json!(30_000);
    conf["port_up_timeout_ms"] = json!(15_000);

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let claims: Api<IPAMClaim> = Api::namespaced(admin.clone(), &ns);
    let wait = Duration::from_secs(30);
    let pp = PostParams::default();
    let port = format!("claim:{ns}/vm1.vms");
    rt.block_on(async {
        let status = json!({"cniVersion": "1.1.0", "name": "vms", "type": "kubetron", "agent_socket": socket.display().to_string()});
        wait_for("STATUS of the agent", wait, || {
            agent.assert_running();
            let o = CniInvocation::new(&shim_path, "STATUS").config(&status).run().expect("shim STATUS");
            std::future::ready(o.success().then_some(()))
        })
        .await;

        let mut first: Option<(String, String)> = None;
        for (round, (name, vmi_uid)) in
            [("virt-launcher-vm1-aaaaa", "vmi-uid-1"), ("virt-launcher-vm1-bbbbb", "vmi-uid-2")].into_iter().enumerate()
        {
            let uid = pods.create(&pp, &launcher(name, &node, vmi_uid)).await.expect("create launcher").metadata.uid.expect("uid");
            controller.assert_running();
            let h = wait_for(&format!("the hand-off of {name}"), wait, || async {
                let v = pods.get(name).await.ok()?.metadata.annotations?.get(model::handoff::ANNOTATION)?.clone();
                model::handoff::parse(&v).ok()?.handoff().cloned().filter(|h| h.pod_uid == uid)
            })
            .await;
            let att = h.interface(IFNAME).expect("handed over").clone();
            assert_eq!(att.logical_port, port);
            assert_eq!(att.iface_id_ver.as_deref(), Some(vmi_uid));
            let p = PodNetns::new();
            let add =
                p.call(&world, &shim_path, 0, "ADD", IFNAME, &conf).args(&cni_args(&ns, name, &uid, &p.id)).run().expect("run the shim");
            assert_eq!(add.exit_code, 0, "ADD of {name}: {} {}", add.json, add.stderr);
            let r = &add.json;
            assert_eq!(r["interfaces"][1]["mac"], att.mac.as_str(), "{r}");
            assert_eq!(r["ips"][0]["address"], att.ips[0].to_string().as_str(), "{r}");
            let host_if = r["interfaces"][0]["name"].as_str().expect("host interface").to_string();
            let vsctl = |key: &str| world.chassis[0].vsctl(&["get", "Interface", &host_if, &format!("external_ids:{key}")]).unwrap();
            assert_eq!(vsctl("iface-id").trim().trim_matches('"'), port);
            assert_eq!(vsctl("iface-id-ver").trim().trim_matches('"'), vmi_uid, "bound with the VMI UID");
            assert_eq!(vsctl("ovn-installed").trim().trim_matches('"'), "true");
            let got = (att.mac.clone(), att.ips[0].to_string());
            match &first {
                None => {
                    assert_eq!(got.1, "10.67.0.10/24", "the first free address");
                    first = Some(got);
                }
                Some(f) => assert_eq!(&got, f, "round {round}: the same MAC and IP as the first launcher"),
            }
            let st = wait_for("the claim's status", wait, || async {
                let c = claims.get("vm1.vms").await.ok()?;
                (c.owner_pod() == Some(name)).then_some(c)
            })
            .await;
            assert_eq!(st.status_ips(), ["10.67.0.10/24"]);
            // The VM stops: DEL, then the launcher pod goes. The claim's port stays.
            let del =
                p.call(&world, &shim_path, 0, "DEL", IFNAME, &conf).args(&cni_args(&ns, name, &uid, &p.id)).run().expect("run the shim");
            assert_eq!(del.exit_code, 0, "DEL of {name}: {} {}", del.json, del.stderr);
            pods.delete(name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete launcher");
            wait_for("the launcher to go", wait, || async { pods.get_opt(name).await.ok()?.is_none().then_some(()) }).await;
            assert!(world.lsps().contains(&port), "the claim port outlives the launcher: {:?}", world.lsps());
        }
        // The claim is deleted (with the VM): its port goes.
        claims.delete("vm1.vms", &DeleteParams::default()).await.expect("delete claim");
        wait_for("the claim port to go", wait, || std::future::ready((!world.lsps().contains(&port)).then_some(()))).await;
        agent.assert_running();
        controller.assert_running();
    });
    controller.stop();
    agent.stop();
    k.kas.stop().ok();
}
