//! MultiNetworkPolicy rows against a real OVN Northbound database (ovsdb-server + northd): a
//! policy's group, sets and ACLs are created, kept current as peers come and go (only the set
//! changes), updated in place, and deleted with nothing left behind; a second policy on the same
//! switch shares the default-deny groups; a row of the same name kubetron does not own is refused
//! and left alone; orphaned rows are found; northd turns every ACL into logical flows.

mod controller_support;

use std::collections::{BTreeMap, HashSet};

use controller_support::*;
use k8s::controller::nb::NbView;
use k8s::controller::policy::{orphaned_policies, plan_policies, PolicyItem, PolicyPlanError};
use k8s::controller::Nb;
use policy::{Mode, PodView, PolicyRef, PolicySpec, PortView, World};
use serde_json::json;

fn lsp(ovn: &Ovn, switch: &str, name: &str, ip: &str) {
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    ovn.nbctl(&["lsp-add", switch, name, "--", "lsp-set-addresses", name, &format!("0a:00:00:00:00:{last:02x} {ip}")]);
}

fn pod(ns: &str, name: &str, app: &str, ports: &[(&str, &str)]) -> PodView {
    PodView {
        namespace: ns.into(),
        name: name.into(),
        labels: [("app".to_string(), app.to_string())].into_iter().collect(),
        container_ports: vec![],
        ports: ports
            .iter()
            .map(|(switch, ip)| PortView {
                switch: switch.to_string(),
                lsp: format!("{ns}_{name}_{switch}"),
                ips: vec![ip.parse().unwrap()],
            })
            .collect(),
    }
}

fn world(pods: Vec<PodView>) -> World {
    World::new([("team".to_string(), BTreeMap::new())], pods)
}

/// Plans, writes, and waits until the replica shows the write (planning again yields nothing).
async fn apply(nb: &Nb, world: &World, items: &[PolicyItem<'_>]) -> usize {
    let plan = plan_policies(&nb.view(), world, items, Mode::AddressSets).expect("plan");
    let n = plan.writes();
    if n > 0 {
        nb.transact(plan.ops.clone()).await.expect("transact");
    }
    nb.replica().wait_until(WAIT, |s| plan.shown_in(s)).await.expect("replica shows the write");
    // Planning again changes nothing.
    assert!(plan_policies(&nb.view(), world, items, Mode::AddressSets).unwrap().is_noop(), "the plan converged in one transaction");
    n
}

fn count(ovn: &Ovn, table: &str, cond: &str) -> usize {
    ovn.nbctl(&["--bare", "--columns=_uuid", "find", table, cond]).lines().filter(|l| !l.is_empty()).count()
}

fn ours(ovn: &Ovn) -> usize {
    ["Port_Group", "Address_Set", "ACL"].iter().map(|t| count(ovn, t, "external_ids:\"kubetron.io/owner\"=controller")).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_rows_follow_pods_and_policies_and_leave_nothing_behind() {
    let ovn = Ovn::start();
    ovn.plain_switch("red");
    ovn.plain_switch("blue");
    for (name, ip) in [
        ("team_web_red", "10.0.0.10"),
        ("team_client_red", "10.0.0.11"),
        ("team_client2_red", "10.0.0.12"),
        ("team_other_red", "10.0.0.13"),
    ] {
        lsp(&ovn, "red", name, ip);
    }
    lsp(&ovn, "blue", "team_web_blue", "10.0.1.10");
    // An admin's group and ACL, which kubetron must never touch.
    ovn.nbctl(&["pg-add", "admin_pg", "team_other_red"]);
    ovn.nbctl(&["acl-add", "admin_pg", "to-lport", "2000", "outport == @admin_pg && tcp.dst == 22", "drop"]);
    let nb = ovn.nb().await;

    let web = pod("team", "web", "web", &[("red", "10.0.0.10"), ("blue", "10.0.1.10")]);
    let client = pod("team", "client", "client", &[("red", "10.0.0.11")]);
    let other = pod("team", "other", "other", &[("red", "10.0.0.13")]);
    let ingress: PolicySpec = serde_json::from_value(json!({
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 80}]}]
    }))
    .unwrap();
    let a = PolicyRef { namespace: "team", name: "a", uid: "uid-a" };
    let red = vec!["red".to_string()];
    let w1 = world(vec![web.clone(), client.clone(), other.clone()]);
    apply(&nb, &w1, &[PolicyItem { policy: a, spec: Some(&ingress), switches: &red }]).await;

    let pg = policy::port_group_name("team/a", "red");
    let (deny_in, deny_out) = policy::deny_group_names("red");
    assert_eq!(
        ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", &pg]),
        ovn.nbctl(&["--bare", "--columns=_uuid", "list", "Logical_Switch_Port", "team_web_red"])
    );
    assert_eq!(count(&ovn, "ACL", "external_ids:\"kubetron.io/policy\"=\"team/a\""), 1);
    let set = ovn.nbctl(&["--bare", "--columns=name", "find", "Address_Set", "external_ids:\"kubetron.io/policy\"=\"team/a\""]);
    assert_eq!(ovn.nbctl(&["--bare", "--columns=addresses", "list", "Address_Set", &set]), "10.0.0.11");
    let m = ovn.nbctl(&["--bare", "--columns=match", "find", "ACL", "external_ids:\"kubetron.io/policy\"=\"team/a\""]);
    assert_eq!(m, format!("outport == @{pg} && ip4.src == ${set} && tcp && tcp.dst == 80"));
    assert_eq!(
        ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", &deny_in]),
        ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", &pg])
    );
    assert_eq!(ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", &deny_out]), "", "nothing isolated for egress");
    // blue is not in policy-for: nothing there.
    assert_eq!(count(&ovn, "Port_Group", "external_ids:\"kubetron.io/logical-switch\"=blue"), 0);

    // Planning again changes nothing.
    assert_eq!(apply(&nb, &w1, &[PolicyItem { policy: a, spec: Some(&ingress), switches: &red }]).await, 0);

    // A second client: only the set changes.
    let client2 = pod("team", "client2", "client", &[("red", "10.0.0.12")]);
    let w2 = world(vec![web.clone(), client.clone(), client2.clone(), other.clone()]);
    let plan =
        plan_policies(&nb.view(), &w2, &[PolicyItem { policy: a, spec: Some(&ingress), switches: &red }], Mode::AddressSets).unwrap();
    assert_eq!(plan.writes(), 1, "one update of the address set: {:?}", plan.ops);
    let acl_uuid = ovn.nbctl(&["--bare", "--columns=_uuid", "find", "ACL", "external_ids:\"kubetron.io/policy\"=\"team/a\""]);
    apply(&nb, &w2, &[PolicyItem { policy: a, spec: Some(&ingress), switches: &red }]).await;
    assert_eq!(ovn.nbctl(&["--bare", "--columns=addresses", "list", "Address_Set", &set]), "10.0.0.11 10.0.0.12");

    // A changed port list: the same ACL row, updated in place.
    let mut ingress2 = ingress.clone();
    ingress2.ingress.as_mut().unwrap()[0].ports = Some(serde_json::from_value(json!([{"port": 443}])).unwrap());
    apply(&nb, &w2, &[PolicyItem { policy: a, spec: Some(&ingress2), switches: &red }]).await;
    assert_eq!(ovn.nbctl(&["--bare", "--columns=_uuid", "find", "ACL", "external_ids:\"kubetron.io/policy\"=\"team/a\""]), acl_uuid);
    assert!(ovn.nbctl(&["get", "ACL", &acl_uuid, "match"]).contains("tcp.dst == 443"));

    // A second policy on red, egress for the clients: the deny groups are shared.
    let egress: PolicySpec = serde_json::from_value(json!({
        "podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.13/32"]}}]}]
    }))
    .unwrap();
    let b = PolicyRef { namespace: "team", name: "b", uid: "uid-b" };
    apply(&nb, &w2, &[PolicyItem { policy: b, spec: Some(&egress), switches: &red }]).await;
    assert_eq!(ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", &deny_out]).split_whitespace().count(), 2);
    assert_eq!(ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", &deny_in]).split_whitespace().count(), 1);

    // northd turned each of our ACLs into logical flows.
    ovn.nbctl(&["--wait=sb", "sync"]);
    let flows = |stage: &str| {
        ovn.central.sbctl(&["--bare", "--columns=match", "find", "Logical_Flow", &format!("external_ids:stage-name={stage}")]).unwrap()
    };
    let (sb, sb_in) = (flows("ls_out_acl"), flows("ls_in_acl"));
    assert!(sb.contains(&format!("ip4.src == ${set}")), "ingress allow in SB: {sb}");
    assert!(sb.contains(&format!("outport == @{deny_in}")), "ingress deny in SB");
    assert!(sb_in.contains("ip4.dst == 10.0.0.0/24 && ip4.dst != {10.0.0.13/32}"), "egress allow in SB: {sb_in}");

    // A name kubetron does not own is refused, and left alone.
    let c = PolicyRef { namespace: "team", name: "c", uid: "uid-c" };
    let c_pg = policy::port_group_name("team/c", "red");
    ovn.nbctl(&["pg-add", &c_pg]);
    nb.replica().wait_until(WAIT, |s| NbView(s.clone()).snapshot().find_one("Port_Group", "name", c_pg.as_str()).is_some()).await.unwrap();
    match plan_policies(&nb.view(), &w2, &[PolicyItem { policy: c, spec: Some(&ingress), switches: &red }], Mode::AddressSets) {
        Err(PolicyPlanError::NameTaken { table: "Port_Group", name, .. }) => assert_eq!(name, c_pg),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    ovn.nbctl(&["pg-del", &c_pg]);

    // Policy a is deleted while nobody watched: it is found as an orphan, and removed.
    let live: HashSet<String> = ["team/b".to_string()].into();
    let orphans = orphaned_policies(&nb.view(), &live);
    assert_eq!(orphans.into_iter().collect::<Vec<_>>(), ["team/a"]);
    apply(&nb, &w2, &[PolicyItem { policy: a, spec: None, switches: &[] }]).await;
    assert_eq!(count(&ovn, "Port_Group", "external_ids:\"kubetron.io/policy\"=\"team/a\""), 0);
    assert_eq!(count(&ovn, "Address_Set", "external_ids:\"kubetron.io/policy\"=\"team/a\""), 0);
    assert_eq!(count(&ovn, "ACL", "external_ids:\"kubetron.io/policy\"=\"team/a\""), 0, "ACLs go with their group");
    assert_eq!(ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", &deny_in]), "", "nothing isolated for ingress any more");

    // b leaves red (policy-for changed to blue only): red's rows go, deny groups too.
    let blue = vec!["blue".to_string()];
    apply(&nb, &w2, &[PolicyItem { policy: b, spec: Some(&egress), switches: &blue }]).await;
    assert_eq!(count(&ovn, "Port_Group", "external_ids:\"kubetron.io/logical-switch\"=red"), 0);
    assert_eq!(count(&ovn, "Port_Group", "external_ids:\"kubetron.io/logical-switch\"=blue"), 3, "b's group and blue's deny groups");
    apply(&nb, &w2, &[PolicyItem { policy: b, spec: None, switches: &[] }]).await;
    assert_eq!(ours(&ovn), 0, "no ACL, Port_Group or Address_Set of kubetron left");
    // The admin's rows are untouched.
    assert_eq!(count(&ovn, "Port_Group", "name=admin_pg"), 1);
    assert_eq!(ovn.nbctl(&["--bare", "--columns=match", "list", "ACL"]), "outport == @admin_pg && tcp.dst == 22");
}

/// The world the policy runner builds from pods and the replica: a pod's own ports, and a VM's
/// persistent-IP port (no pod UID on it) for every living launcher pod of that VM (both during a
/// live migration); not for a finished or terminating launcher, another VM, or a port of another
/// VMI UID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_world_gives_launcher_pods_their_vms_persistent_ip_ports() {
    use k8s::controller::policy_runner::build_world;
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use std::sync::Arc;

    let ovn = Ovn::start();
    ovn.plain_switch("red");
    lsp(&ovn, "red", "team_web_red", "10.0.0.10");
    ovn.nbctl(&["set", "Logical_Switch_Port", "team_web_red", "external_ids:\"kubetron.io/pod-uid\"=u-web"]);
    for (port, ip, vm, vmi) in [
        ("claim_vm1", "10.0.0.20", "team/vm1", "vmi-1"),
        ("claim_vm2", "10.0.0.21", "team/vm2", "vmi-1"),
        ("claim_old", "10.0.0.22", "team/vm1", "vmi-0"),
    ] {
        lsp(&ovn, "red", port, ip);
        ovn.nbctl(&[
            "set",
            "Logical_Switch_Port",
            port,
            &format!("external_ids:\"kubetron.io/vm\"=\"{vm}\""),
            &format!("external_ids:\"kubetron.io/vmi-uid\"={vmi}"),
        ]);
    }
    let nb = ovn.nb().await;
    nb.replica().wait_until(WAIT, |s| s.rows("Logical_Switch_Port").count() == 4).await.expect("replica has the ports");

    let launcher = |name: &str, uid: &str| -> Pod {
        let mut p = controller_support::pod("team", name, uid, "red");
        p.metadata.labels = Some(
            [("kubevirt.io", "virt-launcher"), ("kubevirt.io/created-by", "vmi-1"), ("app", "vm")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p.metadata.annotations.get_or_insert_with(Default::default).insert("kubevirt.io/domain".into(), "vm1".into());
        p
    };
    let pods: Vec<Arc<Pod>> = vec![
        Arc::new(controller_support::pod("team", "web", "u-web", "red")),
        Arc::new(launcher("virt-launcher-vm1-src", "u-src")),
        Arc::new(launcher("virt-launcher-vm1-dst", "u-dst")),
        Arc::new(finished(launcher("virt-launcher-vm1-old", "u-old"))),
        Arc::new({
            let mut p = launcher("virt-launcher-vm1-going", "u-going");
            p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()));
            p
        }),
    ];
    let namespaces: Vec<Arc<Namespace>> = vec![Arc::new(serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap())];
    let world = build_world(&nb.view(), &pods, &namespaces, &["red".to_string()].into());
    let got: Vec<(String, Vec<String>)> =
        world.pods().iter().map(|p| (p.name.clone(), p.ports.iter().map(|x| format!("{} {:?}", x.lsp, x.ips)).collect())).collect();
    assert_eq!(
        got,
        [
            ("web".to_string(), vec!["team_web_red [10.0.0.10]".to_string()]),
            ("virt-launcher-vm1-src".to_string(), vec!["claim_vm1 [10.0.0.20]".to_string()]),
            ("virt-launcher-vm1-dst".to_string(), vec!["claim_vm1 [10.0.0.20]".to_string()]),
        ]
    );

    // A policy selecting the VM holds its port once; a policy with the VM as peer has its IP once.
    let spec: PolicySpec = serde_json::from_value(json!({
        "podSelector": {"matchLabels": {"app": "vm"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "vm"}}}]}]
    }))
    .unwrap();
    let red = vec!["red".to_string()];
    let a = PolicyRef { namespace: "team", name: "vm", uid: "uid-vm" };
    apply(&nb, &world, &[PolicyItem { policy: a, spec: Some(&spec), switches: &red }]).await;
    let pg = policy::port_group_name("team/vm", "red");
    assert_eq!(
        ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", &pg]),
        ovn.nbctl(&["--bare", "--columns=_uuid", "list", "Logical_Switch_Port", "claim_vm1"])
    );
    let set = ovn.nbctl(&["--bare", "--columns=name", "find", "Address_Set", "external_ids:\"kubetron.io/policy\"=\"team/vm\""]);
    assert_eq!(ovn.nbctl(&["--bare", "--columns=addresses", "list", "Address_Set", &set]), "10.0.0.20");
}

/// A pod a policy selects is isolated from the moment its port exists: the port is made in the
/// same transaction that puts it into the policy's group and the switch's default-deny group
/// (`StorePolicies` over the reflected policies and NADs), before the policy runner ever sees it.
/// A pod the policy does not select joins nothing; the policy runner then finds nothing to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_ports_join_their_policy_groups_in_their_own_transaction() {
    use k8s::controller::policy_runner::StorePolicies;
    use k8s::mnp::{new_policy, MultiNetworkPolicy};
    use k8s::nad::NetworkAttachmentDefinition;
    use kube::runtime::{reflector, watcher};
    use std::sync::Arc;

    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let spec: PolicySpec = serde_json::from_value(json!({
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]
    }))
    .unwrap();
    let (policies, mut pw) = reflector::store::<MultiNetworkPolicy>();
    let mut p = new_policy("ns1", "iso", "red", spec.clone());
    p.metadata.uid = Some("uid-iso".into());
    pw.apply_watcher_event(&watcher::Event::Apply(p));
    // Another namespace's policy selecting the same labels: not this pod's business.
    pw.apply_watcher_event(&watcher::Event::Apply(new_policy("ns2", "other", "ns1/red", spec.clone())));
    let (nads_store, mut nw) = reflector::store::<NetworkAttachmentDefinition>();
    for (name, switch) in [("red", "red"), ("blue", "blue")] {
        let config = format!(r#"{{"cniVersion":"1.0.0","type":"kubetron","logical_switch":"{switch}"}}"#);
        nw.apply_watcher_event(&watcher::Event::Apply(k8s::nad::new_nad("ns1", name, &config, &[])));
    }

    // The policy's rows exist (no pod selected yet).
    let red = vec!["red".to_string()];
    let iso = PolicyRef { namespace: "ns1", name: "iso", uid: "uid-iso" };
    apply(
        &nb,
        &World::new([("ns1".to_string(), BTreeMap::new())], vec![]),
        &[PolicyItem { policy: iso, spec: Some(&spec), switches: &red }],
    )
    .await;
    let pg = policy::port_group_name("ns1/iso", "red");
    let (deny_in, deny_out) = policy::deny_group_names("red");
    let members = |group: &str| ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", group]);
    assert_eq!(members(&pg), "");

    let ctl = controller(&nb).with_policies(Arc::new(StorePolicies { policies, nads: nads_store }));
    let labelled = |name: &str, uid: &str, app: &str| {
        let mut pod = controller_support::pod("ns1", name, uid, "red, blue");
        pod.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        pod
    };
    let web = labelled("web", "uid-web", "web");
    let done = ctl.reconcile_pod(&web).await.expect("reconcile web");
    assert_eq!(done.desired.iter().find(|d| d.switch_name == "red").unwrap().policy_groups, [deny_in.clone(), pg.clone()]);
    assert!(done.desired.iter().find(|d| d.switch_name == "blue").unwrap().policy_groups.is_empty(), "blue is not in policy-for");
    let port = ovn.nbctl(&["--bare", "--columns=_uuid", "list", "Logical_Switch_Port", &model::names::pod_port("ns1", "web", "net1")]);
    assert_eq!(members(&pg), port, "in the policy's group");
    assert_eq!(members(&deny_in), port, "isolated for ingress");
    assert_eq!(members(&deny_out), "", "not for egress");
    let client = labelled("client", "uid-client", "client");
    ctl.reconcile_pod(&client).await.expect("reconcile client");
    assert_eq!(members(&pg), port, "a pod the policy does not select joins nothing");

    // The policy runner's plan with both pods holds the same membership (its sets get the client).
    let world = World::new(
        [("ns1".to_string(), BTreeMap::new())],
        vec![
            PodView {
                namespace: "ns1".into(),
                name: "web".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                container_ports: vec![],
                ports: vec![PortView { switch: "red".into(), lsp: model::names::pod_port("ns1", "web", "net1"), ips: vec![] }],
            },
            PodView {
                namespace: "ns1".into(),
                name: "client".into(),
                labels: [("app".to_string(), "client".to_string())].into(),
                container_ports: vec![],
                ports: vec![PortView {
                    switch: "red".into(),
                    lsp: model::names::pod_port("ns1", "client", "net1"),
                    ips: vec!["10.20.0.9".parse().unwrap()],
                }],
            },
        ],
    );
    let plan =
        plan_policies(&nb.view(), &world, &[PolicyItem { policy: iso, spec: Some(&spec), switches: &red }], Mode::AddressSets).unwrap();
    let writes_ports = |op: &ovsdb::Operation| {
        let d = format!("{op:?}");
        (d.starts_with("Update") || d.starts_with("Mutate"))
            && d.contains("table: \"Port_Group\"")
            && (d.contains("(\"ports\"") || d.contains("column: \"ports\""))
    };
    assert!(plan.ops.iter().any(|op| format!("{op:?}").starts_with("Insert { table: \"Address_Set\"")), "the client's set: {:?}", plan.ops);
    assert!(!plan.ops.iter().any(writes_ports), "no group membership to change: {:?}", plan.ops);
}
