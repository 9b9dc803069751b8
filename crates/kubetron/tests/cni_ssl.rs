//! `ssl:` Northbound remotes from the CNI plugin (issue 8 #6): the real binary plugs a pod
//! through a Northbound ovsdb-server reached only over SSL (`pssl:` on 127.0.0.1, certificates
//! made for the test), with `nb_private_key`, `nb_certificate` and `nb_ca_cert` in the network
//! config; the chassis' ovn-controller uses the Southbound as usual.

mod support;

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daemons::kube::Pki;
use daemons::{Central, CentralOptions, Chassis, ChassisConfig, Ssl};
use serde_json::json;
use support::{result_ip, unique, Pod, World};

/// Forwards TCP connections made inside netns `ns` to `127.0.0.1:<upstream>` of this (root)
/// netns: the plugin runs in the chassis' netns, the NB listens on the root netns' loopback. The
/// bytes are piped untouched (TLS is end to end). Stops accepting when dropped.
struct Forward {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn forward_into_netns(ns: &str, upstream: u16) -> Forward {
    let netns = netdev::Netns::open(netdev::Netns::named_path(ns)).unwrap();
    daemons::netns::exec(ns, &["ip", "link", "set", "lo", "up"]).unwrap();
    let l = netns.run(|| TcpListener::bind("127.0.0.1:0")).unwrap().unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    std::thread::spawn(move || {
        while !st.load(Ordering::SeqCst) {
            match l.accept() {
                Ok((c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    let Ok(u) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                    for (mut from, mut to) in [(c.try_clone().unwrap(), u.try_clone().unwrap()), (u, c)] {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => return,
            }
        }
    });
    Forward { port, stop }
}

/// A world whose NB also listens on `pssl:` with a test PKI's serving certificate.
fn ssl_world() -> (World, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(&dir.path().join("pki")).expect("test PKI (openssl)");
    let ssl = Ssl { private_key: pki.serving.key.clone(), certificate: pki.serving.cert.clone(), ca_cert: pki.ca.cert.clone() };
    let central =
        Central::start_with(&dir.path().join("central"), CentralOptions { nb_ssl: Some(ssl), ..Default::default() }).expect("central");
    let sb = central.sb_remote();
    let cfg = ChassisConfig::new("node1", dir.path().join("node1"), &unique("ktn"), &sb, "198.51.100.1");
    let chassis = Chassis::start(cfg).expect("chassis");
    chassis.wait_registered(&sb, Duration::from_secs(20)).expect("registered");
    (World { chassis: vec![chassis], central, dir }, pki)
}

#[test]
fn add_and_del_over_an_ssl_only_northbound() {
    let (w, pki) = ssl_world();
    w.network("red", Some("10.63.0.0/24"));
    let nb_ssl = w.central.nb_ssl_remote().expect("pssl remote");
    let port: u16 = nb_ssl.rsplit(':').next().unwrap().parse().unwrap();
    let fwd = forward_into_netns(w.chassis[0].netns(), port);
    // What the plugin, in the chassis' netns, dials.
    let nb_ssl = format!("ssl:127.0.0.1:{}", fwd.port);
    let mut conf = w.conf("red", 0);
    // The plugin knows the database only by its ssl: address.
    conf["nb"] = json!(nb_ssl);
    conf["nb_private_key"] = json!(pki.admin.key);
    conf["nb_certificate"] = json!(pki.admin.cert);
    conf["nb_ca_cert"] = json!(pki.ca.cert);
    conf["cniVersion"] = json!("1.1.0");

    let (a, b) = (Pod::new(), Pod::new());
    let ra = a.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=a"));
    assert_eq!(ra.exit_code, 0, "{ra:?}");
    let rb = b.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=b"));
    assert_eq!(rb.exit_code, 0, "{rb:?}");
    assert!(w.lsps().contains(&"ns1_a_net1".to_string()), "{:?}", w.lsps());
    // The ports came up (ovn-controller bound them through the SB) and traffic flows.
    assert!(a.ping_retry(&result_ip(&rb)), "pod a cannot reach pod b");
    let o = w.plugin(0, "STATUS").config(&conf).run().unwrap();
    assert_eq!(o.exit_code, 0, "{o:?}");

    // A client certificate from another CA is refused by the server: "try again later" naming
    // the remote (the server, not the config, refused it).
    let other = Pki::create(&w.dir.path().join("other-pki")).unwrap();
    let mut bad = conf.clone();
    bad["nb_private_key"] = json!(other.admin.key);
    bad["nb_certificate"] = json!(other.admin.cert);
    let c = Pod::new();
    let o = c.cni(&w, 0, "ADD", "net1", &bad, None);
    assert_eq!(o.json["code"], 11, "{o:?}");
    assert!(o.json["msg"].as_str().unwrap().contains(&nb_ssl), "{o:?}");
    // Without the keys: a config error naming them.
    let mut none = conf.clone();
    for k in ["nb_private_key", "nb_certificate", "nb_ca_cert"] {
        none.as_object_mut().unwrap().remove(k);
    }
    let o = c.cni(&w, 0, "ADD", "net1", &none, None);
    assert_eq!(o.json["code"], 7, "{o:?}");
    assert!(o.json["msg"].as_str().unwrap().contains("nb_private_key"), "{o:?}");

    for (p, args) in
        [(&a, "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=a"), (&b, "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=b")]
    {
        let d = p.cni(&w, 0, "DEL", "net1", &conf, Some(args));
        assert_eq!(d.exit_code, 0, "{d:?}");
    }
    assert!(w.lsps().is_empty(), "{:?}", w.lsps());
    assert!(w.bridge_ports(0).is_empty(), "{:?}", w.bridge_ports(0));
    assert!(w.host_veths(0).is_empty(), "{:?}", w.host_veths(0));
}
