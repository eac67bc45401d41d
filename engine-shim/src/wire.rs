//! Conversions between the protobuf messages and `engine-core` types, and
//! the error encoding shared by the gRPC API and the launch handshake.

use crate::proto;
use engine_core::{Error, ExitStatus, ProcessRef, Stats};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// An [`Error`] in a form that crosses a process boundary and comes back as
/// the same variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireError {
    kind: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    millis: u64,
}

fn static_kind(s: &str) -> &'static str {
    match s {
        "container" => "container",
        "exec" => "exec",
        "process" => "process",
        "shim" => "shim",
        "state dir" => "state dir",
        _ => "object",
    }
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        let mut w = WireError {
            kind: e.kind_name().into(),
            object: String::new(),
            id: String::new(),
            message: String::new(),
            millis: 0,
        };
        match e {
            Error::NotFound { kind, id } => {
                w.object = (*kind).into();
                w.id = id.clone();
            }
            Error::Conflict { kind, id, reason } => {
                w.object = (*kind).into();
                w.id = id.clone();
                w.message = reason.clone();
            }
            Error::InvalidInput { what, reason } | Error::Unavailable { what, reason } => {
                w.object = what.clone();
                w.message = reason.clone();
            }
            Error::Timeout { what, after } => {
                w.object = what.clone();
                w.millis = after.as_millis() as u64;
            }
            Error::Runtime { runtime, message } => {
                w.object = runtime.clone();
                w.message = message.clone();
            }
            Error::Registry { reference, message } => {
                w.object = reference.clone();
                w.message = message.clone();
            }
            Error::Io { context, source } => {
                w.object = context.clone();
                w.message = source.to_string();
                w.millis = source.raw_os_error().unwrap_or(0) as u64;
            }
            Error::Unsupported(m) | Error::Other(m) => w.message = m.clone(),
            other => w.message = other.to_string(),
        }
        w
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        match w.kind.as_str() {
            "not_found" => Error::NotFound { kind: static_kind(&w.object), id: w.id },
            "conflict" => Error::Conflict { kind: static_kind(&w.object), id: w.id, reason: w.message },
            "invalid_input" => Error::InvalidInput { what: w.object, reason: w.message },
            "unavailable" => Error::Unavailable { what: w.object, reason: w.message },
            "timeout" => Error::Timeout { what: w.object, after: Duration::from_millis(w.millis) },
            "runtime" => Error::Runtime { runtime: w.object, message: w.message },
            "registry" => Error::Registry { reference: w.object, message: w.message },
            "io" => {
                let src = if w.millis > 0 {
                    let e = std::io::Error::from_raw_os_error(w.millis as i32);
                    std::io::Error::new(e.kind(), w.message)
                } else {
                    std::io::Error::other(w.message)
                };
                Error::Io { context: w.object, source: src }
            }
            "unsupported" => Error::Unsupported(w.message),
            _ => Error::Other(w.message),
        }
    }
}

/// An engine error as a gRPC status: a matching code, the display text as
/// message, and the [`WireError`] JSON as details.
pub(crate) fn to_status(e: &Error) -> tonic::Status {
    use tonic::Code;
    let code = match e {
        Error::NotFound { .. } => Code::NotFound,
        Error::Conflict { .. } => Code::FailedPrecondition,
        Error::InvalidInput { .. } => Code::InvalidArgument,
        Error::Unavailable { .. } => Code::Unavailable,
        Error::Timeout { .. } => Code::DeadlineExceeded,
        Error::Unsupported(_) => Code::Unimplemented,
        _ => Code::Internal,
    };
    let details = serde_json::to_vec(&WireError::from(e)).unwrap_or_default();
    tonic::Status::with_details(code, e.to_string(), details.into())
}

/// A gRPC status back into an engine error. Statuses without our details
/// (transport failures: the shim is gone) become [`Error::Unavailable`].
pub(crate) fn from_status(id: &str, s: tonic::Status) -> Error {
    if let Ok(w) = serde_json::from_slice::<WireError>(s.details()) {
        return w.into();
    }
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            Error::unavailable(format!("shim of container {id}"), s.message().to_string())
        }
        _ => Error::Other(format!("shim of container {id}: {}", s.message())),
    }
}

pub(crate) fn exit_to_msg(e: &ExitStatus) -> proto::ExitMsg {
    let nanos = e.at.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
    proto::ExitMsg { code: e.code, at_unix_nanos: nanos }
}

pub(crate) fn exit_from_msg(m: &proto::ExitMsg) -> ExitStatus {
    ExitStatus { code: m.code, at: UNIX_EPOCH + Duration::from_nanos(m.at_unix_nanos.max(0) as u64) }
}

pub(crate) fn process_ref(exec_id: &str) -> ProcessRef {
    if exec_id.is_empty() {
        ProcessRef::Init
    } else {
        ProcessRef::Exec(exec_id.to_string())
    }
}

pub(crate) fn exec_id(p: &ProcessRef) -> String {
    p.exec_id().unwrap_or_default().to_string()
}

pub(crate) fn stats_to_msg(s: &Stats) -> proto::StatsReply {
    proto::StatsReply {
        cpu_usage_ns: s.cpu_usage_ns,
        cpu_user_ns: s.cpu_user_ns,
        cpu_system_ns: s.cpu_system_ns,
        memory_usage: s.memory_usage,
        memory_limit: s.memory_limit,
        memory_max_usage: s.memory_max_usage,
        oom_kills: s.oom_kills,
        pids_current: s.pids_current,
        pids_limit: s.pids_limit,
        io_read_bytes: s.io_read_bytes,
        io_write_bytes: s.io_write_bytes,
    }
}

pub(crate) fn stats_from_msg(s: proto::StatsReply) -> Stats {
    Stats {
        cpu_usage_ns: s.cpu_usage_ns,
        cpu_user_ns: s.cpu_user_ns,
        cpu_system_ns: s.cpu_system_ns,
        memory_usage: s.memory_usage,
        memory_limit: s.memory_limit,
        memory_max_usage: s.memory_max_usage,
        oom_kills: s.oom_kills,
        pids_current: s.pids_current,
        pids_limit: s.pids_limit,
        io_read_bytes: s.io_read_bytes,
        io_write_bytes: s.io_write_bytes,
    }
}
