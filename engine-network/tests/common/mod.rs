//! A hermetic lab: a "host" network namespace of the test's own (the
//! driver's host side), containers as further namespaces, an "outside"
//! namespace behind a veth. Everything is under a temp dir and goes when
//! the lab drops, panic or not: unmounting the namespace files destroys
//! every link, rule and sysctl made in them. Traffic goes only to
//! addresses of these namespaces.

#![allow(dead_code)]

use engine_core::network::NetworkDriver;
use engine_network::{BridgeDriver, Netns, NetnsFile};
use futures::TryStreamExt;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

/// The host's address on the link to the outside namespace.
pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 251, 0, 1);
/// The outside namespace's address.
pub const OUTSIDE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 251, 0, 2);
/// The host's IPv6 address on the link to the outside namespace.
pub const HOST_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd51, 0, 0, 0, 0, 0, 0, 1);
/// The outside namespace's IPv6 address.
pub const OUTSIDE_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd51, 0, 0, 0, 0, 0, 0, 2);

/// Add `ip`/64 to link `index`, usable at once (no duplicate address detection).
async fn add_v6(h: &rtnetlink::Handle, index: u32, ip: Ipv6Addr) {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
    let mut req = h.address().add(index, IpAddr::V6(ip), 64);
    req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    req.execute().await.unwrap();
}

/// Time a connection that must work may take.
pub const OK_TIMEOUT: Duration = Duration::from_secs(10);
/// Time after which a connection that must fail is given up.
pub const FAIL_TIMEOUT: Duration = Duration::from_millis(1500);

pub struct Lab {
    // Dropped in this order: driver, namespaces, then the directory.
    pub driver: Option<BridgeDriver>,
    pub host: NetnsFile,
    pub outside: NetnsFile,
    pub containers: Vec<NetnsFile>,
    pub state: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub async fn new() -> Lab {
        let dir = tempfile::Builder::new().prefix("engine-net-test").tempdir().unwrap();
        let host = NetnsFile::create(&dir.path().join("host")).await.unwrap();
        let outside = NetnsFile::create(&dir.path().join("outside")).await.unwrap();
        // host <-> outside: a veth, 10.251.0.1/24 on the host side.
        let h = host.open().unwrap().netlink().await.unwrap();
        h.link().add(rtnetlink::LinkVeth::new("to-out", "from-host").build()).execute().await.unwrap();
        let out_ns = outside.open().unwrap();
        let idx = |h: rtnetlink::Handle, n: &'static str| async move {
            h.link().get().match_name(n).execute().try_next().await.unwrap().unwrap().header.index
        };
        let peer = idx(h.clone(), "from-host").await;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&out_ns));
        h.link().set(rtnetlink::LinkUnspec::new_with_index(peer).setns_by_fd(fd).build()).execute().await.unwrap();
        let hi = idx(h.clone(), "to-out").await;
        h.address().add(hi, IpAddr::V4(HOST_ADDR), 24).execute().await.unwrap();
        add_v6(&h, hi, HOST_ADDR6).await;
        h.link().set(rtnetlink::LinkUnspec::new_with_index(hi).up().build()).execute().await.unwrap();
        let o = out_ns.netlink().await.unwrap();
        let oi = idx(o.clone(), "from-host").await;
        o.address().add(oi, IpAddr::V4(OUTSIDE_ADDR), 24).execute().await.unwrap();
        add_v6(&o, oi, OUTSIDE_ADDR6).await;
        o.link().set(rtnetlink::LinkUnspec::new_with_index(oi).up().build()).execute().await.unwrap();
        let state = dir.path().join("state");
        let mut lab = Lab { driver: None, host, outside, containers: Vec::new(), state, dir };
        lab.driver = Some(lab.open_driver().await);
        lab
    }

    pub async fn open_driver(&self) -> BridgeDriver {
        BridgeDriver::builder(&self.state)
            .host_netns(self.host.path())
            .resolv_conf(self.dir.path().join("resolv.conf"))
            .open()
            .await
            .unwrap()
    }

    pub fn driver(&self) -> &BridgeDriver {
        self.driver.as_ref().unwrap()
    }

    /// A container's namespace (a file, as the manager makes it).
    pub async fn container(&mut self, name: &str) -> (PathBuf, Netns) {
        let f = NetnsFile::create(&self.dir.path().join(format!("c-{name}"))).await.unwrap();
        let p = f.path().to_owned();
        let ns = f.open().unwrap();
        self.containers.push(f);
        (p, ns)
    }

    pub fn host_ns(&self) -> Netns {
        self.host.open().unwrap()
    }
    pub fn outside_ns(&self) -> Netns {
        self.outside.open().unwrap()
    }

    /// What the driver may leave in the host: links, the ruleset, records.
    pub async fn snapshot(&self) -> Snapshot {
        let h = self.host_ns().netlink().await.unwrap();
        let mut links = Vec::new();
        let mut s = h.link().get().execute();
        while let Some(m) = s.try_next().await.unwrap() {
            for a in m.attributes {
                if let rtnetlink::packet_route::link::LinkAttribute::IfName(n) = a {
                    links.push(n);
                }
            }
        }
        links.sort();
        let rules = nft_ruleset(&self.host_ns()).await;
        let mut records = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.state.join("networks")) {
            for e in rd.flatten() {
                records
                    .push((e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()));
            }
        }
        records.sort();
        let mut networks = self.driver().list_networks().await.unwrap();
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        let networks = serde_json::to_string(&networks).unwrap();
        Snapshot { links, rules, records, networks }
    }
}

#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub links: Vec<String>,
    pub rules: String,
    pub records: Vec<(String, String)>,
    pub networks: String,
}

pub async fn nft_ruleset(ns: &Netns) -> String {
    ns.run(|| {
        let out = std::process::Command::new("nft").args(["list", "ruleset"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout).unwrap())
    })
    .await
    .unwrap()
}

/// A TCP server in `ns` on `port` answering each connection with
/// "<name> <peer ip>\n"; stops when dropped.
pub struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn serve_tcp(ns: &Netns, port: u16, name: &str) -> Server {
    serve_tcp_on(ns, SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port), name).await
}

/// [`serve_tcp`] on a given address (`[::]:port` for IPv6).
pub async fn serve_tcp_on(ns: &Netns, addr: SocketAddr, name: &str) -> Server {
    let l = ns
        .run(move || {
            let l = std::net::TcpListener::bind(addr).unwrap();
            l.set_nonblocking(true).unwrap();
            Ok(l)
        })
        .await
        .unwrap();
    let l = tokio::net::TcpListener::from_std(l).unwrap();
    let name = name.to_string();
    Server(tokio::spawn(async move {
        // Bounded: a test makes far fewer connections.
        for _ in 0..256 {
            let Ok((mut s, peer)) = l.accept().await else { return };
            let line = format!("{name} {}\n", peer.ip());
            let _ = tokio::io::AsyncWriteExt::write_all(&mut s, line.as_bytes()).await;
        }
    }))
}

/// A UDP server in `ns` on `port` answering each datagram with "<name> <peer ip>".
pub async fn serve_udp(ns: &Netns, port: u16, name: &str) -> Server {
    let s = ns
        .run(move || {
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
            s.set_nonblocking(true).unwrap();
            Ok(s)
        })
        .await
        .unwrap();
    let s = tokio::net::UdpSocket::from_std(s).unwrap();
    let name = name.to_string();
    Server(tokio::spawn(async move {
        let mut buf = [0u8; 64];
        for _ in 0..256 {
            let Ok((_, peer)) = s.recv_from(&mut buf).await else { return };
            let _ = s.send_to(format!("{name} {}", peer.ip()).as_bytes(), peer).await;
        }
    }))
}

/// Connect from `ns` to `addr` and read the server's line.
pub async fn tcp_get(ns: &Netns, addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    ns.run(move || {
        let r = (|| {
            let mut s = TcpStream::connect_timeout(&addr, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            let _ = s.flush();
            Ok(out.trim().to_string())
        })();
        Ok(r)
    })
    .await
    .unwrap()
}

/// Send one datagram from `ns` to `addr` and read the answer.
pub async fn udp_get(ns: &Netns, addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    ns.run(move || {
        let r = (|| {
            let any: IpAddr = if addr.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
            let s = UdpSocket::bind((any, 0))?;
            s.set_read_timeout(Some(timeout))?;
            s.send_to(b"hi", addr)?;
            let mut buf = [0u8; 64];
            let n = s.recv(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        })();
        Ok(r)
    })
    .await
    .unwrap()
}

pub fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}
