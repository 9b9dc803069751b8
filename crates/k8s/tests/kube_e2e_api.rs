//! kubetron's Kubernetes pieces against a REAL kube-apiserver (one per test binary, see `kube_e2e_support`):
//! the NAD CRD from deploy/crd.yaml, the mutating admission webhook called by the apiserver itself, and the
//! deploy/ RBAC as the real authorizer sees it.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (else each test prints "skipped"). No kubectl needed.
//! Run: `KUBETRON_KUBE_TESTS=1 cargo test -p k8s --test kube_e2e_api`

mod kube_e2e_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s::meta::MetaStr;
use k8s::nad::{new_nad, NetworkAttachmentDefinition, ALLOWED_NAMESPACES_ANNOTATION, RESOURCE_NAME_ANNOTATION};
use k8s::rbac::{COMPONENTS, WEBHOOK_CONFIGURATION_NAME};
use k8s::webhook::{register_ca_bundle, KubeSource, NadSource};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use k8s_openapi::api::events::v1::Event as EventsV1;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::Client;
use kube_e2e_support::*;
use serde_json::json;

const KUBETRON_CONFIG: &str =
    r#"{"cniVersion":"1.0.0","name":"blue","type":"kubetron","logical_switch":"ls-blue","capabilities":{"ips":true}}"#;

fn nad_resource() -> ApiResource {
    ApiResource::erase::<NetworkAttachmentDefinition>(&())
}

// ---------------------------------------------------------------------------------------------------------------
// 1. The CRD and the typed NAD API.

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn crd_from_deploy_serves_typed_nads() {
    let Some(h) = harness("crd_from_deploy_serves_typed_nads") else { return };
    runtime().block_on(async {
        let admin = h.admin().await;
        let crd = install_crd(&admin).await;
        // deploy/crd.yaml is what k8s::nad::crd() describes.
        let ours = k8s::nad::crd();
        assert_eq!(crd.metadata.name, ours.metadata.name);
        assert_eq!(crd.spec.group, ours.spec.group);
        assert_eq!(crd.spec.names.plural, ours.spec.names.plural);
        assert_eq!(crd.spec.names.kind, "NetworkAttachmentDefinition");
        assert_eq!(crd.spec.scope, "Namespaced");
        let status = crd.status.expect("status");
        assert_eq!(status.accepted_names.as_ref().map(|n| n.kind.as_str()), Some("NetworkAttachmentDefinition"));

        let ns = unique("e2e-crd");
        let other = unique("e2e-crd-other");
        create_namespace(&admin, &ns, &[]).await;
        create_namespace(&admin, &other, &[]).await;
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);

        // Create and read back through the typed API.
        let nad = new_nad(&ns, "blue", KUBETRON_CONFIG, &[(RESOURCE_NAME_ANNOTATION, "kubetron.io/physnet")]);
        let created = api.create(&PostParams::default(), &nad).await.expect("create NAD");
        assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
        let got = api.get("blue").await.expect("get NAD");
        assert_eq!(got.spec.config, KUBETRON_CONFIG);
        let cfg = got.kubetron_config().expect("config parses").expect("a kubetron NAD");
        assert_eq!(cfg.name, "blue");
        assert_eq!(cfg.logical_switch(), "ls-blue");
        assert!(cfg.kubetron.granted().ips && !cfg.kubetron.granted().mac);
        assert_eq!(got.physical_network(), Some("physnet"));
        assert_eq!(got.namespace_str(), ns);

        // A NAD of another plugin, in another namespace: lists are per namespace.
        let macvlan = new_nad(&other, "mv", r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0"}"#, &[]);
        Api::<NetworkAttachmentDefinition>::namespaced(admin.clone(), &other)
            .create(&PostParams::default(), &macvlan)
            .await
            .expect("create macvlan NAD");
        let names: Vec<String> =
            api.list(&ListParams::default()).await.expect("list").items.iter().map(|n| n.name_str().to_string()).collect();
        assert_eq!(names, vec!["blue".to_string()]);
        let all = Api::<NetworkAttachmentDefinition>::all(admin.clone()).list(&ListParams::default()).await.expect("list all");
        assert!(all.items.iter().any(|n| n.namespace_str() == other && n.kubetron_config() == Ok(None)));

        // The webhook's kube-backed NadSource reads the same objects.
        let source = KubeSource::new(admin.clone(), KUBETRON_NS);
        let via_source = source.get(&ns, "blue").await.expect("source get").expect("found");
        assert_eq!(via_source.spec, got.spec);
        assert!(source.get(&ns, "nope").await.expect("source get").is_none());

        // Update, then the new config is served.
        let mut updated = got.clone();
        updated.spec.config = KUBETRON_CONFIG.replace("ls-blue", "ls-blue-2");
        api.replace("blue", &PostParams::default(), &updated).await.expect("replace");
        let cfg = api.get("blue").await.unwrap().kubetron_config().unwrap().unwrap();
        assert_eq!(cfg.logical_switch(), "ls-blue-2");

        // deploy/crd.yaml's schema: unknown spec fields are preserved, spec.config must be a string.
        let dynamic: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns, &nad_resource());
        let extra: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "extra", "namespace": ns},
            "spec": {"config": "{\"type\":\"kubetron\"}", "extra": {"nested": [1, 2, 3]}}
        }))
        .unwrap();
        dynamic.create(&PostParams::default(), &extra).await.expect("create NAD with extra fields");
        let back = dynamic.get("extra").await.expect("get dynamic");
        assert_eq!(back.data["spec"]["extra"]["nested"], json!([1, 2, 3]), "x-kubernetes-preserve-unknown-fields");
        let typed = api.get("extra").await.expect("typed get ignores unknown fields");
        assert_eq!(typed.kubetron_config().unwrap().unwrap().name, "extra", "name falls back to the NAD's");
        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "bad", "namespace": ns}, "spec": {"config": 42}
        }))
        .unwrap();
        let msg = expect_code(dynamic.create(&PostParams::default(), &bad).await, 422, "non-string spec.config");
        assert!(msg.contains("spec.config"), "{msg}");

        // Delete.
        api.delete("blue", &DeleteParams::default()).await.expect("delete");
        wait_for("NAD deletion", Duration::from_secs(30), || async { api.get_opt("blue").await.unwrap().is_none().then_some(()) }).await;
    });
}

// ---------------------------------------------------------------------------------------------------------------
// 2. The webhook, called by the apiserver.

/// A pod with an init container and two containers (the first one has its own env var).
fn pod(name: &str, networks: Option<&str>) -> Pod {
    let mut meta = json!({"name": name});
    if let Some(n) = networks {
        meta["annotations"] = json!({"k8s.v1.cni.cncf.io/networks": n});
    }
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {
            "initContainers": [{"name": "init", "image": "example.invalid/init:1"}],
            "containers": [
                {"name": "a", "image": "example.invalid/a:1", "env": [{"name": "USER_VAR", "value": "mine"}]},
                {"name": "b", "image": "example.invalid/b:1"}
            ]
        }
    }))
    .expect("pod json")
}

fn env_of(pod: &Pod) -> Vec<(String, BTreeMap<String, String>)> {
    let spec = pod.spec.as_ref().expect("spec");
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c| {
            let env = c.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect();
            (c.name.clone(), env)
        })
        .collect()
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn webhook_admits_and_mutates_pods_through_the_apiserver() {
    let Some(h) = harness("webhook_admits_and_mutates_pods_through_the_apiserver") else { return };
    let rt = runtime();
    let admin = rt.block_on(h.deployed_admin());

    // The webhook server runs as the deployed webhook identity (deploy/rbac-webhook.yaml), on its own runtime.
    let (webhook_rt, port, ca_pem) = h.start_webhook(&["127.0.0.1", "localhost"]);

    let id = unique("wh");
    let label = "kubetron-e2e/webhook";
    let ns_a = format!("{id}-a");
    let ns_b = format!("{id}-b");
    let ns_off = format!("{id}-off");
    let mwc_name = format!("kubetron-e2e-{id}");
    rt.block_on(async {
        create_namespace(&admin, &ns_a, &[(label, &id)]).await;
        create_namespace(&admin, &ns_b, &[(label, &id)]).await;
        create_namespace(&admin, &ns_off, &[]).await;
        let nads_a: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns_a);
        let nads_b: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns_b);
        let pp = PostParams::default();
        nads_a.create(&pp, &new_nad(&ns_a, "blue", r#"{"cniVersion":"1.0.0","type":"kubetron"}"#, &[])).await.unwrap();
        nads_a
            .create(
                &pp,
                &new_nad(
                    &ns_a,
                    "phys",
                    r#"{"cniVersion":"1.0.0","type":"kubetron"}"#,
                    &[(RESOURCE_NAME_ANNOTATION, "kubetron.io/physnet")],
                ),
            )
            .await
            .unwrap();
        nads_a.create(&pp, &new_nad(&ns_a, "mv", r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0"}"#, &[])).await.unwrap();
        nads_b.create(&pp, &new_nad(&ns_b, "private", r#"{"cniVersion":"1.0.0","type":"kubetron"}"#, &[])).await.unwrap();
        nads_b
            .create(
                &pp,
                &new_nad(&ns_b, "shared", r#"{"cniVersion":"1.0.0","type":"kubetron"}"#, &[(ALLOWED_NAMESPACES_ANNOTATION, &ns_a)]),
            )
            .await
            .unwrap();

        // The webhook identity must be able to read NADs before the webhook can decide anything.
        let wh_client = h.user(WEBHOOK_USER, SA_GROUPS).await;
        let wh_nads: Api<NetworkAttachmentDefinition> = Api::namespaced(wh_client, &ns_b);
        wait_for("the webhook identity to read NADs", Duration::from_secs(20), || async { wh_nads.get("shared").await.ok() }).await;

        let mwcs: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
        let url = format!("https://127.0.0.1:{port}/mutate");
        mwcs.create(&pp, &webhook_configuration(&mwc_name, &url, &ca_pem, label, &id)).await.expect("create MutatingWebhookConfiguration");

        let pods_a: Api<Pod> = Api::namespaced(admin.clone(), &ns_a);
        // The apiserver picks new webhook configurations up asynchronously: probe with dry-run creates.
        let dry = PostParams { dry_run: true, ..Default::default() };
        wait_for("the apiserver to call the webhook", Duration::from_secs(30), || async {
            match pods_a.create(&dry, &pod("probe", Some("Team-B/Shared"))).await {
                Err(kube::Error::Api(s)) if s.message.contains("pods.kubetron.io") => Some(()),
                _ => None,
            }
        })
        .await;

        // (a) A malformed annotation is refused at create time with the webhook's message.
        let msg = expect_code(pods_a.create(&pp, &pod("malformed", Some("blue, Team-B/Shared"))).await, 400, "malformed annotation");
        assert!(msg.contains(r#"admission webhook "pods.kubetron.io" denied the request"#), "{msg}");
        assert!(msg.contains("Team-B"), "the webhook's message names the bad entry: {msg}");
        assert!(pods_a.get_opt("malformed").await.unwrap().is_none(), "nothing stored");

        // (b) An unknown network is refused, naming it.
        let msg = expect_code(pods_a.create(&pp, &pod("unknown", Some("blue, nope"))).await, 404, "unknown network");
        assert!(msg.contains(&format!("network {ns_a}/nope does not exist")), "{msg}");
        assert!(!msg.contains(&format!("{ns_a}/blue")), "only the missing one is named: {msg}");

        // (c) Another namespace's NAD that is not shared with this namespace is refused...
        let msg = expect_code(pods_a.create(&pp, &pod("foreign", Some(&format!("{ns_b}/private")))).await, 403, "foreign NAD");
        assert!(msg.contains(&format!("network {ns_b}/private belongs to namespace {ns_b}")), "{msg}");
        assert!(msg.contains(ALLOWED_NAMESPACES_ANNOTATION), "{msg}");
        // A static IP (JSON form of the annotation) on a network that does not grant the capability is refused.
        let msg = expect_code(
            pods_a.create(&pp, &pod("static", Some(r#"[{"name":"blue","ips":["10.1.1.5/24"]}]"#))).await,
            403,
            "static IP without capability",
        );
        assert!(msg.contains(&format!("network {ns_a}/blue does not allow static IPs")) && msg.contains("10.1.1.5"), "{msg}");
        // ... and from the owner's namespace the same NAD is fine.
        Api::<Pod>::namespaced(admin.clone(), &ns_b).create(&pp, &pod("owner", Some("private"))).await.expect("owner may use it");

        // (d) A good pod (own NAD + one shared with us, custom interface name) is stored with the env vars in
        //     every container and init container; the user's own variable stays.
        let good = pods_a.create(&pp, &pod("good", Some(&format!("blue, {ns_b}/shared@data0")))).await.expect("good pod admitted");
        let stored = pods_a.get("good").await.expect("stored pod");
        assert_eq!(stored.metadata.uid, good.metadata.uid);
        let envs = env_of(&stored);
        assert_eq!(envs.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["init", "a", "b"]);
        for (container, env) in &envs {
            assert_eq!(env.get("NETWORK_INTERFACE_BLUE").map(String::as_str), Some("net1"), "{container}: {env:?}");
            assert_eq!(env.get("NETWORK_INTERFACE_SHARED").map(String::as_str), Some("data0"), "{container}: {env:?}");
        }
        assert_eq!(envs[1].1.get("USER_VAR").map(String::as_str), Some("mine"));
        assert_eq!(envs[1].1.len(), 3);
        let res = stored.spec.as_ref().unwrap().containers[0].resources.clone().unwrap_or_default();
        assert!(res.requests.unwrap_or_default().keys().all(|k| !k.starts_with("kubetron.io/")), "no physical network, no resource");

        // (e) A physical network NAD adds the kubetron.io/<net> resource (requests and limits, first container).
        pods_a.create(&pp, &pod("phys", Some("phys"))).await.expect("physical pod admitted");
        let stored = pods_a.get("phys").await.unwrap();
        let spec = stored.spec.as_ref().unwrap();
        let res = spec.containers[0].resources.clone().expect("resources added");
        let one = Some(Quantity("1".into()));
        assert_eq!(res.requests.unwrap_or_default().get("kubetron.io/physnet").cloned(), one);
        assert_eq!(res.limits.unwrap_or_default().get("kubetron.io/physnet").cloned(), one);
        assert!(spec.containers[1].resources.as_ref().and_then(|r| r.requests.as_ref()).is_none(), "only the first container");
        assert!(env_of(&stored).iter().all(|(_, e)| e.get("NETWORK_INTERFACE_PHYS").map(String::as_str) == Some("net1")));

        // Pods without the annotation, or asking only for other plugins' networks, are left alone.
        pods_a.create(&pp, &pod("plain", None)).await.expect("plain pod");
        pods_a.create(&pp, &pod("multus", Some("mv"))).await.expect("macvlan pod");
        for name in ["plain", "multus"] {
            let p = pods_a.get(name).await.unwrap();
            assert!(env_of(&p).iter().all(|(_, e)| e.keys().all(|k| !k.starts_with("NETWORK_INTERFACE_"))), "{name}");
        }

        // The namespaceSelector scopes the webhook: an unlabelled namespace is not checked at all.
        Api::<Pod>::namespaced(admin.clone(), &ns_off)
            .create(&pp, &pod("unchecked", Some("Team-B/Shared")))
            .await
            .expect("webhook not called outside its namespaces");
    });

    // failurePolicy: Ignore — with the webhook gone, pods are still created (unmutated: the controller
    // enforces the rules); nothing waits on a dead webhook.
    webhook_rt.shutdown_background();
    rt.block_on(async {
        let pods_a: Api<Pod> = Api::namespaced(admin.clone(), &ns_a);
        let created = pods_a.create(&PostParams::default(), &pod("no-webhook", Some("blue"))).await.expect("created without the webhook");
        assert!(env_of(&created).iter().all(|(_, e)| e.keys().all(|k| !k.starts_with("NETWORK_INTERFACE_"))), "not mutated");
        Api::<MutatingWebhookConfiguration>::all(admin.clone()).delete(&mwc_name, &DeleteParams::default()).await.expect("cleanup");
    });
}

// ---------------------------------------------------------------------------------------------------------------
// 3. RBAC of deploy/ at the real authorizer.

async fn can(client: &Client, group: &str, resource: &str, verb: &str, namespace: Option<&str>, name: Option<&str>) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                namespace: namespace.map(Into::into),
                name: name.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let r =
        Api::<SelfSubjectAccessReview>::all(client.clone()).create(&PostParams::default(), &review).await.expect("SelfSubjectAccessReview");
    r.status.expect("review status").allowed
}

const ALL_VERBS: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn deploy_rbac_grants_exactly_what_the_code_uses() {
    let Some(h) = harness("deploy_rbac_grants_exactly_what_the_code_uses") else { return };
    runtime().block_on(async {
        let admin = h.deployed_admin().await;
        let ns = unique("e2e-rbac");
        create_namespace(&admin, &ns, &[]).await;

        // Every permission of k8s::rbac, verb by verb, at the real authorizer; and nothing more on those resources.
        for (sa, perms) in COMPONENTS {
            let user = format!("system:serviceaccount:{KUBETRON_NS}:{sa}");
            let client = h.user(&user, SA_GROUPS).await;
            // The bindings were just created: wait until the authorizer's caches show every grant (ClusterRoleBindings
            // and RoleBindings are cached separately), then check grants and refusals.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let mut missing = Vec::new();
                for p in perms.iter() {
                    let home = if p.own_namespace_only { KUBETRON_NS } else { ns.as_str() };
                    for verb in p.verbs {
                        if !can(&client, p.api_group, p.resource, verb, Some(home), p.resource_names.first().copied()).await {
                            missing.push(format!("{verb} {}/{} in {home}", p.api_group, p.resource));
                        }
                    }
                }
                if missing.is_empty() {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{user} is not granted what k8s::rbac says it uses: {missing:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for p in perms.iter() {
                let name = p.resource_names.first().copied();
                let home = if p.own_namespace_only { KUBETRON_NS } else { ns.as_str() };
                for verb in ALL_VERBS {
                    let want = p.verbs.contains(verb);
                    let got = can(&client, p.api_group, p.resource, verb, Some(home), name).await;
                    assert_eq!(got, want, "{user}: {verb} {}/{} in {home} (name {name:?})", p.api_group, p.resource);
                }
                if p.own_namespace_only {
                    for verb in p.verbs {
                        assert!(
                            !can(&client, p.api_group, p.resource, verb, Some(&ns), None).await,
                            "{user}: {verb} {} outside {KUBETRON_NS}",
                            p.resource
                        );
                    }
                }
                if !p.resource_names.is_empty() {
                    for verb in p.verbs {
                        assert!(
                            !can(&client, p.api_group, p.resource, verb, None, Some("someone-else")).await,
                            "{user}: {verb} {} of another name",
                            p.resource
                        );
                    }
                }
            }
            for (group, resource) in
                [("", "secrets"), ("", "configmaps"), ("apps", "deployments"), ("rbac.authorization.k8s.io", "clusterroles")]
            {
                for verb in ["get", "list", "create"] {
                    assert!(!can(&client, group, resource, verb, Some(&ns), None).await, "{user} may not {verb} {resource}");
                }
            }
        }

        // The controller identity, doing what the controller does (and not more).
        let ctl = h.user(CONTROLLER_USER, SA_GROUPS).await;
        let pp = PostParams::default();
        let admin_pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
        admin_pods.create(&pp, &pod("p", Some("blue"))).await.expect("admin creates a pod");
        let ctl_pods: Api<Pod> = Api::namespaced(ctl.clone(), &ns);
        let all: Api<Pod> = Api::all(ctl.clone());
        assert!(all
            .list(&ListParams::default())
            .await
            .expect("controller lists pods")
            .items
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some("p")));
        let mut w = Box::pin(kube::runtime::watcher(ctl_pods.clone(), Default::default()));
        let first = tokio::time::timeout(Duration::from_secs(30), futures::StreamExt::next(&mut w)).await.expect("watch answers");
        assert!(matches!(first, Some(Ok(_))), "controller watches pods: {first:?}");
        drop(w);
        // Status annotations go through pods/status; the pod object itself is not the controller's to patch.
        let annotate = json!({"metadata": {"annotations": {"kubetron.io/interfaces": "[]"}}});
        let patched = ctl_pods
            .patch_status("p", &PatchParams::default(), &Patch::Merge(&annotate))
            .await
            .expect("controller patches pod annotations through pods/status");
        assert_eq!(patched.metadata.annotations.unwrap()["kubetron.io/interfaces"], "[]");
        expect_code(ctl_pods.patch("p", &PatchParams::default(), &Patch::Merge(&annotate)).await, 403, "controller patches the pod");
        expect_code(ctl_pods.delete("p", &DeleteParams::default()).await, 403, "controller deletes a pod");
        expect_code(ctl_pods.create(&pp, &pod("q", None)).await, 403, "controller creates a pod");
        expect_code(Api::<Secret>::namespaced(ctl.clone(), &ns).list(&ListParams::default()).await, 403, "controller reads secrets");
        // Events go through kube-runtime's Recorder: events.k8s.io/v1 only.
        let event: EventsV1 = serde_json::from_value(json!({
            "metadata": {"name": "p.e2e", "namespace": ns},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "kubetron-controller", "reportingInstance": "e2e", "action": "ReconcilePorts",
            "regarding": {"kind": "Pod", "name": "p", "namespace": ns},
            "reason": "E2E", "note": "hello", "type": "Normal"
        }))
        .unwrap();
        let events = Api::<EventsV1>::namespaced(ctl.clone(), &ns);
        events.create(&pp, &event).await.expect("controller records events");
        let series = json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}});
        events.patch("p.e2e", &PatchParams::default(), &Patch::Merge(&series)).await.expect("controller counts repeated events");
        let core: Event = serde_json::from_value(json!({
            "metadata": {"name": "p.e2e-core", "namespace": ns},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
            "reason": "E2E", "message": "hello", "type": "Normal"
        }))
        .unwrap();
        expect_code(Api::<Event>::namespaced(ctl.clone(), &ns).create(&pp, &core).await, 403, "controller records core/v1 events");
        let lease_name = unique("e2e-lease");
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": lease_name}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}
        }))
        .unwrap();
        let leases: Api<Lease> = Api::namespaced(ctl.clone(), KUBETRON_NS);
        leases.create(&pp, &lease).await.expect("controller creates its lease");
        let mut got = leases.get(&lease_name).await.expect("controller gets its lease");
        got.spec.as_mut().unwrap().holder_identity = Some("other".into());
        leases.replace(&lease_name, &pp, &got).await.expect("controller updates its lease");
        expect_code(leases.delete(&lease_name, &DeleteParams::default()).await, 403, "controller deletes a lease");
        expect_code(Api::<Lease>::namespaced(ctl.clone(), &ns).create(&pp, &lease).await, 403, "controller lease outside kubetron");
        let ctl_nads: Api<NetworkAttachmentDefinition> = Api::namespaced(ctl.clone(), &ns);
        ctl_nads.create(&pp, &new_nad(&ns, "n1", r#"{"type":"kubetron"}"#, &[])).await.expect("controller creates NADs");
        ctl_nads.delete("n1", &DeleteParams::default()).await.expect("controller deletes NADs");

        // The webhook identity: reads NADs, publishes its CA into its own configuration only.
        let wh = h.user(WEBHOOK_USER, SA_GROUPS).await;
        let wh_nads: Api<NetworkAttachmentDefinition> = Api::namespaced(wh.clone(), &ns);
        wh_nads.list(&ListParams::default()).await.expect("webhook lists NADs");
        expect_code(wh_nads.create(&pp, &new_nad(&ns, "n2", r#"{"type":"kubetron"}"#, &[])).await, 403, "webhook creates NADs");
        expect_code(Api::<Pod>::namespaced(wh.clone(), &ns).list(&ListParams::default()).await, 403, "webhook lists pods");
        // Its MutatingWebhookConfiguration, made harmless (selects no namespace) since other tests share the apiserver.
        let mwcs: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
        let mut cfg =
            webhook_configuration(WEBHOOK_CONFIGURATION_NAME, "https://127.0.0.1:1/mutate", "unused", "kubetron-e2e/never", "never");
        cfg.metadata.name = Some(WEBHOOK_CONFIGURATION_NAME.into());
        for hook in cfg.webhooks.iter_mut().flatten() {
            hook.client_config.ca_bundle = None;
        }
        create_or_exists(&mwcs, &cfg).await;
        let ca = k8s::webhook::generate_certificate(&["127.0.0.1".into()]).expect("cert").ca_pem;
        register_ca_bundle(wh.clone(), WEBHOOK_CONFIGURATION_NAME, &ca, Duration::from_secs(5)).await.expect("webhook registers its CA");
        let now = mwcs.get(WEBHOOK_CONFIGURATION_NAME).await.unwrap();
        let hooks = now.webhooks.unwrap();
        assert_eq!(hooks.len(), 2, "strategic merge kept both webhooks");
        for hook in &hooks {
            assert_eq!(hook.client_config.ca_bundle.as_ref().map(|b| b.0.clone()), Some(ca.clone().into_bytes()), "{}", hook.name);
            assert_eq!(hook.client_config.url.as_deref(), Some("https://127.0.0.1:1/mutate"), "the rest is untouched");
        }
        let other = format!("kubetron-e2e-{ns}");
        let mut cfg2 = cfg.clone();
        cfg2.metadata.name = Some(other.clone());
        cfg2.metadata.resource_version = None;
        mwcs.create(&pp, &cfg2).await.expect("another configuration");
        let wh_mwcs: Api<MutatingWebhookConfiguration> = Api::all(wh.clone());
        expect_code(wh_mwcs.get(&other).await, 403, "webhook reads another configuration");
        let err = register_ca_bundle(wh.clone(), &other, "x", Duration::from_secs(1)).await.expect_err("may not patch others");
        assert!(err.to_string().contains("forbidden"), "{err}");
        expect_code(wh_mwcs.list(&ListParams::default()).await, 403, "webhook lists configurations");
        for n in [other.as_str(), WEBHOOK_CONFIGURATION_NAME] {
            mwcs.delete(n, &DeleteParams::default()).await.expect("cleanup");
        }

        // The node identity lists and watches pods and NADs (its CNI server's caches) and writes nothing.
        let node = h.user(NODE_USER, SA_GROUPS).await;
        let node_pods = Api::<Pod>::namespaced(node.clone(), &ns);
        node_pods.list(&ListParams::default()).await.expect("node lists pods");
        Api::<NetworkAttachmentDefinition>::all(node.clone()).list(&ListParams::default()).await.expect("node lists NADs");
        expect_code(node_pods.get("p").await, 403, "node gets a pod");
        let annotate = serde_json::json!({"metadata": {"annotations": {"kubetron.io/interfaces": "{}"}}});
        expect_code(node_pods.patch("p", &PatchParams::default(), &Patch::Merge(&annotate)).await, 403, "node patches a pod");
        expect_code(node_pods.patch_status("p", &PatchParams::default(), &Patch::Merge(&annotate)).await, 403, "node patches pod status");
        expect_code(node_pods.delete("p", &DeleteParams::default()).await, 403, "node deletes a pod");
        let nad_api = Api::<NetworkAttachmentDefinition>::namespaced(node.clone(), &ns);
        expect_code(nad_api.create(&pp, &new_nad(&ns, "n3", r#"{"type":"kubetron"}"#, &[])).await, 403, "node creates NADs");
        expect_code(Api::<Secret>::namespaced(node, &ns).list(&ListParams::default()).await, 403, "node reads secrets");
    });
}

// ---------------------------------------------------------------------------------------------------------------
// 4. NAD sync: switches marked in a real OVN Northbound appear as NADs through the real API, as the
//    controller's identity with the deploy/ RBAC.

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn nad_sync_mirrors_marked_switches() {
    let Some(h) = harness("nad_sync_mirrors_marked_switches") else { return };
    let dir = tempfile::tempdir().unwrap();
    let central = daemons::Central::start(&dir.path().join("central"), false).expect("OVN central");
    let nbctl = |args: &[&str]| central.nbctl(args).unwrap_or_else(|e| panic!("ovn-nbctl {args:?}: {e}"));
    let (a, b) = (unique("sync-a"), unique("sync-b"));
    let net = unique("net");
    let phys = unique("phys");
    let clash = unique("clash");
    nbctl(&["ls-add", &net, "--", "set", "Logical_Switch", &net, &format!("external_ids:kubetron.io/namespaces=\"{a},{b}\"")]);
    nbctl(&["ls-add", &phys, "--", "set", "Logical_Switch", &phys, &format!("external_ids:kubetron.io/namespaces={a}")]);
    nbctl(&[
        "lsp-add",
        &phys,
        &format!("{phys}-ln"),
        "",
        "42",
        "--",
        "lsp-set-type",
        &format!("{phys}-ln"),
        "localnet",
        "--",
        "lsp-set-options",
        &format!("{phys}-ln"),
        "network_name=physnet1",
    ]);
    nbctl(&["ls-add", &clash, "--", "set", "Logical_Switch", &clash, &format!("external_ids:kubetron.io/namespaces={b}")]);

    let rt = runtime();
    rt.block_on(async {
        let admin = h.deployed_admin().await;
        for ns in [&a, &b] {
            create_namespace(&admin, ns, &[]).await;
        }
        // A hand-made NAD owns the name the clash switch would get: it stays as it is.
        let hand = new_nad(&b, &clash, KUBETRON_CONFIG, &[]);
        Api::<NetworkAttachmentDefinition>::namespaced(admin.clone(), &b).create(&PostParams::default(), &hand).await.unwrap();
        // A NAD an earlier version synced for `net` in b, with the `nb` it used to write: the sync
        // rewrites it without (cluster mode: the nodes never reach the Northbound database).
        let old_config = serde_json::json!({
            "cniVersion": "1.0.0", "name": net, "type": "kubetron", "logical_switch": net,
            "nb": "tcp:198.51.100.1:6641", "capabilities": {"ips": true, "mac": true},
        })
        .to_string();
        let mut old = new_nad(&b, &net, &old_config, &[(k8s::nadsync::SWITCH_ANNOTATION, net.as_str())]);
        old.metadata.labels = Some([(k8s::nadsync::SYNCED_LABEL.to_string(), k8s::nadsync::SYNCED_VALUE.to_string())].into());
        Api::<NetworkAttachmentDefinition>::namespaced(admin.clone(), &b).create(&PostParams::default(), &old).await.unwrap();

        let ctl = h.user(CONTROLLER_USER, SA_GROUPS).await;
        let nb = k8s::controller::Nb::start(ovsdb::Client::connect_to(&central.nb_remote()).await.unwrap()).await.unwrap();
        let (_leader_tx, leader) = tokio::sync::watch::channel(true);
        let settings = k8s::nadsync::SyncSettings::new();
        // A periodic resync far beyond the test: everything below is driven by OVN and API events.
        let task = tokio::spawn(k8s::nadsync::run(
            ctl,
            k8s::nadsync::OvnSource::new(nb),
            settings,
            leader,
            Duration::from_millis(100),
            Duration::from_secs(600),
        ));

        let in_a: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &a);
        let in_b: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &b);
        let get = |api: &Api<NetworkAttachmentDefinition>, name: &str| {
            let (api, name) = (api.clone(), name.to_string());
            async move { api.get_opt(&name).await.expect("get NAD") }
        };
        let net_a = wait_for("the synced NAD in namespace a", Duration::from_secs(20), || get(&in_a, &net)).await;
        let cfg = net_a.kubetron_config().unwrap().expect("a kubetron config");
        assert_eq!(cfg.logical_switch(), net);
        assert!(cfg.kubetron.granted().ips && cfg.kubetron.granted().mac);
        // Cluster mode: no `nb` and no `mode` in what the sync writes.
        assert_eq!((&cfg.kubetron.nb, cfg.kubetron.mode), (&None, None), "{}", net_a.spec.config);
        // The old synced NAD in b is rewritten like the one in a (same switch: same config).
        let net_b = wait_for("the old synced NAD in b rewritten without nb", Duration::from_secs(20), || async {
            get(&in_b, &net).await.filter(|n| n.spec.config == net_a.spec.config)
        })
        .await;
        assert!(net_b.kubetron_config().unwrap().expect("a kubetron config").kubetron.nb.is_none());
        let phys_a = wait_for("the physical network's NAD", Duration::from_secs(20), || get(&in_a, &phys)).await;
        assert_eq!(
            phys_a.metadata.annotations.as_ref().and_then(|m| m.get(RESOURCE_NAME_ANNOTATION)).map(String::as_str),
            Some("kubetron.io/physnet1")
        );
        assert!(get(&in_b, &phys).await.is_none(), "phys is exposed to a only");
        // The hand-made NAD was not taken over.
        let still = get(&in_b, &clash).await.expect("hand-made NAD");
        assert_eq!(still.spec.config, KUBETRON_CONFIG);
        assert!(still.metadata.labels.as_ref().is_none_or(|l| !l.contains_key(k8s::nadsync::SYNCED_LABEL)));

        // Narrowing the exposure deletes the NAD in b.
        nbctl(&["set", "Logical_Switch", &net, &format!("external_ids:kubetron.io/namespaces={a}")]);
        wait_for("the NAD in b to go", Duration::from_secs(20), || async { get(&in_b, &net).await.is_none().then_some(()) }).await;
        assert!(get(&in_a, &net).await.is_some());

        // A synced NAD deleted or edited by hand is repaired (the sync watches its NADs).
        in_a.delete(&net, &DeleteParams::default()).await.unwrap();
        let mut edited = get(&in_a, &phys).await.unwrap();
        edited.spec.config = KUBETRON_CONFIG.to_string();
        in_a.replace(&phys, &PostParams::default(), &edited).await.unwrap();
        wait_for("the deleted NAD to come back", Duration::from_secs(20), || get(&in_a, &net)).await;
        wait_for("the edited NAD to be restored", Duration::from_secs(20), || async {
            let n = get(&in_a, &phys).await?;
            (n.spec.config == phys_a.spec.config).then_some(())
        })
        .await;

        // A switch for every namespace ("*") reaches a namespace created afterwards.
        let every = unique("every");
        nbctl(&["ls-add", &every, "--", "set", "Logical_Switch", &every, "external_ids:kubetron.io/namespaces=*"]);
        wait_for("the * NAD in b", Duration::from_secs(20), || get(&in_b, &every)).await;
        let c = unique("sync-c");
        create_namespace(&admin, &c, &[]).await;
        let in_c: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &c);
        wait_for("the * NAD in a namespace made later", Duration::from_secs(20), || get(&in_c, &every)).await;
        nbctl(&["destroy", "Logical_Switch", &every]);
        wait_for("the * NADs to go", Duration::from_secs(20), || async {
            let n: Api<NetworkAttachmentDefinition> = Api::all(admin.clone());
            let left = n
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|x| x.metadata.name.as_deref() == Some(every.as_str()))
                .count();
            (left == 0).then_some(())
        })
        .await;

        // Unmarking deletes; the hand-made NAD is still there.
        nbctl(&["remove", "Logical_Switch", &phys, "external_ids", "kubetron.io/namespaces"]);
        wait_for("the unmarked switch's NAD to go", Duration::from_secs(20), || async { get(&in_a, &phys).await.is_none().then_some(()) })
            .await;
        assert_eq!(get(&in_b, &clash).await.expect("hand-made NAD").spec.config, KUBETRON_CONFIG);
        task.abort();
    });
}
