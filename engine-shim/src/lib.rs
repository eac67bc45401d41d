//! # engine-shim
//!
//! The shim tier: one small process per container that parents it, holds
//! its stdio or pty, writes its log in Docker's json-file format, records
//! its exit on disk before reporting it, and outlives whoever launched it.
//!
//! - [`Launcher`] ([`ShimLauncher`](engine_core::ShimLauncher)) spawns the
//!   `engine-shim` binary for a container, or reconnects to a running one
//!   from its state dir.
//! - [`Client`] ([`Shim`](engine_core::Shim)) talks to one shim over gRPC on
//!   its unix socket.
//! - [`FileLogDriver`] is the default [`LogDriver`](engine_core::LogDriver) (Docker's json-file
//!   or local format, rotated); [`FifoDriver`] feeds a log plugin.
//! - [`serve`] is the shim process's side, used by the binary.
//!
//! ```no_run
//! # async fn demo() -> engine_core::Result<()> {
//! use engine_core::{ContainerId, LaunchRequest, LogConfig, ProcessRef, RuntimeBinary, Shim, ShimLauncher};
//! let launcher = engine_shim::Launcher::find()?;
//! let id = ContainerId::new("hello")?;
//! let shim = launcher
//!     .launch(
//!         LaunchRequest::new(
//!             id.clone(),
//!             "/tmp/hello/bundle",
//!             "/run/engine-shim/hello",
//!             RuntimeBinary::new("runc", "/usr/sbin/runc"),
//!         )
//!         .log(Some(LogConfig::json_file("/tmp/hello/hello-json.log").max_size(Some(10 << 20)).max_files(3)))
//!         .owner_pid(Some(std::process::id() as i32)),
//!     )
//!     .await?;
//! shim.start().await?;
//! let exit = shim.wait(&ProcessRef::Init).await?;
//! println!("exit code {}", exit.code);
//! shim.delete().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod client;
mod fork_server;
mod launcher;
mod log;
mod server;
mod shim_main;
mod state;
mod wire;

/// The generated gRPC code for `proto/shim.proto` (package `engine.shim.v1`).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("engine.shim.v1");
}

pub use client::Client;
pub use launcher::{Launcher, SHIM_BINARY};
pub use log::{open_log, FifoDriver, FileLogDriver, LineSplitter, MAX_LINE};

/// The former name of [`FileLogDriver`] (it writes Docker's local format too now).
#[deprecated(note = "renamed FileLogDriver")]
pub type JsonFileDriver = FileLogDriver;
pub use state::{
    read_address, read_exit, replace_file, write_atomic, ShimAddress, ADDRESS_FILE, EXIT_FILE, SOCKET_FILE,
};

/// The shim process's side.
pub mod serve {
    pub use crate::server::{run, run_with_log_driver};
    pub use crate::shim_main::shim_main;

    /// The runtime a shim drives for a [`LaunchRequest`](engine_core::LaunchRequest)'s
    /// [`RuntimeBinary`](engine_core::RuntimeBinary).
    pub fn runtime_for(bin: &engine_core::RuntimeBinary) -> std::sync::Arc<dyn engine_core::Runtime> {
        // This project's own runtime is partly driven in-process (see
        // `LinuxRuntime`); any other goes through its command line.
        if bin.path.file_name().is_some_and(|n| n == "engine-runc") {
            return std::sync::Arc::new(engine_runtime::LinuxRuntime::from_binary(bin));
        }
        std::sync::Arc::new(engine_runtime::OciRuntime::from_binary(bin))
    }

    /// Encode the one-line reply a new shim writes to its launcher.
    pub fn launch_reply(r: engine_core::Result<crate::ShimAddress>) -> String {
        let mut s = serde_json::to_string(&crate::launcher::LaunchReply::from_result(r)).unwrap_or_default();
        s.push('\n');
        s
    }
}
