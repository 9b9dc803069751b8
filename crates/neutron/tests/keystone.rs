//! The client against a real neutron-server that checks Keystone tokens (daemons::keystone:
//! Debian's Keystone under uwsgi, 20 s tokens; daemons::neutron with `auth_strategy = keystone`).
//!
//! Checks: without a token Neutron answers 401; a password client and an application-credential
//! client both work (the port bound to the chassis: the admin role may set `binding:host_id`); the
//! token is cached (one token for many calls) and renewed before it expires (after 21 s the next
//! call works, with a second token); a wrong secret is Keystone's 401, said as such.
//!
//! Ignored without `KUBETRON_NEUTRON_TESTS=1` (scripts/test.sh sets it).

use std::time::Duration;

use daemons::keystone::Keystone;
use daemons::neutron::{Deployment, ServiceUser};
use neutron::{Auth, Client, ClientConfig, Error, NewPort};
use serde_json::json;

#[cfg_attr(not(neutron_tests), ignore = "needs KUBETRON_NEUTRON_TESTS=1 (scripts/test.sh sets it)")]
#[test]
fn keystone_tokens_cached_and_renewed() {
    daemons::neutron::require("keystone_tokens_cached_and_renewed");
    assert!(daemons::keystone::available(), "keystone and uwsgi must be installed (scripts/install-deps.sh)");
    let tmp = tempfile::tempdir().unwrap();
    let mut keystone = Keystone::start(&tmp.path().join("keystone"), Duration::from_secs(20)).expect("keystone");
    keystone.user("service", "neutron", "neutron-pw", "admin").expect("neutron's service user");
    let uid = keystone.user("kt", "kubetron", "kubetron-pw", "admin").expect("kubetron's user");
    let own = keystone.token("kubetron", "kubetron-pw", "kt").expect("kubetron's token");
    let ac = keystone.application_credential(&uid, &own, "kt-ac", "kt-ac-secret-0123456789").expect("application credential");
    let service = ServiceUser { url: keystone.url(), user: "neutron".into(), password: "neutron-pw".into(), project: "service".into() };
    let ns = format!("ktnk{}", std::process::id() % 100000);
    let mut world =
        Deployment::start(&tmp.path().join("neutron"), "nk-node1", &ns, Some(service)).expect("OVN, PostgreSQL, neutron-server");
    let url = world.stack.server.url();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = |auth: Auth| Client::new(ClientConfig { auth, ..ClientConfig::new(&url) }).unwrap();

    rt.block_on(async {
        // No token: 401.
        let e = client(Auth::None).networks("").await.expect_err("no token");
        assert_eq!(e.status(), Some(401), "{e}");

        // A password: a network, and a port bound to the chassis.
        let pw = client(Auth::Password {
            keystone: keystone.url(),
            user: "kubetron".into(),
            password: "kubetron-pw".into(),
            project: "kt".into(),
        });
        let red = pw.create_network("red", json!({})).await.expect("network with a password token");
        pw.create_subnet(&red.id, "10.1.0.0/24", json!({"dns_nameservers": ["10.1.0.53"]})).await.expect("subnet");
        let (port, made) = pw.ensure_port(&NewPort::for_pod(&red.id, "uid-a", "team-a/pod-a/net1", Some("nk-node1"))).await.expect("port");
        assert!(made);
        assert_eq!((port.vif_type.as_deref(), port.host_id.as_deref()), (Some("ovs"), Some("nk-node1")), "{port:?}");
        assert_eq!(pw.token_requests(), 1, "one token for all of that");

        // An application credential: cached, then renewed before it expires.
        let app =
            client(Auth::ApplicationCredential { keystone: keystone.url(), id: ac.clone(), secret: "kt-ac-secret-0123456789".into() });
        for _ in 0..3 {
            assert!(app.networks("").await.expect("networks with an application credential").iter().any(|n| n.id == red.id));
        }
        assert_eq!(app.token_requests(), 1);
        tokio::time::sleep(Duration::from_secs(21)).await;
        assert_eq!(app.ports_of_device("uid-a").await.expect("after the first token's lifetime").len(), 1);
        assert_eq!(app.token_requests(), 2, "renewed once");

        // A wrong secret: Keystone's refusal, said as such.
        let bad = client(Auth::ApplicationCredential { keystone: keystone.url(), id: ac, secret: "wrong".into() });
        match bad.networks("").await {
            Err(Error::Auth { status: 401, .. }) => {}
            other => panic!("a wrong secret: {other:?}"),
        }
    });
    world.stack.stop().unwrap();
    keystone.stop().unwrap();
}
