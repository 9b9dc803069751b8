//! The controller's garbage collection against a real OVN Northbound database (issue 14): ports
//! the CNI plugin made for pods that are gone (or were re-created under the same name with a new
//! UID) are removed once seen orphaned in two passes a grace period apart; CNI ports of live pods,
//! CNI ports without a pod identity and ports without kubetron's owner tag are never touched; the
//! controller's own orphans go at once.

mod controller_support;

use std::collections::HashSet;
use std::time::Duration;

use controller_support::*;
use ovn::names;

/// A port as the CNI plugin makes it in standalone mode (see `standalone::port::port_tags`).
fn cni_port(ovn: &Ovn, switch: &str, name: &str, pod: Option<(&str, &str, &str)>) {
    let mut args: Vec<String> = vec![
        "lsp-add".into(),
        switch.into(),
        name.into(),
        "--".into(),
        "lsp-set-addresses".into(),
        name.into(),
        "dynamic".into(),
        "--".into(),
        "set".into(),
        "Logical_Switch_Port".into(),
        name.into(),
        format!("external_ids:\"{}\"={}", names::OWNER, names::OWNER_CNI),
        format!("external_ids:\"{}\"=c-{name}", names::CONTAINER_ID),
        format!("external_ids:\"{}\"=net1", names::INTERFACE),
    ];
    if let Some((ns, pod, uid)) = pod {
        args.push(format!("external_ids:\"{}\"={ns}", model::names::POD_NAMESPACE));
        args.push(format!("external_ids:\"{}\"={pod}", model::names::POD_NAME));
        args.push(format!("external_ids:\"{}\"={uid}", names::POD_UID));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ovn.nbctl(&refs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cni_ports_of_gone_pods_are_collected_live_and_foreign_ones_kept() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    cni_port(&ovn, "blue", "ns1_live_net1", Some(("ns1", "live", "uid-live")));
    cni_port(&ovn, "blue", "ns1_gone_net1", Some(("ns1", "gone", "uid-gone")));
    cni_port(&ovn, "red", "ns1_gone_net2", Some(("ns1", "gone", "uid-gone")));
    // Pod ns1/web was force-deleted and re-created: the old generation's port is still there.
    cni_port(&ovn, "blue", "ns1_web_net1", Some(("ns1", "web", "uid-web-old")));
    // The plugin called without Kubernetes (no pod identity), an administrator's port, a port of
    // another owner.
    cni_port(&ovn, "blue", "cni_abc_net1", None);
    ovn.nbctl(&["lsp-add", "blue", "admin-port"]);
    ovn.nbctl(&[
        "lsp-add",
        "blue",
        "other-owner",
        "--",
        "set",
        "Logical_Switch_Port",
        "other-owner",
        "external_ids:\"kubetron.io/owner\"=someone",
    ]);

    let nb = ovn.nb().await;
    let ctl = controller(&nb).with_gc_grace(Duration::ZERO);
    // The controller's own port of a pod that is gone too.
    ctl.reconcile_pod(&pod("ns1", "old", "uid-old", "flat")).await.unwrap();
    nb.replica().wait_until(WAIT, |s| k8s::controller::NbView(s.clone()).port_by_name("ns1_old_net1").is_some()).await.unwrap();

    let live: HashSet<String> = ["uid-live".to_string(), "uid-web-new".to_string()].into();
    let mut found: Vec<String> = k8s::controller::gc::orphans(&nb.view(), &live).into_iter().map(|o| o.name).collect();
    found.sort();
    assert_eq!(found, vec!["ns1_gone_net1", "ns1_gone_net2", "ns1_old_net1", "ns1_web_net1"]);

    // First pass: the controller's orphan goes; the CNI-made ones are only noted (the pod could
    // be one the controller's cache has not seen yet).
    let removed = ctl.gc(&live).await.unwrap();
    assert_eq!(removed.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), vec!["ns1_old_net1"]);
    assert!(!ovn.port_exists("ns1_old_net1"));
    assert!(ovn.port_exists("ns1_gone_net1") && ovn.port_exists("ns1_web_net1"));

    // Second pass: still orphaned, so they go (gone pod on both networks, old generation).
    let mut removed: Vec<String> = ctl.gc(&live).await.unwrap().into_iter().map(|o| o.name).collect();
    removed.sort();
    assert_eq!(removed, vec!["ns1_gone_net1", "ns1_gone_net2", "ns1_web_net1"]);
    assert_eq!(ovn.ports_of("blue"), vec!["admin-port", "cni_abc_net1", "ns1_live_net1", "other-owner"]);
    assert!(ovn.ports_of("red").is_empty() && ovn.ports_of("flat").is_empty());

    // Nothing left to collect: a further pass sends nothing.
    nb.replica().wait_until(WAIT, |s| k8s::controller::gc::orphans(&k8s::controller::NbView(s.clone()), &live).is_empty()).await.unwrap();
    let t0 = nb.transactions();
    assert!(ctl.gc(&live).await.unwrap().is_empty());
    assert_eq!(nb.transactions(), t0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cni_ports_wait_out_the_grace_and_a_pod_that_shows_up_keeps_its_port() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    cni_port(&ovn, "blue", "ns1_new_net1", Some(("ns1", "new", "uid-new")));
    let nb = ovn.nb().await;
    // Default grace (a minute): back-to-back passes (startup runs several) never remove it.
    let ctl = controller(&nb);
    let empty = HashSet::new();
    for _ in 0..3 {
        assert!(ctl.gc(&empty).await.unwrap().is_empty());
    }
    assert!(ovn.port_exists("ns1_new_net1"));

    // Zero grace: seen orphaned once, then the pod shows up in the list: kept, and when it is
    // gone again the count starts over.
    let ctl = controller(&nb).with_gc_grace(Duration::ZERO);
    assert!(ctl.gc(&empty).await.unwrap().is_empty());
    let live: HashSet<String> = ["uid-new".to_string()].into();
    assert!(ctl.gc(&live).await.unwrap().is_empty());
    assert!(ctl.gc(&empty).await.unwrap().is_empty(), "first sighting again");
    assert!(ovn.port_exists("ns1_new_net1"));
    assert_eq!(ctl.gc(&empty).await.unwrap().len(), 1);
    assert!(!ovn.port_exists("ns1_new_net1"));
}
