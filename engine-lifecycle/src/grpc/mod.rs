//! The gRPC service (tonic over a unix socket) and its client.

pub(crate) mod client;
pub(crate) mod server;
pub(crate) mod wire;

/// Generated protobuf types and service stubs (`proto/lifecycle.proto`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("engine.lifecycle.v1");
}
