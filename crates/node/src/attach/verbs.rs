//! The CNI verbs as the node agent serves them.
//!
//! - **ADD** (cluster mode, one attachment per call as Multus calls it; `CNI_IFNAME` names it):
//!   waits for the pod in the cache with the request's UID and for the controller's hand-off
//!   naming that interface; checks that the hand-off names this pod's own logical switch port
//!   ([`model::names::pod_port`]; a forged annotation cannot reach another pod's port) and this
//!   network; plugs the veth (netlink) and the OVS Interface (`iface-id`, `iface-id-ver` = pod UID);
//!   waits for `ovn-installed`. Gives up when the pod is deleted or re-created while it waits.
//! - **DEL** never waits for the pod or the API server: it removes the local OVS interfaces
//!   tagged with the container (and interface) and the host veth. Nothing found is success.
//! - **CHECK**: the interface exists, bound to this pod's port, with `ovn-installed`.
//! - **STATUS**: 50 until the pod cache and the local OVS replica are loaded.
//! - **GC**: local attachments of the named network that are not in `cni.dev/valid-attachments`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cni::agent::AgentRequest;
use cni::plumb;
use cni::{CniError, CniResult, Command, Env, ErrorCode, Request};
use model::handoff::{self, Addressing, Attachment, HandoffError};
use model::kubevirt::CREATED_BY_LABEL;
use model::netconf::{cleanup_reserve_ms, Mode, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS};
use netdev::{host_ifname, IpNet, MacAddr, Netns};
use ovn::names;
use ovn::vswitch::Interface;
use ovn::Model;
use ovsdb::datum::Uuid;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::ovs::InstallError;
use super::pods::{PodMeta, Step};
use super::Agent;

/// Runs one request under its deadline.
pub async fn run(agent: Arc<Agent>, areq: AgentRequest, cancel: CancellationToken) -> Result<Option<CniResult>, CniError> {
    let env = Env::from_vars(&areq.env)?;
    if env.command == Command::Version {
        return Err(CniError::invalid_env("VERSION is answered by the shim, not the node agent"));
    }
    let req = Request::from_parts(env, areq.config)?;
    if req.config.kubetron.mode() == Mode::Standalone {
        return Err(CniError::invalid_config(
            "a standalone network config (mode standalone, or nb set without mode) reached the node agent; \
             standalone configs are served by the kubetron binary itself",
        ));
    }
    let timeout = Duration::from_millis(areq.deadline_ms.clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS));
    let deadline = Instant::now() + timeout;
    let command = req.command();
    debug!(%command, container = req.container_id(), ifname = req.ifname(), network = %req.config.name, "CNI request");
    let expired = |what: &str| {
        let code = if command == Command::Status { ErrorCode::NotAvailable } else { ErrorCode::TryAgainLater };
        CniError::new(code, format!("{command} did not finish within {} ms; it was waiting for {what}", timeout.as_millis()))
    };
    let r = match command {
        Command::Add => add(&agent, &req, timeout, deadline, &cancel).await.map(Some),
        Command::Del => bounded(deadline, del(&agent, &req), || expired("the local Open_vSwitch database")).await.map(|()| None),
        Command::Check => bounded(deadline, check(&agent, &req), || expired("the local Open_vSwitch database")).await.map(|()| None),
        Command::Status => status(&agent).map(|()| None),
        Command::Gc => bounded(deadline, gc(&agent, &req), || expired("the local Open_vSwitch database")).await.map(|()| None),
        Command::Version => unreachable!("refused above"),
    };
    if let Err(e) = &r {
        warn!(%command, container = req.container_id(), ifname = req.ifname(), code = e.code.code(), "{}", e.msg);
    }
    r
}

async fn bounded<T>(
    deadline: Instant,
    f: impl std::future::Future<Output = Result<T, CniError>>,
    expired: impl FnOnce() -> CniError,
) -> Result<T, CniError> {
    tokio::select! {
        r = f => r,
        _ = tokio::time::sleep_until(deadline) => Err(expired()),
    }
}

/// The pod a request is for.
struct PodId<'a> {
    namespace: &'a str,
    name: &'a str,
    /// `K8S_POD_UID`, when the runtime passes it.
    uid: Option<&'a str>,
}

impl<'a> PodId<'a> {
    fn of(req: &'a Request) -> Result<PodId<'a>, CniError> {
        let a = &req.env.args;
        let nonempty = |v: &'a Option<String>| v.as_deref().filter(|s| !s.is_empty());
        match (nonempty(&a.pod_namespace), nonempty(&a.pod_name)) {
            (Some(namespace), Some(name)) => Ok(PodId { namespace, name, uid: nonempty(&a.pod_uid) }),
            _ => Err(CniError::invalid_env(
                "cluster mode needs K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS (a Kubernetes runtime passes them)",
            )),
        }
    }
}

impl std::fmt::Display for PodId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Decides on the cached pod: once it is there with the request's UID, `pick` decides. `seen`
/// remembers that the pod was in the cache with that UID (so its absence or another UID later
/// means it was deleted or re-created); `deleted` says whether a UID was seen deleted (a request
/// for a deleted pod fails at once, whether it arrived before or after the deletion).
fn decide<T>(
    pod: &PodId,
    node: &str,
    seen: &mut Option<String>,
    deleted: impl Fn(&str) -> bool,
    cached: Option<&PodMeta>,
    pick: impl FnOnce(&PodMeta) -> Step<T, CniError>,
) -> Step<T, CniError> {
    let gone = |uid: &str| CniError::try_again_later(format!("pod {pod} (UID {uid}) was deleted while its ADD waited"));
    let Some(p) = cached else {
        return match (seen.as_deref(), pod.uid) {
            (Some(uid), _) => Step::Fail(gone(uid)),
            (None, Some(uid)) if deleted(uid) => Step::Fail(gone(uid)),
            _ => Step::Wait(format!("pod {pod} to appear in the agent's cache of node {node}'s pods")),
        };
    };
    let cached_uid = p.metadata.uid.as_deref().unwrap_or("");
    if let Some(uid) = pod.uid {
        if uid != cached_uid {
            return if seen.is_some() || deleted(uid) {
                Step::Fail(CniError::try_again_later(format!(
                    "pod {pod} was re-created (now UID {cached_uid}) while the ADD of UID {uid} waited"
                )))
            } else {
                Step::Wait(format!("pod {pod} with UID {uid} (the agent's cache has UID {cached_uid})"))
            };
        }
    }
    *seen = Some(cached_uid.to_string());
    pick(p)
}

/// `pick` applied to the pod's hand-off once the controller wrote it for the pod's UID
/// (`pick` answers `Err(what is missing)` to keep waiting). An unreadable or newer hand-off fails.
fn from_handoff<T>(pod: &PodId, p: &PodMeta, pick: impl FnOnce(&handoff::Handoff) -> Result<T, String>) -> Step<T, CniError> {
    let cached_uid = p.metadata.uid.as_deref().unwrap_or("");
    let handed = format!("the controller to hand over the interfaces of pod {pod} (annotation {})", handoff::ANNOTATION);
    let Some(value) = p.metadata.annotations.as_ref().and_then(|a| a.get(handoff::ANNOTATION)) else {
        return Step::Wait(handed);
    };
    let parsed = match handoff::parse(value) {
        Ok(p) => p,
        Err(e @ HandoffError::Unsupported { .. }) => return Step::Fail(CniError::invalid_config(e.to_string())),
        Err(e) => return Step::Fail(CniError::invalid_config(format!("pod {pod}: {e}"))),
    };
    let Some(h) = parsed.handoff() else { return Step::Wait(handed) };
    if h.pod_uid != cached_uid {
        return Step::Wait(format!("{handed} (the annotation is for UID {}, the pod is {cached_uid})", h.pod_uid));
    }
    match pick(h) {
        Ok(t) => Step::Ready(t),
        Err(what) => Step::Wait(format!("{handed}; {what}")),
    }
}

/// `from_handoff` for one interface (cluster mode: `CNI_IFNAME`), with what the cached pod says
/// about the ports it may use ([`PodPorts`]).
fn interface_of(pod: &PodId, p: &PodMeta, ifname: &str) -> Step<(Attachment, PodPorts), CniError> {
    let ports = PodPorts::of(pod, p);
    from_handoff(pod, p, |h| {
        h.interface(ifname).cloned().map(|a| (a, ports)).ok_or_else(|| {
            format!("it hands over {:?}, not {ifname}", h.interfaces.iter().map(|a| a.interface.as_str()).collect::<Vec<_>>())
        })
    })
}

/// What the agent's cached pod (never the hand-off, which a forger could write) says about the
/// logical ports beyond its own `pod_port`s it may be plugged into: the IPAMClaim each networks
/// element names (`ipam-claim-reference`, by interface) and the VMI UID of a KubeVirt launcher
/// pod (label `kubevirt.io/created-by`), the only `iface_id_ver` other than the pod UID accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodPorts {
    /// `(interface, claim)` of every networks element with `ipam-claim-reference`.
    pub claims: Vec<(String, String)>,
    /// The `kubevirt.io/created-by` label.
    pub created_by: Option<String>,
    /// The cached pod's UID (what a hand-off signature is checked for).
    pub uid: String,
}

impl PodPorts {
    fn of(pod: &PodId, p: &PodMeta) -> PodPorts {
        let networks = p.metadata.annotations.as_ref().and_then(|a| a.get(model::request::NETWORKS_ANNOTATION));
        let claims = networks
            .and_then(|n| model::request::parse(n, pod.namespace).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.ipam_claim_reference.map(|c| (s.interface, c)))
            .collect();
        let created_by = p.metadata.labels.as_ref().and_then(|l| l.get(CREATED_BY_LABEL)).filter(|v| !v.is_empty()).cloned();
        PodPorts { claims, created_by, uid: p.metadata.uid.clone().unwrap_or_default() }
    }
}

/// What ADD made so far (undone when it fails).
#[derive(Default)]
struct Made {
    veths: Vec<String>,
    ports: Vec<Uuid>,
}

/// What every ADD does first: register for cancellation by a DEL, take the container's lock.
struct AddCall<'a> {
    agent: &'a Agent,
    req: &'a Request,
    pod: PodId<'a>,
    timeout: Duration,
    /// When plugging must stop so that the undo still fits before `deadline`.
    plug_deadline: Instant,
    reserve: Duration,
    cancel: &'a CancellationToken,
    seen: Option<String>,
}

impl<'a> AddCall<'a> {
    fn new(
        agent: &'a Agent,
        req: &'a Request,
        timeout: Duration,
        deadline: Instant,
        cancel: &'a CancellationToken,
    ) -> Result<Self, CniError> {
        let reserve = Duration::from_millis(cleanup_reserve_ms(timeout.as_millis() as u64));
        Ok(AddCall { agent, req, pod: PodId::of(req)?, timeout, plug_deadline: deadline - reserve, reserve, cancel, seen: None })
    }

    /// Waits (within the plug deadline, cancellable) until `pick` decides on the cached pod.
    async fn wait_pod<T>(&mut self, mut pick: impl FnMut(&PodId, &PodMeta) -> Step<T, CniError>) -> Result<T, CniError> {
        let (agent, pod, node) = (self.agent, &self.pod, self.agent.config.node_name.as_str());
        let seen = &mut self.seen;
        let waited = tokio::select! {
            r = agent.pods.wait(pod.namespace, pod.name, self.plug_deadline, |p| {
                decide(pod, node, seen, |u| agent.pods.was_deleted(u), p, |p| pick(pod, p))
            }) => r,
            _ = self.cancel.cancelled() => return Err(cancelled()),
        };
        match waited {
            Ok(t) => Ok(t),
            Err(Ok(e)) => Err(e),
            Err(Err(what)) => {
                let hint = if what.starts_with("the controller") { "; is kubetron-controller running and leading?" } else { "" };
                Err(CniError::try_again_later(format!(
                    "ADD of pod {pod} did not finish within {} ms: it was waiting for {what}{hint}",
                    (self.timeout - self.reserve).as_millis()
                )))
            }
        }
    }

    /// Plugs every attachment (stopping at the plug deadline or on cancellation), undoing all of
    /// them when one fails; the results in order.
    async fn plug_all(&self, atts: &[Attachment]) -> Result<Vec<CniResult>, CniError> {
        let uid = self.seen.clone().unwrap_or_default();
        let mut made = Made::default();
        let r = {
            let plugging = async {
                let mut out = Vec::new();
                for att in atts {
                    out.push(plug(self.agent, self.req, &self.pod, &uid, att, self.plug_deadline, &mut made).await?);
                }
                Ok(out)
            };
            tokio::select! {
                r = plugging => r,
                _ = self.cancel.cancelled() => Err(cancelled()),
                _ = tokio::time::sleep_until(self.plug_deadline) => Err(CniError::try_again_later(format!(
                    "ADD of pod {} did not finish plugging within {} ms", self.pod, (self.timeout - self.reserve).as_millis()
                ))),
            }
        };
        match &r {
            Err(_) => {
                if tokio::time::timeout(self.reserve, undo(self.agent, made)).await.is_err() {
                    warn!(
                        container = self.req.container_id(),
                        "undoing a failed ADD did not finish within {} ms",
                        self.reserve.as_millis()
                    );
                }
            }
            Ok(_) => {
                for att in atts {
                    info!(pod = %self.pod, ifname = %att.interface, port = %att.logical_port, "plugged");
                }
            }
        }
        r
    }
}

/// Runs `f` with the container's ADD registered (a DEL cancels it) and its lock held.
async fn serialized<T>(
    agent: &Agent,
    req: &Request,
    cancel: &CancellationToken,
    until: Instant,
    f: impl std::future::Future<Output = Result<T, CniError>>,
) -> Result<T, CniError> {
    let container = req.container_id();
    agent.register_add(container, cancel.clone());
    let _registered = Unregister(agent, container);
    let _lock = tokio::select! {
        g = agent.lock_container(container) => g,
        _ = cancel.cancelled() => return Err(cancelled()),
        _ = tokio::time::sleep_until(until) => return Err(CniError::try_again_later(format!(
            "ADD of container {container} waited too long for another request of the same container"
        ))),
    };
    f.await
}

async fn add(
    agent: &Agent,
    req: &Request,
    timeout: Duration,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<CniResult, CniError> {
    req.config.refuse_unhonoured_capabilities()?;
    req.netns().ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for ADD"))?;
    let mut call = AddCall::new(agent, req, timeout, deadline, cancel)?;
    let until = call.plug_deadline;
    if req.config.kubetron.mode() == Mode::Chained {
        return serialized(agent, req, cancel, until, add_chained(call)).await;
    }
    serialized(agent, req, cancel, until, async move {
        let ifname = req.ifname().to_string();
        let (att, ports) = call.wait_pod(|pod, p| interface_of(pod, p, &ifname)).await?;
        check_attachment(req, &call.pod, &att, true, &ports, agent.handoff_key())?;
        Ok(call.plug_all(std::slice::from_ref(&att)).await?.remove(0))
    })
    .await
}

/// The pod annotations the runtime passed (capability `io.kubernetes.cri.pod-annotations`).
fn runtime_pod_annotations(req: &Request) -> Option<&serde_json::Map<String, serde_json::Value>> {
    req.config.runtime_config.as_ref()?.extra.get(cni::POD_ANNOTATIONS_CAPABILITY)?.as_object()
}

/// Chained mode: after the cluster's default plugin, every kubetron network the pod asks for
/// (`k8s.v1.cni.cncf.io/networks`) is plugged in this one call; the result is `prevResult` with
/// them appended. A pod asking for no kubetron network gets `prevResult` as it is.
async fn add_chained(mut call: AddCall<'_>) -> Result<CniResult, CniError> {
    let req = call.req;
    let prev = req.prev_result.clone().ok_or_else(|| {
        CniError::invalid_config("chained mode needs prevResult: kubetron must come after the cluster's default plugin in the conflist")
    })?;
    // The networks: from the runtime when it passes pod annotations, else from the pod.
    let networks: Option<String> = match runtime_pod_annotations(req) {
        Some(a) => a.get(model::request::NETWORKS_ANNOTATION).and_then(|v| v.as_str()).map(str::to_string),
        None => {
            call.wait_pod(|_, p| {
                Step::Ready(p.metadata.annotations.as_ref().and_then(|a| a.get(model::request::NETWORKS_ANNOTATION)).cloned())
            })
            .await?
        }
    };
    let Some(networks) = networks.filter(|n| !n.trim().is_empty()) else { return Ok(prev) };
    let selections = model::request::parse(&networks, call.pod.namespace)
        .map_err(|e| CniError::invalid_config(format!("pod {}: {}: {e}", call.pod, model::request::NETWORKS_ANNOTATION)))?;
    let synced = tokio::select! {
        s = call.agent.nads.wait_synced() => s,
        _ = tokio::time::sleep_until(call.plug_deadline) => false,
    };
    if !synced {
        return Err(CniError::try_again_later("the node agent has not loaded the NetworkAttachmentDefinitions yet"));
    }
    let mut ours = 0;
    for s in &selections {
        let nad = call.agent.nads.get(&s.namespace, &s.name).ok_or_else(|| {
            CniError::invalid_config(format!("pod {} asks for network {}/{}, which does not exist", call.pod, s.namespace, s.name))
        })?;
        if nad.kubetron_config().ok().flatten().is_some() {
            ours += 1;
        }
    }
    if ours == 0 {
        return Ok(prev);
    }
    let (handoff, ports) = call
        .wait_pod(|pod, p| {
            let ports = PodPorts::of(pod, p);
            from_handoff(pod, p, |h| {
                if h.interfaces.len() >= ours {
                    Ok((h.interfaces.clone(), ports))
                } else {
                    Err(format!("it hands over {} of the pod's {ours} kubetron networks", h.interfaces.len()))
                }
            })
        })
        .await?;
    for att in &handoff {
        check_attachment(req, &call.pod, att, false, &ports, call.agent.handoff_key())?;
    }
    let results = call.plug_all(&handoff).await?;
    Ok(append_results(prev, results))
}

/// `prev` with each attachment's interfaces, IPs (re-indexed) and routes appended.
fn append_results(mut prev: CniResult, results: Vec<CniResult>) -> CniResult {
    for r in results {
        let base = prev.interfaces.len();
        prev.interfaces.extend(r.interfaces);
        prev.ips.extend(r.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + base);
            ip
        }));
        prev.routes.extend(r.routes);
    }
    prev
}

fn cancelled() -> CniError {
    CniError::try_again_later("ADD was cancelled (the runtime went away, or a DEL of the same container arrived)")
}

struct Unregister<'a>(&'a Agent, &'a str);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.unregister_add(self.1);
    }
}

/// The hand-off must name this pod's own port (and, one attachment per call, this network): its
/// `pod_port`, or the `claim_port` of the IPAMClaim its own networks element names for that
/// interface (`ports`, from the agent's cache), or a port the controller signed for this pod
/// ([`Attachment::sign`]; checked only with the cluster's hand-off `key`: a backend's own port
/// IDs, e.g. Neutron's, derive from nothing the agent can check). An `iface_id_ver` other than
/// the pod UID must be the pod's `kubevirt.io/created-by` label. So a forged hand-off cannot reach
/// another namespace's, another pod's or another claim's port.
fn check_attachment(
    req: &Request,
    pod: &PodId,
    att: &Attachment,
    same_network: bool,
    ports: &PodPorts,
    key: Option<&[u8]>,
) -> Result<(), CniError> {
    let own = model::names::pod_port(pod.namespace, pod.name, &att.interface);
    let claimed =
        ports.claims.iter().find(|(ifname, _)| *ifname == att.interface).map(|(_, claim)| model::names::claim_port(pod.namespace, claim));
    let signed = || !ports.uid.is_empty() && key.is_some_and(|k| att.signed_by(k, &ports.uid));
    if att.logical_port != own && Some(&att.logical_port) != claimed.as_ref() && !signed() {
        let also = claimed.as_ref().map(|c| format!(" (or its IPAMClaim's port {c:?})")).unwrap_or_default();
        let sig = match (&att.sig, key) {
            (None, _) => "",
            (Some(_), None) => "; it is signed, but this agent has no hand-off key (--handoff-key-file)",
            (Some(_), Some(_)) => "; its signature does not check under this agent's hand-off key",
        };
        return Err(CniError::invalid_config(format!(
            "the hand-off of pod {pod} names logical port {:?} for {}, but this pod's port is {own:?}{also}{sig}; refusing to plug it",
            att.logical_port, att.interface
        )));
    }
    if let Some(ver) = att.iface_id_ver.as_deref() {
        let pod_uid = pod.uid.unwrap_or("");
        if ver != pod_uid && Some(ver) != ports.created_by.as_deref() {
            return Err(CniError::invalid_config(format!(
                "the hand-off of pod {pod} binds {} with iface-id-ver {ver:?}, which is neither the pod's UID nor its {CREATED_BY_LABEL} label; refusing to plug it",
                att.interface
            )));
        }
    }
    if same_network && att.cni_network != req.config.name {
        return Err(CniError::invalid_config(format!(
            "the hand-off of pod {pod} puts {} on network {:?}, but this call is for network {:?}",
            att.interface, att.cni_network, req.config.name
        )));
    }
    Ok(())
}

/// Plugs one attachment: the veth and its addresses (netlink), the OVS Interface; then waits
/// for `ovn-installed` (up to `port_up_timeout_ms`).
async fn plug(
    agent: &Agent,
    req: &Request,
    pod: &PodId<'_>,
    uid: &str,
    att: &Attachment,
    deadline: Instant,
    made: &mut Made,
) -> Result<CniResult, CniError> {
    let ifname = att.interface.clone();
    let netns = req.netns().ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for ADD"))?.to_path_buf();
    let lsp = att.logical_port.as_str();
    let mac: MacAddr =
        att.mac.parse().map_err(|_| CniError::invalid_config(format!("the hand-off of pod {pod} has an invalid MAC {:?}", att.mac)))?;
    let host_if = host_ifname(req.container_id(), &ifname);
    let ovs = agent.ovs.client();

    // An earlier container's interface bound to this port here (a sandbox replaced without a
    // successful DEL) would compete for the port: remove it.
    let stale = agent.ovs.snapshot().is_some_and(|s| {
        s.find_map(Interface::TABLE, "external_ids", "iface-id", lsp)
            .iter()
            .any(|(_, row)| Interface::from_row(row).external_ids.get(names::CONTAINER_ID).map(String::as_str) != Some(req.container_id()))
    });
    if stale {
        plumb::remove_stale(ovs, agent.host(), lsp, req.container_id()).await?;
    }

    let permit = agent.plug_permits.acquire().await.map_err(|_| CniError::try_again_later("the node agent is stopping"))?;
    made.veths.push(host_if.clone());
    let host = agent.host.clone();
    let (veth_name, pod_if, pod_netns) = (host_if.clone(), ifname.clone(), netns.clone());
    let (mtu, addressing) = (att.mtu, att.addressing);
    let routes: Vec<(IpNet, IpAddr)> = att.routes.iter().map(|r| (r.dst, r.gw)).collect();
    let (ips, pod_routes) = (att.ips.clone(), routes.clone());
    let host_mac = tokio::task::spawn_blocking(move || -> Result<Option<MacAddr>, CniError> {
        let pod =
            Netns::open(&pod_netns).map_err(|e| CniError::unknown_container(format!("network namespace {}: {e}", pod_netns.display())))?;
        let veth = plumb::make_veth(host.as_deref(), &pod, &veth_name, &pod_if, mac, mtu)?;
        if addressing == Addressing::Static {
            plumb::address_pod_routes(&pod, veth.pod_index, &ips, &pod_routes)?;
        }
        Ok(veth.host_mac)
    })
    .await
    .map_err(|e| CniError::internal(format!("plugging {host_if}: {e}")))??;

    let bridge = plumb::bridge(ovs, &agent.config.bridge).await?;
    let mut tags: BTreeMap<String, String> = plumb::attachment_tags(req);
    tags.insert(names::INTERFACE.to_string(), ifname.clone());
    tags.insert(names::CNI_NETWORK.to_string(), att.cni_network.clone());
    tags.insert(names::LOGICAL_SWITCH.to_string(), att.logical_switch.clone());
    tags.insert(names::NETWORK.to_string(), att.network.clone());
    tags.insert(names::NODE.to_string(), agent.config.node_name.clone());
    tags.insert(names::POD_UID.to_string(), uid.to_string());
    // `iface-id-ver`: the pod UID, or what the hand-off names for a port that outlives the pod
    // (an IPAMClaim's: the VMI UID), checked by `check_attachment`.
    let ver = att.iface_id_ver.as_deref().unwrap_or(uid);
    made.ports.push(plumb::plug(ovs, &bridge, &host_if, lsp, &att.mac, Some(ver), &tags).await?);
    drop(permit);

    // An explicit `port_up_timeout_ms` bounds the wait (0: no wait); without one the agent waits
    // for ovn-controller as long as the call's deadline allows (a burst of pods on one node takes
    // ovn-controller well over the standalone plugin's 10 s default).
    let explicit = req.raw_config.get("port_up_timeout_ms").is_some();
    let waited = Instant::now();
    let port_up = if explicit { Duration::from_millis(req.config.kubetron.port_up_timeout_ms) } else { Duration::MAX };
    if !port_up.is_zero() {
        let until = Instant::now().checked_add(port_up).map_or(deadline, |t| deadline.min(t));
        agent.ovs.wait_installed(&host_if, lsp, until).await.map_err(|e| match e {
            InstallError::Timeout(what) => CniError::try_again_later(format!(
                "OVN did not install logical port {lsp} on this node within {} ms (waiting for {what}); is ovn-controller running here?",
                waited.elapsed().as_millis()
            )),
            InstallError::Taken(what) => CniError::try_again_later(what),
            InstallError::Gone => CniError::try_again_later("the node agent is stopping"),
        })?;
    }

    let addresses =
        (addressing == Addressing::Static).then_some(plumb::Addresses { ips: &att.ips, gateways: &att.gateways, routes: &routes });
    Ok(plumb::attachment_result(req.version(), (&host_if, host_mac), (&netns, &ifname, mac, att.mtu), addresses))
}

/// Undoes a failed ADD (failures are logged: the ADD's own error is what the runtime sees).
async fn undo(agent: &Agent, made: Made) {
    for p in made.ports.into_iter().rev() {
        if let Err(e) = plumb::unplug(agent.ovs.client(), p).await {
            warn!("undoing a failed ADD: {}", e.msg);
        }
    }
    for v in made.veths.into_iter().rev() {
        if let Err(e) = delete_veth(agent, v).await {
            warn!("undoing a failed ADD: {}", e.msg);
        }
    }
}

async fn delete_veth(agent: &Agent, name: String) -> Result<bool, CniError> {
    // Netlink work is bounded like ADD's (a burst of DELs must not start a thread each).
    let _permit = agent.plug_permits.acquire().await.map_err(|_| CniError::try_again_later("the node agent is stopping"))?;
    let host = agent.host.clone();
    tokio::task::spawn_blocking(move || plumb::delete_veth(host.as_deref(), &name))
        .await
        .map_err(|e| CniError::internal(format!("deleting a veth: {e}")))?
}

/// Removes attachments: bridge ports, then host veths.
async fn remove(agent: &Agent, found: Vec<(Interface, Option<ovn::vswitch::Port>)>, also_veth: Option<String>) -> Result<(), CniError> {
    let mut veths: Vec<String> = also_veth.into_iter().collect();
    for (iface, port) in found {
        if let Some(p) = port {
            plumb::unplug(agent.ovs.client(), p.uuid).await?;
        }
        if !veths.contains(&iface.name) {
            veths.push(iface.name);
        }
    }
    for v in veths {
        delete_veth(agent, v).await?;
    }
    Ok(())
}

async fn del(agent: &Agent, req: &Request) -> Result<(), CniError> {
    let container = req.container_id();
    // A DEL while the same container's ADD waits: that ADD is cancelled (and undoes itself) first.
    if agent.cancel_add(container) {
        info!(container, "DEL cancels the ADD of the same container in progress");
    }
    let _lock = agent.lock_container(container).await;
    let ifname = req.ifname();
    let chained = req.config.kubetron.mode() == Mode::Chained;
    let mut tags = vec![(names::CONTAINER_ID, container)];
    if !chained {
        tags.push((names::INTERFACE, ifname));
    }
    let found = plumb::tagged_interfaces(agent.ovs.client(), &tags).await?;
    let veth = (!ifname.is_empty() && !chained).then(|| host_ifname(container, ifname));
    remove(agent, found, veth).await
}

async fn check(agent: &Agent, req: &Request) -> Result<(), CniError> {
    let host_if = host_ifname(req.container_id(), req.ifname());
    let snap = agent.ovs.snapshot().ok_or_else(|| CniError::try_again_later("the local Open_vSwitch database is not loaded yet"))?;
    let iface = super::ovs::interface(&snap, &host_if)
        .ok_or_else(|| CniError::new(ErrorCode::Other(102), format!("interface {host_if} is not on this node's bridge")))?;
    if iface.external_ids.get(names::CONTAINER_ID).map(String::as_str) != Some(req.container_id()) {
        return Err(CniError::new(ErrorCode::Other(102), format!("interface {host_if} belongs to another container")));
    }
    if iface.external_ids.get(super::ovs::OVN_INSTALLED).map(String::as_str) != Some("true") {
        return Err(CniError::try_again_later(format!("OVN has not installed interface {host_if} (no ovn-installed)")));
    }
    if let Some(prev) = &req.prev_result {
        let want = prev.interfaces.iter().find(|i| i.name == req.ifname() && !i.sandbox.is_empty()).map(|i| i.mac.to_lowercase());
        let have = iface.external_ids.get("attached-mac").map(|m| m.to_lowercase());
        if want.is_some() && want != have {
            return Err(CniError::new(
                ErrorCode::Other(102),
                format!("interface {host_if} carries MAC {have:?}, prevResult says {want:?}"),
            ));
        }
    }
    Ok(())
}

fn status(agent: &Agent) -> Result<(), CniError> {
    if !agent.pods.synced() {
        return Err(CniError::new(ErrorCode::NotAvailable, "the node agent has not loaded this node's pods yet"));
    }
    if !agent.ovs.ready() {
        return Err(CniError::new(
            ErrorCode::NotAvailable,
            format!("the node agent is not connected to the local Open_vSwitch database at {}", agent.ovs.remote()),
        ));
    }
    Ok(())
}

async fn gc(agent: &Agent, req: &Request) -> Result<(), CniError> {
    let valid = req.config.valid_attachments.clone().unwrap_or_default();
    let network = req.config.name.clone();
    let found: Vec<_> = plumb::tagged_interfaces(agent.ovs.client(), &[(names::CNI_NETWORK, &network)])
        .await?
        .into_iter()
        .filter(|(i, _)| {
            let ids = &i.external_ids;
            !valid.iter().any(|a| ids.get(names::CONTAINER_ID) == Some(&a.container_id) && ids.get(names::INTERFACE) == Some(&a.ifname))
        })
        .collect();
    if !found.is_empty() {
        info!(network = %network, count = found.len(), "GC removes attachments the runtime no longer knows");
    }
    remove(agent, found, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(name: &str, ifname: &str) -> Request {
        let env = Env::from_vars([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/p"),
            ("CNI_IFNAME", ifname),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_UID=u1"),
        ])
        .unwrap();
        Request::from_parts(env, json!({"cniVersion": "1.0.0", "name": name, "type": "kubetron"})).unwrap()
    }

    fn attachment(port: &str) -> Attachment {
        serde_json::from_value(json!({"interface": "net1", "network": "team-a/red", "cni_network": "red", "logical_switch": "red",
            "logical_port": port, "mac": "0a:58:0a:01:00:0c", "ips": ["10.1.0.12/24"], "gateways": [], "routes": [],
            "mtu": 1400, "addressing": "static"}))
        .unwrap()
    }

    fn pod_meta(uid: &str, handoff: Option<&str>) -> PodMeta {
        let mut annotations = serde_json::Map::new();
        if let Some(h) = handoff {
            annotations.insert(handoff::ANNOTATION.into(), json!(h));
        }
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "team-a", "uid": uid, "annotations": annotations}}))
        .unwrap()
    }

    /// A hand-off naming another pod's port (a forged annotation) or another network is refused.
    #[test]
    fn attachments_must_name_the_pods_own_port_and_this_network() {
        let r = req("red", "net1");
        let pod = PodId::of(&r).unwrap();
        let none = PodPorts::default();
        assert!(check_attachment(&r, &pod, &attachment("team-a_web-0_net1"), true, &none, None).is_ok());
        let e = check_attachment(&r, &pod, &attachment("team-b_db-0_net1"), true, &none, None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{e:?}");
        assert!(e.msg.contains("team-b_db-0_net1") && e.msg.contains("refusing"), "{e:?}");
        let e = check_attachment(&req("blue", "net1"), &pod, &attachment("team-a_web-0_net1"), true, &none, None).unwrap_err();
        assert!(e.msg.contains("\"blue\""), "{e:?}");
    }

    /// A port named after nothing the agent can check (a backend's own port ID) is plugged only
    /// when the controller signed it for this pod and the agent holds the same hand-off key.
    #[test]
    fn foreign_port_only_when_signed_for_this_pod() {
        let r = req("red", "net1");
        let pod = PodId::of(&r).unwrap();
        let ports = PodPorts::of(&pod, &pod_meta("u1", None));
        assert_eq!(ports.uid, "u1");
        let key: &[u8] = b"0123456789abcdef0123456789abcdef";
        let neutron_port = "0d8b0c4e-6a53-4d2b-9b8c-3f1a2e7d5c10";
        let mut a = attachment(neutron_port);
        let refused = |a: &Attachment, key: Option<&[u8]>| {
            let e = check_attachment(&r, &pod, a, true, &ports, key).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{e:?}");
            assert!(e.msg.contains(neutron_port) && e.msg.contains("refusing"), "{e:?}");
            e.msg
        };
        // Unsigned: refused, with or without a key.
        refused(&a, None);
        refused(&a, Some(key));
        a.sign(key, "u1");
        assert!(check_attachment(&r, &pod, &a, true, &ports, Some(key)).is_ok());
        assert!(refused(&a, None).contains("no hand-off key"));
        assert!(refused(&a, Some(b"another key, also 32 bytes long!")).contains("does not check"));
        // Signed for another pod (copied from its hand-off), or changed after signing.
        let mut other = attachment(neutron_port);
        other.sign(key, "u2");
        refused(&other, Some(key));
        let mut moved = a.clone();
        moved.mac = "0a:58:0a:01:00:0d".into();
        refused(&moved, Some(key));
        // The signature does not lift the other checks.
        let mut ver = a.clone();
        ver.iface_id_ver = Some("someone-else".into());
        assert!(check_attachment(&r, &pod, &ver, true, &ports, Some(key)).unwrap_err().msg.contains("iface-id-ver"));
    }

    /// A launcher pod as the agent caches it: its networks element names IPAMClaim `vm1.red` for
    /// net1, its VMI UID label.
    fn launcher_meta(uid: &str, created_by: Option<&str>, networks: &str) -> PodMeta {
        let mut labels = serde_json::Map::new();
        labels.insert("kubevirt.io".into(), json!("virt-launcher"));
        if let Some(c) = created_by {
            labels.insert(CREATED_BY_LABEL.into(), json!(c));
        }
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "team-a", "uid": uid, "labels": labels,
                         "annotations": {"kubevirt.io/domain": "vm1", model::request::NETWORKS_ANNOTATION: networks}}}))
        .unwrap()
    }

    /// N1: the agent accepts a claim port only when the pod's own cached networks element names
    /// that claim for that interface, and an `iface_id_ver` only when it is the pod UID or the
    /// pod's cached `kubevirt.io/created-by`.
    #[test]
    fn agent_accepts_only_its_own_claim_ports() {
        let r = req("red", "net1");
        let pod = PodId::of(&r).unwrap();
        let own = launcher_meta("u1", Some("vmi-1"), r#"[{"name":"red","ipam-claim-reference":"vm1.red"},{"name":"blue"}]"#);
        let ports = PodPorts::of(&pod, &own);
        assert_eq!(ports.claims, vec![("net1".to_string(), "vm1.red".to_string())]);
        assert_eq!(ports.created_by.as_deref(), Some("vmi-1"));
        let with = |port: &str, ver: Option<&str>| {
            let mut a = attachment(port);
            a.iface_id_ver = ver.map(str::to_string);
            a
        };
        // Its own claim port, bound with the VMI UID or the pod UID.
        assert!(check_attachment(&r, &pod, &with("claim:team-a/vm1.red", Some("vmi-1")), true, &ports, None).is_ok());
        assert!(check_attachment(&r, &pod, &with("claim:team-a/vm1.red", Some("u1")), true, &ports, None).is_ok());
        assert!(check_attachment(&r, &pod, &with("claim:team-a/vm1.red", None), true, &ports, None).is_ok());
        // Its pod_port is still fine.
        assert!(check_attachment(&r, &pod, &with("team-a_web-0_net1", None), true, &ports, None).is_ok());
        let refused = |a: Attachment, ports: &PodPorts| {
            let e = check_attachment(&r, &pod, &a, true, ports, None).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{e:?}");
            assert!(e.msg.contains("refusing"), "{e:?}");
            e.msg
        };
        // Another claim, another namespace's claim of the same name, another interface's claim.
        assert!(refused(with("claim:team-a/vm2.red", Some("vmi-1")), &ports).contains("vm2.red"));
        refused(with("claim:team-b/vm1.red", Some("vmi-1")), &ports);
        let mut net2 = with("claim:team-a/vm1.red", None);
        net2.interface = "net2".into();
        refused(net2, &ports);
        // iface_id_ver that is neither the pod UID nor the created-by label.
        assert!(refused(with("claim:team-a/vm1.red", Some("vmi-other")), &ports).contains("kubevirt.io/created-by"));
        assert!(refused(with("team-a_web-0_net1", Some("u-other")), &ports).contains("iface-id-ver"));
        // A pod without the claim in its own networks element (a forged hand-off on a plain pod).
        let plain = PodPorts::of(&pod, &launcher_meta("u1", None, r#"[{"name":"red"}]"#));
        assert!(plain.claims.is_empty() && plain.created_by.is_none());
        refused(with("claim:team-a/vm1.red", None), &plain);
        refused(with("team-a_web-0_net1", Some("vmi-1")), &plain);
    }

    /// The waiter's decisions: wait for the pod and the hand-off; fail once the pod is deleted or
    /// re-created; refuse an unreadable or newer hand-off.
    #[test]
    fn decide_waits_then_fails_on_deletion_or_recreation() {
        let r = req("red", "net1");
        let pod = PodId::of(&r).unwrap();
        let none = |_: &str| false;
        let pick = |p: &PodMeta| interface_of(&pod, p, "net1");
        let mut seen = None;
        let wait_text = |s: Step<(Attachment, PodPorts), CniError>| match s {
            Step::Wait(w) => w,
            Step::Ready(_) => panic!("ready"),
            Step::Fail(e) => panic!("fail {e:?}"),
        };
        let fail = |s: Step<(Attachment, PodPorts), CniError>| match s {
            Step::Fail(e) => e,
            Step::Ready(_) => panic!("ready"),
            Step::Wait(w) => panic!("wait {w}"),
        };
        assert!(wait_text(decide(&pod, "n1", &mut seen, none, None, pick)).contains("to appear"));
        // Deleted before this request ever saw it: fail at once.
        assert!(fail(decide(&pod, "n1", &mut seen, |u| u == "u1", None, pick)).msg.contains("was deleted"));
        // Another generation cached: wait (the cache may lag behind).
        assert!(wait_text(decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u0", None)), |p| interface_of(&pod, p, "net1")))
            .contains("UID u1"));
        // Ours, without hand-off; v0 list; a hand-off for another UID: all wait for the controller.
        assert!(wait_text(decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u1", None)), |p| interface_of(&pod, p, "net1")))
            .contains("hand over the interfaces"));
        assert_eq!(seen.as_deref(), Some("u1"));
        let v0 = r#"[{"interface": "net1"}]"#;
        assert!(wait_text(decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u1", Some(v0))), |p| interface_of(&pod, p, "net1")))
            .contains("hand over"));
        let mut h = model::handoff::Handoff::new("u0", vec![attachment("team-a_web-0_net1")]);
        let other = handoff::render(&h);
        assert!(wait_text(decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u1", Some(&other))), |p| interface_of(&pod, p, "net1")))
            .contains("for UID u0"));
        h.pod_uid = "u1".into();
        let ours = handoff::render(&h);
        assert!(wait_text(decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u1", Some(&ours))), |p| interface_of(&pod, p, "net2")))
            .contains("[\"net1\"]"));
        match decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u1", Some(&ours))), |p| interface_of(&pod, p, "net1")) {
            Step::Ready((a, ports)) => {
                assert_eq!(a.logical_port, "team-a_web-0_net1");
                assert_eq!(ports, PodPorts { uid: "u1".into(), ..PodPorts::default() });
            }
            _ => panic!("not ready"),
        }
        // A newer writer's value, or garbage: refused (7), no waiting.
        let v2 = r#"{"version": 2, "pod_uid": "u1", "interfaces": []}"#;
        let e = fail(decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u1", Some(v2))), |p| interface_of(&pod, p, "net1")));
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("upgrade the node agent"), "{e:?}");
        assert_eq!(
            fail(decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u1", Some("{"))), |p| interface_of(&pod, p, "net1"))).code,
            ErrorCode::InvalidNetworkConfig
        );
        // Seen, then gone or re-created: fail.
        assert!(fail(decide(&pod, "n1", &mut seen, none, None, pick)).msg.contains("(UID u1) was deleted"));
        assert!(fail(decide(&pod, "n1", &mut seen, none, Some(&pod_meta("u2", None)), |p| interface_of(&pod, p, "net1")))
            .msg
            .contains("re-created (now UID u2)"));
    }
}
