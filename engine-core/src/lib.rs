//! # engine-core
//!
//! The contracts between the engine's tiers, and the types they speak. Each
//! tier is a trait with a default Linux implementation in its own crate:
//!
//! | trait | role | default |
//! |---|---|---|
//! | [`Runtime`] | runc's: bundle to isolated process, then exit | `engine-runtime` |
//! | [`Shim`] / [`ShimLauncher`] | parent of one container, holds stdio, logs, exit | `engine-shim` |
//! | [`ImageStore`] | pull, push, import, export, container root filesystems | `engine-image` |
//! | [`Snapshotter`] | the storage driver: layers to a root filesystem (`overlay2`, `vfs`) | `engine-image` |
//! | [`LifecycleManager`] | containerd's: containers from create to remove | `engine-lifecycle` |
//! | [`NetworkDriver`] | networks, endpoints, published ports | `engine-network` |
//! | [`VolumeDriver`] | named volumes, mounted for containers | `engine-volume` |
//! | [`LogDriver`] / [`LogPlugins`] | where a container's output goes ([`logs`]) | `engine-shim` (json-file, local), plugins |
//! | [`Authorizer`] | allows or denies each API request and response | [`authz::ReadOnly`], `engine-plugin` |
//!
//! This crate depends on no other engine crate. OCI types come from
//! [`oci_spec`], re-exported here as [`oci`].
//!
//! ```
//! use engine_core::{ContainerId, Error, Signal};
//!
//! let id = ContainerId::new("worker-1")?;
//! let sig: Signal = "SIGTERM".parse()?;
//! assert_eq!(sig.number(), 15);
//! // A default runtime spec, as `runc spec` writes it:
//! let spec = engine_core::oci::runtime::Spec::default();
//! assert!(spec.process().is_some());
//! # Ok::<(), Error>(())
//! ```
//!
//! ## Building option structs (semver)
//!
//! Option, config and report structs that will grow (new fields for new
//! docker options) are `#[non_exhaustive]`, as are the enums of kinds,
//! states and events: outside this crate they cannot be built with a struct
//! literal (not even with `..Default::default()`), and a `match` on them
//! needs a `_` arm. One convention builds them instead: `T::default()` or
//! `T::new(required...)`, then one chained setter per field, named like the
//! field and taking the field's type; fields stay public for reading and
//! for changing in place. Serialized forms are unaffected.
//!
//! ```
//! use engine_core::{ContainerConfig, Resources, RestartPolicy};
//!
//! let config = ContainerConfig::new("busybox")
//!     .cmd(Some(vec!["sleep".into(), "60".into()]))
//!     .resources(Resources::default().memory(Some(64 << 20)))
//!     .restart(RestartPolicy::OnFailure { max_retries: 3 });
//! assert_eq!(config.image, "busybox");
//! ```
//!
//! Plain ids and values ([`ContainerId`], [`Signal`], [`ConsoleSize`],
//! [`ExitStatus`]) stay closed.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod authz;
pub mod binary;
mod error;
pub mod fs;
mod id;
pub mod image;
pub mod lifecycle;
pub mod logs;
pub mod network;
mod runtime;
pub mod security;
mod setters;
pub mod shim;
mod signal;
pub mod snapshot;
mod state;
mod stats;
mod stdio;
pub mod time;
pub mod volume;

pub use oci_spec as oci;

pub use authz::Authorizer;
pub use error::{Error, IoContext, Result, WireError};
pub use id::{random_hex64, ContainerId};
pub use image::{
    ArchiveFormat, ByteStream, CommitRequest, ImageInfo, ImageStore, Progress, ProgressSender, RegistryAuth, Removed,
    Rootfs,
};
pub use lifecycle::{
    CgroupnsMode, ContainerConfig, ContainerInfo, ContainerState, Event, EventKind, ExecConfig, ExecInfo,
    LifecycleManager, ListFilter, LogOptions, MountSpec, NetworkMode, Resources, RestartPolicy, WaitCondition,
};
pub use logs::{LogDriver, LogEntry, LogPlugins, LogSpec};
pub use network::NetworkDriver;
pub use runtime::{CreateOptions, ExecOptions, Runtime};
pub use security::{DeviceMapping, SeccompProfile, SecurityOptions};
pub use shim::{
    Attach, AttachOptions, ExecRequest, LaunchRequest, LogConfig, Output, ProcessRef, ProcessState, RuntimeBinary,
    Shim, ShimEvent, ShimLauncher,
};
pub use signal::Signal;
pub use snapshot::{PreparedSnapshot, Snapshotter};
pub use state::{ContainerStatus, ExitStatus, Pid, RuntimeState};
pub use stats::Stats;
pub use stdio::{ConsoleSize, StdStream, StdioSpec};
pub use volume::{Volume, VolumeCreate, VolumeDriver};
