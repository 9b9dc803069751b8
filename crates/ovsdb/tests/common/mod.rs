#![allow(dead_code)]
use daemons::{OvsdbServer, OvsdbServerConfig};
use ovsdb::{Client, ClientConfig};

pub const NB: &str = "OVN_Northbound";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
}

pub struct Nb {
    pub dir: tempfile::TempDir,
    pub server: OvsdbServer,
}

pub fn start_nb(tcp: bool) -> Nb {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = OvsdbServer::start(OvsdbServerConfig::new("nb", dir.path(), daemons::schemas::NB).tcp(tcp)).expect("start ovsdb-server");
    Nb { dir, server }
}

pub async fn connect(remote: &str) -> Client {
    Client::connect(ClientConfig::new(remote).unwrap()).await.expect("connect")
}
