//! `kubetron-sandbox status`, and the table `up` prints.

use std::path::{Path, PathBuf};

use ovn::columns::Model;
use ovn::nb::{self, LogicalSwitchPort};
use ovsdb::ops::Operation;

use crate::state::SandboxState;
use crate::Error;

/// Every pid file under the state dir (daemons the sandbox started), sorted.
pub fn pid_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pid") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether every daemon recorded in the state dir is running.
pub fn stack_running(dir: &Path) -> bool {
    let files = pid_files(dir);
    !files.is_empty() && files.iter().all(|f| daemons::process::read_pidfile(f).ok().flatten().is_some_and(daemons::process::is_running))
}

/// Prints the daemons and the pod table. Returns whether everything runs.
pub fn status(dir: &Path) -> Result<bool, Error> {
    let Some(st) = SandboxState::load(dir)? else {
        println!("No sandbox in {}.", dir.display());
        return Ok(false);
    };
    println!("Daemons:");
    for f in pid_files(dir) {
        let pid = daemons::process::read_pidfile(&f).ok().flatten();
        let up = pid.is_some_and(daemons::process::is_running);
        let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        println!(
            "  {:<28} pid {:<8} {}",
            rel.trim_end_matches(".pid"),
            pid.map(|p| p.to_string()).unwrap_or("-".into()),
            if up { "running" } else { "STOPPED" }
        );
    }
    if let Some(k) = &st.kube {
        println!(
            "\nKubernetes API {} (kubectl --kubeconfig {}), controller metrics http://{}/metrics",
            k.server,
            k.kubeconfig.display(),
            k.metrics_addr
        );
        for a in &k.agents {
            println!(
                "Node agent on {}: CNI socket {}, metrics http://{}/metrics, log {}",
                a.node,
                a.socket.display(),
                a.metrics_addr,
                a.log.display()
            );
        }
    }
    println!();
    print(dir, &st)?;
    Ok(stack_running(dir))
}

/// The pod table: pod, node, interface, network, MAC, IP and the logical switch port's state.
pub fn print(_dir: &Path, st: &SandboxState) -> Result<(), Error> {
    let ports = port_states(&st.nb_remote).unwrap_or_default();
    println!("{:<6} {:<6} {:<6} {:<8} {:<18} {:<16} PORT", "POD", "NODE", "IFACE", "NETWORK", "MAC", "IP");
    for pod in &st.pods {
        for i in &pod.interfaces {
            let lsp = model::names::pod_port("default", &pod.name, &i.ifname);
            // kubetron's port by name, or (Neutron's ports are named by UUID) by the interface's MAC.
            let own_mac = |p: &&LogicalSwitchPort| p.addresses.iter().any(|a| a.split_whitespace().next() == Some(i.mac.as_str()));
            let state = match ports.iter().find(|p| p.name == lsp).or_else(|| ports.iter().find(own_mac)) {
                Some(p) if p.up == Some(true) => "up",
                Some(_) => "down",
                None => "missing",
            };
            let node = st.nodes.get(pod.node).map(|n| n.name.as_str()).unwrap_or("?");
            println!("{:<6} {:<6} {:<6} {:<8} {:<18} {:<16} {state}", pod.name, node, i.ifname, i.network, i.mac, i.ip);
        }
    }
    if let Some(v) = &st.vm {
        crate::vm::print(_dir, st, v);
    }
    Ok(())
}

fn port_states(nb_remote: &str) -> Result<Vec<LogicalSwitchPort>, Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Step(e.to_string()))?;
    rt.block_on(async {
        let cfg = ovsdb::ClientConfig::new(nb_remote)?.reconnect(false).connect_timeout(std::time::Duration::from_secs(2));
        let nb = ovsdb::Client::connect(cfg).await?;
        let r = nb.transact(nb::DB, vec![Operation::select("Logical_Switch_Port")]).await?;
        Ok(r.into_iter().next().and_then(|r| r.rows).unwrap_or_default().iter().map(LogicalSwitchPort::from_row).collect())
    })
}
