//! Docker's create body (and its HostConfig) into the engine's
//! [`ContainerConfig`]: sizes, logs, network mode and endpoints, published
//! ports, confinement, binds and mounts. Whatever cannot be honoured is an
//! error naming the field.

use super::*;

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
    refuse_unsupported(&hc.other, "HostConfig.")?;
    refuse_unsupported(&body.other, "")?;
    if let Some(d) = body.domainname.as_deref().filter(|d| !d.is_empty()) {
        return Err(Error::invalid("field Domainname", format!("{d:?} is not supported by this engine")));
    }
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
    let resources = Resources::default()
        .memory(memory)
        .memory_swap(hc.memory_swap.filter(|v| *v != 0))
        .cpus(nano.map(|n| n as f64 / 1e9))
        .cpu_shares(shares.map(|s| s as u64))
        .cpuset_cpus(hc.cpuset_cpus.clone().filter(|s| !s.is_empty()))
        .pids_limit(hc.pids_limit.filter(|p| *p > 0));
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
    Ok(ContainerConfig::default()
        .image(image)
        .name(name)
        .cmd(body.cmd.as_ref().map(|c| c.0.clone()).filter(|c| !c.is_empty()))
        .entrypoint(entrypoint)
        .env(body.env.clone().unwrap_or_default())
        .user(body.user.clone().filter(|u| !u.is_empty()))
        .working_dir(body.working_dir.clone().filter(|w| !w.is_empty()))
        .hostname(body.hostname.clone().filter(|h| !h.is_empty()))
        .tty(body.tty.unwrap_or(false))
        .open_stdin(body.open_stdin.unwrap_or(false))
        .labels(body.labels.clone().unwrap_or_default())
        .mounts(mounts)
        .resources(resources)
        .network(network)
        .restart(restart)
        .auto_remove(auto_remove)
        .runtime(hc.runtime.clone().filter(|r| !r.is_empty()))
        .stop_signal(stop_signal)
        .stop_timeout(body.stop_timeout.filter(|t| *t >= 0).map(|t| Duration::from_secs(t as u64)))
        .read_only_rootfs(hc.readonly_rootfs.unwrap_or(false))
        .owner_pid(None)
        .log(log_spec(hc.log_config.as_ref())?)
        .security(security)
        .init(init)
        .oom_score_adj(oom_score_adj(hc.oom_score_adj)?)
        .ports(ports)
        .network_aliases(endpoint.0)
        .ipv4(endpoint.1)
        .dns(dns)
        .dns_search(hc.dns_search.clone().unwrap_or_default())
        .dns_options(hc.dns_options.clone().unwrap_or_default())
        .extra_hosts(extra_hosts)
        .cgroup_parent(hc.cgroup_parent.clone().filter(|p| !p.is_empty()))
        .cgroupns(CgroupnsMode::parse(hc.cgroupns_mode.as_deref().unwrap_or("")).map_err(|_| {
            Error::invalid(
                "field HostConfig.CgroupnsMode",
                format!("{:?}: expected \"private\" or \"host\"", hc.cgroupns_mode.as_deref().unwrap_or("")),
            )
        })?))
}

/// `HostConfig.OomScoreAdj`: 0 (what the docker CLI sends by default) means
/// "inherit"; anything else must lie in -1000..=1000.
fn oom_score_adj(v: Option<i64>) -> Result<Option<i32>> {
    match v {
        None | Some(0) => Ok(None),
        Some(v) if (-1000..=1000).contains(&v) => Ok(Some(v as i32)),
        Some(v) => Err(Error::invalid("field HostConfig.OomScoreAdj", format!("{v} is outside -1000..1000"))),
    }
}

/// A `HostConfig` key engined does not read must hold its zero value: the
/// docker CLI sends every key (zeros, nulls and `MemorySwappiness: -1`), but
/// a value someone chose (`--shm-size`, `--ulimit`, `--pid host`...) is a
/// setting this engine cannot honour, so the create is refused naming it.
/// Refuses any key of `other` (the create body's keys this engine does not
/// implement, under `prefix`) that holds a value other than its zero value.
/// `ArgsEscaped` (Windows only) and `OnBuild` (used only when an image is made)
/// change nothing for a container and are accepted.
fn refuse_unsupported(other: &serde_json::Map<String, Value>, prefix: &str) -> Result<()> {
    fn zero(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.iter().all(zero),
            Value::Object(o) => o.values().all(zero),
        }
    }
    for (key, v) in other {
        let harmless = match prefix {
            "" => matches!(key.as_str(), "ArgsEscaped" | "OnBuild"),
            _ => key == "MemorySwappiness" && v.as_i64() == Some(-1),
        };
        if zero(v) || harmless {
            continue;
        }
        return Err(Error::invalid(
            format!("field {prefix}{key}"),
            format!("{v} is not supported by this engine (only its zero value is accepted)"),
        ));
    }
    Ok(())
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
                "ShmSize":0,"Ulimits":null,"MemorySwappiness":-1}}"#,
        )
        .unwrap();
        let c = container_config(&body, Some("web".into())).unwrap();
        assert_eq!(c.cmd, Some(vec!["sleep".to_string(), "1".to_string()]));
        // A key engined does not implement is refused unless it holds its zero value.
        let other = parse_create_body(br#"{"Image":"bb","HostConfig":{"SomethingNew":{"x":1}}}"#).unwrap();
        let e = container_config(&other, None).unwrap_err();
        assert!(e.to_string().contains("HostConfig.SomethingNew"), "{e}");
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
