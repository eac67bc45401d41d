//! What the bridge and remote drivers record of their networks, and how:
//! one JSON file a network (`<id>.json`) in the driver's record directory,
//! written atomically, read back when the driver opens.

use engine_core::network::{IpPrefix, IpamConfig, NetworkInfo, NetworkSpec};
use engine_core::{Error, IoContext, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Where an endpoint's attach is (the bridge, remote and CNI drivers' records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EpState {
    /// Recorded before the attach's work began (lease and ports taken;
    /// kernel objects, plugin calls): any of it may be half made.
    Attaching,
    /// Done.
    Attached,
}

/// What every driver records of a network, whatever else it keeps
/// (flattened into each driver's record, so the files stay as they were).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct NetworkMeta {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) subnet: IpPrefix,
    pub(crate) gateway: Ipv4Addr,
    /// The IPv6 subnet and gateway of a dual-stack network.
    #[serde(default)]
    pub(crate) subnet6: Option<IpPrefix>,
    #[serde(default)]
    pub(crate) gateway6: Option<Ipv6Addr>,
    pub(crate) internal: bool,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) options: BTreeMap<String, String>,
    pub(crate) created_unix: u64,
}

impl NetworkMeta {
    /// A new network `id` as `spec` asks for it (name, internal, labels,
    /// options), on `subnet` with `gateway`, and `v6` (subnet, gateway) if
    /// dual-stack; created now.
    pub(crate) fn new(
        id: String,
        spec: &NetworkSpec,
        (subnet, gateway): (IpPrefix, Ipv4Addr),
        v6: Option<(IpPrefix, Ipv6Addr)>,
    ) -> Self {
        NetworkMeta {
            id,
            name: spec.name.clone(),
            subnet,
            gateway,
            subnet6: v6.map(|v| v.0),
            gateway6: v6.map(|v| v.1),
            internal: spec.internal,
            labels: spec.labels.clone(),
            options: spec.options.clone(),
            created_unix: now_unix(),
        }
    }

    /// The network as driver `driver` reports it, without its endpoints.
    pub(crate) fn info(&self, driver: &str) -> NetworkInfo {
        let mut n = NetworkInfo::new(&self.id, &self.name, driver);
        n.ipam = vec![IpamConfig { subnet: self.subnet, gateway: Some(IpAddr::V4(self.gateway)) }];
        if let (Some(subnet), Some(g)) = (self.subnet6, self.gateway6) {
            n.ipam.push(IpamConfig { subnet, gateway: Some(IpAddr::V6(g)) });
        }
        n.internal = self.internal;
        n.labels = self.labels.clone();
        n.options = self.options.clone();
        n.created_unix = self.created_unix;
        n
    }

    /// Its subnets: the IPv4 one, then the IPv6 one if any.
    pub(crate) fn subnets(&self) -> impl Iterator<Item = IpPrefix> {
        std::iter::once(self.subnet).chain(self.subnet6)
    }
}

/// A driver's record of one network.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// What every driver records.
    fn meta(&self) -> &NetworkMeta;
}

/// Now, in seconds since the Unix epoch.
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The records (`*.json`) of directory `dir` (created if missing), by id.
pub(crate) fn load<R: Record>(dir: &Path) -> Result<BTreeMap<String, R>> {
    std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).context(|| format!("read {}", dir.display()))? {
        let p = e.context(|| format!("read {}", dir.display()))?.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let data = std::fs::read(&p).context(|| format!("read {}", p.display()))?;
        let r: R = serde_json::from_slice(&data)
            .map_err(|e| Error::Other(format!("corrupt network record {}: {e}", p.display())))?;
        out.insert(r.meta().id.clone(), r);
    }
    Ok(out)
}

/// Write `r` atomically to its file in `dir`.
pub(crate) fn save(dir: &Path, r: &impl Record) -> Result<()> {
    let data = serde_json::to_vec_pretty(r).map_err(|e| Error::Other(format!("encode network record: {e}")))?;
    engine_core::fs::write_atomic(&dir.join(format!("{}.json", r.meta().id)), &data)
}

/// Remove network `id`'s record from `dir`; one already gone is fine.
pub(crate) fn delete(dir: &Path, id: &str) -> Result<()> {
    let path = dir.join(format!("{id}.json"));
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("remove {}", path.display()), e)),
        _ => Ok(()),
    }
}

/// The network `network` names among `nets` (by id): its id, its name, or
/// a unique id prefix.
pub(crate) fn resolve<'a, R: Record>(nets: &'a BTreeMap<String, R>, network: &str) -> Result<&'a R> {
    if let Some(r) = nets.get(network) {
        return Ok(r);
    }
    if let Some(r) = nets.values().find(|r| r.meta().name == network) {
        return Ok(r);
    }
    let hits: Vec<_> = nets.iter().filter(|(id, _)| !network.is_empty() && id.starts_with(network)).collect();
    match hits.as_slice() {
        [(_, one)] => Ok(one),
        [] => Err(Error::not_found("network", network)),
        _ => Err(Error::invalid("network", format!("{network:?} is an ambiguous id prefix"))),
    }
}
