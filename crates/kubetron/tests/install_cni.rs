//! `kubetron install-cni` as the node DaemonSet's init container runs it, against temp directories standing
//! for the host's /opt/cni/bin and /etc/cni/net.d: the flags reach `cni::install`, failures exit non-zero
//! with a message naming what is missing, `--watch` installs again and stops on SIGTERM with 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Host {
    tmp: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let h = Host { tmp: tempfile::tempdir().unwrap() };
        for d in ["image", "bin", "net.d"] {
            std::fs::create_dir_all(h.tmp.path().join(d)).unwrap();
        }
        std::fs::write(h.src(), b"\x7fELF the shim").unwrap();
        h
    }
    fn src(&self) -> PathBuf {
        self.tmp.path().join("image/kubetron-cni")
    }
    fn bin_dir(&self) -> PathBuf {
        self.tmp.path().join("bin")
    }
    fn conf_dir(&self) -> PathBuf {
        self.tmp.path().join("net.d")
    }
    fn command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubetron"));
        c.env_clear().arg("install-cni");
        c.arg("--bin-src").arg(self.src()).arg("--bin-dir").arg(self.bin_dir()).arg("--conf-dir").arg(self.conf_dir());
        c.args(["--agent-socket", "/run/kubetron/cni/kubetron.sock"]).args(extra);
        c
    }
    fn run(&self, extra: &[&str]) -> Output {
        self.command(extra).output().expect("run kubetron install-cni")
    }
}

fn podnet() -> Value {
    json!({"cniVersion": "0.4.0", "name": "kp-podnet", "plugins": [{"type": "bridge", "bridge": "kp-cni0"}]})
}

fn read(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn entry() -> Value {
    json!({"type": "kubetron", "mode": "chained", "agent_socket": "/run/kubetron/cni/kubetron.sock",
           "capabilities": {"io.kubernetes.cri.pod-annotations": true}})
}

#[test]
fn installs_waits_boundedly_and_uninstalls() {
    let h = Host::new();
    // No default plugin config: a bounded wait, then a failure naming the directory.
    let o = h.run(&["--wait-timeout", "1s"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains(&h.conf_dir().display().to_string()) && stderr.contains("default network plugin"), "{stderr}");
    // The binary went first all the same (the config would name a missing binary otherwise).
    assert_eq!(std::fs::read(h.bin_dir().join("kubetron")).unwrap(), std::fs::read(h.src()).unwrap());

    let conflist = h.conf_dir().join("10-kp-podnet.conflist");
    std::fs::write(&conflist, serde_json::to_vec(&podnet()).unwrap()).unwrap();
    for _ in 0..2 {
        let o = h.run(&[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = read(&conflist).unwrap();
        assert_eq!(got["plugins"].as_array().unwrap().len(), 2, "{got}");
        assert_eq!(got["plugins"][1], entry());
    }

    let o = h.run(&["--uninstall"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(&conflist).unwrap(), podnet());
    assert!(!h.bin_dir().join("kubetron").exists());

    let o = h.run(&["--wait-timeout", "soon"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--wait-timeout"));
}

/// A child process, killed if the test ends before it did.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn watch_keeps_the_entry_until_sigterm() {
    let h = Host::new();
    let conflist = h.conf_dir().join("10-kp-podnet.conflist");
    std::fs::write(&conflist, serde_json::to_vec(&podnet()).unwrap()).unwrap();
    let mut child = Running(Some(h.command(&["--watch"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn")));
    let until = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let chained = || read(&conflist).is_some_and(|v| v["plugins"][1] == entry());
    until("first install", &chained);
    // The default plugin rewrites its config (atomically, as installers do): chained into again.
    let tmp = h.conf_dir().join("rewrite.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&podnet()).unwrap()).unwrap();
    std::fs::rename(&tmp, &conflist).unwrap();
    until("chained in again", &chained);
    let child = child.0.take().unwrap();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit on SIGTERM: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
}
