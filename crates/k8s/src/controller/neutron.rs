//! The `neutron` backend: a pod's attachments are Neutron ports, made, read and deleted through
//! Neutron's API ([`neutron::Client`]); Neutron (ML2/OVN) writes the OVN Northbound database, this
//! module never does and never names it.
//!
//! - One port per attachment: `device_owner` [`neutron::DEVICE_OWNER`], `device_id` the pod UID,
//!   `name` [`port_name`], `binding:host_id` the pod's node (the node's chassis must carry the
//!   node name as OVS `external_ids:hostname`), `mac_address` / `fixed_ips` only for static
//!   requests. Made concurrently within the client's write bound, idempotently
//!   ([`neutron::Client::ensure_port`]).
//! - The hand-off names the port's UUID as the logical port (what ML2/OVN names the logical switch
//!   port and the node sets as `iface-id`), signed with the cluster's hand-off key: the node agent
//!   plugs a port that is not named after the pod only with a valid signature.
//! - `network-status` once every port is `ACTIVE` (Neutron saw ovn-controller bind it); until
//!   then the runner reconciles the pod again on every [`NeutronSettings::status_poll`].
//! - Deleted with the pod; garbage collection removes kubetron's ports whose pod is gone, on the
//!   second sighting at least [`NeutronSettings::gc_grace`] apart (a port made for a pod deleted
//!   meanwhile). Ports of other owners are never touched.
//!
//! - Projects and security groups: a namespace's ports are made in the OpenStack project its
//!   annotation [`PROJECT_ANNOTATION`] names (else [`NeutronSettings::project`], else the token's).
//!   A pod may name security groups per interface ([`SECURITY_GROUPS_ANNOTATION`],
//!   `{"net1": ["web", "db"]}`, names or IDs, looked up in the port's project); each must be listed
//!   in its namespace's [`ALLOWED_SECURITY_GROUPS_ANNOTATION`] (only cluster admins write namespace
//!   metadata), else the pod gets no port and an Event. Without the annotation Neutron gives the
//!   port its project's default group. Groups are set when the port is made.
//!
//! Not supported here (refused with an Event): `ipam-claim-reference` (persistent IPs).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use model::handoff::{self, Attachment, Handoff};
use model::request::NetworkRef;
use neutron::{FixedIp, NewPort, Port, Subnet};
use tokio::sync::watch;

use super::backend::{Backend, Report, Stores};
use super::desired::{pod_is_active, NadLookup, PodRef};
use super::{PodError, PodStatus};
use crate::nad::{authorize, check_capabilities};

/// Namespace annotation: the OpenStack project (ID) of the namespace's ports.
pub const PROJECT_ANNOTATION: &str = "kubetron.io/openstack-project";
/// Pod annotation: security groups per interface, `{"net1": ["web", "db"]}`.
pub const SECURITY_GROUPS_ANNOTATION: &str = "kubetron.io/security-groups";
/// Namespace annotation: the security groups (names or IDs, comma-separated) its pods may name.
pub const ALLOWED_SECURITY_GROUPS_ANNOTATION: &str = "kubetron.io/allowed-security-groups";

/// A namespace's annotations, by name.
pub trait NamespaceLookup: Send + Sync {
    fn annotations(&self, namespace: &str) -> BTreeMap<String, String>;
}

impl NamespaceLookup for kube::runtime::reflector::Store<Namespace> {
    fn annotations(&self, namespace: &str) -> BTreeMap<String, String> {
        self.get(&kube::runtime::reflector::ObjectRef::new(namespace)).and_then(|n| n.metadata.annotations.clone()).unwrap_or_default()
    }
}

impl NamespaceLookup for HashMap<String, BTreeMap<String, String>> {
    fn annotations(&self, namespace: &str) -> BTreeMap<String, String> {
        self.get(namespace).cloned().unwrap_or_default()
    }
}

/// The security groups `pod` names per interface ([`SECURITY_GROUPS_ANNOTATION`]), checked
/// against `interfaces` (those it asks for) and against what its namespace allows (`allowed`:
/// the namespace's [`ALLOWED_SECURITY_GROUPS_ANNOTATION`]). Pure.
pub fn requested_groups(pod: &Pod, interfaces: &[&str], allowed: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, PodError> {
    let Some(raw) = pod.metadata.annotations.as_ref().and_then(|a| a.get(SECURITY_GROUPS_ANNOTATION)) else { return Ok(BTreeMap::new()) };
    let asked: BTreeMap<String, Vec<String>> = serde_json::from_str(raw).map_err(|e| {
        PodError::BadSecurityGroups(format!("{e}; expected an object of interface -> group names, like {{\"net1\": [\"web\"]}}"))
    })?;
    let allowed: Vec<&str> = allowed.unwrap_or("").split(',').map(str::trim).filter(|g| !g.is_empty()).collect();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    for (ifname, groups) in &asked {
        if !interfaces.contains(&ifname.as_str()) {
            return Err(PodError::BadSecurityGroups(format!(
                "it names interface {ifname:?}, which the pod does not ask for (it has {interfaces:?})"
            )));
        }
        if let Some(g) = groups.iter().find(|g| !allowed.contains(&g.as_str())) {
            return Err(PodError::SecurityGroupNotAllowed { namespace, interface: ifname.clone(), group: g.clone() });
        }
    }
    Ok(asked)
}

/// How long a network's subnets are cached.
const SUBNET_TTL: Duration = Duration::from_secs(60);

/// The port name of a pod's attachment: `kubetron/<namespace>/<pod>/<interface>`.
pub fn port_name(pod: &PodRef, interface: &str) -> String {
    format!("kubetron/{}/{}/{interface}", pod.namespace, pod.name)
}

/// The OVN logical switch ML2/OVN makes for Neutron network `id`.
pub fn logical_switch(network_id: &str) -> String {
    format!("neutron-{network_id}")
}

/// How the backend behaves.
#[derive(Debug, Clone)]
pub struct NeutronSettings {
    /// The project ports are made in (`project_id` in the body; needed under noauth). `None`:
    /// the token's project.
    pub project: Option<String>,
    /// The cluster's hand-off key: every attachment is signed with it.
    pub handoff_key: Arc<[u8]>,
    /// How often pods whose ports are not `ACTIVE` yet are looked at again.
    pub status_poll: Duration,
    /// An orphaned port is deleted when garbage collection sees it again at least this long after
    /// it first did.
    pub gc_grace: Duration,
}

impl NeutronSettings {
    pub fn new(handoff_key: Arc<[u8]>) -> NeutronSettings {
        NeutronSettings { project: None, handoff_key, status_poll: Duration::from_millis(500), gc_grace: Duration::from_secs(60) }
    }
}

/// One attachment a pod asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub network: NetworkRef,
    pub network_id: String,
    pub cni_network: String,
    pub interface: String,
    pub port_name: String,
    pub mac: Option<String>,
    pub ips: Vec<IpAddr>,
    pub default_route: Option<Vec<IpAddr>>,
    pub mtu: u32,
    pub dhcp: bool,
}

impl Wanted {
    /// The port to make for pod `pod` on `host`.
    pub fn new_port(&self, pod: &PodRef, host: Option<&str>, project: Option<&str>) -> NewPort {
        NewPort {
            mac_address: self.mac.clone(),
            fixed_ips: self.ips.iter().map(|ip| FixedIp { subnet_id: None, ip_address: Some(ip.to_string()) }).collect(),
            project_id: project.map(str::to_string),
            ..NewPort::for_pod(&self.network_id, &pod.uid, &self.port_name, host)
        }
    }
}

/// The attachments `pod` asks for: none when it is not scheduled or has finished; selections of
/// NADs that belong to other plugins are skipped. Pure.
pub fn wanted(pod: &Pod, nads: &dyn NadLookup) -> Result<Vec<Wanted>, PodError> {
    if !pod_is_active(pod) {
        return Ok(Vec::new());
    }
    let pr = PodRef::of(pod).ok_or(PodError::NoIdentity)?;
    let mut out = Vec::new();
    for sel in crate::annotation::from_pod(pod)? {
        let network = sel.network();
        let nad = nads.nad(&sel.namespace, &sel.name).ok_or_else(|| PodError::NadNotFound { network: network.clone() })?;
        let config = match nad.kubetron_config() {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(source) => return Err(PodError::NadConfig { network, source }),
        };
        if sel.ipam_claim_reference.is_some() {
            return Err(PodError::Unsupported { interface: sel.interface.clone(), what: "ipam-claim-reference (persistent IPs)" });
        }
        if sel.security_profile.is_some() {
            // Neutron's own: security groups (kubetron.io/security-groups).
            return Err(PodError::Unsupported {
                interface: sel.interface.clone(),
                what: "kubetron.io/security-profile (use security groups)",
            });
        }
        authorize(&pr.namespace, &sel, &nad)?;
        check_capabilities(&sel, &config)?;
        let network_id = config.kubetron.network_id.clone().ok_or_else(|| PodError::NotNeutronNetwork { network: network.clone() })?;
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in &sel.ips {
            if !ips.contains(&ip.addr) {
                ips.push(ip.addr);
            }
        }
        out.push(Wanted {
            network,
            network_id,
            port_name: port_name(&pr, &sel.interface),
            interface: sel.interface.clone(),
            cni_network: config.name.clone(),
            mac: sel.mac.map(|m| m.to_string()),
            ips,
            default_route: sel.default_route.clone(),
            mtu: config.kubetron.mtu,
            dhcp: config.kubetron.dhcp,
        });
    }
    Ok(out)
}

/// The hand-off entry of `port` made for `w`, signed for pod `pod_uid` with `key`; `subnets` are
/// the network's (prefix lengths and gateway).
pub fn attachment(w: &Wanted, port: &Port, subnets: &[Subnet], key: &[u8], pod_uid: &str) -> Attachment {
    let mut ips = Vec::new();
    let mut gateways = Vec::new();
    for f in &port.fixed_ips {
        let Some(ip) = f.ip_address.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
        let subnet = subnets
            .iter()
            .find(|s| Some(&s.id) == f.subnet_id.as_ref())
            .or_else(|| subnets.iter().find(|s| s.cidr.parse::<IpNet>().is_ok_and(|n| n.contains(&ip))));
        let prefix = subnet.and_then(|s| s.cidr.parse::<IpNet>().ok()).map_or(if ip.is_ipv4() { 32 } else { 128 }, |n| n.prefix_len());
        if let Ok(net) = IpNet::new(ip, prefix) {
            ips.push(net);
        }
        if let Some(gw) = subnet.and_then(|s| s.gateway_ip.as_deref()).and_then(|g| g.parse::<IpAddr>().ok()) {
            if !gateways.contains(&gw) {
                gateways.push(gw);
            }
        }
    }
    let mut a = Attachment {
        interface: w.interface.clone(),
        network: w.network.to_string(),
        cni_network: w.cni_network.clone(),
        logical_switch: logical_switch(&port.network_id),
        logical_port: port.id.clone(),
        mac: port.mac_address.clone(),
        routes: super::status::default_routes(&w.default_route, &gateways),
        ips,
        gateways,
        mtu: w.mtu,
        addressing: if w.dhcp { handoff::Addressing::Dhcp } else { handoff::Addressing::Static },
        iface_id_ver: None,
        vm: None,
        sig: None,
    };
    a.sign(key, pod_uid);
    a
}

/// A network's subnets and when they were read.
type CachedSubnets = (Instant, Arc<Vec<Subnet>>);

/// The Neutron backend.
pub struct NeutronBackend {
    client: neutron::Client,
    nads: Arc<dyn NadLookup + Send + Sync>,
    namespaces: Arc<dyn NamespaceLookup>,
    leader: watch::Receiver<bool>,
    settings: NeutronSettings,
    subnets: Mutex<HashMap<String, CachedSubnets>>,
    /// Orphaned ports garbage collection has seen, and when it first did.
    orphans: Mutex<HashMap<String, Instant>>,
}

impl NeutronBackend {
    pub fn new(
        client: neutron::Client,
        nads: Arc<dyn NadLookup + Send + Sync>,
        leader: watch::Receiver<bool>,
        settings: NeutronSettings,
    ) -> NeutronBackend {
        let namespaces = Arc::new(HashMap::new());
        NeutronBackend { client, nads, namespaces, leader, settings, subnets: Mutex::default(), orphans: Mutex::default() }
    }

    /// Reads namespace annotations (project, allowed security groups) from `namespaces`
    /// (default: none).
    pub fn with_namespaces(mut self, namespaces: Arc<dyn NamespaceLookup>) -> NeutronBackend {
        self.namespaces = namespaces;
        self
    }

    /// The IDs of `groups` in `project` (`None`: as the client sees them); an unknown or
    /// ambiguous name is refused.
    async fn group_ids(&self, interface: &str, groups: &[String], project: Option<&str>) -> Result<Vec<String>, PodError> {
        let mut ids = Vec::with_capacity(groups.len());
        for g in groups {
            let found = self.client.security_groups_named(g, project).await?;
            let not_found = || PodError::SecurityGroupNotFound {
                interface: interface.to_string(),
                group: g.clone(),
                project: project.unwrap_or("(the token's)").to_string(),
            };
            match found.as_slice() {
                [one] => ids.push(one.id.clone()),
                [] => return Err(not_found()),
                _ => return Err(PodError::BadSecurityGroups(format!("{} security groups are named {g:?}: name it by ID", found.len()))),
            }
        }
        Ok(ids)
    }

    /// [`NeutronBackend::new`] reading NADs from the runner's cache.
    pub fn from_stores(client: neutron::Client, stores: &Stores, leader: watch::Receiver<bool>, settings: NeutronSettings) -> Self {
        NeutronBackend::new(client, Arc::new(stores.nads.clone()), leader, settings).with_namespaces(Arc::new(stores.namespaces.clone()))
    }

    pub fn client(&self) -> &neutron::Client {
        &self.client
    }

    /// The subnets of `network_id` (cached for [`SUBNET_TTL`]; read again when a port names a
    /// subnet the cache does not have).
    async fn subnets(&self, network_id: &str, ports: &[&Port]) -> Result<Arc<Vec<Subnet>>, PodError> {
        let cached = self.subnets.lock().expect("subnet cache").get(network_id).cloned();
        let named: HashSet<&str> = ports.iter().flat_map(|p| &p.fixed_ips).filter_map(|f| f.subnet_id.as_deref()).collect();
        if let Some((at, s)) = cached {
            if at.elapsed() < SUBNET_TTL && named.iter().all(|id| s.iter().any(|x| x.id == *id)) {
                return Ok(s);
            }
        }
        let s = Arc::new(self.client.subnets_of(&[network_id.to_string()]).await?);
        self.subnets.lock().expect("subnet cache").insert(network_id.to_string(), (Instant::now(), s.clone()));
        Ok(s)
    }

    /// Deletes `ports`, concurrently (within the client's write bound).
    async fn delete_all(&self, ports: &[&Port]) -> Result<(), PodError> {
        let r = futures::future::join_all(ports.iter().map(|p| self.client.delete_port(&p.id))).await;
        r.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    fn leading(&self) -> Result<(), PodError> {
        if *self.leader.borrow() {
            Ok(())
        } else {
            Err(PodError::NotLeader)
        }
    }
}

impl Backend for NeutronBackend {
    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    async fn reconcile(&self, pod: &Pod) -> Result<Report, PodError> {
        let pr = PodRef::of(pod).ok_or(PodError::NoIdentity)?;
        let want = wanted(pod, self.nads.as_ref())?;
        self.leading()?;
        let existing = self.client.ports_of_device(&pr.uid).await?;
        let host = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty());
        let ns = self.namespaces.annotations(&pr.namespace);
        let project = ns.get(PROJECT_ANNOTATION).map(|p| p.trim()).filter(|p| !p.is_empty()).or(self.settings.project.as_deref());
        let interfaces: Vec<&str> = want.iter().map(|w| w.interface.as_str()).collect();
        // A pod that wants nothing (finished) only has ports to remove: its groups do not matter.
        let asked = if want.is_empty() {
            BTreeMap::new()
        } else {
            requested_groups(pod, &interfaces, ns.get(ALLOWED_SECURITY_GROUPS_ANNOTATION).map(String::as_str))?
        };
        // Group names are looked up only for ports still to be made.
        let mut groups: HashMap<&str, Vec<String>> = HashMap::new();
        for (ifname, names) in &asked {
            let missing = want.iter().any(|w| w.interface == *ifname && !existing.iter().any(|p| p.name == w.port_name));
            if missing {
                groups.insert(ifname.as_str(), self.group_ids(ifname, names, project).await?);
            }
        }
        // Every missing port at once: one pod's ports never queue behind each other.
        let made = futures::future::join_all(want.iter().map(|w| async {
            match existing.iter().find(|p| p.name == w.port_name && p.network_id == w.network_id) {
                Some(p) => Ok((p.clone(), false)),
                None => {
                    let mut np = w.new_port(&pr, host, project);
                    np.security_groups = groups.get(w.interface.as_str()).cloned();
                    self.client.create_missing_port(&np).await
                }
            }
        }))
        .await;
        let mut ports = Vec::with_capacity(want.len());
        let mut created = Vec::new();
        for r in made {
            let (p, new) = r?;
            if new {
                created.push(p.id.clone());
            }
            ports.push(p);
        }
        // Ports of this pod nothing asks for any more (a changed request; the pod finished).
        let extra: Vec<&Port> = existing.iter().filter(|e| !ports.iter().any(|p| p.id == e.id)).collect();
        if !extra.is_empty() {
            tracing::info!(pod = %pr, ports = ?extra.iter().map(|p| &p.id).collect::<Vec<_>>(), "deleting Neutron ports the pod no longer asks for");
            self.delete_all(&extra).await?;
        }
        let mut attachments = Vec::with_capacity(want.len());
        for (w, p) in want.iter().zip(&ports) {
            let subnets = self.subnets(&w.network_id, &[p]).await?;
            attachments.push(attachment(w, p, &subnets, &self.settings.handoff_key, &pr.uid));
        }
        let all_active = ports.iter().all(|p| p.status == "ACTIVE");
        let network_status = all_active
            .then(|| attachments.iter().zip(&want).map(|(a, w)| super::status::network_status_asking(a, &w.default_route)).collect());
        if !created.is_empty() {
            tracing::info!(pod = %pr, ports = ?created, "created Neutron ports");
        }
        Ok(Report {
            status: PodStatus { interfaces: Some(Handoff::new(pr.uid.clone(), attachments)), network_status },
            interfaces: want.iter().map(|w| w.interface.clone()).collect::<BTreeSet<_>>(),
            created: (!created.is_empty()).then(|| ("NeutronPortsCreated", format!("created Neutron ports {}", created.join(", ")))),
            claims: Vec::new(),
            pod: pr,
        })
    }

    async fn delete_pod(&self, pod: &PodRef) -> Result<(), PodError> {
        self.leading()?;
        let ports = self.client.ports_of_device(&pod.uid).await?;
        if !ports.is_empty() {
            self.delete_all(&ports.iter().collect::<Vec<_>>()).await?;
            tracing::info!(pod = %pod, ports = ?ports.iter().map(|p| &p.id).collect::<Vec<_>>(), "deleted the Neutron ports of a deleted pod");
        }
        Ok(())
    }

    async fn delete_claim(&self, _: &str, _: &str, _: &str) -> Result<bool, PodError> {
        Ok(false)
    }

    async fn gc(&self, live: &HashSet<String>, _: Option<&HashSet<String>>) -> Result<usize, PodError> {
        self.leading()?;
        let owned = self.client.owned_ports().await?;
        let now = Instant::now();
        let doomed: Vec<&Port> = {
            let mut seen = self.orphans.lock().expect("orphans");
            let orphaned: Vec<&Port> = owned.iter().filter(|p| !live.contains(&p.device_id)).collect();
            seen.retain(|id, _| orphaned.iter().any(|p| &p.id == id));
            orphaned
                .into_iter()
                .filter(|p| {
                    let first = *seen.entry(p.id.clone()).or_insert(now);
                    first != now && now.duration_since(first) >= self.settings.gc_grace
                })
                .collect()
        };
        for p in &doomed {
            tracing::info!(port = %p.id, name = %p.name, pod_uid = %p.device_id, "garbage-collecting a Neutron port whose pod is gone");
        }
        self.delete_all(&doomed).await?;
        let mut seen = self.orphans.lock().expect("orphans");
        for p in &doomed {
            seen.remove(&p.id);
        }
        Ok(doomed.len())
    }

    fn changes(&self) -> BoxStream<'static, ()> {
        let every = self.settings.status_poll;
        futures::stream::unfold((), move |_| async move {
            tokio::time::sleep(every).await;
            Some(((), ()))
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::NadMap;
    use crate::nad::new_nad;

    fn pod(networks: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "team-a", "name": "web", "uid": "u-1",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
            "spec": {"nodeName": "node1", "containers": []}
        }))
        .unwrap()
    }

    fn nads() -> NadMap {
        let mut m = NadMap::default();
        let caps = r#","capabilities":{"ips":true,"mac":true}"#;
        m.insert(new_nad(
            "team-a",
            "red",
            &format!(r#"{{"cniVersion":"1.0.0","type":"kubetron","name":"red","network_id":"n-red"{caps}}}"#),
            &[],
        ));
        m.insert(new_nad("team-a", "plain", r#"{"cniVersion":"1.0.0","type":"kubetron","name":"plain","logical_switch":"ls"}"#, &[]));
        m.insert(new_nad("team-a", "other", r#"{"cniVersion":"1.0.0","type":"bridge","name":"other"}"#, &[]));
        m
    }

    #[test]
    fn a_pod_wants_one_port_per_kubetron_selection_with_its_static_addresses() {
        let p = pod(r#"[{"name":"red","ips":["10.9.0.7/24"],"mac":"02:00:00:00:00:07"},{"name":"other"},{"name":"red","interface":"n2"}]"#);
        let w = wanted(&p, &nads()).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!((w[0].port_name.as_str(), w[0].network_id.as_str()), ("kubetron/team-a/web/net1", "n-red"));
        assert_eq!(w[0].ips, ["10.9.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(w[0].mac.as_deref(), Some("02:00:00:00:00:07"));
        assert_eq!((w[1].interface.as_str(), w[1].mac.as_ref(), w[1].ips.len()), ("n2", None, 0));
        let np = w[0].new_port(&PodRef::of(&p).unwrap(), Some("node1"), Some("proj"));
        assert_eq!((np.device_id.as_str(), np.host_id.as_deref(), np.project_id.as_deref()), ("u-1", Some("node1"), Some("proj")));
        assert_eq!(np.fixed_ips[0].ip_address.as_deref(), Some("10.9.0.7"));
    }

    #[test]
    fn networks_without_network_id_and_claims_are_refused() {
        assert!(matches!(wanted(&pod("plain"), &nads()), Err(PodError::NotNeutronNetwork { .. })));
        let claim = pod(r#"[{"name":"red","ipam-claim-reference":"c1"}]"#);
        assert!(matches!(wanted(&claim, &nads()), Err(PodError::Unsupported { .. })));
        assert!(matches!(wanted(&pod("missing"), &nads()), Err(PodError::NadNotFound { .. })));
        let mut done = pod("red");
        done.status = Some(serde_json::from_value(serde_json::json!({"phase": "Succeeded"})).unwrap());
        assert!(wanted(&done, &nads()).unwrap().is_empty(), "a finished pod wants nothing");
    }

    #[test]
    fn security_groups_must_be_allowed_by_the_namespace() {
        let mut p = pod("red");
        let set = |p: &mut Pod, v: &str| {
            p.metadata.annotations.get_or_insert_with(Default::default).insert(SECURITY_GROUPS_ANNOTATION.into(), v.into());
        };
        assert!(requested_groups(&p, &["net1"], None).unwrap().is_empty(), "no annotation: the project's default");
        set(&mut p, r#"{"net1": ["web", "db"]}"#);
        let ok = requested_groups(&p, &["net1"], Some("web, db,ssh")).unwrap();
        assert_eq!(ok["net1"], ["web", "db"]);
        match requested_groups(&p, &["net1"], Some("web")) {
            Err(PodError::SecurityGroupNotAllowed { namespace, interface, group }) => {
                assert_eq!((namespace.as_str(), interface.as_str(), group.as_str()), ("team-a", "net1", "db"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(requested_groups(&p, &["net1"], None), Err(PodError::SecurityGroupNotAllowed { .. })), "nothing allowed");
        assert!(matches!(requested_groups(&p, &["net2"], Some("web,db")), Err(PodError::BadSecurityGroups(_))), "no such interface");
        set(&mut p, "[web]");
        assert!(matches!(requested_groups(&p, &["net1"], Some("web")), Err(PodError::BadSecurityGroups(_))));
    }

    #[test]
    fn the_attachment_is_the_port_signed_for_the_pod() {
        let p = pod(r#"[{"name":"red","default-route":["10.9.0.1"]}]"#);
        let w = &wanted(&p, &nads()).unwrap()[0];
        let port: Port = serde_json::from_value(serde_json::json!({
            "id": "p-1", "network_id": "n-red", "mac_address": "fa:16:3e:00:00:01", "status": "DOWN",
            "fixed_ips": [{"subnet_id": "s-1", "ip_address": "10.9.0.23"}]
        }))
        .unwrap();
        let subnets: Vec<Subnet> = serde_json::from_value(serde_json::json!([
            {"id": "s-1", "network_id": "n-red", "cidr": "10.9.0.0/24", "gateway_ip": "10.9.0.1", "ip_version": 4, "enable_dhcp": true}
        ]))
        .unwrap();
        let key = [9u8; 32];
        let a = attachment(w, &port, &subnets, &key, "u-1");
        assert_eq!((a.logical_port.as_str(), a.logical_switch.as_str(), a.mac.as_str()), ("p-1", "neutron-n-red", "fa:16:3e:00:00:01"));
        assert_eq!(a.ips, ["10.9.0.23/24".parse::<IpNet>().unwrap()]);
        assert_eq!(a.gateways, ["10.9.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.routes.len(), 1, "the default route the pod asked for");
        assert!(a.signed_by(&key, "u-1"));
        assert!(!a.signed_by(&key, "u-2"), "signed for this pod only");
        assert!(!a.signed_by(&[8u8; 32], "u-1"));
    }
}
