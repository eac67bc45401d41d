//! Conversions between the protobuf messages and `engine-core` types, and
//! the error encoding shared by the gRPC API and the launch handshake.

use crate::proto;
use engine_core::{Error, ExitStatus, ProcessRef, Stats, WireError};
use std::time::{Duration, UNIX_EPOCH};

/// An [`Error`] in a form that crosses a process boundary and comes back as
/// the same variant.
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
    Stats::default()
        .cpu_usage_ns(s.cpu_usage_ns)
        .cpu_user_ns(s.cpu_user_ns)
        .cpu_system_ns(s.cpu_system_ns)
        .memory_usage(s.memory_usage)
        .memory_limit(s.memory_limit)
        .memory_max_usage(s.memory_max_usage)
        .oom_kills(s.oom_kills)
        .pids_current(s.pids_current)
        .pids_limit(s.pids_limit)
        .io_read_bytes(s.io_read_bytes)
        .io_write_bytes(s.io_write_bytes)
}
