//! The CNI driver: networks are CNI network configuration lists in a
//! directory, endpoints are made by running the lists' plugin binaries.

use crate::bridge::{valid_ifname, valid_name, OPT_BRIDGE_NAME};
use crate::hostport::{self, PortKey};
use crate::netns::Netns;
use crate::record::{now_unix, EpState};
use crate::{ipam, link};
use async_trait::async_trait;
use engine_core::network::{
    AttachRequest, EndpointInfo, IpPrefix, IpamConfig, MacAddr, NetworkDriver, NetworkInfo, NetworkSpec,
};
use engine_core::{random_hex64, ContainerId, Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// The key of a conflist's top-level object where the engine keeps what
/// it knows of a network it made (labels, creation time). CNI runtimes
/// ignore unknown top-level keys and plugins never see them.
const META_KEY: &str = "x-engine";

/// The CNI versions whose results this driver reads.
const VERSIONS: [&str; 6] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "1.1"];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Meta {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    created_unix: u64,
    /// The host-local data directory of a network the engine made.
    #[serde(default)]
    ipam_dir: Option<PathBuf>,
}

/// One network: a conflist file, parsed.
#[derive(Clone, Debug)]
struct NetConf {
    file: PathBuf,
    id: String,
    name: String,
    version: String,
    disable_check: bool,
    plugins: Vec<Map<String, Value>>,
    meta: Option<Meta>,
}

impl NetConf {
    /// Parse a `.conflist`, or a single-plugin `.conf`/`.json` (as libcni does).
    fn parse(file: &Path, data: &[u8]) -> Result<NetConf> {
        let bad = |why: String| Error::invalid(format!("CNI configuration {}", file.display()), why);
        let v: Value = serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
        let Value::Object(mut top) = v else { return Err(bad("not a JSON object".into())) };
        let name = top.get("name").and_then(Value::as_str).ok_or_else(|| bad("no \"name\"".into()))?.to_string();
        let version = top.get("cniVersion").and_then(Value::as_str).unwrap_or("0.3.1").to_string();
        let is_list = file.extension().is_some_and(|x| x == "conflist");
        let plugins = if is_list {
            let list = top.get("plugins").and_then(Value::as_array).ok_or_else(|| bad("no \"plugins\" list".into()))?;
            list.iter()
                .map(|p| p.as_object().cloned().ok_or_else(|| bad("a plugin is not an object".into())))
                .collect::<Result<Vec<_>>>()?
        } else {
            top.remove("name");
            top.remove("cniVersion");
            vec![top.clone()]
        };
        for p in &plugins {
            match p.get("type").and_then(Value::as_str) {
                Some(t) if !t.is_empty() && !t.contains('/') && t != "." && t != ".." => {}
                _ => return Err(bad("a plugin has no valid \"type\"".into())),
            }
        }
        if plugins.is_empty() {
            return Err(bad("no plugins".into()));
        }
        let meta = top.get(META_KEY).and_then(|m| serde_json::from_value(m.clone()).ok());
        Ok(NetConf {
            file: file.to_owned(),
            id: network_id(&name),
            disable_check: top.get("disableCheck").and_then(Value::as_bool).unwrap_or(false),
            name,
            version,
            plugins,
            meta,
        })
    }

    /// The subnets and gateways of its IPAM section (host-local's
    /// `ranges` or the older top-level `subnet`).
    fn ipam(&self) -> Vec<IpamConfig> {
        let mut out = Vec::new();
        let Some(ipam) = self.plugins.iter().find_map(|p| p.get("ipam").and_then(Value::as_object)) else {
            return out;
        };
        let mut push = |r: &Value| {
            if let Some(subnet) = r.get("subnet").and_then(Value::as_str).and_then(|s| s.parse::<IpPrefix>().ok()) {
                let gateway = r.get("gateway").and_then(Value::as_str).and_then(|g| g.parse().ok());
                out.push(IpamConfig { subnet, gateway });
            }
        };
        match ipam.get("ranges").and_then(Value::as_array) {
            Some(sets) => sets.iter().filter_map(|s| s.as_array()).filter_map(|s| s.first()).for_each(&mut push),
            None => push(&Value::Object(ipam.clone())),
        }
        out
    }

    /// The bridge its `bridge` plugin uses (`cni0` when it names none).
    fn bridge(&self) -> Option<String> {
        self.plugins
            .iter()
            .find(|p| p.get("type").and_then(Value::as_str) == Some("bridge"))
            .map(|p| p.get("bridge").and_then(Value::as_str).unwrap_or("cni0").to_string())
    }

    /// True when a plugin declares the capability `cap`.
    fn has_capability(&self, cap: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| p.get("capabilities").and_then(|c| c.get(cap)).and_then(Value::as_bool) == Some(true))
    }

    fn info(&self, eps: &BTreeMap<(String, String), Attachment>) -> NetworkInfo {
        let mut n = NetworkInfo::new(&self.id, &self.name, "cni");
        n.ipam = self.ipam();
        n.interface = self.bridge();
        if let Some(m) = &self.meta {
            n.labels = m.labels.clone();
            n.created_unix = m.created_unix;
        }
        n.options.insert("cni.conflist".into(), self.file.display().to_string());
        n.endpoints = eps
            .values()
            .filter(|a| a.network_id == self.id && a.state == EpState::Attached)
            .map(|a| (a.container_id.clone(), a.info.clone()))
            .collect();
        n
    }
}

/// A CNI network's id: derived from its name (a conflist has no id).
fn network_id(name: &str) -> String {
    let d = sha2::Sha256::digest(format!("cni-network:{name}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// An endpoint as persisted (`<state>/cni/endpoints/<network id>-<container>.json`):
/// everything DEL needs, even after a crash or with the conflist changed:
/// the configuration list as ADD used it, the runtime arguments, and ADD's
/// result (the cached result the spec asks runtimes to keep).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Attachment {
    network_id: String,
    network: String,
    container_id: String,
    ifname: String,
    netns: PathBuf,
    version: String,
    disable_check: bool,
    plugins: Vec<Map<String, Value>>,
    /// `runtimeConfig` by capability (`portMappings`, `mac`).
    runtime: Map<String, Value>,
    cni_args: String,
    result: Option<Value>,
    info: EndpointInfo,
    /// `Attaching` is recorded before ADD runs (the plugins may have made
    /// part of it); `Attached` once ADD succeeded (`result` is its result).
    state: EpState,
}

struct Inner {
    eps: BTreeMap<(String, String), Attachment>,
    held: HashMap<PortKey, hostport::Held>,
}

/// Builds a [`CniDriver`].
#[derive(Clone, Debug)]
pub struct CniDriverBuilder {
    state_dir: PathBuf,
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    host_netns: Option<PathBuf>,
    default_name: String,
    default_subnet: IpPrefix,
    pool: Vec<IpPrefix>,
    resolv_conf: PathBuf,
}

impl CniDriverBuilder {
    /// The directory of network configurations (`*.conflist`, `*.conf`,
    /// `*.json`; default `/etc/cni/net.d`). Networks made through the
    /// driver are written there too.
    pub fn conf_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.conf_dir = dir.into();
        self
    }
    /// The directories searched for plugin binaries, in order (default
    /// `/usr/lib/cni` (Debian's `containernetworking-plugins`) then
    /// `/opt/cni/bin`); passed to plugins as `CNI_PATH`.
    pub fn bin_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.bin_dirs = dirs;
        self
    }
    /// The host's network namespace (default: the caller's): plugins run
    /// in it, so bridges, host-side veths, iptables rules and published
    /// ports are made there. Tests pass a namespace of their own.
    pub fn host_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.host_netns = Some(path.into());
        self
    }
    /// The name of the default network (default `bridge`); made from
    /// [`CniDriverBuilder::default_subnet`] when no configuration has it.
    pub fn default_network(mut self, name: impl Into<String>) -> Self {
        self.default_name = name.into();
        self
    }
    /// The default network's subnet when the driver makes it (default
    /// `10.88.0.0/16`, podman's; the first free of the pool when routed).
    pub fn default_subnet(mut self, subnet: IpPrefix) -> Self {
        self.default_subnet = subnet;
        self
    }
    /// Subnets for networks made without one (default `10.89.0.0/16` to
    /// `10.99.0.0/16`); one used by a network or routed on the host is skipped.
    pub fn pool(mut self, subnets: Vec<IpPrefix>) -> Self {
        self.pool = subnets;
        self
    }
    /// Where the host's name servers are read (default `/etc/resolv.conf`).
    pub fn resolv_conf(mut self, path: impl Into<PathBuf>) -> Self {
        self.resolv_conf = path.into();
        self
    }

    /// Open the driver: load the cached attachments, run DEL for those
    /// whose ADD never finished or whose namespace is gone, and hold the
    /// published host ports again.
    pub async fn open(self) -> Result<CniDriver> {
        let host = match &self.host_netns {
            Some(p) => Netns::open(p)?,
            None => Netns::current()?,
        };
        let nl = host.netlink().await?;
        let dir = self.state_dir.join("cni").join("endpoints");
        std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
        let mut eps = BTreeMap::new();
        for e in std::fs::read_dir(&dir).context(|| format!("read {}", dir.display()))? {
            let p = e.context(|| format!("read {}", dir.display()))?.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let data = std::fs::read(&p).context(|| format!("read {}", p.display()))?;
            let a: Attachment = serde_json::from_slice(&data)
                .map_err(|e| Error::Other(format!("corrupt CNI attachment record {}: {e}", p.display())))?;
            eps.insert((a.network_id.clone(), a.container_id.clone()), a);
        }
        let d = CniDriver { inner: Mutex::new(Inner { eps, held: HashMap::new() }), host, nl, dir, cfg: self };
        d.recover().await?;
        Ok(d)
    }
}

/// A network driver that runs CNI plugins (the CNI specification's
/// ADD/DEL/CHECK), for the networks of a configuration directory. See
/// the crate docs.
pub struct CniDriver {
    inner: Mutex<Inner>,
    host: Netns,
    nl: rtnetlink::Handle,
    dir: PathBuf,
    cfg: CniDriverBuilder,
}

impl std::fmt::Debug for CniDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CniDriver").field("conf_dir", &self.cfg.conf_dir).field("state", &self.dir).finish()
    }
}

/// What one plugin run needs besides its configuration.
#[derive(Clone)]
struct Invocation {
    command: &'static str,
    container_id: String,
    netns: String,
    ifname: String,
    cni_args: String,
}

impl CniDriver {
    /// A builder keeping its cached results under `state_dir`.
    pub fn builder(state_dir: impl Into<PathBuf>) -> CniDriverBuilder {
        CniDriverBuilder {
            state_dir: state_dir.into(),
            conf_dir: "/etc/cni/net.d".into(),
            bin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            host_netns: None,
            default_name: crate::DEFAULT_NETWORK.into(),
            default_subnet: "10.88.0.0/16".parse().expect("literal"),
            pool: (89..=99).map(|i| format!("10.{i}.0.0/16").parse().expect("literal")).collect(),
            resolv_conf: "/etc/resolv.conf".into(),
        }
    }

    /// The networks of the configuration directory, in file-name order
    /// (the first file wins when two name the same network, as in libcni).
    fn load(&self) -> Result<Vec<NetConf>> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.cfg.conf_dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(format!("read {}", self.cfg.conf_dir.display()), e)),
        };
        files.retain(|p| p.extension().is_some_and(|x| x == "conflist" || x == "conf" || x == "json"));
        files.sort();
        let mut out: Vec<NetConf> = Vec::new();
        for f in files {
            let Ok(data) = std::fs::read(&f) else { continue };
            match NetConf::parse(&f, &data) {
                Ok(n) if out.iter().any(|o| o.name == n.name) => {
                    tracing::warn!(file = %f.display(), network = %n.name, "skipping a second configuration of the network")
                }
                Ok(n) => out.push(n),
                Err(e) => tracing::warn!("skipping CNI configuration: {e}"),
            }
        }
        Ok(out)
    }

    fn resolve(&self, network: &str) -> Result<NetConf> {
        let nets = self.load()?;
        if let Some(n) = nets.iter().find(|n| n.id == network || n.name == network) {
            return Ok(n.clone());
        }
        let hits: Vec<&NetConf> = nets.iter().filter(|n| !network.is_empty() && n.id.starts_with(network)).collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::not_found("network", network)),
            _ => Err(Error::invalid("network", format!("{network:?} is an ambiguous id prefix"))),
        }
    }

    fn record_path(&self, network_id: &str, container_id: &str) -> PathBuf {
        self.dir.join(format!("{network_id}-{container_id}.json"))
    }

    fn persist(&self, a: &Attachment) -> Result<()> {
        let data = serde_json::to_vec_pretty(a).map_err(|e| Error::Other(format!("encode CNI attachment: {e}")))?;
        engine_core::fs::write_atomic(&self.record_path(&a.network_id, &a.container_id), &data)
    }

    fn unpersist(&self, a: &Attachment) -> Result<()> {
        let p = self.record_path(&a.network_id, &a.container_id);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("remove {}", p.display()), e)),
            _ => Ok(()),
        }
    }

    fn find_plugin(&self, ty: &str) -> Result<PathBuf> {
        self.cfg.bin_dirs.iter().map(|d| d.join(ty)).find(|p| p.is_file()).ok_or_else(|| {
            Error::unavailable(
                format!("CNI plugin {ty:?}"),
                format!(
                    "not found in {} (Debian: apt-get install containernetworking-plugins)",
                    self.cfg.bin_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// Run one plugin: its configuration with `name`, `cniVersion`, the
    /// `runtimeConfig` of the capabilities it declares and `prevResult`
    /// on stdin, the `CNI_*` variables in its environment, in the host
    /// namespace. ADD's result, parsed; `None` for DEL and CHECK.
    async fn exec(
        &self,
        a: &Attachment,
        plugin: &Map<String, Value>,
        prev: Option<&Value>,
        inv: &Invocation,
    ) -> Result<Option<Value>> {
        let ty = plugin.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let bin = self.find_plugin(&ty)?;
        let mut conf = plugin.clone();
        conf.insert("name".into(), json!(a.network));
        conf.insert("cniVersion".into(), json!(a.version));
        let caps: Map<String, Value> = plugin
            .get("capabilities")
            .and_then(Value::as_object)
            .map(|c| {
                c.iter()
                    .filter(|(_, on)| on.as_bool() == Some(true))
                    .filter_map(|(k, _)| a.runtime.get(k).map(|v| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        if !caps.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(caps));
        }
        if let Some(p) = prev {
            conf.insert("prevResult".into(), p.clone());
        }
        let stdin = serde_json::to_vec(&conf).map_err(|e| Error::Other(format!("encode CNI config: {e}")))?;
        let cni_path = std::env::join_paths(&self.cfg.bin_dirs)
            .map_err(|e| Error::invalid("CNI plugin directories", e.to_string()))?;
        let inv = inv.clone();
        let what = format!("CNI plugin {ty} {} on network {} for {}", inv.command, a.network, inv.container_id);
        let what2 = what.clone();
        let out = self
            .host
            .run(move || {
                use std::io::Write;
                let mut child = std::process::Command::new(&bin)
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
                    .env("CNI_COMMAND", inv.command)
                    .env("CNI_CONTAINERID", &inv.container_id)
                    .env("CNI_NETNS", &inv.netns)
                    .env("CNI_IFNAME", &inv.ifname)
                    .env("CNI_ARGS", &inv.cni_args)
                    .env("CNI_PATH", &cni_path)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .context(|| format!("run {}", bin.display()))?;
                let mut i = child.stdin.take().expect("piped");
                let w = i.write_all(&stdin);
                drop(i);
                let out = child.wait_with_output().context(|| format!("wait for {}", bin.display()))?;
                w.context(|| format!("write the configuration to {}", bin.display()))?;
                Ok(out)
            })
            .await?;
        if !out.status.success() {
            // The spec's error: {"code", "msg", "details"} on stdout.
            let e: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let msg = e.get("msg").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| {
                let s = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if s.is_empty() {
                    format!("exited with {}", out.status)
                } else {
                    s
                }
            });
            let details = e.get("details").and_then(Value::as_str).filter(|d| !d.is_empty());
            let code = e.get("code").and_then(Value::as_u64);
            return Err(Error::Other(format!(
                "{what2}: {msg}{}{}",
                details.map(|d| format!(" ({d})")).unwrap_or_default(),
                code.map(|c| format!(" [CNI error {c}]")).unwrap_or_default()
            )));
        }
        if inv.command != "ADD" {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Other(format!("{what}: its result is not JSON: {e}")))?;
        Ok(Some(v))
    }

    /// ADD every plugin in order, each result the next one's `prevResult`.
    async fn add_chain(&self, a: &Attachment, inv: &Invocation) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for p in &a.plugins {
            prev = self.exec(a, p, prev.as_ref(), inv).await?;
        }
        prev.ok_or_else(|| Error::Other(format!("CNI network {}: ADD gave no result", a.network)))
    }

    /// Loopback up in the container's namespace, whatever the network's
    /// list holds: the `loopback` plugin when the plugin directories have
    /// it (as containerd's CRI runs it, on its own), else over netlink.
    async fn loopback_up(&self, a: &Attachment) -> Result<()> {
        if self.find_plugin("loopback").is_err() {
            let h = Netns::open(&a.netns)?.netlink().await?;
            return link::set_up(&h, "lo").await;
        }
        let mut plugin = Map::new();
        plugin.insert("type".into(), json!("loopback"));
        let lo = Attachment {
            network: "cni-loopback".into(),
            ifname: "lo".into(),
            plugins: vec![plugin],
            runtime: Map::new(),
            cni_args: String::new(),
            result: None,
            ..a.clone()
        };
        let inv = Invocation {
            command: "ADD",
            container_id: a.container_id.clone(),
            netns: a.netns.display().to_string(),
            ifname: "lo".into(),
            cni_args: String::new(),
        };
        self.exec(&lo, &lo.plugins[0], None, &inv).await.map(drop)
    }

    /// DEL every plugin in reverse order with the cached result. Every
    /// plugin is run; the first error is returned.
    async fn del_chain(&self, a: &Attachment) -> Result<()> {
        // A namespace that died (its container's, with the manager down)
        // takes the interface with it, but the bridge plugin finds the
        // addresses whose masquerade rules it must remove on that
        // interface: it gets a stand-in namespace holding an
        // interface of the same name with the cached addresses.
        let mut standin = None;
        let netns = if Netns::open(&a.netns).is_ok() {
            a.netns.display().to_string()
        } else if a.state == EpState::Attached {
            match self.standin(a).await {
                Ok(f) => {
                    let p = f.path().display().to_string();
                    standin = Some(f);
                    p
                }
                Err(e) => {
                    tracing::warn!(container = %a.container_id, "no stand-in namespace for DEL: {e}");
                    String::new()
                }
            }
        } else {
            String::new()
        };
        let res = self.del_chain_in(a, netns).await;
        if let Some(f) = standin {
            f.remove()?;
        }
        res
    }

    /// A namespace with an interface `a.ifname` carrying `a`'s cached addresses.
    async fn standin(&self, a: &Attachment) -> Result<crate::NetnsFile> {
        let p = self.dir.join(format!("standin-{}", a.container_id));
        let _ = crate::remove_netns_file(&p);
        let f = crate::NetnsFile::create(&p).await?;
        let h = f.open()?.netlink().await?;
        link::add_local_veth(&h, &a.ifname, "standin0").await?;
        for ip in [a.info.ipv4, a.info.ipv6].into_iter().flatten() {
            link::add_address(&h, &a.ifname, ip).await?;
        }
        Ok(f)
    }

    async fn del_chain_in(&self, a: &Attachment, netns: String) -> Result<()> {
        let inv = Invocation {
            command: "DEL",
            container_id: a.container_id.clone(),
            netns,
            ifname: a.ifname.clone(),
            cni_args: a.cni_args.clone(),
        };
        let prev = a.result.as_ref().filter(|_| version_at_least(&a.version, (0, 4)));
        let mut first = None;
        for p in a.plugins.iter().rev() {
            if let Err(e) = self.exec(a, p, prev, &inv).await {
                tracing::warn!("{e}");
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// CNI's CHECK for a container's endpoint: every plugin verifies that
    /// what its ADD made is still in place. An error names the plugin and
    /// what it found wrong. Needs a `cniVersion` of 0.4.0 or later.
    pub async fn check(&self, network: &str, container_id: &str) -> Result<()> {
        let net = self.resolve(network)?;
        let inner = self.inner.lock().await;
        let a = inner
            .eps
            .get(&(net.id.clone(), container_id.to_string()))
            .filter(|a| a.state == EpState::Attached)
            .ok_or_else(|| Error::not_found("endpoint", format!("{container_id} on network {}", net.name)))?;
        if !version_at_least(&a.version, (0, 4)) {
            return Err(Error::Unsupported(format!("CHECK on CNI version {} (0.4.0 or later)", a.version)));
        }
        if a.disable_check {
            return Ok(());
        }
        let inv = Invocation {
            command: "CHECK",
            container_id: a.container_id.clone(),
            netns: a.netns.display().to_string(),
            ifname: a.ifname.clone(),
            cni_args: a.cni_args.clone(),
        };
        for p in &a.plugins {
            self.exec(a, p, a.result.as_ref(), &inv).await?;
        }
        Ok(())
    }

    async fn recover(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let keys: Vec<(String, String)> = inner.eps.keys().cloned().collect();
        for k in keys {
            let a = inner.eps.get(&k).expect("listed").clone();
            if a.state == EpState::Attached && Netns::open(&a.netns).is_ok() {
                continue;
            }
            // ADD never finished, or the namespace died with its container.
            match self.del_chain(&a).await {
                Ok(()) => {
                    self.unpersist(&a)?;
                    inner.eps.remove(&k);
                    tracing::info!(network = %a.network, container = %a.container_id, "released an endpoint whose ADD never finished or whose namespace is gone");
                }
                Err(e) => {
                    tracing::warn!(network = %a.network, container = %a.container_id, "DEL of a stale endpoint failed (kept for the next start): {e}")
                }
            }
        }
        let wanted: Vec<_> = inner
            .eps
            .values()
            .flat_map(|a| a.info.ports.iter().map(|p| (p.clone(), crate::bridge::ipv4_of(&a.info))))
            .collect();
        let got = hostport::hold_again(&self.host, wanted).await?;
        inner.held.extend(got);
        Ok(())
    }

    fn host_dns(&self) -> Vec<IpAddr> {
        let Ok(text) = std::fs::read_to_string(&self.cfg.resolv_conf) else { return Vec::new() };
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .filter(|a| !a.is_loopback())
            .collect()
    }

    async fn do_attach(&self, network: &str, req: AttachRequest) -> Result<EndpointInfo> {
        crate::bridge::check_request(&req)?;
        Netns::open(&req.netns)?;
        let net = self.resolve(network)?;
        if !VERSIONS.contains(&net.version.as_str()) {
            return Err(Error::Unsupported(format!(
                "CNI network {}: cniVersion {} (this driver reads results of {})",
                net.name,
                net.version,
                VERSIONS.join(", ")
            )));
        }
        // What the network's plugins cannot do is refused, not dropped.
        if !req.ports.is_empty() && !net.has_capability("portMappings") {
            return Err(Error::Unsupported(format!(
                "publishing ports on CNI network {}: none of its plugins has the portMappings capability (add portmap)",
                net.name
            )));
        }
        if req.mac.is_some() && !net.has_capability("mac") {
            return Err(Error::Unsupported(format!(
                "a fixed MAC address on CNI network {}: none of its plugins has the mac capability (add tuning)",
                net.name
            )));
        }
        let mut inner = self.inner.lock().await;
        let key = (net.id.clone(), req.container_id.clone());
        if inner.eps.contains_key(&key) {
            return Err(Error::conflict(
                "endpoint",
                &req.container_id,
                format!("the container is already attached to network {}", net.name),
            ));
        }
        let published: Vec<PortKey> = inner
            .eps
            .values()
            .flat_map(|a| a.info.ports.iter().map(|p| (p.protocol, p.host_ip, p.host_port)))
            .collect();
        let held = hostport::reserve(&self.host, published, &req.ports).await?;
        let mut runtime = Map::new();
        if !held.is_empty() {
            // IPv6 host addresses are the proxy's (see `hostport`).
            let maps: Vec<Value> = held
                .iter()
                .filter(|(p, _)| p.host_ip.is_ipv4())
                .map(|(p, _)| {
                    let mut m = json!({"hostPort": p.host_port, "containerPort": p.container_port, "protocol": p.protocol.as_str()});
                    if !p.host_ip.is_unspecified() {
                        m["hostIP"] = json!(p.host_ip.to_string());
                    }
                    m
                })
                .collect();
            runtime.insert("portMappings".into(), Value::Array(maps));
        }
        if let Some(mac) = req.mac {
            runtime.insert("mac".into(), json!(mac.to_string()));
        }
        let mut cni_args = String::new();
        if let Some(ip) = req.ipv4 {
            // host-local's CNI_ARGS; the result is checked below.
            cni_args = format!("IgnoreUnknown=1;IP={ip}");
        }
        let mut info = EndpointInfo::new(
            &net.id,
            &net.name,
            &req.container_id,
            random_hex64(),
            &req.interface,
            MacAddr::new([0; 6]),
        );
        info.ports = held.iter().map(|(p, _)| p.clone()).collect();
        info.aliases = req.aliases.clone();
        let mut a = Attachment {
            network_id: net.id.clone(),
            network: net.name.clone(),
            container_id: req.container_id.clone(),
            ifname: req.interface.clone(),
            netns: req.netns.clone(),
            version: net.version.clone(),
            disable_check: net.disable_check,
            plugins: net.plugins.clone(),
            runtime,
            cni_args: cni_args.clone(),
            result: None,
            info,
            state: EpState::Attaching,
        };
        // Recorded before any plugin runs: a crash from here on is undone
        // (DEL) by the next driver's `open`.
        self.persist(&a)?;
        let inv = Invocation {
            command: "ADD",
            container_id: req.container_id.clone(),
            netns: req.netns.display().to_string(),
            ifname: req.interface.clone(),
            cni_args,
        };
        let res = async {
            let result = self.add_chain(&a, &inv).await?;
            self.loopback_up(&a).await?;
            a.result = Some(result.clone());
            let bridge = net.bridge();
            fill_info(&mut a.info, &result, bridge.as_deref())?;
            if let Some(want) = req.ipv4 {
                if a.info.ipv4.map(|p| p.addr()) != Some(IpAddr::V4(want)) {
                    return Err(Error::Unsupported(format!(
                        "a fixed IP address on CNI network {}: its IPAM gave {} for {want} (host-local honours it)",
                        net.name,
                        a.info.ipv4.map(|p| p.to_string()).unwrap_or_else(|| "none".into())
                    )));
                }
            }
            if let Some(want) = req.mac {
                if a.info.mac != want {
                    return Err(Error::Other(format!(
                        "CNI network {}: asked for MAC {want}, got {}",
                        net.name, a.info.mac
                    )));
                }
            }
            a.info.dns = if !req.dns.is_empty() {
                req.dns.clone()
            } else if !a.info.dns.is_empty() {
                a.info.dns.clone()
            } else {
                self.host_dns()
            };
            a.state = EpState::Attached;
            self.persist(&a)
        }
        .await;
        match res {
            Ok(()) => {
                let cip = crate::bridge::ipv4_of(&a.info);
                for (p, fd) in held {
                    let (k, h) = hostport::activate(&self.host, &p, fd, cip);
                    inner.held.insert(k, h);
                }
                let info = a.info.clone();
                tracing::info!(network = %net.name, container = %req.container_id, ip = ?info.ipv4, "CNI endpoint attached");
                inner.eps.insert(key, a);
                Ok(info)
            }
            Err(e) => {
                // The runtime's duty after a failed ADD: DEL, so every
                // plugin frees what it made (a lease, a veth, rules).
                match self.del_chain(&a).await {
                    Ok(()) => {
                        let _ = self.unpersist(&a);
                    }
                    Err(de) => {
                        tracing::warn!("DEL after a failed ADD failed too (retried at the next open): {de}");
                        inner.eps.insert(key, a);
                    }
                }
                Err(e)
            }
        }
    }

    async fn do_detach(&self, network: &str, container_id: &str) -> Result<()> {
        let net_id = match self.resolve(network) {
            Ok(n) => n.id,
            // The conflist may be gone; the cached attachment is enough.
            Err(e) if e.is_not_found() => network_id(network),
            Err(e) => return Err(e),
        };
        let mut inner = self.inner.lock().await;
        let key = (net_id, container_id.to_string());
        let a = inner
            .eps
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::not_found("endpoint", format!("{container_id} on network {network}")))?;
        self.del_chain(&a).await?;
        if let Some(IpAddr::V4(ip)) = a.info.ipv4.map(|p| p.addr()) {
            if let Err(e) = self.host.run(move || crate::conntrack::forget_flows_to(ip)).await {
                tracing::warn!(container = %container_id, "forgetting tracked connections: {e}");
            }
        }
        for p in &a.info.ports {
            inner.held.remove(&(p.protocol, p.host_ip, p.host_port));
        }
        self.unpersist(&a)?;
        inner.eps.remove(&key);
        tracing::info!(network = %a.network, container = %container_id, "CNI endpoint detached");
        Ok(())
    }

    /// Write a configuration list for `spec`: Debian's plugins `bridge`
    /// (with `host-local` IPAM), `portmap`, `firewall` and `tuning`.
    async fn create(&self, spec: NetworkSpec, default: bool) -> Result<NetworkInfo> {
        let _g = self.inner.lock().await;
        let nets = self.load()?;
        if default {
            if let Some(n) = nets.iter().find(|n| n.name == self.cfg.default_name) {
                return Ok(n.info(&BTreeMap::new()));
            }
        }
        if !valid_name(&spec.name) {
            return Err(Error::invalid(
                format!("network name {:?}", spec.name),
                "letters, digits and _.- , starting with a letter or digit",
            ));
        }
        if (!default && spec.name == self.cfg.default_name) || ["host", "none"].contains(&spec.name.as_str()) {
            return Err(Error::conflict("network", &spec.name, "is a predefined network"));
        }
        if spec.driver != "bridge" && spec.driver != "cni" {
            return Err(Error::invalid(format!("network driver {:?}", spec.driver), "this driver is \"cni\""));
        }
        if nets.iter().any(|n| n.name == spec.name) {
            return Err(Error::conflict("network", &spec.name, "a network with this name exists"));
        }
        if spec.internal {
            return Err(Error::Unsupported("internal networks with the cni driver".into()));
        }
        if let Some(k) = spec.options.keys().find(|k| *k != OPT_BRIDGE_NAME) {
            return Err(Error::Unsupported(format!("network option {k:?} with the cni driver")));
        }
        if spec.ipam.iter().any(|c| c.subnet.addr().is_ipv6()) {
            return Err(Error::Unsupported("IPv6 subnets with the cni driver".into()));
        }
        let id = network_id(&spec.name);
        let bridge = spec.options.get(OPT_BRIDGE_NAME).cloned().unwrap_or_else(|| format!("cni-{}", &id[..11]));
        if !valid_ifname(&bridge) {
            return Err(Error::invalid(format!("bridge name {bridge:?}"), "1 to 15 characters, no '/', ':' or space"));
        }
        if nets.iter().any(|n| n.bridge().as_deref() == Some(bridge.as_str())) {
            return Err(Error::conflict("network", &spec.name, format!("bridge {bridge} is used by another network")));
        }
        let taken: Vec<(IpPrefix, &str)> =
            nets.iter().flat_map(|n| n.ipam().into_iter().map(move |c| (c.subnet, n.name.as_str()))).collect();
        let (subnet, gateway) = match spec.ipam.as_slice() {
            [] => {
                let pool: Vec<IpPrefix> = if default {
                    std::iter::once(self.cfg.default_subnet).chain(self.cfg.pool.iter().copied()).collect()
                } else {
                    self.cfg.pool.clone()
                };
                let routed = link::ipv4_routes(&self.nl).await?;
                let s = pool
                    .into_iter()
                    .find(|p| !taken.iter().map(|t| &t.0).chain(routed.iter()).any(|t| t.overlaps(p)))
                    .ok_or_else(|| Error::unavailable("address pool", "every subnet of the pool is in use"))?;
                (s, ipam::default_gateway(s)?)
            }
            [c] => {
                if c.subnet.prefix() == 0 {
                    return Err(Error::invalid("gateway", "a gateway needs a subnet"));
                }
                ipam::check_subnet(c.subnet)?;
                if let Some((t, n)) = taken.iter().find(|(t, _)| t.overlaps(&c.subnet)) {
                    return Err(Error::conflict(
                        "network",
                        &spec.name,
                        format!("subnet {} overlaps {t} of network {n}", c.subnet),
                    ));
                }
                let gw = match c.gateway {
                    None => ipam::default_gateway(c.subnet)?,
                    Some(IpAddr::V4(g)) if ipam::is_host_address(c.subnet, g) => g,
                    Some(g) => {
                        return Err(Error::invalid(
                            format!("gateway {g}"),
                            format!("not a host address of subnet {}", c.subnet),
                        ))
                    }
                };
                (c.subnet, gw)
            }
            _ => return Err(Error::Unsupported("more than one subnet per cni network".into())),
        };
        let ipam_dir = self.cfg.state_dir.join("cni").join("ipam");
        let meta = Meta { labels: spec.labels.clone(), created_unix: now_unix(), ipam_dir: Some(ipam_dir.clone()) };
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": spec.name,
            META_KEY: meta,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet.to_string(), "gateway": gateway.to_string()}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": ipam_dir,
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
                {"type": "firewall"},
                {"type": "tuning", "capabilities": {"mac": true}}
            ]
        });
        std::fs::create_dir_all(&self.cfg.conf_dir).context(|| format!("create {}", self.cfg.conf_dir.display()))?;
        let file = self.cfg.conf_dir.join(format!("engine-{}.conflist", spec.name));
        let data = serde_json::to_vec_pretty(&conf).map_err(|e| Error::Other(format!("encode conflist: {e}")))?;
        engine_core::fs::write_atomic(&file, &data)?;
        let n = NetConf::parse(&file, &data)?;
        tracing::info!(network = %spec.name, file = %file.display(), %subnet, "CNI network created");
        Ok(n.info(&BTreeMap::new()))
    }

    async fn do_remove(&self, network: &str) -> Result<()> {
        let net = self.resolve(network)?;
        let inner = self.inner.lock().await;
        let users: Vec<&str> =
            inner.eps.values().filter(|a| a.network_id == net.id).map(|a| a.container_id.as_str()).collect();
        if !users.is_empty() {
            return Err(Error::conflict("network", &net.name, format!("has active endpoints ({})", users.join(", "))));
        }
        let Some(meta) = &net.meta else {
            return Err(Error::conflict(
                "network",
                &net.name,
                format!("it is configured by {}, not made by the engine: remove that file", net.file.display()),
            ));
        };
        std::fs::remove_file(&net.file).context(|| format!("remove {}", net.file.display()))?;
        // What the plugins leave once the last endpoint is gone: the
        // bridge (the bridge plugin never removes it) and host-local's
        // per-network directory.
        if let Some(b) = net.bridge() {
            if link::index(&self.nl, &b).await?.is_some() {
                link::delete(&self.nl, &b).await?;
            }
        }
        if let Some(d) = &meta.ipam_dir {
            let d = d.join(&net.name);
            if d.exists() {
                std::fs::remove_dir_all(&d).context(|| format!("remove {}", d.display()))?;
            }
        }
        tracing::info!(network = %net.name, "CNI network removed");
        Ok(())
    }
}

fn version_at_least(v: &str, (major, minor): (u32, u32)) -> bool {
    let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Read a CNI result (0.3.0 to 1.x: `interfaces`, `ips`, `dns`) into `info`.
fn fill_info(info: &mut EndpointInfo, result: &Value, bridge: Option<&str>) -> Result<()> {
    let bad = |why: &str| Error::Other(format!("CNI result for {}: {why}: {result}", info.container_id));
    let ifaces: Vec<&Value> =
        result.get("interfaces").and_then(Value::as_array).map(|v| v.iter().collect()).unwrap_or_default();
    let sandboxed = |i: &Value| i.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let name = |i: &Value| i.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let mine = ifaces.iter().position(|i| sandboxed(i) && name(i) == info.interface);
    if let Some(m) = mine.and_then(|k| ifaces[k].get("mac")).and_then(Value::as_str) {
        info.mac = m.parse().map_err(|_| bad("bad mac"))?;
    }
    info.host_interface =
        ifaces.iter().filter(|i| !sandboxed(i)).map(|i| name(i)).rfind(|n| Some(n.as_str()) != bridge);
    for ip in result.get("ips").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(k), Some(i)) = (mine, ip.get("interface").and_then(Value::as_u64)) {
            if i as usize != k {
                continue;
            }
        }
        let addr: IpPrefix =
            ip.get("address").and_then(Value::as_str).ok_or_else(|| bad("an ip without address"))?.parse()?;
        let gw: Option<IpAddr> = ip.get("gateway").and_then(Value::as_str).and_then(|g| g.parse().ok());
        match addr.addr() {
            IpAddr::V4(_) if info.ipv4.is_none() => {
                info.ipv4 = Some(addr);
                info.gateway4 = match gw {
                    Some(IpAddr::V4(g)) => Some(g),
                    _ => None,
                };
            }
            IpAddr::V6(_) if info.ipv6.is_none() => {
                info.ipv6 = Some(addr);
                info.gateway6 = gw;
            }
            _ => {}
        }
    }
    if info.ipv4.is_none() && info.ipv6.is_none() {
        return Err(bad("no address for the container's interface"));
    }
    info.dns = result
        .get("dns")
        .and_then(|d| d.get("nameservers"))
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(|s| s.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    Ok(())
}

#[async_trait]
impl NetworkDriver for CniDriver {
    fn name(&self) -> &str {
        "cni"
    }
    fn host_netns(&self) -> Option<PathBuf> {
        self.cfg.host_netns.clone()
    }
    async fn create_network(&self, spec: NetworkSpec) -> Result<NetworkInfo> {
        self.create(spec, false).await
    }
    async fn default_network(&self) -> Result<NetworkInfo> {
        self.create(NetworkSpec::new(self.cfg.default_name.clone()), true).await
    }
    async fn remove_network(&self, network: &str) -> Result<()> {
        self.do_remove(network).await
    }
    async fn inspect_network(&self, network: &str) -> Result<NetworkInfo> {
        let net = self.resolve(network)?;
        Ok(net.info(&self.inner.lock().await.eps))
    }
    async fn list_networks(&self) -> Result<Vec<NetworkInfo>> {
        let nets = self.load()?;
        let inner = self.inner.lock().await;
        Ok(nets.iter().map(|n| n.info(&inner.eps)).collect())
    }
    async fn attach(&self, network: &str, request: AttachRequest) -> Result<EndpointInfo> {
        self.do_attach(network, request).await
    }
    async fn detach(&self, network: &str, container_id: &ContainerId) -> Result<()> {
        self.do_detach(network, container_id.as_str()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn parses_conflists_and_results() {
        let conf = br#"{"cniVersion":"1.0.0","name":"n1","plugins":[
            {"type":"bridge","bridge":"br9","ipam":{"type":"host-local","ranges":[[{"subnet":"10.9.0.0/24","gateway":"10.9.0.1"}]]}},
            {"type":"portmap","capabilities":{"portMappings":true}}]}"#;
        let n = NetConf::parse(Path::new("/x/10-n1.conflist"), conf).unwrap();
        assert_eq!(n.name, "n1");
        assert_eq!(n.ipam()[0].subnet.to_string(), "10.9.0.0/24");
        assert_eq!(n.bridge().as_deref(), Some("br9"));
        assert!(n.has_capability("portMappings") && !n.has_capability("mac"));
        assert_eq!(n.id.len(), 64);
        let single = br#"{"cniVersion":"0.4.0","name":"n2","type":"bridge","ipam":{"type":"host-local","subnet":"10.8.0.0/16"}}"#;
        let n2 = NetConf::parse(Path::new("/x/n2.conf"), single).unwrap();
        assert_eq!(n2.plugins.len(), 1);
        assert_eq!(n2.ipam()[0].subnet.to_string(), "10.8.0.0/16");
        assert!(NetConf::parse(Path::new("/x/a.conflist"), br#"{"name":"a","plugins":[{"type":"../x"}]}"#).is_err());

        let result = json!({"cniVersion":"1.0.0",
            "interfaces":[{"name":"br9","mac":"aa:aa:aa:aa:aa:aa"},{"name":"veth1","mac":"bb:bb:bb:bb:bb:bb"},
                          {"name":"eth0","mac":"02:00:00:00:00:05","sandbox":"/run/netns/x"}],
            "ips":[{"address":"10.9.0.5/24","gateway":"10.9.0.1","interface":2}],
            "dns":{"nameservers":["10.9.0.53"]}});
        let mut info = EndpointInfo::new("i", "n1", "c1", "e", "eth0", MacAddr::new([0; 6]));
        fill_info(&mut info, &result, Some("br9")).unwrap();
        assert_eq!(info.ipv4.unwrap().to_string(), "10.9.0.5/24");
        assert_eq!(info.gateway4, Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(info.mac.to_string(), "02:00:00:00:00:05");
        assert_eq!(info.host_interface.as_deref(), Some("veth1"));
        assert_eq!(info.dns, vec!["10.9.0.53".parse::<IpAddr>().unwrap()]);
        assert!(version_at_least("1.0.0", (0, 4)) && !version_at_least("0.3.1", (0, 4)));
    }
}
