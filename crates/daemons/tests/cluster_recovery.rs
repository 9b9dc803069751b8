//! A cluster run that was killed (its processes, pods, bridges, cgroups, sysctls and directories left
//! behind) is cleaned up by the next start, which then works; its own stop leaves the host as before.
//!
//! Needs `KUBETRON_CLUSTER_TESTS=1`, `KUBE_BIN_DIR` and `KUBETRON_IMAGES` (scripts/test.sh sets them).

use std::path::{Path, PathBuf};

use daemons::cluster::{parent_pid, Cluster, ClusterConfig, FIXED_DIRS, NODE_BRIDGE, POD_BRIDGE};

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: a\n      image: kubetron.local/busybox:1\n      imagePullPolicy: Never\n      command: [\"sleep\", \"3600\"]\n";

fn start(dir: &Path) -> Cluster {
    let c = Cluster::start(ClusterConfig::new(dir, "kt-node").expect("binaries")).expect("cluster start");
    let index = std::fs::read_to_string(std::env::var_os("KUBETRON_IMAGES").expect("KUBETRON_IMAGES")).expect("images index");
    for line in index.lines() {
        let (tag, archive) = line.split_once(' ').expect("<tag> <archive>");
        if tag.ends_with("/pause:1") || tag.ends_with("/busybox:1") {
            c.import_image(Path::new(archive.trim())).expect("import");
        }
    }
    let pod = dir.join("pod.yaml");
    std::fs::write(&pod, POD).expect("pod yaml");
    c.kubectl_run(&["apply", "-f", &pod.display().to_string()]).expect("apply");
    c.kubectl_run(&["wait", "--for=condition=Ready", "pod/p1", "--timeout=180s"]).expect("pod Ready");
    c
}

/// Parents of the containers' init processes (their shims), from the bundles' `init.pid`.
fn shims_of(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let tasks = dir.join("run/containerd/io.containerd.runtime.v2.task/k8s.io");
    for e in std::fs::read_dir(tasks).expect("bundles").flatten() {
        let Ok(pid) = std::fs::read_to_string(e.path().join("init.pid")) else { continue };
        if let Some(ppid) = pid.trim().parse().ok().and_then(parent_pid) {
            out.push(ppid as u32);
        }
    }
    out
}

fn running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

#[test]
#[cfg_attr(not(cluster_tests), ignore = "needs KUBETRON_CLUSTER_TESTS=1, KUBE_BIN_DIR and KUBETRON_IMAGES (scripts/test.sh sets them)")]
fn a_killed_run_is_cleaned_up_by_the_next() {
    let dirs_before: Vec<bool> = FIXED_DIRS.iter().map(|d| Path::new(d).exists()).collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let first: PathBuf = tmp.path().join("first");
    let c = start(&first);
    let pids = c.pids();
    let shims = shims_of(&first);
    assert!(!shims.is_empty(), "the pod's sandbox and container have shims");
    assert!(pids.iter().all(|p| running(*p)));
    c.abandon();
    assert!(Path::new("/sys/class/net").join(NODE_BRIDGE).exists(), "the abandoned run left its bridge");

    let mut second = start(&tmp.path().join("second"));
    for p in &pids {
        // Reaped by us or gone: the first run's processes were stopped by their pid files.
        let mut status = 0;
        // SAFETY: waitpid on our own (abandoned) child; WNOHANG never blocks.
        unsafe { libc::waitpid(*p as i32, &mut status, libc::WNOHANG) };
        assert!(!running(*p), "pid {p} of the killed run still runs");
    }
    for s in &shims {
        assert!(!running(*s), "shim {s} of the killed run still runs");
    }
    second.stop().expect("stop");
    for b in [NODE_BRIDGE, POD_BRIDGE] {
        assert!(!Path::new("/sys/class/net").join(b).exists(), "{b} removed");
    }
    let dirs_after: Vec<bool> = FIXED_DIRS.iter().map(|d| Path::new(d).exists()).collect();
    assert_eq!(dirs_before, dirs_after, "{FIXED_DIRS:?}");
    assert!(!Path::new("/run/kubetron-cluster.state").exists());
}
