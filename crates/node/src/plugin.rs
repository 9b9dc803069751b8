//! The `DevicePlugin` service of one resource (`kubetron.io/<physnet>`): `capacity` fake devices
//! that stand for attachments to the physical network, and `Allocate` telling the container which
//! bridge carries it.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;

use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::{debug, info};

use crate::names;
use crate::proto::device_plugin_server::DevicePlugin;
use crate::proto::{
    AllocateRequest, AllocateResponse, ContainerAllocateResponse, ContainerPreferredAllocationRequest,
    ContainerPreferredAllocationResponse, Device, DevicePluginOptions, Empty, ListAndWatchResponse, PreStartContainerRequest,
    PreStartContainerResponse, PreferredAllocationRequest, PreferredAllocationResponse,
};

/// Device health values of the API.
pub const HEALTHY: &str = "Healthy";
pub const UNHEALTHY: &str = "Unhealthy";

/// What a resource currently looks like; changes are pushed to every `ListAndWatch` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceState {
    /// The OVS bridge the physical network is mapped to.
    pub bridge: String,
    /// Devices are reported Healthy while true.
    pub healthy: bool,
    /// The resource is going away: streams report the devices Unhealthy one last time and end.
    pub stopping: bool,
}

/// The options this plugin reports (and registers with).
pub fn options() -> DevicePluginOptions {
    DevicePluginOptions { pre_start_required: false, get_preferred_allocation_available: true }
}

/// The device plugin of one physical network.
#[derive(Clone)]
pub struct PhysnetPlugin {
    physnet: String,
    capacity: usize,
    state: watch::Receiver<ResourceState>,
}

impl PhysnetPlugin {
    /// A plugin for `physnet` with `capacity` devices, following `state`.
    pub fn new(physnet: &str, capacity: usize, state: watch::Receiver<ResourceState>) -> PhysnetPlugin {
        PhysnetPlugin { physnet: physnet.to_string(), capacity, state }
    }

    /// The full device list for a state.
    pub fn devices(&self, state: &ResourceState) -> Vec<Device> {
        let health = if state.healthy && !state.stopping { HEALTHY } else { UNHEALTHY };
        (0..self.capacity).map(|i| Device { id: names::device_id(&self.physnet, i), health: health.to_string(), topology: None }).collect()
    }

    fn check_ids<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Result<(), Status> {
        for id in ids {
            if names::device_index(&self.physnet, self.capacity, id).is_none() {
                return Err(Status::invalid_argument(format!(
                    "unknown device {id:?} for resource {}",
                    names::resource_name(&self.physnet)
                )));
            }
        }
        Ok(())
    }

    /// The allocation of one container: the environment variable naming the bridge.
    pub fn container_allocation(&self, bridge: &str) -> ContainerAllocateResponse {
        ContainerAllocateResponse { envs: HashMap::from([(names::env_var(&self.physnet), bridge.to_string())]), ..Default::default() }
    }

    /// The preferred devices of one container: the required ones first, then the available ones
    /// in index order, up to the requested size.
    pub fn preferred(&self, req: &ContainerPreferredAllocationRequest) -> Result<Vec<String>, Status> {
        self.check_ids(req.available_device_ids.iter().chain(&req.must_include_device_ids))?;
        let size = usize::try_from(req.allocation_size)
            .map_err(|_| Status::invalid_argument(format!("negative allocation size {}", req.allocation_size)))?;
        let mut chosen: Vec<String> = Vec::with_capacity(size);
        for id in &req.must_include_device_ids {
            if !chosen.contains(id) {
                chosen.push(id.clone());
            }
        }
        let mut rest: Vec<(usize, &String)> = req
            .available_device_ids
            .iter()
            .filter(|id| !chosen.contains(id))
            .filter_map(|id| names::device_index(&self.physnet, self.capacity, id).map(|i| (i, id)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        rest.truncate(size.saturating_sub(chosen.len()));
        chosen.extend(rest.into_iter().map(|(_, id)| id.clone()));
        Ok(chosen)
    }
}

type DeviceStream = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl DevicePlugin for PhysnetPlugin {
    async fn get_device_plugin_options(&self, _: Request<Empty>) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(options()))
    }

    type ListAndWatchStream = DeviceStream;

    async fn list_and_watch(&self, _: Request<Empty>) -> Result<Response<DeviceStream>, Status> {
        let plugin = self.clone();
        let mut rx = self.state.clone();
        debug!(physnet = %self.physnet, "ListAndWatch started");
        let stream = async_stream(move |tx| async move {
            let mut last: Option<Vec<Device>> = None;
            loop {
                let state = rx.borrow_and_update().clone();
                let devices = plugin.devices(&state);
                if last.as_ref() != Some(&devices) {
                    if tx.send(Ok(ListAndWatchResponse { devices: devices.clone() })).await.is_err() {
                        return; // the caller went away
                    }
                    last = Some(devices);
                }
                if state.stopping || rx.changed().await.is_err() {
                    debug!(physnet = %plugin.physnet, "ListAndWatch ends");
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let container_responses = request
            .into_inner()
            .container_requests
            .iter()
            .map(|r| self.preferred(r).map(|device_ids| ContainerPreferredAllocationResponse { device_ids }))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(PreferredAllocationResponse { container_responses }))
    }

    async fn allocate(&self, request: Request<AllocateRequest>) -> Result<Response<AllocateResponse>, Status> {
        let state = self.state.borrow().clone();
        if state.stopping {
            return Err(Status::failed_precondition(format!("physical network {} is no longer mapped on this node", self.physnet)));
        }
        let req = request.into_inner();
        let mut container_responses = Vec::with_capacity(req.container_requests.len());
        for c in &req.container_requests {
            self.check_ids(&c.devices_ids)?;
            container_responses.push(self.container_allocation(&state.bridge));
        }
        info!(physnet = %self.physnet, bridge = %state.bridge, containers = container_responses.len(), "allocated");
        Ok(Response::new(AllocateResponse { container_responses }))
    }

    async fn pre_start_container(&self, _: Request<PreStartContainerRequest>) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}

/// A stream fed by a spawned task through a small channel (the task ends when the stream is
/// dropped, at its next send).
fn async_stream<F, Fut>(f: F) -> DeviceStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<ListAndWatchResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ContainerAllocateRequest;
    use futures::StreamExt;

    fn plugin(cap: usize) -> (watch::Sender<ResourceState>, PhysnetPlugin) {
        let (tx, rx) = watch::channel(ResourceState { bridge: "br-ex".into(), healthy: true, stopping: false });
        (tx, PhysnetPlugin::new("physnet1", cap, rx))
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn preferred_allocation_picks_required_then_lowest() {
        let (_tx, p) = plugin(8);
        let req = ContainerPreferredAllocationRequest {
            available_device_ids: ids(&["physnet1-7", "physnet1-3", "physnet1-5", "physnet1-1"]),
            must_include_device_ids: ids(&["physnet1-5"]),
            allocation_size: 3,
        };
        assert_eq!(p.preferred(&req).unwrap(), ids(&["physnet1-5", "physnet1-1", "physnet1-3"]));
        let bad = ContainerPreferredAllocationRequest { allocation_size: -1, ..req.clone() };
        assert_eq!(p.preferred(&bad).unwrap_err().code(), tonic::Code::InvalidArgument);
        let unknown = ContainerPreferredAllocationRequest { available_device_ids: ids(&["physnet2-0"]), ..req };
        assert_eq!(p.preferred(&unknown).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn allocate_sets_env_and_rejects_unknown_devices() {
        let (tx, p) = plugin(2);
        let req = AllocateRequest {
            container_requests: vec![
                ContainerAllocateRequest { devices_ids: ids(&["physnet1-0"]) },
                ContainerAllocateRequest { devices_ids: ids(&["physnet1-1"]) },
            ],
        };
        let r = p.allocate(Request::new(req.clone())).await.unwrap().into_inner();
        assert_eq!(r.container_responses.len(), 2);
        for c in &r.container_responses {
            assert_eq!(c.envs.get("KUBETRON_PHYSNET_PHYSNET1").map(String::as_str), Some("br-ex"));
            assert_eq!(c.envs.len(), 1);
        }
        let bad = AllocateRequest { container_requests: vec![ContainerAllocateRequest { devices_ids: ids(&["physnet1-2"]) }] };
        assert_eq!(p.allocate(Request::new(bad)).await.unwrap_err().code(), tonic::Code::InvalidArgument);
        tx.send_modify(|s| s.bridge = "br-other".into());
        let r = p.allocate(Request::new(req.clone())).await.unwrap().into_inner();
        assert_eq!(r.container_responses[0].envs["KUBETRON_PHYSNET_PHYSNET1"], "br-other");
        tx.send_modify(|s| s.stopping = true);
        assert_eq!(p.allocate(Request::new(req)).await.unwrap_err().code(), tonic::Code::FailedPrecondition);
    }

    #[tokio::test]
    async fn list_and_watch_follows_health_and_ends_when_stopping() {
        let (tx, p) = plugin(3);
        let mut s = p.list_and_watch(Request::new(Empty {})).await.unwrap().into_inner();
        let first = s.next().await.unwrap().unwrap();
        assert_eq!(first.devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["physnet1-0", "physnet1-1", "physnet1-2"]);
        assert!(first.devices.iter().all(|d| d.health == HEALTHY));
        // A bridge change alone does not change the device list: nothing is sent.
        tx.send_modify(|s| s.bridge = "br-x".into());
        tx.send_modify(|s| s.healthy = false);
        let second = s.next().await.unwrap().unwrap();
        assert!(second.devices.iter().all(|d| d.health == UNHEALTHY));
        tx.send_modify(|s| s.healthy = true);
        assert!(s.next().await.unwrap().unwrap().devices.iter().all(|d| d.health == HEALTHY));
        tx.send_modify(|s| s.stopping = true);
        let last = s.next().await.unwrap().unwrap();
        assert!(last.devices.iter().all(|d| d.health == UNHEALTHY));
        assert!(s.next().await.is_none(), "stream ends after the stop");
    }
}
