//! Capability arguments the kubetron CNI plugin cannot honour (issue 8, defect 4): a runtime (or Multus) passing
//! `runtimeConfig.portMappings` or `runtimeConfig.bandwidth` gets a CNI error (code 7) from ADD instead of an
//! attachment silently without them (the NPWG spec: the attachment must fail). Nothing is left behind, DEL of
//! such a config still works, and empty requests ask for nothing. Real binary, real OVN.

mod support;

use serde_json::json;
use support::{Pod, World};

#[test]
fn unhonoured_capabilities_fail_add_with_code_7() {
    let w = World::new(1);
    w.network("red", Some("10.56.0.0/24"));
    let a = Pod::new();
    let cases = [
        ("portMappings", json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})),
        ("bandwidth", json!({"bandwidth": {"ingressRate": 1000000, "ingressBurst": 1000, "egressRate": 1000000, "egressBurst": 1000}})),
    ];
    for (what, rc) in cases {
        let mut conf = w.conf("red", 0);
        conf["capabilities"] = json!({what: true});
        conf["runtimeConfig"] = rc;
        let o = a.cni(&w, 0, "ADD", "net1", &conf, None);
        assert_eq!(o.json["code"], 7, "{what}: {o:?}");
        let msg = o.json["msg"].as_str().unwrap();
        assert!(msg.contains(&format!("runtimeConfig.{what}")) && msg.contains("cannot honour"), "{msg}");
        w.assert_clean(&[&a]);
        // DEL of the same config (what the runtime sends after a failed ADD) succeeds.
        let d = a.cni(&w, 0, "DEL", "net1", &conf, None);
        assert_eq!(d.exit_code, 0, "{what}: DEL {d:?}");
    }
    // Empty requests ask for nothing: ADD works.
    let mut conf = w.conf("red", 0);
    conf["runtimeConfig"] = json!({"portMappings": [], "bandwidth": {}});
    let o = a.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(w.lsps().len(), 1);
    let d = a.cni(&w, 0, "DEL", "net1", &conf, None);
    assert_eq!(d.exit_code, 0, "{d:?}");
    w.assert_clean(&[&a]);
}
