//! A real OVN deployment under one state directory: the central part ([`Central`]: Northbound and
//! Southbound ovsdb-servers and ovn-northd) and chassis ([`Chassis`]: a local Open_vSwitch
//! ovsdb-server, ovs-vswitchd on the userspace datapath and ovn-controller), each chassis in a
//! network namespace of its own so that its bridges' tap devices never land in the root namespace
//! and parallel deployments cannot collide. [`link_underlay`] joins two chassis with a veth pair
//! between their `br-phy` bridges, which carry the geneve tunnel endpoints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::{self, NetnsGuard};
use crate::ovsdb_server::{Allocator, OvsdbServer, OvsdbServerConfig, Ssl};
use crate::process::{run, stop_pidfile, wait_for_unix_socket, DaemonSpec};
use crate::{schemas, Error};

const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How to run [`Central`] beyond its directory.
#[derive(Debug, Clone, Default)]
pub struct CentralOptions {
    /// NB and SB also listen on TCP 127.0.0.1 (a free port each).
    pub tcp: bool,
    /// NB also listens on `pssl:PORT:127.0.0.1` with these files ([`Central::nb_ssl_remote`];
    /// northd and `nbctl` keep using the unix socket).
    pub nb_ssl: Option<Ssl>,
    /// The allocator of both ovsdb-servers and ovn-northd; `None`: [`Allocator::from_env`].
    pub allocator: Option<Allocator>,
}

/// Northbound + Southbound databases and ovn-northd.
#[derive(Debug)]
pub struct Central {
    dir: PathBuf,
    nb: OvsdbServer,
    sb: OvsdbServer,
    northd_pidfile: PathBuf,
    stopped: bool,
}

impl Central {
    /// Starts NB, SB (unix sockets in `dir`, plus TCP on 127.0.0.1 when `tcp`) and ovn-northd.
    pub fn start(dir: &Path, tcp: bool) -> Result<Central, Error> {
        Self::start_with(dir, CentralOptions { tcp, ..Default::default() })
    }

    /// As [`Central::start`], with [`CentralOptions`].
    pub fn start_with(dir: &Path, opts: CentralOptions) -> Result<Central, Error> {
        let CentralOptions { tcp, nb_ssl, allocator } = opts;
        let allocator = match allocator {
            Some(a) => a,
            None => Allocator::from_env()?,
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
        let mut nb_cfg = OvsdbServerConfig::new("nb", dir, schemas::NB).tcp(tcp).allocator(allocator);
        if let Some(ssl) = nb_ssl {
            nb_cfg = nb_cfg.ssl(ssl);
        }
        let nb = OvsdbServer::start(nb_cfg)?;
        let sb = OvsdbServer::start(OvsdbServerConfig::new("sb", dir, schemas::SB).tcp(tcp).allocator(allocator))?;
        run("ovn-nbctl", &[&format!("--db={}", nb.unix_remote()), "--no-wait", "init"])?;
        run("ovn-sbctl", &[&format!("--db={}", sb.unix_remote()), "init"])?;
        let northd_pidfile = dir.join("northd.pid");
        let northd = DaemonSpec::new("ovn-northd", &northd_pidfile, dir.join("northd.log"))
            .arg(format!("--ovnnb-db={}", nb.unix_remote()))
            .arg(format!("--ovnsb-db={}", sb.unix_remote()))
            .arg(format!("--unixctl={}", dir.join("northd.ctl").display()))
            .arg("-vconsole:off");
        allocator.apply(northd)?.spawn()?;
        Ok(Central { dir: dir.to_path_buf(), nb, sb, northd_pidfile, stopped: false })
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// ovn-northd's pid (from its pid file).
    pub fn northd_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.northd_pidfile).ok()?.trim().parse().ok()
    }
    pub fn nb(&self) -> &OvsdbServer {
        &self.nb
    }
    pub fn sb(&self) -> &OvsdbServer {
        &self.sb
    }
    pub fn nb_mut(&mut self) -> &mut OvsdbServer {
        &mut self.nb
    }
    /// `unix:<dir>/nb.sock`
    pub fn nb_remote(&self) -> String {
        self.nb.unix_remote()
    }
    /// `ssl:127.0.0.1:PORT` when started with NB SSL.
    pub fn nb_ssl_remote(&self) -> Option<String> {
        self.nb.ssl_remote()
    }
    /// `unix:<dir>/sb.sock`
    pub fn sb_remote(&self) -> String {
        self.sb.unix_remote()
    }
    /// Runs `ovn-nbctl` against this NB database.
    pub fn nbctl(&self, args: &[&str]) -> Result<String, Error> {
        let db = format!("--db={}", self.nb_remote());
        let mut v = vec![db.as_str()];
        v.extend_from_slice(args);
        run("ovn-nbctl", &v)
    }
    /// Runs `ovn-sbctl` against this SB database.
    pub fn sbctl(&self, args: &[&str]) -> Result<String, Error> {
        let db = format!("--db={}", self.sb_remote());
        let mut v = vec![db.as_str()];
        v.extend_from_slice(args);
        run("ovn-sbctl", &v)
    }
    /// Runs `ovn-appctl` against ovn-northd (`inc-engine/recompute`, `stopwatch/show`...).
    pub fn northd_appctl(&self, args: &[&str]) -> Result<String, Error> {
        let ctl = self.dir.join("northd.ctl");
        let mut v = vec!["-t", ctl.to_str().unwrap_or_default()];
        v.extend_from_slice(args);
        run("ovn-appctl", &v)
    }
    /// Stops northd and both databases (idempotent).
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let a = stop_pidfile(&self.northd_pidfile, STOP_TIMEOUT);
        let b = self.nb.stop();
        let c = self.sb.stop();
        a.and(b).and(c)
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping OVN central in {}: {e}", self.dir.display());
        }
    }
}

/// How to start a chassis.
#[derive(Debug, Clone)]
pub struct ChassisConfig {
    /// The chassis name (`system-id`).
    pub name: String,
    /// Its state directory.
    pub dir: PathBuf,
    /// The network namespace it runs in; created by [`Chassis::start`], deleted by `stop`.
    pub netns: String,
    /// The Southbound remote (a unix socket: 127.0.0.1 inside the netns is not the root's).
    pub sb_remote: String,
    /// Tunnel endpoint address on `br-phy`, in 198.51.100.0/24.
    pub encap_ip: String,
    /// `ovn-bridge-mappings` (e.g. `physnet1:br-phys1`); the bridges are created too.
    pub bridge_mappings: Vec<(String, String)>,
}

impl ChassisConfig {
    pub fn new(name: &str, dir: impl Into<PathBuf>, netns: &str, sb_remote: &str, encap_ip: &str) -> ChassisConfig {
        ChassisConfig {
            name: name.to_string(),
            dir: dir.into(),
            netns: netns.to_string(),
            sb_remote: sb_remote.to_string(),
            encap_ip: encap_ip.to_string(),
            bridge_mappings: Vec::new(),
        }
    }
}

/// A local Open_vSwitch database, ovs-vswitchd (userspace datapath) and ovn-controller in a netns.
#[derive(Debug)]
pub struct Chassis {
    cfg: ChassisConfig,
    netns: Option<NetnsGuard>,
    conf: OvsdbServer,
    vswitchd_pidfile: PathBuf,
    controller_pidfile: PathBuf,
    stopped: bool,
}

impl Chassis {
    /// Starts the chassis and waits until br-int exists; ovn-controller registers with the SB
    /// database shortly after (see [`Chassis::wait_registered`]).
    pub fn start(cfg: ChassisConfig) -> Result<Chassis, Error> {
        std::fs::create_dir_all(&cfg.dir).map_err(|e| Error::Io { path: cfg.dir.clone(), source: e })?;
        let guard = NetnsGuard::create(&cfg.netns)?;
        let conf = OvsdbServer::start(OvsdbServerConfig::new("conf", &cfg.dir, schemas::VSWITCH))?;
        let mut chassis = Chassis {
            vswitchd_pidfile: cfg.dir.join("ovs-vswitchd.pid"),
            controller_pidfile: cfg.dir.join("ovn-controller.pid"),
            cfg,
            netns: Some(guard),
            conf,
            stopped: false,
        };
        // From here on, Drop cleans up whatever was started if a step fails.
        chassis.configure()?;
        Ok(chassis)
    }

    fn configure(&mut self) -> Result<(), Error> {
        let c = self.cfg.clone();
        let mappings = c.bridge_mappings.iter().map(|(n, b)| format!("{n}:{b}")).collect::<Vec<_>>().join(",");
        let mut ids = vec![
            format!("external-ids:system-id={}", c.name),
            format!("external-ids:hostname={}", c.name),
            format!("external-ids:ovn-remote={}", c.sb_remote),
            "external-ids:ovn-encap-type=geneve".to_string(),
            format!("external-ids:ovn-encap-ip={}", c.encap_ip),
            "external-ids:ovn-bridge-datapath-type=netdev".to_string(),
        ];
        if !mappings.is_empty() {
            ids.push(format!("external-ids:ovn-bridge-mappings={mappings}"));
        }
        let mut args = vec!["--no-wait", "init", "--", "set", "Open_vSwitch", "."];
        args.extend(ids.iter().map(String::as_str));
        self.vsctl(&args)?;

        self.start_vswitchd()?;
        self.vsctl(&[
            "--may-exist",
            "add-br",
            "br-int",
            "--",
            "set",
            "Bridge",
            "br-int",
            "datapath_type=netdev",
            "fail-mode=secure",
            "other-config:disable-in-band=true",
        ])?;
        self.vsctl(&["--may-exist", "add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev"])?;
        for (_, br) in &c.bridge_mappings {
            self.vsctl(&["--may-exist", "add-br", br, "--", "set", "Bridge", br, "datapath_type=netdev"])?;
        }
        netns::exec(&c.netns, &["ip", "addr", "replace", &format!("{}/24", c.encap_ip), "dev", "br-phy"])?;
        netns::exec(&c.netns, &["ip", "link", "set", "br-phy", "up"])?;

        DaemonSpec::new("ovn-controller", &self.controller_pidfile, c.dir.join("ovn-controller.log"))
            .arg(self.conf.unix_remote())
            .arg("-vconsole:off")
            .netns(Some(c.netns.clone()))
            .env("OVS_RUNDIR", &c.dir.display().to_string())
            .env("OVN_RUNDIR", &c.dir.display().to_string())
            .spawn()?;
        Ok(())
    }

    fn start_vswitchd(&self) -> Result<(), Error> {
        let dir = &self.cfg.dir;
        DaemonSpec::new("ovs-vswitchd", &self.vswitchd_pidfile, dir.join("ovs-vswitchd.log"))
            .arg(self.conf.unix_remote())
            .arg(format!("--unixctl={}", self.vswitchd_ctl().display()))
            .arg("-vconsole:off")
            .netns(Some(self.cfg.netns.clone()))
            .env("OVS_RUNDIR", &dir.display().to_string())
            .spawn()?;
        wait_for_unix_socket(&self.vswitchd_ctl(), Duration::from_secs(10))
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }
    pub fn netns(&self) -> &str {
        &self.cfg.netns
    }
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }
    pub fn encap_ip(&self) -> &str {
        &self.cfg.encap_ip
    }
    /// The local Open_vSwitch database's remote (`unix:...`).
    pub fn db_remote(&self) -> String {
        self.conf.unix_remote()
    }
    pub fn db_path(&self) -> &Path {
        self.conf.unix_path()
    }
    fn vswitchd_ctl(&self) -> PathBuf {
        self.cfg.dir.join("ovs-vswitchd.ctl")
    }
    pub fn vswitchd_pid(&self) -> Option<i32> {
        crate::process::read_pidfile(&self.vswitchd_pidfile).ok().flatten()
    }
    pub fn controller_pid(&self) -> Option<i32> {
        crate::process::read_pidfile(&self.controller_pidfile).ok().flatten()
    }

    /// What went wrong with this chassis's daemons, if anything: ovs-vswitchd or ovn-controller no
    /// longer running, or an emergency in its log (how OVS reports a failed assertion before it
    /// aborts, e.g. OVS 3.1's userspace conntrack: `conntrack.c:1063: assertion ... failed in
    /// conn_update_state()`). `None` while both run and neither logged an emergency. Tests call it
    /// when traffic stops flowing, so the failure names the crash instead of a missing packet.
    pub fn failure(&self) -> Option<String> {
        if self.stopped {
            return None;
        }
        let daemons = [("ovs-vswitchd", self.vswitchd_pid()), ("ovn-controller", self.controller_pid())];
        let problems: Vec<String> = daemons
            .into_iter()
            .filter_map(|(name, pid)| {
                let running = pid.is_some_and(crate::process::is_running);
                let log = std::fs::read_to_string(self.cfg.dir.join(format!("{name}.log"))).unwrap_or_default();
                let emergencies: Vec<&str> = log.lines().filter(|l| l.contains("|EMER|")).collect();
                (!running || !emergencies.is_empty()).then(|| {
                    let state = if running { "runs" } else { "is not running" };
                    let said = if emergencies.is_empty() { String::new() } else { format!("; its log: {}", emergencies.join(" / ")) };
                    format!("{name} on {} {state}{said}", self.cfg.name)
                })
            })
            .collect();
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// Runs `ovs-vsctl` against this chassis's database (with a 10 s timeout).
    pub fn vsctl(&self, args: &[&str]) -> Result<String, Error> {
        let db = format!("--db={}", self.conf.unix_remote());
        let mut v = vec![db.as_str(), "--timeout=10"];
        v.extend_from_slice(args);
        run("ovs-vsctl", &v)
    }
    /// Runs `ovs-appctl` against this chassis's ovs-vswitchd.
    pub fn vswitchd_appctl(&self, args: &[&str]) -> Result<String, Error> {
        let t = self.vswitchd_ctl().display().to_string();
        let mut v = vec!["-t", t.as_str()];
        v.extend_from_slice(args);
        run("ovs-appctl", &v)
    }

    /// Waits until ovn-controller has registered this chassis in the Southbound database.
    pub fn wait_registered(&self, sb_remote: &str, timeout: Duration) -> Result<(), Error> {
        let t = format!("--timeout={}", timeout.as_secs().max(1));
        run("ovn-sbctl", &[&format!("--db={sb_remote}"), &t, "wait-until", "Chassis", &self.cfg.name])
            .map(|_| ())
            .map_err(|e| Error::NotReady(format!("chassis {} did not register: {e}", self.cfg.name)))
    }

    /// Stops ovs-vswitchd (SIGTERM) and starts it again on the same database, as a node restart
    /// of the switch would; ports stay in the database and are re-created by the new process.
    pub fn restart_vswitchd(&self) -> Result<(), Error> {
        stop_pidfile(&self.vswitchd_pidfile, STOP_TIMEOUT)?;
        self.start_vswitchd()
    }

    /// Stops everything and deletes the namespace (idempotent). Bridges are deleted while
    /// ovs-vswitchd still runs, so their tap devices go with them.
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let vswitchd_alive = self.vswitchd_pid().map(crate::process::is_running).unwrap_or(false);
        if vswitchd_alive && self.conf.is_running() {
            let mut args = vec!["--if-exists", "del-br", "br-int", "--", "--if-exists", "del-br", "br-phy"];
            for (_, br) in &self.cfg.bridge_mappings {
                args.extend(["--", "--if-exists", "del-br", br.as_str()]);
            }
            if let Err(e) = self.vsctl(&args) {
                tracing::warn!("chassis {}: deleting bridges: {e}", self.cfg.name);
            }
        }
        let a = stop_pidfile(&self.controller_pidfile, STOP_TIMEOUT);
        let b = stop_pidfile(&self.vswitchd_pidfile, STOP_TIMEOUT);
        let c = self.conf.stop();
        let d = match self.netns.as_mut() {
            Some(g) => g.delete(),
            None => Ok(()),
        };
        a.and(b).and(c).and(d)
    }
}

impl Drop for Chassis {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping chassis {}: {e}", self.cfg.name);
        }
    }
}

/// Joins two chassis with a veth pair (`ul-<a>` in a's netns, `ul-<b>` in b's) whose ends are
/// ports of each chassis's `br-phy`, so their geneve tunnels reach each other.
pub fn link_underlay(a: &Chassis, b: &Chassis) -> Result<(), Error> {
    let (ia, ib) = (underlay_ifname(a.name()), underlay_ifname(b.name()));
    run("ip", &["link", "add", &ia, "netns", a.netns(), "type", "veth", "peer", "name", &ib, "netns", b.netns()])?;
    for (ch, ifname) in [(a, &ia), (b, &ib)] {
        netns::exec(ch.netns(), &["ip", "link", "set", ifname, "up"])?;
        ch.vsctl(&["--may-exist", "add-port", "br-phy", ifname])?;
    }
    Ok(())
}

fn underlay_ifname(chassis: &str) -> String {
    let mut s = format!("ul-{chassis}");
    s.truncate(15);
    s
}
