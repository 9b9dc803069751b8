//! The Kubernetes part of `kubetron sandbox up --with-kube`: etcd + kube-apiserver (state under
//! `<dir>/kube`, pid files `etcd.pid` and `kube-apiserver.pid` there), the NAD CRD, NADs `red` and
//! `blue` in namespace `default`, `kubetron controller` as a detached child (`<dir>/controller.pid`,
//! `<dir>/controller.log`), and the pods as Kubernetes objects the controller gives addresses to.
//!
//! Owns: what it starts, by pid file. Must not touch: any other apiserver or process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use daemons::kube::{find_apiserver_bin, KubeApiServer, KubeConfig};
use k8s::nad::NetworkAttachmentDefinition;
use k8s::status::{INTERFACES_ANNOTATION, NETWORK_STATUS_ANNOTATION};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;

use crate::networks::NETWORKS;
use crate::Error;

const CRD_YAML: &str = include_str!("../../../deploy/crd.yaml");
/// The namespace the sandbox's pods and NADs live in.
pub const NAMESPACE: &str = "default";
/// The networks annotation the sandbox's pods carry (net1 = red, net2 = blue).
pub const NETWORKS_ANNOTATION: &str = "red, blue";
pub const CONTROLLER_PID: &str = "controller.pid";
pub const CONTROLLER_LOG: &str = "controller.log";

fn step_err(what: &str) -> impl Fn(kube::Error) -> Error + '_ {
    move |e| Error::Step(format!("{what}: {e}"))
}

fn step(e: k8s::client::ClientError) -> Error {
    Error::Step(e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Step(e.to_string()))
}

/// A kube client from a kubeconfig file (belongs to the runtime it is made in).
pub async fn client(kubeconfig: &Path) -> Result<Client, Error> {
    k8s::client::client_from_kubeconfig(kubeconfig).await.map_err(step)
}

/// Starts etcd + kube-apiserver under `<dir>/kube` (building kube-apiserver first when it is not cached).
pub fn start_apiserver(dir: &Path) -> Result<KubeApiServer, Error> {
    let bin = find_apiserver_bin().map_err(|e| Error::Step(format!("kube-apiserver: {e}")))?;
    KubeApiServer::start(KubeConfig { dir: dir.join("kube"), apiserver_bin: bin }).map_err(|e| Error::Step(e.to_string()))
}

async fn create_or_exists<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    k8s::client::create_or_exists(api, obj).await.map(drop).map_err(step)
}

async fn poll<T, F, Fut>(what: &str, timeout: Duration, f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    k8s::client::wait_for(what, timeout, Duration::from_millis(200), f).await.map_err(step)
}

/// The NAD CRD (deploy/crd.yaml) and the namespaces the sandbox uses (`kubetron` holds the
/// controller's Lease). The NADs themselves come from the controller's NAD sync (the sandbox's
/// switches are marked `kubetron.io/namespaces=default`), see [`wait_for_synced_nads`].
pub fn install(kubeconfig: &Path) -> Result<(), Error> {
    runtime()?.block_on(async {
        let c = client(kubeconfig).await?;
        k8s::client::install_nad_crd(&c, CRD_YAML, Duration::from_secs(30)).await.map_err(step)?;
        let namespaces: Api<Namespace> = Api::all(c);
        for ns in [NAMESPACE, "kubetron"] {
            let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).map_err(|e| Error::Step(e.to_string()))?;
            create_or_exists(&namespaces, &obj).await?;
        }
        Ok(())
    })
}

/// Waits until the controller's NAD sync has made a NAD for every sandbox network in `default`.
pub fn wait_for_synced_nads(kubeconfig: &Path) -> Result<(), Error> {
    runtime()?.block_on(async {
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client(kubeconfig).await?, NAMESPACE);
        for net in &NETWORKS {
            poll(&format!("NAD default/{} from the controller's NAD sync", net.name), Duration::from_secs(30), || async {
                nads.get_opt(net.name).await.ok().flatten()
            })
            .await?;
        }
        Ok(())
    })
}

/// `kubetron controller`, detached, its pid in `<dir>/controller.pid`. Killed on drop unless [`Controller::keep`].
pub struct Controller {
    pid: i32,
    pid_file: PathBuf,
    kept: bool,
}

impl Controller {
    pub fn start(plugin: &Path, dir: &Path, kubeconfig: &Path, nb_remote: &str, metrics_addr: &str) -> Result<Controller, Error> {
        use std::os::unix::process::CommandExt;
        let log_path = dir.join(CONTROLLER_LOG);
        let log = std::fs::File::create(&log_path).map_err(|e| Error::Io { path: log_path.clone(), source: e })?;
        let log2 = log.try_clone().map_err(|e| Error::Io { path: log_path.clone(), source: e })?;
        let child = Command::new(plugin)
            .args(["controller", "--nb", nb_remote, "--metrics-addr", metrics_addr, "--identity", "sandbox", "--gc-interval-secs", "30"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("CNI_COMMAND")
            .env_remove("KUBETRON_OVN_NB")
            .env("KUBETRON_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Step(format!("starting {} controller: {e}", plugin.display())))?;
        let pid = child.id() as i32;
        // Not waited for: it outlives `up`; `down` stops it by its pid file.
        drop(child);
        let pid_file = dir.join(CONTROLLER_PID);
        let c = Controller { pid, pid_file, kept: false };
        std::fs::write(&c.pid_file, format!("{pid}\n")).map_err(|e| Error::Io { path: c.pid_file.clone(), source: e })?;
        std::thread::sleep(Duration::from_millis(300));
        if !daemons::process::is_running(pid) {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(Error::Step(format!("kubetron controller exited at start:\n{text}")));
        }
        Ok(c)
    }
    pub fn pid(&self) -> i32 {
        self.pid
    }
    /// Leaves it running (for `down`).
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if !self.kept {
            let _ = daemons::process::stop_pid(self.pid, Duration::from_secs(5));
            let _ = std::fs::remove_file(&self.pid_file);
        }
    }
}

/// Creates the pods `(name, node)` in `default` with the networks annotation and waits until the controller
/// has given each its addresses (`kubetron.io/interfaces`). Returns the pods' UIDs.
pub fn create_pods(kubeconfig: &Path, pods: &[(String, String)]) -> Result<Vec<String>, Error> {
    runtime()?.block_on(async {
        let c = client(kubeconfig).await?;
        let api: Api<Pod> = Api::namespaced(c, NAMESPACE);
        let mut uids = Vec::new();
        for (name, node) in pods {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": {"k8s.v1.cni.cncf.io/networks": NETWORKS_ANNOTATION}},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.invalid/sandbox:1"}]}
            }))
            .map_err(|e| Error::Step(e.to_string()))?;
            let created = api.create(&PostParams::default(), &pod).await.map_err(step_err(&format!("creating pod {name}")))?;
            uids.push(created.metadata.uid.unwrap_or_default());
        }
        for (name, _) in pods {
            poll(
                &format!("the controller to give pod {name} its addresses ({INTERFACES_ANNOTATION})"),
                Duration::from_secs(60),
                || async { api.get(name).await.ok()?.metadata.annotations?.get(INTERFACES_ANNOTATION).cloned() },
            )
            .await?;
        }
        Ok(uids)
    })
}

/// Waits for every pod's `k8s.v1.cni.cncf.io/network-status` (written once its ports are up); returns them.
pub fn network_status(kubeconfig: &Path, names: &[String]) -> Result<Vec<(String, String)>, Error> {
    runtime()?.block_on(async {
        let c = client(kubeconfig).await?;
        let api: Api<Pod> = Api::namespaced(c, NAMESPACE);
        let mut out = Vec::new();
        for name in names {
            let v = poll(&format!("pod {name}'s {NETWORK_STATUS_ANNOTATION}"), Duration::from_secs(60), || async {
                let v = api.get(name).await.ok()?.metadata.annotations?.get(NETWORK_STATUS_ANNOTATION).cloned()?;
                // Both attachments listed.
                (k8s::status::parse_network_status(&v).ok()?.len() == NETWORKS.len()).then_some(v)
            })
            .await?;
            out.push((name.clone(), v));
        }
        Ok(out)
    })
}
