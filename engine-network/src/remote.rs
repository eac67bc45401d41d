//! Docker's remote network driver: networks whose driver is a plugin
//! speaking the `NetworkDriver` interface of the plugin protocol (v1).

use crate::bridge;
use crate::netns::Netns;
use crate::record::{self, EpState, NetworkMeta};
use crate::{ipam, link};
use async_trait::async_trait;
use engine_core::network::{
    AttachRequest, EndpointInfo, IpPrefix, IpamConfig, MacAddr, NetworkDriver, NetworkInfo, NetworkSpec,
};
use engine_core::{random_hex64, ContainerId, Error, Result};
use engine_plugin::{PluginError, Plugins};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The interface network plugins announce in `Plugin.Activate`.
pub const NETWORK_INTERFACE: &str = "NetworkDriver";
/// The option carrying `docker network create -o` options to a plugin.
pub const OPT_GENERIC: &str = "com.docker.network.generic";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct EpRecord {
    info: EndpointInfo,
    state: EpState,
    netns: PathBuf,
    /// The name the plugin gave the interface in the host namespace
    /// (`Join`'s `SrcName`): it goes back there, so named, on leave.
    #[serde(default)]
    src_name: Option<String>,
}

/// A plugin network as persisted: `<state>/<id>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NetRecord {
    #[serde(flatten)]
    meta: NetworkMeta,
    plugin: String,
    endpoints: BTreeMap<String, EpRecord>,
}

impl record::Record for NetRecord {
    fn meta(&self) -> &NetworkMeta {
        &self.meta
    }
}

impl NetRecord {
    fn info(&self) -> NetworkInfo {
        let mut n = self.meta.info(&self.plugin);
        // Endpoints still attaching are listed too: the manager's recovery
        // detaches those of a create that was cut short.
        n.endpoints = self.endpoints.iter().map(|(k, e)| (k.clone(), e.info.clone())).collect();
        n
    }

    /// docker's `IPAMData` for the plugin: pool, gateway with the pool's
    /// prefix, no auxiliary addresses.
    fn ipam_data(&self) -> (Value, Value) {
        let v4 = json!([{
            "AddressSpace": "LocalDefault",
            "Pool": self.meta.subnet.to_string(),
            "Gateway": format!("{}/{}", self.meta.gateway, self.meta.subnet.prefix()),
            "AuxAddresses": {},
        }]);
        let v6 = match (self.meta.subnet6, self.meta.gateway6) {
            (Some(s), Some(g)) => json!([{
                "AddressSpace": "LocalDefault",
                "Pool": s.to_string(),
                "Gateway": format!("{g}/{}", s.prefix()),
                "AuxAddresses": {},
            }]),
            _ => json!([]),
        };
        (v4, v6)
    }
}

#[derive(Deserialize, Default)]
struct CapsAnswer {
    #[serde(rename = "Scope", default)]
    scope: String,
}

#[derive(Deserialize, Default)]
struct WireInterface {
    #[serde(rename = "Address", default)]
    address: String,
    #[serde(rename = "AddressIPv6", default)]
    address6: String,
    #[serde(rename = "MacAddress", default)]
    mac: String,
}

#[derive(Deserialize, Default)]
struct CreateEndpointAnswer {
    #[serde(rename = "Interface", default)]
    interface: Option<WireInterface>,
}

#[derive(Deserialize, Default)]
struct InterfaceName {
    #[serde(rename = "SrcName", default)]
    src: String,
    #[serde(rename = "DstName", default)]
    dst: String,
    #[serde(rename = "DstPrefix", default)]
    dst_prefix: String,
}

#[derive(Deserialize, Default)]
struct WireRoute {
    #[serde(rename = "Destination", default)]
    destination: String,
    #[serde(rename = "RouteType", default)]
    route_type: i64,
    #[serde(rename = "NextHop", default)]
    next_hop: String,
}

#[derive(Deserialize, Default)]
struct JoinAnswer {
    #[serde(rename = "InterfaceName", default)]
    interface: Option<InterfaceName>,
    #[serde(rename = "Gateway", default)]
    gateway: String,
    #[serde(rename = "GatewayIPv6", default)]
    gateway6: String,
    #[serde(rename = "StaticRoutes", default)]
    routes: Option<Vec<WireRoute>>,
    #[serde(rename = "DisableGatewayService", default)]
    _disable_gateway_service: bool,
}

#[derive(Deserialize, Default)]
struct OperInfoAnswer {
    #[serde(rename = "Value", default)]
    _value: Option<serde_json::Map<String, Value>>,
}

/// An answer that carries nothing but `Err` (checked by the client).
#[derive(Deserialize)]
struct Empty {}

/// What a Join answer asks the engine to do, checked.
struct Plumbing {
    src: String,
    dst_prefix: Option<String>,
    dst_name: Option<String>,
    gateway4: Option<Ipv4Addr>,
    gateway6: Option<Ipv6Addr>,
    routes: Vec<(IpPrefix, Option<IpAddr>)>,
}

/// How far an attach got, for undoing it.
#[derive(Default)]
struct Progress {
    created: bool,
    joined: bool,
    /// The interface is in the container as this name.
    moved: Option<String>,
    /// The name the plugin gave it (`SrcName`).
    src: Option<String>,
}

/// Docker's remote network driver: every network whose driver is a
/// plugin (`docker network create -d <plugin>`), through the plugin's
/// `NetworkDriver` interface.
///
/// The engine keeps doing IPAM, as dockerd does with its default IPAM
/// driver: a network's subnet (given, or the first free `/16` of
/// `172.18.0.0/16`..`172.31.0.0/16`) and gateway go to the plugin in
/// `CreateNetwork`'s `IPv4Data`/`IPv6Data`, each endpoint's address in
/// `CreateEndpoint`'s `Interface`. The plugin makes the interface in the
/// host namespace and names it in `Join`'s `InterfaceName.SrcName`; the
/// engine moves it into the container's namespace, renames it
/// `DstPrefix` + the first free index, gives it the MAC, addresses,
/// gateway and `StaticRoutes`, and on leave moves it back under its
/// `SrcName` before `Leave` and `DeleteEndpoint`.
///
/// Networks and endpoints (the leases) are records under the state
/// directory, written atomically: a plugin network outlives a restart,
/// and its plugin is found again by name on first use.
pub struct RemoteDriver {
    plugins: Arc<Plugins>,
    dir: PathBuf,
    host: Netns,
    nl: rtnetlink::Handle,
    resolv_conf: PathBuf,
    pool: Vec<IpPrefix>,
    nets: Mutex<BTreeMap<String, NetRecord>>,
    /// Plugins whose `GetCapabilities` was checked.
    checked: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for RemoteDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteDriver").field("dir", &self.dir).field("host", &self.host.path()).finish()
    }
}

impl RemoteDriver {
    /// Open the driver over `plugins`, keeping its records under
    /// `state_dir` (created if missing); interfaces the plugins make are
    /// looked for in `host_netns` (default: the caller's namespace).
    pub async fn open(plugins: Arc<Plugins>, state_dir: impl Into<PathBuf>, host_netns: Option<&Path>) -> Result<Self> {
        let dir = state_dir.into();
        let nets = record::load(&dir)?;
        let host = match host_netns {
            Some(p) => Netns::open(p)?,
            None => Netns::current()?,
        };
        let nl = host.netlink().await?;
        Ok(RemoteDriver {
            plugins,
            dir,
            host,
            nl,
            resolv_conf: "/etc/resolv.conf".into(),
            pool: (18..=31).map(|i| format!("172.{i}.0.0/16").parse().expect("literal")).collect(),
            nets: Mutex::new(nets),
            checked: Mutex::new(BTreeSet::new()),
        })
    }

    /// The plugin registry.
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.plugins
    }

    /// The id of plugin network `network` (a name, an id or a unique id
    /// prefix), if it is one of this driver's.
    pub async fn find(&self, network: &str) -> Option<String> {
        let nets = self.nets.lock().await;
        resolve(&nets, network).ok().map(|r| r.meta.id.clone())
    }

    /// The subnets of the plugin networks.
    pub async fn subnets(&self) -> Vec<IpPrefix> {
        self.nets.lock().await.values().flat_map(|r| r.meta.subnets()).collect()
    }

    /// The first subnet of the default pool that overlaps none of `taken`,
    /// no plugin network and no route of the host namespace.
    pub async fn free_subnet(&self, taken: &[IpPrefix]) -> Result<IpPrefix> {
        let mine = self.subnets().await;
        let routed = link::ipv4_routes(&self.nl).await?;
        self.pool
            .iter()
            .find(|p| !taken.iter().chain(&mine).chain(&routed).any(|t| t.overlaps(p)))
            .copied()
            .ok_or_else(|| Error::unavailable("address pool", "every subnet of the pool is in use"))
    }

    /// Create plugin network `spec` (its `driver` names the plugin); its
    /// subnets must not overlap `taken` (other drivers' networks).
    pub async fn create(&self, spec: NetworkSpec, taken: &[IpPrefix]) -> Result<NetworkInfo> {
        if !bridge::valid_name(&spec.name) {
            return Err(Error::invalid(
                format!("network name {:?}", spec.name),
                "letters, digits and _.- , starting with a letter or digit",
            ));
        }
        let plugin = spec.driver.clone();
        let subnet = match spec.ipam.iter().filter(|c| c.subnet.addr().is_ipv4()).collect::<Vec<_>>().as_slice() {
            [] => None,
            [c] => Some((*c).clone()),
            _ => return Err(Error::Unsupported("more than one IPv4 subnet per network".into())),
        };
        let v6 = match spec.ipam.iter().filter(|c| c.subnet.addr().is_ipv6()).collect::<Vec<_>>().as_slice() {
            [] => None,
            [c] => Some((*c).clone()),
            _ => return Err(Error::Unsupported("more than one IPv6 subnet per network".into())),
        };
        let (subnet, gateway) = match subnet {
            None => {
                let s = self.free_subnet(taken).await?;
                (s, ipam::default_gateway(s)?)
            }
            Some(c) => {
                if c.subnet.prefix() == 0 {
                    return Err(Error::invalid("gateway", "a gateway needs a subnet"));
                }
                ipam::check_subnet(c.subnet)?;
                (c.subnet, ipam::gateway4(&c)?)
            }
        };
        let v6 = match v6 {
            None => None,
            Some(c) => Some((c.subnet, ipam::gateway6(&c)?)),
        };
        let mut nets = self.nets.lock().await;
        if nets.values().any(|r| r.meta.name == spec.name) {
            return Err(Error::conflict("network", &spec.name, "a network with this name exists"));
        }
        let mine: Vec<IpPrefix> = nets.values().flat_map(|r| r.meta.subnets()).collect();
        for s in std::iter::once(subnet).chain(v6.map(|v| v.0)) {
            if let Some(t) = taken.iter().chain(&mine).find(|t| t.overlaps(&s)) {
                return Err(Error::conflict("network", &spec.name, format!("subnet {s} overlaps {t}")));
            }
        }
        let r = NetRecord {
            meta: NetworkMeta::new(random_hex64(), &spec, (subnet, gateway), v6),
            plugin: plugin.clone(),
            endpoints: BTreeMap::new(),
        };
        let mut options = json!({
            OPT_GENERIC: spec.options,
            "com.docker.network.enable_ipv6": r.meta.subnet6.is_some(),
        });
        if spec.internal {
            options["com.docker.network.internal"] = json!(true);
        }
        let (v4data, v6data) = r.ipam_data();
        let _: Empty = self
            .call(
                &plugin,
                "CreateNetwork",
                json!({"NetworkID": r.meta.id, "Options": options, "IPv4Data": v4data, "IPv6Data": v6data}),
            )
            .await?;
        if let Err(e) = self.persist(&r) {
            if let Err(e2) = self.call::<Empty>(&plugin, "DeleteNetwork", json!({"NetworkID": r.meta.id})).await {
                tracing::warn!(network = %r.meta.name, %plugin, "deleting a network whose record failed: {e2}");
            }
            return Err(e);
        }
        tracing::info!(network = %r.meta.name, %plugin, %subnet, "plugin network created");
        let info = r.info();
        nets.insert(r.meta.id.clone(), r);
        Ok(info)
    }

    /// Call `NetworkDriver.<method>` of `plugin`, activating it (and
    /// checking its capabilities) on first use.
    async fn call<T: DeserializeOwned>(&self, plugin: &str, method: &str, body: Value) -> Result<T> {
        let p = self.plugins.get(plugin, NETWORK_INTERFACE).await?;
        if !self.checked.lock().await.contains(plugin) {
            let caps: CapsAnswer = p.client().call("NetworkDriver.GetCapabilities", &json!({})).await?;
            if caps.scope != "local" {
                return Err(PluginError::BadAnswer {
                    name: plugin.to_string(),
                    method: "NetworkDriver.GetCapabilities".into(),
                    reason: format!("scope {:?}: only local network drivers are supported (no swarm)", caps.scope),
                }
                .into());
            }
            self.checked.lock().await.insert(plugin.to_string());
        }
        Ok(p.client().call(&format!("NetworkDriver.{method}"), &body).await?)
    }

    fn bad(plugin: &str, method: &str, reason: String) -> Error {
        PluginError::BadAnswer { name: plugin.to_string(), method: format!("NetworkDriver.{method}"), reason }.into()
    }

    fn persist(&self, r: &NetRecord) -> Result<()> {
        record::save(&self.dir, r)
    }

    fn unpersist(&self, id: &str) -> Result<()> {
        record::delete(&self.dir, id)
    }

    /// Remove a plugin network (`DeleteNetwork`); a conflict while it has
    /// endpoints. A plugin that fails keeps the network.
    pub async fn remove(&self, network: &str) -> Result<()> {
        let mut nets = self.nets.lock().await;
        let r = resolve(&nets, network)?.clone();
        if !r.endpoints.is_empty() {
            let names: Vec<&str> = r.endpoints.keys().map(|s| s.as_str()).collect();
            return Err(Error::conflict(
                "network",
                &r.meta.name,
                format!("has active endpoints ({})", names.join(", ")),
            ));
        }
        let _: Empty = self.call(&r.plugin, "DeleteNetwork", json!({"NetworkID": r.meta.id})).await?;
        self.unpersist(&r.meta.id)?;
        nets.remove(&r.meta.id);
        tracing::info!(network = %r.meta.name, plugin = %r.plugin, "plugin network removed");
        Ok(())
    }

    /// One plugin network.
    pub async fn inspect(&self, network: &str) -> Result<NetworkInfo> {
        Ok(resolve(&*self.nets.lock().await, network)?.info())
    }

    /// Every plugin network.
    pub async fn list(&self) -> Vec<NetworkInfo> {
        self.nets.lock().await.values().map(|r| r.info()).collect()
    }

    /// Attach: lease, `CreateEndpoint`, `Join`, the interface moved in and
    /// configured, `EndpointOperInfo`. Any failure undoes what was done.
    pub async fn attach(&self, network: &str, req: AttachRequest) -> Result<EndpointInfo> {
        bridge::check_request(&req)?;
        let ns = Netns::open(&req.netns)?;
        let (rec, mut info) = {
            let mut nets = self.nets.lock().await;
            let r = resolve(&nets, network)?.clone();
            if !req.ports.is_empty() {
                return Err(Error::Unsupported(format!(
                    "published ports on network {} (driver {}): the remote driver publishes no ports (use a bridge network)",
                    r.meta.name, r.plugin
                )));
            }
            let (ip, ip6) = bridge::lease_for(
                &r.meta.name,
                (r.meta.subnet, r.meta.gateway),
                r.meta.subnet6.zip(r.meta.gateway6),
                r.endpoints.values().map(|e| &e.info),
                &req,
            )?;
            let eid = random_hex64();
            let mut info = EndpointInfo::new(
                &r.meta.id,
                &r.meta.name,
                &req.container_id,
                &eid,
                &req.interface,
                req.mac.unwrap_or(MacAddr::new([0; 6])),
            );
            info.ipv4 = Some(IpPrefix::new(IpAddr::V4(ip), r.meta.subnet.prefix())?);
            info.ipv6 = ip6;
            info.dns = if req.dns.is_empty() { bridge::host_dns(&self.resolv_conf) } else { req.dns.clone() };
            info.aliases = req.aliases.clone();
            let mut rec = r.clone();
            rec.endpoints.insert(
                req.container_id.clone(),
                EpRecord { info: info.clone(), state: EpState::Attaching, netns: req.netns.clone(), src_name: None },
            );
            // The lease is on disk before the plugin hears of the endpoint.
            self.persist(&rec)?;
            nets.insert(rec.meta.id.clone(), rec.clone());
            (rec, info)
        };
        let mut progress = Progress::default();
        let res = self.join(&rec, &req, &ns, &mut info, &mut progress).await;
        let mut nets = self.nets.lock().await;
        let Some(mut cur) = nets.get(&rec.meta.id).cloned() else {
            return Err(Error::Other(format!("network {} vanished during an attach", rec.meta.name)));
        };
        match res {
            Ok(src) => {
                let ep = cur.endpoints.get_mut(&req.container_id).expect("recorded");
                ep.info = info.clone();
                ep.state = EpState::Attached;
                ep.src_name = Some(src);
                if let Err(e) = self.persist(&cur) {
                    drop(nets);
                    self.undo(&rec, &info, &ns, progress).await;
                    self.release(&rec.meta.id, &req.container_id).await;
                    return Err(e);
                }
                nets.insert(cur.meta.id.clone(), cur);
                tracing::info!(network = %rec.meta.name, plugin = %rec.plugin, container = %req.container_id, "endpoint attached");
                Ok(info)
            }
            Err(e) => {
                drop(nets);
                self.undo(&rec, &info, &ns, progress).await;
                self.release(&rec.meta.id, &req.container_id).await;
                Err(e)
            }
        }
    }

    /// Forget an endpoint's lease.
    async fn release(&self, id: &str, container_id: &str) {
        let mut nets = self.nets.lock().await;
        if let Some(r) = nets.get_mut(id) {
            if r.endpoints.remove(container_id).is_some() {
                if let Err(e) = self.persist(r) {
                    tracing::warn!(network = %r.meta.name, container = %container_id, "releasing a lease: {e}");
                }
            }
        }
    }

    /// The attach's protocol and plumbing; returns the interface's
    /// `SrcName`.
    async fn join(
        &self,
        r: &NetRecord,
        req: &AttachRequest,
        ns: &Netns,
        info: &mut EndpointInfo,
        progress: &mut Progress,
    ) -> Result<String> {
        let p = &r.plugin;
        let eid = info.endpoint_id.clone();
        let sent_mac = req.mac;
        let a: CreateEndpointAnswer = self
            .call(
                p,
                "CreateEndpoint",
                json!({
                    "NetworkID": r.meta.id,
                    "EndpointID": eid,
                    "Interface": {
                        "Address": info.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                        "AddressIPv6": info.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                        "MacAddress": sent_mac.map(|m| m.to_string()).unwrap_or_default(),
                    },
                    "Options": {},
                }),
            )
            .await?;
        progress.created = true;
        // The plugin may fill what the engine left empty, never change
        // what it gave (dockerd's rule).
        let mut mac = sent_mac;
        if let Some(i) = a.interface {
            if !i.mac.is_empty() {
                let m: MacAddr =
                    i.mac.parse().map_err(|_| Self::bad(p, "CreateEndpoint", format!("MacAddress {:?}", i.mac)))?;
                if sent_mac.is_some_and(|s| s != m) {
                    return Err(Self::bad(
                        p,
                        "CreateEndpoint",
                        format!("MacAddress {m}: the engine gave {}", sent_mac.expect("some")),
                    ));
                }
                mac = Some(m);
            }
            for (given, field, mine) in [(&i.address, "Address", info.ipv4), (&i.address6, "AddressIPv6", info.ipv6)] {
                if given.is_empty() {
                    continue;
                }
                let a: IpPrefix =
                    given.parse().map_err(|_| Self::bad(p, "CreateEndpoint", format!("{field} {given:?}")))?;
                if Some(a) != mine {
                    return Err(Self::bad(
                        p,
                        "CreateEndpoint",
                        format!(
                            "{field} {a}: the engine's IPAM gave {} (a plugin cannot change it)",
                            mine.map(|m| m.to_string()).unwrap_or_else(|| "none".into())
                        ),
                    ));
                }
            }
        }
        let j: JoinAnswer = self
            .call(p, "Join", json!({"NetworkID": r.meta.id, "EndpointID": eid, "SandboxKey": req.netns, "Options": {}}))
            .await?;
        progress.joined = true;
        let plumbing = Self::check_join(p, j)?;
        if link::index(&self.nl, &plumbing.src).await?.is_none() {
            return Err(Self::bad(
                p,
                "Join",
                format!("SrcName {:?}: no such interface in the engine's host namespace", plumbing.src),
            ));
        }
        // Into the container under its own name, then renamed there (the
        // destination name may exist in the host namespace).
        let cnl = ns.netlink().await?;
        let names = link::names(&cnl).await?;
        if names.contains(&plumbing.src) {
            return Err(Self::bad(p, "Join", format!("SrcName {:?} exists in the container", plumbing.src)));
        }
        let dst = match (&plumbing.dst_prefix, &plumbing.dst_name) {
            (Some(prefix), _) => {
                let n = req.interface.trim_start_matches(|c: char| !c.is_ascii_digit());
                let wanted = format!("{prefix}{n}");
                if !n.is_empty() && !names.contains(&wanted) {
                    wanted
                } else {
                    (0..256)
                        .map(|i| format!("{prefix}{i}"))
                        .find(|c| !names.contains(c))
                        .ok_or_else(|| Self::bad(p, "Join", format!("no free name with DstPrefix {prefix:?}")))?
                }
            }
            (None, Some(name)) => name.clone(),
            (None, None) => req.interface.clone(),
        };
        if !bridge::valid_ifname(&dst) || names.contains(&dst) {
            return Err(Self::bad(p, "Join", format!("interface name {dst:?} is invalid or taken in the container")));
        }
        link::move_to(&self.nl, &plumbing.src, &plumbing.src, ns).await?;
        progress.moved = Some(plumbing.src.clone());
        progress.src = Some(plumbing.src.clone());
        if let Some(m) = mac {
            link::set_mac(&cnl, &plumbing.src, m.octets()).await?;
        }
        if info.ipv6.is_some() {
            ns.write_sysctl("net/ipv6/conf/default/accept_dad", "0").await?;
        }
        link::configure_container(
            &cnl,
            &plumbing.src,
            &dst,
            info.ipv4.expect("allocated"),
            plumbing.gateway4,
            info.ipv6.map(|a| (a, plumbing.gateway6)),
        )
        .await?;
        progress.moved = Some(dst.clone());
        for (dest, via) in &plumbing.routes {
            link::add_route(&cnl, &dst, *dest, *via).await?;
        }
        info.interface = dst.clone();
        info.gateway4 = plumbing.gateway4;
        info.gateway6 = plumbing.gateway6.map(IpAddr::V6);
        info.mac = match link::mac(&cnl, &dst).await? {
            Some(m) => MacAddr::new(m),
            None => mac.unwrap_or(info.mac),
        };
        let _: OperInfoAnswer =
            self.call(p, "EndpointOperInfo", json!({"NetworkID": r.meta.id, "EndpointID": eid})).await?;
        Ok(plumbing.src)
    }

    /// A Join answer, checked.
    fn check_join(p: &str, j: JoinAnswer) -> Result<Plumbing> {
        let bad = |why: String| Self::bad(p, "Join", why);
        let name = j.interface.ok_or_else(|| bad("no InterfaceName".into()))?;
        if !bridge::valid_ifname(&name.src) {
            return Err(bad(format!("InterfaceName.SrcName {:?} is not an interface name", name.src)));
        }
        let gateway4 = match j.gateway.as_str() {
            "" => None,
            g => match g.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => Some(a),
                _ => return Err(bad(format!("Gateway {g:?} is not an IPv4 address"))),
            },
        };
        let gateway6 = match j.gateway6.as_str() {
            "" => None,
            g => match g.parse::<IpAddr>() {
                Ok(IpAddr::V6(a)) => Some(a),
                _ => return Err(bad(format!("GatewayIPv6 {g:?} is not an IPv6 address"))),
            },
        };
        let mut routes = Vec::new();
        for r in j.routes.unwrap_or_default() {
            let dest: IpPrefix =
                r.destination.parse().map_err(|_| bad(format!("StaticRoutes: Destination {:?}", r.destination)))?;
            let via = match (r.route_type, r.next_hop.as_str()) {
                // 0: through a next hop; 1: on the link.
                (0, h) => Some(h.parse::<IpAddr>().map_err(|_| bad(format!("StaticRoutes: NextHop {h:?}")))?),
                (1, _) => None,
                (t, _) => return Err(bad(format!("StaticRoutes: RouteType {t} (0 or 1)"))),
            };
            routes.push((dest, via));
        }
        let opt = |s: String| (!s.is_empty()).then_some(s);
        Ok(Plumbing {
            src: name.src,
            dst_prefix: opt(name.dst_prefix),
            dst_name: opt(name.dst),
            gateway4,
            gateway6,
            routes,
        })
    }

    /// Undo an attach as far as it got: the interface back to the host
    /// namespace under its `SrcName`, `Leave`, `DeleteEndpoint`. The
    /// plugin's failures are logged; an interface the plugin can no
    /// longer take back is deleted.
    async fn undo(&self, r: &NetRecord, info: &EndpointInfo, ns: &Netns, progress: Progress) {
        let p = &r.plugin;
        let eid = &info.endpoint_id;
        let ids = json!({"NetworkID": r.meta.id, "EndpointID": eid});
        let mut plugin_ok = true;
        if progress.joined {
            if let Err(e) = self.call::<Empty>(p, "Leave", ids.clone()).await {
                tracing::warn!(network = %r.meta.name, container = %info.container_id, "{e}");
                plugin_ok = false;
            }
        }
        let mut back = None;
        if let Some(cur) = &progress.moved {
            // The source name is the one the plugin knows it by.
            let res: Result<Option<String>> = async {
                let cnl = ns.netlink().await?;
                if link::index(&cnl, cur).await?.is_none() {
                    return Ok(None);
                }
                match progress.src.as_deref() {
                    Some(src) if plugin_ok => {
                        link::move_to(&cnl, cur, src, &self.host).await?;
                        Ok(Some(src.to_string()))
                    }
                    _ => {
                        link::delete(&cnl, cur).await?;
                        Ok(None)
                    }
                }
            }
            .await;
            match res {
                Ok(b) => back = b,
                Err(e) => {
                    tracing::warn!(network = %r.meta.name, container = %info.container_id, "taking the interface back: {e}")
                }
            }
        }
        if progress.created {
            if let Err(e) = self.call::<Empty>(p, "DeleteEndpoint", ids).await {
                tracing::warn!(network = %r.meta.name, container = %info.container_id, "{e}");
                plugin_ok = false;
            }
        }
        if let Some(b) = back.filter(|_| !plugin_ok) {
            let _ = link::delete(&self.nl, &b).await;
        }
    }

    /// Detach: the interface back to the host, `Leave`, `DeleteEndpoint`,
    /// the lease released. A plugin that fails is logged, not fatal: the
    /// container's removal goes on (dockerd forces it too), and the
    /// interface is deleted so nothing stays behind.
    pub async fn detach(&self, network: &str, container_id: &str) -> Result<()> {
        let (r, ep) = {
            let nets = self.nets.lock().await;
            let r = resolve(&nets, network)?.clone();
            let Some(ep) = r.endpoints.get(container_id).cloned() else {
                return Err(Error::not_found("endpoint", format!("{container_id} on network {}", r.meta.name)));
            };
            (r, ep)
        };
        let attached = ep.state == EpState::Attached;
        match Netns::open(&ep.netns) {
            Ok(ns) => {
                let progress = Progress {
                    created: true,
                    joined: true,
                    moved: attached.then(|| ep.info.interface.clone()),
                    src: ep.src_name.clone(),
                };
                self.undo(&r, &ep.info, &ns, progress).await;
            }
            Err(_) => {
                // The namespace is gone, and the interface with it.
                let ids = json!({"NetworkID": r.meta.id, "EndpointID": ep.info.endpoint_id});
                for m in ["Leave", "DeleteEndpoint"] {
                    if let Err(e) = self.call::<Empty>(&r.plugin, m, ids.clone()).await {
                        tracing::warn!(network = %r.meta.name, container = %container_id, "{e}");
                    }
                }
            }
        }
        self.release(&r.meta.id, container_id).await;
        tracing::info!(network = %r.meta.name, plugin = %r.plugin, container = %container_id, "endpoint detached");
        Ok(())
    }
}

fn resolve<'a>(nets: &'a BTreeMap<String, NetRecord>, network: &str) -> Result<&'a NetRecord> {
    record::resolve(nets, network)
}

/// The engine's network driver when plugins may own networks: a default
/// driver (bridge or CNI) for `bridge` and its own name, and a
/// [`RemoteDriver`] for every other driver name (a plugin's). Every
/// network call goes to the driver that owns the network.
///
/// Both draw user subnets from `172.18.0.0/16`..`172.31.0.0/16`: a bridge
/// network created without a subnet while plugin networks exist gets one
/// that overlaps none of them (the plugin's interfaces need not be routed
/// on the host, where the bridge driver looks).
pub struct NetworkRouter {
    default: Arc<dyn NetworkDriver>,
    remote: RemoteDriver,
}

impl std::fmt::Debug for NetworkRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkRouter").field("default", &self.default.name()).field("remote", &self.remote).finish()
    }
}

impl NetworkRouter {
    /// Route between `default` and the plugin networks of `remote`.
    pub fn new(default: Arc<dyn NetworkDriver>, remote: RemoteDriver) -> Self {
        NetworkRouter { default, remote }
    }

    /// The plugin networks' driver.
    pub fn remote(&self) -> &RemoteDriver {
        &self.remote
    }

    fn is_default(&self, driver: &str) -> bool {
        driver.is_empty() || driver == "bridge" || driver == self.default.name()
    }

    async fn default_subnets(&self) -> Result<Vec<IpPrefix>> {
        Ok(self.default.list_networks().await?.iter().flat_map(|n| n.ipam.iter().map(|c| c.subnet)).collect())
    }
}

#[async_trait]
impl NetworkDriver for NetworkRouter {
    fn name(&self) -> &str {
        self.default.name()
    }
    fn serves_driver(&self, _driver: &str) -> bool {
        // Any name may be a plugin's; an unknown one is a not-found plugin.
        true
    }
    fn host_netns(&self) -> Option<PathBuf> {
        self.default.host_netns()
    }
    async fn create_network(&self, mut spec: NetworkSpec) -> Result<NetworkInfo> {
        if self.remote.inspect(&spec.name).await.is_ok_and(|n| n.name == spec.name) {
            return Err(Error::conflict("network", &spec.name, "a network with this name exists"));
        }
        if self.is_default(&spec.driver) {
            let mine = self.remote.subnets().await;
            if self.default.name() == "bridge"
                && !mine.is_empty()
                && !spec.ipam.iter().any(|c| c.subnet.addr().is_ipv4())
            {
                let taken = self.default_subnets().await?;
                let s = self.remote.free_subnet(&taken).await?;
                spec.ipam.insert(0, IpamConfig { subnet: s, gateway: None });
            }
            return self.default.create_network(spec).await;
        }
        if self.default.inspect_network(&spec.name).await.is_ok_and(|n| n.name == spec.name) {
            return Err(Error::conflict("network", &spec.name, "a network with this name exists"));
        }
        let taken = self.default_subnets().await?;
        self.remote.create(spec, &taken).await
    }
    async fn default_network(&self) -> Result<NetworkInfo> {
        self.default.default_network().await
    }
    async fn remove_network(&self, network: &str) -> Result<()> {
        match self.remote.find(network).await {
            Some(id) => self.remote.remove(&id).await,
            None => self.default.remove_network(network).await,
        }
    }
    async fn inspect_network(&self, network: &str) -> Result<NetworkInfo> {
        match self.remote.find(network).await {
            Some(id) => self.remote.inspect(&id).await,
            None => self.default.inspect_network(network).await,
        }
    }
    async fn list_networks(&self) -> Result<Vec<NetworkInfo>> {
        let mut out = self.default.list_networks().await?;
        out.extend(self.remote.list().await);
        Ok(out)
    }
    async fn attach(&self, network: &str, request: AttachRequest) -> Result<EndpointInfo> {
        match self.remote.find(network).await {
            Some(id) => self.remote.attach(&id, request).await,
            None => self.default.attach(network, request).await,
        }
    }
    async fn detach(&self, network: &str, container_id: &ContainerId) -> Result<()> {
        match self.remote.find(network).await {
            Some(id) => self.remote.detach(&id, container_id.as_str()).await,
            None => self.default.detach(network, container_id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NetRecord;

    /// A plugin network's record in the file format written before
    /// `NetworkMeta` (every field at the top, no IPv6) loads, and is
    /// written back the same.
    #[test]
    fn plugin_network_records_keep_their_file_format() {
        let file = r#"{"id":"cd34","name":"weave","plugin":"weavemesh","subnet":"172.19.0.0/16",
            "gateway":"172.19.0.1","internal":false,"labels":{},"options":{},"created_unix":9,
            "endpoints":{}}"#;
        let r: NetRecord = serde_json::from_str(file).unwrap();
        assert_eq!((r.meta.name.as_str(), r.plugin.as_str(), r.meta.subnet6), ("weave", "weavemesh", None));
        let mut want: serde_json::Value = serde_json::from_str(file).unwrap();
        // Written since before: no IPv6 subnet is `null`.
        want["subnet6"] = serde_json::Value::Null;
        want["gateway6"] = serde_json::Value::Null;
        assert_eq!(serde_json::to_value(&r).unwrap(), want);
    }
}
