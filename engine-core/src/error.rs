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
