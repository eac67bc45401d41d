//! Engine values as CRI messages: times, the CRI config kept in labels,
//! states, label selectors, sandboxes, containers and images.

use super::{CONFIG, HANDLER, KIND, PAUSE_IMAGE, SANDBOX};
use crate::pb;
use base64::Engine as _;
use engine_core::{ContainerInfo, ContainerState, ImageInfo};
use prost::Message;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn nanos(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

pub(super) fn encode<M: Message>(m: &M) -> String {
    base64::engine::general_purpose::STANDARD.encode(m.encode_to_vec())
}

pub(super) fn decode<M: Message + Default>(info: &ContainerInfo) -> M {
    info.config
        .labels
        .get(CONFIG)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .and_then(|b| M::decode(&b[..]).ok())
        .unwrap_or_default()
}

pub(super) fn is_kind(info: &ContainerInfo, kind: &str) -> bool {
    info.config.labels.get(KIND).is_some_and(|k| k == kind)
}

pub(super) fn sandbox_state(info: &ContainerInfo) -> pb::PodSandboxState {
    match info.state {
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting => {
            pb::PodSandboxState::SandboxReady
        }
        _ => pb::PodSandboxState::SandboxNotready,
    }
}

pub(super) fn container_state(info: &ContainerInfo) -> pb::ContainerState {
    match info.state {
        ContainerState::Created => pb::ContainerState::ContainerCreated,
        ContainerState::Running | ContainerState::Paused | ContainerState::Restarting => {
            pb::ContainerState::ContainerRunning
        }
        ContainerState::Exited | ContainerState::Dead => pb::ContainerState::ContainerExited,
        ContainerState::Removing => pb::ContainerState::ContainerUnknown,
        _ => pb::ContainerState::ContainerUnknown,
    }
}

pub(super) fn selector_matches(sel: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub(super) fn pod_sandbox(info: &ContainerInfo) -> pb::PodSandbox {
    let cfg: pb::PodSandboxConfig = decode(info);
    pb::PodSandbox {
        id: info.id.clone(),
        metadata: cfg.metadata,
        state: sandbox_state(info) as i32,
        created_at: nanos(Some(info.created)),
        labels: cfg.labels,
        annotations: cfg.annotations,
        runtime_handler: info.config.labels.get(HANDLER).cloned().unwrap_or_default(),
    }
}

pub(super) fn cri_container(info: &ContainerInfo) -> pb::Container {
    let cfg: pb::ContainerConfig = decode(info);
    pb::Container {
        id: info.id.clone(),
        pod_sandbox_id: info.config.labels.get(SANDBOX).cloned().unwrap_or_default(),
        metadata: cfg.metadata,
        image: Some(pb::ImageSpec { image: info.image_id.clone(), ..Default::default() }),
        image_ref: info.image_id.clone(),
        state: container_state(info) as i32,
        created_at: nanos(Some(info.created)),
        labels: cfg.labels,
        annotations: cfg.annotations,
        image_id: info.image_id.clone(),
    }
}

pub(super) fn cri_image(info: &ImageInfo) -> pb::Image {
    let user = info.config.config().as_ref().and_then(|c| c.user().clone()).unwrap_or_default();
    let (uid, username) = match user.split(':').next().unwrap_or("") {
        "" => (None, String::new()),
        u => match u.parse::<i64>() {
            Ok(n) => (Some(pb::Int64Value { value: n }), String::new()),
            Err(_) => (None, u.to_string()),
        },
    };
    pb::Image {
        id: info.id.clone(),
        repo_tags: info.repo_tags.clone(),
        repo_digests: info.repo_digests.clone(),
        size: info.size,
        uid,
        username,
        spec: Some(pb::ImageSpec { image: info.id.clone(), ..Default::default() }),
        pinned: info.repo_tags.iter().any(|t| t == PAUSE_IMAGE || t.ends_with(PAUSE_IMAGE)),
    }
}
