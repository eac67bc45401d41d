//! `process.terminal`: a pty made in the container, its master sent over the
//! `--console-socket` (SCM_RIGHTS) as runc does, its slave made the stdio.

use engine_core::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Connect to the console socket (in the parent, before clone).
pub fn connect(path: &std::path::Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Error::io(format!("connect to console socket {}", path.display()), e))?;
    Ok(s.into())
}

/// Send an fd over a connected unix socket, with `name` as the payload.
pub fn send_fd(sock: RawFd, fd: RawFd, name: &str) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| Error::io("send the pty master over the console socket", e.into()))?;
    Ok(())
}

/// Open a pty from the container's `/dev/ptmx`, send the master over `sock`,
/// and return the slave and its path.
pub fn create_pty(sock: RawFd, size: Option<(u16, u16)>) -> Result<(OwnedFd, PathBuf)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("open /dev/ptmx in the container", e.into()))?;
    nix::pty::grantpt(&master).map_err(|e| Error::io("grantpt", e.into()))?;
    nix::pty::unlockpt(&master).map_err(|e| Error::io("unlockpt", e.into()))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| Error::io("ptsname", e.into()))?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ with a valid winsize.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&name)
        .map_err(|e| Error::io(format!("open pty slave {name}"), e))?;
    send_fd(sock, master.as_raw_fd(), "/dev/ptmx")?;
    let master_fd = master.into_raw_fd();
    // SAFETY: we own master_fd; closing our copy (the receiver has its own).
    drop(unsafe { OwnedFd::from_raw_fd(master_fd) });
    Ok((slave.into(), PathBuf::from(name)))
}

use std::os::unix::fs::OpenOptionsExt;

/// Make `slave` the stdio and controlling terminal of the calling process (after setsid).
pub fn make_stdio(slave: &OwnedFd) -> Result<()> {
    let fd = slave.as_raw_fd();
    for target in 0..3 {
        // SAFETY: dup2 on valid fds.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(Error::io("dup2 the pty slave", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: TIOCSCTTY on a tty fd.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::io("set the controlling terminal", std::io::Error::last_os_error()));
    }
    Ok(())
}
