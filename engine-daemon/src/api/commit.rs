//! `POST /commit` (`docker commit`): a container's changes as a new image
//! layer on top of its image, with the container's run config, the
//! `changes` (Dockerfile lines) and the body's config applied.

use super::State;
use crate::convert;
use crate::http::{self as h, Query, Resp};
use engine_core::{CommitRequest, ContainerState, Error, Result};
use http::StatusCode;
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

/// The image config's `config` for a container: its image's, with the
/// container's overrides (Docker's rules: an entrypoint override drops the
/// image's cmd).
fn container_config(image: &Value, c: &engine_core::ContainerConfig) -> Value {
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

/// `POST /commit?container=..&repo=..&tag=..&comment=..&author=..&pause=..&changes=..`.
pub(crate) async fn commit(st: &State, q: &Query, body: Incoming) -> Result<Resp> {
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::invalid("query parameter container", "a container is required"))?;
    let tag = match q.get("repo").filter(|r| !r.is_empty()) {
        Some(repo) => {
            let t = format!("{repo}:{}", q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest"));
            convert::validate_reference(&t)?;
            Some(t)
        }
        None => None,
    };
    let raw = h::read_limited(body, st.config.max_json_body).await.map_err(|e| match e {
        h::BodyError::TooLarge(n) => Error::invalid("request body", format!("larger than {n} bytes")),
        h::BodyError::Read(s) => Error::invalid("request body", s),
    })?;
    let info = st.manager.inspect(container).await?;
    let image_cfg = st.images.config_json(&info.image_id).await?;
    let mut cfg = container_config(&image_cfg, &info.config);
    // The body: a container config whose set fields win.
    if let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&raw) {
        for k in ["Cmd", "Entrypoint", "Env", "Labels", "User", "WorkingDir", "ExposedPorts", "Volumes", "StopSignal"] {
            if let Some(v) = b.get(k).filter(|v| !v.is_null()) {
                cfg[k] = v.clone();
            }
        }
    }
    let changes: Vec<String> = q.all("changes").to_vec();
    engine_build::apply_changes(&mut cfg, &changes)?;
    let pause = q.get("pause").is_none_or(|p| !matches!(p, "0" | "false" | "False"));
    let paused = pause && info.state == ContainerState::Running;
    if paused {
        st.manager.pause(&info.id).await?;
    }
    let made = st
        .images
        .commit(CommitRequest {
            rootfs: Some(info.id.clone()),
            parent: None,
            config: Some(cfg),
            created_by: info.args.join(" "),
            comment: q.get("comment").filter(|c| !c.is_empty()).map(str::to_string),
            author: q.get("author").filter(|a| !a.is_empty()).map(str::to_string),
            tag: tag.clone(),
        })
        .await;
    if paused {
        if let Err(e) = st.manager.resume(&info.id).await {
            tracing::warn!(id = %info.id, error = %e, "could not resume a container paused for commit");
        }
    }
    let img = made?;
    if let Some(t) = &tag {
        st.events.image("tag", &img.id, Some(&convert::familiar(t)));
    }
    Ok(h::json(StatusCode::CREATED, &json!({ "Id": img.id })))
}
