//! Links, addresses and routes over rtnetlink.

use engine_core::network::IpPrefix;
use engine_core::{Error, Result};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};

/// An rtnetlink failure, with what was being done.
pub(crate) fn nl_err(what: impl std::fmt::Display, e: rtnetlink::Error) -> Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => Error::io(what.to_string(), m.to_io()),
        e => Error::Other(format!("{what}: {e}")),
    }
}

fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().raw_os_error(),
        _ => None,
    }
}

/// The index of link `name`, or `None` when there is none.
pub(crate) async fn index(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl_err(format_args!("look up link {name}"), e)),
    }
}

async fn must_index(h: &Handle, name: &str) -> Result<u32> {
    index(h, name).await?.ok_or_else(|| Error::Other(format!("link {name} vanished")))
}

/// The names of every link.
pub(crate) async fn names(h: &Handle) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut s = h.link().get().execute();
    while let Some(m) = s.try_next().await.map_err(|e| nl_err("list links", e))? {
        for a in m.attributes {
            if let LinkAttribute::IfName(n) = a {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// Bring link `name` up.
pub(crate) async fn set_up(h: &Handle, name: &str) -> Result<()> {
    let i = must_index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).up().build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("set link {name} up"), e))
}

/// Delete link `name`; a link already gone is not an error.
pub(crate) async fn delete(h: &Handle, name: &str) -> Result<()> {
    let Some(i) = index(h, name).await? else { return Ok(()) };
    match h.link().del(i).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(nl_err(format_args!("delete link {name}"), e)),
    }
}

/// Add `addr` to link `name` (an address already there is fine).
pub(crate) async fn add_address(h: &Handle, name: &str, addr: IpPrefix) -> Result<()> {
    let i = must_index(h, name).await?;
    let mut req = h.address().add(i, addr.addr(), addr.prefix());
    if addr.addr().is_ipv6() {
        // Usable at once: no duplicate address detection on addresses we
        // allocated ourselves.
        req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(nl_err(format_args!("add address {addr} to {name}"), e)),
    }
}

/// Create bridge `name` with `gateway` as its address, up. Returns whether
/// it was created (false: it existed).
pub(crate) async fn ensure_bridge(h: &Handle, name: &str, gateway: IpPrefix) -> Result<bool> {
    let created = if index(h, name).await?.is_none() {
        h.link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(|e| nl_err(format_args!("create bridge {name}"), e))?;
        true
    } else {
        false
    };
    add_address(h, name, gateway).await?;
    set_up(h, name).await?;
    Ok(created)
}

/// Create the veth pair `host`/`peer`, plug `host` into `bridge` (hairpin
/// on, up), give `peer` the MAC `mac` and move it into the namespace `ns`.
pub(crate) async fn create_veth(
    h: &Handle,
    host: &str,
    peer: &str,
    bridge: &str,
    mac: [u8; 6],
    ns: &impl AsFd,
) -> Result<()> {
    h.link()
        .add(LinkVeth::new(host, peer).build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("create veth pair {host}/{peer}"), e))?;
    let br = must_index(h, bridge).await?;
    let hi = must_index(h, host).await?;
    h.link()
        .set(LinkUnspec::new_with_index(hi).controller(br).up().build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("plug {host} into {bridge}"), e))?;
    h.link()
        .set_port(LinkBridgePort::new(hi).hairpin(true).build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("hairpin mode on {host}"), e))?;
    let pi = must_index(h, peer).await?;
    h.link()
        .set(LinkUnspec::new_with_index(pi).address(mac.to_vec()).build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("set the MAC of {peer}"), e))?;
    h.link()
        .set(LinkUnspec::new_with_index(pi).setns_by_fd(ns.as_fd().as_raw_fd()).build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("move {peer} into the container's namespace"), e))
}

/// Inside a container's namespace: rename `peer` to `ifname`, address it,
/// bring it and loopback up, and route everything via `gateway`.
pub(crate) async fn configure_container(
    h: &Handle,
    peer: &str,
    ifname: &str,
    addr: IpPrefix,
    gateway: Option<Ipv4Addr>,
    v6: Option<(IpPrefix, Option<Ipv6Addr>)>,
) -> Result<()> {
    let i = must_index(h, peer).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).name(ifname).build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("rename {peer} to {ifname} in the container"), e))?;
    add_address(h, ifname, addr).await?;
    if let Some((a6, _)) = v6 {
        add_address(h, ifname, a6).await?;
    }
    set_up(h, ifname).await?;
    set_up(h, "lo").await?;
    // Attached to another network first: that one keeps the default
    // route (docker's first-network-wins), this one its subnet.
    default_routes(h, ifname, gateway, v6.and_then(|(_, g)| g)).await
}

/// Route everything via `gateway` (and `gateway6`) on `ifname`, unless the
/// namespace already has a default route of that family.
pub(crate) async fn default_routes(
    h: &Handle,
    ifname: &str,
    gateway: Option<Ipv4Addr>,
    gateway6: Option<Ipv6Addr>,
) -> Result<()> {
    let i = must_index(h, ifname).await?;
    if let Some(gw) = gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(i).build();
        match h.route().add(route).execute().await {
            Ok(()) => {}
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl_err(format_args!("default route via {gw} in the container"), e)),
        }
    }
    if let Some(gw) = gateway6 {
        let route = RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw).output_interface(i).build();
        match h.route().add(route).execute().await {
            Ok(()) => {}
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl_err(format_args!("default route via {gw} in the container"), e)),
        }
    }
    Ok(())
}

/// The IPv4 destinations routed in the namespace (for picking a free
/// subnet), default routes excluded.
pub(crate) async fn ipv4_routes(h: &Handle) -> Result<Vec<IpPrefix>> {
    let mut out = Vec::new();
    let mut s = h.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
    while let Some(m) = s.try_next().await.map_err(|e| nl_err("list routes", e))? {
        let len = m.header.destination_prefix_length;
        if len == 0 {
            continue;
        }
        for a in &m.attributes {
            if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a {
                if let Ok(p) = IpPrefix::new(IpAddr::V4(*ip), len) {
                    out.push(p.network());
                }
            }
        }
    }
    Ok(out)
}

/// Create a veth pair `name`/`peer` in the namespace of `h` (a stand-in
/// interface: the kernel may have no dummy module).
pub(crate) async fn add_local_veth(h: &Handle, name: &str, peer: &str) -> Result<()> {
    h.link()
        .add(rtnetlink::LinkVeth::new(name, peer).build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("create veth pair {name}"), e))
}

/// The MAC address of link `name`, if it has one of six octets.
pub(crate) async fn mac(h: &Handle, name: &str) -> Result<Option<[u8; 6]>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    let m = s.try_next().await.map_err(|e| nl_err(format_args!("look up link {name}"), e))?;
    Ok(m.and_then(|m| {
        m.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::Address(v) if v.len() == 6 => Some([v[0], v[1], v[2], v[3], v[4], v[5]]),
            _ => None,
        })
    }))
}

/// Move link `name` into the namespace `ns`, renamed `new_name` there
/// (the rename happens before the move, so the name must be free in both).
pub(crate) async fn move_to(h: &Handle, name: &str, new_name: &str, ns: &impl AsFd) -> Result<()> {
    let i = must_index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).down().build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("set link {name} down"), e))?;
    if name != new_name {
        h.link()
            .set(LinkUnspec::new_with_index(i).name(new_name).build())
            .execute()
            .await
            .map_err(|e| nl_err(format_args!("rename {name} to {new_name}"), e))?;
    }
    h.link()
        .set(LinkUnspec::new_with_index(i).setns_by_fd(ns.as_fd().as_raw_fd()).build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("move {new_name} into another namespace"), e))
}

/// Give link `name` the MAC `mac`.
pub(crate) async fn set_mac(h: &Handle, name: &str, mac: [u8; 6]) -> Result<()> {
    let i = must_index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).address(mac.to_vec()).build())
        .execute()
        .await
        .map_err(|e| nl_err(format_args!("set the MAC of {name}"), e))
}

/// Route `dest` on `ifname`, through `via` when given (else on the link).
pub(crate) async fn add_route(h: &Handle, ifname: &str, dest: IpPrefix, via: Option<IpAddr>) -> Result<()> {
    let i = must_index(h, ifname).await?;
    let route = match (dest.addr(), via) {
        (IpAddr::V4(d), via) => {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(d, dest.prefix()).output_interface(i);
            match via {
                Some(IpAddr::V4(g)) => b = b.gateway(g),
                Some(IpAddr::V6(g)) => {
                    return Err(Error::invalid(format!("route to {dest}"), format!("next hop {g} is not IPv4")))
                }
                None => b = b.scope(rtnetlink::packet_route::route::RouteScope::Link),
            }
            b.build()
        }
        (IpAddr::V6(d), via) => {
            let mut b = RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(d, dest.prefix()).output_interface(i);
            match via {
                Some(IpAddr::V6(g)) => b = b.gateway(g),
                Some(IpAddr::V4(g)) => {
                    return Err(Error::invalid(format!("route to {dest}"), format!("next hop {g} is not IPv6")))
                }
                None => {}
            }
            b.build()
        }
    };
    match h.route().add(route).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(nl_err(format_args!("route to {dest} on {ifname}"), e)),
    }
}
