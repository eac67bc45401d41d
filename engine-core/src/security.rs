//! Confinement options of a container, with docker's meaning: capabilities,
//! seccomp, `no_new_privs`, privileged mode, devices, extra groups, sysctls.
//!
//! The defaults are docker's: its 14 capabilities, its seccomp profile, its
//! masked and read-only paths, `/dev` with only the default devices. The
//! parsers here take what the docker CLI and the engine CLI take, and reject
//! anything the engine cannot honour with an error naming it.
//!
//! ```
//! use engine_core::security::{normalize_capability, DeviceMapping, SecurityOptions};
//! assert_eq!(normalize_capability("net_admin")?, "CAP_NET_ADMIN");
//! assert!(normalize_capability("FOO").unwrap_err().to_string().contains("unknown capability"));
//!
//! let mut sec = SecurityOptions::default();
//! sec.apply_security_opt("no-new-privileges")?;
//! sec.apply_security_opt("seccomp=unconfined")?;
//! assert!(sec.no_new_privileges);
//! assert!(sec.apply_security_opt("label=disable").is_err());
//!
//! let d: DeviceMapping = "/dev/null:/dev/mynull:rw".parse()?;
//! assert_eq!(d.container_path, "/dev/mynull");
//! # Ok::<(), engine_core::Error>(())
//! ```

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every capability Linux defines, indexed by its number (`CAP_CHOWN` is 0).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set: what a container gets unless told otherwise
/// (`CapEff: 00000000a80425fb`).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
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

/// Docker's masked paths: bind-mounted over with `/dev/null` (files) or an
/// empty read-only directory (directories), so they read empty.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths: remounted read-only inside the container.
pub const DEFAULT_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Normalize a capability name the way docker does: case-insensitive, with or
/// without the `CAP_` prefix; `ALL` stays `ALL`. Unknown names are an error
/// that names them.
pub fn normalize_capability(name: &str) -> Result<String> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::invalid("capability", format!("unknown capability: {full:?}")))
    }
}

/// The capability names for a bit mask as `/proc/<pid>/status` shows it
/// (`CapEff: 00000000a80425fb`); bits past the known capabilities are ignored.
pub fn capabilities_from_mask(mask: u64) -> Vec<String> {
    CAPABILITIES.iter().enumerate().filter(|(i, _)| mask & (1u64 << i) != 0).map(|(_, n)| n.to_string()).collect()
}

/// The bit mask of a list of capability names (unknown names are skipped).
pub fn capability_mask<S: AsRef<str>>(caps: &[S]) -> u64 {
    caps.iter().filter_map(|c| CAPABILITIES.iter().position(|k| *k == c.as_ref())).fold(0u64, |m, i| m | (1u64 << i))
}

/// Which seccomp profile a container runs under.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SeccompProfile {
    /// Docker's default profile (evaluated against the container's capabilities).
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile in docker's JSON format (`seccomp=<profile.json>`), kept as sent.
    Custom(String),
}

impl SeccompProfile {
    /// A custom profile read from a file in docker's profile format (what
    /// `docker run --security-opt seccomp=<profile.json>` reads). The content
    /// must be JSON; the rules are checked when the container is created.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading seccomp profile {}", path.display()), e))?;
        serde_json::from_str::<serde_json::Value>(&data).map_err(|e| {
            Error::invalid(format!("seccomp profile {}", path.display()), format!("not valid JSON: {e}"))
        })?;
        Ok(SeccompProfile::Custom(data))
    }
}

/// A host device made available in the container (`--device host[:container[:perms]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceMapping {
    /// The device on the host (a device node, or a directory of them).
    pub host_path: PathBuf,
    /// Where it appears in the container (default: the host path).
    pub container_path: String,
    /// Cgroup permissions, a combination of `r`, `w`, `m` (default `rwm`).
    pub permissions: String,
}

impl DeviceMapping {
    /// A mapping of `host_path` to `container_path` with `permissions`, validated.
    pub fn new(
        host_path: impl Into<PathBuf>,
        container_path: impl Into<String>,
        permissions: impl Into<String>,
    ) -> Result<Self> {
        let d = DeviceMapping {
            host_path: host_path.into(),
            container_path: container_path.into(),
            permissions: permissions.into(),
        };
        d.validate()?;
        Ok(d)
    }

    /// Check the paths are absolute and the permissions are from `rwm`.
    pub fn validate(&self) -> Result<()> {
        let what = || format!("device {}", self.host_path.display());
        if !self.host_path.is_absolute() {
            return Err(Error::invalid(what(), "the host path must be absolute"));
        }
        if !self.container_path.starts_with('/') || self.container_path.split('/').any(|c| c == "..") {
            return Err(Error::invalid(
                what(),
                format!("the container path {:?} must be absolute, without '..'", self.container_path),
            ));
        }
        let p = &self.permissions;
        let mut seen = String::new();
        for c in p.chars() {
            if !"rwm".contains(c) || seen.contains(c) {
                return Err(Error::invalid(what(), format!("invalid permissions {p:?}: use a combination of r, w, m")));
            }
            seen.push(c);
        }
        if p.is_empty() {
            return Err(Error::invalid(what(), "empty permissions: use a combination of r, w, m"));
        }
        Ok(())
    }
}

impl std::str::FromStr for DeviceMapping {
    type Err = Error;

    /// `host`, `host:container`, `host:perms` or `host:container:perms`, as `docker run --device`.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
        let (host, cont, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if is_perms(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] => (*h, *c, *p),
            _ => return Err(Error::invalid("device", format!("invalid device specification: {s:?}"))),
        };
        if host.is_empty() {
            return Err(Error::invalid("device", format!("invalid device specification: {s:?}")));
        }
        DeviceMapping::new(host, cont, perms)
    }
}

/// The confinement of a container: docker's `--privileged`, `--cap-add`,
/// `--cap-drop`, `--security-opt`, `--device`, `--group-add` and `--sysctl`.
/// The default is docker's default confinement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SecurityOptions {
    /// Every capability the engine holds, every host device, no seccomp, no
    /// masked or read-only paths, writable `/sys` and `/proc/sys`.
    pub privileged: bool,
    /// Capabilities added to the default set (`ALL` for every one the engine holds).
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set (`ALL` for every one).
    pub cap_drop: Vec<String>,
    /// The seccomp profile.
    pub seccomp: SeccompProfile,
    /// Set `no_new_privs`: setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
    /// Host devices to add.
    pub devices: Vec<DeviceMapping>,
    /// Extra groups of the process (names resolved in the image, or numbers).
    pub group_add: Vec<String>,
    /// Namespaced kernel parameters (`kernel.msg*`, `kernel.sem`, `kernel.shm*`,
    /// `fs.mqueue.*`, and `net.*` with a network namespace of its own).
    pub sysctls: BTreeMap<String, String>,
    /// Replaces the default masked paths when set.
    pub masked_paths: Option<Vec<String>>,
    /// Replaces the default read-only paths when set.
    pub readonly_paths: Option<Vec<String>>,
}

impl SecurityOptions {
    /// Apply one `--security-opt` value as docker takes it: `seccomp=unconfined`,
    /// `seccomp=<profile JSON>` (the docker CLI sends the file's content),
    /// `no-new-privileges[=true|false]` (also with `:`), and
    /// `apparmor=unconfined` (accepted: this engine applies no AppArmor profile).
    /// Anything else (`label=...`, another AppArmor profile, `systempaths=...`)
    /// is an error naming it, never silently dropped.
    pub fn apply_security_opt(&mut self, opt: &str) -> Result<()> {
        let err = |reason: String| Error::invalid("security option", reason);
        if opt == "no-new-privileges" {
            self.no_new_privileges = true;
            return Ok(());
        }
        let (key, value) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .ok_or_else(|| err(format!("invalid --security-opt: {opt:?}")))?;
        match key {
            "no-new-privileges" => {
                self.no_new_privileges = match value {
                    "true" | "" => true,
                    "false" => false,
                    v => {
                        return Err(err(format!("invalid --security-opt no-new-privileges={v:?}: want true or false")))
                    }
                };
            }
            "seccomp" => {
                self.seccomp = match value.trim() {
                    "unconfined" => SeccompProfile::Unconfined,
                    "" | "builtin" | "default" => SeccompProfile::Default,
                    v if v.starts_with('{') => {
                        serde_json::from_str::<serde_json::Value>(v)
                            .map_err(|e| err(format!("seccomp profile is not valid JSON: {e}")))?;
                        SeccompProfile::Custom(v.to_string())
                    }
                    v => {
                        return Err(err(format!(
                            "seccomp={v:?}: expected \"unconfined\" or a profile in JSON (the docker CLI reads the file and sends its content)"
                        )))
                    }
                };
            }
            "apparmor" if value == "unconfined" => {}
            "apparmor" => {
                return Err(err(format!(
                    "apparmor={value}: this engine applies no AppArmor profiles (only apparmor=unconfined is accepted)"
                )))
            }
            "label" => return Err(err(format!("label={value}: SELinux labels are not supported by this engine"))),
            other => return Err(err(format!("{other}={value}: not supported by this engine"))),
        }
        Ok(())
    }

    /// The `--security-opt` values that describe these options, as docker's
    /// inspect shows them (`HostConfig.SecurityOpt`).
    pub fn security_opt_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.seccomp {
            SeccompProfile::Default => {}
            SeccompProfile::Unconfined => out.push("seccomp=unconfined".to_string()),
            SeccompProfile::Custom(j) => out.push(format!("seccomp={j}")),
        }
        if self.no_new_privileges {
            out.push("no-new-privileges".to_string());
        }
        out
    }

    /// Check everything that needs no system access: capability names,
    /// devices, sysctls (`own_netns`: the container has a network namespace of
    /// its own, so `net.*` is namespaced), group names.
    pub fn validate(&self, own_netns: bool) -> Result<()> {
        for c in &self.cap_add {
            normalize_capability(c).map_err(|e| Error::invalid("CapAdd", strip_invalid(e)))?;
        }
        for c in &self.cap_drop {
            normalize_capability(c).map_err(|e| Error::invalid("CapDrop", strip_invalid(e)))?;
        }
        for d in &self.devices {
            d.validate()?;
        }
        for (k, v) in &self.sysctls {
            validate_sysctl(k, v, own_netns)?;
        }
        for g in &self.group_add {
            if g.is_empty() || g.contains(':') || g.contains(char::is_whitespace) {
                return Err(Error::invalid("group", format!("{g:?} is not a group name or number")));
            }
        }
        let paths = self.masked_paths.iter().chain(self.readonly_paths.iter()).flatten();
        for p in paths {
            if !p.starts_with('/') {
                return Err(Error::invalid("masked or read-only path", format!("{p:?} is not absolute")));
            }
        }
        Ok(())
    }

    /// The final capability set, docker's rules: privileged gets `held` (what
    /// the engine itself holds); `ALL` in `cap_add` means `held` minus
    /// `cap_drop`; `ALL` in `cap_drop` means only `cap_add`; otherwise the
    /// default set minus `cap_drop` plus `cap_add`. A capability named in
    /// `cap_add` that the engine does not hold is an error naming it; one of
    /// the default set it does not hold is left out.
    pub fn capabilities(&self, held: &[String]) -> Result<Vec<String>> {
        if self.privileged {
            return Ok(held.to_vec());
        }
        let norm = |v: &[String], field: &str| -> Result<Vec<String>> {
            v.iter()
                .map(|c| normalize_capability(c).map_err(|e| Error::invalid(field.to_string(), strip_invalid(e))))
                .collect()
        };
        let add = norm(&self.cap_add, "CapAdd")?;
        let drop = norm(&self.cap_drop, "CapDrop")?;
        let all = "ALL".to_string();
        let mut caps: Vec<String> = if add.contains(&all) {
            held.iter().filter(|c| !drop.contains(c)).cloned().collect()
        } else if drop.contains(&all) {
            add.clone()
        } else {
            DEFAULT_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .filter(|c| !drop.contains(c))
                .chain(add.clone())
                .collect()
        };
        let mut seen = std::collections::HashSet::new();
        caps.retain(|c| seen.insert(c.clone()));
        // A capability asked for by name must be given; one of the default set
        // the engine does not hold (an engine itself in a container) is left out.
        if let Some(c) = add.iter().find(|c| *c != &all && !held.contains(c)) {
            return Err(Error::invalid(
                "CapAdd",
                format!("{c} is not held by the engine, so it cannot be given to a container"),
            ));
        }
        caps.retain(|c| held.contains(c));
        Ok(caps)
    }
}

fn strip_invalid(e: Error) -> String {
    match e {
        Error::InvalidInput { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Check a sysctl is namespaced, so setting it in a container cannot change
/// the host: `kernel.msgmax`, `kernel.msgmnb`, `kernel.msgmni`, `kernel.sem`,
/// `kernel.shmall`, `kernel.shmmax`, `kernel.shmmni`, `kernel.shm_rmid_forced`,
/// `fs.mqueue.*`, and `net.*` when the container has its own network namespace.
pub fn validate_sysctl(key: &str, value: &str, own_netns: bool) -> Result<()> {
    let what = || format!("sysctl {key:?}");
    if key.is_empty() || key.contains("..") || key.contains('/') || key.starts_with('.') || key.ends_with('.') {
        return Err(Error::invalid(what(), "not a sysctl name"));
    }
    if value.contains('\n') {
        return Err(Error::invalid(what(), "the value contains a newline"));
    }
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        return Ok(());
    }
    if key.starts_with("net.") {
        if own_netns {
            return Ok(());
        }
        return Err(Error::invalid(what(), "net.* sysctls are not allowed with the host's network namespace"));
    }
    Err(Error::invalid(
        what(),
        "not a namespaced sysctl (allowed: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.* with its own network)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> Vec<String> {
        capabilities_from_mask(0x1fffeffffff)
    }

    #[test]
    fn default_mask_is_dockers() {
        assert_eq!(capability_mask(DEFAULT_CAPABILITIES), 0xa80425fb);
        assert_eq!(CAPABILITIES.len(), 41);
        assert!(!held().contains(&"CAP_SYS_RESOURCE".to_string()));
    }

    #[test]
    fn cap_rules_follow_docker() {
        let mut s = SecurityOptions::default();
        assert_eq!(capability_mask(&s.capabilities(&held()).unwrap()), 0xa80425fb);
        s.cap_add = vec!["net_admin".into()];
        assert_eq!(capability_mask(&s.capabilities(&held()).unwrap()), 0xa80425fb | (1 << 12));
        s.cap_drop = vec!["ALL".into()];
        assert_eq!(capability_mask(&s.capabilities(&held()).unwrap()), 1 << 12);
        s.cap_add = vec![];
        assert!(s.capabilities(&held()).unwrap().is_empty());
        s.cap_add = vec!["all".into()];
        s.cap_drop = vec!["CAP_CHOWN".into()];
        assert_eq!(capability_mask(&s.capabilities(&held()).unwrap()), 0x1fffeffffff & !1);
        s.cap_add = vec!["sys_resource".into()];
        s.cap_drop = vec![];
        assert!(s.capabilities(&held()).unwrap_err().to_string().contains("CAP_SYS_RESOURCE"));
        s.cap_add = vec!["FOO".into()];
        assert_eq!(s.validate(true).unwrap_err().to_string(), "invalid CapAdd: unknown capability: \"CAP_FOO\"");
        // An engine without CAP_MKNOD gives the rest of the default set.
        let fewer: Vec<String> = held().into_iter().filter(|c| c != "CAP_MKNOD").collect();
        let d = SecurityOptions::default().capabilities(&fewer).unwrap();
        assert_eq!(capability_mask(&d), 0xa80425fb & !(1 << 27));
        let p = SecurityOptions { privileged: true, ..Default::default() };
        assert_eq!(p.capabilities(&held()).unwrap(), held());
    }

    #[test]
    fn security_opts_and_sysctls() {
        let mut s = SecurityOptions::default();
        s.apply_security_opt("no-new-privileges:true").unwrap();
        assert!(s.no_new_privileges);
        s.apply_security_opt("no-new-privileges=false").unwrap();
        assert!(!s.no_new_privileges);
        s.apply_security_opt("apparmor=unconfined").unwrap();
        assert!(s.apply_security_opt("apparmor=docker-default").is_err());
        assert!(s.apply_security_opt("seccomp=/etc/profile.json").is_err());
        s.apply_security_opt(r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        assert!(matches!(s.seccomp, SeccompProfile::Custom(_)));
        let dir = std::env::temp_dir().join(format!("secprof-{}", std::process::id()));
        std::fs::write(&dir, "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}").unwrap();
        assert!(matches!(SeccompProfile::from_file(&dir), Ok(SeccompProfile::Custom(_))));
        std::fs::write(&dir, "not json").unwrap();
        assert!(SeccompProfile::from_file(&dir).unwrap_err().is_invalid_input());
        std::fs::remove_file(&dir).unwrap();
        assert!(SeccompProfile::from_file("/nonexistent/p.json")
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/p.json"));
        assert!(validate_sysctl("kernel.shmmax", "1", false).is_ok());
        assert!(validate_sysctl("net.ipv4.ip_forward", "1", true).is_ok());
        assert!(validate_sysctl("net.ipv4.ip_forward", "1", false).is_err());
        assert!(validate_sysctl("kernel.hostname", "x", true).is_err());
        assert!(validate_sysctl("vm.swappiness", "1", true).unwrap_err().to_string().contains("vm.swappiness"));
        assert!("/dev/null:/dev/x:rwz".parse::<DeviceMapping>().is_err());
        let d: DeviceMapping = "/dev/null:r".parse().unwrap();
        assert_eq!((d.container_path.as_str(), d.permissions.as_str()), ("/dev/null", "r"));
    }
}
