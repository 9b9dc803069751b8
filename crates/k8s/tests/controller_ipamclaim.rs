//! Persistent IPs through IPAMClaims (NPWG v1.3), against a real OVN central (ovsdb-server +
//! northd): a selection naming `ipam-claim-reference` on a network allowing persistent IPs gets
//! the claim's own logical switch port `claim:{ns}/{claim}` (no pod UID), whose addresses survive
//! the pod and go with the claim (plan: docs/kubevirt-plan.md, tests K1, K2, K4, K5).

mod controller_support;

use std::collections::HashSet;
use std::sync::Arc;

use controller_support::*;
use k8s::controller::{ClaimMap, Controller, PodError, PodRef};
use k8s::ipamclaim::{new_claim, IPAMClaim};
use k8s::nad::new_nad;
use k8s_openapi::api::core::v1::Pod;

const VMS_CONFIG: &str =
    r#"{"cniVersion":"1.0.0","type":"kubetron","name":"vms","logical_switch":"vms","allowPersistentIPs":true,"capabilities":{"mac":true}}"#;

/// `vms`: 10.30.0.0/24, DHCP router .1, .1-.9 excluded: the first free address is .10.
fn vm_switch(ovn: &Ovn) {
    ovn.subnet_switch("vms", "10.30.0.0/24", "10.30.0.1");
    ovn.nbctl(&["set", "Logical_Switch", "vms", "other_config:exclude_ips=10.30.0.1..10.30.0.9"]);
}

fn claim(ns: &str, name: &str, uid: &str) -> IPAMClaim {
    let mut c = new_claim(ns, name, "vms", "");
    c.metadata.uid = Some(uid.into());
    c
}

fn claims_of(list: &[IPAMClaim], living: &[(&str, &str)]) -> ClaimMap {
    let mut m = ClaimMap::default();
    for c in list {
        m.insert(c.clone());
    }
    m.living = living.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    m
}

fn ctl_with(nb: &k8s::controller::Nb, claims: ClaimMap) -> Controller {
    let mut nads = nads();
    nads.insert(new_nad("ns1", "vms", VMS_CONFIG, &[]));
    nads.insert(new_nad("ns1", "noclaims", r#"{"cniVersion":"1.0.0","type":"kubetron","logical_switch":"vms"}"#, &[]));
    Controller::new(nb.clone(), Arc::new(nads)).with_claims(Arc::new(claims))
}

/// A KubeVirt launcher pod of VMI `vmi` (UID `vmi_uid`), as virt-controller makes it.
fn launcher(name: &str, uid: &str, vmi: &str, vmi_uid: &str, networks: &str) -> Pod {
    let mut p = pod("ns1", name, uid, networks);
    p.metadata.labels =
        Some([("kubevirt.io".to_string(), "virt-launcher".to_string()), ("kubevirt.io/created-by".into(), vmi_uid.into())].into());
    p.metadata.annotations.get_or_insert_with(Default::default).insert("kubevirt.io/domain".into(), vmi.into());
    p
}

fn claim_net(claim: &str) -> String {
    format!(r#"[{{"name":"vms","interface":"podb1f51a511f1","ipam-claim-reference":"{claim}"}}]"#)
}

fn pr(p: &Pod) -> PodRef {
    PodRef::of(p).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_port_first_free_ip_mac_for_ip() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    vm_switch(&ovn);
    let nb = ovn.nb().await;
    let ctl = ctl_with(&nb, claims_of(&[claim("ns1", "vm1.vms", "c-uid-1")], &[]));
    let p = launcher("virt-launcher-vm1-abcde", "pod-uid-1", "vm1", "vmi-uid-1", &claim_net("vm1.vms"));
    let rec = ctl.reconcile_pod(&p).await.expect("reconcile");
    let port = "claim:ns1/vm1.vms";
    assert_eq!(rec.changes.created, vec![port.to_string()]);
    assert_eq!(ovn.port_col(port, "addresses"), r#"["0a:58:0a:1e:00:0a 10.30.0.10"]"#);
    assert_eq!(ovn.port_col(port, "options"), "{iface-id-ver=vmi-uid-1, requested-chassis=node1}");
    let ids = ovn.port_col(port, "external_ids");
    for want in [
        "\"kubetron.io/ipamclaim\"=\"ns1/vm1.vms\"",
        "\"kubetron.io/ipamclaim-uid\"=c-uid-1",
        "\"kubetron.io/vm\"=\"ns1/vm1\"",
        "\"kubetron.io/vmi-uid\"=vmi-uid-1",
        "\"kubetron.io/interface\"=podb1f51a511f1",
        "\"kubetron.io/network\"=\"ns1/vms\"",
        "\"kubetron.io/owner\"=controller",
    ] {
        assert!(ids.contains(want), "{want} in {ids}");
    }
    assert!(!ids.contains("pod-uid"), "a claim port has no pod UID: {ids}");
    // The hand-off names the claim port with the VMI UID as iface_id_ver.
    let st = ctl.wait_status(&pr(&p), &rec.desired, WAIT).await;
    let h = st.interfaces.expect("hand-off");
    let a = &h.interfaces[0];
    assert_eq!(a.logical_port, port);
    assert_eq!(a.iface_id_ver.as_deref(), Some("vmi-uid-1"));
    assert_eq!(a.vm.as_deref(), Some("ns1/vm1"));
    assert_eq!(a.mac, "0a:58:0a:1e:00:0a");
    assert_eq!(a.ips, vec!["10.30.0.10/24".parse().unwrap()]);
    // status.ips + ownerPod to write.
    let updates = k8s::controller::status::claim_status_updates(&rec.desired, &h, "virt-launcher-vm1-abcde");
    assert_eq!(updates.len(), 1);
    assert_eq!((updates[0].0.name.as_str(), updates[0].1.clone()), ("vm1.vms", vec!["10.30.0.10/24".to_string()]));
    // The element's MAC wins over the derived one; a second claim gets the next free address.
    let mut c2 = claims_of(&[claim("ns1", "vm1.vms", "c-uid-1"), claim("ns1", "vm2.vms", "c-uid-2")], &[("ns1", "vm1")]);
    c2.living.insert(("ns1".into(), "vm1".into()));
    let ctl = ctl_with(&nb, c2);
    let p2 = launcher(
        "virt-launcher-vm2-x",
        "pod-uid-2",
        "vm2",
        "vmi-uid-2",
        r#"[{"name":"vms","interface":"podb1f51a511f1","mac":"02:00:00:00:00:02","ipam-claim-reference":"vm2.vms"}]"#,
    );
    ctl.reconcile_pod(&p2).await.expect("reconcile vm2");
    assert_eq!(ovn.port_col("claim:ns1/vm2.vms", "addresses"), r#"["02:00:00:00:00:02 10.30.0.11"]"#);
    // A network without "allowPersistentIPs" refuses the reference; a missing claim waits.
    let p3 = pod("ns1", "plain", "pod-uid-3", r#"[{"name":"noclaims","ipam-claim-reference":"vm1.vms"}]"#);
    let e = ctl.reconcile_pod(&p3).await.unwrap_err();
    assert!(matches!(e, PodError::Refused(_)) && e.to_string().contains("does not allow persistent IPs"), "{e}");
    let p4 = launcher("virt-launcher-vm9-x", "pod-uid-4", "vm9", "vmi-uid-9", &claim_net("vm9.vms"));
    let e = ctl.reconcile_pod(&p4).await.unwrap_err();
    assert_eq!(e.reason(), "IPAMClaimNotFound", "{e}");
    assert!(e.is_transient(), "retried with backoff");
    assert!(!ovn.port_exists("claim:ns1/vm9.vms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_port_survives_pod_and_is_reused_by_new_pod() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    vm_switch(&ovn);
    let nb = ovn.nb().await;
    let c = claim("ns1", "vm1.vms", "c-uid-1");
    let ctl = ctl_with(&nb, claims_of(std::slice::from_ref(&c), &[]));
    let port = "claim:ns1/vm1.vms";
    let p1 = launcher("virt-launcher-vm1-aaaaa", "pod-uid-1", "vm1", "vmi-uid-1", &claim_net("vm1.vms"));
    ctl.reconcile_pod(&p1).await.expect("first launcher");
    let addresses = ovn.port_col(port, "addresses");
    let uuid = ovn.nbctl(&["--bare", "--columns=_uuid", "find", "Logical_Switch_Port", &format!("name=\"{port}\"")]);
    // The pod is deleted (VM stopped): the port stays, and so does garbage collection's hand.
    let removed = ctl.delete_pod(&pr(&p1)).await.expect("delete pod");
    assert!(removed.removed.is_empty(), "{removed:?}");
    assert!(ovn.port_exists(port));
    let gone = ctl.gc(&HashSet::new()).await.expect("gc");
    assert!(gone.is_empty(), "GC without the claim list keeps claim ports: {gone:?}");
    let live_claims: HashSet<String> = ["c-uid-1".to_string()].into();
    let gone = ctl.gc_with_claims(&HashSet::new(), Some(&live_claims)).await.expect("gc");
    assert!(gone.is_empty(), "GC keeps the port of a living claim: {gone:?}");
    assert!(ovn.port_exists(port));
    // The VM starts again: a new launcher (new pod, new VMI UID) gets the same port, MAC and IP.
    let p2 = launcher("virt-launcher-vm1-bbbbb", "pod-uid-2", "vm1", "vmi-uid-2", &claim_net("vm1.vms"));
    let rec = ctl.reconcile_pod(&p2).await.expect("second launcher");
    assert!(rec.changes.created.is_empty() && rec.changes.replaced.is_empty(), "{:?}", rec.changes);
    assert_eq!(ovn.port_col(port, "addresses"), addresses);
    assert_eq!(ovn.nbctl(&["--bare", "--columns=_uuid", "find", "Logical_Switch_Port", &format!("name=\"{port}\"")]), uuid, "same row");
    assert_eq!(ovn.port_col(port, "options"), "{iface-id-ver=vmi-uid-2, requested-chassis=node1}", "iface-id-ver follows the new VMI UID");
    assert!(ovn.port_col(port, "external_ids").contains("\"kubetron.io/vmi-uid\"=vmi-uid-2"));
    let h = ctl.wait_status(&pr(&p2), &rec.desired, WAIT).await.interfaces.expect("hand-off");
    assert_eq!(h.interfaces[0].logical_port, port);
    assert_eq!(h.interfaces[0].ips, vec!["10.30.0.10/24".parse().unwrap()]);
    assert_eq!(h.interfaces[0].iface_id_ver.as_deref(), Some("vmi-uid-2"));

    // Another VM (another domain) naming the same claim while vm1 runs: refused, nothing written.
    let ctl = ctl_with(&nb, claims_of(std::slice::from_ref(&c), &[("ns1", "vm1")]));
    let other = launcher("virt-launcher-vm7-ccccc", "pod-uid-7", "vm7", "vmi-uid-7", &claim_net("vm1.vms"));
    let e = ctl.reconcile_pod(&other).await.unwrap_err();
    assert_eq!(e.reason(), "IPAMClaimInUse", "{e}");
    assert!(e.to_string().contains("ns1/vm1"), "{e}");
    assert_eq!(ovn.port_col(port, "options"), "{iface-id-ver=vmi-uid-2, requested-chassis=node1}");
    // The claim's spec is edited (immutable upstream; our CEL-less CRD cannot stop it): refused,
    // the port keeps what it was made for.
    let mut edited = c.clone();
    edited.spec.ip_requests = vec!["10.30.0.77/24".into()];
    let ctl = ctl_with(&nb, claims_of(std::slice::from_ref(&edited), &[]));
    let e = ctl.reconcile_pod(&p2).await.unwrap_err();
    assert_eq!(e.reason(), "IPAMClaimChanged", "{e}");
    assert!(e.to_string().contains("10.30.0.77/24"), "{e}");
    assert_eq!(ovn.port_col(port, "addresses"), addresses);
    // A claim of another network is refused too.
    let mut wrong = claim("ns1", "wrong", "c-uid-w");
    wrong.spec.network = "red".into();
    let ctl = ctl_with(&nb, claims_of(&[wrong], &[]));
    let e = ctl.reconcile_pod(&launcher("l-w", "pod-uid-w", "vmw", "vmi-w", &claim_net("wrong"))).await.unwrap_err();
    assert_eq!(e.reason(), "IPAMClaimRefused", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_delete_releases_ip() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    vm_switch(&ovn);
    let nb = ovn.nb().await;
    let c1 = claim("ns1", "vm1.vms", "c-uid-1");
    let ctl = ctl_with(&nb, claims_of(std::slice::from_ref(&c1), &[]));
    let p1 = launcher("virt-launcher-vm1-a", "pod-uid-1", "vm1", "vmi-uid-1", &claim_net("vm1.vms"));
    ctl.reconcile_pod(&p1).await.expect("vm1");
    assert!(ovn.port_col("claim:ns1/vm1.vms", "addresses").contains("10.30.0.10"));
    // Another UID of that name (deleted and made again) does not remove the port.
    assert!(!ctl.delete_claim("ns1", "vm1.vms", "c-uid-other").await.unwrap());
    assert!(ovn.port_exists("claim:ns1/vm1.vms"));
    assert!(ctl.delete_claim("ns1", "vm1.vms", "c-uid-1").await.unwrap());
    assert!(!ovn.port_exists("claim:ns1/vm1.vms"));
    // The address is free again: the next claim gets it.
    let c2 = claim("ns1", "vm2.vms", "c-uid-2");
    let ctl = ctl_with(&nb, claims_of(std::slice::from_ref(&c2), &[]));
    ctl.reconcile_pod(&launcher("virt-launcher-vm2-a", "pod-uid-2", "vm2", "vmi-uid-2", &claim_net("vm2.vms"))).await.expect("vm2");
    assert!(ovn.port_col("claim:ns1/vm2.vms", "addresses").contains(" 10.30.0.10\""), "{}", ovn.port_col("claim:ns1/vm2.vms", "addresses"));
    // GC removes a claim port whose claim UID is gone once the claim list is known.
    let gone = ctl.gc_with_claims(&HashSet::new(), Some(&HashSet::new())).await.expect("gc");
    assert_eq!(gone.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["claim:ns1/vm2.vms"]);
    assert!(!ovn.port_exists("claim:ns1/vm2.vms"));
    // A claim made again under the same name (new UID) gets a fresh port, replacing a stale one.
    let ctl = ctl_with(&nb, claims_of(std::slice::from_ref(&c1), &[]));
    ctl.reconcile_pod(&p1).await.expect("vm1 again");
    let again = claim("ns1", "vm1.vms", "c-uid-1b");
    let ctl = ctl_with(&nb, claims_of(std::slice::from_ref(&again), &[]));
    let rec = ctl.reconcile_pod(&p1).await.expect("vm1, claim made again");
    assert_eq!(rec.changes.replaced, vec!["claim:ns1/vm1.vms".to_string()]);
    assert!(ovn.port_col("claim:ns1/vm1.vms", "external_ids").contains("c-uid-1b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_20_claims_never_share_an_ip() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    vm_switch(&ovn);
    let nb = ovn.nb().await;
    let list: Vec<IPAMClaim> = (0..20).map(|i| claim("ns1", &format!("vm{i}.vms"), &format!("c-uid-{i}"))).collect();
    let ctl = ctl_with(&nb, claims_of(&list, &[]));
    let pods: Vec<Pod> = (0..20)
        .map(|i| {
            launcher(
                &format!("virt-launcher-vm{i}-x"),
                &format!("pod-uid-{i}"),
                &format!("vm{i}"),
                &format!("vmi-{i}"),
                &claim_net(&format!("vm{i}.vms")),
            )
        })
        .collect();
    // Half in one batch (one snapshot: the batch's claims must keep them apart), half one by one
    // concurrently (guards: a planned address taken meanwhile fails the write and re-plans; a
    // reconcile that lost every re-plan fails transiently and the runner retries it, as here).
    let results = ctl.reconcile_batch(&pods[..10], 4).await;
    for (p, r) in &results {
        r.as_ref().unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
    let singles = futures::future::join_all(pods[10..].iter().map(|p| async {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match ctl.reconcile_pod(p).await {
                Err(e) if e.is_transient() && attempt < 20 => continue,
                r => return r,
            }
        }
    }))
    .await;
    for r in singles {
        r.expect("single reconcile");
    }
    let mut ips = HashSet::new();
    for i in 0..20 {
        let a = ovn.port_col(&format!("claim:ns1/vm{i}.vms"), "addresses");
        let ip =
            a.trim_matches(|c| c == '[' || c == ']' || c == '"').split_whitespace().nth(1).unwrap_or_else(|| panic!("{a}")).to_string();
        assert!(ips.insert(ip.clone()), "{ip} given twice");
    }
    let want: HashSet<String> = (10..30).map(|i| format!("10.30.0.{i}")).collect();
    assert_eq!(ips, want, "the first 20 free addresses, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_ip_pod_refused_while_stopped_vm_holds_claim() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    vm_switch(&ovn);
    let nb = ovn.nb().await;
    // The claim asks for an address (spec.ipRequests): its port takes exactly that one.
    let mut c = claim("ns1", "vm1.vms", "c-uid-1");
    c.spec.ip_requests = vec!["10.30.0.50/24".into()];
    let ctl = ctl_with(&nb, claims_of(std::slice::from_ref(&c), &[]));
    let p1 = launcher("virt-launcher-vm1-a", "pod-uid-1", "vm1", "vmi-uid-1", &claim_net("vm1.vms"));
    let rec = ctl.reconcile_pod(&p1).await.expect("vm1");
    assert_eq!(ovn.port_col("claim:ns1/vm1.vms", "addresses"), r#"["0a:58:0a:1e:00:32 10.30.0.50"]"#);
    let h = ctl.wait_status(&pr(&p1), &rec.desired, WAIT).await.interfaces.expect("hand-off");
    assert_eq!(h.interfaces[0].ips, vec!["10.30.0.50/24".parse().unwrap()]);
    // The VM stops: its address stays held. A pod asking for that address statically is refused,
    // naming the claim's port.
    ctl.delete_pod(&pr(&p1)).await.expect("delete pod");
    let mut nads = nads();
    nads.insert(new_nad(
        "ns1",
        "vms-static",
        r#"{"cniVersion":"1.0.0","type":"kubetron","name":"vms","logical_switch":"vms","capabilities":{"ips":true}}"#,
        &[],
    ));
    let static_ctl = Controller::new(nb.clone(), Arc::new(nads));
    let squatter = pod("ns1", "squatter", "pod-uid-s", r#"[{"name":"vms-static","ips":["10.30.0.50/24"]}]"#);
    let e = static_ctl.reconcile_pod(&squatter).await.unwrap_err();
    assert_eq!(e.reason(), "StaticIPConflict", "{e}");
    assert!(e.to_string().contains("claim:ns1/vm1.vms"), "{e}");
    // A second claim asking for the same address is refused the same way.
    let mut c2 = claim("ns1", "vm2.vms", "c-uid-2");
    c2.spec.ip_requests = vec!["10.30.0.50/24".into()];
    let ctl = ctl_with(&nb, claims_of(&[c, c2], &[]));
    let e = ctl.reconcile_pod(&launcher("virt-launcher-vm2-a", "pod-uid-2", "vm2", "vmi-uid-2", &claim_net("vm2.vms"))).await.unwrap_err();
    assert_eq!(e.reason(), "StaticIPConflict", "{e}");
    assert!(e.to_string().contains("claim:ns1/vm1.vms"), "{e}");
    assert!(!ovn.port_exists("claim:ns1/vm2.vms"));
}

/// A launcher pod on `node`, created at `created`, with extra labels/annotations.
fn launcher_at(name: &str, uid: &str, node: &str, created: &str, target_ready: bool) -> Pod {
    let mut p = launcher(name, uid, "vm1", "vmi-uid-1", &claim_net("vm1.vms"));
    p.spec.as_mut().unwrap().node_name = Some(node.into());
    p.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created.parse().unwrap()));
    if target_ready {
        p.metadata.annotations.get_or_insert_with(Default::default).insert(model::kubevirt::TARGET_READY_ANNOTATION.into(), created.into());
    }
    p
}

/// K6: the claim port's chassis options follow KubeVirt's launcher pods through a live migration
/// (source only, source + target with rarp, target only; a failed target gives it back), and in
/// `switch` mode the port moves only when the target is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_options_follow_pod_states() {
    use model::kubevirt::MigrationMode;
    let ovn = Ovn::start();
    standard_switches(&ovn);
    vm_switch(&ovn);
    let nb = ovn.nb().await;
    let c = claim("ns1", "vm1.vms", "c-uid-1");
    let port = "claim:ns1/vm1.vms";
    let src = launcher_at("virt-launcher-vm1-aaaaa", "pod-uid-1", "node1", "2026-11-30T10:00:00Z", false);
    let dst = launcher_at("virt-launcher-vm1-bbbbb", "pod-uid-2", "node2", "2026-11-30T10:05:00Z", false);
    let dst_ready = launcher_at("virt-launcher-vm1-bbbbb", "pod-uid-2", "node2", "2026-11-30T10:05:00Z", true);
    let run = |pods: Vec<&Pod>, mode: MigrationMode, who: &Pod| {
        let mut m = claims_of(std::slice::from_ref(&c), &[("ns1", "vm1")]);
        m.pods = pods.into_iter().map(|p| Arc::new(p.clone())).collect();
        m.migration = mode;
        let ctl = ctl_with(&nb, m);
        let who = who.clone();
        async move { ctl.reconcile_pod(&who).await.expect("reconcile") }
    };
    let options = || ovn.port_col(port, "options");

    run(vec![&src], MigrationMode::Rarp, &src).await;
    assert_eq!(options(), "{iface-id-ver=vmi-uid-1, requested-chassis=node1}");
    // The target is scheduled on node2: both chassis, activated by the VM's RARP.
    let rec = run(vec![&src, &dst], MigrationMode::Rarp, &dst).await;
    assert_eq!(options(), "{activation-strategy=rarp, iface-id-ver=vmi-uid-1, requested-chassis=\"node1,node2\"}");
    // The target's hand-off names the same port and VMI UID as the source's.
    let h = ctl_with(&nb, claims_of(std::slice::from_ref(&c), &[])).wait_status(&pr(&dst), &rec.desired, WAIT).await.interfaces.unwrap();
    assert_eq!((h.interfaces[0].logical_port.as_str(), h.interfaces[0].iface_id_ver.as_deref()), (port, Some("vmi-uid-1")));
    // The domain runs on the target: the target only, no strategy left behind.
    run(vec![&src, &dst_ready], MigrationMode::Rarp, &src).await;
    assert_eq!(options(), "{iface-id-ver=vmi-uid-1, requested-chassis=node2}");
    // The source finished: still the target.
    run(vec![&finished(src.clone()), &dst_ready], MigrationMode::Rarp, &dst_ready).await;
    assert_eq!(options(), "{iface-id-ver=vmi-uid-1, requested-chassis=node2}");

    // A migration whose target fails: back to the source.
    run(vec![&src], MigrationMode::Rarp, &src).await;
    run(vec![&src, &dst], MigrationMode::Rarp, &dst).await;
    assert!(options().contains("activation-strategy=rarp"));
    run(vec![&src, &finished(dst.clone())], MigrationMode::Rarp, &src).await;
    assert_eq!(options(), "{iface-id-ver=vmi-uid-1, requested-chassis=node1}");

    // Switch mode: the source keeps the port until the target is ready.
    run(vec![&src, &dst], MigrationMode::Switch, &dst).await;
    assert_eq!(options(), "{iface-id-ver=vmi-uid-1, requested-chassis=node1}");
    run(vec![&src, &dst_ready], MigrationMode::Switch, &dst_ready).await;
    assert_eq!(options(), "{iface-id-ver=vmi-uid-1, requested-chassis=node2}");

    // Three living launcher pods (not a state KubeVirt makes): the options are left as they are.
    let third = launcher_at("virt-launcher-vm1-ccccc", "pod-uid-3", "node3", "2026-11-30T10:06:00Z", false);
    run(vec![&src, &dst_ready, &third], MigrationMode::Rarp, &third).await;
    assert_eq!(options(), "{iface-id-ver=vmi-uid-1, requested-chassis=node2}");
}
