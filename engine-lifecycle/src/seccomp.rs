//! Seccomp profiles in docker's format, turned into the OCI `linux.seccomp`
//! section for one container.
//!
//! The default profile is `profiles/seccomp-default.json`, embedded in the
//! binary: docker's default rules written as data in docker's profile format,
//! so the same evaluator serves the default and a user's
//! `--security-opt seccomp=<profile.json>`. A profile's rules may carry
//! `includes`/`excludes` conditions on capabilities (checked against the
//! container's final capability set), architectures (Go's names, checked
//! against the engine's architecture) and a minimum kernel version; `archMap`
//! picks the native architecture and its sub-architectures.

use engine_core::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// The default profile, as data.
pub(crate) const DEFAULT_PROFILE: &str = include_str!("../profiles/seccomp-default.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    #[serde(default)]
    comment: Option<String>,
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<Rule>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    listener_metadata: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// The engine's architecture with Go's name, as profiles spell it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips64" => "mips64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The engine's architecture with libseccomp's name.
fn native_scmp_arch() -> Option<&'static str> {
    Some(match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "x86" => "SCMP_ARCH_X86",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "powerpc64" if cfg!(target_endian = "little") => "SCMP_ARCH_PPC64LE",
        "powerpc64" => "SCMP_ARCH_PPC64",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "mips64" if cfg!(target_endian = "little") => "SCMP_ARCH_MIPSEL64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "loongarch64" => "SCMP_ARCH_LOONGARCH64",
        _ => return None,
    })
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
    Some((it.next()?.parse().ok()?, it.next().and_then(|m| m.parse().ok()).unwrap_or(0)))
}

/// The running kernel's version (major, minor).
fn kernel_version() -> (u32, u32) {
    nix::sys::utsname::uname().ok().and_then(|u| parse_version(&u.release().to_string_lossy())).unwrap_or((0, 0))
}

/// Evaluate a profile in docker's format for a container with `caps` (its
/// final capability set) into an OCI `linux.seccomp` value. `what` names the
/// profile in errors.
pub(crate) fn evaluate(profile_json: &str, caps: &[String], what: &str) -> Result<Value> {
    let mut key_caps = caps.to_vec();
    key_caps.sort_unstable();
    key_caps.dedup();
    if let Some(v) = cached(profile_json, &key_caps) {
        return Ok(v);
    }
    let v = evaluate_for(profile_json, caps, what, go_arch(), kernel_version())?;
    remember(profile_json, key_caps, &v);
    Ok(v)
}

/// Profiles already evaluated, by profile text and capability set (the
/// architecture and kernel do not change while the process runs). Nearly
/// every container is evaluated against docker's default profile with one of
/// a few capability sets, and parsing and checking the profile again for each
/// was about a twentieth of the embedding process's CPU in a burst of
/// creates. Only successful evaluations are kept, at most [`CACHED`].
static CACHE: std::sync::Mutex<Vec<(String, Vec<String>, Value)>> = std::sync::Mutex::new(Vec::new());

/// How many evaluated profiles [`CACHE`] keeps (the oldest goes first).
const CACHED: usize = 16;

fn cached(profile_json: &str, caps: &[String]) -> Option<Value> {
    let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.iter().find(|(p, c, _)| c == caps && p == profile_json).map(|(_, _, v)| v.clone())
}

fn remember(profile_json: &str, caps: Vec<String>, v: &Value) {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.iter().any(|(p, c, _)| *c == caps && p == profile_json) {
        return;
    }
    if cache.len() >= CACHED {
        cache.remove(0);
    }
    cache.push((profile_json.to_string(), caps, v.clone()));
}

fn evaluate_for(profile_json: &str, caps: &[String], what: &str, arch: &str, kernel: (u32, u32)) -> Result<Value> {
    let de = &mut serde_json::Deserializer::from_str(profile_json);
    let p: Profile = serde_path_to_error::deserialize(de)
        .map_err(|e| Error::invalid(what.to_string(), format!("at {}: {}", e.path(), e.inner())))?;
    let _ = &p.comment;
    if !p.architectures.is_empty() && !p.arch_map.is_empty() {
        return Err(Error::invalid(what.to_string(), "use either 'architectures' or 'archMap', not both"));
    }
    let mut arches = p.architectures.clone();
    if let Some(native) = native_scmp_arch() {
        for a in p.arch_map.iter().filter(|a| a.architecture == native) {
            arches.push(a.architecture.clone());
            arches.extend(a.sub_architectures.clone().unwrap_or_default());
        }
    }
    let min_kernel = |v: &str| -> Result<(u32, u32)> {
        parse_version(v).ok_or_else(|| Error::invalid(what.to_string(), format!("invalid minKernel {v:?}")))
    };
    let has = |c: &String| caps.iter().any(|x| x == c);
    let mut out = Vec::new();
    for r in &p.syscalls {
        let _ = &r.comment;
        if r.name.is_some() && !r.names.is_empty() {
            return Err(Error::invalid(what.to_string(), "a rule has both 'name' and 'names'"));
        }
        let ex = &r.excludes;
        if ex.arches.as_ref().is_some_and(|a| a.iter().any(|x| x == arch))
            || ex.caps.as_ref().is_some_and(|c| c.iter().any(has))
        {
            continue;
        }
        if let Some(k) = &ex.min_kernel {
            if kernel >= min_kernel(k)? {
                continue;
            }
        }
        let inc = &r.includes;
        if inc.arches.as_ref().is_some_and(|a| !a.is_empty() && !a.iter().any(|x| x == arch))
            || inc.caps.as_ref().is_some_and(|c| !c.iter().all(has))
        {
            continue;
        }
        if let Some(k) = &inc.min_kernel {
            if kernel < min_kernel(k)? {
                continue;
            }
        }
        let names: Vec<String> = match &r.name {
            Some(n) => vec![n.clone()],
            None => r.names.clone(),
        };
        let mut rule = json!({"names": names, "action": r.action});
        if let Some(e) = r.errno_ret {
            rule["errnoRet"] = json!(e);
        }
        if let Some(a) = &r.args {
            rule["args"] = json!(a);
        }
        out.push(rule);
    }
    let mut v = json!({"defaultAction": p.default_action, "architectures": arches, "syscalls": out});
    if let Some(e) = p.default_errno_ret {
        v["defaultErrnoRet"] = json!(e);
    }
    if !p.flags.is_empty() {
        v["flags"] = json!(p.flags);
    }
    if let Some(l) = &p.listener_path {
        v["listenerPath"] = json!(l);
    }
    if let Some(l) = &p.listener_metadata {
        v["listenerMetadata"] = json!(l);
    }
    // The result must be a valid OCI section (actions, operators, arches).
    serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v.clone())
        .map_err(|e| Error::invalid(what.to_string(), format!("not a valid seccomp profile: {e}")))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_allowed(v: &Value) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()))
            .collect()
    }

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn evaluations_are_reused_per_profile_and_capability_set() {
        let default = caps(engine_core::security::DEFAULT_CAPABILITIES);
        let plain = evaluate(DEFAULT_PROFILE, &default, "profile").unwrap();
        assert_eq!(plain, evaluate_for(DEFAULT_PROFILE, &default, "profile", go_arch(), kernel_version()).unwrap());
        let mut reordered = default.clone();
        reordered.reverse();
        assert_eq!(evaluate(DEFAULT_PROFILE, &reordered, "profile").unwrap(), plain);
        let mut admin = default.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let with_admin = evaluate(DEFAULT_PROFILE, &admin, "profile").unwrap();
        assert!(names_allowed(&with_admin).contains(&"mount".to_string()));
        assert!(!names_allowed(&plain).contains(&"mount".to_string()));
        assert_eq!(evaluate(DEFAULT_PROFILE, &default, "profile").unwrap(), plain);
        // A profile that fails is refused every time, and not kept.
        for _ in 0..2 {
            let e = evaluate(r#"{"defaultAction": 1}"#, &default, "my profile").unwrap_err().to_string();
            assert!(e.contains("my profile"), "{e}");
        }
    }

    #[test]
    fn default_profile_follows_capabilities_and_arch() {
        let default = caps(engine_core::security::DEFAULT_CAPABILITIES);
        let v = evaluate_for(DEFAULT_PROFILE, &default, "profile", "amd64", (6, 1)).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        let allowed = names_allowed(&v);
        for n in ["read", "chroot", "arch_prctl", "ptrace", "clock_gettime", "fchmodat2", "futex_waitv"] {
            assert!(allowed.contains(&n.to_string()), "{n}");
        }
        for n in ["unshare", "mount", "keyctl", "add_key", "reboot", "bpf", "riscv_flush_icache", "setns"] {
            assert!(!allowed.contains(&n.to_string()), "{n}");
        }
        // clone only without namespace flags; clone3 says ENOSYS.
        let s = v["syscalls"].as_array().unwrap();
        assert!(s.iter().any(|r| r["names"] == json!(["clone"]) && r["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"));
        assert!(s.iter().any(|r| r["names"] == json!(["clone3"]) && r["errnoRet"] == 38));

        let mut admin = default.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let v = evaluate_for(DEFAULT_PROFILE, &admin, "profile", "amd64", (6, 1)).unwrap();
        let allowed = names_allowed(&v);
        assert!(allowed.contains(&"unshare".to_string()) && allowed.contains(&"clone3".to_string()));
        assert!(!v["syscalls"].as_array().unwrap().iter().any(|r| r["names"] == json!(["clone3"])));
        // Without CAP_SYS_CHROOT, no chroot; on an old kernel, no ptrace.
        let v = evaluate_for(DEFAULT_PROFILE, &caps(&["CAP_KILL"]), "profile", "amd64", (4, 4)).unwrap();
        let allowed = names_allowed(&v);
        assert!(!allowed.contains(&"chroot".to_string()) && !allowed.contains(&"ptrace".to_string()));
        // Architecture-conditional rules.
        let v = evaluate_for(DEFAULT_PROFILE, &default, "profile", "riscv64", (6, 1)).unwrap();
        let allowed = names_allowed(&v);
        assert!(allowed.contains(&"riscv_flush_icache".to_string()) && !allowed.contains(&"arch_prctl".to_string()));
    }

    #[test]
    fn bad_profiles_are_named() {
        let e = evaluate_for(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, &[], "seccomp profile", "amd64", (6, 1));
        assert!(e.unwrap_err().to_string().contains("seccomp profile"));
        let e = evaluate_for(r#"{"syscalls":[]}"#, &[], "seccomp profile", "amd64", (6, 1));
        assert!(e.unwrap_err().to_string().contains("defaultAction"));
    }
}
