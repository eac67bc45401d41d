//! Validation of a container config, and the manager's part of deriving the
//! OCI runtime spec (the image's part is `engine_image::spec`).

use engine_core::{ContainerConfig, Error, MountSpec, NetworkMode, Result};
use serde_json::{json, Value};
use std::path::Path;

/// Docker's default capability set.
pub(crate) const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Check everything that can be checked without touching the system, so bad
/// input fails before anything is created.
pub(crate) fn validate(config: &ContainerConfig) -> Result<()> {
    if config.image.trim().is_empty() {
        return Err(Error::invalid("image", "must not be empty"));
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
                crate::names::validate(name).map_err(|_| {
                    Error::invalid("volume name", format!("{name:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]+"))
                })?;
                target
            }
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
    Ok(())
}

/// Inputs of [`finish`].
pub(crate) struct SpecContext<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub config: &'a ContainerConfig,
    pub rootfs: &'a Path,
    pub volumes: &'a Path,
    pub cgroup_parent: &'a str,
}

/// Apply the container config's own settings to a spec that already carries
/// the image config: hostname, terminal, mounts, resources, network, read-only
/// root, cgroups path, capabilities.
pub(crate) fn finish(spec: oci_spec::runtime::Spec, cx: &SpecContext<'_>) -> Result<oci_spec::runtime::Spec> {
    let cfg = cx.config;
    let mut v = serde_json::to_value(&spec).map_err(|e| Error::Other(format!("runtime spec to JSON: {e}")))?;
    let o = v.as_object_mut().ok_or_else(|| Error::Other("runtime spec is not an object".into()))?;

    let hostname = cfg.hostname.clone().unwrap_or_else(|| cx.id.chars().take(12).collect());
    o.insert("hostname".into(), json!(hostname));
    o.insert("root".into(), json!({"path": cx.rootfs, "readonly": cfg.read_only_rootfs}));

    let process = o.entry("process").or_insert_with(|| json!({}));
    process["terminal"] = json!(cfg.tty);
    let caps = json!(DEFAULT_CAPS);
    process["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    process["noNewPrivileges"] = json!(false);
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

    let mounts = o.entry("mounts").or_insert_with(|| json!([]));
    let list = mounts.as_array_mut().ok_or_else(|| Error::Other("spec mounts is not a list".into()))?;
    // The image's /sys/fs/cgroup mount is kept; user mounts go after it.
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
            MountSpec::Volume { name, target, read_only } => {
                let mut opts = vec!["rbind", "rprivate"];
                if *read_only {
                    opts.push("ro");
                }
                json!({"destination": target, "type": "bind", "source": cx.volumes.join(name), "options": opts})
            }
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
    let mut res = json!({"devices": [{"allow": false, "access": "rwm"}]});
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
    linux["resources"] = res;
    if linux.get("devices").is_none() {
        linux["devices"] = json!([]);
    }
    let ns = linux.get_mut("namespaces").and_then(Value::as_array_mut);
    if let Some(ns) = ns {
        ns.retain(|n| n["type"] != "network");
        match &cfg.network {
            NetworkMode::None => ns.push(json!({"type": "network"})),
            NetworkMode::Host => {}
            NetworkMode::Path(p) => ns.push(json!({"type": "network", "path": p})),
            // The manager hands these over as the path of the namespace it made.
            NetworkMode::Bridge | NetworkMode::Network(_) => ns.push(json!({"type": "network"})),
        }
    }
    // Owner binding: when the owner dies its shim kills and deletes the
    // container; this poststop hook (run by the runtime's delete, in the host's
    // mount namespace) then unmounts the rootfs, so a killed owner leaks no mount.
    if let Some(owner) = cfg.owner_pid {
        let script = format!(
            "[ -e /proc/{owner} ] || umount -l '{}' 2>/dev/null; exit 0",
            cx.rootfs.display().to_string().replace('\'', "")
        );
        let hook = json!({"path": "/bin/sh", "args": ["sh", "-c", script],
                          "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "timeout": 10});
        let hooks = o.entry("hooks").or_insert_with(|| json!({}));
        match hooks.get_mut("poststop").and_then(Value::as_array_mut) {
            Some(list) => list.push(hook),
            None => hooks["poststop"] = json!([hook]),
        }
    }
    let ann = o.entry("annotations").or_insert_with(|| json!({}));
    if let Some(a) = ann.as_object_mut() {
        a.insert("org.engine.container.name".into(), json!(cx.name));
        a.insert("org.engine.image".into(), json!(cfg.image));
    }
    serde_json::from_value(v).map_err(|e| Error::Other(format!("derived runtime spec is invalid: {e}")))
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
        ContainerConfig { image: "busybox".into(), ..Default::default() }
    }

    #[test]
    fn bad_inputs_are_invalid() {
        let mut c = cfg();
        c.resources = Resources { memory: Some(-1), ..Default::default() };
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
        c.resources = Resources { memory: Some(64 << 20), cpus: Some(0.5), pids_limit: Some(10), ..Default::default() };
        c.mounts.push(MountSpec::Tmpfs { target: "/scratch".into(), size: Some(1 << 20) });
        let cx = SpecContext {
            id: "0123456789abcdef",
            name: "n1",
            config: &c,
            rootfs: Path::new("/b/rootfs"),
            volumes: Path::new("/v"),
            cgroup_parent: "/engine",
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
}
