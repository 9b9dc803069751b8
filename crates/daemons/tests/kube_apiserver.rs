//! A real kube-apiserver (+ etcd) through the `daemons::kube` harness, driven with `curl` against the REST API
//! (no kubectl: it may be missing on a fresh CI machine; the kube-rs driven tests live in `crates/k8s/tests/kube_e2e_*`).
//!
//! Gated: runs only with `KUBETRON_KUBE_TESTS=1` (needs the kube-apiserver binary: `$KUBE_APISERVER_BIN`, the
//! cache, or a ~5 min build by `scripts/kube-build.sh`), plus `etcd`, `openssl`, `curl`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemons::kube::{find_apiserver_bin, KubeApiServer, KubeConfig};

const CRD_NAME: &str = "network-attachment-definitions.k8s.cni.cncf.io";

const NAD_CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"network-attachment-definitions.k8s.cni.cncf.io"},
 "spec":{"group":"k8s.cni.cncf.io","scope":"Namespaced",
  "names":{"plural":"network-attachment-definitions","singular":"network-attachment-definition",
           "kind":"NetworkAttachmentDefinition","shortNames":["net-attach-def"]},
  "versions":[{"name":"v1","served":true,"storage":true,
   "schema":{"openAPIV3Schema":{"type":"object","properties":{
     "spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}}"#;

const NAD_BLUE: &str = r#"{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
 "metadata":{"name":"blue","namespace":"default"},
 "spec":{"config":"{\"cniVersion\":\"1.0.0\",\"name\":\"blue\",\"type\":\"kubetron\"}",
         "extra":{"nested":[1,2,3]}}}"#;

const POD: &str = r#"{"apiVersion":"v1","kind":"Pod",
 "metadata":{"name":"p1","namespace":"default","annotations":{"k8s.v1.cni.cncf.io/networks":"blue"}},
 "spec":{"nodeName":"node-a","containers":[{"name":"c","image":"example.invalid/pause:1"}]}}"#;

/// A client identity: the files curl authenticates with.
struct Identity {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Identity {
    fn admin(kas: &KubeApiServer) -> Identity {
        let p = kas.pki();
        Identity { ca: p.ca.cert.clone(), cert: p.admin.cert.clone(), key: p.admin.key.clone() }
    }

    /// The client certificate embedded in a kubeconfig written by the harness (`*-data` fields).
    fn from_kubeconfig(kas: &KubeApiServer, kubeconfig: &Path, out: &Path) -> Identity {
        let text = std::fs::read_to_string(kubeconfig).expect("read kubeconfig");
        let field = |name: &str| -> Vec<u8> {
            let line = text
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in {}", kubeconfig.display()));
            let out = Command::new("base64")
                .arg("-d")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    c.stdin.take().expect("stdin").write_all(line.trim().as_bytes())?;
                    c.wait_with_output()
                })
                .expect("base64 -d");
            assert!(out.status.success(), "base64 -d of {name}");
            out.stdout
        };
        std::fs::create_dir_all(out).expect("mkdir");
        let cert = out.join("client.crt");
        let key = out.join("client.key");
        std::fs::write(&cert, field("client-certificate-data")).expect("write cert");
        std::fs::write(&key, field("client-key-data")).expect("write key");
        Identity { ca: kas.pki().ca.cert.clone(), cert, key }
    }
}

/// One REST call; returns (HTTP status, body).
fn call(kas: &KubeApiServer, who: &Identity, method: &str, path: &str, content_type: Option<&str>, body: Option<&str>) -> (u16, String) {
    let url = format!("{}{path}", kas.server_url());
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-X", method, "--cacert"])
        .arg(&who.ca)
        .arg("--cert")
        .arg(&who.cert)
        .arg("--key")
        .arg(&who.key)
        // Not curl's user agent: the apiserver pretty-prints JSON for curl.
        .args(["-A", "kubetron-e2e", "-H", "Accept: application/json", "-w", "\n%{http_code}"]);
    if let Some(ct) = content_type {
        cmd.args(["-H", &format!("Content-Type: {ct}")]);
    }
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(&url).stdin(if body.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn curl");
    if let Some(b) = body {
        child.stdin.take().expect("stdin").write_all(b.as_bytes()).expect("write curl stdin");
    }
    let out = child.wait_with_output().expect("curl output");
    assert!(out.status.success(), "curl {method} {url} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("http code"), body.to_string())
}

/// A call that must answer `want`; returns the body.
fn expect(kas: &KubeApiServer, who: &Identity, want: u16, method: &str, path: &str, body: Option<&str>) -> String {
    let ct = match method {
        "PATCH" => Some("application/merge-patch+json"),
        _ if body.is_some() => Some("application/json"),
        _ => None,
    };
    let (code, text) = call(kas, who, method, path, ct, body);
    assert_eq!(code, want, "{method} {path}: {text}");
    text
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(true),
        Err(_) => false,
    }
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn real_apiserver_crd_pod_and_rbac() {
    if std::env::var("KUBETRON_KUBE_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set KUBETRON_KUBE_TESTS=1 to run the kube-apiserver test");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = find_apiserver_bin().expect("kube-apiserver binary");
    let t0 = Instant::now();
    let mut kas = KubeApiServer::start(KubeConfig { dir: tmp.path().join("kube"), apiserver_bin: bin, with_nodes: false }).expect("start");
    eprintln!("harness started in {:?} at {}", t0.elapsed(), kas.server_url());
    let pids = kas.pids();
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver");
    assert!(kas.ca_pem().starts_with(b"-----BEGIN CERTIFICATE-----"));
    let dir = kas.dir().to_path_buf();
    for name in ["etcd.pid", "kube-apiserver.pid"] {
        let text = std::fs::read_to_string(dir.join(name)).expect("pid file");
        assert!(pids.contains(&text.trim().parse::<u32>().expect("pid")), "{name}: {text}");
    }
    let kubeconfig = std::fs::read_to_string(kas.kubeconfig_path()).expect("admin kubeconfig");
    assert!(kubeconfig.contains(&format!("server: {}", kas.server_url())));
    let admin = Identity::admin(&kas);

    // Namespaces exist (created by the apiserver itself).
    let ns = expect(&kas, &admin, 200, "GET", "/api/v1/namespaces", None);
    for want in ["\"name\":\"default\"", "\"name\":\"kube-system\""] {
        assert!(ns.contains(want), "missing {want} in {ns}");
    }

    // CRD, established, then one object (the reflect2 crash path on a badly built apiserver).
    expect(&kas, &admin, 201, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(NAD_CRD));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let crd = expect(&kas, &admin, 200, "GET", &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"), None);
        let compact: String = crd.split_whitespace().collect();
        if compact.contains(r#""type":"Established","status":"True""#) {
            break;
        }
        assert!(Instant::now() < deadline, "CRD never Established: {crd}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let nads = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions";
    // Creation may race the CRD's discovery; retry 404s briefly.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = call(&kas, &admin, "POST", nads, Some("application/json"), Some(NAD_BLUE));
        if code == 201 {
            break;
        }
        assert!(code == 404 && Instant::now() < deadline, "create NAD: {code} {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let blue: String = expect(&kas, &admin, 200, "GET", &format!("{nads}/blue"), None).split_whitespace().collect();
    assert!(blue.contains(r#""config":"{\"cniVersion\":\"1.0.0\",\"name\":\"blue\",\"type\":\"kubetron\"}""#), "{blue}");
    assert!(blue.contains(r#""nested":[1,2,3]"#), "preserve-unknown-fields kept the nested value: {blue}");
    assert!(pids.iter().all(|p| alive(*p)), "a process died after the custom-resource create");

    // A pod bound to a node, with an annotation; then an annotation patch.
    let pods = "/api/v1/namespaces/default/pods";
    expect(&kas, &admin, 201, "POST", pods, Some(POD));
    let p1: String = expect(&kas, &admin, 200, "GET", &format!("{pods}/p1"), None).split_whitespace().collect();
    assert!(p1.contains(r#""nodeName":"node-a""#), "{p1}");
    assert!(p1.contains(r#""k8s.v1.cni.cncf.io/networks":"blue""#), "{p1}");
    expect(
        &kas,
        &admin,
        200,
        "PATCH",
        &format!("{pods}/p1"),
        Some(r#"{"metadata":{"annotations":{"kubetron.example/status":"attached"}}}"#),
    );
    let p1: String = expect(&kas, &admin, 200, "GET", &format!("{pods}/p1"), None).split_whitespace().collect();
    assert!(p1.contains(r#""kubetron.example/status":"attached""#), "{p1}");

    // RBAC: a user without bindings may not, until a Role is bound to their group.
    let alice_kc = kas.make_user_kubeconfig("alice", &["kubetron-testers"]).expect("user kubeconfig");
    let alice = Identity::from_kubeconfig(&kas, &alice_kc, &tmp.path().join("alice"));
    let (code, text) = call(&kas, &alice, "GET", pods, None, None);
    assert_eq!(code, 403, "{text}");
    assert!(
        text.contains(r#""reason":"Forbidden""#) && text.contains(r#"User \"alice\" cannot list"#),
        "expected a 403 naming alice: {text}"
    );
    expect(
        &kas,
        &admin,
        201,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        Some(
            r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"pod-reader"},
                "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get","list"]}]}"#,
        ),
    );
    expect(
        &kas,
        &admin,
        201,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        Some(
            r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"alice-reads"},
                "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"pod-reader"},
                "subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"kubetron-testers"}]}"#,
        ),
    );
    // The RBAC authorizer's informers pick the binding up within a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    let list = loop {
        let (code, text) = call(&kas, &alice, "GET", pods, None, None);
        if code == 200 {
            break text;
        }
        assert!(code == 403 && Instant::now() < deadline, "alice list pods: {code} {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(list.contains(r#""name":"p1""#), "alice reads pods through her group's binding: {list}");
    let (code, text) = call(&kas, &alice, "DELETE", &format!("{pods}/p1"), None, None);
    assert_eq!(code, 403, "alice may not delete: {text}");
    let (code, _) = call(&kas, &alice, "GET", "/api/v1/namespaces/kube-system/pods", None, None);
    assert_eq!(code, 403, "the Role is namespaced: nothing in kube-system");

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
