//! Requested addresses in the controller against a real OVN Northbound database (issue 8 #3):
//! a static IP or MAC another port holds is refused naming the holder (its port and pod),
//! `exclude_ips`, network and broadcast addresses are refused, one batch never hands an address
//! to two pods, and the check travels with the write: a port added between the read and the
//! write fails the transaction (guard), and of two controllers racing for one address exactly
//! one wins.

mod controller_support;

use controller_support::*;
use k8s::controller::{desired, plan, Claims, PodError, PodRef};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_addresses_name_the_holder_and_write_nothing() {
    let ovn = Ovn::start();
    standard_switches(&ovn); // blue 10.10.0.0/24, exclude_ips 10.10.0.1
    ovn.nbctl(&["set", "Logical_Switch", "blue", "other_config:exclude_ips=\"10.10.0.1 10.10.0.200..10.10.0.210\""]);
    // A port the CNI plugin made on its own for pod ns2/web, with a static address and MAC.
    ovn.nbctl(&[
        "lsp-add",
        "blue",
        "ns2_web_net1",
        "--",
        "lsp-set-addresses",
        "ns2_web_net1",
        "0a:00:00:00:aa:01 10.10.0.40",
        "--",
        "set",
        "Logical_Switch_Port",
        "ns2_web_net1",
        "external_ids:kubetron.io/owner=cni",
        "external_ids:kubetron.io/pod-namespace=ns2",
        "external_ids:kubetron.io/pod-name=web",
        "external_ids:kubetron.io/pod-uid=uid-web",
    ]);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let b =
        ctl.reconcile_pod(&pod("ns1", "b", "uid-b", r#"[{"name":"blue","ips":["10.10.0.50"],"mac":"0a:00:00:00:bb:01"}]"#)).await.unwrap();
    assert_eq!(b.changes.created, vec!["ns1_b_net1"]);

    let t0 = nb.transactions();
    let refuse = |networks: &str| {
        let ctl = ctl.clone();
        let p = pod("ns1", "c", "uid-c", networks);
        async move { ctl.reconcile_pod(&p).await.expect_err("refused") }
    };
    // IP of the CNI-made port: the holder's port and pod are named.
    let e = refuse(r#"[{"name":"blue","ips":["10.10.0.40"]}]"#).await;
    assert!(
        matches!(&e, PodError::IpConflict { holder, holder_pod, .. } if holder == "ns2_web_net1" && holder_pod.as_deref() == Some("ns2/web")),
        "{e}"
    );
    assert_eq!(e.reason(), "StaticIPConflict");
    assert!(e.to_string().contains("ns2/web") && e.to_string().contains("10.10.0.40"), "{e}");
    // MAC of the controller's port of pod b (case does not matter), with a free IP.
    let e = refuse(r#"[{"name":"blue","ips":["10.10.0.60"],"mac":"0A:00:00:00:BB:01"}]"#).await;
    assert!(
        matches!(&e, PodError::MacConflict { holder, holder_pod, .. } if holder == "ns1_b_net1" && holder_pod.as_deref() == Some("ns1/b")),
        "{e}"
    );
    assert_eq!(e.reason(), "StaticMACConflict");
    // A MAC alone (address from OVN) too.
    let e = refuse(r#"[{"name":"blue","mac":"0a:00:00:00:aa:01"}]"#).await;
    assert!(matches!(&e, PodError::MacConflict { holder, .. } if holder == "ns2_web_net1"), "{e}");
    // exclude_ips (single address and range), network and broadcast addresses.
    for ip in ["10.10.0.1", "10.10.0.205"] {
        let e = refuse(&format!(r#"[{{"name":"blue","ips":["{ip}"]}}]"#)).await;
        assert!(matches!(&e, PodError::IpExcluded { .. }), "{ip}: {e}");
        assert!(e.to_string().contains("exclude_ips"), "{e}");
        assert_eq!(e.reason(), "InvalidStaticAddress");
    }
    for ip in ["10.10.0.0", "10.10.0.255", "10.11.0.5"] {
        let e = refuse(&format!(r#"[{{"name":"blue","ips":["{ip}"]}}]"#)).await;
        assert!(matches!(&e, PodError::IpOutsideSubnet { .. }), "{ip}: {e}");
    }
    // One pod asking for one MAC on two interfaces of the switch.
    let e = refuse(r#"[{"name":"blue","ips":["10.10.0.61"],"mac":"0a:00:00:00:cc:01"},{"name":"blue","ips":["10.10.0.62"],"mac":"0a:00:00:00:cc:01"}]"#).await;
    assert!(matches!(&e, PodError::MacConflict { holder, .. } if holder == "ns1_c_net1"), "{e}");
    assert_eq!(nb.transactions(), t0, "nothing sent for refused pods");
    assert!(!ovn.port_exists("ns1_c_net1") && !ovn.port_exists("ns1_c_net2"));

    // Batch: two pods asking for one MAC against one snapshot: the second is refused.
    let p1 = pod("ns1", "p1", "uid-p1", r#"[{"name":"flat","mac":"0a:00:00:00:dd:01"}]"#);
    let p2 = pod("ns1", "p2", "uid-p2", r#"[{"name":"flat","mac":"0a:00:00:00:dd:01"}]"#);
    let out = ctl.reconcile_batch(&[p1, p2], 10).await;
    assert!(out[0].1.is_ok(), "{:?}", out[0].1);
    assert!(matches!(&out[1].1, Err(PodError::MacConflict { holder, .. }) if holder == "ns1_p1_net1"), "{:?}", out[1].1);
    assert!(ovn.port_exists("ns1_p1_net1") && !ovn.port_exists("ns1_p2_net1"));

    // The pod's own port keeps its addresses: reconciling it again is fine.
    assert!(ctl
        .reconcile_pod(&pod("ns1", "b", "uid-b", r#"[{"name":"blue","ips":["10.10.0.50"],"mac":"0a:00:00:00:bb:01"}]"#))
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_added_after_the_check_fails_the_write_then_the_pod_is_refused() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let p = pod("ns1", "a", "uid-a", r#"[{"name":"blue","ips":["10.10.0.70"]},{"name":"red"}]"#);
    let view = nb.view();
    let want = desired(&p, &nads(), &view).unwrap();
    let planned = plan(&view, &PodRef::of(&p).unwrap(), &want, &mut Claims::new()).unwrap();
    assert_eq!(planned.guards.len(), 1, "only blue carries a claim: {:?}", planned.guards);
    // Someone takes the address between the read and the write.
    ovn.nbctl(&["lsp-add", "blue", "sneaky", "--", "lsp-set-addresses", "sneaky", "0a:00:00:00:ee:01 10.10.0.70"]);
    let mut ops: Vec<_> = planned.guards.iter().flat_map(|g| g.ops()).collect();
    ops.extend(planned.ops.clone());
    let e = nb.transact(ops).await.unwrap_err();
    assert!(ovn::nb::is_guard_failure(&e), "{e}");
    assert!(!ovn.port_exists("ns1_a_net1") && !ovn.port_exists("ns1_a_net2"), "half a pod was written");
    // The controller's own path re-reads and refuses, naming the new holder.
    let e = ctl.reconcile_pod(&p).await.unwrap_err();
    assert!(matches!(&e, PodError::IpConflict { holder, holder_pod: None, .. } if holder == "sneaky"), "{e}");
    // A port added elsewhere on the switch after the read only costs a re-plan.
    let q = pod("ns1", "q", "uid-q", r#"[{"name":"blue","ips":["10.10.0.71"]}]"#);
    ovn.nbctl(&["lsp-add", "blue", "other"]);
    let r = ctl.reconcile_pod(&q).await.expect("re-planned");
    assert_eq!(r.changes.created, vec!["ns1_q_net1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_racing_for_one_address_exactly_one_wins() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let (nb1, nb2) = (ovn.nb().await, ovn.nb().await);
    let (c1, c2) = (controller(&nb1), controller(&nb2));
    for round in 0..10 {
        let ip = format!("10.10.0.{}", 100 + round);
        let req = format!(r#"[{{"name":"blue","ips":["{ip}"]}}]"#);
        let pa = pod("ns1", &format!("r{round}a"), &format!("uid-r{round}a"), &req);
        let pb = pod("ns1", &format!("r{round}b"), &format!("uid-r{round}b"), &req);
        let (ra, rb) = tokio::join!(c1.reconcile_pod(&pa), c2.reconcile_pod(&pb));
        let (win, lose, loser_name, winner) = match (&ra, &rb) {
            (Ok(_), Err(e)) => (&ra, e, format!("r{round}b"), format!("ns1_r{round}a_net1")),
            (Err(e), Ok(_)) => (&rb, e, format!("r{round}a"), format!("ns1_r{round}b_net1")),
            _ => panic!("round {round}: exactly one must win: {ra:?} / {rb:?}"),
        };
        assert!(win.is_ok());
        assert!(matches!(lose, PodError::IpConflict { holder, .. } if *holder == winner), "round {round}: {lose}");
        assert!(!ovn.port_exists(&format!("ns1_{loser_name}_net1")));
        let holders = ovn.nbctl(&[
            "--bare",
            "--columns=name",
            "find",
            "Logical_Switch_Port",
            &format!("addresses{{>=}}\"0a:58:0a:0a:00:{:02x} {ip}\"", 100 + round),
        ]);
        assert_eq!(holders, winner, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_ports_fixed_address_fails_concurrent_claims_of_it() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let b_at = |ip: &str| pod("ns1", "b", "uid-b", &format!(r#"[{{"name":"blue","ips":["{ip}"]}}]"#));
    ctl.reconcile_pod(&b_at("10.10.0.80")).await.unwrap();
    let before = ovn.port_col("ns1_b_net1", "_uuid");

    // Pod c's plan claims .81 against this snapshot...
    let c = pod("ns1", "c", "uid-c", r#"[{"name":"blue","ips":["10.10.0.81"]}]"#);
    let view = nb.view();
    let want = desired(&c, &nads(), &view).unwrap();
    let planned = plan(&view, &PodRef::of(&c).unwrap(), &want, &mut Claims::new()).unwrap();
    // ...then pod b's port moves to .81 (re-created: a new row in the switch's port set)...
    let r = ctl.reconcile_pod(&b_at("10.10.0.81")).await.unwrap();
    assert_eq!(r.changes.updated, vec!["ns1_b_net1"]);
    assert_eq!(ovn.port_col("ns1_b_net1", "addresses"), "[\"0a:58:0a:0a:00:51 10.10.0.81\"]");
    assert_ne!(ovn.port_col("ns1_b_net1", "_uuid"), before);
    assert!(ovn.port_col("ns1_b_net1", "external_ids").contains("uid-b"));
    // ...so c's write, checked against the old set, fails as a whole.
    let mut ops: Vec<_> = planned.guards.iter().flat_map(|g| g.ops()).collect();
    ops.extend(planned.ops.clone());
    let e = nb.transact(ops).await.unwrap_err();
    assert!(ovn::nb::is_guard_failure(&e), "{e}");
    assert!(!ovn.port_exists("ns1_c_net1"));
    let e = ctl.reconcile_pod(&c).await.unwrap_err();
    assert!(matches!(&e, PodError::IpConflict { holder, .. } if holder == "ns1_b_net1"), "{e}");
    // Unchanged addresses: nothing is sent.
    let t0 = nb.transactions();
    assert!(ctl.reconcile_pod(&b_at("10.10.0.81")).await.unwrap().changes.is_empty());
    assert_eq!(nb.transactions(), t0);
}
