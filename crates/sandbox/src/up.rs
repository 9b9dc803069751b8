//! `kubetron sandbox up`.

use std::path::Path;
use std::time::Duration;

use daemons::netns::NetnsGuard;
use daemons::{Central, Chassis, ChassisConfig};
use serde_json::{json, Value};
use testkit::cni::CniInvocation;

use crate::progress::Progress;
use crate::state::{IfaceState, NodeState, Options, PodState, SandboxState};
use crate::{networks, status, Error};

/// The packages the sandbox needs, installed by the project's own script when missing.
const INSTALL_SCRIPT: &str = include_str!("../../../scripts/install-deps.sh");
const PODS: usize = 2;
/// How long one plugin run may take before it is killed (its own deadlines are shorter).
const PLUGIN_BOUND: Duration = Duration::from_secs(120);

fn install_packages(with_kube: bool) -> Result<(), Error> {
    use std::io::Write;
    let mut child = std::process::Command::new("bash")
        .arg("-s")
        .env("KUBETRON_KUBE", if with_kube { "1" } else { "0" })
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Step(format!("running bash: {e}")))?;
    child.stdin.take().map(|mut s| s.write_all(INSTALL_SCRIPT.as_bytes()));
    let st = child.wait().map_err(|e| Error::Step(e.to_string()))?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::Step("installing the Debian packages failed (see above)".into()))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Step(e.to_string()))
}

/// Brings the sandbox up (a second `up` on a running sandbox only reports it). Returns its state.
pub fn up(opts: &Options) -> Result<SandboxState, Error> {
    if let Some(st) = SandboxState::load(&opts.dir)? {
        if status::stack_running(&opts.dir) {
            println!("The sandbox in {} is already up.", opts.dir.display());
            status::print(&opts.dir, &st)?;
            return Ok(st);
        }
        println!("A stopped sandbox was left in {}: cleaning it up first.", opts.dir.display());
        crate::down(&opts.dir)?;
    }
    if !(1..=2).contains(&opts.nodes) {
        return Err(Error::Step(format!("--nodes must be 1 or 2, not {}", opts.nodes)));
    }
    std::fs::create_dir_all(&opts.dir).map_err(|e| Error::Io { path: opts.dir.clone(), source: e })?;
    let result = build(opts);
    if result.is_err() {
        // Every daemon and namespace was already stopped by its guard; drop the files too.
        let _ = std::fs::remove_dir_all(&opts.dir);
    }
    result
}

fn build(opts: &Options) -> Result<SandboxState, Error> {
    let dir = &opts.dir;
    let mut p = Progress::new(if opts.with_kube { 10 } else { 6 });
    p.step("Checking the Debian packages (openvswitch-switch, ovn-central, ovn-host, ...)", || install_packages(opts.with_kube))?;
    let central = p.step("Starting OVN central: Northbound and Southbound ovsdb-servers, ovn-northd", || {
        Central::start(&dir.join("central"), false)
    })?;
    let sb = central.sb_remote();
    let chassis = p.step(
        &format!("Starting {} chassis: ovsdb-server, ovs-vswitchd (userspace datapath), ovn-controller", opts.nodes),
        || -> Result<Vec<Chassis>, Error> {
            let mut v = Vec::new();
            for i in 0..opts.nodes {
                let name = format!("node{}", i + 1);
                let ns = format!("{}-{name}", opts.prefix);
                let cfg = ChassisConfig::new(&name, dir.join(&name), &ns, &sb, &format!("198.51.100.{}", i + 1));
                v.push(Chassis::start(cfg)?);
            }
            for i in 1..v.len() {
                daemons::link_underlay(&v[0], &v[i])?;
            }
            for c in &v {
                c.wait_registered(&sb, Duration::from_secs(30))?;
            }
            Ok(v)
        },
    )?;
    let nb_remote = central.nb_remote();
    p.step("Creating networks red (10.10.1.0/24) and blue (10.10.2.0/24) with OVN native DHCP", || {
        runtime()?.block_on(async {
            let nb = ovsdb::Client::connect_to(&nb_remote).await?;
            networks::ensure(&nb).await
        })
    })?;

    let mut state = SandboxState {
        prefix: opts.prefix.clone(),
        nb_remote: nb_remote.clone(),
        sb_remote: sb.clone(),
        nodes: chassis
            .iter()
            .map(|c| NodeState { name: c.name().into(), netns: c.netns().into(), dir: c.dir().into(), db_remote: c.db_remote() })
            .collect(),
        pods: Vec::new(),
        kube: None,
    };
    let names: Vec<String> = (0..PODS).map(|i| format!("pod{}", i + 1)).collect();
    // With --with-kube: the API server, the controller, and the pods as API objects (UIDs for CNI_ARGS).
    let mut kube_side = None;
    let mut uids: Vec<Option<String>> = vec![None; PODS];
    if opts.with_kube {
        let kas = p.step(
            "Starting etcd and kube-apiserver (the first run builds kube-apiserver from source: this takes several minutes)",
            || crate::kube::start_apiserver(dir),
        )?;
        let kubeconfig = kas.kubeconfig_path();
        let metrics_addr = format!("127.0.0.1:{}", daemons::process::free_tcp_port()?);
        let controller = p.step(
            "Installing the NAD CRD; starting kubetron controller, whose NAD sync mirrors red and blue into namespace default",
            || {
                crate::kube::install(&kubeconfig)?;
                let c = crate::kube::Controller::start(&opts.plugin, dir, &kubeconfig, &nb_remote, &metrics_addr)?;
                crate::kube::wait_for_synced_nads(&kubeconfig)?;
                Ok::<_, Error>(c)
            },
        )?;
        let placed: Vec<(String, String)> =
            names.iter().enumerate().map(|(i, n)| (n.clone(), state.nodes[i % opts.nodes].name.clone())).collect();
        let made = p.step("Creating pods pod1 and pod2 in the API (networks: red, blue); the controller makes their ports", || {
            crate::kube::create_pods(&kubeconfig, &placed)
        })?;
        uids = made.into_iter().map(Some).collect();
        state.kube = Some(crate::state::KubeState {
            kubeconfig: kubeconfig.clone(),
            server: kas.server_url(),
            controller_log: dir.join(crate::kube::CONTROLLER_LOG),
            metrics_addr,
        });
        kube_side = Some((kas, controller));
    }
    let mut guards = Vec::new();
    p.step("Creating pods and plugging each into red and blue with the kubetron CNI plugin", || -> Result<(), Error> {
        for (i, name) in names.iter().enumerate() {
            let guard = NetnsGuard::create(&format!("{}-{name}", opts.prefix))?;
            let node = i % opts.nodes;
            let mut pod = PodState {
                name: name.clone(),
                netns: guard.name().into(),
                node,
                container_id: format!("sandbox-{name}"),
                interfaces: vec![],
            };
            guards.push(guard);
            plug(opts, &state, &mut pod, uids[i].as_deref())?;
            state.pods.push(pod);
        }
        Ok(())
    })?;
    let mut statuses = Vec::new();
    if let Some(k) = &state.kube {
        statuses = p.step("Waiting for the controller to write the pods' network-status (ports up)", || {
            crate::kube::network_status(&k.kubeconfig, &names)
        })?;
    }
    state.save(dir)?;
    p.step("Pinging pod2 from pod1 on both networks", || ping_all(&state))?;

    // Everything stays up for the user; `down` stops it by pid file.
    std::mem::forget(guards);
    std::mem::forget(chassis);
    std::mem::forget(central);
    if let Some((kas, controller)) = kube_side {
        controller.keep();
        std::mem::forget(kas);
    }
    println!();
    status::print(dir, &state)?;
    for (name, value) in &statuses {
        println!("\n{name} k8s.v1.cni.cncf.io/network-status: {value}");
    }
    let ip = state.pods[1].interfaces[0].ip.split('/').next().unwrap_or("");
    println!("\nTry: ip netns exec {}-pod1 ping {ip}", opts.prefix);
    if let Some(k) = &state.kube {
        println!("Pods in the API: kubectl --kubeconfig {} get pods -o wide", k.kubeconfig.display());
        println!("Controller log: {}", k.controller_log.display());
    }
    println!("Stop it with: kubetron sandbox down --dir {}", dir.display());
    Ok(state)
}

fn plug(opts: &Options, state: &SandboxState, pod: &mut PodState, uid: Option<&str>) -> Result<(), Error> {
    let node = &state.nodes[pod.node];
    let netns_path = Path::new("/run/netns").join(&pod.netns);
    for (ifname, net) in [("net1", "red"), ("net2", "blue")] {
        let mut config = json!({
            "cniVersion": "1.0.0", "name": net, "type": "kubetron",
            "nb": state.nb_remote, "ovs_socket": node.db_remote,
        });
        let mut args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={}", pod.name);
        if let Some(uid) = uid {
            // A Kubernetes pod: the controller made the port; the plugin takes its addresses.
            config["logical_switch"] = json!(net);
            args.push_str(&format!(";K8S_POD_UID={uid}"));
        }
        let invocation = CniInvocation::new(&opts.plugin, "ADD")
            .inherit_env()
            .in_named_netns(&node.netns)
            .container_id(&pod.container_id)
            .netns(&netns_path)
            .ifname(ifname)
            .args(&args)
            .config(&config)
            .timeout(PLUGIN_BOUND);
        let result = run_plugin(&invocation, ifname)?;
        let ip = result["ips"][0]["address"].as_str().unwrap_or("").to_string();
        let mac = result["interfaces"][1]["mac"].as_str().unwrap_or("").to_string();
        pod.interfaces.push(IfaceState { ifname: ifname.into(), network: net.into(), mac, ip });
    }
    Ok(())
}

/// Runs the plugin as a container runtime does; a failure becomes an error carrying the plugin's message.
fn run_plugin(invocation: &CniInvocation, ifname: &str) -> Result<Value, Error> {
    let out = invocation.run().map_err(|e| Error::Step(e.to_string()))?;
    if !out.success() {
        let msg = out.error().map(|e| e.msg).unwrap_or_else(|| out.stderr.clone());
        return Err(Error::Step(format!("CNI ADD {ifname} failed (code {}): {msg}", out.json["code"])));
    }
    Ok(out.json)
}

fn ping_all(state: &SandboxState) -> Result<(), Error> {
    let (from, to) = (&state.pods[0], &state.pods[1]);
    for (i, iface) in to.interfaces.iter().enumerate() {
        let ip = iface.ip.split('/').next().unwrap_or("");
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &from.netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", ip])
            .output()
            .map_err(|e| Error::Step(format!("ping: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(Error::Step(format!("{} -> {} ({}) on {}: no reply\n{text}", from.name, to.name, ip, iface.network)));
        }
        let rtt = text.lines().find(|l| l.contains("min/avg")).and_then(|l| l.split('=').nth(1)).unwrap_or("").trim();
        print!("{}{} {} -> {} {ip}: rtt min/avg/max/mdev {rtt}", if i == 0 { "\n" } else { "" }, iface.network, from.name, to.name);
        println!();
    }
    Ok(())
}
