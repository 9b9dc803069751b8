//! A real OpenStack Neutron for tests: a private PostgreSQL cluster ([`Postgres`]) and Debian's
//! `neutron-server` (ML2 with the OVN mechanism driver) against a [`crate::Central`]'s NB and SB
//! over TCP on 127.0.0.1 ([`NeutronServer`]). Authentication: none (`auth_strategy = noauth`: every
//! request is an admin of `fake_project_id`) or a real Keystone ([`crate::keystone`],
//! [`ServiceUser`]); no message bus (`transport_url = fake:/`).
//!
//! Everything lives under one state directory: PostgreSQL's data directory and socket, the two
//! config files, logs, locks and pid files. Both stop by their own pid (PostgreSQL with `pg_ctl`
//! on its data directory; neutron-server by its process group, which its workers share), never by
//! name. Traps this follows (shared/neutron-on-these-machines.md): start the chassis before the
//! server (a chassis registered later is "dead" to it and its ports fail to bind); `service_plugins =
//! ovn-router` (empty, its maintenance worker crashes); DNS servers set (else the host's resolvers
//! leak into pods' DHCP).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http;
use crate::process::{free_tcp_port, run, GroupLeader};
use crate::Error;

/// PostgreSQL's binaries (Debian's `postgresql-15`).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The database, user and password neutron-server uses.
const DB: &str = "neutron";

/// Whether neutron-server and PostgreSQL are installed (`scripts/install-deps.sh` installs them
/// when Neutron tests are on).
pub fn available() -> bool {
    Path::new("/usr/bin/neutron-server").exists()
        && Path::new("/usr/bin/neutron-db-manage").exists()
        && Path::new(PG_BIN).join("initdb").exists()
}

/// A private PostgreSQL cluster on 127.0.0.1 (a free port) with its socket in its directory,
/// `fsync` off (tests only).
#[derive(Debug)]
pub struct Postgres {
    data: PathBuf,
    sock_dir: PathBuf,
    port: u16,
    stopped: bool,
}

impl Postgres {
    /// Makes the cluster in `dir` (owned by the `postgres` user: initdb refuses root; so `dir`'s
    /// ancestors must let other users through), starts it, and creates the user and database
    /// `neutron`.
    pub fn start(dir: &Path) -> Result<Postgres, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.into(), source: e })?;
        run("chown", &["postgres:", &dir.display().to_string()])?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::Io { path: dir.into(), source: e })?;
        let data = dir.join("data");
        let port = free_tcp_port()?;
        let mut pg = Postgres { data, sock_dir: dir.to_path_buf(), port, stopped: true };
        pg.as_postgres("initdb", &["-D", &pg.data.display().to_string(), "-A", "trust", "-U", "postgres", "-E", "UTF8"])?;
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200",
            pg.sock_dir.display()
        );
        let log = dir.join("server.log").display().to_string();
        pg.stopped = false;
        pg.as_postgres("pg_ctl", &["-D", &pg.data.display().to_string(), "-l", &log, "-w", "-t", "60", "-o", &opts, "start"])?;
        pg.sql(&format!("CREATE USER {DB} PASSWORD '{DB}'"))?;
        pg.sql(&format!("CREATE DATABASE {DB} OWNER {DB}"))?;
        Ok(pg)
    }

    /// Runs one of PostgreSQL's programs as the `postgres` user.
    fn as_postgres(&self, program: &str, args: &[&str]) -> Result<String, Error> {
        let bin = Path::new(PG_BIN).join(program).display().to_string();
        let mut argv = vec!["-u", "postgres", "--", bin.as_str()];
        argv.extend_from_slice(args);
        run("runuser", &argv)
    }

    /// Runs one SQL statement as the superuser.
    pub fn sql(&self, statement: &str) -> Result<String, Error> {
        let (sock, port) = (self.sock_dir.display().to_string(), self.port.to_string());
        self.as_postgres("psql", &["-h", &sock, "-p", &port, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement])
    }

    /// The SQLAlchemy URL of the `neutron` database.
    pub fn url(&self) -> String {
        format!("postgresql+psycopg2://{DB}:{DB}@127.0.0.1:{}/{DB}", self.port)
    }

    /// Stops the cluster (idempotent).
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        self.as_postgres("pg_ctl", &["-D", &self.data.display().to_string(), "-m", "fast", "-w", "-t", "60", "stop"]).map(|_| ())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping PostgreSQL in {}: {e}", self.data.display());
        }
    }
}

/// How to run [`NeutronServer`].
#[derive(Debug, Clone)]
pub struct NeutronConfig {
    /// State directory (configs, logs, locks, pid file).
    pub dir: PathBuf,
    /// The database URL ([`Postgres::url`]).
    pub database: String,
    /// The OVN Northbound and Southbound databases, `tcp:127.0.0.1:PORT`.
    pub nb: String,
    pub sb: String,
    /// DNS servers OVN's DHCP hands out when a subnet names none (never the host's).
    pub dns_servers: String,
    /// Keystone's URL and neutron's service user: `auth_strategy = keystone`; `None`: noauth.
    pub keystone: Option<ServiceUser>,
    /// API worker processes (`api_workers`; tests: 1, the benchmark: one per core).
    pub api_workers: u32,
}

/// How neutron-server checks tokens with Keystone (`[keystone_authtoken]`).
#[derive(Debug, Clone)]
pub struct ServiceUser {
    /// Keystone's URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The service user (admin of `project`, domain `Default`).
    pub user: String,
    pub password: String,
    pub project: String,
}

/// A running neutron-server (its process group: the parent and its workers).
#[derive(Debug)]
pub struct NeutronServer {
    port: u16,
    leader: GroupLeader,
    /// Its own log (where to look when it exits).
    log: PathBuf,
    /// `--config-file` arguments and the state directory, to start it again.
    files: Vec<String>,
    dir: PathBuf,
}

impl NeutronServer {
    /// Writes the configuration, migrates the database (`neutron-db-manage upgrade heads`), starts
    /// neutron-server and waits until its version list (`GET /`, no token needed) answers (up to
    /// `timeout`).
    pub fn start(cfg: &NeutronConfig, timeout: Duration) -> Result<NeutronServer, Error> {
        let dir = &cfg.dir;
        for d in [dir.clone(), dir.join("lock"), dir.join("log")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::Io { path: d.clone(), source: e })?;
        }
        let port = free_tcp_port()?;
        let conf = dir.join("neutron.conf");
        let ml2 = dir.join("ml2_conf.ini");
        let write = |path: &Path, text: String| std::fs::write(path, text).map_err(|e| Error::Io { path: path.into(), source: e });
        write(&conf, neutron_conf(dir, port, &cfg.database, cfg.keystone.as_ref(), cfg.api_workers.max(1)))?;
        write(&ml2, ml2_conf(&cfg.nb, &cfg.sb, &cfg.dns_servers))?;
        let files = ["--config-file".to_string(), conf.display().to_string(), "--config-file".into(), ml2.display().to_string()];
        let mut migrate: Vec<&str> = files.iter().map(String::as_str).collect();
        migrate.extend(["upgrade", "heads"]);
        run("neutron-db-manage", &migrate)?;
        let log = dir.join("log/server.log");
        let leader = launch(&files, dir, port, &log, timeout)?;
        Ok(NeutronServer { port, leader, log, files: files.to_vec(), dir: dir.clone() })
    }

    /// Stops it and starts it again on the same port and database (a restart as an operator
    /// makes it: requests in flight fail, clients must retry); returns once it answers.
    pub fn restart(&mut self, timeout: Duration) -> Result<(), Error> {
        self.leader.stop()?;
        self.leader = launch(&self.files, &self.dir, self.port, &self.log, timeout)?;
        Ok(())
    }

    /// The API endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid (the leader of its process group).
    pub fn pid(&self) -> i32 {
        self.leader.pid()
    }

    /// One API call (`path` from `/v2.0/...`, JSON body): status and body. For tests and setup:
    /// a 5xx answer is tried again (up to 5 times, 1 s apart), as any client of Neutron must (its
    /// first writes can race its own maintenance worker; a failed write is rolled back).
    pub fn call(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Result<(u16, serde_json::Value), Error> {
        let mut tries = 0;
        loop {
            let a = http::call(method, self.port, path, &[], body)?;
            tries += 1;
            if a.status < 500 || tries == 5 {
                return Ok((a.status, a.json()));
            }
            tracing::warn!(status = a.status, "neutron-server: {method} {path}: {}; trying again", a.body);
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Stops the process group: SIGTERM, then SIGKILL after 20 s (idempotent; also on drop).
    pub fn stop(&mut self) -> Result<(), Error> {
        self.leader.stop()
    }
}

/// The pid file of a [`Stack`]'s neutron-server under its directory.
const SERVER_PIDFILE: &str = "neutron/server.pid";
/// A [`Stack`]'s PostgreSQL data directory under its directory.
const PG_DATA: &str = "pg/data";

/// Starts neutron-server with `files` in its own process group (the workers it forks are stopped
/// with it) and waits until its version list answers on `port` (no token needed; under Keystone,
/// /v2.0/networks is 401).
fn launch(files: &[String], dir: &Path, port: u16, log: &Path, timeout: Duration) -> Result<GroupLeader, Error> {
    let mut cmd = Command::new("neutron-server");
    cmd.args(files).arg("--log-file").arg(log);
    let mut leader =
        GroupLeader::spawn("neutron-server", cmd, &dir.join("log/server.stdout"), &dir.join("server.pid"), Duration::from_secs(20))?;
    leader.wait_ready(timeout, log, || match http::call("GET", port, "/", &[], None) {
        Ok(a) if a.status == 200 || a.status == 300 => Ok(()),
        Ok(a) => Err(format!("GET / answered {}", a.status)),
        Err(e) => Err(e.to_string()),
    })?;
    Ok(leader)
}

/// PostgreSQL and neutron-server in `dir/pg` and `dir/neutron`, for `central` (whose NB and SB
/// must listen on TCP: [`crate::CentralOptions::tcp`]). Start the chassis first.
#[derive(Debug)]
pub struct Stack {
    // Field order: the server stops before its database.
    pub server: NeutronServer,
    pub pg: Postgres,
}

impl Stack {
    /// Starts both (`dir`'s ancestors must let the `postgres` user through); DNS servers for
    /// subnets that name none: 10.255.255.53 (never the host's).
    pub fn start(dir: &Path, central: &crate::Central, keystone: Option<ServiceUser>) -> Result<Stack, Error> {
        Stack::start_with(dir, central, keystone, 1)
    }

    /// [`Stack::start`] with `api_workers` API worker processes.
    pub fn start_with(dir: &Path, central: &crate::Central, keystone: Option<ServiceUser>, api_workers: u32) -> Result<Stack, Error> {
        let tcp = |remote: Option<String>, what: &str| {
            remote.ok_or_else(|| Error::Missing(format!("the {what} database listens on no TCP port (CentralOptions::tcp)")))
        };
        let (nb, sb) = (tcp(central.nb().tcp_remote(), "Northbound")?, tcp(central.sb().tcp_remote(), "Southbound")?);
        let pg = Postgres::start(&dir.join("pg"))?;
        let cfg = NeutronConfig {
            dir: dir.join("neutron"),
            database: pg.url(),
            nb,
            sb,
            dns_servers: "10.255.255.53".into(),
            keystone,
            api_workers,
        };
        let server = NeutronServer::start(&cfg, Duration::from_secs(180))?;
        Ok(Stack { server, pg })
    }

    /// Stops the server, then the database.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.server.stop()?;
        self.pg.stop()
    }

    /// Leaves both running (a sandbox keeps them after its `up` exits): [`stop_left_in`] stops them.
    pub fn detach(self) {
        let Stack { server, mut pg } = self;
        server.leader.detach();
        pg.stopped = true;
    }
}

/// Stops a [`Stack`] left running in `dir` ([`Stack::detach`]): neutron-server's process group by
/// its pid file, then PostgreSQL with `pg_ctl stop` (nothing when they are not running).
pub fn stop_left_in(dir: &Path) -> Result<(), Error> {
    crate::process::stop_group_pidfile(&dir.join(SERVER_PIDFILE), Duration::from_secs(20))?;
    let data = dir.join(PG_DATA);
    if data.join("postmaster.pid").exists() {
        let bin = Path::new(PG_BIN).join("pg_ctl").display().to_string();
        let data = data.display().to_string();
        run("runuser", &["-u", "postgres", "--", &bin, "-D", &data, "-m", "fast", "-w", "-t", "60", "stop"])?;
    }
    Ok(())
}

/// A whole test deployment in one directory: OVN central (NB and SB also on TCP), one chassis,
/// then PostgreSQL and neutron-server (the chassis first: see the module doc). Stops in reverse.
#[derive(Debug)]
pub struct Deployment {
    // Field order is drop order.
    pub stack: Stack,
    pub chassis: crate::Chassis,
    pub central: crate::Central,
}

impl Deployment {
    /// Starts it in `dir` (made traversable for the `postgres` user) with chassis `chassis` (its
    /// hostname, what ports' `binding:host_id` names) in netns `netns`, tunnel address 198.51.100.1;
    /// neutron-server checks tokens with `keystone` (else noauth).
    pub fn start(dir: &Path, chassis: &str, netns: &str, keystone: Option<ServiceUser>) -> Result<Deployment, Error> {
        Deployment::start_with(dir, chassis, netns, keystone, 1)
    }

    /// [`Deployment::start`] with `api_workers` neutron-server API workers.
    pub fn start_with(
        dir: &Path,
        chassis: &str,
        netns: &str,
        keystone: Option<ServiceUser>,
        api_workers: u32,
    ) -> Result<Deployment, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.into(), source: e })?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(|e| Error::Io { path: dir.into(), source: e })?;
        let central = crate::Central::start_with(&dir.join("central"), crate::CentralOptions { tcp: true, ..Default::default() })?;
        let sb = central.sb_remote();
        let chassis = crate::Chassis::start(crate::ChassisConfig::new(chassis, dir.join(chassis), netns, &sb, "198.51.100.1"))?;
        chassis.wait_registered(&sb, Duration::from_secs(20))?;
        let noauth = keystone.is_none();
        let stack = Stack::start_with(dir, &central, keystone, api_workers)?;
        let mut d = Deployment { stack, chassis, central };
        if noauth {
            d.wait_agent_alive(Duration::from_secs(90))?;
        }
        Ok(d)
    }

    /// Waits until Neutron lists the chassis as a live OVN agent (its Southbound connection is up
    /// and has seen the chassis: ports bound to it bind). noauth only (no token needed).
    pub fn wait_agent_alive(&mut self, timeout: Duration) -> Result<(), Error> {
        let host = self.chassis.name().to_string();
        self.stack.wait_agent_alive(&host, timeout)
    }
}

impl Stack {
    /// Waits until Neutron lists chassis `host` as a live OVN agent (its Southbound connection is
    /// up and has seen the chassis: ports bound to it bind). noauth only (no token needed).
    pub fn wait_agent_alive(&mut self, host: &str, timeout: Duration) -> Result<(), Error> {
        let server = &mut self.server;
        let port = server.port;
        server.leader.wait_ready(timeout, &server.log, || {
            let a = http::call("GET", port, "/v2.0/agents", &[], None).map_err(|e| e.to_string())?;
            let agents = a.json();
            let alive = agents["agents"].as_array().is_some_and(|a| a.iter().any(|a| a["host"] == host && a["alive"] == true));
            if a.status == 200 && alive {
                Ok(())
            } else {
                Err(format!("no live agent on {host}: {} {agents}", a.status))
            }
        })
    }
}

/// The real-Neutron tests are `#[ignore]`d without `KUBETRON_NEUTRON_TESTS=1` (`cfg(neutron_tests)`,
/// set by scripts/test.sh); when they run, the packages must be there: panics naming `test` and
/// the install script otherwise.
pub fn require(test: &str) {
    assert!(available(), "{test}: neutron-server and PostgreSQL 15 must be installed (scripts/install-deps.sh)");
}

/// `neutron.conf` (oslo.config does not expand variables: literal paths).
fn neutron_conf(dir: &Path, port: u16, database: &str, keystone: Option<&ServiceUser>, api_workers: u32) -> String {
    let d = dir.display();
    let (strategy, authtoken) = match keystone {
        None => ("noauth", String::new()),
        Some(k) => (
            "keystone",
            format!(
                "
[keystone_authtoken]
www_authenticate_uri = {url}
auth_url = {url}
auth_type = password
username = {user}
password = {password}
project_name = {project}
user_domain_name = Default
project_domain_name = Default
",
                url = k.url,
                user = k.user,
                password = k.password,
                project = k.project
            ),
        ),
    };
    format!(
        "[DEFAULT]
core_plugin = ml2
service_plugins = ovn-router
auth_strategy = {strategy}
bind_host = 127.0.0.1
bind_port = {port}
api_workers = {api_workers}
rpc_workers = 1
rpc_state_report_workers = 0
transport_url = fake:/
api_paste_config = /etc/neutron/api-paste.ini
state_path = {d}
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false
use_stderr = false
debug = false

[database]
connection = {database}

[oslo_concurrency]
lock_path = {d}/lock
{authtoken}"
    )
}

/// `ml2_conf.ini`: geneve overlays, VLAN and flat on `physnet1`, the OVN driver.
fn ml2_conf(nb: &str, sb: &str, dns: &str) -> String {
    format!(
        "[ml2]
type_drivers = geneve,vlan,flat
tenant_network_types = geneve
mechanism_drivers = ovn
extension_drivers = port_security
overlay_ip_version = 4

[ml2_type_geneve]
vni_ranges = 1:65536
max_header_size = 38

[ml2_type_vlan]
network_vlan_ranges = physnet1:100:199

[ml2_type_flat]
flat_networks = physnet1

[securitygroup]
enable_security_group = true

[ovn]
ovn_nb_connection = {nb}
ovn_sb_connection = {sb}
ovn_metadata_enabled = false
neutron_sync_mode = off
dns_servers = {dns}
"
    )
}
