//! The shim process's `main`: launch handshake, detaching, event loop.

use crate::serve::{launch_reply, run};
use engine_core::LaunchRequest;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};

/// Standard descriptor `fd` as a `File` that is never closed. std's
/// `stdin()`/`stdout()` would keep a buffer (8 KiB, 1 KiB) for the shim's life.
fn std_fd(fd: i32) -> ManuallyDrop<std::fs::File> {
    // SAFETY: fds 0 and 1 are open for the whole process (replaced by
    // /dev/null with dup2, never closed), and ManuallyDrop never closes them.
    ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) })
}

fn reply_and_close_stdout(line: &str) {
    let _ = std_fd(1).write_all(line.as_bytes());
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
            reply_and_close_stdout(&launch_reply(Err(engine_core::Error::io("fork the shim", e.into()))));
            std::process::exit(1);
        }
    }
    let _ = setsid();
    // SAFETY: still single-threaded.
    match unsafe { fork() } {
        // SAFETY: _exit ends the intermediate process at once, running no destructor or atexit handler.
        Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Child) => {}
        // SAFETY: as above.
        Err(_) => unsafe { libc::_exit(1) },
    }
}

/// The whole life of a shim process, for the `engine-shim` binary and for
/// custom shim binaries that host their own [`Runtime`](engine_core::Runtime)
/// (a wrapper adding isolation, a VM-based runtime...):
///
/// closes inherited descriptors, detaches (fork, new session, fork: it is not
/// its launcher's child; with the argument `--fork-server`, the process is
/// instead a [`Launcher`](crate::Launcher)'s fork server and each shim is
/// forked from it, then detached alike), becomes child subreaper, builds a single-threaded
/// event loop, and only then reads the JSON [`LaunchRequest`] on stdin (so a
/// launcher may start shims ahead of need: see [`Launcher`](crate::Launcher));
/// creates the container through `runtime(&req.runtime)`, writes the one-line
/// reply to stdout and closes it, serves until the container is deleted, then
/// exits. A launcher that goes away before sending a request (end of stdin)
/// ends the shim.
/// Must be called before any thread exists (first thing in `main`).
///
/// A custom shim binary's whole `main`:
///
/// ```no_run
/// engine_shim::serve::shim_main(engine_shim::serve::runtime_for);
/// ```
pub fn shim_main(runtime: impl FnOnce(&engine_core::RuntimeBinary) -> std::sync::Arc<dyn engine_core::Runtime>) -> ! {
    // Whatever the launcher leaked to us (fds without CLOEXEC) is not ours
    // to keep open for the container's lifetime.
    // SAFETY: plain syscall; nothing above 2 is in use yet.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if std::env::args_os().nth(1).is_some_and(|a| a == crate::fork_server::ARG) {
        // A launcher's fork server: this returns in each shim it forks, detached.
        crate::fork_server::serve();
    } else {
        detach();
    }
    let _ = std::env::set_current_dir("/");
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").ok();
    if let Some(null) = &null {
        redirect(2, null);
    }
    if let Some(path) = std::env::var_os("ENGINE_SHIM_LOG") {
        if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            redirect(2, &f);
            #[cfg(feature = "log-file")]
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
    // One arena: the runtime's work on a blocking thread (the create) would
    // otherwise leave a second arena of its own behind, 40 KiB resident.
    // SAFETY: as above.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // A shim watches a handful of descriptors: a small event buffer (tokio's
    // default holds 1024 events, 12 KiB kept for the shim's whole life).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_io_events_per_tick(64)
        // A blocking thread (the runtime's create, start, exec) ends soon after
        // its work, before the shim trims its idle memory, and leaves its
        // stack's pages behind.
        .thread_keep_alive(std::time::Duration::from_millis(50))
        .on_thread_stop(crate::server::trim_thread_stack)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let err = engine_core::Error::io("start the shim's event loop", e);
            reply_and_close_stdout(&launch_reply(Err(err)));
            std::process::exit(1);
        }
    };
    // Ready: now wait for the request (a launcher may have started us early).
    let mut input = Vec::new();
    let req: LaunchRequest = match std_fd(0)
        .read_to_end(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&input).map_err(|e| format!("launch request on stdin: {e}")))
    {
        Ok(r) => r,
        Err(e) => {
            let err = engine_core::Error::invalid("launch request", e);
            reply_and_close_stdout(&launch_reply(Err(err)));
            std::process::exit(2);
        }
    };
    drop(input);
    if let Some(null) = &null {
        redirect(0, null);
    }
    drop(null);
    let runtime = runtime(&req.runtime);
    let r = rt.block_on(run(req, runtime, |r| {
        reply_and_close_stdout(&launch_reply(r));
    }));
    if let Err(e) = r {
        tracing::error!("shim: {e}");
    }
    // Don't wait for leftover tasks (attach streams) to wind down.
    std::process::exit(0);
}
