//! The hand-off annotation `kubetron.io/interfaces`, version 1: every kubetron attachment of a
//! pod, written by the controller (its only writer) once every logical switch port exists with
//! its MAC and addresses known, read by the node agent (which plugs from it), by the controller
//! (which entries of `network-status` are kubetron's) and by the sandbox.
//!
//! ```json
//! {"version": 1, "pod_uid": "5b0e6f6c-...",
//!  "interfaces": [{"interface": "net1", "network": "team-a/red", "cni_network": "red",
//!                  "logical_switch": "red", "logical_port": "team-a_web-0_net1",
//!                  "mac": "0a:58:0a:01:00:0c", "ips": ["10.1.0.12/24"], "gateways": ["10.1.0.1"],
//!                  "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}], "mtu": 1400, "addressing": "static"}]}
//! ```
//!
//! Compatibility rules ([`parse`]):
//! - `version` must be [`VERSION`]; any other number is refused ([`HandoffError::Unsupported`], a
//!   CNI error 7 for the agent). Adding optional fields keeps version 1; removing a field or
//!   changing its meaning makes version 2.
//! - Unknown fields are ignored, so an older reader accepts a newer writer's optional additions.
//! - A JSON list is what kubetron wrote before version 1 ("v0", [`Parsed::V0`]): a reader that
//!   needs the hand-off treats it as "not handed over yet" (the controller rewrites every pod's
//!   annotation when it starts).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::netconf::DEFAULT_MTU;

/// The annotation's key.
pub const ANNOTATION: &str = "kubetron.io/interfaces";
/// The version this crate writes and reads.
pub const VERSION: u64 = 1;

/// The whole annotation value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// Always [`VERSION`] once parsed.
    pub version: u64,
    /// The UID of the pod the controller computed this for: a reader serving another pod of the
    /// same name (a re-created one) must not use it.
    pub pod_uid: String,
    /// Every kubetron attachment of the pod, in the order of its network request.
    pub interfaces: Vec<Attachment>,
}

impl Handoff {
    /// A version-1 hand-off.
    pub fn new(pod_uid: impl Into<String>, interfaces: Vec<Attachment>) -> Handoff {
        Handoff { version: VERSION, pod_uid: pod_uid.into(), interfaces }
    }

    /// The attachment of pod interface `ifname`, if handed over.
    pub fn interface(&self, ifname: &str) -> Option<&Attachment> {
        self.interfaces.iter().find(|a| a.interface == ifname)
    }
}

/// One pod interface and the logical switch port it is plugged into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The interface name in the pod (requested, else `net1`, `net2`...).
    pub interface: String,
    /// The NetworkAttachmentDefinition, `namespace/name` (the `network-status` entry's `name`).
    pub network: String,
    /// The CNI network name: the `name` of the NAD's network configuration.
    pub cni_network: String,
    /// The OVN logical switch.
    pub logical_switch: String,
    /// The OVN logical switch port: the local OVS Interface's `external_ids:iface-id`.
    /// [`crate::names::pod_port`] of the pod and `interface`, or for a persistent-IP attachment
    /// (the pod's networks element names an `ipam-claim-reference`) [`crate::names::claim_port`]
    /// of that claim.
    pub logical_port: String,
    /// The MAC address (`0a:58:0a:01:00:0c`).
    pub mac: String,
    /// The addresses with their prefix length.
    #[serde(default)]
    pub ips: Vec<IpNet>,
    /// The network's gateways (what OVN's DHCP options name as router).
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
    /// Routes to add in the pod; holds the default route when the pod asked for it through this
    /// interface (`default-route` in its network selection).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The interface MTU (network configuration `mtu`, default [`crate::netconf::DEFAULT_MTU`]).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Who configures the addresses in the pod.
    pub addressing: Addressing,
    /// The value the local OVS Interface's `external_ids:iface-id-ver` must carry (the port's
    /// `options:iface-id-ver`); absent: the pod UID (what writers before this field meant). Set
    /// for ports that outlive one pod (an IPAMClaim's): the VMI UID of a KubeVirt launcher pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface_id_ver: Option<String>,
    /// Informational: the KubeVirt VM (`namespace/VMI name`) this attachment serves, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// The controller's signature ([`Attachment::sign`]) of a `logical_port` that does not derive
    /// from the pod (a backend's own port ID): the node agent plugs such a port only when the
    /// signature checks under the cluster's hand-off key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl Attachment {
    /// What is signed: the pod UID, the interface, the logical port and the MAC, NUL-separated.
    fn signed_text(&self, pod_uid: &str) -> Vec<u8> {
        [pod_uid, &self.interface, &self.logical_port, &self.mac].join("\0").into_bytes()
    }

    /// This attachment's signature for pod `pod_uid` under `key`: hex HMAC-SHA256 of
    /// [`Attachment::signed_text`].
    fn signature(&self, key: &[u8], pod_uid: &str) -> String {
        crate::hmac::hex(&crate::hmac::hmac_sha256(key, &self.signed_text(pod_uid)))
    }

    /// Signs this attachment of pod `pod_uid` with `key` ([`Attachment::sig`]).
    pub fn sign(&mut self, key: &[u8], pod_uid: &str) {
        self.sig = Some(self.signature(key, pod_uid));
    }

    /// Whether [`Attachment::sig`] is this attachment's signature for pod `pod_uid` under `key`.
    pub fn signed_by(&self, key: &[u8], pod_uid: &str) -> bool {
        let want = self.signature(key, pod_uid);
        self.sig.as_deref().is_some_and(|s| crate::hmac::constant_time_eq(s.as_bytes(), want.as_bytes()))
    }
}

fn default_mtu() -> u32 {
    DEFAULT_MTU
}

/// A route in the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination (`0.0.0.0/0` for the default route).
    pub dst: IpNet,
    /// Next hop.
    pub gw: IpAddr,
}

/// Who configures an attachment's addresses in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// The node sets `ips` and `routes` on the interface.
    Static,
    /// The network configuration says `"dhcp": true`: the pod's own DHCP client asks OVN's DHCP
    /// server (which hands out `ips`); the node sets no addresses.
    Dhcp,
    /// A switch without subnet: the interface gets its MAC only.
    None,
}

/// An entry of a pre-version-1 annotation (a JSON list); only what the controller still needs
/// to read from it (which interfaces were kubetron's) is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V0Interface {
    /// The interface name in the pod.
    pub interface: String,
}

/// A parsed annotation value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Version 1.
    V1(Handoff),
    /// A JSON list (written before version 1): not handed over yet.
    V0(Vec<V0Interface>),
}

impl Parsed {
    /// The version-1 hand-off; `None` for a v0 list (not handed over yet).
    pub fn handoff(&self) -> Option<&Handoff> {
        match self {
            Parsed::V1(h) => Some(h),
            Parsed::V0(_) => None,
        }
    }

    /// The pod interface names the value lists, whatever its version.
    pub fn interface_names(&self) -> Vec<&str> {
        match self {
            Parsed::V1(h) => h.interfaces.iter().map(|a| a.interface.as_str()).collect(),
            Parsed::V0(l) => l.iter().map(|i| i.interface.as_str()).collect(),
        }
    }
}

/// An annotation value that cannot be used.
#[derive(Debug, Error)]
pub enum HandoffError {
    /// Another version than [`VERSION`] (a newer controller): the reader must be upgraded.
    #[error("unsupported {ANNOTATION} version {version} (this agent reads {VERSION}); upgrade the node agent")]
    Unsupported {
        /// The version found, as written.
        version: String,
    },
    /// Neither a JSON object with a numeric `version` nor a JSON list.
    #[error("{ANNOTATION} is {0}")]
    Malformed(&'static str),
    /// Not JSON, or a field of the wrong type.
    #[error("{ANNOTATION} is not valid: {0}")]
    Json(#[from] serde_json::Error),
}

/// Parses an annotation value: a version-1 object, or a v0 list. The version is checked before
/// any other field, so a newer writer's value is refused as [`HandoffError::Unsupported`]
/// whatever else changed.
pub fn parse(value: &str) -> Result<Parsed, HandoffError> {
    let v: Value = serde_json::from_str(value)?;
    match v {
        Value::Array(_) => Ok(Parsed::V0(serde_json::from_value(v)?)),
        Value::Object(ref m) => match m.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => Ok(Parsed::V1(serde_json::from_value(v)?)),
            Some(Value::Number(n)) => Err(HandoffError::Unsupported { version: n.to_string() }),
            Some(_) => Err(HandoffError::Malformed("an object whose \"version\" is not a number")),
            None => Err(HandoffError::Malformed("an object without \"version\"")),
        },
        _ => Err(HandoffError::Malformed("neither a JSON object nor a JSON list")),
    }
}

/// The annotation value of `h` (compact JSON).
pub fn render(h: &Handoff) -> String {
    // Plain strings, numbers and lists: serialization cannot fail.
    serde_json::to_string(h).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PLAN_EXAMPLE: &str = r#"{"version": 1,
 "pod_uid": "5b0e6f6c-3c51-4f0e-9d1c-2a7e6c1b9a10",
 "interfaces": [
  {"interface": "net1", "network": "team-a/red", "cni_network": "red",
   "logical_switch": "red", "logical_port": "team-a_web-0_net1",
   "mac": "0a:58:0a:01:00:0c", "ips": ["10.1.0.12/24"], "gateways": ["10.1.0.1"],
   "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}], "mtu": 1400, "addressing": "static"},
  {"interface": "net2", "network": "team-a/blue", "cni_network": "blue",
   "logical_switch": "blue", "logical_port": "team-a_web-0_net2",
   "mac": "0a:58:0a:02:00:0c", "ips": [], "gateways": [], "routes": [], "mtu": 1400, "addressing": "dhcp"}]}"#;

    fn example() -> Handoff {
        Handoff::new(
            "5b0e6f6c-3c51-4f0e-9d1c-2a7e6c1b9a10",
            vec![
                Attachment {
                    interface: "net1".into(),
                    network: "team-a/red".into(),
                    cni_network: "red".into(),
                    logical_switch: "red".into(),
                    logical_port: "team-a_web-0_net1".into(),
                    mac: "0a:58:0a:01:00:0c".into(),
                    ips: vec!["10.1.0.12/24".parse().unwrap()],
                    gateways: vec!["10.1.0.1".parse().unwrap()],
                    routes: vec![Route { dst: "0.0.0.0/0".parse().unwrap(), gw: "10.1.0.1".parse().unwrap() }],
                    mtu: 1400,
                    addressing: Addressing::Static,
                    iface_id_ver: None,
                    vm: None,
                    sig: None,
                },
                Attachment {
                    interface: "net2".into(),
                    network: "team-a/blue".into(),
                    cni_network: "blue".into(),
                    logical_switch: "blue".into(),
                    logical_port: "team-a_web-0_net2".into(),
                    mac: "0a:58:0a:02:00:0c".into(),
                    ips: vec![],
                    gateways: vec![],
                    routes: vec![],
                    mtu: 1400,
                    addressing: Addressing::Dhcp,
                    iface_id_ver: None,
                    vm: None,
                    sig: None,
                },
            ],
        )
    }

    #[test]
    fn the_plans_example_parses_to_the_typed_value() {
        let p = parse(PLAN_EXAMPLE).unwrap();
        assert_eq!(p, Parsed::V1(example()));
        assert_eq!(p.interface_names(), vec!["net1", "net2"]);
        assert_eq!(p.handoff().unwrap().interface("net2").unwrap().addressing, Addressing::Dhcp);
        assert!(p.handoff().unwrap().interface("net3").is_none());
    }

    #[test]
    fn render_writes_every_field_and_parses_back() {
        let s = render(&example());
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["interfaces"][0]["ips"][0], "10.1.0.12/24");
        assert_eq!(v["interfaces"][0]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["interfaces"][0]["addressing"], "static");
        assert_eq!(v["interfaces"][1]["addressing"], "dhcp");
        assert_eq!(v["interfaces"][1]["ips"], serde_json::json!([]));
        assert_eq!(parse(&s).unwrap(), Parsed::V1(example()));
        // The same value as the plan's example, field for field.
        assert_eq!(v, serde_json::from_str::<Value>(PLAN_EXAMPLE).unwrap());
    }

    #[test]
    fn a_v0_list_is_not_handed_over_but_names_its_interfaces() {
        let v0 = r#"[{"interface":"net1","network":"ns/a","logical_switch":"a","logical_port":"ns_p_net1","mac":"0a:58:0a:00:00:05","ips":["10.0.0.5/24"],"gateway":"10.0.0.1"}]"#;
        let p = parse(v0).unwrap();
        assert!(p.handoff().is_none());
        assert_eq!(p.interface_names(), vec!["net1"]);
        assert_eq!(parse("[]").unwrap(), Parsed::V0(vec![]));
    }

    #[test]
    fn other_versions_are_refused_with_the_upgrade_message() {
        for (value, version) in
            [(r#"{"version":2,"pod_uid":"u","interfaces":[]}"#, "2"), (r#"{"version":0}"#, "0"), (r#"{"version":-1}"#, "-1")]
        {
            let e = parse(value).unwrap_err();
            assert!(matches!(&e, HandoffError::Unsupported { version: v } if v == version), "{value}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!("unsupported kubetron.io/interfaces version {version} (this agent reads 1); upgrade the node agent")
            );
        }
        // A v2 value whose other fields changed shape is still refused for its version.
        let e = parse(r#"{"version":2,"interfaces":{"net1":{}}}"#).unwrap_err();
        assert!(matches!(e, HandoffError::Unsupported { .. }), "{e:?}");
    }

    #[test]
    fn malformed_values_are_errors() {
        for value in
            ["", "not json", "7", "\"x\"", r#"{"pod_uid":"u","interfaces":[]}"#, r#"{"version":"1","pod_uid":"u","interfaces":[]}"#]
        {
            let e = parse(value).unwrap_err();
            assert!(matches!(e, HandoffError::Json(_) | HandoffError::Malformed(_)), "{value}: {e:?}");
            assert!(e.to_string().contains(ANNOTATION), "{e}");
        }
        // Version 1 with a field of the wrong type, or a required field missing.
        assert!(matches!(parse(r#"{"version":1,"pod_uid":"u","interfaces":[{"interface":"net1"}]}"#), Err(HandoffError::Json(_))));
        assert!(matches!(parse(r#"{"version":1,"pod_uid":"u","interfaces":[{"ips":"x"}]}"#), Err(HandoffError::Json(_))));
        assert!(matches!(parse(r#"{"version":1,"interfaces":[]}"#), Err(HandoffError::Json(_))));
        assert!(matches!(parse(r#"[{"network":"a/b"}]"#), Err(HandoffError::Json(_))));
    }

    #[test]
    fn unknown_fields_are_ignored_and_optional_ones_default() {
        let v = r#"{"version":1,"pod_uid":"u","future":{"x":1},"interfaces":[{"interface":"net1","network":"a/b","cni_network":"b",
            "logical_switch":"b","logical_port":"a_p_net1","mac":"0a:58:0a:00:00:01","addressing":"none","new_field":true}]}"#;
        let h = parse(v).unwrap().handoff().cloned().unwrap();
        let a = &h.interfaces[0];
        assert_eq!(a.mtu, DEFAULT_MTU);
        assert!(a.ips.is_empty() && a.gateways.is_empty() && a.routes.is_empty());
        assert_eq!(a.addressing, Addressing::None);
    }

    #[test]
    fn handoff_optional_fields_roundtrip() {
        // Old JSON (before the fields existed): None.
        let h = parse(PLAN_EXAMPLE).unwrap().handoff().cloned().unwrap();
        assert!(h.interfaces.iter().all(|a| a.iface_id_ver.is_none() && a.vm.is_none()));
        // Absent fields are not written, so an old writer's value and ours are the same JSON.
        let v: Value = serde_json::from_str(&render(&h)).unwrap();
        assert!(v["interfaces"][0].get("iface_id_ver").is_none() && v["interfaces"][0].get("vm").is_none());
        // New fields round-trip...
        let mut h2 = h.clone();
        h2.interfaces[0].logical_port = "claim:team-a/vm1.red".into();
        h2.interfaces[0].iface_id_ver = Some("6a1c-vmi-uid".into());
        h2.interfaces[0].vm = Some("team-a/vm1".into());
        let s = render(&h2);
        assert_eq!(parse(&s).unwrap(), Parsed::V1(h2.clone()));
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["interfaces"][0]["iface_id_ver"], "6a1c-vmi-uid");
        assert_eq!(v["version"], 1, "optional additions keep version 1");
        // ...and a reader of the old shape (no such fields) ignores them.
        #[derive(Deserialize)]
        struct OldAttachment {
            interface: String,
            logical_port: String,
        }
        #[derive(Deserialize)]
        struct OldHandoff {
            version: u64,
            interfaces: Vec<OldAttachment>,
        }
        let old: OldHandoff = serde_json::from_str(&s).unwrap();
        assert_eq!((old.version, old.interfaces[0].interface.as_str()), (1, "net1"));
        assert_eq!(old.interfaces[0].logical_port, "claim:team-a/vm1.red");
    }

    fn attachment() -> impl Strategy<Value = Attachment> {
        let v4 = (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| IpNet::V4(ipnet::Ipv4Net::new(a.into(), p).unwrap()));
        let v6 = (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, p)| IpNet::V6(ipnet::Ipv6Net::new(a.into(), p).unwrap()));
        let net = prop_oneof![v4, v6];
        let addr = prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u8; 16]>().prop_map(IpAddr::from)];
        let route = (net.clone(), addr.clone()).prop_map(|(dst, gw)| Route { dst, gw });
        let addressing = prop_oneof![Just(Addressing::Static), Just(Addressing::Dhcp), Just(Addressing::None)];
        (
            ("[a-z0-9]{1,15}", "[a-z0-9-]{1,20}/[a-z0-9-]{1,20}", "\\PC{0,20}", "\\PC{0,20}", "\\PC{0,30}", "[0-9a-f:]{0,17}"),
            (proptest::collection::vec(net, 0..3), proptest::collection::vec(addr, 0..3), proptest::collection::vec(route, 0..3)),
            (
                any::<u32>(),
                addressing,
                proptest::option::of("[a-z0-9-]{1,36}"),
                proptest::option::of("[a-z0-9-]{1,20}/[a-z0-9.-]{1,20}"),
                proptest::option::of("[0-9a-f]{64}"),
            ),
        )
            .prop_map(
                |(
                    (interface, network, cni_network, logical_switch, logical_port, mac),
                    (ips, gateways, routes),
                    (mtu, addressing, iface_id_ver, vm, sig),
                )| {
                    Attachment {
                        interface,
                        network,
                        cni_network,
                        logical_switch,
                        logical_port,
                        mac,
                        ips,
                        gateways,
                        routes,
                        mtu,
                        addressing,
                        iface_id_ver,
                        vm,
                        sig,
                    }
                },
            )
    }

    /// A signature checks for its own pod, interface, port and MAC under its key, and for nothing
    /// else; it survives the annotation's round trip.
    #[test]
    fn signed_attachments() {
        let key = b"0123456789abcdef0123456789abcdef";
        let uid = "5b0e6f6c-3c51-4f0e-9d1c-2a7e6c1b9a10";
        let mut h = example();
        let a = &mut h.interfaces[0];
        assert!(!a.signed_by(key, uid), "unsigned");
        a.logical_port = "0d8b0c4e-6a53-4d2b-9b8c-3f1a2e7d5c10".into();
        a.sign(key, uid);
        assert_eq!(a.sig.as_ref().map(String::len), Some(64));
        assert!(a.signed_by(key, uid));
        let back = parse(&render(&h)).unwrap();
        let b = &back.handoff().unwrap().interfaces[0];
        assert!(b.signed_by(key, uid), "after the round trip");
        assert!(!b.signed_by(b"another key of thirty-two bytes!", uid));
        assert!(!b.signed_by(key, "another-pod-uid"));
        for change in [
            |a: &mut Attachment| a.logical_port.push('x'),
            |a: &mut Attachment| a.mac = "0a:58:0a:01:00:0d".into(),
            |a: &mut Attachment| a.interface = "net9".into(),
        ] {
            let mut c = b.clone();
            change(&mut c);
            assert!(!c.signed_by(key, uid), "{c:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_of_render_is_identity(uid in "\\PC{0,40}", interfaces in proptest::collection::vec(attachment(), 0..4)) {
            let h = Handoff::new(uid, interfaces);
            prop_assert_eq!(parse(&render(&h)).unwrap(), Parsed::V1(h));
        }
    }
}
