//! # engine-volume
//!
//! Volume drivers behind [`engine_core::VolumeDriver`]. [`LocalDriver`] is
//! docker's `local` driver: each volume is a directory
//! `<root>/<name>/_data` with its record `<root>/<name>/volume.json`
//! (written atomically; a volume appears by one rename of a fully made
//! directory and disappears by one rename before its data is deleted, so a
//! crash never leaves half a volume). Docker's `type`/`device`/`o` options
//! mount a device on `_data` (a tmpfs, or a bind of a host directory) for
//! the first user and unmount it after the last.
//!
//! Users are counted in memory: whoever owns the containers (the lifecycle
//! manager) mounts each container's volumes again when it starts, so the
//! count survives a restart.
//!
//! ```no_run
//! use engine_core::{VolumeCreate, VolumeDriver};
//! # async fn demo() -> engine_core::Result<()> {
//! let local = engine_volume::LocalDriver::open("/var/lib/engine/volumes")?;
//! let v = local.create(VolumeCreate::named("pgdata").label("app", "db")).await?;
//! let host_path = local.mount(&v.name, "container-id").await?;
//! # let _ = host_path;
//! local.unmount(&v.name, "container-id").await?;
//! local.remove("pgdata").await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod local;
mod mountinfo;

pub use local::LocalDriver;
