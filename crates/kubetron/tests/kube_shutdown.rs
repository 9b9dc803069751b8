//! Two `kubetron controller` processes (the deployed pair of replicas) against a REAL kube-apiserver and a
//! real Northbound database: one leads; SIGTERM to the leader makes it stop writing, release the Lease
//! (empty `holderIdentity`, `leaseDurationSeconds` 1, as client-go's ReleaseOnCancel) and exit 0; the
//! standby, which watches the Lease, takes over at once instead of waiting out the 15 s lease. The
//! measured takeover time is printed. Then the survivor stops the same way, leaving the Lease free.
//!
//! Gated: `KUBETRON_KUBE_TESTS=1` (else prints "skipped"). Needs the kube-apiserver (see daemons::kube),
//! etcd, ovsdb-server, ovn-nbctl.
//! Run: `KUBETRON_KUBE_TESTS=1 cargo test -p kubetron --test kube_shutdown -- --nocapture`

mod kube_support;

use std::process::Command;
use std::time::{Duration, Instant};

use daemons::kube::{KubeApiServer, KubeConfig};
use daemons::{OvsdbServer, OvsdbServerConfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube_support::*;

const LEASE: &str = "kubetron-controller";
/// The default lease duration of `kubetron controller` (client-go's default).
const LEASE_SECS: i32 = 15;
/// Generous bound on the takeover; without a release it takes ~LEASE_SECS.
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);
const STOP_BOUND: Duration = Duration::from_secs(20);

fn sigterm(p: &Proc) {
    let st = Command::new("kill").arg("-TERM").arg(p.pid().to_string()).status().expect("run kill");
    assert!(st.success(), "kill -TERM {}", p.pid());
}

fn wait_exit(p: &mut Proc, bound: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = p.child.try_wait().expect("try_wait") {
            return st;
        }
        assert!(t0.elapsed() < bound, "{} still runs {bound:?} after SIGTERM:\n{}", p.name, p.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until true; panics naming `what` (with the log of `p`, which must keep running) after 60 s.
fn wait(what: &str, p: &mut Proc, mut f: impl FnMut(&Proc) -> bool) {
    let t0 = Instant::now();
    while !f(p) {
        p.assert_running();
        assert!(t0.elapsed() < Duration::from_secs(60), "{what}: not within 60 s:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty())
}

#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn standby_controller_takes_over_at_once_when_the_leader_gets_sigterm() {
    if !enabled("standby_controller_takes_over_at_once_when_the_leader_gets_sigterm") {
        return;
    }
    let tmp = tempfile::Builder::new().prefix("kubetron-kube-stop-").tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let mut kas =
        KubeApiServer::start(KubeConfig::with_default_bin(dir.join("kube")).expect("kube-apiserver binary")).expect("start kube-apiserver");
    let nb = OvsdbServer::start(OvsdbServerConfig::new("nb", dir.join("nb"), daemons::schemas::NB)).expect("NB ovsdb-server");
    let out = Command::new("ovn-nbctl").arg(format!("--db={}", nb.unix_remote())).args(["--no-wait", "init"]).output().expect("ovn-nbctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let rt = runtime();
    let controller_kc = kas.make_user_kubeconfig(CONTROLLER_USER, SA_GROUPS).expect("controller kubeconfig");
    let admin = rt.block_on(async {
        let admin = client_from(&kas.kubeconfig_path()).await;
        install_crd(&admin).await;
        apply_rbac(&admin).await;
        let ctl = client_from(&controller_kc).await;
        let (pods, leases) = (Api::<Pod>::all(ctl.clone()), Api::<Lease>::namespaced(ctl, KUBETRON_NS));
        wait_for("the controller identity to be authorized", Duration::from_secs(30), || async {
            (pods.list(&ListParams::default().limit(1)).await.is_ok() && leases.get_opt("probe").await.is_ok()).then_some(())
        })
        .await;
        admin
    });
    let leases: Api<Lease> = Api::namespaced(admin, KUBETRON_NS);
    let lease = || rt.block_on(leases.get_opt(LEASE)).expect("get lease");

    let spawn = |identity: &str| {
        let metrics = free_port();
        let mut cmd = Command::new(kubetron_bin());
        cmd.args(["controller", "--nb", &nb.unix_remote(), "--identity", identity, "--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .env("KUBECONFIG", &controller_kc)
            .env_remove("KUBETRON_OVN_NB")
            .env_remove("CNI_COMMAND")
            .env("KUBETRON_LOG", "info,k8s::controller::lease=debug");
        (Proc::spawn(identity, &dir, cmd), metrics)
    };

    // The first replica leads.
    let (mut a, a_metrics) = spawn("ctl-a");
    wait("ctl-a to hold the Lease", &mut a, |_: &Proc| lease().as_ref().and_then(holder).as_deref() == Some("ctl-a"));
    let l = lease().expect("lease");
    assert_eq!(l.spec.as_ref().unwrap().lease_duration_seconds, Some(LEASE_SECS));
    wait("ctl-a ready (leading)", &mut a, |_: &Proc| http_get(a_metrics, "/readyz").is_some());

    // The second one stands by: running, not ready, the Lease still ctl-a's after a renewal or two.
    let (mut b, b_metrics) = spawn("ctl-b");
    wait("ctl-b to start", &mut b, |b: &Proc| b.log_text().contains("controller starting") && http_get(b_metrics, "/healthz").is_some());
    let renewed = lease().unwrap().spec.unwrap().renew_time;
    wait("ctl-a to renew the Lease", &mut a, |_: &Proc| lease().unwrap().spec.unwrap().renew_time != renewed);
    assert_eq!(lease().as_ref().and_then(holder).as_deref(), Some("ctl-a"));
    assert!(http_get(b_metrics, "/readyz").is_none(), "the standby is not ready");
    b.assert_running();

    // SIGTERM to the leader: the standby holds the Lease within a moment.
    let t0 = Instant::now();
    sigterm(&a);
    let takeover = loop {
        let h = lease().as_ref().and_then(holder);
        if h.as_deref() == Some("ctl-b") {
            break t0.elapsed();
        }
        b.assert_running();
        assert!(
            t0.elapsed() < Duration::from_secs(LEASE_SECS as u64 + 10),
            "ctl-b never took over (holder {h:?}):\n{}\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!("takeover: ctl-b holds the Lease {:.0} ms after SIGTERM to ctl-a (lease {LEASE_SECS} s)", takeover.as_secs_f64() * 1e3);
    let st = wait_exit(&mut a, STOP_BOUND);
    eprintln!("ctl-a exited ({st}) {:.0} ms after SIGTERM", t0.elapsed().as_secs_f64() * 1e3);
    assert_eq!(st.code(), Some(0), "ctl-a after SIGTERM: {st}\n{}", a.log_text());
    let a_log = a.log_text();
    assert!(a_log.contains("released the lease"), "{a_log}");
    assert!(!a_log.contains('\x1b'), "no ANSI codes in a log file: {a_log:?}");
    assert!(
        takeover < TAKEOVER_BOUND,
        "takeover took {takeover:?} (bound {TAKEOVER_BOUND:?}; without a release it waits out the {LEASE_SECS} s lease)"
    );
    let transitions = lease().unwrap().spec.unwrap().lease_transitions.unwrap_or(0);
    assert!(transitions >= 1, "the takeover counts as a transition: {transitions}");
    wait("ctl-b ready (leading)", &mut b, |_: &Proc| http_get(b_metrics, "/readyz").is_some());
    let m = http_get(b_metrics, "/metrics").unwrap_or_default();
    assert!(m.lines().any(|l| l == "kubetron_controller_leader 1"), "{m}");

    // The survivor stops the same way and leaves the Lease free, as client-go's release writes it.
    let t1 = Instant::now();
    sigterm(&b);
    let st = wait_exit(&mut b, STOP_BOUND);
    eprintln!("ctl-b exited ({st}) {:.0} ms after SIGTERM", t1.elapsed().as_secs_f64() * 1e3);
    assert_eq!(st.code(), Some(0), "ctl-b after SIGTERM: {st}\n{}", b.log_text());
    let spec = lease().unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(""), "released: {spec:?}");
    assert_eq!(spec.lease_duration_seconds, Some(1), "released: {spec:?}");
    assert_eq!(spec.lease_transitions, Some(transitions), "a release is not a transition: {spec:?}");

    drop(a);
    drop(b);
    drop(rt);
    drop(nb);
    kas.stop().expect("stop kube-apiserver");
}
