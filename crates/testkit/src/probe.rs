//! Traffic probes between network namespaces, for tests that check what a policy lets through.
//!
//! Servers are sockets made inside a namespace ([`netdev::Netns::run`]) and served from ordinary
//! threads (a socket stays in the namespace it was made in) until [`Servers`] is dropped. A probe
//! answers whether traffic got through within its bound: TCP (connect, then the server's greeting),
//! UDP (a datagram echoed back; sent three times, ARP may take the first), ICMP (`ping` run in the
//! namespace by name). A denied probe costs its whole bound; run many at once with [`all`].

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a probe waits for an answer.
pub const BOUND: Duration = Duration::from_millis(1500);

/// TCP and UDP servers in one namespace: TCP answers `ok` and closes; UDP echoes.
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Servers {
    /// Listens on every address of `ns`, on each of `tcp` and `udp` ports.
    pub fn start(ns: &netdev::Netns, tcp: &[u16], udp: &[u16]) -> Servers {
        let (tcp, udp) = (tcp.to_vec(), udp.to_vec());
        let (listeners, sockets) = ns
            .run(move || {
                let l: Vec<TcpListener> = tcp.iter().map(|p| TcpListener::bind(("0.0.0.0", *p)).expect("bind TCP")).collect();
                let u: Vec<UdpSocket> = udp.iter().map(|p| UdpSocket::bind(("0.0.0.0", *p)).expect("bind UDP")).collect();
                (l, u)
            })
            .expect("enter the namespace");
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for l in listeners {
            l.set_nonblocking(true).expect("nonblocking");
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            let _ = s.set_nonblocking(false);
                            let _ = s.write_all(b"ok");
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }));
        }
        for u in sockets {
            u.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = u.recv_from(&mut buf) {
                        let _ = u.send_to(&buf[..n], from);
                    }
                }
            }));
        }
        Servers { stop, threads }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One check: from a namespace to `ip`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Tcp(u16),
    Udp(u16),
    Icmp,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Tcp(p) => write!(f, "tcp/{p}"),
            Probe::Udp(p) => write!(f, "udp/{p}"),
            Probe::Icmp => write!(f, "icmp"),
        }
    }
}

/// Whether `probe` from namespace `ns` (named `ns_name`, for `ping`) to `ip` got an answer
/// within [`BOUND`].
pub fn reaches(ns: &netdev::Netns, ns_name: &str, ip: IpAddr, probe: &Probe) -> bool {
    match probe {
        Probe::Tcp(port) => {
            let addr = SocketAddr::new(ip, *port);
            ns.run(move || {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, BOUND) else { return false };
                let _ = s.set_read_timeout(Some(BOUND));
                let mut buf = [0u8; 2];
                s.read_exact(&mut buf).is_ok() && &buf == b"ok"
            })
            .unwrap_or(false)
        }
        Probe::Udp(port) => {
            let addr = SocketAddr::new(ip, *port);
            ns.run(move || {
                let Ok(s) = UdpSocket::bind(("0.0.0.0", 0)) else { return false };
                let _ = s.set_read_timeout(Some(BOUND / 3));
                let mut buf = [0u8; 16];
                (0..3).any(|_| s.send_to(b"probe", addr).is_ok() && matches!(s.recv_from(&mut buf), Ok((5, from)) if from == addr))
            })
            .unwrap_or(false)
        }
        Probe::Icmp => std::process::Command::new("ip")
            .args(["netns", "exec", ns_name, "ping", "-c", "1", "-W", "1", &ip.to_string()])
            .output()
            .is_ok_and(|o| o.status.success()),
    }
}

/// Runs every `(label, check)` at once; the labels of the checks that returned false.
pub fn all(checks: Vec<(String, Box<dyn FnOnce() -> bool + Send + '_>)>) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = checks.into_iter().map(|(label, f)| (label, s.spawn(f))).collect();
        handles.into_iter().filter_map(|(label, h)| (!h.join().unwrap_or(false)).then_some(label)).collect()
    })
}
