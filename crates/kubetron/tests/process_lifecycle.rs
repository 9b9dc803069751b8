//! The long-running `kubetron` processes as a kubelet runs them: started, then stopped with SIGTERM
//! (what the kubelet sends when a pod stops) or SIGINT; each must exit 0 well inside the pod's
//! termination grace period, saying so in its log. And the logs a runtime stores (stderr not a
//! terminal) carry no ANSI colour codes.
//!
//! No Kubernetes API server is needed: the controller and the webhook get a kubeconfig pointing at
//! a closed port (the kube client connects lazily), the controller a real Northbound ovsdb-server,
//! the node agent a real Open_vSwitch ovsdb-server. The takeover of a released Lease by a standby
//! controller is in `kube_shutdown.rs` (real kube-apiserver).

mod kube_support;

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use daemons::{OvsdbServer, OvsdbServerConfig};
use kube_support::{free_port, http_get, kubetron_bin, Proc};
use testkit::cni::CniInvocation;

/// Generous: a stopping process has the pod's grace period (30 s by default); it needs far less.
const STOP_BOUND: Duration = Duration::from_secs(20);
const START_BOUND: Duration = Duration::from_secs(30);

/// A kubeconfig whose server is a closed loopback port.
fn dead_kubeconfig(dir: &Path) -> std::path::PathBuf {
    let port = free_port();
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
         users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

fn signal(p: &Proc, sig: &str) {
    let st = Command::new("kill").arg(format!("-{sig}")).arg(p.pid().to_string()).status().expect("run kill");
    assert!(st.success(), "kill -{sig} {}", p.pid());
}

/// Waits (polling) for `p` to exit within `bound`; panics with its log otherwise.
fn wait_exit(p: &mut Proc, bound: Duration) -> (ExitStatus, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(st) = p.child.try_wait().expect("try_wait") {
            return (st, t0.elapsed());
        }
        assert!(t0.elapsed() < bound, "{} still runs {bound:?} after the signal:\n{}", p.name, p.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until true; panics naming `what` (with the log of `p`) after `bound`.
fn wait_until(what: &str, p: &mut Proc, bound: Duration, mut f: impl FnMut(&Proc) -> bool) {
    let t0 = Instant::now();
    while !f(p) {
        p.assert_running();
        assert!(t0.elapsed() < bound, "{what}: not within {bound:?}:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_clean_stop(p: &mut Proc, sig: &str, stopped_line: &str) {
    signal(p, sig);
    let (st, took) = wait_exit(p, STOP_BOUND);
    let log = p.log_text();
    eprintln!("{} exited {st} {:.0} ms after SIG{sig}", p.name, took.as_secs_f64() * 1e3);
    assert_eq!(st.code(), Some(0), "{} after SIG{sig}: {st}\n{log}", p.name);
    assert!(log.contains(&format!("SIG{sig}: shutting down")), "{} names the signal:\n{log}", p.name);
    assert!(log.contains(stopped_line), "{} logs {stopped_line:?}:\n{log}", p.name);
    assert!(!log.contains('\x1b'), "{}: ANSI escape codes in a log that is not a terminal:\n{log:?}", p.name);
}

fn kubetron(args: &[&str]) -> Command {
    let mut cmd = Command::new(kubetron_bin());
    cmd.args(args).env_remove("CNI_COMMAND").env("KUBETRON_LOG", "debug");
    cmd
}

#[test]
fn webhook_stops_cleanly_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dead_kubeconfig(dir.path());
    for sig in ["TERM", "INT"] {
        let port = free_port();
        let mut cmd = kubetron(&["webhook", "--listen", &format!("127.0.0.1:{port}"), "--dns-name", "localhost"]);
        cmd.env("KUBECONFIG", &kc);
        let mut p = Proc::spawn(&format!("webhook-{sig}"), dir.path(), cmd);
        wait_until("the webhook listens", &mut p, START_BOUND, |p| {
            p.log_text().contains("admission webhook listening") && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        // A client that connected but never finished its TLS handshake must not hold the stop up.
        let idle = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        assert_clean_stop(&mut p, sig, "admission webhook stopped");
        drop(idle);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still accepts after exit");
    }
}

#[test]
fn node_agent_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ovs = OvsdbServer::start(OvsdbServerConfig::new("conf", dir.path().join("ovs"), daemons::schemas::VSWITCH)).expect("ovsdb-server");
    let out = Command::new("ovs-vsctl")
        .arg(format!("--db={}", ovs.unix_remote()))
        .args(["--no-wait", "init", "--", "set", "Open_vSwitch", ".", "external-ids:ovn-bridge-mappings=physnet1:br-phys"])
        .output()
        .expect("ovs-vsctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plugins = dir.path().join("device-plugins");
    let metrics = free_port();
    let cmd = kubetron(&[
        "node",
        "--ovs-remote",
        &ovs.unix_remote(),
        "--device-plugin-dir",
        plugins.to_str().unwrap(),
        "--metrics-addr",
        &format!("127.0.0.1:{metrics}"),
    ]);
    let mut p = Proc::spawn("node", dir.path(), cmd);
    // Serving the physical network's device plugin socket: it is up and doing its job.
    let sock = plugins.join("kubetron-physnet1.sock");
    wait_until("the node agent serves physnet1", &mut p, START_BOUND, |_| sock.exists() && http_get(metrics, "/healthz").is_some());
    assert_clean_stop(&mut p, "TERM", "node agent stopped");
    assert!(!sock.exists(), "the plugin socket is removed on shutdown");
    assert!(http_get(metrics, "/healthz").is_none(), "the telemetry endpoint is gone");
}

#[test]
fn controller_stops_cleanly_on_sigterm_without_an_apiserver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nb = OvsdbServer::start(OvsdbServerConfig::new("nb", dir.path().join("nb"), daemons::schemas::NB)).expect("ovsdb-server");
    let out = Command::new("ovn-nbctl").arg(format!("--db={}", nb.unix_remote())).args(["--no-wait", "init"]).output().expect("ovn-nbctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = free_port();
    let mut cmd =
        kubetron(&["controller", "--nb", &nb.unix_remote(), "--identity", "lonely", "--metrics-addr", &format!("127.0.0.1:{metrics}")]);
    cmd.env("KUBECONFIG", dead_kubeconfig(dir.path())).env_remove("KUBETRON_OVN_NB");
    let mut p = Proc::spawn("controller", dir.path(), cmd);
    // Started (the API server is unreachable: it keeps trying for the Lease, never leads).
    wait_until("the controller starts", &mut p, START_BOUND, |p| {
        p.log_text().contains("controller starting") && http_get(metrics, "/healthz").is_some()
    });
    assert_clean_stop(&mut p, "TERM", "controller stopped");
}

/// A CNI error (the config has no `nb`) is logged on stderr (a pipe, as runtimes capture it) as
/// plain text.
#[test]
fn cni_error_log_is_plain_text_on_a_pipe() {
    let conf = r#"{"cniVersion": "1.0.0", "name": "red", "type": "kubetron"}"#;
    let out = CniInvocation::new(kubetron_bin(), "ADD")
        .env("KUBETRON_LOG", "debug")
        .container_id("ansi-test")
        .netns("/var/run/netns/kubetron-ansi-test-none")
        .ifname("net1")
        .stdin_bytes(conf)
        .run()
        .expect("run the plugin");
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert_ne!(out.exit_code, 0, "ADD without nb must fail: {stdout}");
    assert!(stdout.contains("\"code\""), "a CNI error on stdout: {stdout}");
    assert!(stderr.contains("CNI request failed"), "the failure is logged: {stderr}");
    assert!(stderr.contains("WARN"), "with its level: {stderr}");
    assert!(!stderr.contains('\x1b'), "ANSI escape codes on a pipe: {stderr:?}");
}
