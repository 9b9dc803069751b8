//! Persistent IPs through IPAMClaims against a REAL kube-apiserver v1.20 (one per test binary, see
//! `kube_e2e_support`) and a real OVN central (NB + SB + northd) (plan: docs/kubevirt-plan.md, E1, E2):
//! - deploy/crd-ipamclaims.yaml (no CEL) installs on v1.20; claims are created, their status written
//!   through ipamclaims/status by the deployed controller identity (and only through it), read back;
//! - the controller runner, as the deployed controller identity, gives a KubeVirt-shaped launcher pod
//!   the claim's port: hand-off naming `claim:{ns}/{claim}` with the VMI UID, `status.ips` + `ownerPod`
//!   written; a missing claim is a Warning `IPAMClaimNotFound` and no hand-off until it exists; a
//!   re-created launcher gets the same IP and MAC; a second VM naming the claim is refused
//!   (`IPAMClaimInUse`); deleting the claim removes the port.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (else prints "skipped"). Needs ovsdb-server, ovn-northd, ovn-nbctl.
//! Run: `KUBETRON_KUBE_TESTS=1 cargo test -p k8s --test kube_e2e_ipamclaim`
//!
//! One #[test] runs the controller: it watches pods cluster-wide.

mod kube_e2e_support;

use std::time::Duration;

use daemons::Central;
use k8s::controller::backend::run_ovn as run;
use k8s::controller::events::KubePodWriter;
use k8s::controller::runner::RunnerConfig;
use k8s::controller::Nb;
use k8s::ipamclaim::{self, new_claim, IPAMClaim};
use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_e2e_support::*;
use model::handoff;
use model::status::INTERFACES_ANNOTATION;
use serde_json::json;
use tokio::sync::watch;

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn ipamclaim_crd_applies_on_v1_20() {
    let Some(h) = harness("ipamclaim_crd_applies_on_v1_20") else { return };
    runtime().block_on(async {
        let admin = h.deployed_admin().await;
        let crd = install_ipamclaim_crd(&admin).await;
        assert_eq!(crd.metadata.name.as_deref(), Some(ipamclaim::CRD_NAME));
        let status = crd.status.expect("status");
        assert_eq!(status.accepted_names.as_ref().map(|n| n.kind.as_str()), Some("IPAMClaim"));
        let ns = unique("e2e-claim-crd");
        create_namespace(&admin, &ns, &[]).await;
        let claims: Api<IPAMClaim> = Api::namespaced(admin.clone(), &ns);
        let mut c = new_claim(&ns, "vm1.red", "red", "");
        c.spec.ip_requests = vec!["10.1.0.7/24".into()];
        let made = claims.create(&PostParams::default(), &c).await.expect("create claim");
        assert!(made.metadata.uid.is_some());
        assert!(made.status.is_none(), "status is a subresource: not set on create");
        // The schema (no CEL) still bounds ipRequests.
        let e = claims
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": "IPAMClaim",
                "metadata": {"name": "bad"}, "spec": {"ipRequests": ["a", "b", "c"], "network": "x", "interface": ""}}))
                .unwrap(),
            )
            .await;
        expect_code(e, 422, "three ipRequests (maxItems 2)");

        // The controller identity writes status through ipamclaims/status, and may not write the claim.
        let ctl: Api<IPAMClaim> = Api::namespaced(h.user(CONTROLLER_USER, SA_GROUPS).await, &ns);
        let body = ipamclaim::status_patch(&["10.1.0.7/24".to_string()], "virt-launcher-vm1-x");
        let patched = wait_for("the controller identity to patch ipamclaims/status", Duration::from_secs(20), || async {
            ctl.patch_status("vm1.red", &PatchParams::default(), &Patch::Merge(&body)).await.ok()
        })
        .await;
        assert_eq!(patched.status_ips(), ["10.1.0.7/24"]);
        assert_eq!(patched.owner_pod(), Some("virt-launcher-vm1-x"));
        let got = ctl.get("vm1.red").await.expect("get as the controller");
        assert_eq!(got.status_ips(), ["10.1.0.7/24"]);
        assert_eq!(got.spec.network, "red");
        let e = ctl.patch("vm1.red", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"network": "blue"}}))).await;
        expect_code(e, 403, "the controller may not change a claim");
        // The status subresource ignores spec changes.
        let p = ctl
            .patch_status("vm1.red", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"network": "blue"}, "status": {"ips": []}})))
            .await
            .expect("status patch");
        assert_eq!(p.spec.network, "red");
        assert!(p.status_ips().is_empty());
    });
}

fn launcher(name: &str, vmi: &str, vmi_uid: &str, networks: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name,
                     "labels": {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": vmi_uid, "vm.kubevirt.io/name": vmi},
                     "annotations": {"kubevirt.io/domain": vmi, "k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "compute", "image": "example.invalid/virt-launcher:1"}]}
    }))
    .expect("pod json")
}

async fn handoff_of(pods: &Api<Pod>, name: &str, uid: &str) -> Option<handoff::Handoff> {
    let p = pods.get(name).await.ok()?;
    let v = p.metadata.annotations?.get(INTERFACES_ANNOTATION).cloned()?;
    let h = handoff::parse(&v).ok()?.handoff().cloned()?;
    (h.pod_uid == uid).then_some(h)
}

async fn warning(ev: &Api<Event>, pod: &str, reason: &str) -> Option<String> {
    let lp = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let list = ev.list(&lp).await.ok()?.items;
    list.into_iter().find(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning")).and_then(|e| e.message)
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn launcher_pod_gets_claim_ip_and_status() {
    let Some(h) = harness("launcher_pod_gets_claim_ip_and_status") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let central = Central::start(&dir.path().join("central"), false).expect("start OVN central");
    let nbctl = |args: &[&str]| central.nbctl(args).unwrap_or_else(|e| panic!("ovn-nbctl {args:?}: {e}")).trim().to_string();
    nbctl(&["ls-add", "e2e-vms"]);
    nbctl(&["set", "Logical_Switch", "e2e-vms", "other_config:subnet=10.88.0.0/24", "other_config:exclude_ips=10.88.0.1..10.88.0.9"]);
    let port_row = |name: &str| {
        let out = nbctl(&["find", "Logical_Switch_Port", &format!("name=\"{name}\"")]);
        (!out.is_empty()).then_some(out)
    };

    let rt = runtime();
    let ns = unique("e2e-vm");
    let (admin, ctl_client) = rt.block_on(async {
        let admin = h.deployed_admin().await;
        create_namespace(&admin, &ns, &[]).await;
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        let config = r#"{"cniVersion":"1.0.0","name":"vms","type":"kubetron","logical_switch":"e2e-vms","allowPersistentIPs":true,"capabilities":{"mac":true}}"#;
        nads.create(&PostParams::default(), &new_nad(&ns, "vms", config, &[])).await.expect("create NAD");
        let ctl = h.user(CONTROLLER_USER, SA_GROUPS).await;
        let claims: Api<IPAMClaim> = Api::all(ctl.clone());
        wait_for("the controller identity to list IPAMClaims", Duration::from_secs(20), || async {
            claims.list(&ListParams::default().limit(1)).await.ok()
        })
        .await;
        (admin, ctl)
    });
    // The controller runner, as the deployed identity, always the leader, on its own runtime.
    let ctl_rt = runtime();
    let (_leader_tx, leader) = watch::channel(true);
    ctl_rt.block_on(async {
        let ovsdb = ovsdb::Client::connect_to(&central.nb_remote()).await.expect("connect NB");
        let nb = Nb::start(ovsdb).await.expect("NB replica");
        let cfg = RunnerConfig {
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            gc_interval: Duration::from_secs(2),
            ..Default::default()
        };
        tokio::spawn(run(ctl_client.clone(), nb, KubePodWriter::new(ctl_client, "e2e-ctl"), leader, cfg));
    });

    let port = format!("claim:{ns}/vm1.vms");
    let wait = Duration::from_secs(30);
    rt.block_on(async {
        let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
        let claims: Api<IPAMClaim> = Api::namespaced(admin.clone(), &ns);
        let ev: Api<Event> = Api::namespaced(admin.clone(), &ns);
        let pp = PostParams::default();
        let gone = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
        let net = r#"[{"name":"vms","interface":"podb1f51a511f1","ipam-claim-reference":"vm1.vms"}]"#;

        // 1. The claim does not exist yet: a Warning, no hand-off.
        let p1 = pods.create(&pp, &launcher("virt-launcher-vm1-aaaaa", "vm1", "vmi-uid-1", net)).await.expect("create launcher");
        let uid1 = p1.metadata.uid.clone().unwrap();
        let msg = wait_for("the IPAMClaimNotFound warning", wait, || warning(&ev, "virt-launcher-vm1-aaaaa", "IPAMClaimNotFound")).await;
        assert!(msg.contains("vm1.vms"), "{msg}");
        assert!(handoff_of(&pods, "virt-launcher-vm1-aaaaa", &uid1).await.is_none(), "no hand-off without the claim");
        assert!(port_row(&port).is_none());

        // 2. The claim appears (as ipam-extensions makes it): the port, the hand-off, the claim's status.
        let c = claims.create(&pp, &new_claim(&ns, "vm1.vms", "vms", "")).await.expect("create claim");
        let claim_uid = c.metadata.uid.clone().unwrap();
        let h1 = wait_for("the hand-off", wait, || handoff_of(&pods, "virt-launcher-vm1-aaaaa", &uid1)).await;
        let a = &h1.interfaces[0];
        assert_eq!(a.interface, "podb1f51a511f1");
        assert_eq!(a.logical_port, port);
        assert_eq!(a.iface_id_ver.as_deref(), Some("vmi-uid-1"));
        assert_eq!(a.ips, vec!["10.88.0.10/24".parse().unwrap()]);
        assert_eq!(a.mac, "0a:58:0a:58:00:0a");
        let row = port_row(&port).expect("claim port");
        assert!(row.contains(&claim_uid) && !row.contains("pod-uid"), "{row}");
        let st = wait_for("the claim's status", wait, || async {
            let c = claims.get("vm1.vms").await.ok()?;
            (!c.status_ips().is_empty()).then_some(c)
        })
        .await;
        assert_eq!(st.status_ips(), ["10.88.0.10/24"]);
        assert_eq!(st.owner_pod(), Some("virt-launcher-vm1-aaaaa"));

        // 3. The VM restarts: the launcher goes, the port stays; the new launcher gets the same IP and MAC.
        pods.delete("virt-launcher-vm1-aaaaa", &gone).await.expect("delete launcher");
        wait_for("the launcher to go", wait, || async { pods.get_opt("virt-launcher-vm1-aaaaa").await.ok()?.is_none().then_some(()) })
            .await;
        // A GC pass (every 2 s) and the deletion have run once the next launcher is served; the port is still there.
        let p2 = pods.create(&pp, &launcher("virt-launcher-vm1-bbbbb", "vm1", "vmi-uid-2", net)).await.expect("second launcher");
        let uid2 = p2.metadata.uid.clone().unwrap();
        let h2 = wait_for("the second hand-off", wait, || handoff_of(&pods, "virt-launcher-vm1-bbbbb", &uid2)).await;
        assert_eq!((h2.interfaces[0].ips.clone(), h2.interfaces[0].mac.clone()), (a.ips.clone(), a.mac.clone()), "same IP and MAC");
        assert_eq!(h2.interfaces[0].iface_id_ver.as_deref(), Some("vmi-uid-2"));
        wait_for("ownerPod to follow", wait, || async {
            (claims.get("vm1.vms").await.ok()?.owner_pod() == Some("virt-launcher-vm1-bbbbb")).then_some(())
        })
        .await;

        // 4. Another VM naming the same claim while vm1 runs: refused, no hand-off.
        let p3 = pods.create(&pp, &launcher("virt-launcher-vm7-ccccc", "vm7", "vmi-uid-7", net)).await.expect("other VM");
        let uid3 = p3.metadata.uid.clone().unwrap();
        let msg = wait_for("the IPAMClaimInUse warning", wait, || warning(&ev, "virt-launcher-vm7-ccccc", "IPAMClaimInUse")).await;
        assert!(msg.contains(&format!("{ns}/vm1")), "{msg}");
        assert!(handoff_of(&pods, "virt-launcher-vm7-ccccc", &uid3).await.is_none());
        pods.delete("virt-launcher-vm7-ccccc", &gone).await.expect("cleanup");

        // 5. The claim is deleted (with the VM): the port goes.
        pods.delete("virt-launcher-vm1-bbbbb", &gone).await.expect("delete launcher");
        claims.delete("vm1.vms", &DeleteParams::default()).await.expect("delete claim");
        wait_for("the claim port to go", wait, || async { port_row(&port).is_none().then_some(()) }).await;
    });
    ctl_rt.shutdown_background();
}
