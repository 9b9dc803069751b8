//! Why a pod's networks could not be set up. Each error has a Kubernetes Event reason and a
//! message meant for the pod's owner.

use std::net::IpAddr;

use ipnet::Ipv4Net;
use thiserror::Error;

use crate::nad::Refusal;
use model::netconf::NadConfigError;
use model::request::{AnnotationError, NetworkRef};

/// A pod-level failure.
#[derive(Debug, Error)]
pub enum PodError {
    #[error("pod has no name or UID")]
    NoIdentity,
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    #[error("NetworkAttachmentDefinition {network} does not exist")]
    NadNotFound { network: NetworkRef },
    #[error("NetworkAttachmentDefinition {network} has an unusable config: {source}")]
    NadConfig { network: NetworkRef, source: NadConfigError },
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("network {network} uses OVN logical switch {switch:?}, which does not exist in the Northbound database")]
    SwitchMissing { network: NetworkRef, switch: String },
    #[error("network {network} uses OVN logical switch {switch:?}, but {count} logical switches have that name")]
    SwitchAmbiguous { network: NetworkRef, switch: String, count: usize },
    #[error("interface {interface} asks for IP {ip}, which is not a usable address of network {network}'s subnet {subnet}")]
    IpOutsideSubnet { network: NetworkRef, interface: String, ip: IpAddr, subnet: Ipv4Net },
    #[error("interface {interface} on network {network} asks only for IPv6 addresses; give it a \"mac\" too")]
    Ipv6NeedsMac { network: NetworkRef, interface: String },
    #[error(
        "interface {interface} asks for IP {ip} on network {network}, but logical switch port {holder:?}{} already has it",
        of_pod(holder_pod)
    )]
    IpConflict { network: Box<NetworkRef>, interface: String, ip: IpAddr, holder: String, holder_pod: Option<String> },
    #[error(
        "interface {interface} asks for MAC {mac} on network {network}, but logical switch port {holder:?}{} already has it",
        of_pod(holder_pod)
    )]
    MacConflict { network: Box<NetworkRef>, interface: String, mac: String, holder: String, holder_pod: Option<String> },
    #[error(
        "interface {interface} asks for IP {ip}, which network {network} excludes (logical switch other_config:exclude_ips has {entry:?})"
    )]
    IpExcluded { network: NetworkRef, interface: String, ip: IpAddr, entry: String },
    #[error("logical switch port {port:?} already exists and was not made by kubetron for this pod (owner: {owner}); remove or rename it")]
    PortNameTaken { port: String, owner: String },
    #[error("IPAMClaim {namespace}/{claim} named by interface {interface} (\"ipam-claim-reference\") does not exist yet; waiting for it")]
    ClaimNotFound { namespace: String, claim: String, interface: String },
    #[error("IPAMClaim {namespace}/{claim} cannot be used by interface {interface}: {problem}")]
    ClaimRefused { namespace: String, claim: String, interface: String, problem: String },
    #[error(
        "IPAMClaim {namespace}/{claim} is in use by VM {holder}, which is still running; interface {interface} of VM {vm} cannot take it"
    )]
    ClaimInUse { namespace: String, claim: String, interface: String, holder: String, vm: String },
    #[error("IPAMClaim {namespace}/{claim} changed its spec to {now} after its port was made for {was}; the spec of an IPAMClaim is immutable: delete and re-create the claim (its addresses are then given anew)")]
    ClaimChanged { namespace: String, claim: String, was: String, now: String },
    #[error("network {network} has no free address left for IPAMClaim {claim}")]
    ClaimNoAddress { network: NetworkRef, claim: String },
    #[error("OVN Northbound transaction failed: {0}")]
    Ovsdb(#[from] ovsdb::Error),
    #[error("Neutron: {0}")]
    Neutron(#[from] neutron::Error),
    #[error("network {network} has no network_id: under the neutron backend a kubetron network names its Neutron network (\"network_id\" in the NAD config)")]
    NotNeutronNetwork { network: NetworkRef },
    #[error("interface {interface}: {what} is not supported by the neutron backend")]
    Unsupported { interface: String, what: &'static str },
    #[error("interface {interface} asks for security group {group:?}, which namespace {namespace} does not allow (its annotation kubetron.io/allowed-security-groups)")]
    SecurityGroupNotAllowed { namespace: String, interface: String, group: String },
    #[error("interface {interface} asks for security group {group:?}, which does not exist in OpenStack project {project}")]
    SecurityGroupNotFound { interface: String, group: String, project: String },
    #[error("interface {interface} asks for security profile {profile:?}, which no OVN Port_Group offered to namespaces (external_ids:kubetron.io/namespaces) is named")]
    SecurityProfileNotFound { interface: String, profile: String },
    #[error("interface {interface} asks for security profile {profile:?}, which is not offered to namespace {namespace} (its external_ids:kubetron.io/namespaces)")]
    SecurityProfileNotOffered { interface: String, profile: String, namespace: String },
    #[error("annotation kubetron.io/security-groups: {0}")]
    BadSecurityGroups(String),
    #[error("not the leader: writes are stopped")]
    NotLeader,
    #[error("the controller is stopping")]
    Stopped,
}

impl PodError {
    /// The Kubernetes Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PodError::NoIdentity => "InvalidPod",
            PodError::Annotation(_) => "InvalidNetworkAnnotation",
            PodError::NadNotFound { .. } => "NetworkNotFound",
            PodError::NadConfig { .. } => "InvalidNetworkConfig",
            PodError::Refused(_) => "NetworkNotAllowed",
            PodError::SwitchMissing { .. } | PodError::SwitchAmbiguous { .. } => "LogicalSwitchNotFound",
            PodError::IpOutsideSubnet { .. } | PodError::Ipv6NeedsMac { .. } => "InvalidStaticAddress",
            PodError::IpExcluded { .. } => "InvalidStaticAddress",
            PodError::IpConflict { .. } => "StaticIPConflict",
            PodError::MacConflict { .. } => "StaticMACConflict",
            PodError::PortNameTaken { .. } => "PortNameConflict",
            PodError::ClaimNotFound { .. } => "IPAMClaimNotFound",
            PodError::ClaimRefused { .. } => "IPAMClaimRefused",
            PodError::ClaimInUse { .. } => "IPAMClaimInUse",
            PodError::ClaimChanged { .. } => "IPAMClaimChanged",
            PodError::ClaimNoAddress { .. } => "IPAMClaimNoAddress",
            PodError::Ovsdb(_) => "OVNTransactionFailed",
            PodError::Neutron(_) => "NeutronRequestFailed",
            PodError::NotNeutronNetwork { .. } => "NotANeutronNetwork",
            PodError::Unsupported { .. } => "NotSupported",
            PodError::SecurityGroupNotAllowed { .. } => "SecurityGroupNotAllowed",
            PodError::SecurityGroupNotFound { .. } => "SecurityGroupNotFound",
            PodError::SecurityProfileNotFound { .. } => "SecurityProfileNotFound",
            PodError::SecurityProfileNotOffered { .. } => "SecurityProfileNotOffered",
            PodError::BadSecurityGroups(_) => "InvalidSecurityGroupsAnnotation",
            PodError::NotLeader => "NotLeader",
            PodError::Stopped => "Stopped",
        }
    }

    /// Whether retrying without any change elsewhere may succeed (connection trouble, a race).
    /// Other errors wait for the pod, a NAD or the Northbound contents to change.
    pub fn is_transient(&self) -> bool {
        // A missing IPAMClaim is usually being created (KubeVirt makes it with the VM): retried
        // with backoff, and at once when it appears.
        match self {
            // Retries inside the client ran out (a restarting server): the pod backs off and tries again.
            PodError::Neutron(e) => e.is_transient() || matches!(e, neutron::Error::Exhausted { .. }),
            e => matches!(e, PodError::Ovsdb(_) | PodError::NotLeader | PodError::Stopped | PodError::ClaimNotFound { .. }),
        }
    }
}

/// `" (pod ns/name)"` when the holder's pod is known.
fn of_pod(pod: &Option<String>) -> String {
    pod.as_ref().map(|p| format!(" (pod {p})")).unwrap_or_default()
}
