//! The fork server: one `engine-shim` process a [`Launcher`](crate::Launcher)
//! keeps running, from which every shim it launches is forked.
//!
//! A shim started by `exec` pays, per container, for loading the binary:
//! the dynamic loader's work, and the relocated data of the binary and its
//! libraries (about 70 KiB written by the loader, private to each process).
//! Forked from one process that already did that, every shim shares those
//! pages (copy-on-write, never written again), and a launch costs a fork
//! instead of an `exec`.
//!
//! Protocol: the server's stdin is a unix stream socket to its launcher. For
//! each shim, the launcher sends one byte with one descriptor attached
//! (`SCM_RIGHTS`): the shim's end of a fresh socket pair, which becomes the
//! new shim's stdin and stdout, so the rest of the launch (request in, one
//! reply line out) is the same as for a shim started by `exec`. The server
//! forks, the child starts a session of its own and forks again (the shim is
//! nobody's child but its subreaper's, as after `detach`), and the server
//! reaps the intermediate process. End of stdin (the launcher went away) ends
//! the server; shims already forked do not notice.

use std::os::fd::{AsRawFd, BorrowedFd};

/// The argument that makes `engine-shim` a fork server.
pub(crate) const ARG: &str = "--fork-server";

/// Serve fork requests on stdin until it ends; returns only in a new shim,
/// detached, its stdin and stdout connected to its launcher.
///
/// Must run before any thread exists (the process forks).
pub(crate) fn serve() {
    let _ = std::env::set_current_dir("/");
    resolve_lazy_symbols();
    loop {
        let conn = match crate::server::recv_fd_msg(0) {
            Ok(Some(fd)) => fd,
            Ok(None) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // End of stdin: the launcher went away.
            Err(_) => std::process::exit(0),
        };
        use nix::sys::wait::waitpid;
        use nix::unistd::{fork, setsid, ForkResult};
        // SAFETY: this process never starts a thread.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let _ = setsid();
                // SAFETY: still single-threaded.
                match unsafe { fork() } {
                    // SAFETY: _exit ends the intermediate process at once, running no destructor.
                    Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
                    Ok(ForkResult::Child) => {}
                    // SAFETY: as above; the launcher sees its connection end without a reply.
                    Err(_) => unsafe { libc::_exit(1) },
                }
                // The new shim: the connection replaces the control socket as stdin, and is stdout.
                // SAFETY: dup2 of a valid descriptor onto 0 and 1.
                unsafe {
                    libc::dup2(conn.as_raw_fd(), 0);
                    libc::dup2(conn.as_raw_fd(), 1);
                }
                drop(conn);
                forget_arg();
                return;
            }
            Ok(ForkResult::Parent { child }) => {
                drop(conn);
                let _ = waitpid(child, None);
            }
            // The launcher sees the connection end without a reply.
            Err(_) => drop(conn),
        }
    }
}

/// Make the symbol lookup done on first use of the kernel's random source
/// (`dlsym` of `getrandom`, for random names and hash keys) here, once: every
/// shim forked afterwards inherits the answer instead of repeating the
/// dynamic loader's search. The lookups a shim's first thread makes are left
/// to it: warming them up here meant a thread in the server, and every shim
/// then held about 38 KiB more PSS (measured with 30 shims; most likely its
/// blocking thread reusing the server's cached thread stack and copying the
/// pages the server had touched).
fn resolve_lazy_symbols() {
    let _ = std::collections::hash_map::RandomState::new();
    let _ = engine_core::random_hex64();
}

/// Blank this process's arguments after the program name in its command line
/// (`/proc/<pid>/cmdline`, what `ps` shows): a shim is not a fork server.
fn forget_arg() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command name in parentheses start at field 3; arg_start
    // and arg_end are fields 48 and 49 (proc(5)).
    let Some((_, rest)) = stat.rsplit_once(')') else { return };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (Some(Ok(start)), Some(Ok(end))) =
        (f.get(45).map(|v| v.parse::<usize>()), f.get(46).map(|v| v.parse::<usize>()))
    else {
        return;
    };
    if start == 0 || end <= start {
        return;
    }
    // SAFETY: start..end is this process's own argument area (the strings
    // argv points to, on the initial stack), readable and writable; only
    // the bytes after the program name's terminating NUL are zeroed, so
    // every argv string stays NUL-terminated.
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, end - start);
        if let Some(nul) = area.iter().position(|b| *b == 0) {
            area[nul..].fill(0);
        }
    }
}

/// The launcher's side: send `fd` (a new shim's connection) over `ctl`.
pub(crate) async fn send_fd(ctl: &tokio::net::UnixStream, fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd.as_raw_fd()];
    ctl.async_io(tokio::io::Interest::WRITABLE, || {
        let iov = [std::io::IoSlice::new(b"F")];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(ctl.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT, None)
            .map(|_| ())
            .map_err(std::io::Error::from)
    })
    .await
}
