//! Events (`/events`).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// `Actor` in an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventActor {
    /// Object id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Attributes (name, image, labels, exitCode, signal).
    #[serde(default)]
    pub attributes: HashMap<String, String>,
}

/// One message of `GET /events`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    /// `container`, `image`, ...
    #[serde(rename = "Type")]
    pub typ: String,
    /// `create`, `start`, `die`, `destroy`, `pull`, `tag`, ...
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    /// `local`.
    #[serde(default)]
    pub scope: String,
    /// Unix seconds.
    #[serde(default)]
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano", default)]
    pub time_nano: i64,
    /// Old-style status (= action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Old-style id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Old-style image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}
