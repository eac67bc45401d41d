//! `/networks`: list, inspect, create, remove, prune, connect and
//! disconnect, through the daemon's [`NetworkDriver`] and manager.
//! `host` and `none` are always listed (driver `host` and `null`); without
//! a driver, so is an inert `bridge`.

use super::State;
use crate::convert;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use engine_api::models::NetworkBody;
use engine_core::network::{IpPrefix, NetworkInfo, NetworkSpec};
use engine_core::{Error, ListFilter, NetworkDriver, Result};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The predefined networks that are not the driver's.
const BUILTIN: [(&str, &str); 3] = [("bridge", "bridge"), ("host", "host"), ("none", "null")];

fn builtin_id(name: &str) -> String {
    // A stable id per name.
    format!("{:0<64}", name.bytes().map(|b| format!("{b:02x}")).collect::<String>())
}

fn builtin_body(name: &str, driver: &str) -> NetworkBody {
    NetworkBody {
        name: name.into(),
        id: builtin_id(name),
        created: convert::ZERO_TIME.into(),
        scope: "local".into(),
        driver: driver.into(),
        enable_ipv6: false,
        ipam: json!({"Driver": "default", "Options": null, "Config": []}),
        internal: false,
        attachable: false,
        ingress: false,
        config_from: json!({"Network": ""}),
        config_only: false,
        containers: json!({}),
        options: HashMap::new(),
        labels: HashMap::new(),
    }
}

/// A driver's network in dockerd's shape; `names` maps container ids to
/// names for `Containers` (empty in lists, as dockerd leaves it).
fn body(n: &NetworkInfo, names: Option<&HashMap<String, String>>) -> NetworkBody {
    let config: Vec<Value> = n
        .ipam
        .iter()
        .map(|c| {
            let mut v = json!({"Subnet": c.subnet.to_string()});
            if let Some(g) = c.gateway {
                v["Gateway"] = json!(g.to_string());
            }
            v
        })
        .collect();
    let containers = match names {
        None => json!({}),
        Some(names) => Value::Object(
            n.endpoints
                .iter()
                .map(|(cid, ep)| {
                    (
                        cid.clone(),
                        json!({
                            "Name": names.get(cid).cloned().unwrap_or_default(),
                            "EndpointID": ep.endpoint_id,
                            "MacAddress": ep.mac.to_string(),
                            "IPv4Address": ep.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                            "IPv6Address": ep.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                        }),
                    )
                })
                .collect(),
        ),
    };
    let mut options: HashMap<String, String> = n.options.clone().into_iter().collect();
    if let Some(i) = &n.interface {
        options.entry(engine_core_bridge_name_opt().into()).or_insert_with(|| i.clone());
    }
    NetworkBody {
        name: n.name.clone(),
        id: n.id.clone(),
        created: engine_core::time::format_rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(n.created_unix),
        ),
        scope: "local".into(),
        driver: n.driver.clone(),
        enable_ipv6: n.ipam.iter().any(|c| c.subnet.addr().is_ipv6()),
        ipam: json!({"Driver": "default", "Options": {}, "Config": config}),
        internal: n.internal,
        attachable: false,
        ingress: false,
        config_from: json!({"Network": ""}),
        config_only: false,
        containers,
        options,
        labels: n.labels.clone().into_iter().collect(),
    }
}

fn engine_core_bridge_name_opt() -> &'static str {
    "com.docker.network.bridge.name"
}

fn driver(st: &State) -> Result<&Arc<dyn NetworkDriver>> {
    st.network.as_ref().ok_or_else(|| {
        Error::invalid(
            "networks",
            "user-defined networks need engined's bridge networking (start engined with --network-driver bridge)",
        )
    })
}

/// Every network: the driver's (with `bridge`, made on first use) and the
/// builtin ones.
async fn all(st: &State) -> Result<Vec<NetworkBody>> {
    let mut out = Vec::new();
    match &st.network {
        Some(d) => {
            d.default_network().await?;
            for n in d.list_networks().await? {
                out.push(body(&n, None));
            }
            for (n, drv) in &BUILTIN[1..] {
                out.push(builtin_body(n, drv));
            }
        }
        None => out.extend(BUILTIN.iter().map(|(n, d)| builtin_body(n, d))),
    }
    Ok(out)
}

fn is_builtin(name: &str) -> bool {
    BUILTIN.iter().any(|(n, _)| *n == name)
}

pub(crate) async fn list(st: &State, q: &Query) -> Result<Resp> {
    let f = q.filters()?;
    for k in f.keys() {
        if !["name", "id", "driver", "label", "type", "scope", "dangling"].contains(&k.as_str()) {
            return Err(Error::invalid("filters", format!("invalid filter '{k}'")));
        }
    }
    let mut nets = all(st).await?;
    let used: Option<Vec<String>> = match f.get("dangling") {
        Some(_) => Some(
            st.manager
                .list(ListFilter::default().all(true))
                .await?
                .into_iter()
                .flat_map(|c| c.networks.into_values().map(|e| e.network_id))
                .collect(),
        ),
        None => None,
    };
    nets.retain(|n| {
        let any = |k: &str, p: &dyn Fn(&str) -> bool| f.get(k).is_none_or(|v| v.iter().any(|x| p(x)));
        any("name", &|x| n.name.contains(x))
            && any("id", &|x| n.id.starts_with(x))
            && any("driver", &|x| n.driver == x)
            && any("scope", &|x| x == "local")
            && any("type", &|x| (x == "builtin") == is_builtin(&n.name))
            && f.get("label").is_none_or(|v| {
                v.iter().all(|l| match l.split_once('=') {
                    Some((k, val)) => n.labels.get(k).is_some_and(|x| x == val),
                    None => n.labels.contains_key(l),
                })
            })
            && any("dangling", &|x| {
                let dangling = !is_builtin(&n.name) && !used.as_ref().is_some_and(|u| u.contains(&n.id));
                (x == "true" || x == "1") == dangling
            })
    });
    Ok(h::json(StatusCode::OK, &nets))
}

async fn container_names(st: &State) -> Result<HashMap<String, String>> {
    Ok(st.manager.list(ListFilter::default().all(true)).await?.into_iter().map(|c| (c.id, c.name)).collect())
}

pub(crate) async fn inspect(st: &State, name: &str) -> Result<Resp> {
    if let Some(d) = &st.network {
        match d.inspect_network(name).await {
            Ok(n) => {
                let names = container_names(st).await?;
                return Ok(h::json(StatusCode::OK, &body(&n, Some(&names))));
            }
            Err(e) if !e.is_not_found() => return Err(e),
            Err(_) if name == "bridge" => {
                let n = d.default_network().await?;
                return Ok(h::json(StatusCode::OK, &body(&n, Some(&HashMap::new()))));
            }
            Err(_) => {}
        }
    }
    all(st)
        .await?
        .into_iter()
        .find(|n| is_builtin(&n.name) && (n.name == name || (name.len() >= 3 && n.id.starts_with(name))))
        .map(|n| h::json(StatusCode::OK, &n))
        .ok_or_else(|| Error::not_found("network", name))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamPool {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
    auxiliary_addresses: Option<HashMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    config: Option<Vec<IpamPool>>,
    options: Option<HashMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_only: bool,
    scope: String,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

/// `docker network create`'s body as a spec; what the engine cannot honour
/// is a 400 naming it.
fn spec_of(b: CreateBody) -> Result<NetworkSpec> {
    if b.name.is_empty() {
        return Err(Error::invalid("field Name", "a network needs a name"));
    }
    if !b.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        || !b.name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(Error::invalid(
            "field Name",
            format!("invalid network name {:?}: [a-zA-Z0-9][a-zA-Z0-9_.-]*", b.name),
        ));
    }
    for (set, field) in [(b.attachable, "Attachable"), (b.ingress, "Ingress"), (b.config_only, "ConfigOnly")] {
        if set {
            return Err(Error::invalid(format!("field {field}"), "swarm networks are not supported by this engine"));
        }
    }
    if !(b.scope.is_empty() || b.scope == "local") {
        return Err(Error::invalid("field Scope", format!("{:?}: only local networks exist here", b.scope)));
    }
    let mut spec = NetworkSpec::new(&b.name).internal(b.internal);
    if !b.driver.is_empty() {
        spec = spec.driver(&b.driver);
    }
    let ipam = b.ipam.unwrap_or_default();
    if !(ipam.driver.is_empty() || ipam.driver == "default") {
        return Err(Error::invalid(
            "field IPAM.Driver",
            format!("{:?}: only the default IPAM driver exists", ipam.driver),
        ));
    }
    if ipam.options.is_some_and(|o| !o.is_empty()) {
        return Err(Error::invalid("field IPAM.Options", "IPAM options are not supported by this engine"));
    }
    for p in ipam.config.unwrap_or_default() {
        if !p.ip_range.is_empty() {
            return Err(Error::invalid("field IPAM.Config.IPRange", "--ip-range is not supported by this engine"));
        }
        if p.auxiliary_addresses.is_some_and(|a| !a.is_empty()) {
            return Err(Error::invalid("field IPAM.Config.AuxiliaryAddresses", "--aux-address is not supported"));
        }
        if p.subnet.is_empty() {
            return Err(Error::invalid("field IPAM.Config.Subnet", "a gateway needs a subnet"));
        }
        let subnet: IpPrefix = p
            .subnet
            .parse()
            .map_err(|_| Error::invalid("field IPAM.Config.Subnet", format!("invalid subnet {:?}", p.subnet)))?;
        if !subnet.is_network() {
            return Err(Error::invalid(
                "field IPAM.Config.Subnet",
                format!("invalid subnet {}: it should be {}", subnet, subnet.network()),
            ));
        }
        spec = spec.subnet(subnet);
        if !p.gateway.is_empty() {
            let gw = p
                .gateway
                .parse()
                .map_err(|_| Error::invalid("field IPAM.Config.Gateway", format!("invalid gateway {:?}", p.gateway)))?;
            spec = spec.gateway(gw);
        }
    }
    if b.enable_ipv6 == Some(true) && !spec.ipam.iter().any(|c| c.subnet.addr().is_ipv6()) {
        return Err(Error::invalid("field EnableIPv6", "IPv6 needs an IPv6 --subnet (there is no default IPv6 pool)"));
    }
    for (k, v) in b.options.unwrap_or_default() {
        spec = spec.option(k, v);
    }
    for (k, v) in b.labels.unwrap_or_default() {
        spec = spec.label(k, v);
    }
    Ok(spec)
}

pub(crate) async fn create(st: &State, body: Incoming) -> Result<Resp> {
    let data = match h::read_limited(body, st.config.max_json_body).await {
        Ok(d) => d,
        Err(e) => return Ok(e.response()),
    };
    let b: CreateBody = convert::parse_body(&data, "network config")?;
    let spec = spec_of(b)?;
    match spec.driver.as_str() {
        "bridge" => {}
        "host" | "null" => {
            return Ok(h::error_status(
                StatusCode::FORBIDDEN,
                format!("only one instance of \"{}\" network is allowed", spec.driver),
            ))
        }
        // The driver's own name, or a plugin's when the driver routes
        // plugin networks (an unknown plugin is a 404 from there).
        d if st.network.as_ref().is_some_and(|n| n.serves_driver(d)) => {}
        // A driver that routes no plugins (engine-lifecycled's, with
        // --lifecycle): refused, rather than a plugin said to be missing.
        other => {
            return Err(match &st.network {
                Some(n) => Error::Unsupported(format!(
                    "network driver {other:?}: network plugins are served by engined's own network router;                      this engine's networks are the {} driver's (engined --lifecycle)",
                    n.name()
                )),
                None => Error::not_found("plugin", other),
            })
        }
    }
    let d = driver(st)?;
    if is_builtin(&spec.name) || d.inspect_network(&spec.name).await.is_ok_and(|n| n.name == spec.name) {
        return Err(Error::conflict("network", &spec.name, format!("network with name {} already exists", spec.name)));
    }
    let name = spec.name.clone();
    match d.create_network(spec).await {
        Ok(n) => {
            st.events.publish_network("create", &n.id, &n.name);
            Ok(h::json(StatusCode::CREATED, &json!({"Id": n.id, "Warning": ""})))
        }
        Err(Error::Conflict { reason, .. }) if reason.contains("overlaps") => Ok(h::error_status(
            StatusCode::FORBIDDEN,
            format!("Pool overlaps with other one on this address space ({name}: {reason})"),
        )),
        Err(e) => Err(e),
    }
}

pub(crate) async fn remove(st: &State, name: &str) -> Result<Resp> {
    if let Some((n, _)) = BUILTIN.iter().find(|(n, _)| *n == name) {
        return Ok(h::error_status(
            StatusCode::FORBIDDEN,
            format!("{n} is a pre-defined network and cannot be removed"),
        ));
    }
    let d = st.network.as_ref().ok_or_else(|| Error::not_found("network", name))?;
    let n = d.inspect_network(name).await?;
    if n.name == "bridge" {
        return Ok(h::error_status(StatusCode::FORBIDDEN, "bridge is a pre-defined network and cannot be removed"));
    }
    match d.remove_network(&n.id).await {
        Ok(()) => {
            st.events.publish_network("destroy", &n.id, &n.name);
            Ok(h::status(StatusCode::NO_CONTENT))
        }
        // dockerd answers 403 Forbidden here.
        Err(Error::Conflict { reason, .. }) if reason.contains("endpoints") => Ok(h::error_status(
            StatusCode::FORBIDDEN,
            format!("error while removing network: network {} id {} has active endpoints", n.name, n.id),
        )),
        Err(e) => Err(e),
    }
}

pub(crate) async fn prune(st: &State, q: &Query) -> Result<Resp> {
    let f = q.filters()?;
    for k in f.keys() {
        if !["label", "label!", "until"].contains(&k.as_str()) {
            return Err(Error::invalid("filters", format!("invalid filter '{k}'")));
        }
    }
    if f.contains_key("until") {
        return Err(Error::invalid("filters", "the until filter is not supported by this engine"));
    }
    let mut deleted = Vec::new();
    if let Some(d) = &st.network {
        for n in d.list_networks().await? {
            if n.name == "bridge" || !n.endpoints.is_empty() {
                continue;
            }
            let has = |l: &String| match l.split_once('=') {
                Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                None => n.labels.contains_key(l),
            };
            if !f.get("label").is_none_or(|v| v.iter().all(has)) || f.get("label!").is_some_and(|v| v.iter().any(has)) {
                continue;
            }
            match d.remove_network(&n.id).await {
                Ok(()) => {
                    st.events.publish_network("destroy", &n.id, &n.name);
                    deleted.push(n.name.clone());
                }
                // An endpoint arrived meanwhile: it stays, as dockerd does.
                Err(e) if e.is_conflict() || e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(h::json(StatusCode::OK, &json!({ "NetworksDeleted": deleted })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConnectBody {
    container: String,
    #[serde(default)]
    endpoint_config: Option<EndpointConfigBody>,
    #[serde(default)]
    #[allow(dead_code)]
    force: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct EndpointConfigBody {
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default, rename = "IPAMConfig")]
    ipam_config: Option<IpamConfigBody>,
}

#[derive(Deserialize, Default)]
struct IpamConfigBody {
    #[serde(default, rename = "IPv4Address")]
    ipv4: Option<String>,
}

/// `POST /networks/{id}/connect` and `/disconnect`: a container joins or
/// leaves a network through the manager (a new interface in its
/// namespace, or one removed, and the hosts files kept current).
pub(crate) async fn connect(st: &State, name: &str, connect: bool, body: Incoming) -> Result<Resp> {
    let data = match h::read_limited(body, st.config.max_json_body).await {
        Ok(d) => d,
        Err(e) => return Ok(e.response()),
    };
    let b: ConnectBody = convert::parse_body(&data, "network connect request")?;
    if is_builtin(name) && st.network.as_ref().is_none_or(|_| name != "bridge") {
        return Err(Error::Unsupported(format!(
            "connecting a running container to network {name}: choose it at create (--network {name})"
        )));
    }
    let net = driver(st)?.inspect_network(name).await?;
    if b.container.is_empty() {
        return Err(Error::invalid("Container", "a container is required"));
    }
    if connect {
        let mut opts = engine_core::network::ConnectOptions::new();
        if let Some(ec) = b.endpoint_config {
            for a in ec.aliases.unwrap_or_default() {
                opts = opts.alias(a);
            }
            if let Some(ip) = ec.ipam_config.and_then(|c| c.ipv4).filter(|s| !s.is_empty()) {
                opts = opts.ipv4(ip.parse().map_err(|_| Error::invalid("IPv4Address", format!("{ip:?}")))?);
            }
        }
        st.manager.connect_network(&b.container, &net.id, opts).await?;
        st.events.publish_network("connect", &net.id, &net.name);
    } else {
        st.manager.disconnect_network(&b.container, &net.id).await?;
        st.events.publish_network("disconnect", &net.id, &net.name);
    }
    Ok(h::json(StatusCode::OK, &json!({})))
}
