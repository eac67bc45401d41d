//! Errors and JSON payloads across the wire: an `engine_core::Error` becomes a
//! `tonic::Status` with a JSON body in its details, and back into the same variant.

use engine_core::{Error, WireError};
use serde::{de::DeserializeOwned, Serialize};
use tonic::{Code, Status};

/// An engine error as a gRPC status.
pub(crate) fn to_status(e: Error) -> Status {
    let code = match e {
        Error::NotFound { .. } => Code::NotFound,
        Error::Conflict { .. } => Code::FailedPrecondition,
        Error::InvalidInput { .. } => Code::InvalidArgument,
        Error::Unavailable { .. } => Code::Unavailable,
        Error::Timeout { .. } => Code::DeadlineExceeded,
        Error::Unsupported(_) => Code::Unimplemented,
        _ => Code::Internal,
    };
    let details = serde_json::to_vec(&WireError::from(&e)).unwrap_or_default();
    Status::with_details(code, e.to_string(), details.into())
}

/// A gRPC status as an engine error (the same variant when the server sent one).
pub(crate) fn from_status(s: Status) -> Error {
    if let Ok(w) = serde_json::from_slice::<WireError>(s.details()) {
        return w.into();
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
    use std::time::Duration;
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
