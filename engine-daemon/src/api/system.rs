//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`, `/networks`.

use super::State;
use crate::convert;
use crate::http::{self as h, Query, Resp};
use bytes::Bytes;
use engine_api::models::*;
use engine_core::{ContainerState, ListFilter, Result};
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;
use std::collections::HashMap;

pub(crate) fn ping(head: bool) -> Resp {
    let mut r = h::with_status(StatusCode::OK, if head { h::empty() } else { h::full("OK") });
    let hd = r.headers_mut();
    hd.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    hd.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    hd.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    hd.insert("builder-version", HeaderValue::from_static("1"));
    hd.insert("swarm", HeaderValue::from_static("inactive"));
    r
}

fn uname() -> (String, String, String) {
    match nix::sys::utsname::uname() {
        Ok(u) => (
            u.release().to_string_lossy().into_owned(),
            u.machine().to_string_lossy().into_owned(),
            u.nodename().to_string_lossy().into_owned(),
        ),
        Err(_) => (String::new(), String::new(), String::new()),
    }
}

fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(crate) fn version(_st: &State) -> Resp {
    let (kernel, machine, _) = uname();
    let v = VersionResponse {
        platform: PlatformBody { name: "engine".into() },
        components: vec![VersionComponent {
            name: "Engine".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            details: Some(HashMap::from([
                ("ApiVersion".to_string(), h::API_VERSION.to_string()),
                ("MinAPIVersion".to_string(), h::MIN_API_VERSION.to_string()),
                ("Os".to_string(), "linux".to_string()),
                ("Arch".to_string(), go_arch(&machine).to_string()),
                ("KernelVersion".to_string(), kernel.clone()),
                ("GoVersion".to_string(), "rust".to_string()),
                ("GitCommit".to_string(), "engine".to_string()),
                ("BuildTime".to_string(), String::new()),
                ("Experimental".to_string(), "false".to_string()),
            ])),
        }],
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: h::API_VERSION.into(),
        min_api_version: h::MIN_API_VERSION.into(),
        git_commit: String::new(),
        go_version: "rust".into(),
        os: "linux".into(),
        arch: go_arch(&machine).into(),
        kernel_version: kernel,
        build_time: String::new(),
    };
    h::json(StatusCode::OK, &v)
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

pub(crate) fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into())
}

pub(crate) async fn info(st: &State) -> Result<Resp> {
    let all = st.manager.list(ListFilter::default().all(true)).await?;
    let count = |s: ContainerState| all.iter().filter(|c| c.state == s).count();
    let images = st.images.list().await?.len();
    let (kernel, machine, host) = uname();
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut runtimes = serde_json::Map::new();
    for (name, path) in &st.config.runtimes {
        runtimes.insert(name.clone(), json!({ "path": path.display().to_string() }));
    }
    let mut log_drivers = vec!["json-file".to_string(), "local".into(), "none".into()];
    if let Some(p) = &st.config.plugins {
        for a in p.active().await {
            if a.manifest().implements(engine_plugin::LOG_INTERFACE) {
                log_drivers.push(a.name().to_string());
            }
        }
    }
    let running = count(ContainerState::Running);
    let paused = count(ContainerState::Paused);
    // What the image store says makes root filesystems (empty when it does not say).
    let (driver, driver_status) = match st.images.snapshotter() {
        Some(s) => (s.name().to_string(), s.status().into_iter().map(|(k, v)| vec![k, v]).collect::<Vec<_>>()),
        None => (String::new(), Vec::new()),
    };
    let v = json!({
        "ID": st.id,
        "Containers": all.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": all.len() - running - paused,
        "Images": images,
        "Driver": driver,
        "DriverStatus": driver_status,
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": null,
                    "Log": log_drivers},
        "MemoryLimit": true, "SwapLimit": false, "KernelMemory": false, "KernelMemoryTCP": false,
        "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true, "PidsLimit": true,
        "IPv4Forwarding": false, "BridgeNfIptables": false, "BridgeNfIp6tables": false,
        "Debug": false, "NFd": 0, "OomKillDisable": false, "NGoroutines": 0,
        "SystemTime": engine_core::time::format_rfc3339(std::time::SystemTime::now()),
        "LoggingDriver": st.config.log.driver_name(),
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version(),
        "NEventsListener": 0,
        "KernelVersion": kernel,
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "GenericResources": null,
        "DockerRootDir": st.config.data_root.display().to_string(),
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": host,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": runtimes,
        "DefaultRuntime": st.config.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false,
                  "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "engine-init",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        // True since containers get docker's default seccomp profile; no
        // AppArmor, SELinux, user namespaces or rootless to report.
        "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": ["bridge networking is not available yet: default/bridge containers get their own network namespace with loopback only"]
    });
    Ok(h::json(StatusCode::OK, &v))
}

pub(crate) async fn df(st: &State) -> Result<Resp> {
    let images = st.images.list().await?;
    let containers = st.manager.list(ListFilter::default().all(true)).await?;
    let layers: u64 = images.iter().map(|i| i.size).sum();
    let v = json!({
        "LayersSize": layers,
        "Images": images.iter().map(convert::image_summary).collect::<Vec<_>>(),
        "Containers": containers.iter().map(convert::summary).collect::<Vec<_>>(),
        "Volumes": super::volumes::df(st).await?,
        "BuildCache": [],
    });
    Ok(h::json(StatusCode::OK, &v))
}

fn parse_time(v: &str) -> Option<i64> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(f) = v.parse::<f64>() {
        return Some(f as i64);
    }
    engine_core::time::parse_rfc3339(v)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
}

fn matches(ev: &EventMessage, filters: &HashMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(k, vals)| {
        if vals.is_empty() {
            return true;
        }
        vals.iter().any(|v| match k.as_str() {
            "type" => ev.typ == *v,
            "event" | "action" => ev.action == *v || ev.action.starts_with(&format!("{v}:")),
            "container" => {
                ev.typ == "container"
                    && (ev.actor.id.starts_with(v.as_str()) || ev.actor.attributes.get("name") == Some(v))
            }
            "image" => {
                ev.actor.attributes.get("image").is_some_and(|i| i == v)
                    || (ev.typ == "image" && (ev.actor.id == *v || convert::familiar(&ev.actor.id) == *v))
            }
            "label" => match v.split_once('=') {
                Some((lk, lv)) => ev.actor.attributes.get(lk).is_some_and(|x| x == lv),
                None => ev.actor.attributes.contains_key(v.as_str()),
            },
            _ => true,
        })
    })
}

pub(crate) async fn events(st: &State, q: &Query) -> Result<Resp> {
    let filters = q.filters()?;
    let since = q.get("since").and_then(parse_time);
    let until = q.get("until").and_then(parse_time);
    let (backlog, mut rx) = st.events.subscribe(since);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let encode = |e: &EventMessage| {
        let mut v = serde_json::to_vec(e).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    };
    let f2 = filters.clone();
    let initial: Vec<Result<Bytes, std::io::Error>> = backlog
        .iter()
        .filter(|e| matches(e, &filters) && until.is_none_or(|u| e.time <= u))
        .map(|e| Ok(encode(e)))
        .collect();
    let live = async_stream(move |tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>| async move {
        if until.is_some_and(|u| u <= now) {
            return;
        }
        let deadline =
            until.map(|u| tokio::time::Instant::now() + std::time::Duration::from_secs((u - now).max(0) as u64));
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            match next.await {
                None => return,
                Some(Ok(e)) => {
                    if matches(&e, &f2) && tx.send(Ok(encode(&e))).await.is_err() {
                        return;
                    }
                }
                Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Some(Err(_)) => return,
            }
        }
    });
    let s = futures::stream::iter(initial).chain(live).boxed();
    let mut r = h::with_status(StatusCode::OK, h::stream_body(s));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// A stream fed by a task through a small channel; the task ends when the
/// receiver (the HTTP body) is dropped.
pub(crate) fn async_stream<T, F, Fut>(f: F) -> futures::stream::BoxStream<'static, T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}
