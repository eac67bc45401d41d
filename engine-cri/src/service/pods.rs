//! Pod sandboxes: the pause container that holds a pod's namespaces, its
//! config (namespaces, ports, DNS, cgroup parent) and the sandbox RPCs.

use super::convert::{decode, encode, is_kind, pod_sandbox, selector_matches};
use super::{invalid, name_part, status, CriServer, CONFIG, HANDLER, KIND, PAUSE_IMAGE, R, SANDBOX};
use crate::pb;
use engine_core::{ContainerConfig, Error, ImageInfo, LogSpec, NetworkMode};
use std::collections::HashMap;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The sandbox's namespace options (all `POD` when unset).
pub(super) fn namespaces(cfg: &pb::PodSandboxConfig) -> pb::NamespaceOption {
    cfg.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

/// The pod's cgroup parent as kubelet's cgroupfs driver sends it
/// (`/kubepods/burstable/pod<uid>`); the systemd driver's slice names are
/// refused.
pub(super) fn cgroup_parent(cfg: &pb::PodSandboxConfig) -> Result<Option<String>, Status> {
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

impl CriServer {
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
}

pub(super) async fn run(srv: &CriServer, req: Request<pb::RunPodSandboxRequest>) -> R<pb::RunPodSandboxResponse> {
    let req = req.into_inner();
    let runtime = srv.handler_runtime(&req.runtime_handler)?;
    let cfg = req.config.ok_or_else(|| invalid("config", "required"))?;
    let mut config = srv.sandbox_config(&cfg)?;
    config.runtime = runtime;
    config.labels.insert(HANDLER.to_string(), req.runtime_handler.clone());
    srv.ensure_pause_image().await.map_err(status)?;
    let info = srv.mgr.create(config).await.map_err(status)?;
    if let Err(e) = srv.mgr.start(&info.id).await {
        let _ = srv.mgr.remove(&info.id, true).await;
        return Err(status(e));
    }
    tracing::info!(id = %info.id, name = %info.name, "pod sandbox running");
    Ok(Response::new(pb::RunPodSandboxResponse { pod_sandbox_id: info.id }))
}

pub(super) async fn stop(srv: &CriServer, req: Request<pb::StopPodSandboxRequest>) -> R<pb::StopPodSandboxResponse> {
    let id = req.into_inner().pod_sandbox_id;
    let sb = match srv.sandbox(&id).await {
        Ok(sb) => sb,
        // Idempotent: a removed sandbox is stopped.
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(Response::new(pb::StopPodSandboxResponse {})),
        Err(s) => return Err(s),
    };
    for c in srv.all().await? {
        if c.config.labels.get(SANDBOX) == Some(&sb.id) {
            srv.stop_engine_container(&c, 0).await?;
        }
    }
    srv.stop_engine_container(&sb, 2).await?;
    Ok(Response::new(pb::StopPodSandboxResponse {}))
}

pub(super) async fn remove(
    srv: &CriServer,
    req: Request<pb::RemovePodSandboxRequest>,
) -> R<pb::RemovePodSandboxResponse> {
    let id = req.into_inner().pod_sandbox_id;
    let sb = match srv.sandbox(&id).await {
        Ok(sb) => sb,
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(Response::new(pb::RemovePodSandboxResponse {})),
        Err(s) => return Err(s),
    };
    for c in srv.all().await? {
        if c.config.labels.get(SANDBOX) == Some(&sb.id) {
            match srv.mgr.remove(&c.id, true).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(status(e)),
            }
        }
    }
    match srv.mgr.remove(&sb.id, true).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(status(e)),
    }
    Ok(Response::new(pb::RemovePodSandboxResponse {}))
}

pub(super) async fn sandbox_status(
    srv: &CriServer,
    req: Request<pb::PodSandboxStatusRequest>,
) -> R<pb::PodSandboxStatusResponse> {
    let sb = srv.sandbox(&req.into_inner().pod_sandbox_id).await?;
    let p = pod_sandbox(&sb);
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

pub(super) async fn list(srv: &CriServer, req: Request<pb::ListPodSandboxRequest>) -> R<pb::ListPodSandboxResponse> {
    let f = req.into_inner().filter.unwrap_or_default();
    let items = srv
        .all()
        .await?
        .iter()
        .filter(|c| is_kind(c, "sandbox"))
        .map(pod_sandbox)
        .filter(|p| f.id.is_empty() || p.id.starts_with(&f.id))
        .filter(|p| f.state.as_ref().is_none_or(|s| s.state == p.state))
        .filter(|p| selector_matches(&f.label_selector, &p.labels))
        .collect();
    Ok(Response::new(pb::ListPodSandboxResponse { items }))
}
