//! The default Linux bridge driver.

use crate::hostport::{self, PortKey};
use crate::netns::Netns;
use crate::nft::{NetRule, PortRule};
use crate::record::{self, EpState, NetworkMeta};
use crate::{ipam, link, nft};
use async_trait::async_trait;
use engine_core::network::{
    AttachRequest, EndpointInfo, IpPrefix, IpamConfig, MacAddr, NetworkDriver, NetworkInfo, NetworkSpec, PortBinding,
    PublishedPort,
};
use engine_core::{random_hex64, ContainerId, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// The default network's name, as docker calls it.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Option naming the bridge interface of a network (docker's).
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct EndpointRecord {
    info: EndpointInfo,
    state: EpState,
    /// The container's namespace (to move the default route there when
    /// another of its endpoints goes).
    #[serde(default)]
    netns: Option<PathBuf>,
}

/// A network as persisted: `<state>/networks/<id>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NetworkRecord {
    #[serde(flatten)]
    meta: NetworkMeta,
    bridge: String,
    endpoints: BTreeMap<String, EndpointRecord>,
}

impl record::Record for NetworkRecord {
    fn meta(&self) -> &NetworkMeta {
        &self.meta
    }
}

impl NetworkRecord {
    fn info(&self) -> NetworkInfo {
        let mut n = self.meta.info("bridge");
        n.interface = Some(self.bridge.clone());
        n.endpoints = self
            .endpoints
            .iter()
            .filter(|(_, e)| e.state == EpState::Attached)
            .map(|(k, e)| (k.clone(), e.info.clone()))
            .collect();
        n
    }
    fn gateway_prefix(&self) -> IpPrefix {
        IpPrefix::new(IpAddr::V4(self.meta.gateway), self.meta.subnet.prefix()).expect("a subnet's prefix fits")
    }
    fn gateway6_prefix(&self) -> Option<IpPrefix> {
        let (s, g) = (self.meta.subnet6?, self.meta.gateway6?);
        IpPrefix::new(IpAddr::V6(g), s.prefix()).ok()
    }
}

struct Inner {
    /// By network id.
    nets: BTreeMap<String, NetworkRecord>,
    /// Host ports held (bound, not listening) so no host process takes
    /// them while they are published.
    held: HashMap<PortKey, hostport::Held>,
}

/// Builds a [`BridgeDriver`].
#[derive(Clone, Debug)]
pub struct BridgeDriverBuilder {
    state_dir: PathBuf,
    host_netns: Option<PathBuf>,
    table: String,
    default_bridge: String,
    default_subnet: IpPrefix,
    pool: Vec<IpPrefix>,
    resolv_conf: PathBuf,
}

impl BridgeDriverBuilder {
    /// The host's network namespace (default: the caller's). Bridges,
    /// host-side veths, rules and sysctls go there; tests pass a namespace
    /// of their own.
    pub fn host_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.host_netns = Some(path.into());
        self
    }
    /// The nftables table (family `inet`) holding every rule (default `engine`).
    pub fn nft_table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }
    /// The default network's bridge (default `engine0`).
    pub fn default_bridge(mut self, name: impl Into<String>) -> Self {
        self.default_bridge = name.into();
        self
    }
    /// The default network's subnet (default `172.17.0.0/16`; when the host
    /// already routes it, the first free subnet of the pool).
    pub fn default_subnet(mut self, subnet: IpPrefix) -> Self {
        self.default_subnet = subnet;
        self
    }
    /// Subnets for user networks, tried in order (default `172.18.0.0/16`
    /// to `172.31.0.0/16`); one already routed on the host is skipped.
    pub fn pool(mut self, subnets: Vec<IpPrefix>) -> Self {
        self.pool = subnets;
        self
    }
    /// Where the host's name servers are read (default `/etc/resolv.conf`).
    pub fn resolv_conf(mut self, path: impl Into<PathBuf>) -> Self {
        self.resolv_conf = path.into();
        self
    }

    /// Open the driver: load its records, recreate missing bridges, drop
    /// endpoints whose attach never finished or whose interface is gone
    /// (their container's namespace died), hold the published host ports
    /// again and install the rules.
    pub async fn open(self) -> Result<BridgeDriver> {
        if !valid_ifname(&self.default_bridge) {
            return Err(Error::invalid("default bridge name", format!("{:?}", self.default_bridge)));
        }
        if self.table.is_empty() || !self.table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(Error::invalid("nftables table name", format!("{:?}", self.table)));
        }
        let host = match &self.host_netns {
            Some(p) => Netns::open(p)?,
            None => Netns::current()?,
        };
        let nl = host.netlink().await?;
        let dir = self.state_dir.join("networks");
        let nets = record::load(&dir)?;
        let d = BridgeDriver { inner: Mutex::new(Inner { nets, held: HashMap::new() }), host, nl, dir, cfg: self };
        d.recover().await?;
        Ok(d)
    }
}

/// The default Linux bridge driver: one bridge per network, one veth pair
/// per endpoint, IPAM persisted under its state directory, NAT and
/// published ports in its own nftables table. See the crate docs.
pub struct BridgeDriver {
    inner: Mutex<Inner>,
    host: Netns,
    nl: rtnetlink::Handle,
    dir: PathBuf,
    cfg: BridgeDriverBuilder,
}

impl std::fmt::Debug for BridgeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeDriver").field("host", &self.host.path()).field("dir", &self.dir).finish()
    }
}

/// An endpoint's IPv4 address.
pub(crate) fn ipv4_of(e: &EndpointInfo) -> Option<Ipv4Addr> {
    match e.ipv4?.addr() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// The addresses of `req`'s new endpoint on network `name` (subnets `v4`,
/// `v6`), whose endpoints are `endpoints`: a conflict when the container
/// is already one of them.
pub(crate) fn lease_for<'a>(
    name: &str,
    v4: (IpPrefix, Ipv4Addr),
    v6: Option<(IpPrefix, Ipv6Addr)>,
    endpoints: impl Iterator<Item = &'a EndpointInfo> + Clone,
    req: &AttachRequest,
) -> Result<(Ipv4Addr, Option<IpPrefix>)> {
    if endpoints.clone().any(|e| e.container_id == req.container_id) {
        return Err(Error::conflict(
            "endpoint",
            &req.container_id,
            format!("the container is already attached to network {name}"),
        ));
    }
    ipam::lease(v4, v6, endpoints, req.ipv4)
}

/// An attach request's container id and interface name, checked.
pub(crate) fn check_request(req: &AttachRequest) -> Result<()> {
    if req.container_id.is_empty() || req.container_id.contains('/') {
        return Err(Error::invalid("container id", format!("{:?}", req.container_id)));
    }
    if !valid_ifname(&req.interface) {
        return Err(Error::invalid(format!("interface name {:?}", req.interface), "1 to 15 characters"));
    }
    Ok(())
}

pub(crate) fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && !n.contains(['/', ':'])
        && !n.contains(char::is_whitespace)
}

pub(crate) fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
        && n.len() <= 128
}

/// The host's name servers in `resolv_conf`, without loopback ones (a
/// container cannot reach the host's 127.0.0.53).
pub(crate) fn host_dns(resolv_conf: &Path) -> Vec<IpAddr> {
    let Ok(text) = std::fs::read_to_string(resolv_conf) else { return Vec::new() };
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .filter(|a| !a.is_loopback())
        .collect()
}

/// Docker's MAC for an address: 02:42 then the four octets.
fn mac_for(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr::new([0x02, 0x42, o[0], o[1], o[2], o[3]])
}

impl BridgeDriver {
    /// A builder keeping its records under `state_dir`.
    pub fn builder(state_dir: impl Into<PathBuf>) -> BridgeDriverBuilder {
        BridgeDriverBuilder {
            state_dir: state_dir.into(),
            host_netns: None,
            table: "engine".into(),
            default_bridge: "engine0".into(),
            default_subnet: "172.17.0.0/16".parse().expect("literal"),
            pool: (18..=31).map(|i| format!("172.{i}.0.0/16").parse().expect("literal")).collect(),
            resolv_conf: "/etc/resolv.conf".into(),
        }
    }

    /// The nftables table this driver owns (family `inet`).
    pub fn nft_table(&self) -> &str {
        &self.cfg.table
    }

    fn persist(&self, r: &NetworkRecord) -> Result<()> {
        record::save(&self.dir, r)
    }

    fn unpersist(&self, id: &str) -> Result<()> {
        record::delete(&self.dir, id)
    }

    fn resolve<'a>(inner: &'a Inner, network: &str) -> Result<&'a NetworkRecord> {
        record::resolve(&inner.nets, network)
    }

    /// Render and install the table for `inner`'s networks.
    async fn apply_rules(&self, inner: &Inner) -> Result<()> {
        let mut nets = Vec::new();
        let mut ports = Vec::new();
        for r in inner.nets.values() {
            nets.push(NetRule {
                bridge: r.bridge.clone(),
                subnet: r.meta.subnet,
                subnet6: r.meta.subnet6,
                internal: r.meta.internal,
            });
            for ep in r.endpoints.values() {
                let Some(cip) = ep.info.ipv4 else { continue };
                let IpAddr::V4(cip) = cip.addr() else { continue };
                let cip6 = match ep.info.ipv6.map(|p| p.addr()) {
                    Some(IpAddr::V6(a)) => Some(a),
                    _ => None,
                };
                // IPv6 host addresses are the proxy's (see `hostport`).
                for p in ep.info.ports.iter().filter(|p| p.host_ip.is_ipv4()) {
                    let host_ip = match p.host_ip {
                        IpAddr::V4(a) if !a.is_unspecified() => Some(a),
                        _ => None,
                    };
                    ports.push(PortRule {
                        protocol: p.protocol,
                        host_ip,
                        host_port: p.host_port,
                        container_ip: cip,
                        container_ip6: cip6,
                        container_port: p.container_port,
                    });
                }
            }
        }
        nft::apply(&self.host, nft::render(&self.cfg.table, &nets, &ports)).await
    }

    /// Sysctls a network's bridge needs in the host namespace.
    async fn bridge_sysctls(&self, bridge: &str, ipv6: bool) -> Result<()> {
        self.host.write_sysctl("net/ipv4/ip_forward", "1").await?;
        if ipv6 {
            self.host.write_sysctl("net/ipv6/conf/all/forwarding", "1").await?;
        }
        self.host.write_sysctl(&format!("net/ipv4/conf/{bridge}/route_localnet"), "1").await
    }

    async fn recover(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let links = link::names(&self.nl).await?;
        let ids: Vec<String> = inner.nets.keys().cloned().collect();
        for id in ids {
            let r = inner.nets.get_mut(&id).expect("listed");
            link::ensure_bridge(&self.nl, &r.bridge, r.gateway_prefix()).await?;
            if let Some(g6) = r.gateway6_prefix() {
                link::add_address(&self.nl, &r.bridge, g6).await?;
            }
            let mut changed = false;
            let stale: Vec<String> = r
                .endpoints
                .iter()
                .filter(|(_, e)| {
                    e.state == EpState::Attaching || e.info.host_interface.as_ref().is_none_or(|h| !links.contains(h))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for c in stale {
                let e = r.endpoints.remove(&c).expect("listed");
                if let Some(h) = &e.info.host_interface {
                    link::delete(&self.nl, h).await?;
                }
                tracing::info!(network = %r.meta.name, container = %c, "released the lease of an endpoint whose attach never finished or whose namespace is gone");
                changed = true;
            }
            let r = r.clone();
            if changed {
                self.persist(&r)?;
            }
            self.bridge_sysctls(&r.bridge, r.meta.subnet6.is_some()).await?;
        }
        // Hold the published ports again.
        let wanted: Vec<_> = inner
            .nets
            .values()
            .flat_map(|r| r.endpoints.values())
            .flat_map(|e| e.info.ports.iter().map(|p| (p.clone(), ipv4_of(&e.info))))
            .collect();
        let got = hostport::hold_again(&self.host, wanted).await?;
        inner.held.extend(got);
        self.apply_rules(&inner).await
    }

    /// Pick a subnet for a new network: the configured one checked, or
    /// the first free of `pool`.
    async fn pick_subnet(&self, inner: &Inner, spec: &NetworkSpec, pool: &[IpPrefix]) -> Result<(IpPrefix, Ipv4Addr)> {
        let taken: Vec<IpPrefix> = inner.nets.values().map(|r| r.meta.subnet).collect();
        let v4: Vec<&IpamConfig> = spec.ipam.iter().filter(|c| !c.subnet.addr().is_ipv6()).collect();
        match v4.as_slice() {
            [] => {
                let routed = link::ipv4_routes(&self.nl).await?;
                let subnet = pool
                    .iter()
                    .find(|p| !taken.iter().chain(routed.iter()).any(|t| t.overlaps(p)))
                    .copied()
                    .ok_or_else(|| Error::unavailable("address pool", "every subnet of the pool is in use"))?;
                let gw = ipam::default_gateway(subnet)?;
                Ok((subnet, gw))
            }
            [c] if c.subnet.prefix() == 0 => Err(Error::invalid(
                format!("gateway {}", c.gateway.map(|g| g.to_string()).unwrap_or_default()),
                "a gateway needs a subnet",
            )),
            [c] => {
                let subnet = c.subnet;
                ipam::check_subnet(subnet)?;
                if let Some(t) = inner.nets.values().find(|r| r.meta.subnet.overlaps(&subnet)) {
                    return Err(Error::conflict(
                        "network",
                        &spec.name,
                        format!("subnet {subnet} overlaps {} of network {}", t.meta.subnet, t.meta.name),
                    ));
                }
                Ok((subnet, ipam::gateway4(c)?))
            }
            _ => Err(Error::Unsupported("more than one IPv4 subnet per bridge network".into())),
        }
    }

    /// The IPv6 subnet and gateway, if the spec asks for one.
    fn pick_subnet6(&self, inner: &Inner, spec: &NetworkSpec) -> Result<Option<(IpPrefix, Ipv6Addr)>> {
        let v6: Vec<&IpamConfig> = spec.ipam.iter().filter(|c| c.subnet.addr().is_ipv6()).collect();
        let c = match v6.as_slice() {
            [] => return Ok(None),
            [c] => c,
            _ => return Err(Error::Unsupported("more than one IPv6 subnet per bridge network".into())),
        };
        let gw = ipam::gateway6(c)?;
        if let Some(t) = inner.nets.values().find(|r| r.meta.subnet6.is_some_and(|s| s.overlaps(&c.subnet))) {
            return Err(Error::conflict(
                "network",
                &spec.name,
                format!("subnet {} overlaps {} of network {}", c.subnet, t.meta.subnet6.expect("found"), t.meta.name),
            ));
        }
        Ok(Some((c.subnet, gw)))
    }

    async fn create(&self, spec: NetworkSpec, default: bool) -> Result<NetworkInfo> {
        let mut inner = self.inner.lock().await;
        if default {
            if let Some(r) = inner.nets.values().find(|r| r.meta.name == DEFAULT_NETWORK) {
                return Ok(r.info());
            }
        }
        if !valid_name(&spec.name) {
            return Err(Error::invalid(
                format!("network name {:?}", spec.name),
                "letters, digits and _.- , starting with a letter or digit",
            ));
        }
        if !default && [DEFAULT_NETWORK, "host", "none"].contains(&spec.name.as_str()) {
            return Err(Error::conflict("network", &spec.name, "is a predefined network"));
        }
        if spec.driver != "bridge" {
            return Err(Error::invalid(format!("network driver {:?}", spec.driver), "this driver is \"bridge\""));
        }
        if inner.nets.values().any(|r| r.meta.name == spec.name) {
            return Err(Error::conflict("network", &spec.name, "a network with this name exists"));
        }
        let id = random_hex64();
        let bridge = match spec.options.get(OPT_BRIDGE_NAME) {
            Some(b) => b.clone(),
            None if default => self.cfg.default_bridge.clone(),
            None => format!("br-{}", &id[..12]),
        };
        if !valid_ifname(&bridge) {
            return Err(Error::invalid(format!("bridge name {bridge:?}"), "1 to 15 characters, no '/', ':' or space"));
        }
        if inner.nets.values().any(|r| r.bridge == bridge) {
            return Err(Error::conflict("network", &spec.name, format!("bridge {bridge} is used by another network")));
        }
        if link::index(&self.nl, &bridge).await?.is_some() {
            return Err(Error::conflict("network", &spec.name, format!("interface {bridge} exists on the host")));
        }
        // The default network prefers its own subnet; if the host already
        // routes it (another engine's docker0), it takes one from the pool.
        let pool = if default {
            std::iter::once(self.cfg.default_subnet).chain(self.cfg.pool.iter().copied()).collect()
        } else {
            self.cfg.pool.clone()
        };
        let (subnet, gateway) = self.pick_subnet(&inner, &spec, &pool).await?;
        let v6 = self.pick_subnet6(&inner, &spec)?;
        let r = NetworkRecord {
            meta: NetworkMeta::new(id.clone(), &spec, (subnet, gateway), v6),
            bridge: bridge.clone(),
            endpoints: BTreeMap::new(),
        };
        self.persist(&r)?;
        inner.nets.insert(id.clone(), r.clone());
        let res = async {
            link::ensure_bridge(&self.nl, &bridge, r.gateway_prefix()).await?;
            if let Some(g6) = r.gateway6_prefix() {
                link::add_address(&self.nl, &bridge, g6).await?;
            }
            self.bridge_sysctls(&bridge, r.meta.subnet6.is_some()).await?;
            self.apply_rules(&inner).await
        }
        .await;
        if let Err(e) = res {
            inner.nets.remove(&id);
            let _ = link::delete(&self.nl, &bridge).await;
            let _ = self.apply_rules(&inner).await;
            let _ = self.unpersist(&id);
            return Err(e);
        }
        tracing::info!(network = %r.meta.name, %bridge, %subnet, "network created");
        Ok(r.info())
    }

    /// Hold the host ports of `bindings` (see [`hostport::reserve`]).
    async fn reserve(&self, inner: &Inner, bindings: &[PortBinding]) -> Result<Vec<(PublishedPort, OwnedFd)>> {
        let published: Vec<PortKey> = inner
            .nets
            .values()
            .flat_map(|r| r.endpoints.values())
            .flat_map(|e| e.info.ports.iter().map(|p| (p.protocol, p.host_ip, p.host_port)))
            .collect();
        hostport::reserve(&self.host, published, bindings).await
    }

    async fn do_attach(&self, network: &str, req: AttachRequest) -> Result<EndpointInfo> {
        check_request(&req)?;
        let ns = Netns::open(&req.netns)?;
        let mut inner = self.inner.lock().await;
        let r = Self::resolve(&inner, network)?.clone();
        let (ip, ip6) = lease_for(
            &r.meta.name,
            (r.meta.subnet, r.meta.gateway),
            r.meta.subnet6.zip(r.meta.gateway6),
            r.endpoints.values().map(|e| &e.info),
            &req,
        )?;
        let held = self.reserve(&inner, &req.ports).await?;
        let hex = random_hex64();
        let host_if = format!("veth{}", &hex[..7]);
        let peer_if = format!("vpeer{}", &hex[..7]);
        let mac = req.mac.unwrap_or_else(|| mac_for(ip));
        let mut info = EndpointInfo::new(&r.meta.id, &r.meta.name, &req.container_id, &hex, &req.interface, mac);
        info.host_interface = Some(host_if.clone());
        info.ipv4 = Some(IpPrefix::new(IpAddr::V4(ip), r.meta.subnet.prefix())?);
        info.gateway4 = (!r.meta.internal).then_some(r.meta.gateway);
        info.ipv6 = ip6;
        info.gateway6 = r.meta.gateway6.filter(|_| ip6.is_some() && !r.meta.internal).map(IpAddr::V6);
        info.dns = if req.dns.is_empty() { host_dns(&self.cfg.resolv_conf) } else { req.dns.clone() };
        info.ports = held.iter().map(|(p, _)| p.clone()).collect();
        info.aliases = req.aliases.clone();
        // The lease and ports are on disk before any kernel object exists:
        // a crash from here on is found and undone by `recover`.
        let mut rec = r.clone();
        rec.endpoints.insert(
            req.container_id.clone(),
            EndpointRecord { info: info.clone(), state: EpState::Attaching, netns: Some(req.netns.clone()) },
        );
        self.persist(&rec)?;
        inner.nets.insert(rec.meta.id.clone(), rec.clone());
        let res = async {
            if ip6.is_some() {
                // Interfaces that arrive in the container's namespace take its
                // defaults: no duplicate address detection to wait for.
                ns.write_sysctl("net/ipv6/conf/default/accept_dad", "0").await?;
            }
            link::create_veth(&self.nl, &host_if, &peer_if, &r.bridge, mac.octets(), &ns).await?;
            let cnl = ns.netlink().await?;
            let gw6 = match info.gateway6 {
                Some(IpAddr::V6(g)) => Some(g),
                _ => None,
            };
            link::configure_container(
                &cnl,
                &peer_if,
                &req.interface,
                info.ipv4.expect("set"),
                info.gateway4,
                ip6.map(|a| (a, gw6)),
            )
            .await?;
            self.apply_rules(&inner).await?;
            rec.endpoints.get_mut(&req.container_id).expect("inserted").state = EpState::Attached;
            self.persist(&rec)
        }
        .await;
        match res {
            Ok(()) => {
                inner.nets.insert(rec.meta.id.clone(), rec);
                for (p, fd) in held {
                    let (k, h) = hostport::activate(&self.host, &p, fd, Some(ip));
                    inner.held.insert(k, h);
                }
                tracing::info!(network = %r.meta.name, container = %req.container_id, %ip, "endpoint attached");
                Ok(info)
            }
            Err(e) => {
                // Undo: the veth (its peer goes with it, wherever it is),
                // the rules, the lease; the held ports close on drop.
                let _ = link::delete(&self.nl, &host_if).await;
                inner.nets.insert(r.meta.id.clone(), r.clone());
                let _ = self.apply_rules(&inner).await;
                let _ = self.persist(&r);
                drop(held);
                Err(e)
            }
        }
    }

    async fn do_detach(&self, network: &str, container_id: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let mut r = Self::resolve(&inner, network)?.clone();
        let Some(ep) = r.endpoints.remove(container_id) else {
            return Err(Error::not_found("endpoint", format!("{container_id} on network {}", r.meta.name)));
        };
        let old = inner.nets.insert(r.meta.id.clone(), r.clone()).expect("resolved");
        if let Err(e) = self.apply_rules(&inner).await {
            inner.nets.insert(old.meta.id.clone(), old);
            return Err(e);
        }
        if let Some(h) = &ep.info.host_interface {
            if let Err(e) = link::delete(&self.nl, h).await {
                // Still attached: keep it published and leased.
                inner.nets.insert(old.meta.id.clone(), old);
                let _ = self.apply_rules(&inner).await;
                return Err(e);
            }
        }
        // Flows the kernel still NATs to this address would shadow the
        // next holder of its ports or address.
        if let Some(IpAddr::V4(ip)) = ep.info.ipv4.map(|p| p.addr()) {
            if let Err(e) = self.host.run(move || crate::conntrack::forget_flows_to(ip)).await {
                tracing::warn!(container = %container_id, "forgetting tracked connections: {e}");
            }
        }
        // The default route went with the interface: another network of
        // the container's takes it (docker's behaviour).
        if ep.info.gateway4.is_some() || ep.info.gateway6.is_some() {
            if let Err(e) = self.move_default_route(&inner, container_id).await {
                tracing::warn!(container = %container_id, "moving the default route to a remaining network: {e}");
            }
        }
        // A crash from here on leaves a record whose veth is gone: the
        // next driver releases it.
        for p in &ep.info.ports {
            inner.held.remove(&(p.protocol, p.host_ip, p.host_port));
        }
        self.persist(&r)?;
        tracing::info!(network = %r.meta.name, container = %container_id, "endpoint detached");
        Ok(())
    }

    /// Give `container_id` a default route through its first remaining
    /// network (by name) that has a gateway, when it has none (its holder
    /// was just detached).
    async fn move_default_route(&self, inner: &Inner, container_id: &str) -> Result<()> {
        let mut others: Vec<(&NetworkRecord, &EndpointRecord)> = inner
            .nets
            .values()
            .filter_map(|r| r.endpoints.get(container_id).map(|e| (r, e)))
            .filter(|(_, e)| e.state == EpState::Attached && e.netns.is_some())
            .filter(|(_, e)| e.info.gateway4.is_some() || e.info.gateway6.is_some())
            .collect();
        others.sort_by(|a, b| a.0.meta.name.cmp(&b.0.meta.name));
        let Some((r, e)) = others.first() else { return Ok(()) };
        let ns = Netns::open(e.netns.as_deref().expect("filtered"))?;
        let h = ns.netlink().await?;
        let gw6 = match e.info.gateway6 {
            Some(IpAddr::V6(g)) => Some(g),
            _ => None,
        };
        link::default_routes(&h, &e.info.interface, e.info.gateway4, gw6).await?;
        tracing::info!(container = %container_id, network = %r.meta.name, "default route through this network");
        Ok(())
    }

    async fn do_remove(&self, network: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let r = Self::resolve(&inner, network)?.clone();
        if !r.endpoints.is_empty() {
            let names: Vec<&str> = r.endpoints.keys().map(|s| s.as_str()).collect();
            return Err(Error::conflict(
                "network",
                &r.meta.name,
                format!("has active endpoints ({})", names.join(", ")),
            ));
        }
        inner.nets.remove(&r.meta.id);
        if let Err(e) = self.apply_rules(&inner).await {
            inner.nets.insert(r.meta.id.clone(), r);
            return Err(e);
        }
        link::delete(&self.nl, &r.bridge).await?;
        self.unpersist(&r.meta.id)?;
        tracing::info!(network = %r.meta.name, "network removed");
        Ok(())
    }
}

#[async_trait]
impl NetworkDriver for BridgeDriver {
    fn host_netns(&self) -> Option<PathBuf> {
        self.cfg.host_netns.clone()
    }
    fn name(&self) -> &str {
        "bridge"
    }
    async fn create_network(&self, spec: NetworkSpec) -> Result<NetworkInfo> {
        self.create(spec, false).await
    }
    async fn default_network(&self) -> Result<NetworkInfo> {
        self.create(NetworkSpec::new(DEFAULT_NETWORK), true).await
    }
    async fn remove_network(&self, network: &str) -> Result<()> {
        self.do_remove(network).await
    }
    async fn inspect_network(&self, network: &str) -> Result<NetworkInfo> {
        let inner = self.inner.lock().await;
        Ok(Self::resolve(&inner, network)?.info())
    }
    async fn list_networks(&self) -> Result<Vec<NetworkInfo>> {
        let inner = self.inner.lock().await;
        Ok(inner.nets.values().map(|r| r.info()).collect())
    }
    async fn attach(&self, network: &str, request: AttachRequest) -> Result<EndpointInfo> {
        self.do_attach(network, request).await
    }
    async fn detach(&self, network: &str, container_id: &ContainerId) -> Result<()> {
        self.do_detach(network, container_id.as_str()).await
    }
}

/// Where a driver keeps a network's record (for tools and tests).
pub fn record_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("networks")
}

#[cfg(test)]
mod tests {
    use super::NetworkRecord;

    /// A record in the file format written before `NetworkMeta` (every
    /// field at the top) loads, and is written back the same.
    #[test]
    fn network_records_keep_their_file_format() {
        let file = r#"{"id":"ab12","name":"front","subnet":"172.18.0.0/16","gateway":"172.18.0.1",
            "subnet6":"fd00:1::/64","gateway6":"fd00:1::1","internal":true,"labels":{"k":"v"},
            "options":{"o":"1"},"bridge":"br-ab12","created_unix":7,"endpoints":{}}"#;
        let r: NetworkRecord = serde_json::from_str(file).unwrap();
        assert_eq!((r.meta.id.as_str(), r.meta.name.as_str(), r.bridge.as_str()), ("ab12", "front", "br-ab12"));
        assert_eq!(r.meta.subnet6.map(|s| s.to_string()).as_deref(), Some("fd00:1::/64"));
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(file).unwrap());
    }
}
