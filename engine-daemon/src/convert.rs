//! Between Docker's JSON and the engine's types.

use engine_api::models::*;
use engine_core::network::{EndpointInfo, HostPorts, PortBinding, Protocol, PublishedPort};
use engine_core::security::{DeviceMapping, SecurityOptions, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
use engine_core::{
    ContainerConfig, ContainerInfo, ContainerState, Error, ImageInfo, LogSpec, MountSpec, NetworkMode, Resources,
    RestartPolicy, Result, Signal,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Docker's "zero" time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Parse a create body, naming the field on a type error (`HostConfig.Memory: invalid type ...`).
pub fn parse_create_body(body: &[u8]) -> Result<ContainerConfigBody> {
    parse_body(body, "container config")
}

/// Parse any JSON body, naming the field on a type error.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::invalid(what, "the request body is empty; a JSON object is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() || inner.is_syntax() || inner.is_eof() {
            Error::invalid(what, format!("malformed JSON: {inner}"))
        } else {
            Error::invalid(format!("field {path}"), inner.to_string())
        }
    })
}

/// Docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with an optional leading `/`.
pub fn validate_name(name: &str) -> Result<String> {
    engine_core::lifecycle::validate_container_name(name)
}

/// Validate an image reference the way docker's parser would reject it.
pub fn validate_reference(r: &str) -> Result<()> {
    let bad = r.is_empty()
        || r.len() > 512
        || r.chars().any(|c| c.is_whitespace() || c.is_control())
        || r.starts_with(['/', ':', '@', '-', '.'])
        || r.ends_with(['/', ':', '@'])
        || r.contains("//")
        || r.chars().any(|c| !(c.is_ascii_alphanumeric() || "._-/:@+".contains(c)));
    let (name, _) = engine_api::split_tag(r.split('@').next().unwrap_or(r));
    let upper = name.rsplit_once('/').map(|(_, last)| last).unwrap_or(name).chars().any(|c| c.is_ascii_uppercase());
    if bad || upper {
        return Err(Error::invalid(
            "reference format",
            format!("invalid reference format: {r:?} (repository name must be lowercase, no spaces)"),
        ));
    }
    Ok(())
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        'b' => (&s[..s.len() - 1], 1),
        _ => (&s[..], 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// Turn Docker's create body into the engine's container config.
pub fn container_config(body: &ContainerConfigBody, name: Option<String>) -> Result<ContainerConfig> {
    let image = body.image.clone().unwrap_or_default();
    if image.trim().is_empty() {
        return Err(Error::invalid("field Image", "an image is required"));
    }
    validate_reference(&image)?;
    let hc = body.host_config.clone().unwrap_or_default();
    for e in body.env.iter().flatten() {
        if e.is_empty() || e.starts_with('=') {
            return Err(Error::invalid("field Env", format!("invalid environment variable: {e:?}")));
        }
    }
    if let Some(w) = body.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            return Err(Error::invalid(
                "field WorkingDir",
                format!("the working directory '{w}' is invalid, it needs to be an absolute path"),
            ));
        }
    }
    let (security, init) = security_options(&hc)?;
    let mut mounts = Vec::new();
    for b in hc.binds.iter().flatten() {
        mounts.push(parse_bind(b)?);
    }
    for m in hc.mounts.iter().flatten() {
        mounts.push(parse_mount(m)?);
    }
    for (target, opts) in hc.tmpfs.iter().flatten() {
        if !target.starts_with('/') {
            return Err(Error::invalid("field HostConfig.Tmpfs", format!("{target:?} is not an absolute path")));
        }
        let size = opts.split(',').find_map(|o| o.strip_prefix("size=")).and_then(parse_size);
        mounts.push(MountSpec::Tmpfs { target: target.clone(), size });
    }
    // `-v /path`: the CLI sends it as Config.Volumes; an anonymous volume.
    crate::volumes::anonymous_mounts(body.volumes.as_ref(), &mut mounts);
    let positive = |v: Option<i64>, field: &str| -> Result<Option<i64>> {
        match v {
            Some(n) if n < 0 => Err(Error::invalid(format!("field HostConfig.{field}"), format!("{n} is negative"))),
            Some(0) | None => Ok(None),
            Some(n) => Ok(Some(n)),
        }
    };
    let memory = positive(hc.memory, "Memory")?;
    if let Some(m) = memory {
        if m < 6 << 20 {
            return Err(Error::invalid("field HostConfig.Memory", "Minimum memory limit allowed is 6MB"));
        }
    }
    let nano = positive(hc.nano_cpus, "NanoCpus")?;
    let shares = positive(hc.cpu_shares, "CpuShares")?;
    let resources = Resources {
        memory,
        memory_swap: hc.memory_swap.filter(|v| *v != 0),
        cpus: nano.map(|n| n as f64 / 1e9),
        cpu_shares: shares.map(|s| s as u64),
        cpuset_cpus: hc.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        pids_limit: hc.pids_limit.filter(|p| *p > 0),
    };
    let network = network_mode(hc.network_mode.as_deref().unwrap_or(""))?;
    let endpoint = endpoint_config(body.networking_config.as_ref(), &network)?;
    let ports = port_bindings(hc.port_bindings.as_ref())?;
    let mut dns = Vec::new();
    for d in hc.dns.iter().flatten() {
        dns.push(
            d.parse::<std::net::IpAddr>()
                .map_err(|_| Error::invalid("field HostConfig.Dns", format!("{d:?} is not an IP address")))?,
        );
    }
    let mut extra_hosts = Vec::new();
    for e in hc.extra_hosts.iter().flatten() {
        extra_hosts.push(parse_extra_host(e)?);
    }
    let restart = match &hc.restart_policy {
        None => RestartPolicy::No,
        Some(p) => match p.name.as_deref().unwrap_or("") {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let n = p.maximum_retry_count.unwrap_or(0);
                if n < 0 {
                    return Err(Error::invalid(
                        "field HostConfig.RestartPolicy.MaximumRetryCount",
                        format!("{n} is negative"),
                    ));
                }
                RestartPolicy::OnFailure { max_retries: n as u32 }
            }
            other => {
                return Err(Error::invalid(
                    "field HostConfig.RestartPolicy.Name",
                    format!("invalid restart policy {other:?}"),
                ))
            }
        },
    };
    let auto_remove = hc.auto_remove.unwrap_or(false);
    if auto_remove && restart != RestartPolicy::No {
        return Err(Error::invalid(
            "field HostConfig.AutoRemove",
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    let stop_signal = match body.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            Some(s.parse::<Signal>().map_err(|_| Error::invalid("field StopSignal", format!("invalid signal: {s}")))?)
        }
    };
    let entrypoint =
        body.entrypoint.as_ref().map(|e| if e.0.len() == 1 && e.0[0].is_empty() { Vec::new() } else { e.0.clone() });
    Ok(ContainerConfig {
        image,
        name,
        cmd: body.cmd.as_ref().map(|c| c.0.clone()).filter(|c| !c.is_empty()),
        entrypoint,
        env: body.env.clone().unwrap_or_default(),
        user: body.user.clone().filter(|u| !u.is_empty()),
        working_dir: body.working_dir.clone().filter(|w| !w.is_empty()),
        hostname: body.hostname.clone().filter(|h| !h.is_empty()),
        tty: body.tty.unwrap_or(false),
        open_stdin: body.open_stdin.unwrap_or(false),
        labels: body.labels.clone().unwrap_or_default(),
        mounts,
        resources,
        network,
        restart,
        auto_remove,
        runtime: hc.runtime.clone().filter(|r| !r.is_empty()),
        stop_signal,
        stop_timeout: body.stop_timeout.filter(|t| *t >= 0).map(|t| Duration::from_secs(t as u64)),
        read_only_rootfs: hc.readonly_rootfs.unwrap_or(false),
        owner_pid: None,
        log: log_spec(hc.log_config.as_ref())?,
        security,
        init,
        // Docker's HostConfig.OomScoreAdj is not wired yet.
        oom_score_adj: None,
        ports,
        network_aliases: endpoint.0,
        ipv4: endpoint.1,
        dns,
        dns_search: hc.dns_search.clone().unwrap_or_default(),
        dns_options: hc.dns_options.clone().unwrap_or_default(),
        extra_hosts,
    })
}

/// `HostConfig.LogConfig` (`{"Type": "json-file", "Config": {"max-size": "1m"}}`)
/// as a [`LogSpec`]; an empty or missing Type means the daemon's default.
pub fn log_spec(v: Option<&Value>) -> Result<LogSpec> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(LogSpec::default()) };
    let bad = |why: &str| Error::invalid("field HostConfig.LogConfig", why.to_string());
    let obj = v.as_object().ok_or_else(|| bad("not an object"))?;
    let driver = match obj.get("Type") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("Type is not a string")),
    };
    let mut spec = LogSpec::new(driver);
    match obj.get("Config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = v.as_str().ok_or_else(|| bad(&format!("Config.{k} is not a string")))?;
                spec.opts.insert(k.clone(), v.to_string());
            }
        }
        Some(_) => return Err(bad("Config is not an object")),
    }
    Ok(spec)
}

/// `HostConfig.NetworkMode`: `bridge` (also `""`, `default`), `none`,
/// `host`, `container:<id|name>`, or a user network's name or id.
pub fn network_mode(m: &str) -> Result<NetworkMode> {
    Ok(match m {
        "" | "default" | "bridge" => NetworkMode::Bridge,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        m if m.starts_with("container:") => {
            let c = &m["container:".len()..];
            if c.is_empty() {
                return Err(Error::invalid("field HostConfig.NetworkMode", "container: needs a container id or name"));
            }
            NetworkMode::Container(c.to_string())
        }
        other => NetworkMode::Network(other.to_string()),
    })
}

/// `--add-host name:ip` (docker also accepts `name=ip`).
pub fn parse_extra_host(e: &str) -> Result<(String, std::net::IpAddr)> {
    let bad = || Error::invalid("field HostConfig.ExtraHosts", format!("invalid IP address in add-host: {e:?}"));
    let (name, ip) = e.split_once('=').or_else(|| e.split_once(':')).ok_or_else(bad)?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
        return Err(Error::invalid("field HostConfig.ExtraHosts", format!("invalid host name in add-host: {e:?}")));
    }
    Ok((name.to_string(), ip.parse().map_err(|_| bad())?))
}

/// `NetworkingConfig.EndpointsConfig`: the aliases and fixed IPv4 address
/// for the container's one network. Settings for any other network are
/// refused (API 1.41 connects one network at create).
fn endpoint_config(nc: Option<&Value>, mode: &NetworkMode) -> Result<(Vec<String>, Option<std::net::Ipv4Addr>)> {
    let Some(eps) = nc.and_then(|n| n.get("EndpointsConfig")).and_then(Value::as_object) else {
        return Ok((Vec::new(), None));
    };
    let own = network_name(mode);
    let mut aliases = Vec::new();
    let mut ip = None;
    for (net, ep) in eps {
        if *net != own && !(own == "bridge" && net == "default") {
            return Err(Error::invalid(
                "field NetworkingConfig.EndpointsConfig",
                format!("settings for network {net:?}, but the container joins {own:?} (connect it afterwards)"),
            ));
        }
        for a in ep.get("Aliases").and_then(Value::as_array).into_iter().flatten() {
            if let Some(a) = a.as_str().filter(|a| !a.is_empty()) {
                aliases.push(a.to_string());
            }
        }
        let cfg = ep.get("IPAMConfig");
        if let Some(v4) = cfg.and_then(|c| c.get("IPv4Address")).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            ip = Some(v4.parse().map_err(|_| {
                Error::invalid("field NetworkingConfig.EndpointsConfig.IPAMConfig.IPv4Address", format!("{v4:?}"))
            })?);
        }
        if let Some(v6) = cfg.and_then(|c| c.get("IPv6Address")).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            return Err(Error::invalid(
                "field NetworkingConfig.EndpointsConfig.IPAMConfig.IPv6Address",
                format!("{v6:?}: fixed IPv6 addresses are not supported by this engine"),
            ));
        }
        if ep.get("Links").and_then(Value::as_array).is_some_and(|l| !l.is_empty()) {
            return Err(Error::invalid(
                "field NetworkingConfig.EndpointsConfig.Links",
                "legacy links are not supported by this engine; use a user-defined network and names",
            ));
        }
    }
    if !aliases.is_empty() && matches!(mode, NetworkMode::Bridge) {
        return Err(Error::invalid(
            "field NetworkingConfig.EndpointsConfig.Aliases",
            "network-scoped aliases are supported only for containers in user defined networks",
        ));
    }
    if ip.is_some() && matches!(mode, NetworkMode::Bridge) {
        return Err(Error::invalid(
            "field NetworkingConfig.EndpointsConfig.IPAMConfig",
            "user specified IP address is supported on user defined networks only",
        ));
    }
    Ok((aliases, ip))
}

/// A port key, `80/tcp` (protocol defaults to tcp).
pub fn parse_port_key(k: &str) -> Result<(u16, Protocol)> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let proto: Protocol = proto.parse().map_err(|_| {
        Error::invalid("port spec", format!("{k:?}: protocol must be tcp or udp (sctp is not supported)"))
    })?;
    let port: u16 = p.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
        Error::invalid("port spec", format!("invalid containerPort: {p:?} (a number from 1 to 65535)"))
    })?;
    Ok((port, proto))
}

/// `HostConfig.PortBindings` as the engine's bindings.
pub fn port_bindings(v: Option<&Value>) -> Result<Vec<PortBinding>> {
    let Some(map) = v.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let map = map
        .as_object()
        .ok_or_else(|| Error::invalid("field HostConfig.PortBindings", "an object of \"port/proto\": [bindings]"))?;
    let mut out = Vec::new();
    for (key, list) in map {
        let (cport, proto) = parse_port_key(key)?;
        let list = match list {
            Value::Null => vec![json!({})],
            Value::Array(a) if a.is_empty() => vec![json!({})],
            Value::Array(a) => a.clone(),
            _ => return Err(Error::invalid("field HostConfig.PortBindings", format!("{key}: a list of bindings"))),
        };
        for b in list {
            let mut pb = PortBinding::new(proto, cport);
            let ip = b.get("HostIp").and_then(Value::as_str).unwrap_or("");
            if !ip.is_empty() {
                let a: std::net::IpAddr = ip
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| Error::invalid("port spec", format!("{key}: invalid host IP {ip:?}")))?;
                if !a.is_unspecified() {
                    pb.host_ip = Some(a);
                }
            }
            let hp = b.get("HostPort").and_then(Value::as_str).unwrap_or("");
            if !hp.is_empty() {
                let (a, z) = hp.split_once('-').unwrap_or((hp, hp));
                let num = |s: &str| {
                    s.parse::<u16>()
                        .map_err(|_| Error::invalid("port spec", format!("{key}: invalid hostPort: {hp:?}")))
                };
                let (a, z) = (num(a)?, num(z)?);
                if z < a || (a == 0 && z != 0) {
                    return Err(Error::invalid("port spec", format!("{key}: invalid hostPort range: {hp:?}")));
                }
                pb.host_ports = if a == 0 { HostPorts::Any } else { HostPorts::Range(a, z) };
            }
            out.push(pb);
        }
    }
    out.sort_by_key(|b| (b.container_port, b.protocol));
    Ok(out)
}

/// `-P`: every exposed port not bound explicitly, on a free host port.
pub fn publish_all(ports: &mut Vec<PortBinding>, exposed: impl IntoIterator<Item = String>) -> Result<()> {
    let mut keys: Vec<(u16, Protocol)> = Vec::new();
    for k in exposed {
        let k = parse_port_key(&k)?;
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort();
    for (port, proto) in keys {
        if !ports.iter().any(|b| b.container_port == port && b.protocol == proto) {
            ports.push(PortBinding::new(proto, port));
        }
    }
    Ok(())
}

/// HostConfig's confinement fields (Privileged, CapAdd, CapDrop, SecurityOpt,
/// Devices, GroupAdd, Sysctls, MaskedPaths, ReadonlyPaths) and Init. Whatever
/// cannot be honoured is an error naming it.
fn security_options(hc: &HostConfig) -> Result<(SecurityOptions, bool)> {
    let mut sec = SecurityOptions::default();
    sec.privileged = hc.privileged.unwrap_or(false);
    for (list, field, out) in [(&hc.cap_add, "CapAdd", &mut sec.cap_add), (&hc.cap_drop, "CapDrop", &mut sec.cap_drop)]
    {
        for c in list.iter().flatten() {
            let n = engine_core::security::normalize_capability(c).map_err(|e| match e {
                Error::InvalidInput { reason, .. } => Error::invalid(field, reason),
                other => other,
            })?;
            out.push(n);
        }
    }
    for o in hc.security_opt.iter().flatten() {
        sec.apply_security_opt(o)?;
    }
    for d in hc.devices.iter().flatten() {
        let cont = if d.path_in_container.is_empty() { d.path_on_host.clone() } else { d.path_in_container.clone() };
        let perms = if d.cgroup_permissions.is_empty() { "rwm".to_string() } else { d.cgroup_permissions.clone() };
        sec.devices.push(DeviceMapping::new(d.path_on_host.clone(), cont, perms)?);
    }
    if let Some(r) = hc.device_cgroup_rules.as_ref().filter(|r| !r.is_empty()) {
        return Err(Error::invalid(
            "field HostConfig.DeviceCgroupRules",
            format!("{r:?}: device cgroup rules are not supported by this engine"),
        ));
    }
    sec.group_add = hc.group_add.clone().unwrap_or_default();
    sec.sysctls = hc.sysctls.clone().unwrap_or_default().into_iter().collect();
    sec.masked_paths = hc.masked_paths.clone();
    sec.readonly_paths = hc.readonly_paths.clone();
    Ok((sec, hc.init.unwrap_or(false)))
}

fn parse_bind(b: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = b.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(Error::invalid("field HostConfig.Binds", format!("invalid volume specification: {b:?}"))),
    };
    if !dst.starts_with('/') {
        return Err(Error::invalid("field HostConfig.Binds", format!("{b:?}: the container path must be absolute")));
    }
    let read_only = mode.split(',').any(|m| m == "ro");
    let no_copy = mode.split(',').any(|m| m == "nocopy");
    if src.starts_with('/') {
        Ok(MountSpec::Bind { source: PathBuf::from(src), target: dst.into(), read_only })
    } else if !src.is_empty() {
        Ok(MountSpec::Volume { name: src.into(), target: dst.into(), read_only, no_copy })
    } else {
        Err(Error::invalid("field HostConfig.Binds", format!("invalid volume specification: {b:?}")))
    }
}

fn parse_mount(m: &MountBody) -> Result<MountSpec> {
    let target = m.target.clone().unwrap_or_default();
    if !target.starts_with('/') {
        return Err(Error::invalid("field HostConfig.Mounts.Target", format!("{target:?} is not an absolute path")));
    }
    let ro = m.read_only.unwrap_or(false);
    match m.r#type.as_deref().unwrap_or("volume") {
        "bind" => {
            let src = m.source.clone().unwrap_or_default();
            if !src.starts_with('/') {
                return Err(Error::invalid(
                    "field HostConfig.Mounts.Source",
                    format!("bind source {src:?} is not an absolute path"),
                ));
            }
            Ok(MountSpec::Bind { source: src.into(), target, read_only: ro })
        }
        "volume" => {
            // No source: an anonymous volume, named by the manager.
            let name = m.source.clone().unwrap_or_default();
            let no_copy = m.volume_options.as_ref().and_then(|o| o.no_copy).unwrap_or(false);
            Ok(MountSpec::Volume { name, target, read_only: ro, no_copy })
        }
        "tmpfs" => Ok(MountSpec::Tmpfs {
            target,
            size: m.tmpfs_options.as_ref().and_then(|o| o.size_bytes).filter(|s| *s > 0).map(|s| s as u64),
        }),
        other => Err(Error::invalid("field HostConfig.Mounts.Type", format!("mount type {other:?} is not supported"))),
    }
}

/// Docker's HumanDuration.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs + 1800) / 3600;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", secs / 3600 / 24 / 365)
}

fn since(t: Option<SystemTime>) -> Duration {
    t.and_then(|t| SystemTime::now().duration_since(t).ok()).unwrap_or_default()
}

/// Docker's state word.
pub fn state_word(s: ContainerState) -> &'static str {
    match s {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Exited => "exited",
        ContainerState::Removing => "removing",
        ContainerState::Dead => "dead",
    }
}

/// `docker ps`'s Status column: "Up 2 seconds", "Exited (137) 4 seconds ago".
pub fn status_text(info: &ContainerInfo) -> String {
    match info.state {
        ContainerState::Running => format!("Up {}", human_duration(since(info.started_at))),
        ContainerState::Paused => format!("Up {} (Paused)", human_duration(since(info.started_at))),
        ContainerState::Restarting => {
            format!("Restarting ({}) {} ago", info.exit_code.unwrap_or(0), human_duration(since(info.finished_at)))
        }
        ContainerState::Created => "Created".into(),
        ContainerState::Exited => {
            if info.finished_at.is_none() {
                format!("Exited ({})", info.exit_code.unwrap_or(0))
            } else {
                format!("Exited ({}) {} ago", info.exit_code.unwrap_or(0), human_duration(since(info.finished_at)))
            }
        }
        ContainerState::Removing => "Removal In Progress".into(),
        ContainerState::Dead => "Dead".into(),
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn rfc3339_or_zero(t: Option<SystemTime>) -> String {
    t.map(engine_core::time::format_rfc3339).unwrap_or_else(|| ZERO_TIME.to_string())
}

/// The network mode name as Docker shows it.
pub fn network_name(n: &NetworkMode) -> String {
    match n {
        NetworkMode::None => "none".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Path(p) => format!("ns:{}", p.display()),
        NetworkMode::Bridge => "bridge".into(),
        NetworkMode::Network(n) => n.clone(),
        NetworkMode::Container(c) => format!("container:{c}"),
    }
}

fn endpoint_settings() -> Value {
    json!({"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"","EndpointID":"","Gateway":"",
           "IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,
           "MacAddress":"","DriverOpts":null})
}

/// One network's `EndpointSettings` as dockerd fills them.
pub fn endpoint_json(ep: &EndpointInfo, fixed_ip: Option<std::net::Ipv4Addr>) -> Value {
    json!({
        "IPAMConfig": fixed_ip.map(|ip| json!({"IPv4Address": ip.to_string()})),
        "Links": null,
        "Aliases": (!ep.aliases.is_empty()).then(|| ep.aliases.clone()),
        "NetworkID": ep.network_id,
        "EndpointID": ep.endpoint_id,
        "Gateway": ep.gateway4.map(|g| g.to_string()).unwrap_or_default(),
        "IPAddress": ep.ipv4.map(|a| a.addr().to_string()).unwrap_or_default(),
        "IPPrefixLen": ep.ipv4.map(|a| a.prefix()).unwrap_or(0),
        "IPv6Gateway": ep.gateway6.map(|g| g.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": ep.ipv6.map(|a| a.addr().to_string()).unwrap_or_default(),
        "GlobalIPv6PrefixLen": ep.ipv6.map(|a| a.prefix()).unwrap_or(0),
        "MacAddress": ep.mac.to_string(),
        "DriverOpts": null,
    })
}

fn published(info: &ContainerInfo) -> Vec<PublishedPort> {
    let mut v: Vec<PublishedPort> = info.networks.values().flat_map(|e| e.ports.iter().cloned()).collect();
    v.sort_by_key(|p| (p.container_port, p.protocol, p.host_ip, p.host_port));
    v
}

/// `NetworkSettings.Ports`: `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]}`.
pub fn ports_map(info: &ContainerInfo) -> Value {
    let mut m = serde_json::Map::new();
    for p in published(info) {
        let e = m.entry(format!("{}/{}", p.container_port, p.protocol)).or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            a.push(json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}));
        }
    }
    Value::Object(m)
}

/// `Ports` of a `docker ps` entry.
pub fn summary_ports(info: &ContainerInfo) -> Vec<Value> {
    published(info)
        .into_iter()
        .map(|p| {
            json!({"IP": p.host_ip.to_string(), "PrivatePort": p.container_port, "PublicPort": p.host_port,
                        "Type": p.protocol.as_str()})
        })
        .collect()
}

/// `NetworkSettings.Networks`: the container's endpoints, or its mode's
/// empty entry (`none`, `host`).
fn networks_json(info: &ContainerInfo) -> Value {
    if info.networks.is_empty() {
        return json!({ network_name(&info.config.network): endpoint_settings() });
    }
    let m: serde_json::Map<String, Value> =
        info.networks.iter().map(|(n, ep)| (n.clone(), endpoint_json(ep, info.config.ipv4))).collect();
    Value::Object(m)
}

/// `NetworkSettings` of inspect: the top-level address fields come from
/// the default `bridge` network only, as dockerd fills them.
pub fn network_settings(info: &ContainerInfo, sandbox_key: &str) -> Value {
    let bridge = info.networks.get("bridge");
    let s = |f: &dyn Fn(&EndpointInfo) -> String| bridge.map(f).unwrap_or_default();
    json!({
        "Bridge": "", "SandboxID": if sandbox_key.is_empty() { String::new() } else { info.id.clone() },
        "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports_map(info), "SandboxKey": sandbox_key,
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": s(&|e| e.endpoint_id.clone()),
        "Gateway": s(&|e| e.gateway4.map(|g| g.to_string()).unwrap_or_default()),
        "GlobalIPv6Address": s(&|e| e.ipv6.map(|a| a.addr().to_string()).unwrap_or_default()),
        "GlobalIPv6PrefixLen": bridge.and_then(|e| e.ipv6).map(|a| a.prefix()).unwrap_or(0),
        "IPAddress": s(&|e| e.ipv4.map(|a| a.addr().to_string()).unwrap_or_default()),
        "IPPrefixLen": bridge.and_then(|e| e.ipv4).map(|a| a.prefix()).unwrap_or(0),
        "IPv6Gateway": s(&|e| e.gateway6.map(|g| g.to_string()).unwrap_or_default()),
        "MacAddress": s(&|e| e.mac.to_string()),
        "Networks": networks_json(info),
    })
}

/// Mount points as Docker lists them.
pub fn mount_points(c: &ContainerConfig) -> Vec<MountPoint> {
    c.mounts
        .iter()
        .map(|m| match m {
            MountSpec::Bind { source, target, read_only } => MountPoint {
                r#type: "bind".into(),
                source: source.display().to_string(),
                destination: target.clone(),
                mode: if *read_only { "ro".into() } else { String::new() },
                rw: !read_only,
                propagation: "rprivate".into(),
                ..Default::default()
            },
            MountSpec::Tmpfs { target, .. } => {
                MountPoint { r#type: "tmpfs".into(), destination: target.clone(), rw: true, ..Default::default() }
            }
            MountSpec::Volume { name, target, read_only, .. } => MountPoint {
                r#type: "volume".into(),
                name: name.clone(),
                destination: target.clone(),
                driver: "local".into(),
                mode: if *read_only { "ro".into() } else { "z".into() },
                rw: !read_only,
                ..Default::default()
            },
        })
        .collect()
}

/// One `docker ps` entry.
pub fn summary(info: &ContainerInfo) -> ContainerSummary {
    let net = network_name(&info.config.network);
    ContainerSummary {
        id: info.id.clone(),
        names: vec![format!("/{}", info.name)],
        image: info.config.image.clone(),
        image_id: info.image_id.clone(),
        command: info.args.join(" "),
        created: unix(info.created),
        ports: summary_ports(info),
        labels: info.config.labels.clone(),
        state: state_word(info.state).into(),
        status: status_text(info),
        host_config: json!({ "NetworkMode": net }),
        network_settings: json!({ "Networks": networks_json(info) }),
        mounts: mount_points(&info.config).into_iter().map(|m| serde_json::to_value(m).unwrap_or_default()).collect(),
    }
}

/// Docker's HostConfig rebuilt from the engine's config.
pub fn host_config(c: &ContainerConfig) -> HostConfig {
    let binds: Vec<String> = c
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountSpec::Bind { source, target, read_only } => {
                Some(format!("{}:{}{}", source.display(), target, if *read_only { ":ro" } else { "" }))
            }
            MountSpec::Volume { name, target, read_only, .. } => {
                Some(format!("{name}:{target}{}", if *read_only { ":ro" } else { "" }))
            }
            _ => None,
        })
        .collect();
    let tmpfs: HashMap<String, String> = c
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountSpec::Tmpfs { target, size } => {
                Some((target.clone(), size.map(|s| format!("size={s}")).unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    let (name, max) = match c.restart {
        RestartPolicy::No => ("no", 0),
        RestartPolicy::Always => ("always", 0),
        RestartPolicy::UnlessStopped => ("unless-stopped", 0),
        RestartPolicy::OnFailure { max_retries } => ("on-failure", max_retries as i64),
    };
    HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        mounts: None,
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        volumes_from: None,
        volume_driver: None,
        memory: Some(c.resources.memory.unwrap_or(0)),
        memory_swap: Some(c.resources.memory_swap.unwrap_or(0)),
        nano_cpus: Some(c.resources.cpus.map(|f| (f * 1e9) as i64).unwrap_or(0)),
        cpu_shares: Some(c.resources.cpu_shares.unwrap_or(0) as i64),
        cpuset_cpus: Some(c.resources.cpuset_cpus.clone().unwrap_or_default()),
        pids_limit: c.resources.pids_limit,
        network_mode: Some(network_name(&c.network)),
        auto_remove: Some(c.auto_remove),
        restart_policy: Some(RestartPolicyBody { name: Some(name.into()), maximum_retry_count: Some(max) }),
        runtime: Some(c.runtime.clone().unwrap_or_default()),
        readonly_rootfs: Some(c.read_only_rootfs),
        privileged: Some(c.security.privileged),
        cap_add: (!c.security.cap_add.is_empty()).then(|| c.security.cap_add.clone()),
        cap_drop: (!c.security.cap_drop.is_empty()).then(|| c.security.cap_drop.clone()),
        security_opt: Some(c.security.security_opt_strings()).filter(|v| !v.is_empty()),
        devices: Some(
            c.security
                .devices
                .iter()
                .map(|d| DeviceMappingBody {
                    path_on_host: d.host_path.display().to_string(),
                    path_in_container: d.container_path.clone(),
                    cgroup_permissions: d.permissions.clone(),
                })
                .collect(),
        ),
        device_cgroup_rules: None,
        group_add: (!c.security.group_add.is_empty()).then(|| c.security.group_add.clone()),
        sysctls: (!c.security.sysctls.is_empty())
            .then(|| c.security.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        init: c.init.then_some(true),
        masked_paths: Some(effective_paths(c.security.privileged, &c.security.masked_paths, DEFAULT_MASKED_PATHS)),
        readonly_paths: Some(effective_paths(
            c.security.privileged,
            &c.security.readonly_paths,
            DEFAULT_READONLY_PATHS,
        )),
        console_size: Some(vec![0, 0]),
        log_config: Some(json!({"Type": c.log.driver_name(), "Config": c.log.opts})),
        port_bindings: Some(requested_ports(&c.ports)),
        publish_all_ports: Some(false),
        dns: Some(c.dns.iter().map(|d| d.to_string()).collect()),
        dns_search: Some(c.dns_search.clone()),
        dns_options: Some(c.dns_options.clone()),
        extra_hosts: (!c.extra_hosts.is_empty())
            .then(|| c.extra_hosts.iter().map(|(n, ip)| format!("{n}:{ip}")).collect()),
    }
}

/// `HostConfig.PortBindings` as requested: `{"80/tcp":[{"HostIp":"","HostPort":"8080"}]}`.
fn requested_ports(ports: &[PortBinding]) -> Value {
    let mut m = serde_json::Map::new();
    for b in ports {
        let hp = match b.host_ports {
            HostPorts::Any => String::new(),
            HostPorts::Range(a, z) if a == z => a.to_string(),
            HostPorts::Range(a, z) => format!("{a}-{z}"),
        };
        let e = m.entry(format!("{}/{}", b.container_port, b.protocol)).or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            a.push(json!({"HostIp": b.host_ip.map(|i| i.to_string()).unwrap_or_default(), "HostPort": hp}));
        }
    }
    Value::Object(m)
}

fn effective_paths(privileged: bool, set: &Option<Vec<String>>, default: &[&str]) -> Vec<String> {
    if privileged {
        return Vec::new();
    }
    set.clone().unwrap_or_else(|| default.iter().map(|p| p.to_string()).collect())
}

/// `docker inspect` of a container. `image_env` is the image's environment,
/// merged in front of the container's own as Docker shows it.
pub fn inspect(info: &ContainerInfo, exec_ids: Vec<String>, image_env: Vec<String>) -> ContainerInspect {
    let c = &info.config;
    let running = matches!(info.state, ContainerState::Running | ContainerState::Paused);
    let state = ContainerStateBody {
        status: state_word(info.state).into(),
        running,
        paused: info.state == ContainerState::Paused,
        restarting: info.state == ContainerState::Restarting,
        oom_killed: info.oom_killed,
        dead: info.state == ContainerState::Dead,
        pid: if running { info.pid.unwrap_or(0) as i64 } else { 0 },
        exit_code: info.exit_code.unwrap_or(0) as i64,
        error: String::new(),
        started_at: rfc3339_or_zero(info.started_at),
        finished_at: rfc3339_or_zero(info.finished_at),
    };
    let mut env = image_env;
    for e in &c.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next().unwrap_or(x) != key);
        env.push(e.clone());
    }
    let short = info.id.chars().take(12).collect::<String>();
    let config = ContainerConfigBody {
        hostname: Some(c.hostname.clone().unwrap_or(short)),
        domainname: Some(String::new()),
        user: Some(c.user.clone().unwrap_or_default()),
        attach_stdin: Some(c.open_stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        exposed_ports: None,
        tty: Some(c.tty),
        open_stdin: Some(c.open_stdin),
        stdin_once: Some(c.open_stdin),
        env: Some(env),
        cmd: c.cmd.clone().map(StrSlice),
        image: Some(c.image.clone()),
        volumes: None,
        working_dir: Some(c.working_dir.clone().unwrap_or_default()),
        entrypoint: c.entrypoint.clone().map(StrSlice),
        labels: Some(c.labels.clone()),
        stop_signal: c.stop_signal.map(|s| s.to_string()),
        stop_timeout: c.stop_timeout.map(|d| d.as_secs() as i64),
        host_config: None,
        networking_config: None,
    };
    let rootfs = info.bundle.join("rootfs");
    ContainerInspect {
        id: info.id.clone(),
        created: engine_core::time::format_rfc3339(info.created),
        path: info.args.first().cloned().unwrap_or_default(),
        args: info.args.iter().skip(1).cloned().collect(),
        state,
        image: info.image_id.clone(),
        // The manager's files in the bundle, bind-mounted over the image's.
        resolv_conf_path: info.bundle.join("resolv.conf").display().to_string(),
        hostname_path: info.bundle.join("hostname").display().to_string(),
        hosts_path: info.bundle.join("hosts").display().to_string(),
        log_path: info.log_path.display().to_string(),
        name: format!("/{}", info.name),
        restart_count: info.restart_count as i64,
        driver: "overlay".into(),
        platform: "linux".into(),
        mount_label: String::new(),
        process_label: String::new(),
        app_armor_profile: String::new(),
        exec_ids: (!exec_ids.is_empty()).then_some(exec_ids),
        host_config: host_config(c),
        graph_driver: json!({"Data": {"MergedDir": rootfs.display().to_string()}, "Name": "overlay"}),
        mounts: mount_points(c),
        config,
        network_settings: network_settings(
            info,
            // The manager's `<root>/netns/<id>`, beside `<root>/containers/<id>`.
            &info
                .networks
                .values()
                .next()
                .and_then(|_| info.bundle.parent()?.parent())
                .map(|root| root.join("netns").join(&info.id).display().to_string())
                .unwrap_or_default(),
        ),
    }
}

/// `docker.io/library/bb:latest` as docker shows it: `bb:latest`.
pub fn familiar(r: &str) -> String {
    let r = r.strip_prefix("docker.io/").unwrap_or(r);
    let r = r.strip_prefix("library/").unwrap_or(r);
    r.to_string()
}

fn config_created(info: &ImageInfo) -> (i64, String) {
    match info.created {
        Some(t) => (unix(t), engine_core::time::format_rfc3339(t)),
        None => (0, ZERO_TIME.to_string()),
    }
}

/// One `docker images` entry.
pub fn image_summary(info: &ImageInfo) -> ImageSummary {
    let labels = info.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default();
    ImageSummary {
        containers: -1,
        created: config_created(info).0,
        id: info.id.clone(),
        labels: Some(labels),
        parent_id: String::new(),
        repo_digests: Some(info.repo_digests.iter().map(|d| familiar(d)).collect()),
        repo_tags: Some(info.repo_tags.iter().map(|t| familiar(t)).collect()),
        shared_size: -1,
        size: info.size as i64,
        virtual_size: info.size as i64,
    }
}

/// A run config object with the fields dockerd always shows filled in.
fn docker_run_config(mut config: Value) -> Value {
    if let Value::Object(m) = &mut config {
        for k in ["Hostname", "Domainname", "User", "WorkingDir"] {
            m.entry(k).or_insert(json!(""));
        }
        for k in ["AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce"] {
            m.entry(k).or_insert(json!(false));
        }
        for k in ["Env", "Cmd", "Entrypoint", "Volumes", "OnBuild", "Labels"] {
            m.entry(k).or_insert(Value::Null);
        }
        m.entry("Image").or_insert(json!(""));
    }
    config
}

/// `docker image inspect`. `raw` is the image config as stored
/// ([`engine_core::ImageStore::config_json`]): its `config` and
/// `container_config` carry what the OCI types drop (`Healthcheck`,
/// `OnBuild`, `Shell`, ...), so they are shown as stored.
pub fn image_inspect(info: &ImageInfo, raw: Option<&Value>) -> ImageInspect {
    let cfg = &info.config;
    let stored = |k: &str| raw.and_then(|r| r.get(k)).filter(|v| v.is_object()).cloned();
    let config = stored("config")
        .or_else(|| cfg.config().as_ref().map(|c| serde_json::to_value(c).unwrap_or_default()))
        .unwrap_or(json!({}));
    let container_config = stored("container_config").map(docker_run_config).unwrap_or(json!({}));
    let text = |k: &str| raw.and_then(|r| r.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
    ImageInspect {
        id: info.id.clone(),
        repo_tags: info.repo_tags.iter().map(|t| familiar(t)).collect(),
        repo_digests: info.repo_digests.iter().map(|d| familiar(d)).collect(),
        parent: String::new(),
        comment: text("comment"),
        created: config_created(info).1,
        container: text("container"),
        container_config,
        docker_version: text("docker_version"),
        author: cfg.author().clone().unwrap_or_default(),
        config: docker_run_config(config),
        architecture: cfg.architecture().to_string(),
        os: cfg.os().to_string(),
        size: info.size as i64,
        virtual_size: info.size as i64,
        graph_driver: json!({"Data": null, "Name": "overlay"}),
        root_fs: RootFsBody { r#type: "layers".into(), layers: cfg.rootfs().diff_ids().clone() },
        metadata: json!({"LastTagTime": ZERO_TIME}),
    }
}

/// `docker history`.
pub fn image_history(info: &ImageInfo) -> Vec<HistoryEntry> {
    let hist = info.config.history().clone().unwrap_or_default();
    let n = hist.len();
    let mut out: Vec<HistoryEntry> = hist
        .iter()
        .enumerate()
        .map(|(i, h)| HistoryEntry {
            id: if i + 1 == n { info.id.clone() } else { "<missing>".into() },
            created: h.created().as_deref().and_then(engine_core::time::parse_rfc3339).map(unix).unwrap_or(0),
            created_by: h.created_by().clone().unwrap_or_default(),
            tags: (i + 1 == n).then(|| info.repo_tags.iter().map(|t| familiar(t)).collect()),
            size: 0,
            comment: h.comment().clone().unwrap_or_default(),
        })
        .collect();
    if out.is_empty() {
        out.push(HistoryEntry {
            id: info.id.clone(),
            created: config_created(info).0,
            created_by: String::new(),
            tags: Some(info.repo_tags.iter().map(|t| familiar(t)).collect()),
            size: info.size as i64,
            comment: String::new(),
        });
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_docker() {
        assert_eq!(human_duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(4)), "4 seconds");
        assert_eq!(human_duration(Duration::from_secs(61)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(5 * 3600)), "5 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }

    #[test]
    fn create_body_translates() {
        let body = parse_create_body(
            br#"{"Image":"bb","Cmd":["sleep","1"],"Env":["A=1"],"Tty":true,"Labels":{"k":"v"},"StopSignal":"SIGINT",
                "StopTimeout":3,"HostConfig":{"Binds":["/tmp:/host:ro","vol:/data"],"Tmpfs":{"/run":"size=64m"},
                "Memory":67108864,"NanoCpus":1500000000,"PidsLimit":-1,"NetworkMode":"host","AutoRemove":true,
                "RestartPolicy":{"Name":"no"},"ReadonlyRootfs":true,"Mounts":[{"Type":"tmpfs","Target":"/t"}],
                "SomethingNew":{"x":1}}}"#,
        )
        .unwrap();
        let c = container_config(&body, Some("web".into())).unwrap();
        assert_eq!(c.cmd, Some(vec!["sleep".to_string(), "1".to_string()]));
        assert_eq!(c.network, NetworkMode::Host);
        assert_eq!(c.resources.memory, Some(64 << 20));
        assert_eq!(c.resources.cpus, Some(1.5));
        assert_eq!(c.resources.pids_limit, None);
        assert!(c.auto_remove && c.tty && c.read_only_rootfs);
        assert_eq!(c.stop_signal, Some(Signal::INT));
        assert_eq!(c.stop_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.mounts.len(), 4);
        assert!(c.mounts.contains(&MountSpec::Tmpfs { target: "/run".into(), size: Some(64 << 20) }));
        assert!(c.mounts.contains(&MountSpec::Bind { source: "/tmp".into(), target: "/host".into(), read_only: true }));
    }

    #[test]
    fn bad_create_bodies_name_the_field() {
        let e = parse_create_body(br#"{"Image":"bb","HostConfig":{"Memory":"lots"}}"#).unwrap_err();
        assert!(e.to_string().contains("HostConfig.Memory"), "{e}");
        let e = parse_create_body(br#"{"Image":"bb","Tty":"yes"}"#).unwrap_err();
        assert!(e.to_string().contains("Tty"), "{e}");
        assert!(parse_create_body(b"{not json").unwrap_err().is_invalid_input());
        let b = parse_create_body(br#"{"Image":"bb","HostConfig":{"NetworkMode":"mynet"}}"#).unwrap();
        // A user network: resolved (or a 404) by the daemon's driver.
        assert_eq!(container_config(&b, None).unwrap().network, NetworkMode::Network("mynet".into()));
        let b = parse_create_body(
            br#"{"Image":"bb","HostConfig":{"NetworkMode":"appnet","PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080-8081"}],"53/udp":null},
                "Dns":["10.0.0.53"],"ExtraHosts":["db:10.0.0.9"]},
                "NetworkingConfig":{"EndpointsConfig":{"appnet":{"Aliases":["web"],"IPAMConfig":{"IPv4Address":"172.20.0.9"}}}}}"#,
        )
        .unwrap();
        let c = container_config(&b, None).unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0], PortBinding::new(Protocol::Udp, 53));
        assert_eq!(c.ports[1].host_ports, HostPorts::Range(8080, 8081));
        assert_eq!(c.ports[1].host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(c.network_aliases, vec!["web".to_string()]);
        assert_eq!(c.ipv4, Some("172.20.0.9".parse().unwrap()));
        assert_eq!(c.extra_hosts, vec![("db".to_string(), "10.0.0.9".parse().unwrap())]);
        for bad in [
            r#"{"Image":"bb","HostConfig":{"PortBindings":{"0/tcp":null}}}"#,
            r#"{"Image":"bb","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"x"}]}}}"#,
            r#"{"Image":"bb","HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"nope"}]}}}"#,
            r#"{"Image":"bb","HostConfig":{"NetworkMode":"container:"}}"#,
            r#"{"Image":"bb","HostConfig":{"ExtraHosts":["db"]}}"#,
            r#"{"Image":"bb","NetworkingConfig":{"EndpointsConfig":{"bridge":{"Aliases":["a"]}}}}"#,
            r#"{"Image":"bb","HostConfig":{"NetworkMode":"n1"},"NetworkingConfig":{"EndpointsConfig":{"n2":{}}}}"#,
        ] {
            let b = parse_create_body(bad.as_bytes()).unwrap();
            assert!(container_config(&b, None).unwrap_err().is_invalid_input(), "{bad}");
        }
        let b = parse_create_body(br#"{"Image":"Bad Name"}"#).unwrap();
        assert!(container_config(&b, None).unwrap_err().is_invalid_input());
        let b = parse_create_body(br#"{"Image":"bb","HostConfig":{"Memory":-5}}"#).unwrap();
        assert!(container_config(&b, None).unwrap_err().is_invalid_input());
    }

    #[test]
    fn confinement_fields_translate_and_bad_ones_are_named() {
        let body = parse_create_body(
            br#"{"Image":"bb","HostConfig":{"Privileged":false,"CapAdd":["net_admin"],"CapDrop":["ALL"],
                "SecurityOpt":["no-new-privileges:true","seccomp=unconfined","apparmor=unconfined"],
                "Devices":[{"PathOnHost":"/dev/null","PathInContainer":"","CgroupPermissions":""}],
                "GroupAdd":["audio"],"Sysctls":{"kernel.shmmax":"1"},"Init":true,"MaskedPaths":[],"ReadonlyPaths":null}}"#,
        )
        .unwrap();
        let c = container_config(&body, None).unwrap();
        let s = &c.security;
        assert_eq!(
            (s.cap_add.as_slice(), s.cap_drop.as_slice()),
            (&["CAP_NET_ADMIN".to_string()][..], &["ALL".to_string()][..])
        );
        assert!(s.no_new_privileges && s.seccomp == engine_core::SeccompProfile::Unconfined && c.init);
        assert_eq!((s.devices[0].container_path.as_str(), s.devices[0].permissions.as_str()), ("/dev/null", "rwm"));
        assert_eq!((s.masked_paths.clone(), s.readonly_paths.clone()), (Some(vec![]), None));
        let hc = host_config(&c);
        assert_eq!(hc.security_opt, Some(vec!["seccomp=unconfined".to_string(), "no-new-privileges".to_string()]));
        for (bad, what) in [
            (r#"{"CapAdd":["FOO"]}"#, r#"invalid CapAdd: unknown capability: "CAP_FOO""#),
            (r#"{"CapDrop":["cap_bar"]}"#, r#"invalid CapDrop: unknown capability: "CAP_BAR""#),
            (r#"{"SecurityOpt":["label=disable"]}"#, "label=disable"),
            (r#"{"SecurityOpt":["apparmor=docker-default"]}"#, "apparmor=docker-default"),
            (r#"{"DeviceCgroupRules":["c 1:3 r"]}"#, "DeviceCgroupRules"),
            (r#"{"Devices":[{"PathOnHost":"/dev/null","PathInContainer":"/dev/x","CgroupPermissions":"rwx"}]}"#, "rwx"),
        ] {
            let b = parse_create_body(format!(r#"{{"Image":"bb","HostConfig":{bad}}}"#).as_bytes()).unwrap();
            let e = container_config(&b, None).unwrap_err();
            assert!(e.is_invalid_input() && e.to_string().contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn names_and_references() {
        assert_eq!(validate_name("/s1").unwrap(), "s1");
        assert!(validate_name("a").is_err());
        assert!(validate_name("bad name").is_err());
        assert!(validate_reference("127.0.0.1:5000/bb:latest").is_ok());
        assert!(validate_reference("bb@sha256:abcd").is_ok());
        assert!(validate_reference("UPPER").is_err());
        assert!(validate_reference("a b").is_err());
        assert_eq!(familiar("docker.io/library/bb:latest"), "bb:latest");
        assert_eq!(familiar("127.0.0.1:5000/bb:v1"), "127.0.0.1:5000/bb:v1");
    }
}

#[cfg(test)]
mod shape_tests {
    use super::*;
    use engine_core::ContainerInfo;

    fn info(state: ContainerState, exit: Option<i32>, ago: u64) -> ContainerInfo {
        let now = SystemTime::now();
        ContainerInfo {
            id: "a".repeat(64),
            name: "s1".into(),
            config: ContainerConfig { image: "bb".into(), ..Default::default() },
            image_id: "sha256:abc".into(),
            state,
            pid: Some(42),
            exit_code: exit,
            oom_killed: false,
            created: now - Duration::from_secs(ago + 10),
            started_at: Some(now - Duration::from_secs(ago + 2)),
            finished_at: exit.map(|_| now - Duration::from_secs(ago)),
            restart_count: 0,
            args: vec!["sleep".into(), "100".into()],
            bundle: "/b".into(),
            log_path: "/b/log".into(),
            runtime: "engine-runc".into(),
            networks: Default::default(),
        }
    }

    #[test]
    fn ps_entry_is_docker_shaped() {
        let s = summary(&info(ContainerState::Exited, Some(137), 4));
        assert_eq!(s.status, "Exited (137) 4 seconds ago");
        assert_eq!(s.names, ["/s1"]);
        assert_eq!(s.command, "sleep 100");
        let v = serde_json::to_value(&s).unwrap();
        for k in [
            "Id",
            "Names",
            "Image",
            "ImageID",
            "Command",
            "Created",
            "Ports",
            "Labels",
            "State",
            "Status",
            "HostConfig",
            "NetworkSettings",
            "Mounts",
        ] {
            assert!(v.get(k).is_some(), "{k} missing from {v}");
        }
        assert_eq!(v["HostConfig"]["NetworkMode"], "none");
        assert_eq!(summary(&info(ContainerState::Running, None, 0)).status, "Up 2 seconds");
        assert_eq!(summary(&info(ContainerState::Created, None, 0)).status, "Created");
    }

    #[test]
    fn inspect_is_docker_shaped() {
        let running = inspect(&info(ContainerState::Running, None, 0), vec![], vec!["PATH=/bin".into()]);
        assert_eq!(running.state.finished_at, ZERO_TIME);
        assert_eq!(running.state.pid, 42);
        assert_eq!(running.name, "/s1");
        assert_eq!((running.path.as_str(), running.args.as_slice()), ("sleep", &["100".to_string()][..]));
        let v = serde_json::to_value(&running).unwrap();
        for k in [
            "Id",
            "Created",
            "Path",
            "Args",
            "State",
            "Image",
            "ResolvConfPath",
            "HostnamePath",
            "HostsPath",
            "LogPath",
            "Name",
            "RestartCount",
            "Driver",
            "Platform",
            "MountLabel",
            "ProcessLabel",
            "AppArmorProfile",
            "ExecIDs",
            "HostConfig",
            "GraphDriver",
            "Mounts",
            "Config",
            "NetworkSettings",
        ] {
            assert!(v.get(k).is_some(), "{k} missing");
        }
        assert_eq!(v["State"]["OOMKilled"], false);
        assert_eq!(v["Config"]["Tty"], false);
        assert_eq!(v["Config"]["Env"][0], "PATH=/bin");
        assert_eq!(v["Config"]["Hostname"], "aaaaaaaaaaaa");
        let exited = inspect(&info(ContainerState::Exited, Some(3), 1), vec!["e1".into()], vec![]);
        assert_eq!((exited.state.running, exited.state.pid, exited.state.exit_code), (false, 0, 3));
        assert_ne!(exited.state.finished_at, ZERO_TIME);
        assert_eq!(exited.exec_ids, Some(vec!["e1".to_string()]));
    }
}
