//! The RuntimeService and ImageService implementations.

use crate::pb;
use base64::Engine as _;
use engine_core::{
    ContainerConfig, ContainerInfo, ContainerState, Error, ExecConfig, ImageInfo, ImageStore, LifecycleManager,
    ListFilter, LogSpec, MountSpec, NetworkMode, StdStream,
};
use futures::StreamExt;
use prost::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::{Request, Response, Status};

/// The built-in pause image sandboxes run (made from the host's busybox).
pub const PAUSE_IMAGE: &str = "engine-cri/pause:busybox";

const KIND: &str = "io.engine.cri.kind";
const SANDBOX: &str = "io.engine.cri.sandbox-id";
const CONFIG: &str = "io.engine.cri.config";
const IMAGE: &str = "io.engine.cri.image";
const HANDLER: &str = "io.engine.cri.runtime-handler";

/// The CRI server: both services, over one manager and one image store.
#[derive(Clone)]
pub struct CriServer {
    mgr: Arc<dyn LifecycleManager>,
    images: Arc<dyn ImageStore>,
    root: PathBuf,
    /// Pods get their network through the manager's network driver (CNI).
    networked: bool,
    /// Clamp asked OOM score adjustments to the server's own.
    restrict_oom_score_adj: bool,
    /// RuntimeClass handlers other than the default (`""`, the manager's
    /// default runtime): handler name to the manager's runtime name.
    handlers: std::collections::BTreeMap<String, String>,
    /// The streaming server for Exec, Attach and PortForward.
    streaming: Option<Arc<crate::streaming::Streaming>>,
}

fn status(e: Error) -> Status {
    let msg = e.to_string();
    match e {
        Error::NotFound { .. } => Status::not_found(msg),
        Error::InvalidInput { .. } => Status::invalid_argument(msg),
        Error::Conflict { .. } => Status::already_exists(msg),
        Error::Unavailable { .. } => Status::unavailable(msg),
        Error::Timeout { .. } => Status::deadline_exceeded(msg),
        Error::Unsupported(_) => Status::unimplemented(msg),
        _ => Status::internal(msg),
    }
}

type R<T> = Result<Response<T>, Status>;

fn nanos(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn encode<M: Message>(m: &M) -> String {
    base64::engine::general_purpose::STANDARD.encode(m.encode_to_vec())
}

fn decode<M: Message + Default>(info: &ContainerInfo) -> M {
    info.config
        .labels
        .get(CONFIG)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .and_then(|b| M::decode(&b[..]).ok())
        .unwrap_or_default()
}

fn is_kind(info: &ContainerInfo, kind: &str) -> bool {
    info.config.labels.get(KIND).is_some_and(|k| k == kind)
}

fn sandbox_state(info: &ContainerInfo) -> pb::PodSandboxState {
    match info.state {
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting => {
            pb::PodSandboxState::SandboxReady
        }
        _ => pb::PodSandboxState::SandboxNotready,
    }
}

fn container_state(info: &ContainerInfo) -> pb::ContainerState {
    match info.state {
        ContainerState::Created => pb::ContainerState::ContainerCreated,
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting => {
            pb::ContainerState::ContainerRunning
        }
        ContainerState::Exited | ContainerState::Dead => pb::ContainerState::ContainerExited,
        ContainerState::Removing => pb::ContainerState::ContainerUnknown,
        _ => pb::ContainerState::ContainerUnknown,
    }
}

fn selector_matches(sel: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The sandbox's namespace options (all `POD` when unset).
fn namespaces(cfg: &pb::PodSandboxConfig) -> pb::NamespaceOption {
    cfg.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

/// The pod's cgroup parent as kubelet's cgroupfs driver sends it
/// (`/kubepods/burstable/pod<uid>`); the systemd driver's slice names are
/// refused.
fn cgroup_parent(cfg: &pb::PodSandboxConfig) -> Result<Option<String>, Status> {
    let p = cfg.linux.as_ref().map(|l| l.cgroup_parent.as_str()).unwrap_or("");
    if p.is_empty() {
        return Ok(None);
    }
    let bad = p.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..");
    if !p.starts_with('/') || p.len() < 2 || bad {
        return Err(invalid(
            "linux.cgroup_parent",
            format!("{p:?}: an absolute cgroupfs path expected (kubelet's cgroupfs driver; the systemd driver is not supported)"),
        ));
    }
    Ok(Some(p.to_string()))
}

/// kubelet's rules for a streaming request: some stream, and no stderr
/// with a terminal (a terminal has one output).
fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<(), Status> {
    if !stdin && !stdout && !stderr {
        return Err(invalid("stdin/stdout/stderr", "one of them must be asked for"));
    }
    if tty && stderr {
        return Err(invalid("stderr", "tty and stderr cannot both be true"));
    }
    Ok(())
}

fn invalid(what: &str, why: impl Into<String>) -> Status {
    Status::invalid_argument(format!("{what}: {}", why.into()))
}

/// A Kubernetes object name piece, checked so it fits an engine container name.
fn name_part(what: &str, s: &str) -> Result<(), Status> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err(invalid(what, format!("{s:?}: a non-empty DNS label or subdomain expected")));
    }
    Ok(())
}

impl CriServer {
    /// A server over `mgr` and `images`; `root` holds the server's scratch
    /// files (the pause image is built under it).
    pub fn new(mgr: Arc<dyn LifecycleManager>, images: Arc<dyn ImageStore>, root: impl Into<PathBuf>) -> Self {
        CriServer {
            mgr,
            images,
            root: root.into(),
            networked: false,
            restrict_oom_score_adj: false,
            handlers: Default::default(),
            streaming: None,
        }
    }

    /// Serve `Exec`, `Attach` and `PortForward` sessions on `listener`
    /// (kubelet's URL flow: each RPC returns a one-time URL on it; clients
    /// speak WebSocket with Kubernetes' `v5.channel.k8s.io` or
    /// `v4.channel.k8s.io` subprotocol, not SPDY). Without it those RPCs
    /// answer `Unavailable`. Bind it to loopback unless the node's
    /// clients (kubelet's proxy) need it elsewhere: the tokens are the only
    /// authentication.
    pub fn with_streaming(mut self, listener: tokio::net::TcpListener) -> engine_core::Result<Self> {
        self.streaming = Some(crate::streaming::Streaming::new(listener)?);
        Ok(self)
    }

    /// Serve the RuntimeClass handler `handler` with the manager's runtime
    /// `runtime` (a name of its runtime table, such as `runc`): pods run
    /// with `runtime_handler: handler` get it for their sandbox and every
    /// container. The empty handler is the manager's default runtime.
    pub fn runtime_handler(mut self, handler: impl Into<String>, runtime: impl Into<String>) -> Self {
        self.handlers.insert(handler.into(), runtime.into());
        self
    }

    /// containerd's `restrict_oom_score_adj`: an OOM score adjustment a
    /// container asks for below this process's own is raised to it (a
    /// process without `CAP_SYS_RESOURCE`, as root in many containers and
    /// sandboxes, cannot lower it, and kubelet asks -997 for guaranteed
    /// pods). Off: such a container fails to start, naming the value.
    pub fn restrict_oom_score_adj(mut self, on: bool) -> Self {
        self.restrict_oom_score_adj = on;
        self
    }

    /// Say that the manager has a network driver (CNI): pods that are not
    /// `hostNetwork` join its default network (an address, port mappings)
    /// instead of a loopback-only namespace.
    pub fn with_pod_network(mut self) -> Self {
        self.networked = true;
        self
    }

    /// Make [`PAUSE_IMAGE`] from the host's static busybox (`$BUSYBOX` or
    /// `/bin/busybox`) unless the store has it.
    pub async fn ensure_pause_image(&self) -> engine_core::Result<ImageInfo> {
        match self.images.inspect(PAUSE_IMAGE).await {
            Ok(i) => return Ok(i),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let work = self.root.join("tmp").join(format!("pause-{}", &engine_core::random_hex64()[..12]));
        let (rootfs, archive) = (work.join("rootfs"), work.join("image.tar"));
        let (r, a) = (rootfs.clone(), archive.clone());
        let built = tokio::task::spawn_blocking(move || {
            engine_image::build::busybox_rootfs(&r)?;
            engine_image::build::image_from_dir(&r, PAUSE_IMAGE, &a, &Default::default())
        })
        .await
        .map_err(|e| Error::Other(format!("building the pause image: {e}")));
        let res = match built {
            Ok(Ok(())) => {
                self.images.import(&archive, engine_core::ArchiveFormat::DockerArchive, None, None).await.and_then(
                    |mut v| v.pop().ok_or_else(|| Error::Other("import of the pause image gave nothing".into())),
                )
            }
            Ok(Err(e)) | Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_dir_all(&work).await;
        res
    }

    /// Serve both services on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::UnixListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> engine_core::Result<()> {
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let streaming = self.streaming.clone().map(|s| tokio::spawn(s.serve(self.mgr.clone())));
        let res = tonic::transport::Server::builder()
            .add_service(pb::runtime_service_server::RuntimeServiceServer::new(self.clone()))
            .add_service(pb::image_service_server::ImageServiceServer::new(self))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| Error::Other(format!("CRI server: {e}")));
        if let Some(s) = streaming {
            s.abort();
        }
        res
    }

    async fn all(&self) -> Result<Vec<ContainerInfo>, Status> {
        self.mgr.list(ListFilter::default().all(true).labels(vec![KIND.to_string()])).await.map_err(status)
    }

    /// The sandbox with exactly this id (or a unique prefix, as crictl allows).
    async fn sandbox(&self, id: &str) -> Result<ContainerInfo, Status> {
        if id.is_empty() {
            return Err(invalid("pod sandbox id", "empty"));
        }
        let found: Vec<_> =
            self.all().await?.into_iter().filter(|c| is_kind(c, "sandbox") && c.id.starts_with(id)).collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(Status::not_found(format!("pod sandbox {id} not found"))),
            _ => Err(invalid("pod sandbox id", format!("{id} is ambiguous"))),
        }
    }

    async fn container(&self, id: &str) -> Result<ContainerInfo, Status> {
        if id.is_empty() {
            return Err(invalid("container id", "empty"));
        }
        let found: Vec<_> =
            self.all().await?.into_iter().filter(|c| is_kind(c, "container") && c.id.starts_with(id)).collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(Status::not_found(format!("container {id} not found"))),
            _ => Err(invalid("container id", format!("{id} is ambiguous"))),
        }
    }

    /// A container that must be running (FailedPrecondition otherwise).
    async fn running_container(&self, id: &str) -> Result<ContainerInfo, Status> {
        let c = self.container(id).await?;
        if container_state(&c) != pb::ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!("container {} is not running", c.id)));
        }
        Ok(c)
    }

    fn streaming(&self) -> Result<&crate::streaming::Streaming, Status> {
        self.streaming
            .as_deref()
            .ok_or_else(|| Status::unavailable("this CRI server has no streaming server (CriServer::with_streaming)"))
    }

    fn pod_sandbox(info: &ContainerInfo) -> pb::PodSandbox {
        let cfg: pb::PodSandboxConfig = decode(info);
        pb::PodSandbox {
            id: info.id.clone(),
            metadata: cfg.metadata,
            state: sandbox_state(info) as i32,
            created_at: nanos(Some(info.created)),
            labels: cfg.labels,
            annotations: cfg.annotations,
            runtime_handler: info.config.labels.get(HANDLER).cloned().unwrap_or_default(),
        }
    }

    fn cri_container(info: &ContainerInfo) -> pb::Container {
        let cfg: pb::ContainerConfig = decode(info);
        pb::Container {
            id: info.id.clone(),
            pod_sandbox_id: info.config.labels.get(SANDBOX).cloned().unwrap_or_default(),
            metadata: cfg.metadata,
            image: Some(pb::ImageSpec { image: info.image_id.clone(), ..Default::default() }),
            image_ref: info.image_id.clone(),
            state: container_state(info) as i32,
            created_at: nanos(Some(info.created)),
            labels: cfg.labels,
            annotations: cfg.annotations,
            image_id: info.image_id.clone(),
        }
    }

    async fn stop_engine_container(&self, info: &ContainerInfo, timeout: i64) -> Result<(), Status> {
        if matches!(info.state, ContainerState::Running | ContainerState::Paused | ContainerState::Restarting) {
            let grace = Duration::from_secs(timeout.max(0) as u64);
            match self.mgr.stop(&info.id, Some(grace)).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(status(e)),
            }
        }
        Ok(())
    }

    fn sandbox_config(&self, req: &pb::PodSandboxConfig) -> Result<ContainerConfig, Status> {
        let md = req.metadata.as_ref().ok_or_else(|| invalid("pod sandbox config", "metadata is required"))?;
        name_part("metadata.name", &md.name)?;
        name_part("metadata.namespace", &md.namespace)?;
        name_part("metadata.uid", &md.uid)?;
        let linux = req.linux.clone().unwrap_or_default();
        let ns = namespaces(req);
        let host_network = ns.network == pb::NamespaceMode::Node as i32;
        if ns.network != pb::NamespaceMode::Pod as i32 && !host_network {
            return Err(invalid("namespace_options.network", "only POD or NODE"));
        }
        if ns.pid != pb::NamespaceMode::Container as i32 && ns.pid != pb::NamespaceMode::Pod as i32 {
            return Err(invalid(
                "namespace_options.pid",
                "only CONTAINER is supported (no shared or host PID namespace yet)",
            ));
        }
        if ns.ipc != pb::NamespaceMode::Pod as i32 {
            return Err(invalid("namespace_options.ipc", "only POD is supported"));
        }
        if !linux.sysctls.is_empty() {
            return Err(invalid("sysctls", "pod sysctls are not supported yet"));
        }
        let cgroup_parent = cgroup_parent(req)?;
        let mut ports = Vec::new();
        for p in &req.port_mappings {
            let (Ok(container_port), Ok(host_port)) = (u16::try_from(p.container_port), u16::try_from(p.host_port))
            else {
                return Err(invalid(
                    "port_mappings",
                    format!("{}->{}: ports are 0-65535", p.host_port, p.container_port),
                ));
            };
            let protocol = match pb::Protocol::try_from(p.protocol) {
                Ok(pb::Protocol::Tcp) => engine_core::network::Protocol::Tcp,
                Ok(pb::Protocol::Udp) => engine_core::network::Protocol::Udp,
                _ => return Err(invalid("port_mappings", format!("protocol {}: only TCP and UDP", p.protocol))),
            };
            if container_port == 0 {
                return Err(invalid("port_mappings", "container_port 0"));
            }
            if host_network {
                // The pod is on the host's ports already: only identity mappings mean anything.
                if host_port != 0 && host_port != container_port {
                    return Err(invalid(
                        "port_mappings",
                        format!("{host_port}->{container_port}: a hostNetwork pod cannot map ports"),
                    ));
                }
                continue;
            }
            if host_port == 0 {
                // kubelet lists every container port; only hostPorts are mapped.
                continue;
            }
            if !self.networked {
                return Err(invalid(
                    "port_mappings",
                    format!("{host_port}->{container_port}: port mappings need pod networking (engine-cri --network-driver cni)"),
                ));
            }
            let mut b = engine_core::network::PortBinding::new(protocol, container_port).host_port(host_port);
            if !p.host_ip.is_empty() {
                let ip = p
                    .host_ip
                    .parse()
                    .map_err(|_| invalid("port_mappings.host_ip", format!("{:?} is not an IP address", p.host_ip)))?;
                b = b.host_ip(ip);
            }
            ports.push(b);
        }
        let dns = req.dns_config.clone().unwrap_or_default();
        let servers = dns
            .servers
            .iter()
            .map(|s| s.parse().map_err(|_| invalid("dns_config.servers", format!("{s:?} is not an IP address"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut labels = HashMap::new();
        labels.insert(KIND.to_string(), "sandbox".to_string());
        labels.insert(CONFIG.to_string(), encode(req));
        Ok(ContainerConfig::default()
            .image(PAUSE_IMAGE.into())
            .name(Some(format!("k8s_POD_{}_{}_{}_{}", md.name, md.namespace, md.uid, md.attempt)))
            .cmd(Some(vec!["sleep".into(), "2147483647".into()]))
            .hostname((!req.hostname.is_empty() && !host_network).then(|| req.hostname.clone()))
            .labels(labels)
            .network(match (host_network, self.networked) {
                (true, _) => NetworkMode::Host,
                (false, true) => NetworkMode::Bridge,
                (false, false) => NetworkMode::None,
            })
            .ports(ports)
            .init(true)
            .cgroup_parent(cgroup_parent)
            .stop_timeout(Some(Duration::from_secs(2)))
            .dns(servers)
            .dns_search(dns.searches)
            .dns_options(dns.options)
            .log(LogSpec::new("none")))
    }

    fn container_config(
        &self,
        sandbox: &ContainerInfo,
        sandbox_cfg: &pb::PodSandboxConfig,
        req: &pb::ContainerConfig,
    ) -> Result<ContainerConfig, Status> {
        let md = req.metadata.as_ref().ok_or_else(|| invalid("container config", "metadata is required"))?;
        name_part("metadata.name", &md.name)?;
        let image = req.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
        if image.is_empty() {
            return Err(invalid("image", "an image is required"));
        }
        if !req.devices.is_empty() || !req.cdi_devices.is_empty() {
            return Err(invalid("devices", "devices are not supported yet"));
        }
        let mut env = Vec::new();
        for kv in &req.envs {
            if kv.key.is_empty() || kv.key.contains('=') {
                return Err(invalid("envs", format!("{:?} is not a variable name", kv.key)));
            }
            env.push(format!("{}={}", kv.key, kv.value));
        }
        let mut mounts = Vec::new();
        for m in &req.mounts {
            if !m.container_path.starts_with('/') || !m.host_path.starts_with('/') {
                return Err(invalid(
                    "mounts",
                    format!("{} -> {}: absolute paths expected", m.host_path, m.container_path),
                ));
            }
            mounts.push(MountSpec::Bind {
                source: PathBuf::from(&m.host_path),
                target: m.container_path.clone(),
                read_only: m.readonly,
            });
        }
        let mut user = None;
        let mut read_only_rootfs = false;
        let mut security = engine_core::SecurityOptions::default();
        if let Some(sc) = req.linux.as_ref().and_then(|l| l.security_context.as_ref()) {
            security = security_options(sc)?;
            read_only_rootfs = sc.readonly_rootfs;
            if let Some(u) = &sc.run_as_user {
                if u.value < 0 {
                    return Err(invalid("security_context.run_as_user", format!("{} is negative", u.value)));
                }
                user = Some(u.value.to_string());
            } else if !sc.run_as_username.is_empty() {
                user = Some(sc.run_as_username.clone());
            }
            if let Some(g) = &sc.run_as_group {
                let Some(u) = &user else {
                    return Err(invalid("security_context.run_as_group", "needs run_as_user or run_as_username"));
                };
                if g.value < 0 {
                    return Err(invalid("security_context.run_as_group", format!("{} is negative", g.value)));
                }
                user = Some(format!("{u}:{}", g.value));
            }
        }
        let (resources, oom_score_adj) = match req.linux.as_ref().and_then(|l| l.resources.as_ref()) {
            Some(r) => self.resources(r)?,
            None => (Default::default(), None),
        };
        let log = if !sandbox_cfg.log_directory.is_empty() && !req.log_path.is_empty() {
            let p = Path::new(&sandbox_cfg.log_directory).join(&req.log_path);
            LogSpec::new(engine_core::logs::CRI).opt("path", p.to_string_lossy())
        } else {
            LogSpec::new("none")
        };
        log.resolve().map_err(status)?;
        let mut labels = HashMap::new();
        labels.insert(KIND.to_string(), "container".to_string());
        labels.insert(SANDBOX.to_string(), sandbox.id.clone());
        labels.insert(CONFIG.to_string(), encode(req));
        labels.insert(IMAGE.to_string(), image.clone());
        let pod = sandbox_cfg.metadata.clone().unwrap_or_default();
        Ok(ContainerConfig::default()
            .image(image)
            .name(Some(format!("k8s_{}_{}_{}_{}_{}", md.name, pod.name, pod.namespace, pod.uid, md.attempt)))
            .entrypoint((!req.command.is_empty()).then(|| req.command.clone()))
            .cmd((!req.args.is_empty()).then(|| req.args.clone()))
            .env(env)
            .user(user)
            .working_dir((!req.working_dir.is_empty()).then(|| req.working_dir.clone()))
            // The pod's hostname (the UTS namespace is not shared: each
            // container gets the same name instead).
            .hostname(
                (!sandbox_cfg.hostname.is_empty() && namespaces(sandbox_cfg).network != pb::NamespaceMode::Node as i32)
                    .then(|| sandbox_cfg.hostname.clone()),
            )
            .tty(req.tty)
            .open_stdin(req.stdin)
            .labels(labels)
            .mounts(mounts)
            .network(NetworkMode::Container(sandbox.id.clone()))
            .read_only_rootfs(read_only_rootfs)
            .log(log)
            .resources(resources)
            .oom_score_adj(oom_score_adj)
            .security(security)
            .cgroup_parent(cgroup_parent(sandbox_cfg)?)
            .runtime(sandbox.config.runtime.clone()))
    }

    /// The engine's resources for CRI's, and the OOM score adjustment
    /// (clamped when asked to); what the engine cannot apply is refused.
    fn resources(&self, r: &pb::LinuxContainerResources) -> Result<(engine_core::Resources, Option<i32>), Status> {
        if !r.cpuset_mems.is_empty() {
            return Err(invalid("resources.cpuset_mems", "not supported yet"));
        }
        if r.hugepage_limits.iter().any(|h| h.limit > 0) {
            return Err(invalid("resources.hugepage_limits", "hugepage limits are not supported yet"));
        }
        if !r.unified.is_empty() {
            return Err(invalid("resources.unified", "unified cgroup settings are not supported yet"));
        }
        if r.cpu_period != 0 && r.cpu_period != 100_000 {
            // The engine sets CPU limits as a fraction over the default period.
            return Err(invalid(
                "resources.cpu_period",
                format!("{}: only the default CFS period (100000 µs) is supported", r.cpu_period),
            ));
        }
        let pos = |v: i64| (v > 0).then_some(v);
        let cpus = match (r.cpu_quota, r.cpu_period) {
            (q, p) if q > 0 && p > 0 => Some(q as f64 / p as f64),
            (q, _) if q > 0 => Some(q as f64 / 100_000.0),
            _ => None,
        };
        let res = engine_core::Resources::default()
            .memory(pos(r.memory_limit_in_bytes))
            .memory_swap(pos(r.memory_swap_limit_in_bytes))
            .cpus(cpus)
            .cpu_shares(pos(r.cpu_shares).map(|v| v as u64))
            .cpuset_cpus((!r.cpuset_cpus.is_empty()).then(|| r.cpuset_cpus.clone()))
            .pids_limit(None);
        let mut adj = None;
        if r.oom_score_adj != 0 {
            let mut v =
                i32::try_from(r.oom_score_adj).ok().filter(|v| (-1000..=1000).contains(v)).ok_or_else(|| {
                    invalid("resources.oom_score_adj", format!("{} is not in -1000..=1000", r.oom_score_adj))
                })?;
            if self.restrict_oom_score_adj {
                v = v.max(own_oom_score_adj());
            }
            adj = Some(v);
        }
        Ok((res, adj))
    }

    /// A container's stats: CPU and memory from its cgroup while it runs
    /// (working set = the cgroup's memory usage; the engine does not
    /// separate inactive file pages), attributes only once it exited.
    async fn stats(&self, info: &ContainerInfo) -> Result<pb::ContainerStats, Status> {
        let cfg: pb::ContainerConfig = decode(info);
        let mut out = pb::ContainerStats {
            attributes: Some(pb::ContainerAttributes {
                id: info.id.clone(),
                metadata: cfg.metadata,
                labels: cfg.labels,
                annotations: cfg.annotations,
            }),
            ..Default::default()
        };
        if container_state(info) != pb::ContainerState::ContainerRunning {
            return Ok(out);
        }
        let st = match self.mgr.stats(&info.id).await {
            Ok(st) => st,
            // It exited meanwhile.
            Err(e) if e.is_not_found() || e.is_conflict() => return Ok(out),
            Err(e) => return Err(status(e)),
        };
        let now = nanos(Some(SystemTime::now()));
        let u = |v: Option<u64>| v.map(|value| pb::UInt64Value { value });
        out.cpu =
            Some(pb::CpuUsage { timestamp: now, usage_core_nano_seconds: u(st.cpu_usage_ns), usage_nano_cores: None });
        out.memory = Some(pb::MemoryUsage {
            timestamp: now,
            working_set_bytes: u(st.memory_usage),
            usage_bytes: u(st.memory_usage),
            available_bytes: u(st.memory_limit.zip(st.memory_usage).map(|(l, m)| l.saturating_sub(m))),
            ..Default::default()
        });
        Ok(out)
    }

    /// A pod's stats: its containers' (as [`Self::stats`]), and CPU, memory
    /// and process count summed over the sandbox and its running
    /// containers (the pod has no cgroup of the engine's own). Network
    /// usage is not reported.
    async fn pod_stats(&self, sb: &ContainerInfo, all: &[ContainerInfo]) -> Result<pb::PodSandboxStats, Status> {
        let cfg: pb::PodSandboxConfig = decode(sb);
        let now = nanos(Some(SystemTime::now()));
        let mut containers = Vec::new();
        let (mut cpu, mut mem, mut procs, mut any) = (0u64, 0u64, 0u64, false);
        let mut add = |s: &engine_core::Stats| {
            any = true;
            cpu += s.cpu_usage_ns.unwrap_or(0);
            mem += s.memory_usage.unwrap_or(0);
            procs += s.pids_current.unwrap_or(0);
        };
        for c in all.iter().filter(|c| is_kind(c, "container") && c.config.labels.get(SANDBOX) == Some(&sb.id)) {
            containers.push(self.stats(c).await?);
            if container_state(c) == pb::ContainerState::ContainerRunning {
                if let Ok(s) = self.mgr.stats(&c.id).await {
                    add(&s);
                }
            }
        }
        if sandbox_state(sb) == pb::PodSandboxState::SandboxReady {
            if let Ok(s) = self.mgr.stats(&sb.id).await {
                add(&s);
            }
        }
        let u = |v: u64| Some(pb::UInt64Value { value: v });
        Ok(pb::PodSandboxStats {
            attributes: Some(pb::PodSandboxAttributes {
                id: sb.id.clone(),
                metadata: cfg.metadata,
                labels: cfg.labels,
                annotations: cfg.annotations,
            }),
            linux: Some(pb::LinuxPodSandboxStats {
                cpu: any.then(|| pb::CpuUsage {
                    timestamp: now,
                    usage_core_nano_seconds: u(cpu),
                    usage_nano_cores: None,
                }),
                memory: any.then(|| pb::MemoryUsage {
                    timestamp: now,
                    working_set_bytes: u(mem),
                    usage_bytes: u(mem),
                    ..Default::default()
                }),
                network: None,
                process: any.then(|| pb::ProcessUsage { timestamp: now, process_count: u(procs) }),
                containers,
            }),
            windows: None,
        })
    }

    fn image(info: &ImageInfo) -> pb::Image {
        let user = info.config.config().as_ref().and_then(|c| c.user().clone()).unwrap_or_default();
        let (uid, username) = match user.split(':').next().unwrap_or("") {
            "" => (None, String::new()),
            u => match u.parse::<i64>() {
                Ok(n) => (Some(pb::Int64Value { value: n }), String::new()),
                Err(_) => (None, u.to_string()),
            },
        };
        pb::Image {
            id: info.id.clone(),
            repo_tags: info.repo_tags.clone(),
            repo_digests: info.repo_digests.clone(),
            size: info.size,
            uid,
            username,
            spec: Some(pb::ImageSpec { image: info.id.clone(), ..Default::default() }),
            pinned: info.repo_tags.iter().any(|t| t == PAUSE_IMAGE || t.ends_with(PAUSE_IMAGE)),
        }
    }
}

#[tonic::async_trait]
impl pb::runtime_service_server::RuntimeService for CriServer {
    async fn version(&self, _req: Request<pb::VersionRequest>) -> R<pb::VersionResponse> {
        Ok(Response::new(pb::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: crate::RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: crate::CRI_VERSION.into(),
        }))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> R<pb::StatusResponse> {
        let runtime_ok = self.mgr.list(ListFilter::default()).await;
        let pause = self.images.inspect(PAUSE_IMAGE).await;
        let conditions = vec![
            pb::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: runtime_ok.is_ok() && pause.is_ok(),
                reason: if runtime_ok.is_ok() && pause.is_ok() { String::new() } else { "RuntimeNotReady".into() },
                message: match (&runtime_ok, &pause) {
                    (Err(e), _) | (_, Err(e)) => e.to_string(),
                    _ => String::new(),
                },
            },
            // Pods get a loopback-only namespace of their own or the host's;
            // both are always available.
            pb::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: true,
                reason: String::new(),
                message: String::new(),
            },
        ];
        let runtime_handlers = std::iter::once(String::new())
            .chain(self.handlers.keys().cloned())
            .map(|name| pb::RuntimeHandler { name, features: Some(Default::default()) })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            status: Some(pb::RuntimeStatus { conditions }),
            runtime_handlers,
            ..Default::default()
        }))
    }

    async fn run_pod_sandbox(&self, req: Request<pb::RunPodSandboxRequest>) -> R<pb::RunPodSandboxResponse> {
        let req = req.into_inner();
        let runtime = match req.runtime_handler.as_str() {
            "" => None,
            h => match self.handlers.get(h) {
                Some(r) => Some(r.clone()),
                None => {
                    let known: Vec<&str> =
                        std::iter::once("\"\" (default)").chain(self.handlers.keys().map(|s| s.as_str())).collect();
                    return Err(invalid(
                        "runtime_handler",
                        format!("{h:?} is not served (known: {})", known.join(", ")),
                    ));
                }
            },
        };
        let cfg = req.config.ok_or_else(|| invalid("config", "required"))?;
        let mut config = self.sandbox_config(&cfg)?;
        config.runtime = runtime;
        config.labels.insert(HANDLER.to_string(), req.runtime_handler.clone());
        self.ensure_pause_image().await.map_err(status)?;
        let info = self.mgr.create(config).await.map_err(status)?;
        if let Err(e) = self.mgr.start(&info.id).await {
            let _ = self.mgr.remove(&info.id, true).await;
            return Err(status(e));
        }
        tracing::info!(id = %info.id, name = %info.name, "pod sandbox running");
        Ok(Response::new(pb::RunPodSandboxResponse { pod_sandbox_id: info.id }))
    }

    async fn stop_pod_sandbox(&self, req: Request<pb::StopPodSandboxRequest>) -> R<pb::StopPodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        let sb = match self.sandbox(&id).await {
            Ok(sb) => sb,
            // Idempotent: a removed sandbox is stopped.
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(Response::new(pb::StopPodSandboxResponse {})),
            Err(s) => return Err(s),
        };
        for c in self.all().await? {
            if c.config.labels.get(SANDBOX) == Some(&sb.id) {
                self.stop_engine_container(&c, 0).await?;
            }
        }
        self.stop_engine_container(&sb, 2).await?;
        Ok(Response::new(pb::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(&self, req: Request<pb::RemovePodSandboxRequest>) -> R<pb::RemovePodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        let sb = match self.sandbox(&id).await {
            Ok(sb) => sb,
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(Response::new(pb::RemovePodSandboxResponse {})),
            Err(s) => return Err(s),
        };
        for c in self.all().await? {
            if c.config.labels.get(SANDBOX) == Some(&sb.id) {
                match self.mgr.remove(&c.id, true).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(status(e)),
                }
            }
        }
        match self.mgr.remove(&sb.id, true).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(status(e)),
        }
        Ok(Response::new(pb::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(&self, req: Request<pb::PodSandboxStatusRequest>) -> R<pb::PodSandboxStatusResponse> {
        let sb = self.sandbox(&req.into_inner().pod_sandbox_id).await?;
        let p = Self::pod_sandbox(&sb);
        let ns = namespaces(&decode(&sb));
        Ok(Response::new(pb::PodSandboxStatusResponse {
            status: Some(pb::PodSandboxStatus {
                id: p.id,
                metadata: p.metadata,
                state: p.state,
                created_at: p.created_at,
                network: Some(pb::PodSandboxNetworkStatus {
                    ip: sb.networks.values().find_map(|e| e.ipv4).map(|p| p.addr().to_string()).unwrap_or_default(),
                    additional_ips: vec![],
                }),
                linux: Some(pb::LinuxPodSandboxStatus { namespaces: Some(pb::Namespace { options: Some(ns) }) }),
                labels: p.labels,
                annotations: p.annotations,
                runtime_handler: p.runtime_handler,
            }),
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(&self, req: Request<pb::ListPodSandboxRequest>) -> R<pb::ListPodSandboxResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        let items = self
            .all()
            .await?
            .iter()
            .filter(|c| is_kind(c, "sandbox"))
            .map(Self::pod_sandbox)
            .filter(|p| f.id.is_empty() || p.id.starts_with(&f.id))
            .filter(|p| f.state.as_ref().is_none_or(|s| s.state == p.state))
            .filter(|p| selector_matches(&f.label_selector, &p.labels))
            .collect();
        Ok(Response::new(pb::ListPodSandboxResponse { items }))
    }

    async fn create_container(&self, req: Request<pb::CreateContainerRequest>) -> R<pb::CreateContainerResponse> {
        let req = req.into_inner();
        let sb = self.sandbox(&req.pod_sandbox_id).await?;
        if sandbox_state(&sb) != pb::PodSandboxState::SandboxReady {
            return Err(Status::failed_precondition(format!("pod sandbox {} is not ready", sb.id)));
        }
        let sandbox_cfg: pb::PodSandboxConfig = decode(&sb);
        let cfg = req.config.ok_or_else(|| invalid("config", "required"))?;
        let config = self.container_config(&sb, &sandbox_cfg, &cfg)?;
        match self.images.inspect(&config.image).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return Err(Status::not_found(format!("image {} not found (pull it first)", config.image)))
            }
            Err(e) => return Err(status(e)),
        }
        let info = self.mgr.create(config).await.map_err(status)?;
        Ok(Response::new(pb::CreateContainerResponse { container_id: info.id }))
    }

    async fn start_container(&self, req: Request<pb::StartContainerRequest>) -> R<pb::StartContainerResponse> {
        let c = self.container(&req.into_inner().container_id).await?;
        if c.state != ContainerState::Created {
            return Err(Status::failed_precondition(format!("container {} is not in the created state", c.id)));
        }
        self.mgr.start(&c.id).await.map_err(status)?;
        Ok(Response::new(pb::StartContainerResponse {}))
    }

    async fn stop_container(&self, req: Request<pb::StopContainerRequest>) -> R<pb::StopContainerResponse> {
        let req = req.into_inner();
        let c = self.container(&req.container_id).await?;
        self.stop_engine_container(&c, req.timeout).await?;
        Ok(Response::new(pb::StopContainerResponse {}))
    }

    async fn remove_container(&self, req: Request<pb::RemoveContainerRequest>) -> R<pb::RemoveContainerResponse> {
        let c = match self.container(&req.into_inner().container_id).await {
            Ok(c) => c,
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(Response::new(pb::RemoveContainerResponse {})),
            Err(s) => return Err(s),
        };
        match self.mgr.remove(&c.id, true).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(status(e)),
        }
        Ok(Response::new(pb::RemoveContainerResponse {}))
    }

    async fn list_containers(&self, req: Request<pb::ListContainersRequest>) -> R<pb::ListContainersResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        let containers = self
            .all()
            .await?
            .iter()
            .filter(|c| is_kind(c, "container"))
            .map(Self::cri_container)
            .filter(|c| f.id.is_empty() || c.id.starts_with(&f.id))
            .filter(|c| f.pod_sandbox_id.is_empty() || c.pod_sandbox_id.starts_with(&f.pod_sandbox_id))
            .filter(|c| f.state.as_ref().is_none_or(|s| s.state == c.state))
            .filter(|c| selector_matches(&f.label_selector, &c.labels))
            .collect();
        Ok(Response::new(pb::ListContainersResponse { containers }))
    }

    async fn container_status(&self, req: Request<pb::ContainerStatusRequest>) -> R<pb::ContainerStatusResponse> {
        let info = self.container(&req.into_inner().container_id).await?;
        let cfg: pb::ContainerConfig = decode(&info);
        let c = Self::cri_container(&info);
        let exited = c.state == pb::ContainerState::ContainerExited as i32;
        let reason = match (exited, info.oom_killed, info.exit_code) {
            (false, _, _) => String::new(),
            (true, true, _) => "OOMKilled".into(),
            (true, false, Some(0)) => "Completed".into(),
            (true, false, _) => "Error".into(),
        };
        let log_path = if info.config.log.driver == engine_core::logs::CRI {
            info.log_path.to_string_lossy().into_owned()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ContainerStatusResponse {
            status: Some(pb::ContainerStatus {
                id: c.id,
                metadata: c.metadata,
                state: c.state,
                created_at: c.created_at,
                started_at: nanos(info.started_at),
                finished_at: if exited { nanos(info.finished_at) } else { 0 },
                exit_code: if exited { info.exit_code.unwrap_or(0) } else { 0 },
                image: cfg.image.clone(),
                image_ref: c.image_ref,
                reason,
                labels: c.labels,
                annotations: c.annotations,
                mounts: cfg.mounts,
                log_path,
                image_id: c.image_id,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn container_stats(&self, req: Request<pb::ContainerStatsRequest>) -> R<pb::ContainerStatsResponse> {
        let info = self.container(&req.into_inner().container_id).await?;
        Ok(Response::new(pb::ContainerStatsResponse { stats: Some(self.stats(&info).await?) }))
    }

    async fn list_container_stats(
        &self,
        req: Request<pb::ListContainerStatsRequest>,
    ) -> R<pb::ListContainerStatsResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        let mut stats = Vec::new();
        for info in self.all().await?.iter().filter(|c| is_kind(c, "container")) {
            let c = Self::cri_container(info);
            if (f.id.is_empty() || c.id.starts_with(&f.id))
                && (f.pod_sandbox_id.is_empty() || c.pod_sandbox_id.starts_with(&f.pod_sandbox_id))
                && selector_matches(&f.label_selector, &c.labels)
            {
                stats.push(self.stats(info).await?);
            }
        }
        Ok(Response::new(pb::ListContainerStatsResponse { stats }))
    }

    async fn update_container_resources(
        &self,
        req: Request<pb::UpdateContainerResourcesRequest>,
    ) -> R<pb::UpdateContainerResourcesResponse> {
        let req = req.into_inner();
        if req.windows.is_some() {
            return Err(invalid("windows", "Windows resources on a Linux node"));
        }
        let c = self.container(&req.container_id).await?;
        let Some(r) = req.linux else { return Ok(Response::new(pb::UpdateContainerResourcesResponse {})) };
        let (res, adj) = self.resources(&r)?;
        // The OOM score adjustment is set when the container starts; an
        // update may repeat it (kubelet sends the whole set), not change it.
        if adj.is_some() && adj != c.config.oom_score_adj {
            return Err(invalid(
                "linux.oom_score_adj",
                format!("{}: the OOM score adjustment of a running container cannot be changed", r.oom_score_adj),
            ));
        }
        self.mgr.update(&c.id, res).await.map_err(|e| match e {
            Error::Conflict { .. } => Status::failed_precondition(e.to_string()),
            e => status(e),
        })?;
        Ok(Response::new(pb::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        req: Request<pb::ReopenContainerLogRequest>,
    ) -> R<pb::ReopenContainerLogResponse> {
        let c = self.container(&req.into_inner().container_id).await?;
        if c.config.log.driver != engine_core::logs::CRI {
            return Err(Status::failed_precondition(format!("container {} has no CRI log file", c.id)));
        }
        if container_state(&c) != pb::ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!("container {} is not running", c.id)));
        }
        self.mgr.reopen_log(&c.id).await.map_err(|e| match e {
            Error::Conflict { .. } => Status::failed_precondition(e.to_string()),
            e => status(e),
        })?;
        Ok(Response::new(pb::ReopenContainerLogResponse {}))
    }

    async fn pod_sandbox_stats(&self, req: Request<pb::PodSandboxStatsRequest>) -> R<pb::PodSandboxStatsResponse> {
        let sb = self.sandbox(&req.into_inner().pod_sandbox_id).await?;
        let all = self.all().await?;
        Ok(Response::new(pb::PodSandboxStatsResponse { stats: Some(self.pod_stats(&sb, &all).await?) }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<pb::ListPodSandboxStatsRequest>,
    ) -> R<pb::ListPodSandboxStatsResponse> {
        let f = req.into_inner().filter.unwrap_or_default();
        let all = self.all().await?;
        let mut stats = Vec::new();
        for sb in all.iter().filter(|c| is_kind(c, "sandbox")) {
            let p = Self::pod_sandbox(sb);
            if (f.id.is_empty() || p.id.starts_with(&f.id)) && selector_matches(&f.label_selector, &p.labels) {
                stats.push(self.pod_stats(sb, &all).await?);
            }
        }
        Ok(Response::new(pb::ListPodSandboxStatsResponse { stats }))
    }

    async fn exec(&self, req: Request<pb::ExecRequest>) -> R<pb::ExecResponse> {
        let req = req.into_inner();
        if req.cmd.is_empty() {
            return Err(invalid("cmd", "empty"));
        }
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        let c = self.running_container(&req.container_id).await?;
        let url = self.streaming()?.url(crate::streaming::Session::Exec {
            container: c.id,
            cmd: req.cmd,
            tty: req.tty,
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
        });
        Ok(Response::new(pb::ExecResponse { url }))
    }

    async fn attach(&self, req: Request<pb::AttachRequest>) -> R<pb::AttachResponse> {
        let req = req.into_inner();
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        let c = self.running_container(&req.container_id).await?;
        if req.tty != c.config.tty {
            return Err(invalid("tty", format!("{}: the container was created with tty {}", req.tty, c.config.tty)));
        }
        if req.stdin && !c.config.open_stdin {
            return Err(invalid("stdin", "the container was created without stdin"));
        }
        let url = self.streaming()?.url(crate::streaming::Session::Attach {
            container: c.id,
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
        });
        Ok(Response::new(pb::AttachResponse { url }))
    }

    async fn port_forward(&self, req: Request<pb::PortForwardRequest>) -> R<pb::PortForwardResponse> {
        let req = req.into_inner();
        let ports = req
            .port
            .iter()
            .map(|&p| {
                u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| invalid("port", format!("{p} is not 1-65535")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sb = self.sandbox(&req.pod_sandbox_id).await?;
        if sandbox_state(&sb) != pb::PodSandboxState::SandboxReady {
            return Err(Status::failed_precondition(format!("pod sandbox {} is not ready", sb.id)));
        }
        let url = self.streaming()?.url(crate::streaming::Session::PortForward { sandbox: sb.id, ports });
        Ok(Response::new(pb::PortForwardResponse { url }))
    }

    async fn exec_sync(&self, req: Request<pb::ExecSyncRequest>) -> R<pb::ExecSyncResponse> {
        let req = req.into_inner();
        if req.cmd.is_empty() {
            return Err(invalid("cmd", "empty"));
        }
        if req.timeout < 0 {
            return Err(invalid("timeout", "negative"));
        }
        let c = self.container(&req.container_id).await?;
        if container_state(&c) != pb::ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!("container {} is not running", c.id)));
        }
        let exec_id = self.mgr.exec(&c.id, ExecConfig::default().cmd(req.cmd.clone())).await.map_err(status)?;
        let run = async {
            let att = self
                .mgr
                .exec_attach(&exec_id, engine_core::AttachOptions::default().stdin(false).stdout(true).stderr(true))
                .await
                .map_err(status)?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let mut output = att.output;
            while let Some(o) = output.next().await {
                let o = o.map_err(status)?;
                match o.stream {
                    StdStream::Stderr => stderr.extend_from_slice(&o.data),
                    _ => stdout.extend_from_slice(&o.data),
                }
            }
            let st = self.mgr.exec_wait(&exec_id).await.map_err(status)?;
            Ok::<_, Status>(pb::ExecSyncResponse { stdout, stderr, exit_code: st.code })
        };
        let out = if req.timeout > 0 {
            tokio::time::timeout(Duration::from_secs(req.timeout as u64), run).await.map_err(|_| {
                Status::deadline_exceeded(format!("exec in {} timed out after {}s", c.id, req.timeout))
            })??
        } else {
            run.await?
        };
        Ok(Response::new(out))
    }
}

#[tonic::async_trait]
impl pb::image_service_server::ImageService for CriServer {
    async fn list_images(&self, req: Request<pb::ListImagesRequest>) -> R<pb::ListImagesResponse> {
        let want = req.into_inner().filter.and_then(|f| f.image).map(|i| i.image).unwrap_or_default();
        let mut images = Vec::new();
        for i in self.images.list().await.map_err(status)? {
            if want.is_empty() || i.id == want || i.repo_tags.contains(&want) {
                images.push(Self::image(&i));
            }
        }
        Ok(Response::new(pb::ListImagesResponse { images }))
    }

    async fn image_status(&self, req: Request<pb::ImageStatusRequest>) -> R<pb::ImageStatusResponse> {
        let image = req.into_inner().image.map(|i| i.image).unwrap_or_default();
        if image.is_empty() {
            return Err(invalid("image", "required"));
        }
        // CRI: a missing image is a nil image, not an error.
        let image = match self.images.inspect(&image).await {
            Ok(i) => Some(Self::image(&i)),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(status(e)),
        };
        Ok(Response::new(pb::ImageStatusResponse { image, info: HashMap::new() }))
    }

    async fn pull_image(&self, req: Request<pb::PullImageRequest>) -> R<pb::PullImageResponse> {
        let req = req.into_inner();
        let image = req.image.map(|i| i.image).unwrap_or_default();
        if image.is_empty() {
            return Err(invalid("image", "required"));
        }
        let auth = match req.auth {
            None => None,
            Some(a) if !a.identity_token.is_empty() || !a.registry_token.is_empty() => {
                return Err(invalid("auth", "token authentication is not supported yet (username/password or auth)"))
            }
            Some(a) => {
                let (mut username, mut password) = (a.username, a.password);
                if !a.auth.is_empty() {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(&a.auth)
                        .map_err(|_| invalid("auth.auth", "not base64"))?;
                    let s = String::from_utf8(raw).map_err(|_| invalid("auth.auth", "not UTF-8"))?;
                    let (u, p) = s.split_once(':').ok_or_else(|| invalid("auth.auth", "not user:password"))?;
                    (username, password) = (u.to_string(), p.to_string());
                }
                Some(engine_core::RegistryAuth::default().username(Some(username)).password(Some(password)))
            }
        };
        let info = self.images.pull(&image, auth.as_ref(), None).await.map_err(status)?;
        Ok(Response::new(pb::PullImageResponse { image_ref: info.id }))
    }

    async fn remove_image(&self, req: Request<pb::RemoveImageRequest>) -> R<pb::RemoveImageResponse> {
        let image = req.into_inner().image.map(|i| i.image).unwrap_or_default();
        if image.is_empty() {
            return Err(invalid("image", "required"));
        }
        // CRI: removing a missing image succeeds.
        let info = match self.images.inspect(&image).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(Response::new(pb::RemoveImageResponse {})),
            Err(e) => return Err(status(e)),
        };
        // By id removes every tag (CRI removes the image, not one name).
        self.images.remove(&info.id, false).await.map_err(status)?;
        Ok(Response::new(pb::RemoveImageResponse {}))
    }

    async fn image_fs_info(&self, _req: Request<pb::ImageFsInfoRequest>) -> R<pb::ImageFsInfoResponse> {
        let dir = self.root.join("images");
        let d = dir.clone();
        let (used, inodes) = tokio::task::spawn_blocking(move || du(&d))
            .await
            .map_err(|e| Status::internal(format!("measuring {}: {e}", dir.display())))?;
        let now = nanos(Some(SystemTime::now()));
        Ok(Response::new(pb::ImageFsInfoResponse {
            image_filesystems: vec![pb::FilesystemUsage {
                timestamp: now,
                fs_id: Some(pb::FilesystemIdentifier { mountpoint: dir.to_string_lossy().into_owned() }),
                used_bytes: Some(pb::UInt64Value { value: used }),
                inodes_used: Some(pb::UInt64Value { value: inodes }),
            }],
            container_filesystems: vec![],
        }))
    }
}

/// The engine's confinement for a CRI security context; what it cannot
/// apply (SELinux labels, AppArmor profiles, ambient capabilities, the
/// strict supplemental groups policy) is refused. The deprecated string
/// fields are read too, for older kubelets.
#[allow(deprecated)]
fn security_options(sc: &pb::LinuxContainerSecurityContext) -> Result<engine_core::SecurityOptions, Status> {
    use pb::security_profile::ProfileType;
    let mut o = engine_core::SecurityOptions::default();
    if sc
        .selinux_options
        .as_ref()
        .is_some_and(|l| !l.user.is_empty() || !l.role.is_empty() || !l.r#type.is_empty() || !l.level.is_empty())
    {
        return Err(invalid("security_context.selinux_options", "SELinux labels are not supported"));
    }
    let apparmor_ok = match &sc.apparmor {
        Some(p) => p.profile_type != ProfileType::Localhost as i32,
        None => matches!(sc.apparmor_profile.as_str(), "" | "runtime/default" | "unconfined"),
    };
    if !apparmor_ok {
        return Err(invalid(
            "security_context.apparmor",
            "AppArmor profiles are not supported (runtime/default and unconfined are)",
        ));
    }
    if sc.supplemental_groups_policy != 0 {
        return Err(invalid("security_context.supplemental_groups_policy", "only Merge is supported"));
    }
    o.privileged = sc.privileged;
    o.no_new_privileges = sc.no_new_privs;
    if let Some(c) = &sc.capabilities {
        if !c.add_ambient_capabilities.is_empty() {
            return Err(invalid("security_context.capabilities.add_ambient_capabilities", "not supported"));
        }
        o.cap_add = c.add_capabilities.clone();
        o.cap_drop = c.drop_capabilities.clone();
    }
    o.group_add = sc.supplemental_groups.iter().map(|g| g.to_string()).collect();
    if !sc.privileged {
        // kubelet sends its default lists (or none, for an unmasked /proc).
        o.masked_paths = Some(sc.masked_paths.clone());
        o.readonly_paths = Some(sc.readonly_paths.clone());
    }
    // CRI: no profile means unconfined (kubelet sends RuntimeDefault when it wants it).
    let (kind, path) = match &sc.seccomp {
        Some(p) => (p.profile_type, p.localhost_ref.clone()),
        None => match sc.seccomp_profile_path.as_str() {
            "" | "unconfined" => (ProfileType::Unconfined as i32, String::new()),
            "runtime/default" | "docker/default" => (ProfileType::RuntimeDefault as i32, String::new()),
            p => (ProfileType::Localhost as i32, p.strip_prefix("localhost/").unwrap_or(p).to_string()),
        },
    };
    o.seccomp = match ProfileType::try_from(kind) {
        Ok(ProfileType::RuntimeDefault) => engine_core::SeccompProfile::Default,
        Ok(ProfileType::Unconfined) => engine_core::SeccompProfile::Unconfined,
        Ok(ProfileType::Localhost) => {
            if !path.starts_with('/') {
                return Err(invalid(
                    "security_context.seccomp",
                    format!("localhost profile {path:?}: an absolute path expected"),
                ));
            }
            let json = std::fs::read_to_string(&path)
                .map_err(|e| invalid("security_context.seccomp", format!("localhost profile {path}: {e}")))?;
            let mut with = engine_core::SecurityOptions::default();
            with.apply_security_opt(&format!("seccomp={json}")).map_err(status)?;
            with.seccomp
        }
        Err(_) => return Err(invalid("security_context.seccomp", format!("profile type {kind}"))),
    };
    Ok(o)
}

/// This process's OOM score adjustment (0 when unreadable).
fn own_oom_score_adj() -> i32 {
    std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Bytes (allocated blocks) and inodes under `dir`, without following
/// symlinks or crossing into mounts (containers' root filesystems).
fn du(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else { return (0, 0) };
    let dev = top.dev();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
        if m.dev() != dev || !seen.insert(m.ino()) {
            continue;
        }
        bytes += m.blocks() * 512;
        inodes += 1;
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    (bytes, inodes)
}
