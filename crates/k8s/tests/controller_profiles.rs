//! Security profiles against a real OVN Northbound database: an administrator's Port_Group offered
//! to namespaces (`external_ids:kubetron.io/namespaces`) that a pod's network element names
//! (`kubetron.io/security-profile`) gets the pod's port, in the port's own transaction; a profile
//! not offered to the pod's namespace, or missing, refuses the pod and writes nothing; asking for
//! no profile (or another) takes the port out; the administrator's other ports and ACLs are never
//! touched; a deleted pod's port leaves the group with the port.

mod controller_support;

use controller_support::*;
use k8s::controller::{PodError, PodRef};

fn members(ovn: &Ovn, pg: &str) -> Vec<String> {
    let uuids = ovn.nbctl(&["--bare", "--columns=ports", "list", "Port_Group", pg]);
    let mut names: Vec<String> =
        uuids.split_whitespace().map(|u| ovn.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port", u])).collect();
    names.sort();
    names
}

fn asking(profile: Option<&str>) -> String {
    match profile {
        Some(p) => format!(r#"[{{"name":"blue","kubetron.io/security-profile":"{p}"}}]"#),
        None => r#"[{"name":"blue"}]"#.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_profiles_take_and_release_only_the_pods_port() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    // The administrator's groups: web (offered to ns1, with an ACL and a port of their own), db
    // (offered to another namespace), plain (not offered at all).
    ovn.nbctl(&["lsp-add", "blue", "admin_port"]);
    ovn.nbctl(&["pg-add", "web", "admin_port"]);
    ovn.nbctl(&["set", "Port_Group", "web", "external_ids:\"kubetron.io/namespaces\"=\"ns1, ns2\""]);
    ovn.nbctl(&["acl-add", "web", "to-lport", "2000", "outport == @web && tcp.dst == 22", "drop"]);
    ovn.nbctl(&["pg-add", "db"]);
    ovn.nbctl(&["set", "Port_Group", "db", "external_ids:\"kubetron.io/namespaces\"=other"]);
    ovn.nbctl(&["pg-add", "plain"]);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let uid = "uid-p";
    let at = |profile: Option<&str>| pod("ns1", "p", uid, &asking(profile));
    let wait_members = |pg: &'static str, want: Vec<&'static str>| {
        let ovn = &ovn;
        async move {
            for _ in 0..100 {
                if members(ovn, pg) == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("{pg}: {:?}, want {want:?}", members(ovn, pg));
        }
    };

    // Joins web with its new port, in the port's transaction.
    let t0 = nb.transactions();
    ctl.reconcile_pod(&at(Some("web"))).await.expect("reconcile with profile web");
    assert_eq!(nb.transactions() - t0, 1, "port and membership in one transaction");
    wait_members("web", vec!["admin_port", "ns1_p_net1"]).await;

    // Again: nothing to write.
    let r = ctl.reconcile_pod(&at(Some("web"))).await.expect("again");
    assert!(r.changes.updated.is_empty() && r.changes.created.is_empty(), "{:?}", r.changes);

    // Not offered to ns1, or missing: refused, nothing changes.
    match ctl.reconcile_pod(&at(Some("db"))).await {
        Err(e @ PodError::SecurityProfileNotOffered { .. }) => {
            assert_eq!(e.reason(), "SecurityProfileNotOffered");
            assert!(e.to_string().contains("not offered to namespace ns1"), "{e}");
        }
        other => panic!("expected SecurityProfileNotOffered, got {other:?}"),
    }
    for missing in ["plain", "nope"] {
        match ctl.reconcile_pod(&at(Some(missing))).await {
            Err(e @ PodError::SecurityProfileNotFound { .. }) => assert_eq!(e.reason(), "SecurityProfileNotFound"),
            other => panic!("expected SecurityProfileNotFound for {missing}, got {other:?}"),
        }
    }
    assert_eq!(members(&ovn, "web"), ["admin_port", "ns1_p_net1"]);
    assert!(members(&ovn, "db").is_empty());

    // No profile: the port leaves web; the administrator's port and ACL stay.
    ctl.reconcile_pod(&at(None)).await.expect("reconcile without profile");
    wait_members("web", vec!["admin_port"]).await;
    assert_eq!(ovn.nbctl(&["--bare", "--columns=match", "list", "ACL"]), "outport == @web && tcp.dst == 22");

    // Back in, then the pod is deleted: its port leaves with the port.
    ctl.reconcile_pod(&at(Some("web"))).await.expect("rejoin");
    wait_members("web", vec!["admin_port", "ns1_p_net1"]).await;
    ctl.delete_pod(&PodRef { namespace: "ns1".into(), name: "p".into(), uid: uid.into() }).await.expect("delete");
    wait_members("web", vec!["admin_port"]).await;
    assert_eq!(ovn.nbctl(&["--bare", "--columns=name", "list", "Port_Group"]).split_whitespace().count(), 3, "no group made or removed");
}
