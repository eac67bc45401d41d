//! The one error type every tier converts into.

use std::time::Duration;

/// A result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, on which object. Callers match on the variant; the
/// `Display` text names the object and is fit to show a user as is.
///
/// ```
/// use engine_core::Error;
/// let e = Error::not_found("container", "web1");
/// assert!(e.is_not_found());
/// assert_eq!(e.to_string(), "no such container: web1");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist.
    #[error("no such {kind}: {id}")]
    NotFound {
        /// What kind of object ("container", "image", "exec", ...).
        kind: &'static str,
        /// The id, name or reference that was asked for.
        id: String,
    },
    /// The object exists but is in a state that forbids the operation,
    /// or a name is already taken.
    #[error("conflict on {kind} {id}: {reason}")]
    Conflict {
        /// What kind of object.
        kind: &'static str,
        /// Its id or name.
        id: String,
        /// Why the operation cannot proceed.
        reason: String,
    },
    /// The caller passed a value that cannot be used.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which input was wrong (a field name, a path, a value).
        what: String,
        /// Why it is wrong.
        reason: String,
    },
    /// A component the operation needs is not reachable (a shim that died,
    /// a daemon socket that is gone, a registry that refuses connections).
    #[error("{what} unavailable: {reason}")]
    Unavailable {
        /// The component.
        what: String,
        /// Why.
        reason: String,
    },
    /// An operation did not finish in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// The OCI runtime refused or failed; `message` is the runtime's own.
    #[error("runtime {runtime} failed: {message}")]
    Runtime {
        /// The runtime's name or path.
        runtime: String,
        /// The runtime's own error message.
        message: String,
    },
    /// A registry answered with an error.
    #[error("registry error for {reference}: {message}")]
    Registry {
        /// The image reference (and digest, where known).
        reference: String,
        /// What the registry said, with its HTTP status.
        message: String,
    },
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A container stopped, or exited with another code, than the caller was
    /// waiting for (a readiness check, an expected exit code). The exit code
    /// is a value here, not a failure of the engine.
    #[error("container {id} exited{} {expected}", code.map(|c| format!(" with code {c},")).unwrap_or_default())]
    UnexpectedExit {
        /// The container's name or id.
        id: String,
        /// Its exit code, when it has exited.
        code: Option<i32>,
        /// What was expected instead ("before printing \"ready\"", "expected code 0").
        expected: String,
    },
    /// The operation is not supported by this implementation or host.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A [`Error::NotFound`].
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into() }
    }
    /// A [`Error::Conflict`].
    pub fn conflict(kind: &'static str, id: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Conflict { kind, id: id.into(), reason: reason.into() }
    }
    /// A [`Error::InvalidInput`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput { what: what.into(), reason: reason.into() }
    }
    /// A [`Error::Unavailable`].
    pub fn unavailable(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unavailable { what: what.into(), reason: reason.into() }
    }
    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
    /// True for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
    /// True for [`Error::InvalidInput`].
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidInput { .. })
    }
    /// The stable kind name of this error, used on the wire (gRPC, REST)
    /// so that a remote client can rebuild the same variant.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Unavailable { .. } => "unavailable",
            Error::Timeout { .. } => "timeout",
            Error::Runtime { .. } => "runtime",
            Error::Registry { .. } => "registry",
            Error::Io { .. } => "io",
            Error::UnexpectedExit { .. } => "unexpected_exit",
            Error::Unsupported(_) => "unsupported",
            Error::Other(_) => "other",
        }
    }
}

/// Extension for attaching context to I/O results.
pub trait IoContext<T> {
    /// Turn an `io::Error` into [`Error::Io`] with the given context.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

/// An [`Error`] in a serializable form, for transports (gRPC status details,
/// JSON bodies): the far side rebuilds the same variant, so a remote caller
/// can still match on `NotFound`, `Conflict`, ...
///
/// ```
/// use engine_core::{Error, WireError};
/// let e = Error::conflict("container", "web", "is running");
/// let json = serde_json::to_string(&WireError::from(&e)).unwrap();
/// let back: Error = serde_json::from_str::<WireError>(&json).unwrap().into();
/// assert!(back.is_conflict());
/// assert_eq!(back.to_string(), e.to_string());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)] // the fields are those of the matching `Error` variant
pub enum WireError {
    NotFound { object: String, id: String },
    Conflict { object: String, id: String, reason: String },
    InvalidInput { what: String, reason: String },
    Unavailable { what: String, reason: String },
    Timeout { what: String, after_ms: u64 },
    Runtime { runtime: String, message: String },
    Registry { reference: String, message: String },
    Io { context: String, message: String, errno: i32 },
    UnexpectedExit { id: String, code: Option<i32>, expected: String },
    Unsupported { message: String },
    Other { message: String },
}

/// Object kinds the engine names in errors (the error type holds a `&'static str`).
fn static_kind(k: &str) -> &'static str {
    const KINDS: &[&str] = &[
        "container",
        "image",
        "exec",
        "volume",
        "network",
        "endpoint",
        "port",
        "shim",
        "layer",
        "blob",
        "manifest",
        "snapshot",
        "tag",
        "container name",
        "process",
        "state dir",
        "reference",
        "object",
    ];
    KINDS.iter().find(|x| **x == k).copied().unwrap_or("object")
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::NotFound { kind, id } => WireError::NotFound { object: (*kind).into(), id: id.clone() },
            Error::Conflict { kind, id, reason } => {
                WireError::Conflict { object: (*kind).into(), id: id.clone(), reason: reason.clone() }
            }
            Error::InvalidInput { what, reason } => {
                WireError::InvalidInput { what: what.clone(), reason: reason.clone() }
            }
            Error::Unavailable { what, reason } => {
                WireError::Unavailable { what: what.clone(), reason: reason.clone() }
            }
            Error::Timeout { what, after } => {
                WireError::Timeout { what: what.clone(), after_ms: after.as_millis() as u64 }
            }
            Error::Runtime { runtime, message } => {
                WireError::Runtime { runtime: runtime.clone(), message: message.clone() }
            }
            Error::Registry { reference, message } => {
                WireError::Registry { reference: reference.clone(), message: message.clone() }
            }
            Error::Io { context, source } => WireError::Io {
                context: context.clone(),
                message: source.to_string(),
                errno: source.raw_os_error().unwrap_or(0),
            },
            Error::UnexpectedExit { id, code, expected } => {
                WireError::UnexpectedExit { id: id.clone(), code: *code, expected: expected.clone() }
            }
            Error::Unsupported(m) => WireError::Unsupported { message: m.clone() },
            Error::Other(m) => WireError::Other { message: m.clone() },
        }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        match w {
            WireError::NotFound { object, id } => Error::NotFound { kind: static_kind(&object), id },
            WireError::Conflict { object, id, reason } => Error::Conflict { kind: static_kind(&object), id, reason },
            WireError::InvalidInput { what, reason } => Error::InvalidInput { what, reason },
            WireError::Unavailable { what, reason } => Error::Unavailable { what, reason },
            WireError::Timeout { what, after_ms } => Error::Timeout { what, after: Duration::from_millis(after_ms) },
            WireError::Runtime { runtime, message } => Error::Runtime { runtime, message },
            WireError::Registry { reference, message } => Error::Registry { reference, message },
            WireError::Io { context, message, errno } => {
                let kind = std::io::Error::from_raw_os_error(errno).kind();
                let source =
                    if errno > 0 { std::io::Error::new(kind, message) } else { std::io::Error::other(message) };
                Error::Io { context, source }
            }
            WireError::UnexpectedExit { id, code, expected } => Error::UnexpectedExit { id, code, expected },
            WireError::Unsupported { message } => Error::Unsupported(message),
            WireError::Other { message } => Error::Other(message),
        }
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    #[test]
    fn every_variant_round_trips() {
        for e in [
            Error::not_found("image", "bb:latest"),
            Error::conflict("container", "abc", "is running"),
            Error::invalid("memory limit", "-1 is negative"),
            Error::unavailable("shim of container x", "connection refused"),
            Error::Timeout { what: "log line".into(), after: Duration::from_millis(1500) },
            Error::Runtime { runtime: "runc".into(), message: "exec: \"nope\": not found".into() },
            Error::Registry { reference: "127.0.0.1:5000/bb".into(), message: "401".into() },
            Error::io("open /x", std::io::Error::from_raw_os_error(2)),
            Error::UnexpectedExit { id: "web".into(), code: Some(3), expected: "expected code 0".into() },
            Error::UnexpectedExit { id: "web".into(), code: None, expected: "stopped before port 80 answered".into() },
            Error::Unsupported("systemd cgroups".into()),
            Error::Other("boom".into()),
        ] {
            let json = serde_json::to_vec(&WireError::from(&e)).unwrap();
            let back: Error = serde_json::from_slice::<WireError>(&json).unwrap().into();
            assert_eq!(back.kind_name(), e.kind_name());
            assert_eq!(back.to_string(), e.to_string());
        }
    }
}
