//! The client against a real neutron-server (daemons::neutron: Debian's, ML2/OVN, on a private
//! PostgreSQL, against a test OVN with one chassis).
//!
//! Checks: networks and subnets listed by tag; `ensure_port` makes a pod's port once (a second call
//! finds it), makes 12 pods' ports concurrently under a write bound of 3, finds the port a create
//! left behind when its answer was lost (the client gave up after 50 ms) instead of making a
//! second one, and fails at once, without retrying, on a permanent conflict (an IP in use);
//! `delete_port` twice is fine.
//!
//! Ignored without `KUBETRON_NEUTRON_TESTS=1` (scripts/test.sh sets it).

use std::time::{Duration, Instant};

use daemons::neutron::Deployment;
use neutron::{Client, ClientConfig, FixedIp, NewPort};
use serde_json::json;

#[cfg_attr(not(neutron_tests), ignore = "needs KUBETRON_NEUTRON_TESTS=1 (scripts/test.sh sets it)")]
#[test]
fn client_against_a_real_neutron() {
    daemons::neutron::require("client_against_a_real_neutron");
    let tmp = tempfile::tempdir().unwrap();
    let ns = format!("ktnc{}", std::process::id() % 100000);
    let mut world = Deployment::start(tmp.path(), "nc-node1", &ns, None).expect("OVN, PostgreSQL and neutron-server");
    let url = world.stack.server.url();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    rt.block_on(async {
        let client = Client::new(ClientConfig { write_concurrency: 3, ..ClientConfig::new(&url) }).unwrap();

        // Networks: made, tagged, listed by tag; their subnets.
        let red = client.create_network("red", json!({})).await.expect("network red");
        let blue = client.create_network("blue", json!({})).await.expect("network blue");
        let sub = client.create_subnet(&red.id, "10.1.0.0/24", json!({"dns_nameservers": ["10.1.0.53"]})).await.expect("subnet");
        client.set_network_tags(&red.id, &["kubetron:expose", "kubetron:ns=team-a"]).await.expect("tags");
        // The query the NAD sync lists with (k8s::nadsync::neutron::EXPOSED_QUERY).
        let tagged = client.networks("tags=kubetron:expose").await.unwrap();
        assert_eq!(tagged.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), [red.id.as_str()], "{tagged:?}");
        assert!(tagged[0].tags.contains(&"kubetron:ns=team-a".to_string()), "{tagged:?}");
        assert_eq!(tagged[0].mtu, Some(1442), "geneve network MTU: {tagged:?}");
        let subs = client.subnets_of(&[red.id.clone(), blue.id.clone()]).await.unwrap();
        assert_eq!((subs.len(), subs[0].id.as_str(), subs[0].cidr.as_str()), (1, sub.id.as_str(), "10.1.0.0/24"));

        // One pod's port: made once.
        let want = NewPort::for_pod(&red.id, "uid-a", "team-a/pod-a/net1", Some("nc-node1"));
        let (a, made) = client.ensure_port(&want).await.expect("ensure pod-a");
        assert!(made);
        assert_eq!(
            (a.device_owner.as_str(), a.host_id.as_deref(), a.vif_type.as_deref()),
            ("compute:kubetron", Some("nc-node1"), Some("ovs"))
        );
        let (again, made) = client.ensure_port(&want).await.expect("ensure pod-a again");
        assert_eq!((again.id.as_str(), made), (a.id.as_str(), false), "found, not made again");

        // Twelve pods at once, three writes in flight at most: twelve ports.
        let wants: Vec<NewPort> =
            (0..12).map(|i| NewPort::for_pod(&red.id, &format!("uid-b{i}"), &format!("team-a/pod-b{i}/net1"), Some("nc-node1"))).collect();
        let made: Vec<_> = futures::future::join_all(wants.iter().map(|w| client.ensure_port(w))).await;
        let mut ids: Vec<String> = made.into_iter().map(|r| r.expect("ensure in a burst").0.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 12);
        for w in &wants {
            assert_eq!(client.ports_of_device(&w.device_id).await.unwrap().len(), 1, "{}", w.device_id);
        }

        // A create whose answer is lost: the client gives up after 50 ms while Neutron goes on;
        // ensuring again finds that port instead of making a second one.
        let impatient = Client::new(ClientConfig { timeout: Duration::from_millis(50), tries: 1, ..ClientConfig::new(&url) }).unwrap();
        let lost = NewPort::for_pod(&red.id, "uid-c", "team-a/pod-c/net1", Some("nc-node1"));
        let e = impatient.create_port(&lost).await.expect_err("no answer within 50 ms");
        assert!(e.outcome_unknown(), "{e}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.ports_of_device("uid-c").await.unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the lost create never landed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (c, made) = client.ensure_port(&lost).await.expect("ensure pod-c");
        assert!(!made, "the port the lost create made was found: {c:?}");
        assert_eq!(client.ports_of_device("uid-c").await.unwrap().len(), 1);

        // A permanent conflict: pod-a's IP asked for again fails at once, nothing made.
        let a_ip = a.fixed_ips[0].ip_address.clone().unwrap();
        let taken = NewPort {
            fixed_ips: vec![FixedIp { subnet_id: None, ip_address: Some(a_ip) }],
            ..NewPort::for_pod(&red.id, "uid-d", "team-a/pod-d/net1", Some("nc-node1"))
        };
        let t = Instant::now();
        let e = client.ensure_port(&taken).await.expect_err("an IP in use");
        assert_eq!((e.status(), e.kind(), e.is_transient()), (Some(409), Some("IpAddressAlreadyAllocated"), false), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20), "no retries of a permanent conflict");
        assert!(client.ports_of_device("uid-d").await.unwrap().is_empty());

        // Deleted twice: fine; gone.
        client.delete_port(&a.id).await.expect("delete");
        client.delete_port(&a.id).await.expect("delete again (absent)");
        assert!(client.port(&a.id).await.unwrap().is_none());

        // TLS: neutron-server behind a TLS terminator (as deployments put haproxy in front of it).
        let tmp = tempfile::tempdir().unwrap();
        let (https, ca) = tls_terminator(world.stack.server.port(), tmp.path()).await;
        let secure = Client::new(ClientConfig { ca_file: Some(ca.clone()), ..ClientConfig::new(&https) }).unwrap();
        let over_tls = secure.networks("tags=kubetron:expose").await.expect("listing over https with the CA file");
        assert_eq!(over_tls.len(), 1, "{over_tls:?}");
        let untrusted = Client::new(ClientConfig { tries: 1, ..ClientConfig::new(&https) }).unwrap();
        let e = untrusted.networks("").await.expect_err("a certificate no trusted CA signed");
        assert!(matches!(e, neutron::Error::Transport { .. }), "{e}");
        assert!(e.to_string().contains("certificate"), "the message says why: {e}");
        let bad_ca = tmp.path().join("empty.pem");
        std::fs::write(&bad_ca, "").unwrap();
        let refused = Client::new(ClientConfig { ca_file: Some(bad_ca), ..ClientConfig::new(&https) }).expect_err("an empty CA file");
        assert!(refused.to_string().contains("holds no certificate"), "{refused}");
    });
    world.stack.stop().unwrap();
}

/// A TLS terminator on 127.0.0.1 forwarding to plain `port`, with a certificate for 127.0.0.1
/// signed by a CA of its own; its URL and the CA's PEM file (in `dir`).
async fn tls_terminator(port: u16, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (url, ca_file)
}
