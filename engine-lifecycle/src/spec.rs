//! Validation of a container config, and the manager's part of deriving the
//! OCI runtime spec (the image's part is `engine_image::spec`).

use engine_core::security::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
use engine_core::{ContainerConfig, Error, MountSpec, NetworkMode, Result, SeccompProfile};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Check everything that can be checked without touching the system, so bad
/// input fails before anything is created.
pub(crate) fn validate(config: &ContainerConfig) -> Result<()> {
    if config.image.trim().is_empty() {
        return Err(Error::invalid("image", "must not be empty"));
    }
    if let Some(p) = &config.cgroup_parent {
        crate::config::check_cgroup_parent(p)?;
    }
    let r = &config.resources;
    if let Some(m) = r.memory {
        if m < 0 {
            return Err(Error::invalid("memory limit", format!("{m} is negative")));
        }
        if m > 0 && m < 6 * 1024 * 1024 {
            return Err(Error::invalid("memory limit", format!("{m} bytes is below the minimum of 6 MiB")));
        }
    }
    if let Some(s) = r.memory_swap {
        if s < -1 {
            return Err(Error::invalid("memory+swap limit", format!("{s} is below -1")));
        }
        if let (Some(m), true) = (r.memory, s > 0) {
            if s < m {
                return Err(Error::invalid("memory+swap limit", format!("{s} is below the memory limit {m}")));
            }
        }
    }
    if let Some(c) = r.cpus {
        if !(c.is_finite() && c >= 0.0) {
            return Err(Error::invalid("cpus", format!("{c} is not a non-negative number")));
        }
    }
    if let Some(s) = r.cpu_shares {
        if s != 0 && !(2..=262_144).contains(&s) {
            return Err(Error::invalid("cpu shares", format!("{s} is outside 2-262144")));
        }
    }
    if let Some(p) = r.pids_limit {
        if p < -1 {
            return Err(Error::invalid("pids limit", format!("{p} is below -1")));
        }
    }
    if let Some(c) = &r.cpuset_cpus {
        let ok = !c.is_empty()
            && c.split(',').all(|part| {
                let mut it = part.splitn(2, '-');
                it.all(|n| !n.is_empty() && n.chars().all(|ch| ch.is_ascii_digit()))
            });
        if !ok {
            return Err(Error::invalid("cpuset", format!("{c:?} is not a list like \"0-2,4\"")));
        }
    }
    for e in &config.env {
        if e.is_empty() || e.starts_with('=') {
            return Err(Error::invalid("environment variable", format!("{e:?} has no name")));
        }
    }
    if let Some(wd) = &config.working_dir {
        if !wd.starts_with('/') {
            return Err(Error::invalid("working directory", format!("{wd:?} is not an absolute path")));
        }
    }
    if let Some(h) = &config.hostname {
        if h.is_empty() || h.len() > 64 || h.contains('/') {
            return Err(Error::invalid("hostname", format!("{h:?} is not a valid hostname")));
        }
    }
    for k in config.labels.keys() {
        if k.is_empty() {
            return Err(Error::invalid("label", "an empty key"));
        }
    }
    let mut targets = std::collections::HashSet::new();
    for m in &config.mounts {
        let target = match m {
            MountSpec::Bind { source, target, .. } => {
                if !source.is_absolute() {
                    return Err(Error::invalid(
                        "bind mount source",
                        format!("{} is not an absolute path", source.display()),
                    ));
                }
                if let Err(e) = std::fs::metadata(source) {
                    return Err(Error::invalid("bind mount source", format!("{}: {e}", source.display())));
                }
                target
            }
            MountSpec::Tmpfs { target, .. } => target,
            MountSpec::Volume { name, target, .. } => {
                if !name.is_empty() {
                    engine_core::volume::validate_volume_name(name)?;
                }
                target
            }
            other => return Err(Error::Unsupported(format!("mount {other:?}"))),
        };
        if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
            return Err(Error::invalid("mount target", format!("{target:?} is not an absolute path without '..'")));
        }
        if target == "/" {
            return Err(Error::invalid("mount target", "\"/\" cannot be a mount target"));
        }
        if !targets.insert(target.trim_end_matches('/').to_string()) {
            return Err(Error::invalid("mount target", format!("{target} is mounted twice")));
        }
    }
    if !config.ports.is_empty() && !matches!(config.network, NetworkMode::Bridge | NetworkMode::Network(_)) {
        return Err(Error::invalid(
            "published ports",
            format!("need the bridge or a user-defined network, not {:?}", config.network),
        ));
    }
    if let NetworkMode::Path(p) = &config.network {
        if std::fs::metadata(p).is_err() {
            return Err(Error::invalid("network namespace path", format!("{} does not exist", p.display())));
        }
    }
    validate_security(config)
}

/// The confinement options: names, devices, sysctls, and the seccomp profile
/// evaluated against the capabilities the container would get.
fn validate_security(config: &ContainerConfig) -> Result<()> {
    let sec = &config.security;
    sec.validate(config.network != NetworkMode::Host)?;
    let caps = sec.capabilities(&held_capabilities()?)?;
    if let SeccompProfile::Custom(json) = &sec.seccomp {
        crate::seccomp::evaluate(json, &caps, "seccomp profile")?;
    }
    for d in &sec.devices {
        host_devices(&d.host_path, &d.container_path)?;
    }
    Ok(())
}

/// The capabilities the engine itself holds (effective and in its bounding
/// set): what `--privileged` and `--cap-add ALL` give. dockerd asks for every
/// capability the kernel knows and fails where one is withheld; the engine
/// gives what it has.
pub(crate) fn held_capabilities() -> Result<Vec<String>> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::io("reading /proc/self/status for the engine's capabilities", e))?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    match (field("CapEff:"), field("CapBnd:")) {
        (Some(eff), Some(bnd)) => Ok(engine_core::security::capabilities_from_mask(eff & bnd)),
        _ => Err(Error::Other("/proc/self/status has no CapEff/CapBnd".into())),
    }
}

fn device_error(host: &Path, e: std::io::Error) -> Error {
    Error::invalid(
        format!("device {}", host.display()),
        format!("error gathering device information while adding custom device {:?}: {e}", host.display().to_string()),
    )
}

/// One device node for the spec, from the host's node at `host`.
fn device_entry(host: &Path, container: &str) -> Result<Option<Value>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(host).map_err(|e| device_error(host, e))?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    Ok(Some(json!({
        "path": container, "type": typ,
        "major": libc::major(rdev), "minor": libc::minor(rdev),
        "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
    })))
}

/// The device nodes under `host` (a node, or a directory walked recursively,
/// as docker does), placed at `container`.
fn host_devices(host: &Path, container: &str) -> Result<Vec<Value>> {
    let md = std::fs::metadata(host).map_err(|e| device_error(host, e))?;
    if !md.is_dir() {
        return match device_entry(host, container)? {
            Some(d) => Ok(vec![d]),
            None => Err(Error::invalid(format!("device {}", host.display()), "not a device node")),
        };
    }
    let mut out = Vec::new();
    let mut stack = vec![(host.to_path_buf(), container.trim_end_matches('/').to_string())];
    while let Some((dir, cdir)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        for ent in rd.flatten() {
            let ft = match ent.file_type() {
                Ok(t) => t,
                Err(_) => continue,
            };
            let name = ent.file_name().to_string_lossy().to_string();
            let cpath = format!("{cdir}/{name}");
            if ft.is_dir() {
                stack.push((ent.path(), cpath));
            } else if !ft.is_symlink() {
                out.extend(device_entry(&ent.path(), &cpath)?);
            }
        }
    }
    Ok(out)
}

/// Every device node of the host's `/dev` (`--privileged`), as docker lists
/// them: not the per-instance ones (`pts`, `shm`, `mqueue`, `fd`), not
/// `console` and `ptmx` (the runtime provides the container's own).
fn all_host_devices() -> Vec<Value> {
    const SKIP_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for ent in rd.flatten() {
            let Ok(ft) = ent.file_type() else { continue };
            let name = ent.file_name().to_string_lossy().to_string();
            if ft.is_dir() {
                if !(dir == Path::new("/dev") && SKIP_DIRS.contains(&name.as_str())) {
                    stack.push(ent.path());
                }
            } else if !ft.is_symlink() && !(dir == Path::new("/dev") && (name == "console" || name == "ptmx")) {
                let p = ent.path();
                if let Ok(Some(d)) = device_entry(&p, &p.to_string_lossy()) {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// Docker's default mounts (`/proc`, `/dev`, `/dev/pts`, `/sys`,
/// `/sys/fs/cgroup`, `/dev/mqueue`, `/dev/shm` of 64 MiB); `/sys` and the
/// cgroup mount are writable for a privileged container.
fn default_mounts(privileged: bool) -> Vec<Value> {
    let ro = |mut o: Vec<&'static str>| {
        if !privileged {
            o.insert(0, "ro");
        }
        o
    };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ro(vec!["nosuid", "noexec", "nodev"])}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ro(vec!["nosuid", "noexec", "nodev"])}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}),
    ]
}

/// The cgroup device rules docker's containers get: deny all, then mknod of
/// any node, and use of the default devices, the terminals and tun.
fn default_device_rules() -> Vec<Value> {
    let mut v = vec![
        json!({"allow": false, "access": "rwm"}),
        json!({"allow": true, "type": "c", "access": "m"}),
        json!({"allow": true, "type": "b", "access": "m"}),
    ];
    for (ma, mi) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200)] {
        v.push(json!({"allow": true, "type": "c", "major": ma, "minor": mi, "access": "rwm"}));
    }
    v.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
    v
}

/// The resolved `--group-add` gids, recorded in the bundle so an exec with
/// another user gets them too.
pub(crate) const GROUP_ADD_ANNOTATION: &str = "org.engine.group-add";

/// Inputs of [`finish`].
pub(crate) struct SpecContext<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub config: &'a ContainerConfig,
    pub rootfs: &'a Path,
    pub volumes: &'a Path,
    /// Host paths of the volumes the volume driver mounted (others are
    /// directories under `volumes`).
    pub volume_paths: &'a std::collections::BTreeMap<String, std::path::PathBuf>,
    pub cgroup_parent: &'a str,
    /// The installed init (`--init`), bind-mounted into the container.
    pub init_path: Option<&'a Path>,
    /// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`: (destination,
    /// the bundle's file), bind-mounted read-write as docker does.
    pub etc_files: &'a [(String, PathBuf)],
}

/// Apply the container config's own settings to a spec that already carries
/// the image config: hostname, terminal, mounts, resources, network, read-only
/// root, cgroups path, and the confinement: capabilities, seccomp,
/// `no_new_privs`, masked and read-only paths, devices, groups, sysctls, init.
pub(crate) fn finish(spec: oci_spec::runtime::Spec, cx: &SpecContext<'_>) -> Result<oci_spec::runtime::Spec> {
    let cfg = cx.config;
    let mut v = serde_json::to_value(&spec).map_err(|e| Error::Other(format!("runtime spec to JSON: {e}")))?;
    let o = v.as_object_mut().ok_or_else(|| Error::Other("runtime spec is not an object".into()))?;

    let hostname = cfg.hostname.clone().unwrap_or_else(|| cx.id.chars().take(12).collect());
    o.insert("hostname".into(), json!(hostname));
    o.insert("root".into(), json!({"path": cx.rootfs, "readonly": cfg.read_only_rootfs}));

    let process = o.entry("process").or_insert_with(|| json!({}));
    process["terminal"] = json!(cfg.tty);
    let sec = &cfg.security;
    let caps = sec.capabilities(&held_capabilities()?)?;
    process["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    process["noNewPrivileges"] = json!(sec.no_new_privileges);
    if let Some(adj) = cfg.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::invalid("oom score adjustment", format!("{adj} is not in -1000..=1000")));
        }
        process["oomScoreAdj"] = json!(adj);
    }
    let mut group_add = Vec::new();
    if !sec.group_add.is_empty() {
        let mut gids: Vec<u32> = process["user"]["additionalGids"]
            .as_array()
            .map(|a| a.iter().filter_map(|g| g.as_u64().map(|g| g as u32)).collect())
            .unwrap_or_default();
        for g in &sec.group_add {
            let gid = engine_image::spec::resolve_group(cx.rootfs, g)?;
            group_add.push(gid.to_string());
            if !gids.contains(&gid) {
                gids.push(gid);
            }
        }
        process["user"]["additionalGids"] = json!(gids);
    }
    if cfg.init {
        if let Some(args) = process["args"].as_array_mut() {
            args.splice(0..0, [json!(engine_init::CONTAINER_PATH), json!("--")]);
        }
    }
    // The manager's own open-files limit, as Docker passes dockerd's on.
    let (soft, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    process["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft.max(hard.min(1_048_576))}]);
    if cfg.tty
        && !process["env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x.as_str().is_some_and(|s| s.starts_with("TERM="))))
    {
        if let Some(env) = process["env"].as_array_mut() {
            env.push(json!("TERM=xterm"));
        }
    }

    // Docker's default mounts, then the init, then the user's mounts.
    let mounts = o.entry("mounts").or_insert_with(|| json!([]));
    *mounts = json!(default_mounts(sec.privileged));
    let list = mounts.as_array_mut().ok_or_else(|| Error::Other("spec mounts is not a list".into()))?;
    if let (true, Some(init)) = (cfg.init, cx.init_path) {
        list.push(json!({"destination": engine_init::CONTAINER_PATH, "type": "bind", "source": init,
                         "options": ["rbind", "rprivate", "ro", "nosuid"]}));
    }
    for (dest, src) in cx.etc_files {
        list.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    for m in &cfg.mounts {
        let entry = match m {
            MountSpec::Bind { source, target, read_only } => {
                let mut opts = vec!["rbind", "rprivate"];
                if *read_only {
                    opts.push("ro");
                }
                json!({"destination": target, "type": "bind", "source": source, "options": opts})
            }
            MountSpec::Tmpfs { target, size } => {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string(), "mode=1777".to_string()];
                if let Some(s) = size {
                    opts.push(format!("size={s}"));
                }
                json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts})
            }
            MountSpec::Volume { name, target, read_only, .. } => {
                let mut opts = vec!["rbind", "rprivate"];
                if *read_only {
                    opts.push("ro");
                }
                let source = cx.volume_paths.get(name).cloned().unwrap_or_else(|| cx.volumes.join(name));
                json!({"destination": target, "type": "bind", "source": source, "options": opts})
            }
            other => return Err(Error::Unsupported(format!("mount {other:?}"))),
        };
        // A user mount replaces a default one at the same place (e.g. /dev/shm).
        let dest = entry["destination"].clone();
        list.retain(|x| x["destination"] != dest);
        list.push(entry);
    }
    // /etc/hostname, /etc/hosts, /etc/resolv.conf from the host, as Docker
    // gives them, are left to the daemon's networking; the rootfs' own are used.

    let linux = o.entry("linux").or_insert_with(|| json!({}));
    linux["cgroupsPath"] = json!(format!("{}/{}", cx.cgroup_parent.trim_end_matches('/'), cx.id));
    let r = &cfg.resources;
    let (devices, device_rules) = if sec.privileged {
        (all_host_devices(), vec![json!({"allow": true, "access": "rwm"})])
    } else {
        let mut devs = Vec::new();
        let mut rules = default_device_rules();
        for d in &sec.devices {
            for dev in host_devices(&d.host_path, &d.container_path)? {
                rules.push(json!({"allow": true, "type": dev["type"], "major": dev["major"], "minor": dev["minor"],
                                  "access": d.permissions}));
                devs.push(dev);
            }
        }
        (devs, rules)
    };
    let mut res = resources_json(r);
    res["devices"] = json!(device_rules);
    linux["resources"] = res;
    linux["devices"] = json!(devices);
    let (masked, readonly): (Vec<String>, Vec<String>) = if sec.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            sec.masked_paths.clone().unwrap_or_else(|| DEFAULT_MASKED_PATHS.iter().map(|p| p.to_string()).collect()),
            sec.readonly_paths
                .clone()
                .unwrap_or_else(|| DEFAULT_READONLY_PATHS.iter().map(|p| p.to_string()).collect()),
        )
    };
    linux["maskedPaths"] = json!(masked);
    linux["readonlyPaths"] = json!(readonly);
    // A privileged container runs without seccomp, whatever the profile (as under dockerd).
    let seccomp = match (&sec.seccomp, sec.privileged) {
        (_, true) | (SeccompProfile::Unconfined, _) => None,
        (SeccompProfile::Custom(j), false) => Some(crate::seccomp::evaluate(j, &caps, "seccomp profile")?),
        (SeccompProfile::Default, false) => {
            Some(crate::seccomp::evaluate(crate::seccomp::DEFAULT_PROFILE, &caps, "default seccomp profile")?)
        }
        (other, false) => {
            return Err(Error::invalid("seccomp profile", format!("{other:?} is not supported by this engine")))
        }
    };
    match seccomp {
        Some(s) => linux["seccomp"] = s,
        None => {
            if let Some(l) = linux.as_object_mut() {
                l.remove("seccomp");
            }
        }
    }
    if !sec.sysctls.is_empty() {
        linux["sysctl"] = json!(sec.sysctls);
    }
    let ns = linux.get_mut("namespaces").and_then(Value::as_array_mut);
    if let Some(ns) = ns {
        ns.retain(|n| n["type"] != "network" && n["type"] != "cgroup");
        if cfg.cgroupns.resolve() == engine_core::CgroupnsMode::Private {
            ns.push(json!({"type": "cgroup"}));
        }
        match &cfg.network {
            NetworkMode::None => ns.push(json!({"type": "network"})),
            NetworkMode::Host => {}
            NetworkMode::Path(p) => ns.push(json!({"type": "network", "path": p})),
            // The manager hands these over as the path of the namespace it made.
            NetworkMode::Bridge | NetworkMode::Network(_) | NetworkMode::Container(_) => {
                ns.push(json!({"type": "network"}))
            }
            other => return Err(Error::Unsupported(format!("network mode {other:?}"))),
        }
    }
    let ann = o.entry("annotations").or_insert_with(|| json!({}));
    if let Some(a) = ann.as_object_mut() {
        a.insert("org.engine.container.name".into(), json!(cx.name));
        a.insert("org.engine.image".into(), json!(cfg.image));
        if !group_add.is_empty() {
            a.insert(GROUP_ADD_ANNOTATION.into(), json!(group_add.join(",")));
        }
    }
    serde_json::from_value(v).map_err(|e| Error::Other(format!("derived runtime spec is invalid: {e}")))
}

/// The OCI `linux.resources` (memory, cpu, pids) for `r`; devices are the
/// caller's.
pub(crate) fn resources_json(r: &engine_core::Resources) -> Value {
    let mut res = json!({});
    if r.memory.is_some_and(|m| m > 0) || r.memory_swap.is_some() {
        let mut mem = json!({});
        if let Some(m) = r.memory.filter(|m| *m > 0) {
            mem["limit"] = json!(m);
        }
        if let Some(s) = r.memory_swap {
            mem["swap"] = json!(s);
        }
        res["memory"] = mem;
    }
    let mut cpu = json!({});
    if let Some(c) = r.cpus.filter(|c| *c > 0.0) {
        cpu["period"] = json!(100_000u64);
        cpu["quota"] = json!((c * 100_000.0).round() as i64);
    }
    if let Some(s) = r.cpu_shares.filter(|s| *s > 0) {
        cpu["shares"] = json!(s);
    }
    if let Some(set) = &r.cpuset_cpus {
        cpu["cpus"] = json!(set);
    }
    if cpu.as_object().is_some_and(|c| !c.is_empty()) {
        res["cpu"] = cpu;
    }
    if let Some(p) = r.pids_limit.filter(|p| *p != 0) {
        res["pids"] = json!({"limit": p});
    }
    res
}

/// Write `config.json` into the bundle atomically (temp, fsync, rename).
pub(crate) fn write_bundle_config(bundle: &Path, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let data = serde_json::to_vec_pretty(spec).map_err(|e| Error::Other(format!("encoding config.json: {e}")))?;
    engine_core::fs::write_atomic(&bundle.join("config.json"), &data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine_core::Resources;

    fn cfg() -> ContainerConfig {
        ContainerConfig::default().image("busybox".into())
    }

    #[test]
    fn bad_inputs_are_invalid() {
        let mut c = cfg();
        c.resources = Resources::default().memory(Some(-1));
        assert!(validate(&c).unwrap_err().is_invalid_input());
        let mut c = cfg();
        c.mounts.push(MountSpec::Bind { source: "/nonexistent/xyz".into(), target: "/x".into(), read_only: false });
        assert!(validate(&c).unwrap_err().to_string().contains("/nonexistent/xyz"));
        let mut c = cfg();
        c.mounts.push(MountSpec::Tmpfs { target: "relative".into(), size: None });
        assert!(validate(&c).unwrap_err().is_invalid_input());
        let mut c = cfg();
        c.image = " ".into();
        assert!(validate(&c).unwrap_err().is_invalid_input());
        assert!(validate(&cfg()).is_ok());
    }

    #[test]
    fn spec_carries_config() {
        let mut c = cfg();
        c.tty = true;
        c.read_only_rootfs = true;
        c.network = NetworkMode::Host;
        c.resources = Resources::default().memory(Some(64 << 20)).cpus(Some(0.5)).pids_limit(Some(10));
        c.mounts.push(MountSpec::Tmpfs { target: "/scratch".into(), size: Some(1 << 20) });
        let cx = SpecContext {
            id: "0123456789abcdef",
            name: "n1",
            config: &c,
            rootfs: Path::new("/b/rootfs"),
            volumes: Path::new("/v"),
            volume_paths: &Default::default(),
            cgroup_parent: "/engine",
            init_path: None,
            etc_files: &[],
        };
        let s = finish(oci_spec::runtime::Spec::default(), &cx).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["hostname"], "0123456789ab");
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["terminal"], true);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 10);
        assert_eq!(v["linux"]["cgroupsPath"], "/engine/0123456789abcdef");
        assert!(!v["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "network"));
        assert!(v["mounts"].as_array().unwrap().iter().any(|m| m["destination"] == "/scratch"));
    }

    #[test]
    fn oom_score_adj_in_range_only() {
        let mut c = cfg();
        let cx = |c: &ContainerConfig| {
            let cx = SpecContext {
                id: "0123456789abcdef",
                name: "n1",
                config: c,
                rootfs: Path::new("/b/rootfs"),
                volumes: Path::new("/v"),
                volume_paths: &Default::default(),
                cgroup_parent: "/engine",
                init_path: None,
                etc_files: &[],
            };
            finish(oci_spec::runtime::Spec::default(), &cx).map(|s| serde_json::to_value(&s).unwrap())
        };
        assert!(cx(&c).unwrap()["process"].get("oomScoreAdj").is_none());
        c.oom_score_adj = Some(-500);
        assert_eq!(cx(&c).unwrap()["process"]["oomScoreAdj"], -500);
        c.oom_score_adj = Some(1001);
        assert!(cx(&c).unwrap_err().is_invalid_input());
    }

    #[test]
    fn confinement_defaults_and_privileged() {
        let mk = |c: &ContainerConfig| {
            let cx = SpecContext {
                id: "0123456789abcdef",
                name: "n1",
                config: c,
                rootfs: Path::new("/b/rootfs"),
                volumes: Path::new("/v"),
                volume_paths: &Default::default(),
                cgroup_parent: "/engine",
                init_path: Some(Path::new("/r/bin/engine-init")),
                etc_files: &[],
            };
            serde_json::to_value(finish(oci_spec::runtime::Spec::default(), &cx).unwrap()).unwrap()
        };
        let v = mk(&cfg());
        assert_eq!(v["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().iter().any(|p| p == "/proc/kcore"));
        assert!(v["linux"]["readonlyPaths"].as_array().unwrap().iter().any(|p| p == "/proc/sys"));
        assert_eq!(v["linux"]["devices"], json!([]));
        assert_eq!(v["linux"]["resources"]["devices"][0], json!({"allow": false, "access": "rwm"}));
        let sys = v["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/sys").unwrap().clone();
        assert!(sys["options"].as_array().unwrap().contains(&json!("ro")));

        let mut c = cfg();
        c.security.privileged = true;
        c.init = true;
        let v = mk(&c);
        assert!(v["linux"].get("seccomp").is_none());
        assert_eq!(v["linux"]["maskedPaths"], json!([]));
        assert_eq!(v["linux"]["readonlyPaths"], json!([]));
        assert_eq!(v["linux"]["resources"]["devices"], json!([{"allow": true, "access": "rwm"}]));
        let sys = v["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/sys").unwrap().clone();
        assert!(!sys["options"].as_array().unwrap().contains(&json!("ro")));
        assert_eq!(v["process"]["args"][0], engine_init::CONTAINER_PATH);
        assert!(v["mounts"].as_array().unwrap().iter().any(|m| m["source"] == "/r/bin/engine-init"));
    }
}
