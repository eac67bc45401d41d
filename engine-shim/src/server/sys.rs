//! The few raw syscalls the shim needs: child status, pidfds, console
//! sockets (SCM_RIGHTS) and terminal size.

use engine_core::{ConsoleSize, Error, Pid, Result};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Exit code of a `siginfo` from `waitid`: the code, or 128 + signal.
fn code_of(info: &libc::siginfo_t) -> i32 {
    // SAFETY: filled by a successful waitid with WEXITED.
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => status,
        _ => 128 + status,
    }
}

/// The pid of some exited child, without reaping it; `None` when none has exited.
pub(crate) fn peek_exited() -> Option<Pid> {
    // SAFETY: zeroed siginfo is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes into the siginfo we own.
    let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    if r != 0 {
        return None;
    }
    // SAFETY: waitid succeeded.
    let pid = unsafe { info.si_pid() };
    (pid > 0).then_some(pid)
}

/// Reap the exited child `pid`; its exit code (128 + signal when killed).
pub(crate) fn reap(pid: Pid) -> Option<i32> {
    // SAFETY: as above.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes into the siginfo we own.
    let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG) };
    // SAFETY: si_pid is read only after waitid filled the struct (r == 0 is checked first).
    if r != 0 || unsafe { info.si_pid() } != pid {
        return None;
    }
    Some(code_of(&info))
}

/// A pidfd for `pid` (readable once the process has exited).
pub(crate) fn pidfd_open(pid: Pid) -> std::io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?)
}

/// Set a terminal's size.
pub(crate) fn set_winsize(fd: &impl AsFd, size: ConsoleSize) -> std::io::Result<()> {
    let ws = rustix::termios::Winsize { ws_row: size.height, ws_col: size.width, ws_xpixel: 0, ws_ypixel: 0 };
    Ok(rustix::termios::tcsetwinsize(fd, ws)?)
}

/// Receive the fd a runtime sends over a console socket (SCM_RIGHTS).
pub(crate) async fn recv_console(listener: &tokio::net::UnixListener, path: &Path) -> Result<OwnedFd> {
    let (stream, _) =
        listener.accept().await.map_err(|e| Error::io(format!("accept on console socket {}", path.display()), e))?;
    loop {
        stream.readable().await.map_err(|e| Error::io(format!("console socket {}", path.display()), e))?;
        match stream.try_io(tokio::io::Interest::READABLE, || recv_fd(stream.as_raw_fd())) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(Error::io(format!("receive pty master on {}", path.display()), e)),
        }
    }
}

fn recv_fd(sock: RawFd) -> std::io::Result<OwnedFd> {
    recv_fd_msg(sock)?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no fd in console socket message"))
}

/// Receive one message on a unix socket and the first descriptor it
/// carries (`SCM_RIGHTS`; any others are closed): `Ok(None)` for a message
/// without one, `UnexpectedEof` at the end of the stream.
pub(crate) fn recv_fd_msg(sock: RawFd) -> std::io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed this fd for us.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    if msg.bytes == 0 && got.is_none() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(got)
}

/// Put an fd in non-blocking mode.
pub(crate) fn set_nonblocking(fd: &impl AsFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let b = fd.as_fd();
    let fl = OFlag::from_bits_truncate(fcntl(b, FcntlArg::F_GETFL)?);
    fcntl(b, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Give back memory the shim no longer needs once it is idle: the
/// page-table entries of read-only file mappings (its own code and read-only
/// data, and those of the shared libraries), then free heap pages
/// (`malloc_trim`).
///
/// Only private, non-writable, file-backed mappings that hold no private
/// page are dropped with `MADV_DONTNEED`: their pages are clean page-cache
/// pages, shared by every shim, that fault back in from the file when that
/// code runs again. Mappings with a private page (relocated data) and
/// writable ones are never touched, so nothing the process wrote is lost.
///
/// The one exception is the main thread's stack below the frame that runs
/// this: those pages held frames of calls that have returned (start-up
/// parsed the launch request and spec, spawned the runtime), so nothing
/// lives there; they come back as zero pages when calls go that deep again.
pub(crate) fn trim_memory() {
    tracing::debug!("trimming idle memory");
    trim_mappings();
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
}

fn trim_mappings() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize)> = None;
    // Resident private pages, and swapped-out ones: either disqualifies.
    let mut anon_free = false;
    let mut swap_free = false;
    let mut targets: Vec<(usize, usize)> = Vec::new();
    let mut stack: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            if let (Some(r), true) = (current.take(), anon_free && swap_free) {
                targets.push(r);
            }
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
            let path = f.nth(3);
            if path == Some("[stack]") {
                stack = range
                    .split_once('-')
                    .and_then(|(a, b)| Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?)));
            }
            if !(perms == "r-xp" || perms == "r--p") || !path.is_some_and(|p| p.starts_with('/')) {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else { continue };
            if let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                current = Some((start, end));
                anon_free = false;
                swap_free = false;
            }
        } else if current.is_some() {
            let zero = |v: &str| v.trim().trim_end_matches("kB").trim() == "0";
            if let Some(v) = line.strip_prefix("Anonymous:") {
                anon_free = zero(v);
            } else if let Some(v) = line.strip_prefix("Swap:") {
                swap_free = zero(v);
            }
        }
    }
    if let (Some(r), true) = (current, anon_free && swap_free) {
        targets.push(r);
    }
    drop(smaps);
    for (start, end) in targets {
        // SAFETY: a private, read-only file mapping that holds no
        // private (written) page: dropping its pages only makes the next
        // use fault them back in from the file.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
    if let Some((low, high)) = stack {
        trim_stack(low, high);
    }
}

/// Drop the calling thread's stack pages below the running frame: for a
/// blocking-pool thread as it exits. glibc keeps an exited thread's stack
/// mapped for reuse, and what the thread had touched (the runtime's create,
/// 24 KiB) would stay resident in every idle shim.
pub(crate) fn trim_thread_stack() {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; it is
    // read with pthread_attr_getstack and destroyed before leaving.
    let bounds = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return;
        }
        let (mut addr, mut size) = (std::ptr::null_mut(), 0usize);
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (r == 0).then(|| (addr as usize, addr as usize + size))
    };
    if let Some((low, high)) = bounds {
        trim_stack(low, high);
    }
}

/// How much of the stack below the current frame stays untouched: more than
/// the red zone (128 bytes) and the frames of the calls made from here (a
/// `madvise`). Whatever lies deeper is dead until a call goes that deep
/// again, so keeping more only keeps dead pages resident.
const STACK_KEEP: usize = 4 * 1024;

/// Drop the main thread's stack pages below the current frame (less
/// [`STACK_KEEP`]), when the current frame lies in `low..high` (the calling
/// thread's stack).
#[inline(never)]
fn trim_stack(low: usize, high: usize) {
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    if !(low..high).contains(&sp) {
        return; // not this thread's stack
    }
    let end = sp.saturating_sub(STACK_KEEP) & !(page_size() - 1);
    if end > low {
        // SAFETY: the range lies below the current frame by more than the red
        // zone, so it holds only frames of returned calls; MADV_DONTNEED makes
        // its pages zero-fill on next use.
        unsafe { libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED) };
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}
