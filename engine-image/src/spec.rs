//! Image config to OCI runtime spec, with Docker's rules.
//!
//! ```
//! use engine_image::spec::apply_image_config;
//! let image: oci_spec::image::ImageConfiguration = serde_json::from_str(r#"{
//!   "architecture": "amd64", "os": "linux",
//!   "config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "Env": ["A=1"], "WorkingDir": "/srv"},
//!   "rootfs": {"type": "layers", "diff_ids": []}
//! }"#).unwrap();
//! let mut spec = oci_spec::runtime::Spec::default();
//! let mut config = engine_core::ContainerConfig::default();
//! config.cmd = Some(vec!["--debug".into()]);
//! config.env = vec!["A=2".into(), "B=3".into()];
//! let rootfs = tempfile::tempdir().unwrap();
//! apply_image_config(&mut spec, &image, rootfs.path(), &config)?;
//! let p = spec.process().as_ref().unwrap();
//! assert_eq!(p.args().as_ref().unwrap(), &vec!["/bin/app".to_string(), "--debug".to_string()]);
//! assert_eq!(p.cwd().to_str(), Some("/srv"));
//! let env = p.env().as_ref().unwrap();
//! assert!(env.contains(&"A=2".to_string()) && env.contains(&"B=3".to_string()));
//! assert!(env.iter().any(|e| e.starts_with("PATH=")));
//! # Ok::<(), engine_core::Error>(())
//! ```

use engine_core::{ContainerConfig, Error, Result, Signal};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Spec, User};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The PATH set when the image and the config set none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process args: Docker's rules. A `cmd` override keeps the image's
/// entrypoint; an `entrypoint` override drops the image's cmd.
pub fn resolve_args(image: &ImageConfiguration, config: &ContainerConfig) -> Result<Vec<String>> {
    let ic = image.config().as_ref();
    let (entry, cmd) = match &config.entrypoint {
        Some(ep) => (ep.clone(), config.cmd.clone().unwrap_or_default()),
        None => (
            ic.and_then(|c| c.entrypoint().clone()).unwrap_or_default(),
            config.cmd.clone().or_else(|| ic.and_then(|c| c.cmd().clone())).unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::invalid(format!("container config for image {}", config.image), "no command specified"));
    }
    Ok(args)
}

/// Env: the image's, then the config's overriding by key; a default PATH if none.
pub fn resolve_env(image: &ImageConfiguration, config: &ContainerConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut idx: HashMap<String, usize> = HashMap::new();
    let image_env = image.config().as_ref().and_then(|c| c.env().clone()).unwrap_or_default();
    for e in image_env.iter().chain(config.env.iter()) {
        let key = e.split_once('=').map(|(k, _)| k).unwrap_or(e).to_string();
        match idx.get(&key) {
            Some(&i) => out[i] = e.clone(),
            None => {
                idx.insert(key, out.len());
                out.push(e.clone());
            }
        }
    }
    if !idx.contains_key("PATH") {
        out.insert(0, DEFAULT_PATH.to_string());
    }
    out
}

fn read_in_root(rootfs: &Path, rel: &str) -> Option<String> {
    let f = crate::sys::open_file_in_root(rootfs, rel).ok()?;
    let mut s = String::new();
    f.take(16 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

/// Resolve a group name or number through the rootfs's `/etc/group`
/// (`docker run --group-add`): a number is taken as it is.
pub fn resolve_group(rootfs: &Path, group: &str) -> Result<u32> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    let groups = read_in_root(rootfs, "etc/group").unwrap_or_default();
    groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == group)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| {
            Error::invalid(
                format!("group {group:?}"),
                format!("unable to find group {group}: no matching entries in group file"),
            )
        })
}

/// Resolve `user`, `uid`, `user:group`, `uid:gid` (and mixes) through the
/// rootfs's `/etc/passwd` and `/etc/group`; supplementary groups are the
/// groups in `/etc/group` that list the user. An empty string is root.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<User> {
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_in_root(rootfs, "etc/group").unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let pw: Vec<Vec<&str>> =
        passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 4).collect();
    let gr: Vec<Vec<&str>> = group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 3).collect();
    let (uid, mut gid, name) = if u.is_empty() {
        (0, 0, Some("root".to_string()))
    } else if let Ok(uid) = u.parse::<u32>() {
        match pw.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid)) {
            Some(f) => (uid, f[3].parse().unwrap_or(0), Some(f[0].to_string())),
            None => (uid, 0, None),
        }
    } else {
        let f = pw.iter().find(|f| f[0] == u).ok_or_else(|| {
            Error::invalid(
                format!("user {user:?}"),
                format!("unable to find user {u}: no matching entries in passwd file"),
            )
        })?;
        let uid = f[2].parse().map_err(|_| Error::invalid(format!("user {user:?}"), "bad uid in /etc/passwd"))?;
        (uid, f[3].parse().unwrap_or(0), Some(u.to_string()))
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => gr.iter().find(|f| f[0] == g).and_then(|f| f[2].parse().ok()).ok_or_else(|| {
                Error::invalid(
                    format!("user {user:?}"),
                    format!("unable to find group {g}: no matching entries in group file"),
                )
            })?,
        };
    }
    let mut extra: Vec<u32> = Vec::new();
    if let Some(n) = &name {
        for f in &gr {
            let members = f.get(3).copied().unwrap_or("");
            if members.split(',').any(|m| m.trim() == n) {
                if let Ok(id) = f[2].parse::<u32>() {
                    if id != gid && !extra.contains(&id) {
                        extra.push(id);
                    }
                }
            }
        }
    }
    let mut out = User::default();
    out.set_uid(uid);
    out.set_gid(gid);
    out.set_additional_gids(if extra.is_empty() { None } else { Some(extra) });
    Ok(out)
}

/// Fill `spec.process` from the image config and the container config:
/// args, env, cwd, user (resolved in `rootfs`) and terminal. `spec.root` is
/// left as it is.
pub fn apply_image_config(
    spec: &mut Spec,
    image: &ImageConfiguration,
    rootfs: &Path,
    config: &ContainerConfig,
) -> Result<()> {
    let ic = image.config().as_ref();
    let args = resolve_args(image, config)?;
    let env = resolve_env(image, config);
    let cwd = config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| ic.and_then(|c| c.working_dir().clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(Error::invalid(format!("working dir {cwd:?}"), "must be an absolute path"));
    }
    let user_s = config.user.clone().or_else(|| ic.and_then(|c| c.user().clone())).unwrap_or_default();
    let user = resolve_user(rootfs, &user_s)?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(cwd.into());
    process.set_user(user);
    process.set_terminal(Some(config.tty));
    spec.set_process(Some(process));
    Ok(())
}

/// ExposedPorts of the image (`80/tcp`), sorted.
pub fn exposed_ports(image: &ImageConfiguration) -> Vec<String> {
    let mut v = image.config().as_ref().and_then(|c| c.exposed_ports().clone()).unwrap_or_default();
    v.sort();
    v
}

/// Volumes of the image, sorted.
pub fn volumes(image: &ImageConfiguration) -> Vec<String> {
    let mut v = image.config().as_ref().and_then(|c| c.volumes().clone()).unwrap_or_default();
    v.sort();
    v
}

/// Labels of the image.
pub fn labels(image: &ImageConfiguration) -> HashMap<String, String> {
    image.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default()
}

/// StopSignal of the image, parsed.
pub fn stop_signal(image: &ImageConfiguration) -> Result<Option<Signal>> {
    match image.config().as_ref().and_then(|c| c.stop_signal().clone()) {
        Some(s) => Ok(Some(s.parse()?)),
        None => Ok(None),
    }
}
