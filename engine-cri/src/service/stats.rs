//! Container and pod sandbox stats (CPU, memory, processes) from the
//! engine's cgroup readings.

use super::convert::{
    container_state, cri_container, decode, is_kind, nanos, pod_sandbox, sandbox_state, selector_matches,
};
use super::{status, CriServer, R, SANDBOX};
use crate::pb;
use engine_core::ContainerInfo;
use std::time::SystemTime;
use tonic::{Request, Response, Status};

impl CriServer {
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
}

pub(super) async fn container(
    srv: &CriServer,
    req: Request<pb::ContainerStatsRequest>,
) -> R<pb::ContainerStatsResponse> {
    let info = srv.container(&req.into_inner().container_id).await?;
    Ok(Response::new(pb::ContainerStatsResponse { stats: Some(srv.stats(&info).await?) }))
}

pub(super) async fn list_containers(
    srv: &CriServer,
    req: Request<pb::ListContainerStatsRequest>,
) -> R<pb::ListContainerStatsResponse> {
    let f = req.into_inner().filter.unwrap_or_default();
    let mut stats = Vec::new();
    for info in srv.all().await?.iter().filter(|c| is_kind(c, "container")) {
        let c = cri_container(info);
        if (f.id.is_empty() || c.id.starts_with(&f.id))
            && (f.pod_sandbox_id.is_empty() || c.pod_sandbox_id.starts_with(&f.pod_sandbox_id))
            && selector_matches(&f.label_selector, &c.labels)
        {
            stats.push(srv.stats(info).await?);
        }
    }
    Ok(Response::new(pb::ListContainerStatsResponse { stats }))
}

pub(super) async fn pod(srv: &CriServer, req: Request<pb::PodSandboxStatsRequest>) -> R<pb::PodSandboxStatsResponse> {
    let sb = srv.sandbox(&req.into_inner().pod_sandbox_id).await?;
    let all = srv.all().await?;
    Ok(Response::new(pb::PodSandboxStatsResponse { stats: Some(srv.pod_stats(&sb, &all).await?) }))
}

pub(super) async fn list_pods(
    srv: &CriServer,
    req: Request<pb::ListPodSandboxStatsRequest>,
) -> R<pb::ListPodSandboxStatsResponse> {
    let f = req.into_inner().filter.unwrap_or_default();
    let all = srv.all().await?;
    let mut stats = Vec::new();
    for sb in all.iter().filter(|c| is_kind(c, "sandbox")) {
        let p = pod_sandbox(sb);
        if (f.id.is_empty() || p.id.starts_with(&f.id)) && selector_matches(&f.label_selector, &p.labels) {
            stats.push(srv.pod_stats(sb, &all).await?);
        }
    }
    Ok(Response::new(pb::ListPodSandboxStatsResponse { stats }))
}
