//! Image config (Entrypoint, Cmd, Env, WorkingDir, User) into the runtime
//! spec, and the process of an exec.

use engine_core::{ContainerConfig, Error, ExecConfig, Result};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Process, Spec};
use serde_json::{json, Value};
use std::path::Path;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Merge `KEY=value` lists; later keys override earlier ones, order kept.
pub(crate) fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for e in extra {
        let key = e.split('=').next().unwrap_or(e);
        if let Some(slot) = out.iter_mut().find(|x| x.split('=').next() == Some(key)) {
            *slot = e.clone();
        } else {
            out.push(e.clone());
        }
    }
    if !out.iter().any(|e| e.starts_with("PATH=")) {
        out.insert(0, DEFAULT_PATH.to_string());
    }
    out
}

/// Apply the image config and the user's overrides of it to `spec`
/// (delegates to `engine_image::spec::apply_image_config`).
pub(crate) fn apply(spec: &mut Spec, image: &ImageConfiguration, rootfs: &Path, config: &ContainerConfig) -> Result<()> {
    apply_local(spec, image, rootfs, config)
}

/// The manager's own application of the image config.
fn apply_local(spec: &mut Spec, image: &ImageConfiguration, rootfs: &Path, config: &ContainerConfig) -> Result<()> {
    let ic = image.config().clone().unwrap_or_default();
    let entrypoint = config.entrypoint.clone().or_else(|| ic.entrypoint().clone()).unwrap_or_default();
    // Docker: a new entrypoint resets the image's cmd.
    let cmd = match (&config.cmd, &config.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => ic.cmd().clone().unwrap_or_default(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    let env = merge_env(&ic.env().clone().unwrap_or_default(), &config.env);
    let cwd = config.working_dir.clone().or_else(|| ic.working_dir().clone()).filter(|w| !w.is_empty());
    let user = config.user.clone().or_else(|| ic.user().clone()).filter(|u| !u.is_empty());
    let mut v = serde_json::to_value(&*spec).map_err(|e| Error::Other(format!("spec: {e}")))?;
    let p = &mut v["process"];
    p["args"] = json!(args);
    p["env"] = json!(env);
    p["cwd"] = json!(cwd.unwrap_or_else(|| "/".into()));
    if let Some(u) = user {
        let (uid, gid, extra) = resolve_user(rootfs, &u)?;
        p["user"] = json!({"uid": uid, "gid": gid, "additionalGids": extra});
    }
    *spec = serde_json::from_value(v).map_err(|e| Error::Other(format!("spec: {e}")))?;
    Ok(())
}

/// Resolve `user`, `uid`, `user:group`, `uid:gid` against the rootfs'
/// `/etc/passwd` and `/etc/group`: (uid, gid, additional gids).
pub(crate) fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let entry = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| {
        f.len() >= 4 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u))
    });
    let (uid, mut gid, uname) = match (u.parse::<u32>(), &entry) {
        (Ok(n), Some(f)) => (n, f[3].parse().unwrap_or(n), Some(f[0].to_string())),
        (Ok(n), None) => (n, n, None),
        (Err(_), Some(f)) => (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0), Some(f[0].to_string())),
        (Err(_), None) => {
            return Err(Error::invalid("user", format!("no user {u:?} in the image's /etc/passwd")));
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| Error::invalid("group", format!("no group {g:?} in the image's /etc/group")))?,
        };
    }
    let extra = match uname {
        Some(n) if g.is_none() => group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == n))
            .filter_map(|f| f[2].parse().ok())
            .filter(|x| *x != gid)
            .collect(),
        _ => Vec::new(),
    };
    Ok((uid, gid, extra))
}

/// The process of an exec: the container's own process settings (env, cwd,
/// user, capabilities) with the exec's args and overrides.
pub(crate) fn exec_process(bundle: &Path, config: &ExecConfig) -> Result<Process> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let spec: Value = serde_json::from_slice(&data).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let mut p = spec.get("process").cloned().unwrap_or_else(|| json!({}));
    p["args"] = json!(config.cmd);
    p["terminal"] = json!(config.tty);
    let env: Vec<String> = p["env"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default();
    p["env"] = json!(merge_env(&env, &config.env));
    if let Some(wd) = &config.working_dir {
        p["cwd"] = json!(wd);
    }
    if let Some(u) = &config.user {
        let rootfs = spec["root"]["path"].as_str().map(|r| bundle.join(r)).unwrap_or_else(|| bundle.join("rootfs"));
        let (uid, gid, extra) = resolve_user(&rootfs, u)?;
        p["user"] = json!({"uid": uid, "gid": gid, "additionalGids": extra});
    }
    if let Some(o) = p.as_object_mut() {
        o.remove("consoleSize");
    }
    serde_json::from_value(p).map_err(|e| Error::Other(format!("exec process: {e}")))
}
