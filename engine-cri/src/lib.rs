//! # engine-cri
//!
//! A Kubernetes CRI v1 server (`RuntimeService` and `ImageService`) over the
//! engine's [`LifecycleManager`] and [`ImageStore`]: kubelet drives a node's
//! engine through it as it drives containerd's CRI plugin or CRI-O.
//!
//! The gRPC types are generated (tonic, prost) from the published CRI v1
//! definitions, `k8s.io/cri-api` `pkg/apis/runtime/v1/api.proto` (Apache-2.0),
//! vendored as `proto/api.proto`; [`pb`] holds them, clients included.
//!
//! ## A separate binary, not a mode of `engine-lifecycled`
//! `engine-cri` is its own binary (and this library), holding the manager
//! in-process as `engined` does. Why: CRI is a front end, like the Docker API,
//! with its own protocol, its own socket and its own release cadence (the CRI
//! version follows Kubernetes); keeping it out of `engine-lifecycled` keeps
//! the manager free of Kubernetes concepts (pods, sandboxes, log paths),
//! and lets a node run the CRI server without `engined`. Restart safety
//! comes from the tiers below: containers are held by their shims and
//! recorded by the manager, and every CRI fact (sandbox config, container
//! config, owning sandbox) is stored as labels on the engine's containers,
//! so a restarted server reads everything back from the manager and keeps
//! no state of its own.
//!
//! ## Sandboxes
//! A pod sandbox is an engine container running a pause process: the
//! built-in image [`PAUSE_IMAGE`] (made at start from the host's static
//! busybox, so no pause image is pulled) runs `sleep` under the engine's
//! init (`engine-init`, which forwards SIGTERM, so a sandbox stops at
//! once). It holds the pod's network namespace: a loopback-only namespace
//! of its own, or the host's for `hostNetwork` pods. The pod's containers
//! join it (`container:<sandbox>` network mode), so they reach each other
//! on `127.0.0.1`, and share its `/etc/resolv.conf`, written from the
//! sandbox config's DNS config, and `/etc/hosts`.
//!
//! ## Not done yet (refused, never ignored)
//! Pod networking through CNI (a non-host pod gets loopback only), port
//! mappings other than a `hostNetwork` pod's identity mappings, shared PID
//! and IPC namespaces, security contexts beyond `readonly_rootfs` and
//! `run_as_user`/`run_as_group`, devices, streaming (Exec, Attach,
//! PortForward), stats, `UpdateContainerResources`, `ReopenContainerLog`
//! (these answer `Unimplemented`).
//!
//! ## Logs
//! A container whose sandbox has a `log_directory` and that has a
//! `log_path` logs through the engine's `cri` log driver
//! ([`engine_core::logs::CRI`]): the shim writes
//! `<RFC 3339 time> <stdout|stderr> <P|F> <line>` lines to
//! `<log_directory>/<log_path>`, so logs keep flowing while the CRI server
//! is down or restarting.
#![deny(missing_docs)]

mod service;

pub use service::{CriServer, PAUSE_IMAGE};

/// The CRI v1 types, server traits and clients generated from `api.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("runtime.v1");
}

/// The runtime name [`pb::VersionResponse`] reports.
pub const RUNTIME_NAME: &str = "engine";
/// The CRI version this server speaks.
pub const CRI_VERSION: &str = "v1";
