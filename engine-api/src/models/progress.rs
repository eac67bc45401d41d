//! Progress streams: the JSON lines of pull, push, load and build.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `errorDetail` in a progress message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Message.
    #[serde(default)]
    pub message: String,
}

/// `progressDetail` in a progress message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressDetail {
    /// Bytes done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Bytes in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// One message of a pull, push, load or import progress stream (Docker's JSONMessage).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressMessage {
    /// Status text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Layer or image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A pre-rendered progress bar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Byte counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    /// Free text (load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Extra data (push: `{"Tag","Digest","Size"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<Value>,
    /// Error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Error detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
}

impl ProgressMessage {
    /// A message with only a status.
    pub fn status(s: impl Into<String>) -> Self {
        ProgressMessage { status: Some(s.into()), ..Default::default() }
    }
    /// An error message.
    pub fn error(s: impl Into<String>) -> Self {
        let s = s.into();
        ProgressMessage { error: Some(s.clone()), error_detail: Some(ErrorDetail { message: s }), ..Default::default() }
    }
}
