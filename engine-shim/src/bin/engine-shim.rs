//! `engine-shim`: the per-container shim process.
//!
//! Started by `engine_shim::Launcher`: reads a JSON `LaunchRequest` on
//! stdin, detaches (double fork, new session), becomes child subreaper,
//! creates the container through the runtime, writes one JSON reply line
//! to stdout and closes it, then serves gRPC on `<state_dir>/shim.sock`.
//!
//! Environment:
//! - `ENGINE_SHIM_LOG=<file>`: the shim's own debug log (default: none).
//! - `ENGINE_SHIM_NO_TRIM=1`: keep idle memory mapped (by default the shim,
//!   once its connections have been quiet for a moment, even with a client
//!   still connected, drops the page-table entries of clean read-only file
//!   mappings and trims its heap).

fn main() {
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("engine-shim {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    engine_shim::serve::shim_main(engine_shim::serve::runtime_for)
}
