//! NPWG conformance (issue 8, defects 4 and 5) against a REAL kube-apiserver (one per test binary, see
//! `kube_e2e_support`):
//! - the admission webhook, called by the apiserver, follows the network selection annotation key by key
//!   (NAD names with dots, one `default-route`, no `"ips": []`, no `ips` with `ipam-claim-reference`, no
//!   capability a network cannot honour, `ipam-claim-reference` only where `"allowPersistentIPs": true`);
//! - `network-status` is written through pods/status as the deployed controller identity, merged with what
//!   other writers (Multus: `eth0`) put there, retried on a conflicting update, never onto another pod
//!   of the same name.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (else each test prints "skipped"). No kubectl needed.
//! Run: `KUBETRON_KUBE_TESTS=1 cargo test -p k8s --test kube_e2e_npwg`

mod kube_e2e_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s::status::{write_pod_annotations, WriteOutcome};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_e2e_support::*;
use model::status::{merge_network_status, NetworkStatus, NETWORK_STATUS_ANNOTATION};
use serde_json::{json, Value};

fn pod(name: &str, annotations: &[(&str, &str)]) -> Pod {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "a", "image": "example.invalid/a:1"}]}
    }))
    .expect("pod json")
}

fn networks(value: &str) -> [(&str, &str); 1] {
    [("k8s.v1.cni.cncf.io/networks", value)]
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn webhook_follows_the_npwg_selection_spec_through_the_apiserver() {
    let Some(h) = harness("webhook_follows_the_npwg_selection_spec_through_the_apiserver") else { return };
    let rt = runtime();
    let admin = rt.block_on(h.deployed_admin());
    let (webhook_rt, port, ca_pem) = h.start_webhook(&["127.0.0.1"]);

    let id = unique("npwg");
    let label = "kubetron-e2e/npwg";
    let ns = format!("{id}-a");
    let mwc_name = format!("kubetron-e2e-{id}");
    rt.block_on(async {
        create_namespace(&admin, &ns, &[(label, &id)]).await;
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        let pp = PostParams::default();
        let kt = r#"{"cniVersion":"1.0.0","type":"kubetron","capabilities":{"ips":true,"mac":true}}"#;
        // A NAD whose name has dots, as the NAD sync makes them (a valid object name: the apiserver takes it).
        nads.create(&pp, &new_nad(&ns, "red.net", kt, &[])).await.expect("a NAD name with dots is a valid object name");
        nads.create(&pp, &new_nad(&ns, "blue", kt, &[])).await.unwrap();
        // A conflist chaining the portmap plugin: portMappings can be honoured there.
        let chained = r#"{"cniVersion":"1.0.0","name":"ports","plugins":[{"type":"kubetron"},
                          {"type":"portmap","capabilities":{"portMappings":true}}]}"#;
        nads.create(&pp, &new_nad(&ns, "ports", chained, &[])).await.unwrap();
        let vms = r#"{"cniVersion":"1.0.0","name":"vms","type":"kubetron","allowPersistentIPs":true}"#;
        nads.create(&pp, &new_nad(&ns, "vms", vms, &[])).await.unwrap();
        let wh_nads: Api<NetworkAttachmentDefinition> = Api::namespaced(h.user(WEBHOOK_USER, SA_GROUPS).await, &ns);
        wait_for("the webhook identity to read NADs", Duration::from_secs(20), || async { wh_nads.get("ports").await.ok() }).await;

        let mwcs: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
        let url = format!("https://127.0.0.1:{port}/mutate");
        mwcs.create(&pp, &webhook_configuration(&mwc_name, &url, &ca_pem, label, &id)).await.expect("create webhook configuration");
        let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
        let dry = PostParams { dry_run: true, ..Default::default() };
        wait_for("the apiserver to call the webhook", Duration::from_secs(30), || async {
            match pods.create(&dry, &pod("probe", &networks("Bad"))).await {
                Err(kube::Error::Api(s)) if s.message.contains("pods.kubetron.io") => Some(()),
                _ => None,
            }
        })
        .await;

        // Dotted NAD names are admitted, in both forms, and get their env var.
        let p = pods.create(&pp, &pod("dots", &networks("red.net, blue@data0"))).await.expect("dotted NAD name admitted");
        let env = p.spec.as_ref().unwrap().containers[0].env.clone().unwrap_or_default();
        assert!(env.iter().any(|e| e.name == "NETWORK_INTERFACE_RED_NET" && e.value.as_deref() == Some("net1")), "{env:?}");
        pods.create(&pp, &pod("dots-json", &networks(r#"[{"name":"red.net","interface":"r0"}]"#))).await.expect("JSON form");

        // Malformed per the spec: the whole annotation is invalid (400), nothing stored.
        let invalid = [
            (r#"[{"name":"blue","default-route":["10.1.0.1"]},{"name":"red.net","default-route":["10.2.0.1"]}]"#, "default-route"),
            (r#"[{"name":"blue","default-route":[]},{"name":"red.net","default-route":["fd00::1"]}]"#, "default-route"),
            (r#"[{"name":"blue","ips":[]}]"#, "at least one"),
            (r#"[{"name":"blue","ips":["10.1.0.5/24"],"ipam-claim-reference":"claim-1"}]"#, "ipam-claim-reference"),
            ("red..net", "red..net"),
        ];
        for (i, (annotation, needle)) in invalid.iter().enumerate() {
            let name = format!("invalid-{i}");
            let msg = expect_code(pods.create(&pp, &pod(&name, &networks(annotation))).await, 400, annotation);
            assert!(msg.contains(r#"admission webhook "pods.kubetron.io" denied the request"#), "{msg}");
            assert!(msg.contains(needle), "{annotation}: {msg}");
            assert!(pods.get_opt(&name).await.unwrap().is_none(), "nothing stored for {annotation}");
        }
        // One default-route (empty list: the network's gateway) is fine.
        pods.create(&pp, &pod("one-route", &networks(r#"[{"name":"blue","default-route":[]},{"name":"red.net"}]"#)))
            .await
            .expect("one default-route admitted");

        // Capabilities the network cannot honour: refused (403) rather than silently ignored.
        let unhonoured = [
            (r#"[{"name":"blue","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}]"#, "portMappings"),
            (r#"[{"name":"ports","bandwidth":{"ingressRate":1000000,"ingressBurst":1000}}]"#, "bandwidth"),
            (r#"[{"name":"blue","infiniband-guid":"00:11:22:33:44:55:66:77"}]"#, "infinibandGUID"),
        ];
        for (i, (annotation, needle)) in unhonoured.iter().enumerate() {
            let name = format!("unhonoured-{i}");
            let msg = expect_code(pods.create(&pp, &pod(&name, &networks(annotation))).await, 403, annotation);
            assert!(msg.contains(needle) && msg.contains("cannot honour"), "{annotation}: {msg}");
        }
        // Persistent IPs (IPAMClaim): refused on a network whose config does not allow them, admitted
        // where it sets "allowPersistentIPs": true (as the NAD sync writes for switches with a subnet).
        let msg = expect_code(
            pods.create(&pp, &pod("claim-refused", &networks(r#"[{"name":"blue","ipam-claim-reference":"claim-1"}]"#))).await,
            403,
            "claim on blue",
        );
        assert!(msg.contains("does not allow persistent IPs") && msg.contains("claim-1"), "{msg}");
        pods.create(&pp, &pod("claim-ok", &networks(r#"[{"name":"vms","interface":"podb1f51a511f1","ipam-claim-reference":"vm1.vms"}]"#)))
            .await
            .expect("ipam-claim-reference admitted on a network allowing persistent IPs");
        // portMappings on the network that chains portmap is admitted; empty requests ask for nothing.
        pods.create(&pp, &pod("ports", &networks(r#"[{"name":"ports","portMappings":[{"hostPort":8080,"containerPort":80}]}]"#)))
            .await
            .expect("portMappings honoured by the chained portmap plugin");
        pods.create(&pp, &pod("empty-caps", &networks(r#"[{"name":"blue","portMappings":[],"bandwidth":{}}]"#)))
            .await
            .expect("empty capability requests");

        mwcs.delete(&mwc_name, &DeleteParams::default()).await.expect("cleanup");
    });
    webhook_rt.shutdown_background();
}

fn entry(iface: &str, ip: &str) -> NetworkStatus {
    NetworkStatus {
        name: "ns/blue".into(),
        interface: Some(iface.into()),
        ips: vec![ip.into()],
        mac: Some("0a:00:00:00:00:01".into()),
        gateway: vec!["10.1.0.1".into()],
        default_route: vec!["10.1.0.1".into()],
        ..Default::default()
    }
}

fn statuses(pod: &Pod) -> Vec<Value> {
    let v = pod.metadata.annotations.as_ref().and_then(|a| a.get(NETWORK_STATUS_ANNOTATION)).expect("network-status");
    serde_json::from_str::<Vec<Value>>(v).expect("a JSON list")
}

fn interfaces(list: &[Value]) -> Vec<String> {
    list.iter().map(|e| e["interface"].as_str().unwrap_or("").to_string()).collect()
}

/// What Multus writes for the cluster network (pretty-printed, with keys kubetron does not know).
const MULTUS_STATUS: &str = r#"[{
    "name": "kindnet",
    "interface": "eth0",
    "ips": ["10.244.0.7"],
    "mac": "0a:58:0a:f4:00:07",
    "mtu": 1450,
    "default": true,
    "dns": {}
}]"#;

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn network_status_is_merged_through_pods_status_with_preconditions() {
    let Some(h) = harness("network_status_is_merged_through_pods_status_with_preconditions") else { return };
    let rt = runtime();
    rt.block_on(async {
        let admin = h.admin().await;
        apply_rbac(&admin).await;
        let ns = unique("npwg-status");
        create_namespace(&admin, &ns, &[]).await;
        // The controller's deployed identity writes (deploy/rbac-controller.yaml: pods/status patch).
        let ctl = h.user(CONTROLLER_USER, SA_GROUPS).await;
        let admin_pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
        let ctl_pods: Api<Pod> = Api::namespaced(ctl.clone(), &ns);
        wait_for("the controller identity to be authorized", Duration::from_secs(20), || async {
            ctl_pods.list(&Default::default()).await.ok()
        })
        .await;
        let pp = PostParams::default();
        let p = admin_pods.create(&pp, &pod("p", &[(NETWORK_STATUS_ANNOTATION, MULTUS_STATUS)])).await.expect("create pod");
        let uid = p.metadata.uid.clone().unwrap();
        let owned: BTreeSet<String> = ["net1".to_string()].into();
        let ours = vec![entry("net1", "10.1.0.5")];
        let change = |cur: &BTreeMap<String, String>| {
            let merged = merge_network_status(cur.get(NETWORK_STATUS_ANNOTATION).map(String::as_str), &ours, &owned);
            BTreeMap::from([(NETWORK_STATUS_ANNOTATION.to_string(), merged)])
        };

        // 1. Multus's eth0 entry stays (verbatim, first); kubetron's comes after it, without "default".
        let out = write_pod_annotations(&ctl, &ns, "p", &uid, None, change).await.expect("write");
        assert_eq!(out, WriteOutcome::Written { attempts: 1 });
        let now = admin_pods.get("p").await.unwrap();
        let list = statuses(&now);
        assert_eq!(interfaces(&list), ["eth0", "net1"]);
        let multus: Vec<Value> = serde_json::from_str(MULTUS_STATUS).unwrap();
        assert_eq!(list[0], multus[0], "the eth0 entry is kept as Multus wrote it (mtu included)");
        assert_eq!(list[0]["default"], true);
        assert!(list[1].get("default").is_none(), "a secondary network is never default");
        assert_eq!(list[1]["gateway"], json!(["10.1.0.1"]));
        assert_eq!(list[1]["default-route"], json!(["10.1.0.1"]));
        // Written again with nothing new: no write at all.
        let again = write_pod_annotations(&ctl, &ns, "p", &uid, Some(&now), change).await.expect("rewrite");
        assert_eq!(again, WriteOutcome::Unchanged { attempts: 1 });
        assert_eq!(admin_pods.get("p").await.unwrap().metadata.resource_version, now.metadata.resource_version);

        // 2. A conflicting concurrent update: another writer adds its entry after our copy was taken. Our first
        //    write (from the stale copy, at its resourceVersion) conflicts; we re-read, re-merge, and keep theirs.
        let stale = now.clone();
        let mut theirs = list.clone();
        theirs.push(json!({"name": "ns/macvlan", "interface": "net9", "ips": ["192.168.9.9"]}));
        let patch = json!({"metadata": {"annotations": {NETWORK_STATUS_ANNOTATION: serde_json::to_string(&theirs).unwrap()}}});
        admin_pods.patch("p", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("the other writer");
        let ours2 = vec![entry("net1", "10.1.0.6")];
        let change2 = |cur: &BTreeMap<String, String>| {
            let merged = merge_network_status(cur.get(NETWORK_STATUS_ANNOTATION).map(String::as_str), &ours2, &owned);
            BTreeMap::from([(NETWORK_STATUS_ANNOTATION.to_string(), merged)])
        };
        let out = write_pod_annotations(&ctl, &ns, "p", &uid, Some(&stale), change2).await.expect("write after conflict");
        assert_eq!(out, WriteOutcome::Written { attempts: 2 }, "the stale write conflicted and was retried");
        let list = statuses(&admin_pods.get("p").await.unwrap());
        assert_eq!(interfaces(&list), ["eth0", "net1", "net9"], "nobody's entry lost: {list:?}");
        assert_eq!(list[1]["ips"], json!(["10.1.0.6"]));
        assert_eq!(list[2]["ips"], json!(["192.168.9.9"]));

        // 3. The UID precondition: a new pod of the same name is never written with the old pod's status.
        admin_pods.delete("p", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete");
        wait_for("the pod to be gone", Duration::from_secs(20), || async { admin_pods.get_opt("p").await.ok()?.is_none().then_some(()) })
            .await;
        let q = admin_pods.create(&pp, &pod("p", &[])).await.expect("recreate");
        assert_ne!(q.metadata.uid.as_deref(), Some(uid.as_str()));
        let out = write_pod_annotations(&ctl, &ns, "p", &uid, Some(&stale), change2).await.expect("write to a replaced pod");
        assert_eq!(out, WriteOutcome::Gone);
        let q = admin_pods.get("p").await.unwrap();
        assert!(!q.metadata.annotations.unwrap_or_default().contains_key(NETWORK_STATUS_ANNOTATION), "the new pod is untouched");
        // And a pod that does not exist at all.
        let out = write_pod_annotations(&ctl, &ns, "nobody", &uid, None, change2).await.expect("write to no pod");
        assert_eq!(out, WriteOutcome::Gone);
    });
}
