//! A real kube-apiserver (+ etcd) through the `daemons::kube` harness, driven with kubectl.
//!
//! Gated: runs only with `KUBETRON_KUBE_TESTS=1` (needs the kube-apiserver binary: `$KUBE_APISERVER_BIN`, the
//! cache, or a ~5 min build by `scripts/kube-apiserver.sh`), plus `etcd`, `kubectl`, `openssl`, `curl`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use daemons::kube::{find_apiserver_bin, KubeApiServer, KubeConfig};

const NAD_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: network-attachment-definitions.k8s.cni.cncf.io
spec:
  group: k8s.cni.cncf.io
  scope: Namespaced
  names:
    plural: network-attachment-definitions
    singular: network-attachment-definition
    kind: NetworkAttachmentDefinition
    shortNames: [net-attach-def]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

const NAD_BLUE: &str = r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: blue
  namespace: default
spec:
  config: '{"cniVersion":"1.0.0","name":"blue","type":"kubetron","subnet":"10.10.0.0/24"}'
  extra:
    nested: [1, 2, 3]
"#;

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: p1
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: blue
spec:
  nodeName: node-a
  containers:
  - name: c
    image: example.invalid/pause:1
"#;

fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--cache-dir={}", cache.display()))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// kubectl that must succeed; returns stdout.
fn ok(kubeconfig: &Path, cache: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(kubeconfig, cache, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

#[test]
fn real_apiserver_crd_pod_and_rbac() {
    if std::env::var("KUBETRON_KUBE_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set KUBETRON_KUBE_TESTS=1 to run the kube-apiserver test");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = find_apiserver_bin().expect("kube-apiserver binary");
    let t0 = Instant::now();
    let mut kas = KubeApiServer::start(KubeConfig {
        dir: tmp.path().join("kube"),
        apiserver_bin: bin,
    })
    .expect("start");
    eprintln!(
        "harness started in {:?} at {}",
        t0.elapsed(),
        kas.server_url()
    );
    let pids = kas.pids();
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver");
    assert!(kas.ca_pem().starts_with(b"-----BEGIN CERTIFICATE-----"));
    let dir = kas.dir().to_path_buf();
    for name in ["etcd.pid", "kube-apiserver.pid"] {
        let text = std::fs::read_to_string(dir.join(name)).expect("pid file");
        assert!(
            pids.contains(&text.trim().parse::<u32>().expect("pid")),
            "{name}: {text}"
        );
    }
    let admin = kas.kubeconfig_path();
    let cache = tmp.path().join("kubectl-cache");

    // Namespaces exist (created by the apiserver itself).
    let ns = ok(&admin, &cache, &["get", "ns", "-o", "name"], None);
    for want in ["namespace/default", "namespace/kube-system"] {
        assert!(ns.lines().any(|l| l == want), "missing {want} in {ns}");
    }

    // CRD, established, then one object (the reflect2 crash path on a badly built apiserver).
    ok(&admin, &cache, &["apply", "-f", "-"], Some(NAD_CRD));
    ok(
        &admin,
        &cache,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/network-attachment-definitions.k8s.cni.cncf.io",
        ],
        None,
    );
    ok(&admin, &cache, &["apply", "-f", "-"], Some(NAD_BLUE));
    let config = ok(
        &admin,
        &cache,
        &[
            "get",
            "network-attachment-definitions.k8s.cni.cncf.io",
            "blue",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.config}",
        ],
        None,
    );
    assert_eq!(
        config,
        r#"{"cniVersion":"1.0.0","name":"blue","type":"kubetron","subnet":"10.10.0.0/24"}"#
    );
    let nested = ok(
        &admin,
        &cache,
        &[
            "get",
            "net-attach-def",
            "blue",
            "-o",
            "jsonpath={.spec.extra.nested}",
        ],
        None,
    );
    assert_eq!(
        nested.replace(' ', ""),
        "[1,2,3]",
        "preserve-unknown-fields kept the nested value"
    );
    assert!(
        pids.iter().all(|p| alive(*p)),
        "a process died after the custom-resource create"
    );

    // A pod bound to a node, with an annotation; then an annotation patch.
    ok(&admin, &cache, &["apply", "-f", "-"], Some(POD));
    let node = ok(
        &admin,
        &cache,
        &["get", "pod", "p1", "-o", "jsonpath={.spec.nodeName}"],
        None,
    );
    assert_eq!(node, "node-a");
    let ann = ok(
        &admin,
        &cache,
        &[
            "get",
            "pod",
            "p1",
            "-o",
            r"jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/networks}",
        ],
        None,
    );
    assert_eq!(ann, "blue");
    ok(
        &admin,
        &cache,
        &["annotate", "pod", "p1", "kubetron.example/status=attached"],
        None,
    );
    let ann = ok(
        &admin,
        &cache,
        &[
            "get",
            "pod",
            "p1",
            "-o",
            r"jsonpath={.metadata.annotations.kubetron\.example/status}",
        ],
        None,
    );
    assert_eq!(ann, "attached");

    // RBAC: admin may, a user without bindings may not, until a Role is bound.
    assert_eq!(
        ok(&admin, &cache, &["auth", "can-i", "get", "pods"], None).trim(),
        "yes"
    );
    let alice = kas
        .make_user_kubeconfig("alice", &["kubetron-testers"])
        .expect("user kubeconfig");
    let out = kubectl(&alice, &cache, &["auth", "can-i", "get", "pods"], None);
    assert!(!out.status.success(), "can-i must exit non-zero for 'no'");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    let out = kubectl(&alice, &cache, &["get", "pods"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Forbidden") && err.contains("\"alice\""),
        "expected a 403 naming alice: {err}"
    );
    ok(
        &admin,
        &cache,
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ],
        None,
    );
    ok(
        &admin,
        &cache,
        &[
            "create",
            "rolebinding",
            "alice-reads",
            "--role=pod-reader",
            "--group=kubetron-testers",
        ],
        None,
    );
    let pods = ok(&alice, &cache, &["get", "pods", "-o", "name"], None);
    assert_eq!(
        pods.trim(),
        "pod/p1",
        "alice reads pods through her group's binding"
    );
    let out = kubectl(&alice, &cache, &["delete", "pod", "p1"], None);
    assert!(!out.status.success(), "alice may not delete");

    // Teardown: nothing left running, pid files gone.
    let t1 = Instant::now();
    kas.stop().expect("stop");
    eprintln!("harness stopped in {:?}", t1.elapsed());
    assert!(kas.pids().is_empty());
    for pid in &pids {
        assert!(!alive(*pid), "process {pid} still running after stop");
    }
    assert!(!dir.join("etcd.pid").exists() && !dir.join("kube-apiserver.pid").exists());
    kas.stop().expect("second stop is a no-op");
}
