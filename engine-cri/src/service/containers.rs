//! Containers of a pod: the CRI container config mapped onto the engine's
//! (resources, security context, logs) and the container RPCs.

use super::convert::{container_state, cri_container, decode, encode, is_kind, nanos, sandbox_state, selector_matches};
use super::pods::{cgroup_parent, namespaces};
use super::{invalid, name_part, status, CriServer, CONFIG, IMAGE, KIND, R, SANDBOX};
use crate::pb;
use engine_core::{ContainerConfig, ContainerInfo, ContainerState, Error, LogSpec, MountSpec, NetworkMode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tonic::{Request, Response, Status};

impl CriServer {
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
}

pub(super) async fn create(
    srv: &CriServer,
    req: Request<pb::CreateContainerRequest>,
) -> R<pb::CreateContainerResponse> {
    let req = req.into_inner();
    let sb = srv.sandbox(&req.pod_sandbox_id).await?;
    if sandbox_state(&sb) != pb::PodSandboxState::SandboxReady {
        return Err(Status::failed_precondition(format!("pod sandbox {} is not ready", sb.id)));
    }
    let sandbox_cfg: pb::PodSandboxConfig = decode(&sb);
    let cfg = req.config.ok_or_else(|| invalid("config", "required"))?;
    let config = srv.container_config(&sb, &sandbox_cfg, &cfg)?;
    match srv.images.inspect(&config.image).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            return Err(Status::not_found(format!("image {} not found (pull it first)", config.image)))
        }
        Err(e) => return Err(status(e)),
    }
    let info = srv.mgr.create(config).await.map_err(status)?;
    Ok(Response::new(pb::CreateContainerResponse { container_id: info.id }))
}

pub(super) async fn start(srv: &CriServer, req: Request<pb::StartContainerRequest>) -> R<pb::StartContainerResponse> {
    let c = srv.container(&req.into_inner().container_id).await?;
    if c.state != ContainerState::Created {
        return Err(Status::failed_precondition(format!("container {} is not in the created state", c.id)));
    }
    srv.mgr.start(&c.id).await.map_err(status)?;
    Ok(Response::new(pb::StartContainerResponse {}))
}

pub(super) async fn stop(srv: &CriServer, req: Request<pb::StopContainerRequest>) -> R<pb::StopContainerResponse> {
    let req = req.into_inner();
    let c = srv.container(&req.container_id).await?;
    srv.stop_engine_container(&c, req.timeout).await?;
    Ok(Response::new(pb::StopContainerResponse {}))
}

pub(super) async fn remove(
    srv: &CriServer,
    req: Request<pb::RemoveContainerRequest>,
) -> R<pb::RemoveContainerResponse> {
    let c = match srv.container(&req.into_inner().container_id).await {
        Ok(c) => c,
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(Response::new(pb::RemoveContainerResponse {})),
        Err(s) => return Err(s),
    };
    match srv.mgr.remove(&c.id, true).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(status(e)),
    }
    Ok(Response::new(pb::RemoveContainerResponse {}))
}

pub(super) async fn list(srv: &CriServer, req: Request<pb::ListContainersRequest>) -> R<pb::ListContainersResponse> {
    let f = req.into_inner().filter.unwrap_or_default();
    let containers = srv
        .all()
        .await?
        .iter()
        .filter(|c| is_kind(c, "container"))
        .map(cri_container)
        .filter(|c| f.id.is_empty() || c.id.starts_with(&f.id))
        .filter(|c| f.pod_sandbox_id.is_empty() || c.pod_sandbox_id.starts_with(&f.pod_sandbox_id))
        .filter(|c| f.state.as_ref().is_none_or(|s| s.state == c.state))
        .filter(|c| selector_matches(&f.label_selector, &c.labels))
        .collect();
    Ok(Response::new(pb::ListContainersResponse { containers }))
}

pub(super) async fn container_status(
    srv: &CriServer,
    req: Request<pb::ContainerStatusRequest>,
) -> R<pb::ContainerStatusResponse> {
    let info = srv.container(&req.into_inner().container_id).await?;
    let cfg: pb::ContainerConfig = decode(&info);
    let c = cri_container(&info);
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

pub(super) async fn update_resources(
    srv: &CriServer,
    req: Request<pb::UpdateContainerResourcesRequest>,
) -> R<pb::UpdateContainerResourcesResponse> {
    let req = req.into_inner();
    if req.windows.is_some() {
        return Err(invalid("windows", "Windows resources on a Linux node"));
    }
    let c = srv.container(&req.container_id).await?;
    let Some(r) = req.linux else { return Ok(Response::new(pb::UpdateContainerResourcesResponse {})) };
    let (res, adj) = srv.resources(&r)?;
    // The OOM score adjustment is set when the container starts; an
    // update may repeat it (kubelet sends the whole set), not change it.
    if adj.is_some() && adj != c.config.oom_score_adj {
        return Err(invalid(
            "linux.oom_score_adj",
            format!("{}: the OOM score adjustment of a running container cannot be changed", r.oom_score_adj),
        ));
    }
    srv.mgr.update(&c.id, res).await.map_err(|e| match e {
        Error::Conflict { .. } => Status::failed_precondition(e.to_string()),
        e => status(e),
    })?;
    Ok(Response::new(pb::UpdateContainerResourcesResponse {}))
}

pub(super) async fn reopen_log(
    srv: &CriServer,
    req: Request<pb::ReopenContainerLogRequest>,
) -> R<pb::ReopenContainerLogResponse> {
    let c = srv.container(&req.into_inner().container_id).await?;
    if c.config.log.driver != engine_core::logs::CRI {
        return Err(Status::failed_precondition(format!("container {} has no CRI log file", c.id)));
    }
    if container_state(&c) != pb::ContainerState::ContainerRunning {
        return Err(Status::failed_precondition(format!("container {} is not running", c.id)));
    }
    srv.mgr.reopen_log(&c.id).await.map_err(|e| match e {
        Error::Conflict { .. } => Status::failed_precondition(e.to_string()),
        e => status(e),
    })?;
    Ok(Response::new(pb::ReopenContainerLogResponse {}))
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
