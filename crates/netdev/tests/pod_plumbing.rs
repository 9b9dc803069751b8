//! The sequence a CNI ADD performs, end to end on the real kernel, then the CHECK-style readback,
//! then DEL. The "host" is a test netns, never the root one.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};

use netdev::{host_ifname, Handle, IpNet, MacAddr, Route, TempNetns};

#[test]
fn add_check_del_like_a_cni_plugin() {
    let host = TempNetns::new("ktt-host").unwrap();
    let pod = TempNetns::new("ktt-pod").unwrap();
    let hh = Handle::in_netns(&host).unwrap();
    let ph = Handle::in_netns(&pod).unwrap();

    let cid = format!("{:064x}", std::process::id());
    let host_if = host_ifname(&cid, "eth0");
    let mac: MacAddr = "0a:58:0a:f4:00:05".parse().unwrap();
    let pair = hh.veth(&host_if, "eth0").peer_netns(&pod).mtu(1400).peer_mac(mac).host_up().peer_up().create().unwrap();
    hh.disable_ipv6(&host_if).unwrap();
    ph.set_tx_checksum("eth0", false).unwrap();
    let addr: IpNet = "10.244.0.5/24".parse().unwrap();
    ph.add_address(pair.peer.index, addr).apply().unwrap();
    let gw: IpAddr = "10.244.0.1".parse().unwrap();
    ph.add_route(&Route::default_via(gw).dev(pair.peer.index)).unwrap();
    // The host side plays the gateway here.
    hh.add_address(pair.host.index, "10.244.0.1/24".parse().unwrap()).apply().unwrap();

    // CHECK: everything reads back as configured.
    let l = ph.link_by_name("eth0").unwrap().expect("pod interface");
    assert_eq!((l.mac, l.mtu, l.admin_up), (Some(mac), 1400, true));
    assert!(!ph.tx_checksum("eth0").unwrap());
    assert!(ph.addresses(Some(l.index)).unwrap().iter().any(|a| a.addr == addr));
    assert!(ph.routes().unwrap().iter().any(|r| r.is_default() && r.gateway == Some(gw) && r.oif == Some(l.index)));
    let h = hh.link_by_name(&host_if).unwrap().expect("host end");
    assert_eq!(h.peer_index, Some(l.index));
    assert_eq!(hh.ipv6_disabled(&host_if).unwrap(), Some(true));

    // TCP across the pair with TX checksum offload off on the pod side: 1 MiB echoes intact.
    let listener = pod.run(|| TcpListener::bind("10.244.0.5:0")).unwrap().unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let (mut s, _) = listener.accept()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        Ok(buf)
    });
    let payload: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sent = payload.clone();
    host.run(move || -> std::io::Result<()> {
        let dst = SocketAddr::new("10.244.0.5".parse().unwrap(), port);
        let mut c = TcpStream::connect_timeout(&dst, std::time::Duration::from_secs(3))?;
        c.write_all(&sent)?;
        Ok(())
    })
    .unwrap()
    .unwrap();
    assert_eq!(server.join().unwrap().unwrap(), payload);

    // DEL: deleting the host end removes the pod end; DEL again is a no-op.
    assert!(hh.delete_link(&host_if).unwrap());
    assert!(ph.link_by_name("eth0").unwrap().is_none());
    assert!(!hh.delete_link(&host_if).unwrap());
}

#[test]
fn rename_and_down() {
    let ns = TempNetns::new("ktt-ren").unwrap();
    let h = Handle::in_netns(&ns).unwrap();
    h.veth("tmp0", "tmp1").create().unwrap();
    h.set_link("tmp1").rename("eth5").apply().unwrap();
    assert!(h.link_by_name("tmp1").unwrap().is_none());
    let l = h.link_by_name("eth5").unwrap().unwrap();
    assert_eq!(h.link_by_name("tmp0").unwrap().unwrap().peer_index, Some(l.index));
    h.set_link("eth5").up().apply().unwrap();
    assert!(h.link_by_name("eth5").unwrap().unwrap().admin_up);
    h.set_link("eth5").down().apply().unwrap();
    assert!(!h.link_by_name("eth5").unwrap().unwrap().admin_up);
    // Both ends in one netns with the same name is refused before the kernel.
    assert!(h.veth("same0", "same0").create().is_err());
}
