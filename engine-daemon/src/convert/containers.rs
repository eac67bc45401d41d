//! The engine's containers as dockerd shows them: durations and states,
//! `docker ps` entries, `docker inspect`, network settings, published
//! ports, mount points and the rebuilt HostConfig.

use super::*;

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
        _ => "unknown",
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
        other => state_word(other).into(),
    }
}

pub(super) fn unix(t: SystemTime) -> i64 {
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
        other => format!("{other:?}"),
    }
}

/// The `EndpointSettings` of a network mode without an endpoint (`none`, `host`).
fn endpoint_settings() -> Value {
    serde_json::to_value(EmptyEndpoint).unwrap_or_default()
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
            other => MountPoint { destination: other.target().to_string(), ..Default::default() },
        })
        .collect()
}

/// [`summary`] as JSON, written from the container's info without building
/// the summary first: what `GET /containers/json` sends, the same document
/// (checked by a test). With thousands of containers, `docker ps` spent half
/// of the engine's time on building and dropping the summaries' values.
pub struct SummaryJson<'a>(pub &'a ContainerInfo);

impl serde::Serialize for SummaryJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let info = self.0;
        let net = network_name(&info.config.network);
        let mut m = s.serialize_struct("ContainerSummary", 13)?;
        m.serialize_field("Id", &info.id)?;
        m.serialize_field("Names", &[format!("/{}", info.name)])?;
        m.serialize_field("Image", &info.config.image)?;
        m.serialize_field("ImageID", &info.image_id)?;
        m.serialize_field("Command", &info.args.join(" "))?;
        m.serialize_field("Created", &unix(info.created))?;
        m.serialize_field("Ports", &summary_ports(info))?;
        m.serialize_field("Labels", &info.config.labels)?;
        m.serialize_field("State", state_word(info.state))?;
        m.serialize_field("Status", &status_text(info))?;
        m.serialize_field("HostConfig", &HostConfigJson { network_mode: &net })?;
        m.serialize_field("NetworkSettings", &NetworkSettingsJson { info, net: &net })?;
        m.serialize_field("Mounts", &mount_points(&info.config))?;
        m.end()
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfigJson<'a> {
    network_mode: &'a str,
}

/// `{"Networks": ...}` of a summary: for a container without endpoints (the
/// common case: `none`, `host`), its mode's empty entry, written directly.
struct NetworkSettingsJson<'a> {
    info: &'a ContainerInfo,
    net: &'a str,
}

impl serde::Serialize for NetworkSettingsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        if self.info.networks.is_empty() {
            let mut one = std::collections::BTreeMap::new();
            one.insert(self.net, EmptyEndpoint);
            m.serialize_entry("Networks", &one)?;
        } else {
            m.serialize_entry("Networks", &networks_json(self.info))?;
        }
        m.end()
    }
}

/// The `EndpointSettings` of a network mode without an endpoint, as dockerd
/// writes them (every field empty); [`endpoint_settings`] is its value.
struct EmptyEndpoint;

impl serde::Serialize for EmptyEndpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("EndpointSettings", 13)?;
        for k in ["IPAMConfig", "Links", "Aliases"] {
            m.serialize_field(k, &())?;
        }
        for k in ["NetworkID", "EndpointID", "Gateway", "IPAddress"] {
            m.serialize_field(k, "")?;
        }
        m.serialize_field("IPPrefixLen", &0)?;
        m.serialize_field("IPv6Gateway", "")?;
        m.serialize_field("GlobalIPv6Address", "")?;
        m.serialize_field("GlobalIPv6PrefixLen", &0)?;
        m.serialize_field("MacAddress", "")?;
        m.serialize_field("DriverOpts", &())?;
        m.end()
    }
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
        oom_score_adj: Some(c.oom_score_adj.unwrap_or(0) as i64),
        cgroup_parent: Some(c.cgroup_parent.clone().unwrap_or_default()),
        cgroupns_mode: Some(
            match c.cgroupns.resolve() {
                CgroupnsMode::Private => "private",
                _ => "host",
            }
            .into(),
        ),
        other: serde_json::Map::new(),
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
        other: Default::default(),
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

#[cfg(test)]
mod shape_tests {
    use super::*;
    use engine_core::ContainerInfo;

    fn info(state: ContainerState, exit: Option<i32>, ago: u64) -> ContainerInfo {
        let now = SystemTime::now();
        ContainerInfo::default()
            .id("a".repeat(64))
            .name("s1".into())
            .config(ContainerConfig::default().image("bb".into()))
            .image_id("sha256:abc".into())
            .state(state)
            .pid(Some(42))
            .exit_code(exit)
            .oom_killed(false)
            .created(now - Duration::from_secs(ago + 10))
            .started_at(Some(now - Duration::from_secs(ago + 2)))
            .finished_at(exit.map(|_| now - Duration::from_secs(ago)))
            .restart_count(0)
            .args(vec!["sleep".into(), "100".into()])
            .bundle("/b".into())
            .log_path("/b/log".into())
            .runtime("engine-runc".into())
            .networks(Default::default())
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
    fn ps_entry_written_directly_is_the_summary() {
        use engine_core::network::{IpPrefix, MacAddr};
        let plain = info(ContainerState::Running, None, 0);
        let mut labelled = info(ContainerState::Exited, Some(1), 3);
        labelled.config.labels.insert("a".into(), "1".into());
        labelled.config.labels.insert("b".into(), "2".into());
        labelled.config.mounts.push(MountSpec::Bind { source: "/src".into(), target: "/dst".into(), read_only: true });
        labelled.config.network = NetworkMode::Host;
        let mut networked = info(ContainerState::Running, None, 1);
        networked.config.network = NetworkMode::Network("front".into());
        let mut ep = EndpointInfo::new("n1", "front", "a", "e1", "eth0", MacAddr::new([2, 66, 172, 17, 0, 2]));
        ep.ipv4 = Some("172.17.0.2/16".parse::<IpPrefix>().unwrap());
        ep.gateway4 = Some("172.17.0.1".parse().unwrap());
        ep.aliases = vec!["web".into()];
        ep.ports = vec![PublishedPort {
            protocol: Protocol::Tcp,
            container_port: 80,
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 32768,
        }];
        networked.networks.insert("front".into(), ep);
        let empty = &serde_json::to_value(summary(&plain)).unwrap()["NetworkSettings"]["Networks"]["none"];
        assert_eq!(
            *empty,
            serde_json::json!({"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"","EndpointID":"",
                "Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"",
                "GlobalIPv6PrefixLen":0,"MacAddress":"","DriverOpts":null})
        );
        for i in [plain, labelled, networked] {
            let direct: Value = serde_json::from_slice(&serde_json::to_vec(&SummaryJson(&i)).unwrap()).unwrap();
            assert_eq!(direct, serde_json::to_value(summary(&i)).unwrap(), "{:?}", i.config.network);
        }
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
