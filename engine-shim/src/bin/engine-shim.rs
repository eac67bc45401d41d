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
//!   once no client has been connected for a moment, drops the page-table
//!   entries of clean read-only file mappings and trims its heap).

use engine_core::LaunchRequest;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

fn reply_and_close_stdout(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    drop(out);
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 swaps the launcher's pipe for /dev/null.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

fn redirect(fd: i32, file: &std::fs::File) {
    // SAFETY: dup2 of valid fds.
    unsafe { libc::dup2(file.as_raw_fd(), fd) };
}

/// Leave the launcher: fork, new session, fork again; only the grandchild
/// returns. Runs before any thread exists.
fn detach() {
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: single-threaded here (no runtime started yet).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            let _ = waitpid(child, None);
            std::process::exit(0);
        }
        Ok(ForkResult::Child) => {}
        Err(e) => {
            reply_and_close_stdout(&engine_shim::serve::launch_reply(Err(engine_core::Error::io(
                "fork the shim",
                e.into(),
            ))));
            std::process::exit(1);
        }
    }
    let _ = setsid();
    // SAFETY: still single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Child) => {}
        Err(_) => unsafe { libc::_exit(1) },
    }
}

fn main() {
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("engine-shim {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let mut input = Vec::new();
    let req: LaunchRequest = match std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&input).map_err(|e| format!("launch request on stdin: {e}")))
    {
        Ok(r) => r,
        Err(e) => {
            let err = engine_core::Error::invalid("launch request", e);
            reply_and_close_stdout(&engine_shim::serve::launch_reply(Err(err)));
            std::process::exit(2);
        }
    };
    drop(input);
    // Whatever the launcher leaked to us (fds without CLOEXEC) is not ours
    // to keep open for the container's lifetime.
    // SAFETY: plain syscall; nothing above 2 is in use yet.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    detach();
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        redirect(0, &null);
        redirect(2, &null);
    }
    if let Some(path) = std::env::var_os("ENGINE_SHIM_LOG") {
        if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            redirect(2, &f);
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .init();
        }
    }
    // Keep little free memory at the top of the heap: `malloc_trim` then
    // gives back all of it when the shim goes idle.
    // SAFETY: mallopt with integer arguments, before any other thread exists.
    unsafe { libc::mallopt(libc::M_TOP_PAD, 16 * 1024) };
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let err = engine_core::Error::io("start the shim's event loop", e);
            reply_and_close_stdout(&engine_shim::serve::launch_reply(Err(err)));
            std::process::exit(1);
        }
    };
    let runtime = engine_shim::serve::runtime_for(&req.runtime);
    let r = rt.block_on(engine_shim::serve::run(req, runtime, |r| {
        reply_and_close_stdout(&engine_shim::serve::launch_reply(r));
    }));
    if let Err(e) = r {
        tracing::error!("shim: {e}");
    }
    // Don't wait for leftover tasks (attach streams) to wind down.
    std::process::exit(0);
}
