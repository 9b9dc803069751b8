//! The manifests in deploy/: every file parses, kustomization lists them all, kinds are
//! typed-valid, RBAC grants exactly what `k8s::rbac` says the code uses, and the webhook
//! wiring (Service, MutatingWebhookConfiguration, Deployment args) is consistent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use k8s::rbac::{Permission, COMPONENTS, WEBHOOK_CONFIGURATION_NAME};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

const NS: &str = "kubetron";

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
    fn typed<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.value.clone()).unwrap_or_else(|e| panic!("{}: {} {}: {e}", self.file, self.kind(), self.name()))
    }
}

fn kustomization() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(deploy_dir().join("kustomization.yaml")).unwrap()).unwrap()
}

fn docs() -> Vec<Doc> {
    let mut out = Vec::new();
    for f in kustomization()["resources"].as_array().unwrap() {
        let file = f.as_str().unwrap().to_string();
        let text = std::fs::read_to_string(deploy_dir().join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for d in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !value.is_null() {
                out.push(Doc { file: file.clone(), value });
            }
        }
    }
    out
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Doc {
    docs.iter().find(|d| d.kind() == kind && d.name() == name).unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn kustomization_lists_every_manifest() {
    let listed: BTreeSet<String> =
        kustomization()["resources"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk);
}

#[test]
fn kinds_parse_as_their_types() {
    let docs = docs();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for d in &docs {
        *kinds.entry(d.kind().to_string()).or_default() += 1;
        assert!(!d.name().is_empty(), "{}: unnamed {}", d.file, d.kind());
        match d.kind() {
            "Namespace" => drop(d.typed::<Namespace>()),
            "ConfigMap" => drop(d.typed::<ConfigMap>()),
            "CustomResourceDefinition" => drop(d.typed::<CustomResourceDefinition>()),
            "ServiceAccount" => drop(d.typed::<ServiceAccount>()),
            "ClusterRole" => drop(d.typed::<ClusterRole>()),
            "ClusterRoleBinding" => drop(d.typed::<ClusterRoleBinding>()),
            "Role" => drop(d.typed::<Role>()),
            "RoleBinding" => drop(d.typed::<RoleBinding>()),
            "Deployment" => drop(d.typed::<Deployment>()),
            "DaemonSet" => drop(d.typed::<DaemonSet>()),
            "Service" => drop(d.typed::<Service>()),
            "MutatingWebhookConfiguration" => drop(d.typed::<MutatingWebhookConfiguration>()),
            other => panic!("{}: unexpected kind {other}", d.file),
        }
        let namespaced = !matches!(
            d.kind(),
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding" | "MutatingWebhookConfiguration"
        );
        let ns = d.value["metadata"]["namespace"].as_str();
        assert_eq!(ns, namespaced.then_some(NS), "{}: {} {} namespace", d.file, d.kind(), d.name());
    }
    let expected: BTreeMap<String, usize> = [
        ("Namespace", 1),
        ("ConfigMap", 1),
        ("CustomResourceDefinition", 3),
        ("ServiceAccount", 3),
        ("ClusterRole", 3),
        ("ClusterRoleBinding", 3),
        ("Role", 2),
        ("RoleBinding", 2),
        ("Deployment", 2),
        ("DaemonSet", 1),
        ("Service", 1),
        ("MutatingWebhookConfiguration", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(kinds, expected);
}

/// Rules granted to a service account: (rule, namespace-limited?).
fn granted(docs: &[Doc], sa: &str) -> Vec<(PolicyRule, bool)> {
    let is_subject = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(NS))
    };
    let mut out = Vec::new();
    for d in docs {
        match d.kind() {
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = d.typed();
                if is_subject(&b.subjects) {
                    assert_eq!(b.role_ref.kind, "ClusterRole");
                    let role: ClusterRole = find(docs, "ClusterRole", &b.role_ref.name).typed();
                    out.extend(role.rules.unwrap_or_default().into_iter().map(|r| (r, false)));
                }
            }
            "RoleBinding" => {
                let b: RoleBinding = d.typed();
                if is_subject(&b.subjects) {
                    assert_eq!(b.role_ref.kind, "Role", "RoleBindings here bind Roles");
                    let role: Role = find(docs, "Role", &b.role_ref.name).typed();
                    out.extend(role.rules.unwrap_or_default().into_iter().map(|r| (r, true)));
                }
            }
            _ => {}
        }
    }
    out
}

fn covers(rule: &PolicyRule, p: &Permission, verb: &str) -> bool {
    let has = |list: &Option<Vec<String>>, v: &str| list.iter().flatten().any(|x| x == v);
    has(&rule.api_groups, p.api_group)
        && has(&rule.resources, p.resource)
        && rule.verbs.iter().any(|v| v == verb)
        && (p.resource_names.is_empty()
            || rule.resource_names.as_ref().is_some_and(|n| {
                let n: BTreeSet<&str> = n.iter().map(String::as_str).collect();
                n == p.resource_names.iter().copied().collect()
            }))
}

#[test]
fn rbac_grants_exactly_what_the_code_uses() {
    let docs = docs();
    for (sa, perms) in COMPONENTS {
        find(&docs, "ServiceAccount", sa);
        let rules = granted(&docs, sa);
        assert!(!rules.is_empty(), "{sa} has no rules");
        // Every permission the code uses is granted, with the right scope.
        for p in *perms {
            for verb in p.verbs {
                let ok = rules.iter().any(|(r, ns_only)| *ns_only == p.own_namespace_only && covers(r, p, verb));
                assert!(ok, "{sa} lacks {verb} on {}/{}", p.api_group, p.resource);
            }
        }
        // Least privilege: nothing beyond that list, no wildcards.
        for (r, ns_only) in &rules {
            for g in r.api_groups.iter().flatten() {
                for res in r.resources.iter().flatten() {
                    for verb in &r.verbs {
                        assert!(g != "*" && res != "*" && verb != "*", "{sa}: wildcard rule {r:?}");
                        let needed = perms.iter().any(|p| {
                            p.api_group == g && p.resource == res && p.verbs.contains(&verb.as_str()) && p.own_namespace_only == *ns_only
                        });
                        assert!(needed, "{sa}: {verb} on {g}/{res} is granted but not used");
                    }
                }
            }
        }
    }
}

fn pod_spec(d: &Doc) -> PodSpec {
    serde_json::from_value(d.value["spec"]["template"]["spec"].clone()).unwrap()
}

#[test]
fn workloads_use_their_accounts_and_selectors_match() {
    let docs = docs();
    for (kind, name, sa) in [
        ("Deployment", "kubetron-controller", "kubetron-controller"),
        ("Deployment", "kubetron-webhook", "kubetron-webhook"),
        ("DaemonSet", "kubetron-node", "kubetron-node"),
    ] {
        let d = find(&docs, kind, name);
        let spec = pod_spec(d);
        assert_eq!(spec.service_account_name.as_deref(), Some(sa), "{name}");
        let selector = d.value["spec"]["selector"]["matchLabels"].as_object().unwrap();
        let labels = d.value["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
        for (k, v) in selector {
            assert_eq!(labels.get(k), Some(v), "{name}: selector {k} matches the template");
        }
    }
    // The node DaemonSet installs the CNI binary into the host's /opt/cni/bin and chains kubetron into
    // the runtime's config in /etc/cni/net.d (`kubetron install-cni`; its flags are checked against the
    // binary by crates/kubetron/tests/manifests_match_binary.rs).
    let node = pod_spec(find(&docs, "DaemonSet", "kubetron-node"));
    let init = &node.init_containers.as_ref().unwrap()[0];
    assert!(init.command.is_none(), "the image has no shell: {:?}", init.command);
    let args = init.args.as_ref().expect("install-cni args");
    assert_eq!(args[0], "install-cni", "{args:?}");
    for (flag, host) in [("--bin-dir", "/opt/cni/bin"), ("--conf-dir", "/etc/cni/net.d")] {
        let dir = args.iter().find_map(|a| a.strip_prefix(&format!("{flag}="))).unwrap_or_else(|| panic!("{flag} in {args:?}"));
        let mount = init.volume_mounts.as_ref().unwrap().iter().find(|m| m.mount_path == dir).unwrap_or_else(|| panic!("{dir} mounted"));
        let vol = node.volumes.as_ref().unwrap().iter().find(|v| v.name == mount.name).unwrap();
        assert_eq!(vol.host_path.as_ref().unwrap().path, host, "{flag}");
        assert_eq!(mount.read_only, None, "{flag}: written");
    }
    // A sidecar keeps the entry there (the same installer, --watch, the same directories).
    let keeper = node.containers.iter().find(|c| c.name == "cni-keeper").expect("cni-keeper");
    let keeper_args = keeper.args.as_ref().expect("args");
    assert!(keeper_args.contains(&"--watch".to_string()) && keeper_args[0] == "install-cni", "{keeper_args:?}");
    for a in args {
        assert!(keeper_args.contains(a), "the keeper installs what the init container does: {a}");
    }
    // Cluster mode: the agent knows its node, has the socket directory and sees pods' netns.
    let c = &node.containers[0];
    assert_eq!(c.name, "node");
    let env = c.env.as_ref().unwrap();
    let node_name = env.iter().find(|e| e.name == "NODE_NAME").expect("NODE_NAME");
    let field = node_name.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).expect("NODE_NAME from the downward API");
    assert_eq!(field.field_path, "spec.nodeName");
    let mounts = c.volume_mounts.as_ref().unwrap();
    assert!(mounts.iter().any(|m| m.mount_path == "/run/kubetron"), "{mounts:?}");
    let netns = mounts.iter().find(|m| m.mount_path == "/run/netns").expect("/run/netns mounted");
    assert_eq!(netns.mount_propagation.as_deref(), Some("HostToContainer"));
    // No node-side OVN Northbound address or credential anywhere in deploy/.
    for d in &docs {
        if d.value["kind"] == "DaemonSet" {
            let text = d.value.to_string();
            assert!(!text.contains("KUBETRON_OVN_NB") && !text.contains("ovn-nb-address") && !text.contains("--nb"), "{text}");
        }
    }
}

#[test]
fn webhook_wiring_is_consistent() {
    let docs = docs();
    let mwc: MutatingWebhookConfiguration = find(&docs, "MutatingWebhookConfiguration", WEBHOOK_CONFIGURATION_NAME).typed();
    let hooks = mwc.webhooks.unwrap();
    let names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["pods.kubetron.io", "multinetworkpolicies.kubetron.io"]);
    for h in &hooks {
        // Never blocks a pod or a policy when the webhook is down: the controller enforces the same rules.
        assert_eq!(h.failure_policy.as_deref(), Some("Ignore"));
        let exprs = h.namespace_selector.as_ref().and_then(|s| s.match_expressions.clone()).unwrap_or_default();
        let system = exprs.iter().find(|e| e.key == "kubernetes.io/metadata.name").expect("system namespaces excluded");
        assert_eq!(system.operator, "NotIn");
        for ns in ["kube-system", "kubetron"] {
            assert!(system.values.as_ref().is_some_and(|v| v.iter().any(|x| x == ns)), "{ns} excluded");
        }
        assert_eq!(h.side_effects, "None");
        assert_eq!(h.admission_review_versions, vec!["v1"]);
        assert_eq!(h.client_config.service.as_ref().unwrap().path.as_deref(), Some("/mutate"));
        assert_eq!(h.client_config.service, hooks[0].client_config.service, "one server");
    }
    let rules = hooks[0].rules.as_ref().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].operations.as_deref(), Some(&["CREATE".to_string()][..]));
    assert_eq!(rules[0].resources.as_deref(), Some(&["pods".to_string()][..]));
    assert_eq!(rules[0].api_groups.as_deref(), Some(&["".to_string()][..]));
    let rules = hooks[1].rules.as_ref().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].operations.as_deref(), Some(&["CREATE".to_string(), "UPDATE".to_string()][..]));
    assert_eq!(rules[0].resources.as_deref(), Some(&[k8s::mnp::MultiNetworkPolicy::plural(&()).to_string()][..]));
    assert_eq!(rules[0].api_groups.as_deref(), Some(&[k8s::mnp::MultiNetworkPolicy::group(&()).to_string()][..]));
    assert_eq!(rules[0].api_versions.as_deref(), Some(&[k8s::mnp::MultiNetworkPolicy::version(&()).to_string()][..]));
    let svc_ref = hooks[0].client_config.service.as_ref().unwrap();
    let svc: Service = find(&docs, "Service", &svc_ref.name).typed();
    assert_eq!(svc.metadata.namespace.as_deref(), Some(svc_ref.namespace.as_str()));
    let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(Some(port.port), svc_ref.port.or(Some(443)));

    let dep = find(&docs, "Deployment", "kubetron-webhook");
    let spec = pod_spec(dep);
    let c = &spec.containers[0];
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "webhook");
    assert!(args.contains(&format!("--register={WEBHOOK_CONFIGURATION_NAME}")), "{args:?}");
    assert!(args.contains(&format!("--dns-name={}.{}.svc", svc_ref.name, svc_ref.namespace)), "{args:?}");
    let cport = &c.ports.as_ref().unwrap()[0];
    assert!(args.contains(&format!("--listen=0.0.0.0:{}", cport.container_port)), "{args:?}");
    assert_eq!(serde_json::to_value(port.target_port.as_ref().unwrap()).unwrap(), Value::String(cport.name.clone().unwrap()));
    let probe = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!((probe.path.as_deref(), probe.scheme.as_deref()), (Some("/healthz"), Some("HTTPS")));
    // The webhook's own namespace is skipped so that it can start while it is down.
    let ns: Namespace = find(&docs, "Namespace", NS).typed();
    for h in &hooks {
        let sel = h.namespace_selector.as_ref().unwrap().match_expressions.as_ref().unwrap();
        let key = &sel[0].key;
        assert_eq!(sel[0].operator, "NotIn");
        let value = ns.metadata.labels.as_ref().unwrap().get(key).unwrap();
        assert!(sel[0].values.as_ref().unwrap().contains(value));
    }
}

/// kubectl 1.20 (kustomize v2.0, the oldest a user of deploy/ may have), built with the cluster binaries.
#[test]
#[cfg_attr(
    not(cluster_tests),
    ignore = "needs KUBETRON_CLUSTER_TESTS=1 and KUBE_BIN_DIR (kubectl from the Kubernetes build; scripts/test.sh sets both)"
)]
fn kustomize_builds() {
    let kubectl = std::path::Path::new(&std::env::var_os("KUBE_BIN_DIR").expect("KUBE_BIN_DIR")).join("kubectl");
    let out = std::process::Command::new(kubectl).arg("kustomize").arg(deploy_dir()).output().expect("running kubectl kustomize");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let built = serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).filter(|v| !v.is_null()).count();
    assert_eq!(built, docs().len(), "kustomize emits every object");
}
