use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::nad::{new_nad, ALLOWED_NAMESPACES_ANNOTATION, RESOURCE_NAME_ANNOTATION};
use crate::webhook::{GroupVersionKind, MemoryNads};

const KT: &str = r#"{"cniVersion":"1.0.0","type":"kubetron"}"#;

fn nads() -> MemoryNads {
    let m = MemoryNads::new();
    m.insert(new_nad("app", "blue", KT, &[]));
    m.insert(new_nad("app", "phys", KT, &[(RESOURCE_NAME_ANNOTATION, "kubetron.io/physnet1")]));
    m.insert(new_nad("app", "mv", r#"{"type":"macvlan"}"#, &[]));
    m.insert(new_nad("infra", "shared", KT, &[(ALLOWED_NAMESPACES_ANNOTATION, "*")]));
    m.insert(new_nad("infra", "private", KT, &[]));
    m
}

/// (annotation text, is kubetron, allowed)
const NETWORKS: &[(&str, bool, bool)] = &[
    ("blue", true, true),
    ("phys", true, true),
    ("mv", false, true),
    ("infra/shared", true, true),
    ("infra/private", true, false),
    ("missing", false, false),
];

fn request(pod: Value) -> AdmissionRequest {
    AdmissionRequest {
        uid: "u1".into(),
        kind: GroupVersionKind { group: "".into(), version: "v1".into(), kind: "Pod".into() },
        name: Some("p".into()),
        namespace: Some("app".into()),
        operation: "CREATE".into(),
        object: Some(pod),
        dry_run: Some(false),
        old_object: None,
    }
}

fn container(i: usize, env: Option<usize>, resources: bool) -> Value {
    let mut c = json!({"name": format!("c{i}"), "image": "img"});
    if let Some(n) = env {
        c["env"] = Value::Array((0..n).map(|k| json!({"name": format!("USER_{k}"), "value": "v"})).collect());
    }
    if resources {
        c["resources"] = json!({"limits": {"cpu": "1"}});
    }
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

#[test]
fn non_pod_and_non_create_pass_through() {
    let rt = runtime();
    let mut r = request(json!({"metadata": {"annotations": {NETWORKS_ANNOTATION: "!!"}}}));
    r.operation = "DELETE".into();
    assert!(rt.block_on(admit(&r, &nads())).allowed);
    let mut r = request(json!({}));
    r.kind.kind = "Deployment".into();
    r.kind.group = "apps".into();
    assert!(rt.block_on(admit(&r, &nads())).allowed);
    let mut r = request(json!({}));
    r.object = None;
    let resp = rt.block_on(admit(&r, &nads()));
    assert!(!resp.allowed);
    assert_eq!(resp.status.unwrap().code, 400);
    let r = request(json!({"metadata": {"annotations": {NETWORKS_ANNOTATION: 5}}, "spec": {"containers": []}}));
    assert!(!rt.block_on(admit(&r, &nads())).allowed);
}

#[test]
fn every_problem_is_reported() {
    let rt = runtime();
    let r = request(json!({"metadata": {"annotations": {NETWORKS_ANNOTATION: "missing, infra/private, blue"}},
                           "spec": {"containers": [{"name": "a"}]}}));
    let resp = rt.block_on(admit(&r, &nads()));
    let status = resp.status.unwrap();
    assert_eq!(status.code, 404);
    assert!(status.message.contains("app/missing") && status.message.contains("infra/private"), "{}", status.message);
}

/// The NPWG selection rules at the handler: (annotation, expected code; 0 = admitted, message needle).
#[test]
fn npwg_selection_rules() {
    let rt = runtime();
    let m = nads();
    m.insert(new_nad("app", "red.net", KT, &[]));
    m.insert(new_nad(
        "app",
        "vmnet",
        r#"{"cniVersion":"1.0.0","type":"kubetron","allowPersistentIPs":true,"capabilities":{"mac":true}}"#,
        &[],
    ));
    m.insert(new_nad(
        "app",
        "ported",
        r#"{"name":"ported","plugins":[{"type":"kubetron"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        &[],
    ));
    let cases: &[(&str, u16, &str)] = &[
        ("red.net", 0, ""),
        (r#"[{"name":"red.net","interface":"r0"}]"#, 0, ""),
        (r#"[{"name":"blue","default-route":[]}]"#, 0, ""),
        (r#"[{"name":"blue","default-route":["10.0.0.1"]},{"name":"red.net","default-route":["10.1.0.1"]}]"#, 400, "default-route"),
        (r#"[{"name":"blue","ips":[]}]"#, 400, "at least one"),
        (r#"[{"name":"blue","ips":["10.0.0.5"],"ipam-claim-reference":"c"}]"#, 400, "ipam-claim-reference"),
        (r#"[{"name":"blue","portMappings":[{"hostPort":80,"containerPort":80}]}]"#, 403, "portMappings"),
        (r#"[{"name":"ported","portMappings":[{"hostPort":80,"containerPort":80}]}]"#, 0, ""),
        (r#"[{"name":"ported","bandwidth":{"ingressRate":1}}]"#, 403, "bandwidth"),
        // Persistent IPs: only on networks whose config allows them; never with "ips".
        (r#"[{"name":"blue","ipam-claim-reference":"c"}]"#, 403, "does not allow persistent IPs"),
        (r#"[{"name":"vmnet","ipam-claim-reference":"vm1.vmnet"}]"#, 0, ""),
        (r#"[{"name":"vmnet","interface":"podb1f51a511f1","mac":"02:00:00:00:00:01","ipam-claim-reference":"vm1.vmnet"}]"#, 0, ""),
        (r#"[{"name":"vmnet","ips":["10.0.0.5"],"ipam-claim-reference":"c"}]"#, 400, "ipam-claim-reference"),
        // Other plugins' networks: what they can honour is Multus's and that plugin's business.
        (r#"[{"name":"mv","portMappings":[{"hostPort":80,"containerPort":80}]}]"#, 0, ""),
    ];
    for (annotation, code, needle) in cases {
        let r = request(json!({"metadata": {"annotations": {NETWORKS_ANNOTATION: annotation}}, "spec": {"containers": [{"name": "a"}]}}));
        let resp = rt.block_on(admit(&r, &m));
        match (code, resp.status) {
            (0, status) => assert!(resp.allowed, "{annotation}: {status:?}"),
            (code, Some(status)) => {
                assert!(!resp.allowed, "{annotation}");
                assert_eq!(status.code, *code, "{annotation}: {}", status.message);
                assert!(status.message.contains(needle), "{annotation}: {}", status.message);
            }
            (_, None) => panic!("{annotation}: refused without a status"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn patch_applies_and_matches_the_request(
        picks in proptest::collection::vec(0..NETWORKS.len(), 1..5),
        containers in proptest::collection::vec((proptest::option::of(0usize..3), any::<bool>()), 1..4),
        inits in proptest::collection::vec(proptest::option::of(0usize..2), 0..2),
    ) {
        let annotation = picks.iter().map(|&i| NETWORKS[i].0).collect::<Vec<_>>().join(",");
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {NETWORKS_ANNOTATION: annotation}},
            "spec": {
                "containers": containers.iter().enumerate().map(|(i, (e, r))| container(i, *e, *r)).collect::<Vec<_>>(),
            }
        });
        if !inits.is_empty() {
            pod["spec"]["initContainers"] = inits.iter().enumerate().map(|(i, e)| container(10 + i, *e, false)).collect();
        }
        let resp = runtime().block_on(admit(&request(pod.clone()), &nads()));
        let should_allow = picks.iter().all(|&i| NETWORKS[i].2);
        prop_assert_eq!(resp.allowed, should_allow, "{:?}", resp.status);
        if !should_allow {
            prop_assert!(resp.patch.is_none());
            return Ok(());
        }
        let selections = request::parse(&annotation, "app").unwrap();
        let ours: Vec<_> = selections.iter().zip(&picks).filter(|(_, &i)| NETWORKS[i].1).map(|(s, _)| s.clone()).collect();
        if ours.is_empty() {
            prop_assert!(resp.patch.is_none());
            return Ok(());
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(resp.patch.unwrap()).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
        let mut out = pod.clone();
        json_patch::patch(&mut out, &patch).unwrap();
        let want = env_vars(&ours);
        for list in ["containers", "initContainers"] {
            let before = pod["spec"][list].as_array().cloned().unwrap_or_default();
            let after = out["spec"][list].as_array().cloned().unwrap_or_default();
            prop_assert_eq!(before.len(), after.len());
            for (b, a) in before.iter().zip(&after) {
                let mut expected: Vec<Value> = b["env"].as_array().cloned().unwrap_or_default();
                expected.extend(want.iter().map(|v| json!({"name": v.name, "value": v.value})));
                prop_assert_eq!(a["env"].as_array().unwrap(), &expected);
            }
        }
        let phys = picks.iter().any(|&i| NETWORKS[i].0 == "phys");
        let first = &out["spec"]["containers"][0]["resources"];
        for section in ["requests", "limits"] {
            prop_assert_eq!(first[section]["kubetron.io/physnet1"].as_str() == Some("1"), phys, "{}", first);
        }
        if containers[0].1 {
            prop_assert_eq!(&first["limits"]["cpu"], "1", "existing limits kept");
        }
        // Admitting the patched pod again changes nothing more (idempotent under reinvocation).
        let again = runtime().block_on(admit(&request(out.clone()), &nads()));
        prop_assert!(again.allowed);
        prop_assert!(again.patch.is_none(), "second pass should be a no-op");
    }
}

#[test]
fn static_ips_the_nad_subnet_cannot_give_are_refused() {
    let rt = runtime();
    let m = MemoryNads::new();
    let cfg =
        r#"{"cniVersion":"1.0.0","type":"kubetron","capabilities":{"ips":true},"subnet":"10.5.0.0/24","exclude_ips":"10.5.0.1..10.5.0.9"}"#;
    m.insert(new_nad("app", "sub", cfg, &[]));
    m.insert(new_nad("app", "nosub", r#"{"cniVersion":"1.0.0","type":"kubetron","capabilities":{"ips":true}}"#, &[]));
    let ask = |net: &str, ip: &str| {
        let a = format!(r#"[{{"name":"{net}","ips":["{ip}"]}}]"#);
        rt.block_on(admit(
            &request(json!({"metadata": {"annotations": {NETWORKS_ANNOTATION: a}}, "spec": {"containers": [{"name": "c"}]}})),
            &m,
        ))
    };
    for (ip, word) in [
        ("10.6.0.5/24", "not in the network's subnet"),
        ("10.5.0.0/24", "network address"),
        ("10.5.0.255/24", "broadcast address"),
        ("10.5.0.3/24", "exclude_ips"),
    ] {
        let r = ask("sub", ip);
        assert!(!r.allowed, "{ip}");
        let st = r.status.unwrap();
        assert_eq!(st.code, 400);
        assert!(st.message.contains(word) && st.message.contains("app/sub"), "{ip}: {}", st.message);
    }
    assert!(ask("sub", "10.5.0.50/24").allowed);
    // Without a subnet in the NAD the webhook cannot know: the controller and the plugin decide.
    assert!(ask("nosub", "10.6.0.5/24").allowed);
}

#[test]
fn security_profiles_must_be_offered_to_the_namespace() {
    let rt = runtime();
    let m = nads();
    let ask = |element: &str| {
        let a = format!("[{element}]");
        rt.block_on(admit(
            &request(json!({"metadata": {"annotations": {NETWORKS_ANNOTATION: a}}, "spec": {"containers": [{"name": "c"}]}})),
            &m,
        ))
    };
    let web = r#"{"name":"blue","kubetron.io/security-profile":"web_tier"}"#;
    // Nothing published yet: refused, and the message says why.
    let r = ask(web);
    assert!(!r.allowed);
    let st = r.status.unwrap();
    assert_eq!(st.code, 403);
    assert!(st.message.contains("interface net1") && st.message.contains("ConfigMap kubetron-security-profiles"), "{}", st.message);

    m.set_profiles(Some([("web_tier".to_string(), "app".to_string()), ("db_tier".to_string(), "other".to_string())].into()));
    assert!(ask(web).allowed, "offered to the pod's namespace");
    let r = ask(r#"{"name":"blue","kubetron.io/security-profile":"db_tier"}"#);
    let st = r.status.expect("refused");
    assert_eq!(st.code, 403);
    assert!(st.message.contains("\"db_tier\" is not offered to namespace app"), "{}", st.message);
    let r = ask(r#"{"name":"blue","kubetron.io/security-profile":"nope"}"#);
    assert!(r.status.expect("refused").message.contains("\"nope\" is not offered to any namespace"));
    // Another plugin's NAD: its element's kubetron keys are not kubetron's business.
    assert!(ask(r#"{"name":"mv","kubetron.io/security-profile":"nope"}"#).allowed);
    // No profile asked: the offers are never needed.
    m.set_profiles(None);
    assert!(ask(r#"{"name":"blue"}"#).allowed);
}

fn policy_request(operation: &str, policy: Value) -> AdmissionRequest {
    AdmissionRequest {
        uid: "u2".into(),
        kind: GroupVersionKind { group: "k8s.cni.cncf.io".into(), version: "v1beta1".into(), kind: "MultiNetworkPolicy".into() },
        name: Some("web".into()),
        namespace: Some("app".into()),
        operation: operation.into(),
        object: Some(policy),
        dry_run: Some(false),
        old_object: None,
    }
}

#[test]
fn multi_network_policies_are_validated_with_paths_and_warned_about() {
    let rt = runtime();
    let m = nads();
    let ask = |operation: &str, policy_for: Option<&str>, spec: Value| {
        let mut meta = json!({"name": "web"});
        if let Some(p) = policy_for {
            meta["annotations"] = json!({"k8s.v1.cni.cncf.io/policy-for": p});
        }
        rt.block_on(admit(&policy_request(operation, json!({"metadata": meta, "spec": spec})), &m))
    };
    let good = json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 8000, "endPort": 8010}]}]});
    let r = ask("CREATE", Some("blue"), good.clone());
    assert!(r.allowed && r.warnings.is_empty() && r.patch.is_none(), "{r:?}");
    // Every problem, with its path; UPDATE is checked too.
    let bad = json!({"podSelector": {}, "ingress": [{"ports": [{"port": 9000, "endPort": 8000}, {"protocol": "ICMP"}]}]});
    for op in ["CREATE", "UPDATE"] {
        let r = ask(op, Some("blue"), bad.clone());
        let st = r.status.expect("refused");
        assert_eq!(st.code, 400);
        assert!(st.message.contains("spec.ingress[0].ports[0].endPort: 8000 is below port 9000"), "{}", st.message);
        assert!(st.message.contains("spec.ingress[0].ports[1].protocol"), "{}", st.message);
    }
    // A shape serde cannot read (the schema refuses it first when the CRD is kubetron's).
    let r = ask("CREATE", Some("blue"), json!({"podSelector": "web"}));
    assert_eq!(r.status.expect("refused").code, 400);
    // Networks that do not exist yet, of another plugin, or none: admitted with warnings.
    let r = ask("CREATE", Some("ghost, mv, infra/shared"), good.clone());
    assert!(r.allowed);
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("app/ghost does not exist (yet): the policy is applied on none of its networks"), "{:?}", r.warnings);
    assert!(r.warnings[1].contains("app/mv is not a usable kubetron network"), "{:?}", r.warnings);
    let r = ask("CREATE", None, good.clone());
    assert!(r.allowed && r.warnings[0].contains("applies to no network"), "{r:?}");
    // DELETE is none of the webhook's business.
    assert!(ask("DELETE", Some("blue"), bad.clone()).allowed);
    // A stored bad policy can still be labelled, and finalized while being deleted.
    let stored = json!({"metadata": {"name": "web"}, "spec": bad.clone()});
    let mut labelled = stored.clone();
    labelled["metadata"]["labels"] = json!({"team": "a"});
    let mut req = policy_request("UPDATE", labelled);
    req.old_object = Some(stored.clone());
    assert!(rt.block_on(admit(&req, &m)).allowed, "spec unchanged");
    let mut deleting = stored.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
    deleting["spec"]["podSelector"] = json!({"matchLabels": {"x": "y"}});
    let mut req = policy_request("UPDATE", deleting);
    req.old_object = Some(stored.clone());
    assert!(rt.block_on(admit(&req, &m)).allowed, "being deleted");
    // A changed spec is judged again.
    let mut changed = stored.clone();
    changed["spec"]["podSelector"] = json!({"matchLabels": {"x": "y"}});
    let mut req = policy_request("UPDATE", changed);
    req.old_object = Some(stored);
    assert!(!rt.block_on(admit(&req, &m)).allowed, "spec changed, still bad");
}
