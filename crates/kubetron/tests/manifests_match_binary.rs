//! The manifests in deploy/ against the real `kubetron` binary: every container running the kubetron image
//! names a subcommand the binary has, only flags that subcommand has, only environment variables it reads,
//! and mounts exactly the paths it uses (the effective value of each path option: the manifest's flag or
//! env value, else the binary's default), with host paths mounted where the host has them (or under /host),
//! and the CNI installer's chained entry names the socket the node agent serves.
//!
//! The truth comes from the binary itself: `kubetron <subcommand> --help` (clap: every option, its
//! `[env: ...]` and `[default: ...]`) and the `Environment:` section of `kubetron --help` (variables read
//! directly). Nothing here is a copy of the CLI definition.

mod kube_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use kube_support::{deploy_docs, kubetron_bin};
use serde_json::Value;

/// One option of a subcommand, as its help shows it.
#[derive(Debug, Clone, Default)]
struct Opt {
    env: Option<String>,
    default: Option<String>,
}

/// What the binary says about one subcommand.
#[derive(Debug, Default)]
struct Sub {
    /// `--long` name (without dashes) -> option.
    opts: BTreeMap<String, Opt>,
}

impl Sub {
    fn envs(&self) -> BTreeSet<String> {
        self.opts.values().filter_map(|o| o.env.clone()).collect()
    }
}

fn help(args: &[&str]) -> String {
    // No environment: `[env: X=value]` would show values, and CNI_COMMAND would make it a CNI plugin.
    let out = Command::new(kubetron_bin()).args(args).env_clear().output().expect("run kubetron --help");
    assert!(out.status.success(), "kubetron {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// `[key: value]` annotations in `text`.
fn bracketed(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("[{key}: "))? + key.len() + 3;
    let end = text[start..].find(']')? + start;
    Some(text[start..end].to_string())
}

/// Parses clap's help of a subcommand: option lines (`  -x, --long <V>` / `      --long <V>`), each followed by
/// its description lines (deeper indented) that carry `[env: NAME=]` and `[default: V]`.
fn parse_sub(text: &str) -> Sub {
    let mut sub = Sub::default();
    let mut current: Option<(String, String)> = None;
    let flush = |cur: &mut Option<(String, String)>, sub: &mut Sub| {
        if let Some((name, desc)) = cur.take() {
            let env = bracketed(&desc, "env").map(|e| e.trim_end_matches('=').to_string());
            let default = bracketed(&desc, "default");
            sub.opts.insert(name, Opt { env, default });
        }
    };
    let mut in_options = false;
    for line in text.lines() {
        if line.trim_end() == "Options:" {
            in_options = true;
            continue;
        }
        if !in_options {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        if t.starts_with('-') && indent <= 6 {
            flush(&mut current, &mut sub);
            let long = t
                .split([' ', ',', '='])
                .find_map(|w| w.strip_prefix("--"))
                .unwrap_or_else(|| panic!("an option line without a long name: {line:?}"));
            // Short help puts the description on the same line.
            current = Some((long.to_string(), t.to_string()));
        } else if let Some((_, desc)) = current.as_mut() {
            desc.push(' ');
            desc.push_str(t);
        }
    }
    flush(&mut current, &mut sub);
    assert!(sub.opts.contains_key("help"), "could not parse the help text:\n{text}");
    sub
}

/// The subcommands listed by `kubetron --help`, and the variables of its `Environment:` section.
fn top() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = help(&["--help"]);
    let mut section = "";
    let (mut subs, mut envs) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.trim_end_matches(':');
            continue;
        }
        let Some(first) = line.split_whitespace().next() else { continue };
        match section {
            "Commands" if first != "help" => {
                subs.insert(first.to_string());
            }
            "Environment" => {
                envs.insert(first.to_string());
            }
            _ => {}
        }
    }
    assert!(subs.contains("controller") && envs.contains("KUBETRON_LOG"), "could not parse kubetron --help:\n{text}");
    (subs, envs)
}

/// A container of a workload in deploy/.
struct Container {
    at: String,
    value: Value,
    /// The pod's volumes by name.
    volumes: BTreeMap<String, Value>,
}

fn kubetron_containers() -> Vec<Container> {
    let kustomization = deploy_docs("kustomization.yaml");
    let mut out = Vec::new();
    for file in kustomization[0]["resources"].as_array().expect("resources") {
        let file = file.as_str().expect("file name");
        for doc in deploy_docs(file) {
            let spec = &doc["spec"]["template"]["spec"];
            if spec.is_null() {
                continue;
            }
            let volumes: BTreeMap<String, Value> = spec["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| (v["name"].as_str().expect("volume name").to_string(), v.clone()))
                .collect();
            for list in ["initContainers", "containers"] {
                for c in spec[list].as_array().into_iter().flatten() {
                    let image = c["image"].as_str().unwrap_or("");
                    if image.split(['@', ':']).next() != Some("kubetron") {
                        continue;
                    }
                    let at = format!("{file}: {} {} {list}/{}", doc["kind"].as_str().unwrap_or(""), doc["metadata"]["name"], c["name"]);
                    out.push(Container { at, value: c.clone(), volumes: volumes.clone() });
                }
            }
        }
    }
    out
}

/// Paths an option value names: `/x`, or the socket path of `unix:/x` / `punix:/x`.
fn path_of(value: &str) -> Option<String> {
    let v = value.strip_prefix("unix:").or_else(|| value.strip_prefix("punix:")).unwrap_or(value);
    v.starts_with('/').then(|| v.to_string())
}

fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(|a| a.as_str().expect("string").to_string()).collect()
}

/// Path options that name no path of the container itself, so need no mount: `install-cni`'s
/// `--bin-src` is a file of the image, and its `--agent-socket` a host path it only writes into the
/// CNI configuration (the runtime's shim connects to it; see `the_chained_entry_names_the_agents_socket`).
fn not_a_path_of_the_container(sub: &str, opt: &str) -> bool {
    matches!((sub, opt), ("install-cni", "bin-src" | "agent-socket"))
}

/// Everything wrong with one container; empty when it matches the binary.
fn check(c: &Container, subs: &BTreeSet<String>, global_env: &BTreeSet<String>, helps: &mut BTreeMap<String, Sub>) -> Vec<String> {
    let mut bad = Vec::new();
    if !c.value["command"].is_null() {
        // The image's entrypoint is the kubetron binary and it has no shell: the subcommand goes in args.
        return vec![format!("{}: sets command {} (the image has no shell; put the subcommand in args)", c.at, c.value["command"])];
    }
    let args = str_list(&c.value["args"]);
    let Some(sub_name) = args.first() else {
        return vec![format!("{}: no subcommand in args", c.at)];
    };
    if !subs.contains(sub_name) {
        return vec![format!("{}: `kubetron {sub_name}` does not exist (subcommands: {subs:?})", c.at)];
    }
    let sub = helps.entry(sub_name.clone()).or_insert_with(|| parse_sub(&help(&[sub_name, "--help"])));

    // Flags, and the values given to them.
    let mut given: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        let Some(flag) = a.strip_prefix("--") else {
            bad.push(format!("{}: unexpected argument {a:?}", c.at));
            i += 1;
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None if args.get(i + 1).is_some_and(|n| !n.starts_with("--")) => {
                i += 1;
                (flag.to_string(), Some(args[i].clone()))
            }
            None => (flag.to_string(), None),
        };
        if !sub.opts.contains_key(&name) {
            bad.push(format!("{}: `kubetron {sub_name}` has no flag --{name}", c.at));
        }
        given.insert(name, value);
        i += 1;
    }

    // Environment variables.
    let sub_envs = sub.envs();
    let mut env_values: BTreeMap<String, Option<String>> = BTreeMap::new();
    for e in c.value["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name").to_string();
        if !sub_envs.contains(&name) && !global_env.contains(&name) {
            bad.push(format!("{}: `kubetron {sub_name}` does not read {name} (it reads {sub_envs:?} and {global_env:?})", c.at));
        }
        env_values.insert(name, e["value"].as_str().map(String::from));
    }

    // Paths: the effective value of every option that names a path must lie in a mount, and every mount
    // must hold such a path.
    let mut paths: Vec<(String, String)> = Vec::new();
    for (name, opt) in &sub.opts {
        if not_a_path_of_the_container(sub_name, name) {
            continue;
        }
        let from_env = opt.env.as_ref().and_then(|e| env_values.get(e));
        let effective = match (given.get(name), from_env) {
            (Some(v), _) => v.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) => opt.default.clone(),
        };
        if let Some(p) = effective.as_deref().and_then(path_of) {
            paths.push((name.clone(), p));
        }
    }
    let mounts: Vec<(String, String)> = c.value["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["mountPath"].as_str().unwrap().to_string()))
        .collect();
    for (opt, p) in &paths {
        if !mounts.iter().any(|(_, m)| under(p, m)) {
            bad.push(format!("{}: --{opt} is {p}, which no volumeMount provides", c.at));
        }
    }
    for (vol, m) in &mounts {
        // The node agent's CNI server opens the pods' network namespaces at the paths the runtime
        // passes in CNI_NETNS (/var/run/netns/... = /run/netns/...): a path of the requests, not of a flag.
        let from_requests = sub_name == "node" && m == "/run/netns";
        if !from_requests && !paths.iter().any(|(_, p)| under(p, m)) {
            bad.push(format!("{}: mounts {m} (volume {vol}), a path `kubetron {sub_name}` does not use ({paths:?})", c.at));
        }
        // A host directory the binary knows by its host path is mounted at that same path, or under
        // /host (the CNI installer's convention: /host/opt/cni/bin, /host/etc/cni/net.d).
        if let Some(host) = c.volumes.get(vol).and_then(|v| v["hostPath"]["path"].as_str()) {
            let (host, m) = (host.trim_end_matches('/'), m.trim_end_matches('/'));
            if host != m && m.strip_prefix("/host") != Some(host) {
                bad.push(format!("{}: host path {host} is mounted at {m}", c.at));
            }
        }
    }
    bad
}

#[test]
fn deployed_containers_use_only_what_the_binary_has() {
    let (subs, global_env) = top();
    let mut helps = BTreeMap::new();
    let containers = kubetron_containers();
    let names: BTreeSet<String> = containers.iter().filter_map(|c| str_list(&c.value["args"]).first().cloned()).collect();
    assert_eq!(names, ["controller", "install-cni", "node", "webhook"].map(String::from).into(), "the deployed components");
    let bad: Vec<String> = containers.iter().flat_map(|c| check(c, &subs, &global_env, &mut helps)).collect();
    assert!(bad.is_empty(), "deploy/ does not match the binary:\n{}", bad.join("\n"));
}

/// The node agent registers with the kubelet through its device plugin directory: the DaemonSet mounts the
/// host's (the kubelet's default, `/var/lib/kubelet/device-plugins`) where the binary looks for it.
#[test]
fn node_agent_reaches_the_kubelet_device_plugin_directory() {
    let node = kubetron_containers().into_iter().find(|c| str_list(&c.value["args"]).first().map(String::as_str) == Some("node"));
    let node = node.expect("the node agent container");
    let sub = parse_sub(&help(&["node", "--help"]));
    let dir = sub.opts["device-plugin-dir"].default.clone().expect("a default device plugin dir");
    assert_eq!(dir, "/var/lib/kubelet/device-plugins", "the binary's default is the kubelet's directory");
    let mount = node.value["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == dir.as_str())
        .unwrap_or_else(|| panic!("{}: nothing mounted at {dir}", node.at));
    let vol = &node.volumes[mount["name"].as_str().unwrap()];
    assert_eq!(vol["hostPath"]["path"], dir.as_str(), "{}: {vol}", node.at);
}

/// The checker itself: the defects it exists for are caught.
#[test]
fn the_check_catches_what_the_issue_found() {
    let (subs, global_env) = top();
    let mut helps = BTreeMap::new();
    let mut node = kubetron_containers().into_iter().find(|c| c.value["args"][0] == "node").expect("node container");
    assert!(check(&node, &subs, &global_env, &mut helps).is_empty());
    let good = node.value.clone();
    let mut expect_bad = |node: &mut Container, what: &str, edit: &dyn Fn(&mut Value)| {
        node.value = good.clone();
        edit(&mut node.value);
        let bad = check(node, &subs, &global_env, &mut helps);
        assert!(bad.iter().any(|b| b.contains(what)), "{what}: not caught ({bad:?})");
    };
    expect_bad(&mut node, "does not read RUST_LOG", &|v| {
        v["env"].as_array_mut().unwrap().push(serde_json::json!({"name": "RUST_LOG", "value": "info"}))
    });
    expect_bad(&mut node, "does not read NODE_IP", &|v| v["env"].as_array_mut().unwrap().push(serde_json::json!({"name": "NODE_IP"})));
    expect_bad(&mut node, "has no flag --sb", &|v| v["args"].as_array_mut().unwrap().push("--sb=tcp:1.2.3.4:6642".into()));
    expect_bad(&mut node, "/var/lib/kubelet/device-plugins, which no volumeMount provides", &|v| {
        v["volumeMounts"].as_array_mut().unwrap().retain(|m| m["mountPath"] != "/var/lib/kubelet/device-plugins")
    });
    expect_bad(&mut node, "mounts /var/run/netns", &|v| {
        v["volumeMounts"].as_array_mut().unwrap().push(serde_json::json!({"name": "netns", "mountPath": "/var/run/netns"}))
    });
    expect_bad(&mut node, "/run/openvswitch/db.sock, which no volumeMount provides", &|v| {
        v["args"].as_array_mut().unwrap().push("--ovs-remote=unix:/run/openvswitch/db.sock".into())
    });
    expect_bad(&mut node, "does not exist", &|v| v["args"][0] = "agent".into());
    // The CNI installer: no shell, and its host directories where it writes.
    let mut install = kubetron_containers().into_iter().find(|c| c.value["args"][0] == "install-cni").expect("install-cni container");
    assert!(check(&install, &subs, &global_env, &mut helps).is_empty());
    let good = install.value.clone();
    let mut expect_bad = |what: &str, edit: &dyn Fn(&mut Value)| {
        install.value = good.clone();
        edit(&mut install.value);
        let bad = check(&install, &subs, &global_env, &mut helps);
        assert!(bad.iter().any(|b| b.contains(what)), "{what}: not caught ({bad:?})");
    };
    expect_bad("the image has no shell", &|v| v["command"] = serde_json::json!(["/bin/sh", "-c", "cp a b"]));
    expect_bad("--conf-dir is /etc/cni/net.d, which no volumeMount provides", &|v| {
        v["args"].as_array_mut().unwrap().retain(|a| !a.as_str().unwrap().starts_with("--conf-dir"));
        v["args"].as_array_mut().unwrap().push("--conf-dir=/etc/cni/net.d".into())
    });
    expect_bad("host path /opt/cni/bin is mounted at /opt/cni", &|v| {
        let m = v["volumeMounts"].as_array_mut().unwrap().iter_mut().find(|m| m["name"] == "cni-bin").unwrap();
        m["mountPath"] = "/opt/cni".into();
    });
}

/// The effective value of option `opt` of a container: its flag in args, else its env, else the binary's default.
fn effective(c: &Container, sub: &Sub, opt: &str) -> Option<String> {
    let args = str_list(&c.value["args"]);
    let flag = format!("--{opt}");
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            return Some(v.to_string());
        }
        if a == &flag {
            return args.get(i + 1).cloned();
        }
    }
    let o = &sub.opts[opt];
    let env = o.env.as_ref().and_then(|e| c.value["env"].as_array()?.iter().find(|v| v["name"] == e.as_str())?["value"].as_str());
    env.map(String::from).or_else(|| o.default.clone())
}

/// The host path behind a container path, through the container's hostPath mounts.
fn host_path(c: &Container, path: &str) -> Option<String> {
    c.value["volumeMounts"].as_array()?.iter().find_map(|m| {
        let mount = m["mountPath"].as_str()?.trim_end_matches('/');
        let rest = path.strip_prefix(mount).filter(|r| r.is_empty() || r.starts_with('/'))?;
        let host = c.volumes.get(m["name"].as_str()?)?["hostPath"]["path"].as_str()?;
        Some(format!("{}{rest}", host.trim_end_matches('/')))
    })
}

/// Chained mode: the entry `install-cni` writes into the host's CNI configuration names the socket the
/// node agent serves (its --cni-socket-dir + /kubetron.sock, as a host path), and the installer writes
/// into the host directories the runtime uses.
#[test]
fn the_chained_entry_names_the_agents_socket() {
    let containers = kubetron_containers();
    let by_sub = |s: &str| containers.iter().find(|c| c.value["args"][0] == s).unwrap_or_else(|| panic!("no {s} container"));
    let (install, node) = (by_sub("install-cni"), by_sub("node"));
    assert!(install.at.contains("initContainers"), "{}: runs before the agent, once per pod start", install.at);
    let install_help = parse_sub(&help(&["install-cni", "--help"]));
    let node_help = parse_sub(&help(&["node", "--help"]));
    let socket = effective(install, &install_help, "agent-socket").expect("--agent-socket");
    let dir = effective(node, &node_help, "cni-socket-dir").expect("--cni-socket-dir");
    let served = host_path(node, &format!("{}/kubetron.sock", dir.trim_end_matches('/'))).expect("the socket dir is a host mount");
    assert_eq!(socket, served, "the shim on the host must reach the agent");
    for (opt, host) in [("bin-dir", "/opt/cni/bin"), ("conf-dir", "/etc/cni/net.d")] {
        let v = effective(install, &install_help, opt).unwrap_or_else(|| panic!("--{opt}"));
        assert_eq!(host_path(install, &v).as_deref(), Some(host), "{}: --{opt} {v}", install.at);
    }
}
