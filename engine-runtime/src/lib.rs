//! # engine-runtime
//!
//! runc's role. Shared file: each helper adds only its own `mod` lines.
#![deny(missing_docs)]

pub mod cgroups;
pub mod seccomp;
pub mod oci;
pub use oci::{LinuxRuntime, OciRuntime};
pub mod linux;
