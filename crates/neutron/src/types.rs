//! The Networking API v2.0 objects kubetron reads and writes (field names as the API has them).

use serde::{Deserialize, Serialize};

/// `device_owner` of every port kubetron makes (its garbage collection only ever looks at these).
pub const DEVICE_OWNER: &str = "compute:kubetron";

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(rename = "provider:network_type", default)]
    pub network_type: Option<String>,
    #[serde(rename = "provider:physical_network", default)]
    pub physical_network: Option<String>,
    #[serde(rename = "provider:segmentation_id", default)]
    pub segmentation_id: Option<u32>,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub network_id: String,
    pub cidr: String,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default)]
    pub ip_version: u8,
    #[serde(default)]
    pub enable_dhcp: bool,
}

/// An address of a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subnet_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ip_address: Option<String>,
}

/// A security group (the fields kubetron reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub project_id: Option<String>,
}

/// A port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    pub mac_address: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// `ACTIVE`, `DOWN`, `BUILD` or `ERROR`.
    #[serde(default)]
    pub status: String,
    #[serde(rename = "binding:host_id", default)]
    pub host_id: Option<String>,
    /// `ovs` once bound; `binding_failed` when the host has no (live) chassis.
    #[serde(rename = "binding:vif_type", default)]
    pub vif_type: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// What a pod attachment's port is made with. `device_id` (the pod UID) and `name` identify it:
/// [`crate::Client::ensure_port`] finds an existing port by them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPort {
    pub network_id: String,
    pub name: String,
    pub device_id: String,
    pub device_owner: String,
    #[serde(rename = "binding:host_id", skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    /// Under `noauth` the project goes in the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub admin_state_up: bool,
}

impl NewPort {
    /// A port of `network_id` for a pod's attachment: `device_id` the pod UID, `name` readable and
    /// unique per pod (e.g. `<namespace>/<pod>/<interface>`), [`DEVICE_OWNER`], bound to `host`.
    pub fn for_pod(network_id: &str, device_id: &str, name: &str, host: Option<&str>) -> NewPort {
        NewPort {
            network_id: network_id.to_string(),
            name: name.to_string(),
            device_id: device_id.to_string(),
            device_owner: DEVICE_OWNER.to_string(),
            host_id: host.map(str::to_string),
            mac_address: None,
            fixed_ips: Vec::new(),
            security_groups: None,
            project_id: None,
            admin_state_up: true,
        }
    }
}

/// Neutron's error body: `{"NeutronError": {"type": ..., "message": ..., "detail": ...}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "NeutronError")]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_port_body_has_only_what_was_asked() {
        let p = NewPort::for_pod("net-1", "uid-1", "ns/pod/net1", Some("node1"));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"network_id": "net-1", "name": "ns/pod/net1", "device_id": "uid-1", "device_owner": "compute:kubetron",
                   "binding:host_id": "node1", "admin_state_up": true})
        );
        let p = NewPort {
            mac_address: Some("0a:58:00:00:00:01".into()),
            fixed_ips: vec![FixedIp { subnet_id: None, ip_address: Some("10.1.0.7".into()) }],
            project_id: Some("team-a".into()),
            ..NewPort::for_pod("net-1", "uid-1", "ns/pod/net1", None)
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["fixed_ips"], json!([{"ip_address": "10.1.0.7"}]));
        assert_eq!((v["mac_address"].as_str(), v["project_id"].as_str()), (Some("0a:58:00:00:00:01"), Some("team-a")));
        assert!(v.get("binding:host_id").is_none() && v.get("security_groups").is_none());
    }

    #[test]
    fn port_reads_binding_fields() {
        let p: Port = serde_json::from_value(json!({"id": "p1", "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.1.0.5"}], "status": "DOWN",
            "binding:host_id": "node1", "binding:vif_type": "ovs", "extra": 1}))
        .unwrap();
        assert_eq!((p.host_id.as_deref(), p.vif_type.as_deref()), (Some("node1"), Some("ovs")));
        assert_eq!(p.fixed_ips[0].ip_address.as_deref(), Some("10.1.0.5"));
    }
}
