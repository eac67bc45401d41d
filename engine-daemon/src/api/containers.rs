//! `/containers/...` (except attach, which is in `hijack`).

use super::system::async_stream;
use super::State;
use crate::convert;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use bytes::{Bytes, BytesMut};
use engine_api::frames::{encode_into, FrameStream};
use engine_api::models::*;
use engine_core::{
    ConsoleSize, ContainerInfo, ContainerState, Error, ListFilter, LogOptions, Result, Signal, WaitCondition,
};
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn is_running(i: &ContainerInfo) -> bool {
    matches!(i.state, ContainerState::Running | ContainerState::Paused | ContainerState::Restarting)
}

/// The image reference as Docker names it in "No such image" (a tag added when missing).
fn with_default_tag(r: &str) -> String {
    let (_, tag) = engine_api::split_tag(r);
    if tag.is_none() && !r.contains('@') && !r.starts_with("sha256:") {
        format!("{r}:latest")
    } else {
        r.to_string()
    }
}

pub(crate) async fn create(st: &State, q: &Query, body: Incoming) -> Result<Resp> {
    let data = match h::read_limited(body, st.config.max_json_body).await {
        Ok(d) => d,
        Err(e) => return Ok(e.response()),
    };
    let name = match q.get("name").filter(|n| !n.is_empty()) {
        Some(n) => Some(convert::validate_name(n)?),
        None => None,
    };
    let parsed = convert::parse_create_body(&data)?;
    let mut config = convert::container_config(&parsed, name.clone())?;
    // dockerd's merge with its --log-driver/--log-opt, checked before anything is made.
    config.log = std::mem::take(&mut config.log).with_default(&st.config.log);
    config.log.resolve()?;
    resolve_network(st, &parsed, &mut config).await?;
    super::volumes::volumes_from(st, parsed.host_config.as_ref().and_then(|h| h.volumes_from.as_ref()), &mut config)
        .await?;
    if let Some(n) = &name {
        if let Ok(existing) = st.manager.inspect(n).await {
            if existing.name == *n {
                return Err(Error::conflict(
                    "container",
                    n.clone(),
                    format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        existing.id
                    ),
                ));
            }
        }
    }
    let image = config.image.clone();
    // The manager resolves the image first and creates nothing when it is
    // unknown; Docker names it with its default tag.
    let mut made = super::volumes::create_with_options(st, parsed.host_config.as_ref()).await?;
    match super::plugins::volume_driver_mounts(st, parsed.host_config.as_ref(), &mut config).await {
        Ok(m) => made.extend(m),
        Err(e) => {
            super::volumes::forget_created(st, &made).await;
            return Err(e);
        }
    }
    let info = match st.manager.create(config).await {
        Ok(i) => i,
        Err(e) => {
            super::volumes::forget_created(st, &made).await;
            return match e {
                Error::NotFound { kind: "image", .. } => Err(Error::not_found("image", with_default_tag(&image))),
                e => Err(e),
            };
        }
    };
    Ok(h::json(StatusCode::CREATED, &CreateResponse { id: info.id, warnings: Vec::new() }))
}

/// What the network settings of a create body mean on this daemon: `-P`
/// takes the image's exposed ports too; without a driver, `bridge` is an
/// isolated namespace and anything needing the driver is a 400 naming it.
async fn resolve_network(
    st: &State,
    body: &ContainerConfigBody,
    config: &mut engine_core::ContainerConfig,
) -> Result<()> {
    use engine_core::NetworkMode;
    let hc = body.host_config.clone().unwrap_or_default();
    if hc.publish_all_ports.unwrap_or(false) {
        let mut exposed: Vec<String> = body.exposed_ports.iter().flatten().map(|(k, _)| k.clone()).collect();
        if let Ok(img) = st.images.inspect(&config.image).await {
            exposed.extend(img.config.config().as_ref().and_then(|c| c.exposed_ports().clone()).unwrap_or_default());
        }
        convert::publish_all(&mut config.ports, exposed)?;
    }
    // Unknown networks and containers are 400s at create, not 404s: the
    // docker CLI and testcontainers take any 404 from create for a missing
    // image and go pulling it.
    let unknown_network = |n: &str| Error::invalid("field HostConfig.NetworkMode", format!("network {n} not found"));
    match (&st.network, &config.network) {
        (None, NetworkMode::Network(n)) => return Err(unknown_network(n)),
        (Some(d), NetworkMode::Network(n)) => match d.inspect_network(n).await {
            Err(e) if e.is_not_found() => return Err(unknown_network(n)),
            r => {
                r?;
            }
        },
        (None, NetworkMode::Bridge) => {
            if !config.ports.is_empty() {
                return Err(Error::invalid(
                    "field HostConfig.PortBindings",
                    "publishing ports (-p, -P) needs engined's bridge networking; start engined with --network-driver bridge",
                ));
            }
            config.network = NetworkMode::None;
        }
        _ => {}
    }
    if !config.ports.is_empty() && !matches!(config.network, NetworkMode::Bridge | NetworkMode::Network(_)) {
        return Err(Error::invalid(
            "field HostConfig.PortBindings",
            format!(
                "ports cannot be published in network mode {:?} (only on bridge and user-defined networks)",
                convert::network_name(&config.network)
            ),
        ));
    }
    if let NetworkMode::Container(c) = &config.network {
        let target = st.manager.inspect(c).await.map_err(|e| match e {
            Error::NotFound { .. } => {
                Error::invalid("field HostConfig.NetworkMode", format!("no such container to join: {c}"))
            }
            e => e,
        })?;
        if !matches!(target.state, ContainerState::Running | ContainerState::Paused) {
            return Err(Error::conflict(
                "container",
                target.name.clone(),
                format!("cannot join network of a non running container: {}", target.id),
            ));
        }
        if config.hostname.is_some()
            || !config.dns.is_empty()
            || !config.extra_hosts.is_empty()
            || !config.ports.is_empty()
        {
            return Err(Error::invalid(
                "field HostConfig.NetworkMode",
                "conflicting options: --hostname, --dns and --add-host cannot be used with container: network mode",
            ));
        }
        // It shares the other's namespace and its name files: and so its hostname.
        config.hostname = Some(target.config.hostname.clone().unwrap_or_else(|| target.id.chars().take(12).collect()));
        config.network = NetworkMode::Container(target.id);
    }
    Ok(())
}

pub(crate) async fn list(st: &State, q: &Query) -> Result<Resp> {
    let filters = q.filters()?;
    let mut f = ListFilter::default().all(q.bool("all"));
    f.labels = filters.get("label").cloned().unwrap_or_default();
    f.names = filters
        .get("name")
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    f.ids = filters.get("id").cloned().unwrap_or_default();
    let statuses = filters.get("status").cloned().unwrap_or_default();
    if !statuses.is_empty() {
        f.all = true;
    }
    let ancestors = filters.get("ancestor").cloned().unwrap_or_default();
    let mut list = st.manager.list(f).await?;
    list.retain(|c| statuses.is_empty() || statuses.iter().any(|s| s == convert::state_word(c.state)));
    list.retain(|c| {
        ancestors.is_empty() || ancestors.iter().any(|a| *a == c.config.image || c.image_id.contains(a.as_str()))
    });
    list.sort_by_key(|c| std::cmp::Reverse(c.created));
    if let Some(n) = q.int("limit")? {
        if n > 0 {
            list.truncate(n as usize);
        }
    }
    let out: Vec<convert::SummaryJson> = list.iter().map(convert::SummaryJson).collect();
    Ok(h::json(StatusCode::OK, &out))
}

pub(crate) async fn inspect(st: &State, id: &str) -> Result<Resp> {
    let info = st.manager.inspect(id).await?;
    let exec_ids: Vec<String> = {
        let execs = st.execs.lock().unwrap_or_else(|p| p.into_inner());
        execs.iter().filter(|(_, e)| e.container_id == info.id).map(|(k, _)| k.clone()).collect()
    };
    let image_env = match st.images.inspect(&info.image_id).await {
        Ok(img) => img.config.config().as_ref().and_then(|c| c.env().clone()).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut body = convert::inspect(&info, exec_ids, image_env);
    super::volumes::fill_sources(st, &mut body.mounts).await;
    Ok(h::json(StatusCode::OK, &body))
}

pub(crate) async fn start(st: &State, id: &str) -> Result<Resp> {
    let info = st.manager.inspect(id).await?;
    if is_running(&info) {
        return Ok(h::status(StatusCode::NOT_MODIFIED));
    }
    st.manager.start(&info.id).await?;
    Ok(h::status(StatusCode::NO_CONTENT))
}

fn grace(q: &Query) -> Result<Option<Duration>> {
    Ok(q.int("t")?.filter(|t| *t >= 0).map(|t| Duration::from_secs(t as u64)))
}

pub(crate) async fn stop(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let g = grace(q)?;
    let info = st.manager.inspect(id).await?;
    if !is_running(&info) {
        return Ok(h::status(StatusCode::NOT_MODIFIED));
    }
    st.manager.stop(&info.id, g).await?;
    Ok(h::status(StatusCode::NO_CONTENT))
}

pub(crate) async fn restart(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let g = grace(q)?;
    let info = st.manager.inspect(id).await?;
    if is_running(&info) {
        st.manager.stop(&info.id, g).await?;
    }
    st.manager.start(&info.id).await?;
    Ok(h::status(StatusCode::NO_CONTENT))
}

pub(crate) async fn kill(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let sig = match q.get("signal").filter(|s| !s.is_empty()) {
        Some(s) => s.parse::<Signal>()?,
        None => Signal::KILL,
    };
    let info = st.manager.inspect(id).await?;
    if !is_running(&info) {
        return Err(Error::conflict("container", id, format!("Container {} is not running", info.id)));
    }
    st.manager.kill(&info.id, sig).await?;
    Ok(h::status(StatusCode::NO_CONTENT))
}

pub(crate) async fn pause(st: &State, id: &str, pause: bool) -> Result<Resp> {
    let info = st.manager.inspect(id).await?;
    if pause {
        if info.state != ContainerState::Running {
            return Err(Error::conflict("container", id, format!("Container {} is not running", info.id)));
        }
        st.manager.pause(&info.id).await?;
    } else {
        if info.state != ContainerState::Paused {
            return Err(Error::conflict("container", id, format!("Container {} is not paused", info.id)));
        }
        st.manager.resume(&info.id).await?;
    }
    Ok(h::status(StatusCode::NO_CONTENT))
}

pub(crate) async fn resize(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let height = q.int("h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let width = q.int("w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let info = st.manager.inspect(id).await?;
    if !is_running(&info) {
        return Err(Error::conflict("container", id, format!("Container {} is not running", info.id)));
    }
    st.manager.resize(&info.id, ConsoleSize { height, width }).await?;
    Ok(h::status(StatusCode::OK))
}

pub(crate) async fn remove(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let force = q.bool("force");
    let info = st.manager.inspect(id).await?;
    if is_running(&info) && !force {
        return Err(Error::conflict(
            "container",
            id,
            format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                info.id
            ),
        ));
    }
    st.manager.remove(&info.id, force).await?;
    if q.bool("v") {
        super::volumes::remove_anonymous(st, &info).await;
    }
    st.execs.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, e| e.container_id != info.id);
    Ok(h::status(StatusCode::NO_CONTENT))
}

/// `POST /containers/prune`: remove every stopped container.
pub(crate) async fn prune(st: &State) -> Result<Resp> {
    let all = st.manager.list(ListFilter::default().all(true)).await?;
    let mut deleted = Vec::new();
    for c in all
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Created | ContainerState::Exited | ContainerState::Dead))
    {
        match st.manager.remove(&c.id, false).await {
            Ok(()) => deleted.push(c.id.clone()),
            Err(e) => tracing::debug!(id = %c.id, error = %e, "prune skipped a container"),
        }
    }
    Ok(h::json(StatusCode::OK, &json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0})))
}

/// Aborts a task when dropped (the HTTP body went away).
struct AbortOnDrop(tokio::task::AbortHandle);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn wait_json(code: i64, err: Option<String>) -> Bytes {
    let w = WaitResponse { error: err.map(|m| WaitError { message: m }), status_code: code };
    let mut v = serde_json::to_vec(&w).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// `POST /containers/{id}/wait`: the headers go out at once, the body when
/// the condition is met (the docker CLI waits for the headers before start).
pub(crate) async fn wait(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let cond = match q.get("condition").unwrap_or("") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => return Err(Error::invalid("query parameter condition", format!("invalid condition: {other:?}"))),
    };
    // Subscribe before looking, so no start or exit can slip between the two.
    let (_, mut rx) = st.events.subscribe(None);
    let info = st.manager.inspect(id).await?;
    let manager = st.manager.clone();
    let cid = info.id.clone();
    let task = tokio::spawn(async move {
        let result: Result<i64> = async {
            match cond {
                WaitCondition::NotRunning => Ok(manager.wait(&cid, WaitCondition::NotRunning).await?.code as i64),
                WaitCondition::NextExit if is_running(&info) => {
                    Ok(manager.wait(&cid, WaitCondition::NotRunning).await?.code as i64)
                }
                WaitCondition::NextExit | WaitCondition::Removed => {
                    let mut last_code = info.exit_code.unwrap_or(0) as i64;
                    // Events drive this; a once-a-second look at the manager covers
                    // events lost while a remote manager's stream reconnects.
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    tick.tick().await;
                    loop {
                        let next = tokio::select! {
                            r = rx.recv() => Some(r),
                            _ = tick.tick() => None,
                        };
                        match next {
                            Some(Ok(ev)) if ev.actor.id == cid => match ev.action.as_str() {
                                "start" if cond == WaitCondition::NextExit => {
                                    return Ok(manager.wait(&cid, WaitCondition::NotRunning).await?.code as i64)
                                }
                                "die" => {
                                    last_code = ev
                                        .actor
                                        .attributes
                                        .get("exitCode")
                                        .and_then(|c| c.parse().ok())
                                        .unwrap_or(last_code);
                                    if cond == WaitCondition::NextExit {
                                        return Ok(last_code);
                                    }
                                }
                                "destroy" => return Ok(last_code),
                                _ => {}
                            },
                            Some(Ok(_)) => {}
                            Some(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                                return Err(Error::unavailable("event bus", "closed"))
                            }
                            Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) | None => {
                                match manager.inspect(&cid).await {
                                    Err(e) if e.is_not_found() => return Ok(last_code),
                                    Ok(i) => {
                                        if i.finished_at != info.finished_at {
                                            last_code = i.exit_code.map(i64::from).unwrap_or(last_code);
                                        }
                                        let new_run = is_running(&i) || i.started_at != info.started_at;
                                        if cond == WaitCondition::NextExit && new_run {
                                            return Ok(manager.wait(&cid, WaitCondition::NotRunning).await?.code as i64);
                                        }
                                    }
                                    Err(_) => {}
                                }
                            }
                        }
                    }
                }
            }
        }
        .await;
        match result {
            Ok(code) => wait_json(code, None),
            Err(e) => wait_json(-1, Some(e.to_string())),
        }
    });
    let guard = AbortOnDrop(task.abort_handle());
    let body = futures::stream::once(async move {
        let _guard = guard;
        task.await.map_err(|e| std::io::Error::other(format!("wait task: {e}")))
    })
    .boxed();
    let mut r = h::with_status(StatusCode::OK, h::stream_body(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

fn parse_since(v: Option<&str>) -> Result<Option<SystemTime>> {
    match v.map(str::trim).filter(|s| !s.is_empty() && *s != "0") {
        None => Ok(None),
        Some(s) => {
            if let Ok(f) = s.parse::<f64>() {
                return Ok(Some(UNIX_EPOCH + Duration::from_secs_f64(f.max(0.0))));
            }
            engine_core::time::parse_rfc3339(s)
                .map(Some)
                .ok_or_else(|| Error::invalid("query parameter since/until", format!("{s:?} is not a time")))
        }
    }
}

pub(crate) async fn logs(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let stdout = q.bool("stdout");
    let stderr = q.bool("stderr");
    if !stdout && !stderr {
        return Err(Error::invalid("logs", "Bad parameters: you must choose at least one stream"));
    }
    let tail = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        n => {
            Some(n.parse::<i64>().map_err(|_| Error::invalid("query parameter tail", format!("{n:?}")))?.max(0) as usize)
        }
    };
    let opts = LogOptions::default()
        .stdout(stdout)
        .stderr(stderr)
        .follow(q.bool("follow"))
        .since(parse_since(q.get("since"))?)
        .until(parse_since(q.get("until"))?)
        .tail(tail);
    let timestamps = q.bool("timestamps");
    let info = st.manager.inspect(id).await?;
    let tty = info.config.tty;
    let entries = st.manager.logs(&info.id, opts).await?;
    let s = entries
        .map(move |e| match e {
            Ok(e) => {
                let mut payload = BytesMut::new();
                if timestamps {
                    payload.extend_from_slice(engine_core::time::format_rfc3339(e.time).as_bytes());
                    payload.extend_from_slice(b" ");
                }
                payload.extend_from_slice(&e.line);
                if tty {
                    Ok(payload.freeze())
                } else {
                    let mut out = BytesMut::new();
                    encode_into(FrameStream::from(e.stream), &payload, &mut out);
                    Ok(out.freeze())
                }
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        })
        .boxed();
    Ok(h::with_status(StatusCode::OK, h::stream_body(s)))
}

fn clock_ticks() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

fn proc_row(pid: i32, boot: u64) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ppid = fields.get(1)?.to_string();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start: u64 = fields.get(19)?.parse().ok()?;
    let tck = clock_ticks();
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)).map(str::to_owned)
        })
        .unwrap_or_default();
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let cpu = (utime + stime) / tck;
    let started = boot + start / tck;
    let stime_str = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(started)).to_string();
    let hm = stime_str.get(11..16).unwrap_or("").to_string();
    Some(vec![
        uid,
        pid.to_string(),
        ppid,
        "0".into(),
        hm,
        "?".into(),
        format!("{:02}:{:02}:{:02}", cpu / 3600, (cpu / 60) % 60, cpu % 60),
        cmd,
    ])
}

pub(crate) async fn top(st: &State, id: &str) -> Result<Resp> {
    let info = st.manager.inspect(id).await?;
    if !is_running(&info) {
        return Err(Error::conflict("container", id, format!("Container {} is not running", info.id)));
    }
    let pids = st.manager.top(&info.id).await?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok())))
        .unwrap_or(0);
    let rows: Vec<Vec<String>> = pids.iter().filter_map(|p| proc_row(*p, boot)).collect();
    let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"].iter().map(|s| s.to_string()).collect();
    Ok(h::json(StatusCode::OK, &TopResponse { titles, processes: rows }))
}

fn system_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| l.split_whitespace().skip(1).filter_map(|v| v.parse::<u64>().ok()).sum::<u64>())
        })
        .map(|ticks| ticks * (1_000_000_000 / clock_ticks()))
        .unwrap_or(0)
}

fn stats_json(
    info: &ContainerInfo,
    s: &engine_core::Stats,
    pre: Option<(&engine_core::Stats, u64, SystemTime)>,
) -> serde_json::Value {
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = |s: &engine_core::Stats, sys: u64| {
        json!({
            "cpu_usage": {"total_usage": s.cpu_usage_ns.unwrap_or(0), "usage_in_kernelmode": s.cpu_system_ns.unwrap_or(0),
                          "usage_in_usermode": s.cpu_user_ns.unwrap_or(0)},
            "system_cpu_usage": sys, "online_cpus": ncpu,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
        })
    };
    let (precpu, preread) = match pre {
        Some((p, sys, t)) => (cpu(p, sys), engine_core::time::format_rfc3339(t)),
        None => (
            json!({"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": ncpu,
                         "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}),
            convert::ZERO_TIME.to_string(),
        ),
    };
    let io = |op: &str, v: Option<u64>| json!({"major": 0, "minor": 0, "op": op, "value": v.unwrap_or(0)});
    json!({
        "read": engine_core::time::format_rfc3339(SystemTime::now()),
        "preread": preread,
        "pids_stats": {"current": s.pids_current.unwrap_or(0), "limit": s.pids_limit},
        "blkio_stats": {"io_service_bytes_recursive": [io("read", s.io_read_bytes), io("write", s.io_write_bytes)]},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(s, system_cpu_ns()),
        "precpu_stats": precpu,
        "memory_stats": {"usage": s.memory_usage.unwrap_or(0), "max_usage": s.memory_max_usage.unwrap_or(0),
                         "limit": s.memory_limit.unwrap_or_else(|| super::system::mem_total() as u64),
                         "failcnt": s.oom_kills.unwrap_or(0), "stats": {}},
        "name": format!("/{}", info.name),
        "id": info.id,
        "networks": {}
    })
}

pub(crate) async fn stats(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let stream = q.get("stream").is_none_or(|_| q.bool("stream"));
    let one_shot = q.bool("one-shot");
    let info = st.manager.inspect(id).await?;
    let first = st.manager.stats(&info.id).await?;
    let t0 = SystemTime::now();
    let sys0 = system_cpu_ns();
    if !stream {
        if one_shot {
            return Ok(h::json(StatusCode::OK, &stats_json(&info, &first, None)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second = st.manager.stats(&info.id).await.unwrap_or_else(|_| first.clone());
        return Ok(h::json(StatusCode::OK, &stats_json(&info, &second, Some((&first, sys0, t0)))));
    }
    let manager = st.manager.clone();
    let s = async_stream(move |tx: tokio::sync::mpsc::Sender<std::result::Result<Bytes, std::io::Error>>| async move {
        let mut prev = (first.clone(), sys0, t0);
        let mut line = serde_json::to_vec(&stats_json(&info, &first, None)).unwrap_or_default();
        line.push(b'\n');
        if tx.send(Ok(Bytes::from(line))).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Ok(cur) = manager.stats(&info.id).await else { return };
            let mut line =
                serde_json::to_vec(&stats_json(&info, &cur, Some((&prev.0, prev.1, prev.2)))).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Ok(Bytes::from(line))).await.is_err() {
                return;
            }
            prev = (cur, system_cpu_ns(), SystemTime::now());
        }
    });
    let mut r = h::with_status(StatusCode::OK, h::stream_body(s));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}
