//! The controller's garbage collection of ports the real `kubetron` CNI plugin made (issue 14):
//! pods force-deleted without a successful DEL, and a pod re-created under the same name with a
//! new UID, lose their logical switch ports (and so their addresses) once seen orphaned in two
//! passes; the port of a live pod and a port made without a pod identity are kept.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s::controller::{Controller, NadMap, Nb};
use serde_json::json;
use support::{result_ip, Pod, World};

fn args(pod: &str, uid: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME={pod};K8S_POD_UID={uid}")
}

#[test]
fn controller_gc_removes_cni_ports_of_gone_pods_and_releases_their_addresses() {
    let w = World::new(1);
    w.network("red", Some("10.63.0.0/24"));
    let conf = w.conf("red", 0);
    let (live, gone, old, bare) = (Pod::new(), Pod::new(), Pod::new(), Pod::new());
    let mut gone_ip = String::new();
    for (p, a) in [
        (&live, Some(args("live", "uid-live"))),
        (&gone, Some(args("gone", "uid-gone"))),
        (&old, Some(args("web", "uid-web-1"))),
        (&bare, None),
    ] {
        let o = p.cni(&w, 0, "ADD", "net1", &conf, a.as_deref());
        assert_eq!(o.exit_code, 0, "{o:?}");
        if std::ptr::eq(p, &gone) {
            gone_ip = result_ip(&o);
        }
    }
    let bare_port = format!("cni_{}_net1", bare.id);
    let mut all = vec!["ns1_gone_net1".to_string(), "ns1_live_net1".to_string(), "ns1_web_net1".to_string(), bare_port.clone()];
    all.sort();
    let mut lsps = w.lsps();
    lsps.sort();
    assert_eq!(lsps, all);

    // While the gone pod's port exists, its address is taken.
    let newcomer = Pod::new();
    let mut want_gone_ip = conf.clone();
    want_gone_ip["runtimeConfig"] = json!({"ips": [format!("{gone_ip}/24")]});
    let o = newcomer.cni(&w, 0, "ADD", "net1", &want_gone_ip, Some(&args("newcomer", "uid-new")));
    assert_eq!(o.json["code"], 7, "{o:?}");
    assert!(o.json["msg"].as_str().unwrap_or("").contains("ns1/gone"), "{o:?}");

    // Pods gone and web were force-deleted (no DEL); web came back with a new UID whose sandbox is
    // not up yet. The controller's pod list: live, web (new UID), newcomer.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let removed = rt.block_on(async {
        let client = ovsdb::Client::connect_to(&w.central.nb_remote()).await.expect("connect NB");
        let nb = Nb::start(client).await.expect("NB replica");
        let ctl = Controller::new(nb.clone(), Arc::new(NadMap::default())).with_gc_grace(Duration::ZERO);
        let pods: HashSet<String> = ["uid-live", "uid-web-2", "uid-new"].iter().map(|s| s.to_string()).collect();
        assert!(ctl.gc(&pods).await.unwrap().is_empty(), "CNI-made ports are not removed on first sight");
        let mut removed: Vec<String> = ctl.gc(&pods).await.unwrap().into_iter().map(|o| o.name).collect();
        removed.sort();
        removed
    });
    assert_eq!(removed, vec!["ns1_gone_net1", "ns1_web_net1"]);
    let mut lsps = w.lsps();
    lsps.sort();
    let mut kept = vec!["ns1_live_net1".to_string(), bare_port];
    kept.sort();
    assert_eq!(lsps, kept);

    // The gone pod's address is free again.
    let o = newcomer.cni(&w, 0, "ADD", "net1", &want_gone_ip, Some(&args("newcomer", "uid-new")));
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(result_ip(&o), gone_ip);
}
