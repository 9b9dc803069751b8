//! qemu under TCG inside a netns: start, console, leases, live migration, stop by pid file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::qmp::{event_ms, Qmp};
use super::{epoch_ms, GuestImage, VmError};

/// One NIC of the VM: a tap that exists in the VM's netns, and the MAC the guest sees.
#[derive(Debug, Clone)]
pub struct Nic {
    /// The tap (e.g. from [`super::bridge_binding`]).
    pub tap: String,
    /// The guest's MAC (KubeVirt: the one the VM asked for, i.e. the port's).
    pub mac: String,
}

/// How to start a VM.
#[derive(Debug, Clone)]
pub struct VmConfig<'a> {
    /// Name, for files and messages.
    pub name: &'a str,
    /// The netns qemu runs in (the launcher pod's).
    pub netns: &'a Path,
    /// NICs, in guest order (eth0, eth1, ...).
    pub nics: Vec<Nic>,
    /// Where the pid file, QMP socket, migration socket and console log go (must exist).
    pub state_dir: &'a Path,
    /// Guest memory in MB (256: RSS barely depends on it).
    pub mem_mb: u32,
    /// Extra kernel command line (e.g. `vmprobe.ping=10.0.0.5`).
    pub append: String,
    /// Start as a migration target (`-incoming unix:<state_dir>/<name>-mig.sock`).
    pub incoming: bool,
}

impl<'a> VmConfig<'a> {
    /// Defaults: 256 MB, no extra command line, not incoming.
    pub fn new(name: &'a str, netns: &'a Path, state_dir: &'a Path, nics: Vec<Nic>) -> VmConfig<'a> {
        VmConfig { name, netns, nics, state_dir, mem_mb: 256, append: String::new(), incoming: false }
    }
}

/// A console line, stamped on arrival.
#[derive(Debug, Clone)]
pub struct ConsoleLine {
    /// Milliseconds since qemu was spawned.
    pub ms: u64,
    /// The line, without trailing CR/LF.
    pub text: String,
}

/// A DHCP lease the guest printed (`VMPROBE lease ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Guest interface (`eth0`, ...).
    pub iface: String,
    /// Leased address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Default router, if offered.
    pub router: Option<Ipv4Addr>,
    /// MTU option, if offered.
    pub mtu: Option<u32>,
    /// When it was printed (ms since qemu spawn).
    pub at_ms: u64,
}

impl Lease {
    fn parse(line: &ConsoleLine) -> Option<Lease> {
        let rest = &line.text[line.text.find("VMPROBE lease ")? + "VMPROBE lease ".len()..];
        let kv = |k: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}=")[..])).filter(|v| !v.is_empty());
        Some(Lease {
            iface: kv("iface")?.to_string(),
            ip: kv("ip")?.parse().ok()?,
            prefix: kv("mask")?.parse().ok()?,
            router: kv("router").and_then(|r| r.parse().ok()),
            mtu: kv("mtu").and_then(|m| m.parse().ok()),
            at_ms: line.ms,
        })
    }
}

/// What a live migration did (times are host epoch ms, comparable with ping's `-D` stamps).
#[derive(Debug, Clone)]
pub struct MigrationReport {
    /// `migrate` sent.
    pub t_start_ms: u64,
    /// The source reported a final status.
    pub t_completed_ms: u64,
    /// The target's RESUME event (qemu's own stamp), if it came.
    pub t_dst_resume_ms: Option<u64>,
    /// qemu's `total-time`.
    pub total_ms: u64,
    /// qemu's `downtime`.
    pub downtime_ms: u64,
    /// The source's final status (`completed`, `failed`, `cancelled`).
    pub status: String,
}

type Console = Arc<(Mutex<Vec<ConsoleLine>>, Condvar)>;

/// A running qemu.
pub struct Vm {
    name: String,
    state_dir: PathBuf,
    pidfile: PathBuf,
    qmp_path: PathBuf,
    incoming_sock: PathBuf,
    child: Mutex<Option<Child>>,
    console: Console,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    spawned: Instant,
    stopped: bool,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm").field("name", &self.name).field("pid", &self.pid()).finish()
    }
}

impl Vm {
    /// Starts qemu (TCG) inside `cfg.netns` on the given taps, booting `img`, and waits until its pid
    /// file is written. The serial console is read by a thread that stamps every line.
    pub fn start(img: &GuestImage, cfg: VmConfig) -> Result<Vm, VmError> {
        let dir = cfg.state_dir;
        let pidfile = dir.join(format!("{}.pid", cfg.name));
        let qmp_path = dir.join(format!("{}.qmp", cfg.name));
        let incoming_sock = dir.join(format!("{}-mig.sock", cfg.name));
        for p in [&pidfile, &qmp_path, &incoming_sock] {
            let _ = std::fs::remove_file(p);
        }
        let ns = File::open(cfg.netns).map_err(|e| VmError::io(format!("open netns {}", cfg.netns.display()), e))?;
        let mut append = format!("console=ttyS0 quiet loglevel=3 panic=-1 vmprobe.nics={}", cfg.nics.len());
        if !cfg.append.is_empty() {
            append.push(' ');
            append.push_str(&cfg.append);
        }
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-name", cfg.name, "-accel", "tcg,tb-size=64", "-cpu", "max", "-M", "pc", "-m"])
            .arg(cfg.mem_mb.to_string())
            .args(["-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-kernel"])
            .arg(&img.vmlinux)
            .arg("-initrd")
            .arg(&img.initramfs)
            .arg("-append")
            .arg(&append);
        for (i, n) in cfg.nics.iter().enumerate() {
            cmd.arg("-netdev")
                .arg(format!("tap,id=n{i},ifname={},script=no,downscript=no,vhost=off", n.tap))
                .arg("-device")
                .arg(format!("virtio-net-pci,netdev=n{i},mac={},romfile=", n.mac));
        }
        cmd.args(["-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
            .arg("-pidfile")
            .arg(&pidfile)
            .arg("-no-reboot");
        if cfg.incoming {
            cmd.arg("-incoming").arg(format!("unix:{}", incoming_sock.display()));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let ns_fd = ns.as_raw_fd();
        // SAFETY: setns(2) is async-signal-safe; the fd stays open in the parent until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = Instant::now();
        let mut child = cmd.spawn().map_err(|e| VmError::io("spawn qemu-system-x86_64", e))?;
        drop(ns);
        tracing::info!(vm = cfg.name, pid = child.id(), netns = %cfg.netns.display(), incoming = cfg.incoming, "started qemu");

        let console: Console = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stdout = child.stdout.take().expect("piped");
        let log_path = dir.join(format!("{}.console", cfg.name));
        let c2 = console.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Write;
            let mut log = File::create(&log_path).ok();
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_string();
                        let ms = spawned.elapsed().as_millis() as u64;
                        if let Some(l) = log.as_mut() {
                            let _ = writeln!(l, "[{ms:>7}] {text}");
                        }
                        let (m, cv) = &*c2;
                        m.lock().unwrap().push(ConsoleLine { ms, text });
                        cv.notify_all();
                    }
                }
            }
            let (_, cv) = &*c2;
            cv.notify_all();
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut se = child.stderr.take().expect("piped");
        let s2 = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = se.read_to_string(&mut s);
            s2.lock().unwrap().push_str(&s);
        });
        let vm = Vm {
            name: cfg.name.to_string(),
            state_dir: dir.to_path_buf(),
            pidfile,
            qmp_path,
            incoming_sock,
            child: Mutex::new(Some(child)),
            console,
            stderr,
            reader: Some(reader),
            spawned,
            stopped: false,
        };
        // The pid file appears once qemu has parsed its options and opened the taps.
        let deadline = Instant::now() + Duration::from_secs(60);
        while vm.pid().is_none() {
            vm.check_alive()?;
            if Instant::now() >= deadline {
                return Err(VmError::Timeout {
                    what: format!("{}'s pid file", vm.name),
                    after: Duration::from_secs(60),
                    context: vm.context(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(vm)
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// qemu's pid, from its pid file.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pidfile).ok().and_then(|s| s.trim().parse().ok())
    }

    /// The QMP socket.
    pub fn qmp_path(&self) -> &Path {
        &self.qmp_path
    }

    /// The `-incoming` socket of a migration target.
    pub fn incoming_uri(&self) -> String {
        format!("unix:{}", self.incoming_sock.display())
    }

    /// Every console line so far.
    pub fn console(&self) -> Vec<ConsoleLine> {
        self.console.0.lock().unwrap().clone()
    }

    fn check_alive(&self) -> Result<(), VmError> {
        let exited = {
            let mut g = self.child.lock().unwrap();
            match g.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(st))) => {
                    *g = None;
                    Some(st)
                }
                _ => None,
            }
        };
        match exited {
            Some(st) => Err(VmError::Exited { name: self.name.clone(), status: st.to_string(), context: self.context() }),
            None => Ok(()),
        }
    }

    /// Diagnostics for errors: qemu CPU time, the last console lines and stderr.
    fn context(&self) -> String {
        let lines = self.console();
        let tail: Vec<String> = lines.iter().rev().take(25).rev().map(|l| format!("  [{:>7}] {}", l.ms, l.text)).collect();
        format!(
            "\n qemu {} cpu {} ms, rss {} kB, {} ms since spawn; console tail:\n{}\n stderr: {}",
            self.name,
            self.cpu_ms(),
            self.rss_kb(),
            self.spawned.elapsed().as_millis(),
            tail.join("\n"),
            self.stderr.lock().unwrap().trim()
        )
    }

    /// Waits for the first console line containing `needle`.
    pub fn wait_console(&self, needle: &str, bound: Duration) -> Result<ConsoleLine, VmError> {
        self.wait_for(&format!("console line {needle:?}"), bound, |lines| lines.iter().find(|l| l.text.contains(needle)).cloned())
    }

    /// Waits until the guest printed leases for `n` distinct interfaces; returns them in interface order.
    pub fn wait_leases(&self, n: usize, bound: Duration) -> Result<Vec<Lease>, VmError> {
        self.wait_for(&format!("{n} DHCP lease(s)"), bound, |lines| {
            let mut leases: Vec<Lease> = Vec::new();
            for l in lines.iter().filter_map(Lease::parse) {
                if !leases.iter().any(|x| x.iface == l.iface) {
                    leases.push(l);
                }
            }
            leases.sort_by(|a, b| a.iface.cmp(&b.iface));
            (leases.len() >= n).then_some(leases)
        })
    }

    fn wait_for<T>(&self, what: &str, bound: Duration, f: impl Fn(&[ConsoleLine]) -> Option<T>) -> Result<T, VmError> {
        let deadline = Instant::now() + bound;
        loop {
            {
                let (m, cv) = &*self.console;
                let g = m.lock().unwrap();
                if let Some(t) = f(&g) {
                    return Ok(t);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    drop(g);
                    return Err(VmError::Timeout { what: format!("{what} from {}", self.name), after: bound, context: self.context() });
                }
                // Woken by every new line; the bound also covers a qemu that died silently.
                let _ = cv.wait_timeout(g, left.min(Duration::from_millis(500))).unwrap();
            }
            self.check_alive()?;
        }
    }

    /// A new QMP connection to this VM.
    pub fn qmp(&self) -> Result<Qmp, VmError> {
        Qmp::connect(&self.qmp_path, Duration::from_secs(30))
    }

    /// Live-migrates this VM to `target` (started with `incoming`) over its unix socket: max bandwidth
    /// 10 GiB/s, downtime limit 100 ms, `query-migrate` polled every 5 ms (within 120 s). `on_completed`
    /// runs as soon as the source reports a final status (a CMS reacting to it); then the target's
    /// RESUME event is awaited (within 30 s) when the migration completed.
    pub fn migrate_to(&self, target: &Vm, on_completed: impl FnOnce()) -> Result<MigrationReport, VmError> {
        let mut dst = target.qmp()?;
        let mut src = self.qmp()?;
        src.execute("migrate-set-parameters", Some(json!({"max-bandwidth": 10u64 << 30, "downtime-limit": 100})))?;
        let t_start_ms = epoch_ms();
        src.execute("migrate", Some(json!({"uri": target.incoming_uri()})))?;
        let bound = Duration::from_secs(120);
        let deadline = Instant::now() + bound;
        let st = loop {
            let st = src.execute("query-migrate", None)?;
            let s = st["status"].as_str().unwrap_or("");
            if matches!(s, "completed" | "failed" | "cancelled") {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = src.execute("migrate_cancel", None);
                return Err(VmError::Timeout {
                    what: format!("migration {} -> {} ({st})", self.name, target.name),
                    after: bound,
                    context: self.context(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let t_completed_ms = epoch_ms();
        on_completed();
        let status = st["status"].as_str().unwrap_or("").to_string();
        let t_dst_resume_ms = if status == "completed" {
            let ev = dst.wait_event("RESUME", Duration::from_secs(30))?;
            event_ms(&ev)
        } else {
            None
        };
        let report = MigrationReport {
            t_start_ms,
            t_completed_ms,
            t_dst_resume_ms,
            total_ms: st["total-time"].as_u64().unwrap_or(0),
            downtime_ms: st["downtime"].as_u64().unwrap_or(0),
            status,
        };
        tracing::info!(src = %self.name, dst = %target.name, ?report, "migration finished");
        Ok(report)
    }

    /// qemu's resident set size in kB (0 if gone).
    pub fn rss_kb(&self) -> u64 {
        self.pid()
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.split_whitespace().next()?.parse().ok())))
            .unwrap_or(0)
    }

    /// qemu's CPU time (user + system) in ms (0 if gone).
    pub fn cpu_ms(&self) -> u64 {
        let Some(stat) = self.pid().and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok()) else { return 0 };
        // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        ticks * 1000 / hz
    }

    /// Stops qemu: SIGTERM to the pid in its pid file (only if that process's command line names this
    /// VM's state dir), SIGKILL after 5 s; reaps it and the console reader.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Some(pid) = self.pid() {
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&*self.state_dir.to_string_lossy()))
                .unwrap_or(false);
            if ours {
                // SAFETY: kill(2) on the pid our pid file names, checked above to be our qemu.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(5);
                while Path::new(&format!("/proc/{pid}")).exists() && !self.reaped() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if !self.reaped() && Path::new(&format!("/proc/{pid}")).exists() {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if let Some(mut c) = self.child.get_mut().unwrap().take() {
            if self.pid().is_none() {
                // No pid file (qemu died or never got that far): our own child, by its handle.
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let _ = std::fs::remove_file(&self.pidfile);
        tracing::info!(vm = %self.name, "stopped qemu");
    }

    fn reaped(&mut self) -> bool {
        match self.child.get_mut().unwrap().as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            None => true,
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_lines_parse() {
        let l = ConsoleLine { ms: 7, text: "VMPROBE lease iface=eth0 ip=10.77.1.5 mask=24 router=10.77.1.1 mtu=1400 uptime=4.2\r".into() };
        let got = Lease::parse(&ConsoleLine { text: l.text.trim_end().into(), ..l }).unwrap();
        assert_eq!(got.iface, "eth0");
        assert_eq!(got.ip, Ipv4Addr::new(10, 77, 1, 5));
        assert_eq!(got.prefix, 24);
        assert_eq!(got.router, Some(Ipv4Addr::new(10, 77, 1, 1)));
        assert_eq!(got.mtu, Some(1400));
        let no_router = ConsoleLine { ms: 1, text: "[ 3.1] VMPROBE lease iface=eth1 ip=10.0.0.9 mask=16 router= mtu= uptime=1".into() };
        let got = Lease::parse(&no_router).unwrap();
        assert_eq!((got.router, got.mtu, got.prefix), (None, None, 16));
        assert!(Lease::parse(&ConsoleLine { ms: 0, text: "VMPROBE ready".into() }).is_none());
    }
}
