//! `engine-shim`: the per-container shim process.
//!
//! Started by `engine_shim::Launcher`: reads a JSON `LaunchRequest` on
//! stdin, detaches (double fork, new session), becomes child subreaper,
//! creates the container through the runtime, writes one JSON reply line
//! to stdout and closes it, then serves gRPC on `<state_dir>/shim.sock`.
//! With the argument `--fork-server` (how the launcher starts it by
//! default) it instead serves fork requests on stdin, and each shim is forked
//! from it, then runs as above.
//!
//! Environment:
//! - `ENGINE_SHIM_LOG=<file>`: the shim's own debug log (default: none).
//! - `ENGINE_SHIM_NO_TRIM=1`: keep idle memory mapped (by default the shim,
//!   once its connections have been quiet for a moment, even with a client
//!   still connected, drops the page-table entries of clean read-only file
//!   mappings and trims its heap).

/// Set (to the caller's `GLIBC_TUNABLES`, `-` for none) in the shim's
/// environment when it re-executes itself with glibc's thread cache off.
const TUNED: &str = "ENGINE_SHIM_MALLOC_TUNED";
/// glibc's per-thread cache of freed chunks (up to 7 of each size up to
/// 1 KiB) is never given back, not even by `malloc_trim`: what start-up freed
/// last stays resident, scattered over the heap, for the shim's whole life
/// (about 12 KiB per shim). A shim makes few allocations once running.
const NO_TCACHE: &str = "glibc.malloc.tcache_count=0";

/// Run the shim with glibc's thread cache off: glibc reads its tunables only
/// at start-up, so the first start sets `GLIBC_TUNABLES` and re-executes the
/// same binary (same pid, arguments and descriptors); the second restores the
/// caller's environment, so the runtime and hooks it starts see it unchanged.
/// If the re-execution fails, the shim runs on as it is.
fn without_malloc_cache() {
    if !cfg!(target_env = "gnu") {
        return;
    }
    match std::env::var_os(TUNED) {
        Some(orig) => {
            // Single-threaded: nothing else reads the environment yet.
            if orig == "-" {
                std::env::remove_var("GLIBC_TUNABLES");
            } else {
                std::env::set_var("GLIBC_TUNABLES", orig);
            }
            std::env::remove_var(TUNED);
        }
        None => {
            use std::os::unix::process::CommandExt;
            let orig = std::env::var_os("GLIBC_TUNABLES");
            let mut tunables = orig.clone().unwrap_or_default();
            if !tunables.is_empty() {
                tunables.push(":");
            }
            tunables.push(NO_TCACHE);
            let args: Vec<_> = std::env::args_os().skip(1).collect();
            // `exec` returns only when it failed.
            // The binary's own path, not /proc/self/exe: the process's name
            // (`comm`, what ps and pgrep show) comes from the path executed.
            let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            let _ = std::process::Command::new(exe)
                .arg0(std::env::args_os().next().unwrap_or_default())
                .args(args)
                .env("GLIBC_TUNABLES", tunables)
                .env(TUNED, orig.unwrap_or_else(|| "-".into()))
                .exec();
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("engine-shim {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    without_malloc_cache();
    engine_shim::serve::shim_main(engine_shim::serve::runtime_for)
}
