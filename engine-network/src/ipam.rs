//! Address management: subnets checked, addresses allocated. Pure
//! functions over the driver's records; the records are the leases.

use engine_core::network::{EndpointInfo, IpPrefix, IpamConfig};
use engine_core::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Refuse what cannot be a bridge network's IPv4 subnet.
pub(crate) fn check_subnet(subnet: IpPrefix) -> Result<()> {
    let IpAddr::V4(_) = subnet.addr() else {
        return Err(Error::invalid(format!("subnet {subnet}"), "not an IPv4 subnet"));
    };
    if !subnet.is_network() {
        return Err(Error::invalid(
            format!("subnet {subnet}"),
            format!("host bits are set (did you mean {}?)", subnet.network()),
        ));
    }
    if subnet.prefix() > 30 || subnet.prefix() < 8 {
        return Err(Error::invalid(format!("subnet {subnet}"), "prefix length must be 8 to 30"));
    }
    Ok(())
}

/// Refuse what cannot be a bridge network's IPv6 subnet.
pub(crate) fn check_subnet6(subnet: IpPrefix) -> Result<Ipv6Addr> {
    let IpAddr::V6(_) = subnet.addr() else {
        return Err(Error::invalid(format!("subnet {subnet}"), "not an IPv6 subnet"));
    };
    if !subnet.is_network() {
        return Err(Error::invalid(
            format!("subnet {subnet}"),
            format!("host bits are set (did you mean {}?)", subnet.network()),
        ));
    }
    if subnet.prefix() < 48 || subnet.prefix() > 124 {
        return Err(Error::invalid(format!("subnet {subnet}"), "IPv6 prefix length must be 48 to 124"));
    }
    match subnet.nth(1) {
        Some(IpAddr::V6(a)) => Ok(a),
        _ => Err(Error::invalid(format!("subnet {subnet}"), "has no host address")),
    }
}

/// A lease for a new endpoint of a network whose endpoints are `taken`:
/// an IPv4 address of `v4` (subnet, gateway), `wanted` if free, and on a
/// dual-stack network (`v6`) an IPv6 one with the subnet's prefix.
pub(crate) fn lease<'a>(
    v4: (IpPrefix, Ipv4Addr),
    v6: Option<(IpPrefix, Ipv6Addr)>,
    taken: impl Iterator<Item = &'a EndpointInfo> + Clone,
    wanted: Option<Ipv4Addr>,
) -> Result<(Ipv4Addr, Option<IpPrefix>)> {
    let used: Vec<Ipv4Addr> = taken
        .clone()
        .filter_map(|e| match e.ipv4.map(|p| p.addr()) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        })
        .collect();
    let ip = allocate(v4.0, v4.1, &used, wanted)?;
    let ip6 = match v6 {
        Some((s6, g6)) => {
            let used6: Vec<Ipv6Addr> = taken
                .filter_map(|e| match e.ipv6.map(|p| p.addr()) {
                    Some(IpAddr::V6(a)) => Some(a),
                    _ => None,
                })
                .collect();
            Some(IpPrefix::new(IpAddr::V6(allocate6(s6, g6, &used6)?), s6.prefix())?)
        }
        None => None,
    };
    Ok((ip, ip6))
}

/// The IPv4 gateway of a configured subnet: the one given (a host address
/// of the subnet), or its first host address.
pub(crate) fn gateway4(c: &IpamConfig) -> Result<Ipv4Addr> {
    match c.gateway {
        None => default_gateway(c.subnet),
        Some(IpAddr::V4(g)) if is_host_address(c.subnet, g) => Ok(g),
        Some(g) => Err(Error::invalid(format!("gateway {g}"), format!("not a host address of subnet {}", c.subnet))),
    }
}

/// The IPv6 gateway of a configured subnet (checked): the one given, or
/// its first address after the subnet-router anycast one.
pub(crate) fn gateway6(c: &IpamConfig) -> Result<Ipv6Addr> {
    let first = check_subnet6(c.subnet)?;
    match c.gateway {
        None => Ok(first),
        Some(IpAddr::V6(g)) if c.subnet.contains(IpAddr::V6(g)) && Some(IpAddr::V6(g)) != c.subnet.nth(0) => Ok(g),
        Some(g) => Err(Error::invalid(format!("gateway {g}"), format!("not a host address of subnet {}", c.subnet))),
    }
}

/// An IPv6 address for a new endpoint: the lowest free one after the
/// gateway's neighbours (no broadcast in IPv6; the subnet-router anycast
/// address, the first, is skipped).
pub(crate) fn allocate6(subnet: IpPrefix, gateway: Ipv6Addr, used: &[Ipv6Addr]) -> Result<Ipv6Addr> {
    // Bounded: among used.len() + 2 candidates one is free.
    (1..(used.len() as u128 + 3).min(subnet.size()))
        .filter_map(|n| match subnet.nth(n) {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        })
        .find(|a| *a != gateway && !used.contains(a))
        .ok_or_else(|| Error::unavailable(format!("addresses of subnet {subnet}"), "all are in use"))
}

/// True for an address of `subnet` that is neither its network nor its
/// broadcast address.
pub(crate) fn is_host_address(subnet: IpPrefix, ip: Ipv4Addr) -> bool {
    let ip = IpAddr::V4(ip);
    subnet.contains(ip) && Some(ip) != subnet.nth(0) && Some(ip) != subnet.nth(subnet.size() - 1)
}

/// The subnet's first host address.
pub(crate) fn default_gateway(subnet: IpPrefix) -> Result<Ipv4Addr> {
    check_subnet(subnet)?;
    match subnet.nth(1) {
        Some(IpAddr::V4(a)) => Ok(a),
        _ => Err(Error::invalid(format!("subnet {subnet}"), "has no host address")),
    }
}

/// An address for a new endpoint: `wanted` if free, else the lowest free
/// host address that is not the gateway.
pub(crate) fn allocate(
    subnet: IpPrefix,
    gateway: Ipv4Addr,
    used: &[Ipv4Addr],
    wanted: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    if let Some(w) = wanted {
        if !is_host_address(subnet, w) {
            return Err(Error::invalid(format!("IPv4 address {w}"), format!("not a host address of subnet {subnet}")));
        }
        if w == gateway || used.contains(&w) {
            return Err(Error::conflict("network", subnet.to_string(), format!("address {w} is already in use")));
        }
        return Ok(w);
    }
    // Bounded: at most the subnet's size (a /8 at most, checked on create).
    (1..subnet.size() - 1)
        .filter_map(|n| match subnet.nth(n) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        })
        .find(|a| *a != gateway && !used.contains(a))
        .ok_or_else(|| Error::unavailable(format!("addresses of subnet {subnet}"), "all are in use"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation() {
        let s: IpPrefix = "10.99.0.0/29".parse().unwrap();
        let gw = default_gateway(s).unwrap();
        assert_eq!(gw, Ipv4Addr::new(10, 99, 0, 1));
        let mut used = vec![];
        for want in 2..=6 {
            let a = allocate(s, gw, &used, None).unwrap();
            assert_eq!(a, Ipv4Addr::new(10, 99, 0, want));
            used.push(a);
        }
        let e = allocate(s, gw, &used, None).unwrap_err();
        assert!(e.to_string().contains("all are in use"), "{e}");
        used.remove(1);
        assert_eq!(allocate(s, gw, &used, None).unwrap(), Ipv4Addr::new(10, 99, 0, 3));
        assert!(allocate(s, gw, &used, Some(Ipv4Addr::new(10, 99, 0, 2))).unwrap_err().is_conflict());
        assert!(allocate(s, gw, &used, Some(Ipv4Addr::new(10, 99, 0, 7))).unwrap_err().is_invalid_input());
        assert!(allocate(s, gw, &used, Some(Ipv4Addr::new(10, 98, 0, 7))).unwrap_err().is_invalid_input());
        assert!(check_subnet("10.0.0.1/24".parse().unwrap()).unwrap_err().is_invalid_input());
        assert!(check_subnet("10.0.0.0/31".parse().unwrap()).is_err());
        assert!(check_subnet("fd00::/64".parse().unwrap()).is_err());
        let s6: IpPrefix = "fd00:1::/64".parse().unwrap();
        let gw6 = check_subnet6(s6).unwrap();
        assert_eq!(gw6.to_string(), "fd00:1::1");
        let a = allocate6(s6, gw6, &[]).unwrap();
        assert_eq!(a.to_string(), "fd00:1::2");
        assert_eq!(allocate6(s6, gw6, &[a]).unwrap().to_string(), "fd00:1::3");
        assert!(check_subnet6("fd00:1::1/64".parse().unwrap()).is_err());
        assert!(check_subnet6("fd00::/32".parse().unwrap()).is_err());
    }
}
