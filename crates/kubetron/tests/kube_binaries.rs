//! The real `kubetron` binaries (`controller`, `webhook`, the CNI plugin) as a user runs them, against a REAL
//! kube-apiserver (+ etcd) and a real OVN (central + one chassis): a pod asking for network `red` is admitted
//! and mutated by the webhook, gets a logical switch port and `kubetron.io/interfaces` from the controller,
//! is plugged by the CNI plugin with exactly those addresses, then gets `network-status`; a bad request is
//! refused at create; a MultiNetworkPolicy of the wrong shape is refused by the CRD's schema, one with a bad
//! port range by the webhook (with its path); the controller publishes the security profiles offered (OVN Port_Groups), the webhook
//! refuses one not offered to the namespace, the pod's port joins the one it asked for; deleting the pod
//! removes its port.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (else prints "skipped"). Needs the kube-apiserver (see daemons::kube),
//! etcd, ovsdb-server, ovn-northd, ovn-controller, ovs-vswitchd.
//! Run: `KUBETRON_KUBE_TESTS=1 cargo test -p kubetron --test kube_binaries`

mod kube_support;

use std::process::Command;
use std::time::Duration;

use daemons::kube::{KubeApiServer, KubeConfig};
use daemons::{Central, Chassis, ChassisConfig};
use k8s::mnp::{new_policy, MultiNetworkPolicy};
use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_support::*;
use model::status::{parse_network_status, INTERFACES_ANNOTATION, NETWORK_STATUS_ANNOTATION};
use serde_json::json;
use testkit::cni::CniInvocation;

const SUBNET: &str = "10.61.0.0/24";
const NODE: &str = "node-1";

fn pod(name: &str, networks: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "example.invalid/c:1"}]}
    }))
    .expect("pod json")
}

fn in_netns(ns: &str, cmd: &[&str]) -> String {
    let out = Command::new("ip").args(["netns", "exec", ns]).args(cmd).output().expect("ip netns exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn controller_webhook_and_cni_binaries_against_real_apiserver_and_ovn() {
    if !enabled("controller_webhook_and_cni_binaries_against_real_apiserver_and_ovn") {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("kubetron-kube-bin-").tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();

    // Dropped in reverse order: the kubetron processes, the pod netns, the chassis, the central, the apiserver.
    let mut kas =
        KubeApiServer::start(KubeConfig::with_default_bin(dir.join("kube")).expect("kube-apiserver binary")).expect("start kube-apiserver");
    let kube_pids = kas.pids();
    let central = Central::start(&dir.join("central"), false).expect("start OVN central");
    let node_netns = format!("ktkb{}", std::process::id() % 100_000);
    let chassis = Chassis::start(ChassisConfig::new(NODE, dir.join(NODE), &node_netns, &central.sb_remote(), "198.51.100.61"))
        .expect("start chassis");
    chassis.wait_registered(&central.sb_remote(), Duration::from_secs(20)).expect("chassis registered");
    let nbctl = |args: &[&str]| central.nbctl(args).unwrap_or_else(|e| panic!("ovn-nbctl {args:?}: {e}")).trim().to_string();
    nbctl(&["ls-add", "red"]);
    nbctl(&["set", "Logical_Switch", "red", &format!("other_config:subnet={SUBNET}"), "other_config:exclude_ips=10.61.0.1"]);
    // Security profiles: Port_Groups the administrator offers to namespaces.
    let ns = format!("kb-{}", std::process::id());
    nbctl(&["pg-add", "web_tier"]);
    nbctl(&["set", "Port_Group", "web_tier", &format!("external_ids:kubetron.io/namespaces={ns}")]);
    nbctl(&["pg-add", "db_tier"]);
    nbctl(&["set", "Port_Group", "db_tier", "external_ids:kubetron.io/namespaces=someone-else"]);
    let nb = central.nb_remote();
    let port_row = |name: &str| -> Option<String> {
        let out = nbctl(&["--if-exists", "list", "Logical_Switch_Port", name]);
        (!out.is_empty()).then_some(out)
    };

    let rt = runtime();
    let label = "kubetron-test/binaries";
    let nad_config = json!({
        "cniVersion": "1.0.0", "name": "red", "type": "kubetron", "logical_switch": "red", "nb": nb,
        "capabilities": {"ips": true, "mac": true}
    });
    let controller_kc = kas.make_user_kubeconfig(CONTROLLER_USER, SA_GROUPS).expect("controller kubeconfig");
    let webhook_kc = kas.make_user_kubeconfig(WEBHOOK_USER, SA_GROUPS).expect("webhook kubeconfig");
    let admin = rt.block_on(async {
        let admin = client_from(&kas.kubeconfig_path()).await;
        install_crd(&admin).await;
        apply_rbac(&admin).await;
        create_namespace(&admin, &ns, &[(label, &ns)]).await;
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(admin.clone(), &ns);
        nads.create(&PostParams::default(), &new_nad(&ns, "red", &nad_config.to_string(), &[])).await.expect("create NAD red");
        // RBAC bindings were just made: wait until both identities may use them.
        let ctl = client_from(&controller_kc).await;
        let (pods, leases) = (Api::<Pod>::all(ctl.clone()), Api::<Lease>::namespaced(ctl, KUBETRON_NS));
        wait_for("the controller identity to be authorized", Duration::from_secs(20), || async {
            (pods.list(&ListParams::default().limit(1)).await.is_ok() && leases.get_opt("probe").await.is_ok()).then_some(())
        })
        .await;
        let wh_nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client_from(&webhook_kc).await, &ns);
        wait_for("the webhook identity to read NADs", Duration::from_secs(20), || async { wh_nads.get("red").await.ok() }).await;
        admin
    });

    // The binaries, as a user starts them.
    let metrics_port = free_port();
    let mut cmd = Command::new(kubetron_bin());
    cmd.args(["controller", "--nb", &nb, "--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(["--gc-interval-secs", "2", "--identity", "kb-controller"])
        .env("KUBECONFIG", &controller_kc)
        .env_remove("KUBETRON_OVN_NB")
        .env("KUBETRON_LOG", "info");
    let mut controller = Proc::spawn("controller", &dir, cmd);
    let webhook_port = free_port();
    let ca_file = dir.join("webhook-ca.pem");
    let mut cmd = Command::new(kubetron_bin());
    cmd.args(["webhook", "--listen", &format!("127.0.0.1:{webhook_port}"), "--dns-name", "127.0.0.1,localhost"])
        .arg("--ca-out")
        .arg(&ca_file)
        .env("KUBECONFIG", &webhook_kc)
        .env("KUBETRON_LOG", "info");
    let mut webhook = Proc::spawn("webhook", &dir, cmd);

    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let pp = PostParams::default();
    let wait = Duration::from_secs(30);
    let mwc_name = format!("kubetron-{ns}");
    let port = model::names::pod_port(&ns, "web", "net1");
    let pod_netns = netdev::TempNetns::new("ktkbp").expect("pod netns");
    let container_id = format!("kb{}", std::process::id());
    let conf = {
        let mut c = nad_config.clone();
        c["ovs_socket"] = json!(chassis.db_remote());
        c["port_up_timeout_ms"] = json!(20000);
        c
    };

    rt.block_on(async {
        // The webhook writes its generated CA and listens; the configuration takes the CA from that file.
        let ca = wait_for("the webhook's CA file", wait, || {
            webhook.assert_running();
            let pem = std::fs::read(&ca_file).ok().filter(|b| b.starts_with(b"-----BEGIN CERTIFICATE"));
            let listening = std::net::TcpStream::connect(("127.0.0.1", webhook_port)).is_ok();
            std::future::ready(pem.filter(|_| listening))
        })
        .await;
        let mwcs: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
        let url = format!("https://127.0.0.1:{webhook_port}/mutate");
        mwcs.create(&pp, &webhook_configuration(&mwc_name, &url, &ca, label, &ns)).await.expect("create webhook configuration");
        let dry = PostParams { dry_run: true, ..Default::default() };
        wait_for("the apiserver to call the webhook", wait, || async {
            match pods.create(&dry, &pod("probe", "Team-B/Bad Name")).await {
                Err(kube::Error::Api(s)) if s.message.contains("pods.kubetron.io") => Some(()),
                _ => None,
            }
        })
        .await;

        // A bad request is refused at create time with the webhook's message, and nothing is stored.
        let bad = pods.create(&pp, &pod("bad", "red, Team-B/Shared")).await;
        let msg = match bad {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 400, "{s:?}");
                s.message
            }
            other => panic!("bad annotation admitted: {other:?}"),
        };
        assert!(msg.contains(r#"admission webhook "pods.kubetron.io" denied the request"#), "{msg}");
        assert!(msg.contains("Team-B"), "names the bad entry: {msg}");
        assert!(pods.get_opt("bad").await.unwrap().is_none());
        // An unknown network is refused too.
        let unknown = pods.create(&pp, &pod("ghost", "nope")).await;
        assert!(matches!(&unknown, Err(kube::Error::Api(s)) if s.message.contains("nope")), "{unknown:?}");

        // MultiNetworkPolicies: the CRD's schema refuses a wrong shape, the webhook what a schema cannot say.
        let mnps: Api<MultiNetworkPolicy> = Api::namespaced(admin.clone(), &ns);
        let raw = |spec: serde_json::Value| -> MultiNetworkPolicy {
            let mut p = new_policy(&ns, "web", "red", Default::default());
            p.spec = serde_json::from_value(spec).expect("a MultiNetworkPolicy spec");
            p
        };
        // (In a namespace the webhook does not see, as when it is down: mutating webhooks run first.)
        let unwatched = format!("{ns}-nowh");
        create_namespace(&admin, &unwatched, &[]).await;
        let dynamic = kube::api::Api::<kube::api::DynamicObject>::namespaced_with(
            admin.clone(),
            &unwatched,
            &kube::api::ApiResource::erase::<MultiNetworkPolicy>(&()),
        );
        for (name, body, path) in [("shape", json!({"spec": {"podSelector": "web"}}), "spec.podSelector"), ("nospec", json!({}), "spec")] {
            let mut obj = json!({"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy", "metadata": {"name": name}});
            obj.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
            let r = dynamic.create(&pp, &serde_json::from_value(obj).unwrap()).await;
            assert!(matches!(&r, Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(path)), "{name}: {r:?}");
        }
        let bad = mnps.create(&pp, &raw(json!({"podSelector": {}, "ingress": [{"ports": [{"port": 9000, "endPort": 8000}]}]}))).await;
        match bad {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 400, "{s:?}");
                assert!(s.message.contains("multinetworkpolicies.kubetron.io"), "{}", s.message);
                assert!(s.message.contains("spec.ingress[0].ports[0].endPort: 8000 is below port 9000"), "{}", s.message);
            }
            other => panic!("a bad policy was admitted: {other:?}"),
        }
        let good = raw(json!({"podSelector": {}, "ingress": [{"ports": [{"port": 8000, "endPort": 9000}]}]}));
        mnps.create(&pp, &good).await.expect("a good policy is admitted");
        mnps.delete("web", &DeleteParams::default()).await.expect("delete policy");

        // The controller publishes the offered profiles; the webhook refuses one not offered here.
        let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), KUBETRON_NS);
        let offers = wait_for("the offered security profiles ConfigMap", wait, || async {
            cms.get_opt(k8s::profiles::CONFIGMAP).await.ok().flatten().and_then(|c| c.data).filter(|d| d.len() == 2)
        })
        .await;
        assert_eq!(offers.get("web_tier"), Some(&ns), "{offers:?}");
        let refused = pods.create(&pp, &pod("db", r#"[{"name":"red","kubetron.io/security-profile":"db_tier"}]"#)).await;
        match refused {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 403, "{s:?}");
                assert!(s.message.contains(&format!("\"db_tier\" is not offered to namespace {ns}")), "{}", s.message);
            }
            other => panic!("a profile not offered was admitted: {other:?}"),
        }

        // The good pod, in the web_tier profile: stored with the webhook's env var.
        let created =
            pods.create(&pp, &pod("web", r#"[{"name":"red","kubetron.io/security-profile":"web_tier"}]"#)).await.expect("create pod web");
        let uid = created.metadata.uid.clone().expect("uid");
        let stored = pods.get("web").await.expect("get web");
        let env = stored.spec.as_ref().unwrap().containers[0].env.clone().unwrap_or_default();
        assert!(env.iter().any(|e| e.name == "NETWORK_INTERFACE_RED" && e.value.as_deref() == Some("net1")), "webhook env var: {env:?}");

        // The controller (a separate process) makes the port and annotates the pod.
        let row = wait_for(&format!("port {port} in NB"), wait, || {
            controller.assert_running();
            std::future::ready(port_row(&port))
        })
        .await;
        assert!(row.contains(&uid), "port tagged with the pod UID: {row}");
        let port_uuid = nbctl(&["get", "Logical_Switch_Port", &port, "_uuid"]);
        assert!(nbctl(&["get", "Port_Group", "web_tier", "ports"]).contains(&port_uuid), "the port joined its profile");
        let value = wait_for("kubetron.io/interfaces", wait, || async {
            pods.get("web").await.ok()?.metadata.annotations?.get(INTERFACES_ANNOTATION).cloned()
        })
        .await;
        let parsed = model::handoff::parse(&value).expect("interfaces annotation parses");
        let h = parsed.handoff().expect("a v1 hand-off");
        assert_eq!(h.pod_uid, uid, "{value}");
        let ifaces = &h.interfaces;
        assert_eq!(ifaces.len(), 1, "{value}");
        let (mac, ip_cidr) = (ifaces[0].mac.clone(), ifaces[0].ips[0].to_string());
        assert_eq!(ifaces[0].logical_port, port);
        assert!(ip_cidr.starts_with("10.61.0.") && ip_cidr.ends_with("/24") && ip_cidr != "10.61.0.1/24", "{ip_cidr}");
        let ip = ip_cidr.split('/').next().unwrap().to_string();
        let annotations = pods.get("web").await.unwrap().metadata.annotations.unwrap_or_default();
        assert!(!annotations.contains_key(NETWORK_STATUS_ANNOTATION), "no network-status before the pod is plugged");

        // The node's runtime runs the CNI plugin for the pod: it gets exactly the controller's addresses.
        let args =
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME=web;K8S_POD_UID={uid};K8S_POD_INFRA_CONTAINER_ID={container_id}");
        // One CNI call of the real binary inside the chassis' netns, as a runtime does.
        let cni = |command: &str| {
            CniInvocation::new(kubetron_bin(), command)
                .in_named_netns(&node_netns)
                .container_id(&container_id)
                .netns(pod_netns.path())
                .ifname("net1")
                .args(&args)
                .config(&conf)
                .run()
                .expect("run the CNI plugin")
        };
        let add = cni("ADD");
        let (result, stderr) = (&add.json, &add.stderr);
        assert_eq!(add.exit_code, 0, "CNI ADD: {result} {stderr}");
        assert_eq!(result["interfaces"][1]["mac"], mac.as_str(), "{result}");
        assert_eq!(result["ips"][0]["address"], ip_cidr.as_str(), "{result}");
        let link = in_netns(pod_netns.name(), &["ip", "-o", "link", "show", "net1"]);
        assert!(link.contains(&mac), "pod interface MAC: {link}");
        let addr = in_netns(pod_netns.name(), &["ip", "-o", "-4", "addr", "show", "net1"]);
        assert!(addr.contains(&ip_cidr), "pod interface IP: {addr}");
        assert_eq!(nbctl(&["get", "Logical_Switch_Port", &port, "up"]), "true");

        // The port is up: the controller writes network-status.
        let value = wait_for("k8s.v1.cni.cncf.io/network-status", wait, || async {
            pods.get("web").await.ok()?.metadata.annotations?.get(NETWORK_STATUS_ANNOTATION).cloned()
        })
        .await;
        let status = parse_network_status(&value).expect("network-status parses");
        assert_eq!(status.len(), 1, "{value}");
        assert_eq!(status[0].name, format!("{ns}/red"));
        assert_eq!(status[0].interface.as_deref(), Some("net1"));
        assert_eq!(status[0].ips, vec![ip.clone()]);
        assert_eq!(status[0].mac.as_deref(), Some(mac.as_str()));

        // The controller's telemetry says it leads.
        let metrics = wait_for("kubetron_controller_leader 1 on /metrics", wait, || async {
            http_get(metrics_port, "/metrics").filter(|m| m.lines().any(|l| l == "kubetron_controller_leader 1"))
        })
        .await;
        assert!(metrics.contains("# TYPE kubetron_controller_leader gauge"), "{metrics}");
        let lease = Api::<Lease>::namespaced(admin.clone(), KUBETRON_NS).get("kubetron-controller").await.expect("lease");
        assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some("kb-controller"));

        // Deleting the pod removes its port; the runtime's DEL then succeeds and unplugs.
        pods.delete("web", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete web");
        wait_for(&format!("port {port} to leave NB"), wait, || async { port_row(&port).is_none().then_some(()) }).await;
        let del = cni("DEL");
        assert_eq!(del.exit_code, 0, "CNI DEL: {} {}", del.json, del.stderr);
        let bridge = chassis.vsctl(&["list-ports", "br-int"]).unwrap();
        assert!(bridge.lines().all(|l| l.starts_with("ovn-")), "OVS ports left: {bridge}");
        assert!(in_netns(pod_netns.name(), &["ip", "-o", "link"]).lines().all(|l| !l.contains("net1")), "net1 left in the pod");

        mwcs.delete(&mwc_name, &DeleteParams::default()).await.expect("delete webhook configuration");
    });

    // Everything stops.
    let (cpid, wpid) = (controller.pid(), webhook.pid());
    controller.assert_running();
    webhook.assert_running();
    drop(controller);
    drop(webhook);
    drop(rt);
    drop(pod_netns);
    drop(chassis);
    drop(central);
    kas.stop().expect("stop kube-apiserver");
    for pid in [cpid, wpid].into_iter().chain(kube_pids) {
        assert!(!pid_alive(pid), "process {pid} still runs");
    }
    let netns = in_netns_list();
    assert!(!netns.contains(&node_netns), "{netns}");
}

fn in_netns_list() -> String {
    String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned()
}
