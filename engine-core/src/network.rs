//! The network tier: networks, the endpoints that attach a container's
//! network namespace to them, and the ports published from the host.
//!
//! The lifecycle manager creates a container's network namespace as a
//! bind-mounted file before the runtime's create (the way CNI and
//! Kubernetes' CRI do), hands its path to a [`NetworkDriver`] in
//! [`AttachRequest`], and hands the same path to the runtime in the OCI
//! spec's `linux.namespaces` entry. The driver configures that namespace
//! (an interface, addresses, routes, loopback) and the host around it (a
//! bridge, NAT, published ports); [`NetworkDriver::detach`] undoes it all.
//!
//! ```
//! use engine_core::network::{NetworkSpec, PortBinding, Protocol, HostPorts};
//!
//! let spec = NetworkSpec::new("appnet").subnet("10.89.0.0/24".parse()?).internal(false);
//! assert_eq!(spec.name(), "appnet");
//!
//! // `docker run -p 127.0.0.1:8080:80/tcp -p 53:53/udp -p 9000-9001:9000-9001`:
//! let mut ports = PortBinding::parse("127.0.0.1:8080:80/tcp")?;
//! ports.extend(PortBinding::parse("53:53/udp")?);
//! ports.extend(PortBinding::parse("9000-9001:9000-9001")?);
//! assert_eq!(ports.len(), 4);
//! assert_eq!(ports[0].host_ports, HostPorts::Range(8080, 8080));
//! assert_eq!(ports[1].protocol, Protocol::Udp);
//! assert_eq!(ports[3].container_port, 9001);
//! // host port 0 or none: any free port
//! assert_eq!(PortBinding::parse("0:80")?[0].host_ports, HostPorts::Any);
//! assert!(PortBinding::parse("80:99999").is_err());
//! # Ok::<(), engine_core::Error>(())
//! ```

use crate::{ContainerId, Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// An IP address with a prefix length: an interface address
/// (`172.18.0.2/16`) or, with the host bits zero, a subnet (`172.18.0.0/16`).
///
/// ```
/// use engine_core::network::IpPrefix;
/// let p: IpPrefix = "172.18.0.7/16".parse()?;
/// assert_eq!(p.network().to_string(), "172.18.0.0/16");
/// assert!(p.network().contains("172.18.255.1".parse().unwrap()));
/// assert!(p.overlaps(&"172.16.0.0/12".parse()?));
/// assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
/// # Ok::<(), engine_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    prefix: u8,
}

impl IpPrefix {
    /// `addr/prefix`; fails when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::invalid("IP prefix", format!("{addr}/{prefix}: prefix longer than {max}")));
        }
        Ok(IpPrefix { addr, prefix })
    }
    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    fn bits(&self) -> (u128, u32) {
        match self.addr {
            IpAddr::V4(a) => (u32::from(a) as u128, 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }
    fn mask(&self) -> u128 {
        let (_, width) = self.bits();
        let all = if width == 32 { u32::MAX as u128 } else { u128::MAX };
        if self.prefix == 0 {
            0
        } else {
            all & !((1u128 << (width - self.prefix as u32)) - 1)
        }
    }
    fn addr_of_bits(&self, v: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(v)),
        }
    }
    /// The subnet this address is in (host bits zeroed).
    pub fn network(&self) -> IpPrefix {
        let (v, _) = self.bits();
        IpPrefix { addr: self.addr_of_bits(v & self.mask()), prefix: self.prefix }
    }
    /// True when the host bits are zero (a subnet, not an interface address).
    pub fn is_network(&self) -> bool {
        self.network().addr == self.addr
    }
    /// True when `ip` is inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let other = IpPrefix { addr: ip, prefix: self.prefix };
        other.network().addr == self.network().addr
    }
    /// True when the two prefixes share an address.
    pub fn overlaps(&self, other: &IpPrefix) -> bool {
        let shorter = if self.prefix <= other.prefix { self } else { other };
        let longer = if self.prefix <= other.prefix { other } else { self };
        shorter.contains(longer.addr)
    }
    /// The `n`th address of the subnet (0 is the network address), if inside it.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let (_, width) = self.bits();
        let host_bits = width - self.prefix as u32;
        if host_bits < 128 && n >= (1u128 << host_bits) {
            return None;
        }
        let (v, _) = self.network().bits();
        Some(self.addr_of_bits(v + n))
    }
    /// How many addresses the subnet holds (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        let (_, width) = self.bits();
        let host_bits = width - self.prefix as u32;
        if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpPrefix {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (a, p) = s.split_once('/').ok_or_else(|| Error::invalid("IP prefix", format!("{s:?}: no /length")))?;
        let addr: IpAddr = a.parse().map_err(|_| Error::invalid("IP prefix", format!("{s:?}: bad address")))?;
        let prefix: u8 = p.parse().map_err(|_| Error::invalid("IP prefix", format!("{s:?}: bad length")))?;
        IpPrefix::new(addr, prefix)
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A 48-bit Ethernet address.
///
/// ```
/// use engine_core::network::MacAddr;
/// let m: MacAddr = "02:42:ac:11:00:02".parse()?;
/// assert_eq!(m.octets()[2], 0xac);
/// assert_eq!(m.to_string(), "02:42:ac:11:00:02");
/// # Ok::<(), engine_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// From its six octets.
    pub fn new(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
    /// Its six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3], o[4], o[5])
    }
}

impl FromStr for MacAddr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("MAC address", format!("{s:?}"));
        let mut o = [0u8; 6];
        let mut parts = s.split(':');
        for b in o.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(o))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One subnet of a network, with its gateway (docker's `IPAM.Config` entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// The subnet (`172.18.0.0/16`).
    pub subnet: IpPrefix,
    /// The gateway: the host's address on the network (default: the
    /// subnet's first address).
    pub gateway: Option<IpAddr>,
}

/// What to create: `docker network create` with its options. Built with
/// [`NetworkSpec::new`] and the setters; the driver validates it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NetworkSpec {
    /// Unique name.
    pub name: String,
    /// Driver name (`"bridge"` unless set).
    pub driver: String,
    /// Subnets; empty: one from the driver's default pool.
    pub ipam: Vec<IpamConfig>,
    /// No traffic to or from outside the network (no NAT, no routing out).
    pub internal: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options (`com.docker.network.bridge.name`, ...).
    pub options: BTreeMap<String, String>,
}

impl NetworkSpec {
    /// A bridge network named `name`, subnet from the default pool.
    pub fn new(name: impl Into<String>) -> Self {
        NetworkSpec {
            name: name.into(),
            driver: "bridge".into(),
            ipam: Vec::new(),
            internal: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        }
    }
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Use this subnet (the gateway defaults to its first address).
    pub fn subnet(mut self, subnet: IpPrefix) -> Self {
        self.ipam.push(IpamConfig { subnet, gateway: None });
        self
    }
    /// Use this gateway on the last subnet given (a gateway without a
    /// subnet is rejected by the driver).
    pub fn gateway(mut self, gateway: IpAddr) -> Self {
        match self.ipam.last_mut() {
            Some(c) => c.gateway = Some(gateway),
            None => {
                self.ipam.push(IpamConfig { subnet: IpPrefix { addr: gateway, prefix: 0 }, gateway: Some(gateway) })
            }
        }
        self
    }
    /// An internal network: containers reach each other, nothing else.
    pub fn internal(mut self, internal: bool) -> Self {
        self.internal = internal;
        self
    }
    /// The driver (`"bridge"` by default).
    pub fn driver(mut self, driver: impl Into<String>) -> Self {
        self.driver = driver.into();
        self
    }
    /// Add a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    /// Add a driver option.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }
}

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(Error::invalid("port protocol", format!("{s:?} (tcp or udp)"))),
        }
    }
}

/// Which host port a binding may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostPorts {
    /// Any free port (docker's host port 0 or none).
    Any,
    /// The first free port of `start..=end` (a single port when equal).
    Range(u16, u16),
}

/// A port to publish: `-p [ip:][hostPort:]containerPort[/proto]`, one
/// container port each ([`PortBinding::parse`] expands ranges).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortBinding {
    /// tcp or udp.
    pub protocol: Protocol,
    /// The port inside the container.
    pub container_port: u16,
    /// The host address to listen on; `None`: all of the host's addresses.
    pub host_ip: Option<IpAddr>,
    /// The host port or ports it may take.
    pub host_ports: HostPorts,
}

impl PortBinding {
    /// `container_port/protocol` on any free host port of every host address.
    pub fn new(protocol: Protocol, container_port: u16) -> Self {
        PortBinding { protocol, container_port, host_ip: None, host_ports: HostPorts::Any }
    }
    /// Only this host port.
    pub fn host_port(mut self, port: u16) -> Self {
        self.host_ports = if port == 0 { HostPorts::Any } else { HostPorts::Range(port, port) };
        self
    }
    /// Only this host address.
    pub fn host_ip(mut self, ip: IpAddr) -> Self {
        self.host_ip = Some(ip);
        self
    }

    /// Parse docker's `-p` syntax, `[ip:][hostPort:]containerPort[/proto]`,
    /// where the ports may be ranges (`8000-8009`) and an IPv6 host address
    /// is bracketed (`[::1]:8080:80`). A container range maps onto a host
    /// range of the same length, port by port; a single container port with
    /// a host range takes the first free port of the range.
    pub fn parse(spec: &str) -> Result<Vec<PortBinding>> {
        let bad = |why: &str| Error::invalid(format!("port spec {spec:?}"), why.to_string());
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((r, p)) => (r, p.parse::<Protocol>().map_err(|_| bad("protocol must be tcp or udp"))?),
            None => (spec, Protocol::Tcp),
        };
        // Split off a bracketed or dotted host IP.
        let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
            let (ip, r) = r.split_once("]:").ok_or_else(|| bad("unclosed [ in host address"))?;
            (Some(ip.parse::<IpAddr>().map_err(|_| bad("bad host address"))?), r)
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.len() {
                1 | 2 => (None, rest),
                3 => {
                    let ip = if parts[0].is_empty() {
                        None
                    } else {
                        Some(parts[0].parse::<IpAddr>().map_err(|_| bad("bad host address"))?)
                    };
                    (ip, &rest[parts[0].len() + 1..])
                }
                _ => return Err(bad("too many ':' (bracket an IPv6 host address)")),
            }
        };
        let (host, container) = match rest.split_once(':') {
            Some((h, c)) => (Some(h), c),
            None => (None, rest),
        };
        let range = |s: &str, zero_ok: bool| -> Result<(u16, u16)> {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            let a: u16 = a.parse().map_err(|_| bad("ports are numbers from 1 to 65535"))?;
            let b: u16 = b.parse().map_err(|_| bad("ports are numbers from 1 to 65535"))?;
            if (a == 0 && !(zero_ok && b == 0)) || b < a {
                return Err(bad("ports are numbers from 1 to 65535, ranges low-high"));
            }
            Ok((a, b))
        };
        let (c0, c1) = range(container, false)?;
        let host = match host {
            None | Some("") => None,
            Some(h) => Some(range(h, true)?),
        };
        let mut out = Vec::new();
        for (i, cport) in (c0..=c1).enumerate() {
            let host_ports = match host {
                None | Some((0, 0)) => HostPorts::Any,
                Some((h0, h1)) if c0 == c1 => HostPorts::Range(h0, h1),
                Some((h0, h1)) => {
                    if h1 - h0 != c1 - c0 {
                        return Err(bad("host and container ranges differ in length"));
                    }
                    let h = h0 + i as u16;
                    HostPorts::Range(h, h)
                }
            };
            out.push(PortBinding { protocol: proto, container_port: cport, host_ip, host_ports });
        }
        Ok(out)
    }
}

/// A port as published: the host address and port it took.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    /// tcp or udp.
    pub protocol: Protocol,
    /// The port inside the container.
    pub container_port: u16,
    /// The host address (`0.0.0.0` for all of them).
    pub host_ip: IpAddr,
    /// The host port it took.
    pub host_port: u16,
}

/// Connect a container's network namespace to a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttachRequest {
    /// The container (the endpoint's key on the network).
    pub container_id: String,
    /// The container's network namespace, a bind-mounted nsfs file (or
    /// `/proc/<pid>/ns/net`).
    pub netns: PathBuf,
    /// Interface name inside the container (default `eth0`).
    pub interface: String,
    /// A fixed IPv4 address (`--ip`); `None`: the next free one.
    pub ipv4: Option<Ipv4Addr>,
    /// A fixed MAC address (`--mac-address`); `None`: derived from the IP.
    pub mac: Option<MacAddr>,
    /// Ports to publish.
    pub ports: Vec<PortBinding>,
    /// Extra names the container answers to on this network.
    pub aliases: Vec<String>,
    /// Name servers for the container (`--dns`); empty: the host's.
    pub dns: Vec<IpAddr>,
}

impl AttachRequest {
    /// Attach `container_id` whose network namespace is the file `netns`.
    pub fn new(container_id: impl Into<String>, netns: impl Into<PathBuf>) -> Self {
        AttachRequest {
            container_id: container_id.into(),
            netns: netns.into(),
            interface: "eth0".into(),
            ipv4: None,
            mac: None,
            ports: Vec::new(),
            aliases: Vec::new(),
            dns: Vec::new(),
        }
    }
    /// Name the interface inside the container.
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.interface = name.into();
        self
    }
    /// Ask for this IPv4 address.
    pub fn ipv4(mut self, ip: Ipv4Addr) -> Self {
        self.ipv4 = Some(ip);
        self
    }
    /// Use this MAC address.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }
    /// Publish a port.
    pub fn publish(mut self, port: PortBinding) -> Self {
        self.ports.push(port);
        self
    }
    /// Add a network alias.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }
    /// Add a name server.
    pub fn dns(mut self, server: IpAddr) -> Self {
        self.dns.push(server);
        self
    }
}

/// How a container joins one more network
/// ([`LifecycleManager::connect_network`](crate::LifecycleManager::connect_network)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Extra names the container answers to on that network.
    pub aliases: Vec<String>,
    /// A fixed IPv4 address on it (`--ip`); `None`: the next free one.
    pub ipv4: Option<Ipv4Addr>,
}

impl ConnectOptions {
    /// No aliases, any address.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add an alias.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }
    /// Ask for this IPv4 address.
    pub fn ipv4(mut self, ip: Ipv4Addr) -> Self {
        self.ipv4 = Some(ip);
        self
    }
}

/// What a container got on a network (docker's `EndpointSettings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EndpointInfo {
    /// The network's id.
    pub network_id: String,
    /// The network's name.
    pub network: String,
    /// The container.
    pub container_id: String,
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Interface name inside the container (`eth0`).
    pub interface: String,
    /// The host side of the link (a veth name), if the driver has one.
    pub host_interface: Option<String>,
    /// Its MAC address.
    pub mac: MacAddr,
    /// IPv4 address with the subnet's prefix.
    pub ipv4: Option<IpPrefix>,
    /// IPv6 address with the subnet's prefix.
    pub ipv6: Option<IpPrefix>,
    /// IPv4 gateway (the default route).
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 gateway.
    pub gateway6: Option<IpAddr>,
    /// Name servers the container should use.
    pub dns: Vec<IpAddr>,
    /// Ports published to it.
    pub ports: Vec<PublishedPort>,
    /// Its aliases on the network.
    pub aliases: Vec<String>,
}

impl EndpointInfo {
    /// An endpoint with no addresses yet; drivers fill the public fields.
    pub fn new(
        network_id: impl Into<String>,
        network: impl Into<String>,
        container_id: impl Into<String>,
        endpoint_id: impl Into<String>,
        interface: impl Into<String>,
        mac: MacAddr,
    ) -> Self {
        EndpointInfo {
            network_id: network_id.into(),
            network: network.into(),
            container_id: container_id.into(),
            endpoint_id: endpoint_id.into(),
            interface: interface.into(),
            host_interface: None,
            mac,
            ipv4: None,
            ipv6: None,
            gateway4: None,
            gateway6: None,
            dns: Vec::new(),
            ports: Vec::new(),
            aliases: Vec::new(),
        }
    }
}

/// What a driver knows of one network (`docker network inspect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NetworkInfo {
    /// Its id (64 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The driver that made it.
    pub driver: String,
    /// Its subnets, each with its gateway.
    pub ipam: Vec<IpamConfig>,
    /// Internal: no traffic leaves it.
    pub internal: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// The host interface it uses (a bridge name), if any.
    pub interface: Option<String>,
    /// When it was created (seconds since the epoch).
    pub created_unix: u64,
    /// Its endpoints, by container id.
    pub endpoints: BTreeMap<String, EndpointInfo>,
}

impl NetworkInfo {
    /// A network with no subnet or endpoint yet; drivers fill the public fields.
    pub fn new(id: impl Into<String>, name: impl Into<String>, driver: impl Into<String>) -> Self {
        NetworkInfo {
            id: id.into(),
            name: name.into(),
            driver: driver.into(),
            ipam: Vec::new(),
            internal: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            interface: None,
            created_unix: 0,
            endpoints: BTreeMap::new(),
        }
    }
}

/// A network driver (libnetwork's driver plus its IPAM): networks, and the
/// endpoints that plug containers' network namespaces into them.
///
/// Names and ids: every `network` argument is a name, a full id, or a
/// unique id prefix. Errors: [`Error::NotFound`] for an unknown network or
/// endpoint, [`Error::Conflict`] for a name taken, an overlapping subnet,
/// a host port in use or a network that still has endpoints,
/// [`Error::InvalidInput`] for a bad spec. A failed call leaves nothing
/// behind (no interface, rule or lease).
#[async_trait]
pub trait NetworkDriver: Send + Sync {
    /// The driver's name (`"bridge"`).
    fn name(&self) -> &str;
    /// Create a network.
    async fn create_network(&self, spec: NetworkSpec) -> Result<NetworkInfo>;
    /// The default network (`bridge` mode's), created on first use.
    async fn default_network(&self) -> Result<NetworkInfo>;
    /// Remove a network; a [`Error::Conflict`] while it has endpoints.
    async fn remove_network(&self, network: &str) -> Result<()>;
    /// One network.
    async fn inspect_network(&self, network: &str) -> Result<NetworkInfo>;
    /// All networks.
    async fn list_networks(&self) -> Result<Vec<NetworkInfo>>;
    /// Plug a container's network namespace into a network and publish
    /// its ports. Persisted before it returns: survives a restart of every tier.
    async fn attach(&self, network: &str, request: AttachRequest) -> Result<EndpointInfo>;
    /// Unplug a container (the exact id it was attached with): its
    /// interface, published ports and lease go.
    async fn detach(&self, network: &str, container_id: &ContainerId) -> Result<()>;
    /// The network namespace (a file) the driver treats as the host's when
    /// it is not the caller's own: published ports are reachable there.
    /// `None` (the default): the caller's namespace.
    fn host_netns(&self) -> Option<PathBuf> {
        None
    }
    /// Whether `docker network create --driver <driver>` is this driver's
    /// to answer (a router of plugin networks takes any name, and answers
    /// an unknown one as a plugin not found). Default: its own name.
    fn serves_driver(&self, driver: &str) -> bool {
        driver == self.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_math() {
        let p: IpPrefix = "172.18.0.0/16".parse().unwrap();
        assert_eq!(p.nth(1), Some("172.18.0.1".parse().unwrap()));
        assert_eq!(p.nth(65535), Some("172.18.255.255".parse().unwrap()));
        assert_eq!(p.nth(65536), None);
        assert_eq!(p.size(), 65536);
        assert!(p.is_network());
        let q: IpPrefix = "172.18.4.0/24".parse().unwrap();
        assert!(p.overlaps(&q) && q.overlaps(&p));
        assert!(!q.overlaps(&"172.18.5.0/24".parse().unwrap()));
        let z: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(z.contains("8.8.8.8".parse().unwrap()));
        let v6: IpPrefix = "fd00::/64".parse().unwrap();
        assert!(v6.contains("fd00::5".parse().unwrap()));
        assert!(!v6.overlaps(&p));
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"172.18.4.0/24\"");
    }

    #[test]
    fn port_specs() {
        let p = PortBinding::parse("[::1]:8080:80/udp").unwrap();
        assert_eq!(p[0].host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p[0].protocol, Protocol::Udp);
        let p = PortBinding::parse("8000-8010:80").unwrap();
        assert_eq!(p, vec![PortBinding::new(Protocol::Tcp, 80).tap(|b| b.host_ports = HostPorts::Range(8000, 8010))]);
        let p = PortBinding::parse("80").unwrap();
        assert_eq!(p[0].host_ports, HostPorts::Any);
        let p = PortBinding::parse("::80").unwrap();
        assert_eq!((p[0].host_ip, p[0].host_ports), (None, HostPorts::Any));
        for bad in ["", "x", "0", "80/sctp", "1:2:3:4", "9-8:80", "80-81:90-92", "a.b:1:2", "70000"] {
            let e = PortBinding::parse(bad).unwrap_err();
            assert!(e.is_invalid_input() && e.to_string().contains("port spec"), "{bad}: {e}");
        }
    }

    trait Tap: Sized {
        fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }
    }
    impl Tap for PortBinding {}
}
