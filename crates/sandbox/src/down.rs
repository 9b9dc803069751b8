//! `kubetron-sandbox down`: stops every daemon of the sandbox by its pid file, deletes the
//! sandbox's namespaces and its state directory. Works on a half-dead sandbox too.

use std::path::Path;
use std::time::Duration;

use crate::state::SandboxState;
use crate::status::pid_files;
use crate::Error;

pub fn down(dir: &Path) -> Result<(), Error> {
    let st = SandboxState::load(dir)?;
    // neutron-server (its process group) and its PostgreSQL, if this sandbox ran them.
    if st.as_ref().is_some_and(|s| s.neutron_url.is_some()) {
        daemons::neutron::stop_left_in(dir)?;
    }
    // qemu first (by its pid file), before its launcher netns and the bridges go.
    if let Some(v) = st.as_ref().and_then(|s| s.vm.as_ref()) {
        crate::vm::stop(dir, v);
    }
    if let Some(st) = &st {
        // Bridges go while ovs-vswitchd still runs, so their tap devices go with them.
        for n in &st.nodes {
            let alive =
                daemons::process::read_pidfile(&n.dir.join("ovs-vswitchd.pid")).ok().flatten().is_some_and(daemons::process::is_running);
            if alive {
                let db = format!("--db={}", n.db_remote);
                let _ = daemons::process::run(
                    "ovs-vsctl",
                    &[&db, "--timeout=5", "--if-exists", "del-br", "br-int", "--", "--if-exists", "del-br", "br-phy"],
                );
            }
        }
    }
    // Chassis daemons first, then northd, then the databases.
    let mut files = pid_files(dir);
    // The kubetron controller and the node agents before what they talk to; kube-apiserver before etcd.
    let rank = |p: &Path| match p.file_name().and_then(|f| f.to_str()).unwrap_or("") {
        "controller.pid" => 0,
        f if f.starts_with(crate::kube::AGENT_PREFIX) => 0,
        "ovn-controller.pid" => 1,
        "ovs-vswitchd.pid" => 2,
        "northd.pid" | "kube-apiserver.pid" => 3,
        "etcd.pid" => 5,
        _ => 4,
    };
    files.sort_by_key(|p| rank(p));
    for f in files {
        daemons::process::stop_pidfile(&f, Duration::from_secs(5))?;
    }
    if let Some(st) = &st {
        let vm_netns = st.vm.iter().flat_map(|v| v.netns_all.iter());
        let names = st.pods.iter().map(|p| &p.netns).chain(vm_netns).chain(st.nodes.iter().map(|n| &n.netns));
        for ns in names {
            if daemons::netns::exists(ns) {
                daemons::process::run("ip", &["netns", "del", ns])?;
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    }
    Ok(())
}
