//! The node agent against a real Open_vSwitch ovsdb-server and a fake kubelet.

mod common;

use std::time::Duration;

use common::{eventually, init_tracing, plugin_client, FakeKubelet, OvsDb};
use futures::StreamExt;
use node::proto::{AllocateRequest, ContainerAllocateRequest, Empty, PreferredAllocationRequest};
use node::NodeConfig;
use tokio_util::sync::CancellationToken;

const CAPACITY: usize = 4;
const R1: &str = "kubetron.io/physnet1";
const R2: &str = "kubetron.io/physnet2";

fn config(db: &OvsDb, dir: &std::path::Path) -> NodeConfig {
    NodeConfig::default()
        .ovs_remote(db.remote())
        .device_plugin_dir(dir)
        .capacity(CAPACITY)
        .poll_interval(Duration::from_millis(100))
        .register_timeout(Duration::from_secs(2))
}

fn allocate_one(id: &str) -> AllocateRequest {
    AllocateRequest { container_requests: vec![ContainerAllocateRequest { devices_ids: vec![id.to_string()] }] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertises_mapped_networks_and_follows_changes_and_kubelet_restarts() {
    init_tracing();
    let db = OvsDb::start("physnet1:br-ex");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("device-plugins");
    let kubelet = FakeKubelet::start(&dir);
    let stop = CancellationToken::new();
    let agent = tokio::spawn(node::run_until(config(&db, &dir), stop.clone()));

    // Registration of the one mapped network; kubelet sees its devices, all Healthy.
    let v = kubelet.wait("physnet1 registered and listed", |v| v.devices_are(R1, CAPACITY, "Healthy")).await;
    let reg = v.registrations.iter().find(|r| r.resource_name == R1).unwrap();
    assert_eq!(reg.version, "v1beta1");
    assert_eq!(reg.endpoint, "kubetron-physnet1.sock");
    assert!(reg.options.as_ref().is_some_and(|o| !o.pre_start_required && o.get_preferred_allocation_available));
    assert_eq!(v.registered(R2), 0, "physnet2 is not mapped yet");

    // kubelet's calls on the plugin socket.
    let sock1 = dir.join("kubetron-physnet1.sock");
    let mut c1 = plugin_client(&sock1).await;
    let opts = c1.get_device_plugin_options(Empty {}).await.unwrap().into_inner();
    assert!(!opts.pre_start_required);
    let mut watch1 = c1.list_and_watch(Empty {}).await.unwrap().into_inner();
    let first = watch1.next().await.unwrap().unwrap();
    let ids: Vec<&str> = first.devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["physnet1-0", "physnet1-1", "physnet1-2", "physnet1-3"]);
    assert!(first.devices.iter().all(|d| d.health == "Healthy"));
    let alloc = c1.allocate(allocate_one("physnet1-2")).await.unwrap().into_inner();
    assert_eq!(alloc.container_responses.len(), 1);
    assert_eq!(alloc.container_responses[0].envs.get("KUBETRON_PHYSNET_PHYSNET1").map(String::as_str), Some("br-ex"));
    let err = c1.allocate(allocate_one("physnet1-9")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let pref = c1
        .get_preferred_allocation(PreferredAllocationRequest {
            container_requests: vec![node::proto::ContainerPreferredAllocationRequest {
                available_device_ids: vec!["physnet1-3".into(), "physnet1-1".into()],
                must_include_device_ids: vec![],
                allocation_size: 1,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pref.container_responses[0].device_ids, ["physnet1-1"]);

    // A second network is mapped: its resource registers.
    db.set_mappings("physnet1:br-ex,physnet2:br-vlan");
    kubelet.wait("physnet2 registered and listed", |v| v.devices_are(R2, CAPACITY, "Healthy")).await;
    let mut c2 = plugin_client(&dir.join("kubetron-physnet2.sock")).await;
    let alloc = c2.allocate(allocate_one("physnet2-0")).await.unwrap().into_inner();
    assert_eq!(alloc.container_responses[0].envs["KUBETRON_PHYSNET_PHYSNET2"], "br-vlan");
    assert_eq!(kubelet.view().registered(R1), 1, "physnet1 is not registered twice");

    // A bridge change reaches later allocations.
    db.set_mappings("physnet1:br-ex2,physnet2:br-vlan");
    let mut ok = false;
    for _ in 0..150 {
        let a = c1.allocate(allocate_one("physnet1-0")).await.unwrap().into_inner();
        if a.container_responses[0].envs["KUBETRON_PHYSNET_PHYSNET1"] == "br-ex2" {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "allocation did not follow the bridge change");

    // physnet1 is unmapped: devices reported Unhealthy, streams end, socket removed.
    db.set_mappings("physnet2:br-vlan");
    let last = tokio::time::timeout(common::WAIT, watch1.next()).await.expect("stream update").unwrap().unwrap();
    assert!(last.devices.iter().all(|d| d.health == "Unhealthy"), "{last:?}");
    let end = tokio::time::timeout(common::WAIT, watch1.next()).await.expect("stream end");
    assert!(end.is_none(), "stream should end, got {end:?}");
    kubelet.wait("kubelet sees physnet1 withdrawn", |v| v.ended.contains(R1) && v.devices_are(R1, CAPACITY, "Unhealthy")).await;
    eventually("physnet1 socket removed", || !sock1.exists()).await;
    assert!(!kubelet.view().ended.contains(R2), "physnet2 is untouched");

    // kubelet restarts (new kubelet.sock): the remaining plugin registers again.
    let kubelet = kubelet.restart(false).await;
    let v = kubelet.wait("physnet2 registered with the new kubelet", |v| v.devices_are(R2, CAPACITY, "Healthy")).await;
    assert_eq!(v.registered(R1), 0);

    // A kubelet restart that deletes plugin sockets, as the real one does: served anew, registered.
    let kubelet = kubelet.restart(true).await;
    kubelet.wait("physnet2 registered after socket wipe", |v| v.devices_are(R2, CAPACITY, "Healthy")).await;
    let sock2 = dir.join("kubetron-physnet2.sock");
    assert!(sock2.exists());
    let mut c2 = plugin_client(&sock2).await;
    let alloc = c2.allocate(allocate_one("physnet2-3")).await.unwrap().into_inner();
    assert_eq!(alloc.container_responses[0].envs["KUBETRON_PHYSNET_PHYSNET2"], "br-vlan");

    // Shutdown: the agent returns, kubelet sees the devices go, sockets are removed.
    stop.cancel();
    tokio::time::timeout(common::WAIT, agent).await.expect("agent stops").unwrap().expect("agent result");
    kubelet.wait("physnet2 withdrawn at shutdown", |v| v.ended.contains(R2)).await;
    assert!(!sock2.exists());
    kubelet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_kubelet_and_survives_ovsdb_restart() {
    init_tracing();
    let mut db = OvsDb::start("physnet1:br-ex");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("device-plugins");
    let stop = CancellationToken::new();
    let agent = tokio::spawn(node::run_until(config(&db, &dir), stop.clone()));

    // No kubelet yet: the plugin serves anyway and registers once kubelet.sock appears.
    let sock1 = dir.join("kubetron-physnet1.sock");
    eventually("plugin socket created without kubelet", || sock1.exists()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A dead kubelet's socket (nobody listening): registration fails and is retried.
    drop(std::os::unix::net::UnixListener::bind(dir.join("kubelet.sock")).unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sock1.exists());
    let kubelet = FakeKubelet::start(&dir);
    kubelet.wait("registered once kubelet appears", |v| v.devices_are(R1, CAPACITY, "Healthy")).await;

    // The database restarts: the resource stays, and later changes are still followed.
    db.server.restart().expect("restart ovsdb-server");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!kubelet.view().ended.contains(R1), "resource withdrawn by a database restart");
    db.set_mappings("physnet1:br-ex,physnet2:br-vlan");
    kubelet.wait("physnet2 registered after database restart", |v| v.devices_are(R2, CAPACITY, "Healthy")).await;
    assert_eq!(kubelet.view().registered(R1), 1);

    stop.cancel();
    tokio::time::timeout(common::WAIT, agent).await.expect("agent stops").unwrap().expect("agent result");
    assert!(!sock1.exists());
    assert!(!dir.join("kubetron-physnet2.sock").exists());
    kubelet.stop().await;
}

#[tokio::test]
async fn rejects_bad_configuration() {
    let err = node::run_until(NodeConfig::default().capacity(0), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, node::Error::Config(_)), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = NodeConfig::default().ovs_remote("bogus:x").device_plugin_dir(tmp.path());
    let err = tokio::time::timeout(common::WAIT, node::run_until(cfg, CancellationToken::new())).await.expect("fails fast");
    assert!(matches!(err, Err(node::Error::Ovsdb(_))), "a remote of unknown kind must fail: {err:?}");
}
