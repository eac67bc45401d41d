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
/// (Docker's rules, from `engine_image::spec`).
pub(crate) fn apply(
    spec: &mut Spec,
    image: &ImageConfiguration,
    rootfs: &Path,
    config: &ContainerConfig,
) -> Result<()> {
    engine_image::spec::apply_image_config(spec, image, rootfs, config)
}

/// The process of an exec: the container's own process settings (env, cwd,
/// user, capabilities) with the exec's args and overrides; a privileged exec
/// gets every capability the engine holds.
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
        let mut user = engine_image::spec::resolve_user(&rootfs, u)?;
        // The container's --group-add groups apply to every user, as under dockerd.
        let extra: Vec<u32> = spec["annotations"][crate::spec::GROUP_ADD_ANNOTATION]
            .as_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|g| g.parse().ok())
            .collect();
        if !extra.is_empty() {
            let mut gids = user.additional_gids().clone().unwrap_or_default();
            gids.extend(extra.into_iter().filter(|g| *g != user.gid()));
            gids.sort_unstable();
            gids.dedup();
            user.set_additional_gids(Some(gids));
        }
        p["user"] = serde_json::to_value(&user).map_err(|e| Error::Other(format!("exec user: {e}")))?;
    }
    if config.privileged {
        // dockerd's privileged exec: every capability (here: every one the engine holds).
        let caps = crate::spec::held_capabilities()?;
        p["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    }
    if let Some(o) = p.as_object_mut() {
        o.remove("consoleSize");
    }
    serde_json::from_value(p).map_err(|e| Error::Other(format!("exec process: {e}")))
}
