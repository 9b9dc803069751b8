//! Test doubles: a kubelet (Registration server that, like the real one, connects back to each
//! registered plugin and follows its ListAndWatch stream) and a local Open_vSwitch database.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use daemons::{OvsdbServer, OvsdbServerConfig};
use futures::StreamExt;
use node::proto::device_plugin_client::DevicePluginClient;
use node::proto::registration_server::{Registration, RegistrationServer};
use node::proto::{Device, Empty, RegisterRequest};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub const WAIT: Duration = Duration::from_secs(15);

pub use testkit::init_tracing;

/// What the fake kubelet has seen.
#[derive(Debug, Clone, Default)]
pub struct KubeletView {
    /// Every registration, in order.
    pub registrations: Vec<RegisterRequest>,
    /// The last device list received per resource.
    pub devices: BTreeMap<String, Vec<Device>>,
    /// Resources whose latest ListAndWatch stream ended.
    pub ended: BTreeSet<String>,
}

impl KubeletView {
    pub fn registered(&self, resource: &str) -> usize {
        self.registrations.iter().filter(|r| r.resource_name == resource).count()
    }
    /// Whether the resource's latest list has `n` devices, all with `health`.
    pub fn devices_are(&self, resource: &str, n: usize, health: &str) -> bool {
        self.devices.get(resource).is_some_and(|d| d.len() == n && d.iter().all(|d| d.health == health))
    }
}

#[derive(Clone)]
struct Handler {
    dir: PathBuf,
    view: watch::Sender<KubeletView>,
    streams: std::sync::Arc<std::sync::Mutex<JoinSet<()>>>,
}

#[tonic::async_trait]
impl Registration for Handler {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let req = request.into_inner();
        if req.version != "v1beta1" {
            return Err(Status::invalid_argument(format!("unsupported version {}", req.version)));
        }
        if req.endpoint.contains('/') || !req.resource_name.contains('/') {
            return Err(Status::invalid_argument("bad endpoint or resource name"));
        }
        let resource = req.resource_name.clone();
        let endpoint = self.dir.join(&req.endpoint);
        self.view.send_modify(|v| {
            v.registrations.push(req);
            v.ended.remove(&resource);
        });
        // Like kubelet: connect back to the plugin and follow its devices.
        let view = self.view.clone();
        let follow = async move {
            let Ok(ch) = node::uds::channel(&endpoint).await else { return };
            let mut client = DevicePluginClient::new(ch);
            if client.get_device_plugin_options(Empty {}).await.is_err() {
                return;
            }
            let Ok(resp) = client.list_and_watch(Empty {}).await else { return };
            let mut stream = resp.into_inner();
            while let Some(Ok(list)) = stream.next().await {
                view.send_modify(|v| {
                    v.devices.insert(resource.clone(), list.devices);
                });
            }
            view.send_modify(|v| {
                v.ended.insert(resource.clone());
            });
        };
        self.streams.lock().unwrap().spawn(follow);
        Ok(Response::new(Empty {}))
    }
}

/// A kubelet serving `Registration` on `<dir>/kubelet.sock`.
pub struct FakeKubelet {
    pub dir: PathBuf,
    pub socket: PathBuf,
    view: watch::Sender<KubeletView>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    streams: std::sync::Arc<std::sync::Mutex<JoinSet<()>>>,
}

impl FakeKubelet {
    pub fn start(dir: &Path) -> FakeKubelet {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("kubelet.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind kubelet.sock");
        let (view, _) = watch::channel(KubeletView::default());
        let streams = std::sync::Arc::new(std::sync::Mutex::new(JoinSet::new()));
        let handler = Handler { dir: dir.to_path_buf(), view: view.clone(), streams: streams.clone() };
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(RegistrationServer::new(handler))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), s.cancelled_owned())
                .await
                .expect("fake kubelet server");
        });
        FakeKubelet { dir: dir.to_path_buf(), socket, view, stop, task: Some(task), streams }
    }

    pub fn view(&self) -> KubeletView {
        self.view.borrow().clone()
    }

    /// Waits until `pred` holds for the view; panics with the view after [`WAIT`].
    pub async fn wait(&self, what: &str, pred: impl Fn(&KubeletView) -> bool) -> KubeletView {
        let mut rx = self.view.subscribe();
        let r = match tokio::time::timeout(WAIT, rx.wait_for(|v| pred(v))).await {
            Ok(Ok(v)) => Some(v.clone()),
            _ => None,
        };
        r.unwrap_or_else(|| panic!("kubelet: {what}: not within {WAIT:?}; view: {:#?}", self.view()))
    }

    /// Stops serving, drops the plugin streams and removes `kubelet.sock`.
    pub async fn stop(mut self) {
        self.stop.cancel();
        self.streams.lock().unwrap().abort_all();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// A kubelet restart: a new process, a new `kubelet.sock`. With `wipe`, also deletes every
    /// other socket in the directory, as the real kubelet does when it starts.
    pub async fn restart(self, wipe: bool) -> FakeKubelet {
        let dir = self.dir.clone();
        self.stop().await;
        if wipe {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                if e.path().extension().is_some_and(|x| x == "sock") {
                    std::fs::remove_file(e.path()).unwrap();
                }
            }
        }
        FakeKubelet::start(&dir)
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Ok(mut s) = self.streams.lock() {
            s.abort_all();
        }
    }
}

/// A local Open_vSwitch database (no vswitchd) in its own temp dir.
pub struct OvsDb {
    pub dir: tempfile::TempDir,
    pub server: OvsdbServer,
}

impl OvsDb {
    pub fn start(mappings: &str) -> OvsDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = OvsdbServer::start(OvsdbServerConfig::new("conf", dir.path(), daemons::schemas::VSWITCH)).expect("start ovsdb-server");
        let db = OvsDb { dir, server };
        db.vsctl(&["init", "--", "set", "Open_vSwitch", ".", &format!("external-ids:ovn-bridge-mappings={mappings}")]);
        db
    }

    pub fn remote(&self) -> String {
        self.server.unix_remote()
    }

    pub fn vsctl(&self, args: &[&str]) {
        let db = format!("--db={}", self.server.unix_remote());
        let out = Command::new("ovs-vsctl").arg(&db).arg("--no-wait").args(args).output().expect("run ovs-vsctl");
        assert!(out.status.success(), "ovs-vsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn set_mappings(&self, mappings: &str) {
        self.vsctl(&["set", "Open_vSwitch", ".", &format!("external-ids:ovn-bridge-mappings={mappings}")]);
    }
}

/// A client to a plugin socket, as kubelet would use it.
pub async fn plugin_client(path: &Path) -> DevicePluginClient<tonic::transport::Channel> {
    DevicePluginClient::new(node::uds::channel(path).await.expect("connect to plugin"))
}

/// Waits until `f` returns true (polling), panicking after [`WAIT`].
pub async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
