//! Host ports held while published: a socket bound (not listening) on
//! each, in the host namespace, so a port in use is a conflict at attach
//! and no host process takes a published port. Shared by the drivers.

use crate::netns::Netns;
use engine_core::network::{HostPorts, PortBinding, Protocol, PublishedPort};
use engine_core::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

/// A published host port: protocol, host address, port.
pub(crate) type PortKey = (Protocol, IpAddr, u16);

/// Bind (not listen) a socket on each binding's host port in `host`: the
/// port is free for us, and stays ours while the socket is held. Host
/// port "any" takes a free port from the kernel; a range, its first free
/// port. `published` are the ports already published (by any endpoint):
/// a [`Error::Conflict`] naming the port when one is wanted again.
pub(crate) async fn reserve(
    host: &Netns,
    published: Vec<PortKey>,
    bindings: &[PortBinding],
) -> Result<Vec<(PublishedPort, OwnedFd)>> {
    for b in bindings {
        if b.container_port == 0 {
            return Err(Error::invalid("container port", "0"));
        }
        if let Some(ip) = b.host_ip {
            if !ip.is_ipv4() {
                return Err(Error::Unsupported(format!("publishing on IPv6 host address {ip}")));
            }
        }
    }
    let bindings = bindings.to_vec();
    host.run(move || {
        let mut out: Vec<(PublishedPort, OwnedFd)> = Vec::new();
        for b in &bindings {
            let ip = b.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let candidates: Vec<u16> = match b.host_ports {
                HostPorts::Any => vec![0],
                HostPorts::Range(a, z) => (a..=z).collect(),
            };
            let clash = |port: u16, mine: &[(PublishedPort, OwnedFd)]| {
                published.iter().copied().chain(mine.iter().map(|(p, _)| (p.protocol, p.host_ip, p.host_port))).any(
                    |(pr, hip, hp)| {
                        pr == b.protocol && hp == port && (hip == ip || hip.is_unspecified() || ip.is_unspecified())
                    },
                )
            };
            let mut last_err = None;
            let mut done = false;
            for port in candidates {
                if port != 0 && clash(port, &out) {
                    last_err = Some(format!("host port {port}/{} is already published", b.protocol));
                    continue;
                }
                match hold((b.protocol, ip, port)) {
                    Ok(fd) => {
                        let got = bound_port(&fd)?;
                        out.push((
                            PublishedPort {
                                protocol: b.protocol,
                                container_port: b.container_port,
                                host_ip: ip,
                                host_port: got,
                            },
                            fd,
                        ));
                        done = true;
                        break;
                    }
                    Err(nix::errno::Errno::EADDRINUSE) => {
                        last_err = Some(format!("host port {ip}:{port}/{} is already in use", b.protocol))
                    }
                    Err(nix::errno::Errno::EADDRNOTAVAIL) => {
                        return Err(Error::invalid(format!("host address {ip}"), "not an address of this host"))
                    }
                    Err(e) => return Err(Error::io(format!("bind host port {ip}:{port}"), e.into())),
                }
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

/// Hold `wanted` again (a new driver on the same state): the ports that
/// can be bound, silently skipping the others.
pub(crate) async fn hold_again(host: &Netns, wanted: Vec<PortKey>) -> Result<Vec<(PortKey, OwnedFd)>> {
    host.run(move || Ok(wanted.into_iter().filter_map(|k| hold(k).ok().map(|fd| (k, fd))).collect::<Vec<_>>())).await
}

/// Bind a socket on `key`'s host port without listening.
fn hold((proto, ip, port): PortKey) -> std::result::Result<OwnedFd, nix::errno::Errno> {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let IpAddr::V4(ip) = ip else { return Err(nix::errno::Errno::EAFNOSUPPORT) };
    let ty = match proto {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let fd = socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(SocketAddrV4::new(ip, port)))?;
    Ok(fd)
}

fn bound_port(fd: &OwnedFd) -> Result<u16> {
    let a: nix::sys::socket::SockaddrIn = nix::sys::socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(fd))
        .map_err(|e| Error::io("getsockname", e.into()))?;
    Ok(a.port())
}
