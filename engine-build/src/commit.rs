//! `docker commit`: an image of a container's changes, with the run config
//! it records.

use crate::builder::apply_changes;
use engine_core::{CommitRequest, ImageInfo, ImageStore, LifecycleManager, Result};
use serde_json::{json, Map, Value};

/// The run config a commit of a container records (`docker commit`): its
/// image's (`image`, the image config JSON), with the container's overrides
/// of cmd, entrypoint (Docker's rule: an entrypoint override drops the
/// image's cmd), env, user, working dir and labels.
pub fn container_run_config(image: &Value, c: &engine_core::ContainerConfig) -> Value {
    let mut cfg: Map<String, Value> = image.get("config").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(ep) = &c.entrypoint {
        cfg.insert("Entrypoint".into(), json!(ep));
        if c.cmd.is_none() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &c.cmd {
        cfg.insert("Cmd".into(), json!(cmd));
    }
    if !c.env.is_empty() {
        let mut env: Vec<String> =
            cfg.get("Env").and_then(|e| serde_json::from_value(e.clone()).ok()).unwrap_or_default();
        for e in &c.env {
            let k = e.split_once('=').map(|x| x.0).unwrap_or(e);
            env.retain(|x| x.split_once('=').map(|x| x.0).unwrap_or(x) != k);
            env.push(e.clone());
        }
        cfg.insert("Env".into(), json!(env));
    }
    if let Some(u) = c.user.as_ref().filter(|u| !u.is_empty()) {
        cfg.insert("User".into(), json!(u));
    }
    if let Some(w) = c.working_dir.as_ref().filter(|w| !w.is_empty()) {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if !c.labels.is_empty() {
        let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in &c.labels {
            labels[k] = json!(v);
        }
    }
    Value::Object(cfg)
}

/// What [`commit_container`] records besides the container's changes.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CommitOptions {
    /// Tag the image.
    pub tag: Option<String>,
    /// Dockerfile lines applied to the config (`CMD`, `ENTRYPOINT`, `ENV`,
    /// `EXPOSE`, `LABEL`, `ONBUILD`, `USER`, `VOLUME`, `WORKDIR`,
    /// `STOPSIGNAL`), as `docker commit --change`.
    pub changes: Vec<String>,
    /// Docker container-config fields (`Cmd`, `Env`, ...) that replace the
    /// container's before the changes apply (the body of `POST /commit`).
    pub config: Option<Map<String, Value>>,
    /// The commit message.
    pub comment: Option<String>,
    /// The author.
    pub author: Option<String>,
    /// Freeze a running container while its changes are read.
    pub pause: bool,
}

engine_core::__setters!(CommitOptions { tag: Option<String>, changes: Vec<String>, config: Option<Map<String, Value>>, comment: Option<String>, author: Option<String>, pause: bool });

/// `docker commit`: an image of container `id`'s changes (its root
/// filesystem's upper dir as one layer) on top of its image, with its run
/// config ([`container_run_config`]) and the options applied.
pub async fn commit_container(
    manager: &dyn LifecycleManager,
    images: &dyn ImageStore,
    id: &str,
    options: CommitOptions,
) -> Result<ImageInfo> {
    let info = manager.inspect(id).await?;
    let image = images.config_json(&info.image_id).await?;
    let mut config = container_run_config(&image, &info.config);
    for (k, v) in options.config.iter().flatten() {
        const FIELDS: [&str; 9] =
            ["Cmd", "Entrypoint", "Env", "Labels", "User", "WorkingDir", "ExposedPorts", "Volumes", "StopSignal"];
        if FIELDS.contains(&k.as_str()) && !v.is_null() {
            config[k] = v.clone();
        }
    }
    apply_changes(&mut config, &options.changes)?;
    let paused = options.pause && info.state == engine_core::ContainerState::Running;
    if paused {
        manager.pause(&info.id).await?;
    }
    let made = images
        .commit(
            CommitRequest::default()
                .rootfs(Some(info.id.clone()))
                .config(Some(config))
                .created_by(info.args.join(" "))
                .comment(options.comment)
                .author(options.author)
                .tag(options.tag),
        )
        .await;
    if paused {
        if let Err(e) = manager.resume(&info.id).await {
            tracing::warn!(id = %info.id, error = %e, "could not resume a container paused for commit");
        }
    }
    made
}
