//! Errors and JSON payloads across the wire: an `engine_core::Error` becomes a
//! `tonic::Status` with a JSON body in its details, and back into the same variant.

use engine_core::Error;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::time::Duration;
use tonic::{Code, Status};

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireError {
    NotFound { object: String, id: String },
    Conflict { object: String, id: String, reason: String },
    InvalidInput { what: String, reason: String },
    Unavailable { what: String, reason: String },
    Timeout { what: String, after_ms: u64 },
    Runtime { runtime: String, message: String },
    Registry { reference: String, message: String },
    Unsupported { message: String },
    Other { message: String },
}

/// Known object kinds (the error type wants a `&'static str`).
fn static_kind(k: &str) -> &'static str {
    const KINDS: &[&str] = &[
        "container",
        "image",
        "exec",
        "volume",
        "network",
        "shim",
        "layer",
        "blob",
        "manifest",
        "snapshot",
        "tag",
        "container name",
        "process",
        "object",
    ];
    KINDS.iter().find(|x| **x == k).copied().unwrap_or("object")
}

/// An engine error as a gRPC status.
pub(crate) fn to_status(e: Error) -> Status {
    let msg = e.to_string();
    let (code, w) = match e {
        Error::NotFound { kind, id } => (Code::NotFound, WireError::NotFound { object: kind.into(), id }),
        Error::Conflict { kind, id, reason } => {
            (Code::FailedPrecondition, WireError::Conflict { object: kind.into(), id, reason })
        }
        Error::InvalidInput { what, reason } => (Code::InvalidArgument, WireError::InvalidInput { what, reason }),
        Error::Unavailable { what, reason } => (Code::Unavailable, WireError::Unavailable { what, reason }),
        Error::Timeout { what, after } => {
            (Code::DeadlineExceeded, WireError::Timeout { what, after_ms: after.as_millis() as u64 })
        }
        Error::Runtime { runtime, message } => (Code::Internal, WireError::Runtime { runtime, message }),
        Error::Registry { reference, message } => (Code::Internal, WireError::Registry { reference, message }),
        Error::Unsupported(message) => (Code::Unimplemented, WireError::Unsupported { message }),
        other => (Code::Internal, WireError::Other { message: other.to_string() }),
    };
    let details = serde_json::to_vec(&w).unwrap_or_default();
    Status::with_details(code, msg, details.into())
}

/// A gRPC status as an engine error (the same variant when the server sent one).
pub(crate) fn from_status(s: Status) -> Error {
    if let Ok(w) = serde_json::from_slice::<WireError>(s.details()) {
        return match w {
            WireError::NotFound { object, id } => Error::NotFound { kind: static_kind(&object), id },
            WireError::Conflict { object, id, reason } => Error::Conflict { kind: static_kind(&object), id, reason },
            WireError::InvalidInput { what, reason } => Error::InvalidInput { what, reason },
            WireError::Unavailable { what, reason } => Error::Unavailable { what, reason },
            WireError::Timeout { what, after_ms } => Error::Timeout { what, after: Duration::from_millis(after_ms) },
            WireError::Runtime { runtime, message } => Error::Runtime { runtime, message },
            WireError::Registry { reference, message } => Error::Registry { reference, message },
            WireError::Unsupported { message } => Error::Unsupported(message),
            WireError::Other { message } => Error::Other(message),
        };
    }
    match s.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled => {
            Error::unavailable("engine-lifecycled", s.message().to_string())
        }
        Code::NotFound => Error::not_found("object", s.message().to_string()),
        Code::InvalidArgument => Error::invalid("request", s.message().to_string()),
        _ => Error::Other(format!("engine-lifecycled: {}", s.message())),
    }
}

/// Encode a value as JSON bytes.
pub(crate) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("engine types encode as JSON")
}

/// Decode JSON bytes (a bad payload is an invalid-argument status).
pub(crate) fn dec<T: DeserializeOwned>(what: &str, b: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(b).map_err(|e| Status::invalid_argument(format!("bad {what} JSON: {e}")))
}

/// Decode JSON bytes on the client side.
pub(crate) fn dec_client<T: DeserializeOwned>(what: &str, b: &[u8]) -> engine_core::Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Other(format!("bad {what} JSON from engine-lifecycled: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn errors_round_trip() {
        for e in [
            Error::not_found("container", "web"),
            Error::conflict("container", "abc", "is running"),
            Error::invalid("memory limit", "-1 is negative"),
            Error::Timeout { what: "x".into(), after: Duration::from_millis(1500) },
        ] {
            let text = e.to_string();
            let kind = e.kind_name();
            let back = from_status(to_status(e));
            assert_eq!(back.to_string(), text);
            assert_eq!(back.kind_name(), kind);
        }
    }
}
