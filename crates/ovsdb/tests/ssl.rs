mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use daemons::{OvsdbServer, OvsdbServerConfig, Ssl};
use ovsdb::{Client, ClientConfig, Operation, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn write(dir: &Path, name: &str, data: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn make_pki(dir: &Path, tag: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, format!("kubetron test CA {tag}"));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = |cn: &str| {
        let key = KeyPair::generate().unwrap();
        // The name deliberately does not match 127.0.0.1: OVS SSL checks the CA only.
        let mut p = CertificateParams::new(vec![cn.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (sc, sk) = leaf("ovsdb-server");
    let (cc, ck) = leaf("kubetron");
    Pki {
        ca: write(dir, &format!("{tag}-ca.pem"), &ca_cert.pem()),
        server_cert: write(dir, &format!("{tag}-server-cert.pem"), &sc),
        server_key: write(dir, &format!("{tag}-server-key.pem"), &sk),
        client_cert: write(dir, &format!("{tag}-client-cert.pem"), &cc),
        client_key: write(dir, &format!("{tag}-client-key.pem"), &ck),
    }
}

#[tokio::test]
async fn ssl_transact_and_monitor() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "a");
    let ssl = Ssl { private_key: pki.server_key.clone(), certificate: pki.server_cert.clone(), ca_cert: pki.ca.clone() };
    let server = OvsdbServer::start(OvsdbServerConfig::new("nb", dir.path(), daemons::schemas::NB).ssl(ssl)).unwrap();
    let remote = server.ssl_remote().unwrap();
    let tls = TlsConfig::new(&pki.client_key, &pki.client_cert, &pki.ca);
    let c = Client::connect(ClientConfig::new(&remote).unwrap().tls(tls)).await.unwrap();
    assert!(c.list_dbs().await.unwrap().contains(&NB.to_string()));
    let r = c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "over-ssl")]).await.unwrap();
    assert!(r[0].uuid.is_some());
    let rep = ovsdb::Replica::start(&c, ovsdb::ReplicaConfig::new(NB).table(ovsdb::MonitorTable::new("Logical_Switch"))).await.unwrap();
    assert!(rep.snapshot().find_one("Logical_Switch", "name", "over-ssl").is_some());

    // A client trusting another CA refuses the server.
    let other = make_pki(dir.path(), "b");
    let bad = TlsConfig::new(&other.client_key, &other.client_cert, &other.ca);
    let e = Client::connect(ClientConfig::new(&remote).unwrap().tls(bad).initial_timeout(Duration::from_secs(2))).await.unwrap_err();
    assert!(e.to_string().contains("not connected") || e.to_string().contains("TLS"), "{e}");
    // Missing files are reported with their path.
    let e = Client::start(ClientConfig::new(&remote).unwrap().tls(TlsConfig::new("/nonexistent/key.pem", &pki.client_cert, &pki.ca)))
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/key.pem"), "{e}");
}
