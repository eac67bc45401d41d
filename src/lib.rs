//! The engine facade (being built).
pub use engine_core as core;
