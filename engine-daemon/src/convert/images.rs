//! The engine's images as dockerd shows them: `docker images`,
//! `docker image inspect`, `docker history`, familiar names.

use super::*;

/// `docker.io/library/bb:latest` as docker shows it: `bb:latest`.
pub fn familiar(r: &str) -> String {
    let r = r.strip_prefix("docker.io/").unwrap_or(r);
    let r = r.strip_prefix("library/").unwrap_or(r);
    r.to_string()
}

fn config_created(info: &ImageInfo) -> (i64, String) {
    match info.created {
        Some(t) => (unix(t), engine_core::time::format_rfc3339(t)),
        None => (0, ZERO_TIME.to_string()),
    }
}

/// One `docker images` entry.
pub fn image_summary(info: &ImageInfo) -> ImageSummary {
    let labels = info.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default();
    ImageSummary {
        containers: -1,
        created: config_created(info).0,
        id: info.id.clone(),
        labels: Some(labels),
        parent_id: String::new(),
        repo_digests: Some(info.repo_digests.iter().map(|d| familiar(d)).collect()),
        repo_tags: Some(info.repo_tags.iter().map(|t| familiar(t)).collect()),
        shared_size: -1,
        size: info.size as i64,
        virtual_size: info.size as i64,
    }
}

/// A run config object with the fields dockerd always shows filled in.
fn docker_run_config(mut config: Value) -> Value {
    if let Value::Object(m) = &mut config {
        for k in ["Hostname", "Domainname", "User", "WorkingDir"] {
            m.entry(k).or_insert(json!(""));
        }
        for k in ["AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce"] {
            m.entry(k).or_insert(json!(false));
        }
        for k in ["Env", "Cmd", "Entrypoint", "Volumes", "OnBuild", "Labels"] {
            m.entry(k).or_insert(Value::Null);
        }
        m.entry("Image").or_insert(json!(""));
    }
    config
}

/// `docker image inspect`. `raw` is the image config as stored
/// ([`engine_core::ImageStore::config_json`]): its `config` and
/// `container_config` carry what the OCI types drop (`Healthcheck`,
/// `OnBuild`, `Shell`, ...), so they are shown as stored.
pub fn image_inspect(info: &ImageInfo, raw: Option<&Value>) -> ImageInspect {
    let cfg = &info.config;
    let stored = |k: &str| raw.and_then(|r| r.get(k)).filter(|v| v.is_object()).cloned();
    let config = stored("config")
        .or_else(|| cfg.config().as_ref().map(|c| serde_json::to_value(c).unwrap_or_default()))
        .unwrap_or(json!({}));
    let container_config = stored("container_config").map(docker_run_config).unwrap_or(json!({}));
    let text = |k: &str| raw.and_then(|r| r.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
    ImageInspect {
        id: info.id.clone(),
        repo_tags: info.repo_tags.iter().map(|t| familiar(t)).collect(),
        repo_digests: info.repo_digests.iter().map(|d| familiar(d)).collect(),
        parent: String::new(),
        comment: text("comment"),
        created: config_created(info).1,
        container: text("container"),
        container_config,
        docker_version: text("docker_version"),
        author: cfg.author().clone().unwrap_or_default(),
        config: docker_run_config(config),
        architecture: cfg.architecture().to_string(),
        os: cfg.os().to_string(),
        size: info.size as i64,
        virtual_size: info.size as i64,
        graph_driver: json!({"Data": null, "Name": "overlay"}),
        root_fs: RootFsBody { r#type: "layers".into(), layers: cfg.rootfs().diff_ids().clone() },
        metadata: json!({"LastTagTime": ZERO_TIME}),
    }
}

/// `docker history`.
pub fn image_history(info: &ImageInfo) -> Vec<HistoryEntry> {
    let hist = info.config.history().clone().unwrap_or_default();
    let n = hist.len();
    let mut out: Vec<HistoryEntry> = hist
        .iter()
        .enumerate()
        .map(|(i, h)| HistoryEntry {
            id: if i + 1 == n { info.id.clone() } else { "<missing>".into() },
            created: h.created().as_deref().and_then(engine_core::time::parse_rfc3339).map(unix).unwrap_or(0),
            created_by: h.created_by().clone().unwrap_or_default(),
            tags: (i + 1 == n).then(|| info.repo_tags.iter().map(|t| familiar(t)).collect()),
            size: 0,
            comment: h.comment().clone().unwrap_or_default(),
        })
        .collect();
    if out.is_empty() {
        out.push(HistoryEntry {
            id: info.id.clone(),
            created: config_created(info).0,
            created_by: String::new(),
            tags: Some(info.repo_tags.iter().map(|t| familiar(t)).collect()),
            size: info.size as i64,
            comment: String::new(),
        });
    }
    out.reverse();
    out
}
