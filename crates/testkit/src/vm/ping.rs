//! `ping -D -O -i 0.01` from inside a netns, and what its log says about an outage.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::VmError;

/// A running `ping` (every 10 ms, reply lines stamped with the epoch by `-D`, unanswered probes reported
/// by `-O`).
pub struct Pinger {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Pinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinger").field("pid", &self.child.as_ref().map(|c| c.id())).finish()
    }
}

impl Pinger {
    /// Starts pinging `dst` from inside `netns`.
    pub fn start(netns: &Path, dst: IpAddr) -> Result<Pinger, VmError> {
        let ns = std::fs::File::open(netns).map_err(|e| VmError::io(format!("open netns {}", netns.display()), e))?;
        let fd = ns.as_raw_fd();
        let mut cmd = Command::new("ping");
        cmd.args(["-D", "-O", "-n", "-i", "0.01", "-W", "1"]).arg(dst.to_string());
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        // SAFETY: setns(2) is async-signal-safe; `ns` stays open until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| VmError::io("spawn ping", e))?;
        drop(ns);
        let out = child.stdout.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                match l {
                    Ok(l) => l2.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        Ok(Pinger { child: Some(child), lines, reader: Some(reader) })
    }

    /// What ping printed so far.
    pub fn snapshot(&self) -> PingLog {
        PingLog::parse(&self.lines.lock().unwrap())
    }

    /// Stops ping with SIGINT (so it prints its summary) and returns the whole log.
    pub fn stop(mut self) -> PingLog {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) of our own child, by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !matches!(c.try_wait(), Ok(Some(_))) {
                if std::time::Instant::now() >= deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One echo reply.
#[derive(Debug, Clone, PartialEq)]
pub struct PingReply {
    /// `icmp_seq`.
    pub seq: u32,
    /// Arrival, epoch ms (from `-D`).
    pub at_ms: f64,
    /// Round trip, ms.
    pub rtt_ms: f64,
    /// A duplicate reply (`DUP!`).
    pub dup: bool,
}

impl PingReply {
    /// When the probe was sent (arrival minus round trip), epoch ms.
    pub fn sent_ms(&self) -> f64 {
        self.at_ms - self.rtt_ms
    }
}

/// The longest run of unanswered probes near a moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outage {
    /// Probes lost in every gap that touches the window.
    pub lost: usize,
    /// Send time of the last answered probe before the longest gap (epoch ms).
    pub from_ms: f64,
    /// Send time of the first answered probe after it.
    pub to_ms: f64,
    /// `to_ms - from_ms` (0 when nothing was lost).
    pub duration_ms: f64,
}

/// A parsed `ping -D -O` log.
#[derive(Debug, Clone, Default)]
pub struct PingLog {
    /// Every reply line, in order.
    pub replies: Vec<PingReply>,
    /// "N packets transmitted" from the summary, when ping has stopped.
    pub transmitted: Option<u32>,
    /// The raw lines.
    pub lines: Vec<String>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    line[at..].split(|c: char| c.is_whitespace()).next()
}

impl PingLog {
    /// Parses ping's output (reply lines by their fields, the summary by regex-like search: "+N duplicates"
    /// shifts the summary's columns).
    pub fn parse(lines: &[String]) -> PingLog {
        let mut log = PingLog { lines: lines.to_vec(), ..Default::default() };
        for l in lines {
            if l.contains("bytes from") {
                let ts = l.strip_prefix('[').and_then(|r| r.split(']').next()).and_then(|t| t.parse::<f64>().ok());
                let seq = field(l, "icmp_seq=").and_then(|s| s.parse().ok());
                let rtt = field(l, "time=").and_then(|s| s.parse::<f64>().ok());
                if let (Some(ts), Some(seq), Some(rtt)) = (ts, seq, rtt) {
                    log.replies.push(PingReply { seq, at_ms: ts * 1000.0, rtt_ms: rtt, dup: l.contains("DUP!") });
                }
            } else if let Some(i) = l.find(" packets transmitted") {
                log.transmitted = l[..i].trim().rsplit(' ').next().and_then(|n| n.parse().ok());
            }
        }
        log
    }

    /// Duplicate replies.
    pub fn dups(&self) -> usize {
        self.replies.iter().filter(|r| r.dup).count()
    }

    /// First replies (no duplicates), by sequence number.
    fn unique(&self) -> Vec<&PingReply> {
        let mut v: Vec<&PingReply> = self.replies.iter().filter(|r| !r.dup).collect();
        v.sort_by_key(|r| r.seq);
        v.dedup_by_key(|r| r.seq);
        v
    }

    /// Answered probes sent after `t_ms` (epoch ms).
    pub fn answered_after(&self, t_ms: u64) -> usize {
        self.unique().iter().filter(|r| r.sent_ms() > t_ms as f64).count()
    }

    /// Answered probes in all.
    pub fn answered(&self) -> usize {
        self.unique().len()
    }

    /// The longest gap between answered probes whose span touches `[t_ms - window, t_ms + window]`,
    /// and how many probes all such gaps lost.
    pub fn outage_around(&self, t_ms: u64, window: Duration) -> Outage {
        let (lo, hi) = (t_ms as f64 - window.as_millis() as f64, t_ms as f64 + window.as_millis() as f64);
        let u = self.unique();
        let mut out = Outage::default();
        for w in u.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b.seq <= a.seq + 1 || b.sent_ms() < lo || a.sent_ms() > hi {
                continue;
            }
            out.lost += (b.seq - a.seq - 1) as usize;
            let d = b.sent_ms() - a.sent_ms();
            if d > out.duration_ms {
                out.duration_ms = d;
                out.from_ms = a.sent_ms();
                out.to_ms = b.sent_ms();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies_dups_and_outage() {
        let raw = [
            "PING 10.0.0.5 (10.0.0.5) 56(84) bytes of data.",
            "[1000.000000] 64 bytes from 10.0.0.5: icmp_seq=1 ttl=64 time=1.00 ms",
            "[1000.011000] 64 bytes from 10.0.0.5: icmp_seq=2 ttl=64 time=1.00 ms",
            "[1000.030000] no answer yet for icmp_seq=3",
            "[1000.040000] no answer yet for icmp_seq=4",
            "[1000.061000] 64 bytes from 10.0.0.5: icmp_seq=5 ttl=64 time=1.00 ms",
            "[1000.062000] 64 bytes from 10.0.0.5: icmp_seq=5 ttl=64 time=2.00 ms (DUP!)",
            "[1000.071000] 64 bytes from 10.0.0.5: icmp_seq=6 ttl=64 time=1.00 ms",
            "",
            "--- 10.0.0.5 ping statistics ---",
            "6 packets transmitted, 4 received, +1 duplicates, 33.3333% packet loss, time 70ms",
        ];
        let log = PingLog::parse(&raw.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(log.replies.len(), 5);
        assert_eq!(log.dups(), 1);
        assert_eq!(log.answered(), 4);
        assert_eq!(log.transmitted, Some(6));
        let o = log.outage_around(1_000_030, Duration::from_millis(100));
        assert_eq!(o.lost, 2);
        assert!((o.duration_ms - 50.0).abs() < 0.01, "{o:?}");
        assert_eq!(log.outage_around(2_000_000, Duration::from_millis(100)), Outage::default());
        assert_eq!(log.answered_after(1_000_050), 2);
    }
}
