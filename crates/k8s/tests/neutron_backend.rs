//! The neutron backend ([`k8s::controller::neutron::NeutronBackend`]) in-process against a real
//! neutron-server (daemons::neutron: Debian's, ML2/OVN, noauth, private PostgreSQL, a real OVN
//! with one chassis), where the runner's retries are a loop here.
//!
//! Checks: twice 20 pods reconciled at once while neutron-server restarts in the middle (every
//! request alone, then lookups and creates coalesced into bulk requests) all end with exactly one
//! port each (nothing lost, nothing duplicated); a reconcile raced by the pod's
//! deletion leaves no port once garbage collection has run (second sighting); reconciling again is
//! a no-op (no new port); the hand-off names each pod's own port; a namespace's project and allowed
//! security groups apply (a group it does not allow refuses the pod; a finished pod's port goes).
//!
//! Ignored without `KUBETRON_NEUTRON_TESTS=1` (scripts/test.sh sets it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemons::neutron::Deployment;
use futures::StreamExt;
use k8s::controller::neutron::{
    NeutronBackend, NeutronSettings, ALLOWED_SECURITY_GROUPS_ANNOTATION, PROJECT_ANNOTATION, SECURITY_GROUPS_ANNOTATION,
};
use k8s::controller::{Backend, NadMap, PodError, PodRef, Report};
use k8s::nad::new_nad;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

fn pod(name: &str, uid: &str, node: &str) -> Pod {
    pod_in("team-a", name, uid, node, json!({}))
}

/// A pod of `namespace` asking for `red`, with more `annotations`.
fn pod_in(namespace: &str, name: &str, uid: &str, node: &str, annotations: serde_json::Value) -> Pod {
    let mut a = json!({"k8s.v1.cni.cncf.io/networks": "red"});
    a.as_object_mut().unwrap().extend(annotations.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "metadata": {"namespace": namespace, "name": name, "uid": uid, "annotations": a},
        "spec": {"nodeName": node, "containers": []}
    }))
    .unwrap()
}

/// Reconciles `p` until it succeeds, retrying transient failures as the runner does (bounded).
async fn reconciled(b: &NeutronBackend, p: &Pod) -> Report {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match b.reconcile(p).await {
            Ok(r) => return r,
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                eprintln!("{}: {e}; again", p.metadata.name.as_deref().unwrap_or(""));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("reconcile: {e}"),
        }
    }
}

#[cfg_attr(not(neutron_tests), ignore = "needs KUBETRON_NEUTRON_TESTS=1 (scripts/test.sh sets it)")]
#[test]
fn neutron_backend_survives_restarts_and_races() {
    daemons::neutron::require("neutron_backend_survives_restarts_and_races");
    let tmp = tempfile::tempdir().unwrap();
    let ns = format!("ktnb{}", std::process::id() % 100000);
    let node = "nb-node1";
    let mut world = Deployment::start(tmp.path(), node, &ns, None).expect("OVN, PostgreSQL and neutron-server");
    let url = world.stack.server.url();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = neutron::Client::new(neutron::ClientConfig::new(&url)).unwrap();
    let net = rt.block_on(async {
        let net = client.create_network("red", json!({})).await.unwrap();
        client.create_subnet(&net.id, "10.88.0.0/24", json!({})).await.unwrap();
        net
    });
    let mut nads = NadMap::default();
    let conf = json!({"cniVersion": "1.0.0", "type": "kubetron", "name": "red", "network_id": net.id});
    nads.insert(new_nad("team-a", "red", &conf.to_string(), &[]));
    nads.insert(new_nad("team-b", "red", &conf.to_string(), &[]));
    let (_, leader) = tokio::sync::watch::channel(true);
    let mut settings = NeutronSettings::new(Arc::from(vec![7u8; 32]));
    settings.gc_grace = Duration::ZERO;
    let nads = Arc::new(nads);
    // Phase 1 with every request alone, phase 2 with lookups and creates coalesced (bulk POSTs).
    let single =
        neutron::Client::new(neutron::ClientConfig { coalesce_window: Duration::ZERO, ..neutron::ClientConfig::new(&url) }).unwrap();
    let backends = [single, client.clone()].map(|c| Arc::new(NeutronBackend::new(c, nads.clone(), leader.clone(), settings.clone())));
    let backend = backends[1].clone();

    let mut pods: Vec<Pod> = Vec::new();
    let mut reports: Vec<Report> = Vec::new();
    for (phase, b) in backends.iter().enumerate() {
        // 20 pods at once; neutron-server restarts while they are being set up: once the first
        // ports exist (phase 1), or while the first bulk create is in flight (phase 2).
        let batch: Vec<Pod> = (0..20).map(|i| pod(&format!("p{phase}-{i}"), &format!("uid-{phase}-{i}"), node)).collect();
        let had = rt.block_on(client.owned_ports()).unwrap().len();
        let work = {
            let (b, batch) = (b.clone(), batch.clone());
            rt.spawn(async move {
                futures::stream::iter(batch)
                    .map(|p| {
                        let b = b.clone();
                        async move { reconciled(&b, &p).await }
                    })
                    .buffer_unordered(64)
                    .collect::<Vec<Report>>()
                    .await
            })
        };
        let before = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(60);
            if phase == 1 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return client.owned_ports().await.map_or(0, |p| p.len()) - had;
            }
            loop {
                let n = client.owned_ports().await.map_or(0, |p| p.len()) - had;
                if n >= 3 {
                    return n;
                }
                assert!(Instant::now() < deadline, "the first ports within 60 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let old_pid = world.stack.server.pid();
        world.stack.server.restart(Duration::from_secs(120)).expect("restart neutron-server");
        assert_ne!(world.stack.server.pid(), old_pid, "a new server");
        assert!(!work.is_finished() && before < 20, "phase {phase}: the restart came while pods were being set up ({before} ports)");
        world.wait_agent_alive(Duration::from_secs(90)).expect("the chassis alive again");
        reports.extend(rt.block_on(work).expect("reconciles"));
        pods.extend(batch);
    }
    rt.block_on(async {
        let owned = client.owned_ports().await.unwrap();
        let mut per_pod: HashMap<&str, usize> = HashMap::new();
        for p in &owned {
            *per_pod.entry(p.device_id.as_str()).or_default() += 1;
        }
        for p in &pods {
            let uid = p.metadata.uid.as_deref().unwrap();
            assert_eq!(per_pod.get(uid), Some(&1), "exactly one port for pod {uid}: {owned:?}");
        }
        assert_eq!(owned.len(), 40, "nothing else");
        for r in &reports {
            let h = r.status.interfaces.as_ref().expect("hand-off");
            let port = owned.iter().find(|p| p.id == h.interfaces[0].logical_port).expect("the handed-over port exists");
            assert_eq!(port.device_id, r.pod.uid);
            assert!(h.interfaces[0].signed_by(&[7u8; 32], &r.pod.uid));
        }
        // Reconciling again makes nothing.
        let again = reconciled(&backend, &pods[0]).await;
        assert!(again.created.is_none(), "{:?}", again.created);
        assert_eq!(client.owned_ports().await.unwrap().len(), 40);

        // A pod deleted while its port is being made: whichever finishes last, GC leaves nothing.
        let racer = pod("racer", "uid-racer", node);
        let pr = PodRef::of(&racer).unwrap();
        let (made, deleted) = tokio::join!(backend.reconcile(&racer), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            backend.delete_pod(&pr).await
        });
        made.expect("reconcile of the racer");
        deleted.expect("delete of the racer");
        let live: HashSet<String> = pods.iter().map(|p| p.metadata.uid.clone().unwrap()).collect();
        for _ in 0..2 {
            backend.gc(&live, None).await.expect("gc");
        }
        assert!(client.ports_of_device("uid-racer").await.unwrap().is_empty(), "the racer's port is gone");
        assert_eq!(client.owned_ports().await.unwrap().len(), 40, "the live pods' ports stay");

        // team-b's ports go to its project; its pods may name the security groups it allows.
        let web = client.create_security_group("web", Some("proj-b")).await.expect("group web");
        client.create_security_group("db", Some("proj-b")).await.expect("group db");
        let team_b: HashMap<String, BTreeMap<String, String>> = HashMap::from([(
            "team-b".to_string(),
            BTreeMap::from([
                (PROJECT_ANNOTATION.to_string(), "proj-b".to_string()),
                (ALLOWED_SECURITY_GROUPS_ANNOTATION.to_string(), "web".to_string()),
            ]),
        )]);
        let b = NeutronBackend::new(client.clone(), nads.clone(), leader.clone(), settings.clone()).with_namespaces(Arc::new(team_b));
        let plain = pod_in("team-b", "plain", "uid-b-plain", node, json!({}));
        reconciled(&b, &plain).await;
        let port = &client.ports_of_device("uid-b-plain").await.unwrap()[0];
        assert_eq!(port.project_id.as_deref(), Some("proj-b"), "{port:?}");
        assert_eq!(port.security_groups.len(), 1, "the project's default group: {port:?}");
        assert_ne!(port.security_groups[0], web.id);
        let webbed = pod_in("team-b", "webbed", "uid-b-web", node, json!({SECURITY_GROUPS_ANNOTATION: r#"{"net1": ["web"]}"#}));
        reconciled(&b, &webbed).await;
        assert_eq!(client.ports_of_device("uid-b-web").await.unwrap()[0].security_groups, [web.id.as_str()]);
        // Finished: its port goes (its groups are not looked at again).
        let mut done = webbed.clone();
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        reconciled(&b, &done).await;
        assert!(client.ports_of_device("uid-b-web").await.unwrap().is_empty(), "a finished pod's port goes");
        let dbbed = pod_in("team-b", "dbbed", "uid-b-db", node, json!({SECURITY_GROUPS_ANNOTATION: r#"{"net1": ["db"]}"#}));
        match b.reconcile(&dbbed).await {
            Err(e @ PodError::SecurityGroupNotAllowed { .. }) => assert_eq!(e.reason(), "SecurityGroupNotAllowed"),
            other => panic!("{other:?}"),
        }
        assert!(client.ports_of_device("uid-b-db").await.unwrap().is_empty(), "no port for a refused pod");
        for uid in ["uid-b-plain", "uid-b-web"] {
            b.delete_pod(&PodRef { namespace: "team-b".into(), name: String::new(), uid: uid.into() }).await.unwrap();
        }

        // Not the leader: nothing is written.
        let (_, follower) = tokio::sync::watch::channel(false);
        let idle = NeutronBackend::new(client.clone(), nads.clone(), follower, NeutronSettings::new(Arc::from(vec![7u8; 32])));
        assert!(matches!(idle.reconcile(&pod("x", "uid-x", node)).await, Err(PodError::NotLeader)));
        assert!(client.ports_of_device("uid-x").await.unwrap().is_empty());
        assert!(matches!(idle.gc(&HashSet::new(), None).await, Err(PodError::NotLeader)));
    });
    world.stack.stop().expect("stop neutron-server and PostgreSQL");
}
