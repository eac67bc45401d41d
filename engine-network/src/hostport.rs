//! Host ports held while published: a socket bound (not listening) on
//! each, in the host namespace, so a port in use is a conflict at attach
//! and no host process takes a published port. Shared by the drivers.
//!
//! IPv6, as docker does it: a port published on every address (`0.0.0.0`)
//! is also published on `::` when the host has IPv6, and a binding may name
//! an IPv6 host address (`-p [::1]:8080:80`). IPv6 host addresses are
//! served by a userland proxy in the driver (docker-proxy's role; tcp, and
//! udp with one flow per client) to the container's IPv4 address: NAT cannot take `::1` out of the host,
//! nor turn IPv6 into IPv4. On a dual-stack network the rules also DNAT
//! the host's other IPv6 addresses to the container's IPv6 address
//! (see `nft`), before the proxy sees them.

use crate::netns::Netns;
use engine_core::network::{HostPorts, PortBinding, Protocol, PublishedPort};
use engine_core::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// A published host port: protocol, host address, port.
pub(crate) type PortKey = (Protocol, IpAddr, u16);

/// A published host port while it is held: its socket, and for an IPv6
/// host address the proxy serving it (stopped, with its connections, on
/// drop).
pub(crate) struct Held {
    _fd: Option<OwnedFd>,
    proxy: Option<tokio::task::AbortHandle>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(p) = &self.proxy {
            p.abort();
        }
    }
}

/// True when the host namespace (the calling thread's) has IPv6: a socket
/// binds on `::1`.
fn host_has_ipv6() -> bool {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrIn6};
    let Ok(fd) = socket(AddressFamily::Inet6, SockType::Stream, SockFlag::SOCK_CLOEXEC, None) else { return false };
    let a = std::net::SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0);
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(a)).is_ok()
}

/// Bind (not listen) a socket on each binding's host port in `host`: the
/// port is free for us, and stays ours while the socket is held. Host
/// port "any" takes a free port from the kernel; a range, its first free
/// port. A binding on every address also takes the same port on `::` when
/// the host has IPv6 (tcp; a listening socket, served by [`activate`]).
/// `published` are the ports already published (by any endpoint): a
/// [`Error::Conflict`] naming the port when one is wanted again.
pub(crate) async fn reserve(
    host: &Netns,
    published: Vec<PortKey>,
    bindings: &[PortBinding],
) -> Result<Vec<(PublishedPort, OwnedFd)>> {
    for b in bindings {
        if b.container_port == 0 {
            return Err(Error::invalid("container port", "0"));
        }
    }
    let bindings = bindings.to_vec();
    host.run(move || {
        let v6 = host_has_ipv6();
        let mut out: Vec<(PublishedPort, OwnedFd)> = Vec::new();
        for b in &bindings {
            let ip = b.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            // Also `::` on the same port.
            let dual = ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) && v6 && b.protocol == Protocol::Tcp;
            let candidates: Vec<u16> = match b.host_ports {
                // A kernel-chosen port whose `::` twin is taken: another.
                HostPorts::Any => vec![0; 16],
                HostPorts::Range(a, z) => (a..=z).collect(),
            };
            let clash = |port: u16, ip: IpAddr, mine: &[(PublishedPort, OwnedFd)]| {
                published.iter().copied().chain(mine.iter().map(|(p, _)| (p.protocol, p.host_ip, p.host_port))).any(
                    |(pr, hip, hp)| {
                        pr == b.protocol
                            && hp == port
                            && hip.is_ipv6() == ip.is_ipv6()
                            && (hip == ip || hip.is_unspecified() || ip.is_unspecified())
                    },
                )
            };
            let mut last_err = None;
            let mut done = false;
            for port in candidates {
                if port != 0 && clash(port, ip, &out) {
                    last_err = Some(format!("host port {port}/{} is already published", b.protocol));
                    continue;
                }
                let first = match hold((b.protocol, ip, port)) {
                    Ok(fd) => fd,
                    Err(e) => {
                        last_err = Some(bind_error(e, ip, port, b.protocol)?);
                        continue;
                    }
                };
                let got = bound_port(&first)?;
                let pp = |host_ip| PublishedPort {
                    protocol: b.protocol,
                    container_port: b.container_port,
                    host_ip,
                    host_port: got,
                };
                if dual {
                    let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
                    if clash(got, any6, &out) {
                        last_err = Some(format!("host port [::]:{got}/{} is already published", b.protocol));
                        continue;
                    }
                    match hold((b.protocol, any6, got)) {
                        Ok(fd6) => {
                            out.push((pp(ip), first));
                            out.push((pp(any6), fd6));
                        }
                        Err(e) => {
                            last_err = Some(bind_error(e, any6, got, b.protocol)?);
                            continue;
                        }
                    }
                } else {
                    out.push((pp(ip), first));
                }
                done = true;
                break;
            }
            if !done {
                return Err(Error::conflict(
                    "port",
                    format!("{}/{}", b.container_port, b.protocol),
                    last_err.unwrap_or_else(|| "no free host port".into()),
                ));
            }
        }
        Ok(out)
    })
    .await
}

/// A failed bind: the reason to try the next port (in use), or the error.
fn bind_error(e: nix::errno::Errno, ip: IpAddr, port: u16, proto: Protocol) -> Result<String> {
    let at = SocketAddr::new(ip, port);
    match e {
        nix::errno::Errno::EADDRINUSE => Ok(format!("host port {at}/{proto} is already in use")),
        nix::errno::Errno::EADDRNOTAVAIL => {
            Err(Error::invalid(format!("host address {ip}"), "not an address of this host"))
        }
        e => Err(Error::io(format!("bind host port {at}"), e.into())),
    }
}

/// Hold `wanted` again (a new driver on the same state): the ports that
/// can be bound, silently skipping the others; `to` is where each port's
/// container answers (for the IPv6 proxy).
pub(crate) async fn hold_again(
    host: &Netns,
    wanted: Vec<(PublishedPort, Option<Ipv4Addr>)>,
) -> Result<Vec<(PortKey, Held)>> {
    let got = host
        .run(move || {
            Ok(wanted
                .into_iter()
                .filter_map(|(p, to)| hold((p.protocol, p.host_ip, p.host_port)).ok().map(|fd| (p, to, fd)))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(got.into_iter().map(|(p, to, fd)| activate(host, &p, fd, to)).collect())
}

/// Put a reserved port to work once its container's address is known: an
/// IPv6 host address gets its proxy to `container`'s IPv4 address; the
/// others are only held (the rules DNAT them).
pub(crate) fn activate(host: &Netns, p: &PublishedPort, fd: OwnedFd, container: Option<Ipv4Addr>) -> (PortKey, Held) {
    let key = (p.protocol, p.host_ip, p.host_port);
    (key, activate_key(host, key, p.container_port, fd, container))
}

fn activate_key(host: &Netns, key: PortKey, container_port: u16, fd: OwnedFd, container: Option<Ipv4Addr>) -> Held {
    let (proto, ip, _) = key;
    let (Some(cip), true) = (container, ip.is_ipv6()) else {
        return Held { _fd: Some(fd), proxy: None };
    };
    let to = SocketAddr::new(IpAddr::V4(cip), container_port);
    if proto == Protocol::Udp {
        let sock = std::net::UdpSocket::from(fd);
        return match sock.set_nonblocking(true).and_then(|_| tokio::net::UdpSocket::from_std(sock)) {
            Ok(s) => {
                let task = tokio::spawn(serve_udp(host.clone(), s, to, key));
                Held { _fd: None, proxy: Some(task.abort_handle()) }
            }
            Err(e) => {
                tracing::warn!(?key, "IPv6 udp proxy not started: {e}");
                Held { _fd: None, proxy: None }
            }
        };
    }
    let listener = std::net::TcpListener::from(fd);
    let proxy = match listener.set_nonblocking(true).and_then(|_| tokio::net::TcpListener::from_std(listener)) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(?key, "IPv6 proxy not started: {e}");
            return Held { _fd: None, proxy: None };
        }
    };
    let task = tokio::spawn(serve(host.clone(), proxy, to, key));
    Held { _fd: None, proxy: Some(task.abort_handle()) }
}

/// Accept on `listener` and splice each connection to `to`: docker-proxy's
/// job for IPv6 host addresses. Connections end with the task.
async fn serve(host: Netns, listener: tokio::net::TcpListener, to: SocketAddr, key: PortKey) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((mut inbound, _)) => {
                    let host = host.clone();
                    conns.spawn(async move {
                        match connect_in(&host, to).await {
                            Ok(mut out) => {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            }
                            Err(e) => tracing::debug!(%to, "IPv6 proxy: connect: {e}"),
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors or the like: pause, not spin.
                    tracing::warn!(?key, "IPv6 proxy: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// How long a udp flow through the IPv6 proxy lives without an answer
/// from the container (docker-proxy's 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);
/// The most udp flows the IPv6 proxy keeps per port; past it the oldest
/// goes.
const UDP_FLOWS: usize = 1024;

/// Relay datagrams between clients of `sock` and `to`: one socket per
/// client towards the container (so its answers find the client again),
/// dropped after [`UDP_IDLE`] without an answer. docker-proxy's udp job
/// for IPv6 host addresses.
async fn serve_udp(host: Netns, sock: tokio::net::UdpSocket, to: SocketAddr, key: PortKey) {
    use std::collections::HashMap;
    use std::sync::Arc;
    let sock = Arc::new(sock);
    let mut flows: HashMap<SocketAddr, (Arc<tokio::net::UdpSocket>, tokio::task::AbortHandle, std::time::Instant)> =
        HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(?key, "IPv6 udp proxy: receive: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while tasks.try_join_next().is_some() {}
        flows.retain(|_, f| !f.1.is_finished());
        let up = match flows.get(&client) {
            Some(f) => f.0.clone(),
            None => {
                if flows.len() >= UDP_FLOWS {
                    if let Some(oldest) = flows.iter().min_by_key(|f| (f.1).2).map(|f| *f.0) {
                        if let Some(f) = flows.remove(&oldest) {
                            f.1.abort();
                        }
                    }
                }
                let up = match udp_in(&host, to).await {
                    Ok(u) => Arc::new(u),
                    Err(e) => {
                        tracing::debug!(%to, "IPv6 udp proxy: {e}");
                        continue;
                    }
                };
                let (back, down) = (sock.clone(), up.clone());
                let h = tasks.spawn(async move {
                    let mut b = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, down.recv(&mut b)).await {
                        if back.send_to(&b[..n], client).await.is_err() {
                            break;
                        }
                    }
                });
                flows.insert(client, (up.clone(), h, std::time::Instant::now()));
                up
            }
        };
        if let Err(e) = up.send(&buf[..n]).await {
            tracing::debug!(%to, "IPv6 udp proxy: send: {e}");
        }
    }
}

/// A udp socket in the host namespace `host`, connected to `to`.
async fn udp_in(host: &Netns, to: SocketAddr) -> Result<tokio::net::UdpSocket> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let fd = host
        .run(|| {
            socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)
                .map_err(|e| Error::io("socket", e.into()))
        })
        .await?;
    let s = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd)).map_err(|e| Error::io("udp socket", e))?;
    s.connect(to).await.map_err(|e| Error::io(format!("connect to {to}"), e))?;
    Ok(s)
}

/// A TCP connection to `to` from the host namespace `host`.
async fn connect_in(host: &Netns, to: SocketAddr) -> Result<tokio::net::TcpStream> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let fd = host
        .run(|| {
            socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)
                .map_err(|e| Error::io("socket", e.into()))
        })
        .await?;
    let sock = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    match tokio::time::timeout(Duration::from_secs(10), sock.connect(to)).await {
        Ok(r) => r.map_err(|e| Error::io(format!("connect to {to}"), e)),
        Err(_) => Err(Error::unavailable(format!("container at {to}"), "connect timed out")),
    }
}

/// Bind a socket on `key`'s host port: not listening for IPv4 (the rules
/// DNAT its traffic), bound (IPv6 only; tcp listening) for IPv6, which the
/// proxy serves.
fn hold((proto, ip, port): PortKey) -> std::result::Result<OwnedFd, nix::errno::Errno> {
    use nix::sys::socket::{bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType};
    use nix::sys::socket::{SockaddrIn, SockaddrIn6};
    let ty = match proto {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    match ip {
        IpAddr::V4(ip) => {
            let fd = socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)?;
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(std::net::SocketAddrV4::new(ip, port)))?;
            Ok(fd)
        }
        IpAddr::V6(ip) => {
            let fd = socket(AddressFamily::Inet6, ty, SockFlag::SOCK_CLOEXEC, None)?;
            setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            if proto == Protocol::Tcp {
                setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            }
            let a = std::net::SocketAddrV6::new(ip, port, 0, 0);
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(a))?;
            if proto == Protocol::Tcp {
                listen(&fd, Backlog::new(128)?)?;
            }
            Ok(fd)
        }
    }
}

fn bound_port(fd: &OwnedFd) -> Result<u16> {
    let a: nix::sys::socket::SockaddrStorage = nix::sys::socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(fd))
        .map_err(|e| Error::io("getsockname", e.into()))?;
    a.as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| a.as_sockaddr_in6().map(|a| a.port()))
        .ok_or_else(|| Error::Other("getsockname: not an inet address".into()))
}
