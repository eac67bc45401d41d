//! Between Docker's JSON and the engine's types: request bodies checked
//! and read ([`create`]: a create body into a [`ContainerConfig`]), and the
//! engine's records shown as dockerd shows them ([`containers`]: `ps`,
//! `inspect`, networks, mounts; [`images`]: `images`, `image inspect`,
//! `history`). Every function is re-exported here, so
//! `engine_daemon::convert::container_config` names it wherever it lives.

use engine_api::models::*;
use engine_core::network::{EndpointInfo, HostPorts, PortBinding, Protocol, PublishedPort};
use engine_core::security::{DeviceMapping, SecurityOptions, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
use engine_core::{
    CgroupnsMode, ContainerConfig, ContainerInfo, ContainerState, Error, ImageInfo, LogSpec, MountSpec, NetworkMode,
    Resources, RestartPolicy, Result, Signal,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod containers;
pub mod create;
pub mod images;

use containers::unix;
pub use containers::*;
pub use create::*;
pub use images::*;

/// Docker's "zero" time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Parse a create body, naming the field on a type error (`HostConfig.Memory: invalid type ...`).
pub fn parse_create_body(body: &[u8]) -> Result<ContainerConfigBody> {
    parse_body(body, "container config")
}

/// Parse any JSON body, naming the field on a type error.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::invalid(what, "the request body is empty; a JSON object is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() || inner.is_syntax() || inner.is_eof() {
            Error::invalid(what, format!("malformed JSON: {inner}"))
        } else {
            Error::invalid(format!("field {path}"), inner.to_string())
        }
    })
}

/// Docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with an optional leading `/`.
pub fn validate_name(name: &str) -> Result<String> {
    engine_core::lifecycle::validate_container_name(name)
}

/// Validate an image reference the way docker's parser would reject it.
pub fn validate_reference(r: &str) -> Result<()> {
    let bad = r.is_empty()
        || r.len() > 512
        || r.chars().any(|c| c.is_whitespace() || c.is_control())
        || r.starts_with(['/', ':', '@', '-', '.'])
        || r.ends_with(['/', ':', '@'])
        || r.contains("//")
        || r.chars().any(|c| !(c.is_ascii_alphanumeric() || "._-/:@+".contains(c)));
    let (name, _) = engine_api::split_tag(r.split('@').next().unwrap_or(r));
    let upper = name.rsplit_once('/').map(|(_, last)| last).unwrap_or(name).chars().any(|c| c.is_ascii_uppercase());
    if bad || upper {
        return Err(Error::invalid(
            "reference format",
            format!("invalid reference format: {r:?} (repository name must be lowercase, no spaces)"),
        ));
    }
    Ok(())
}
