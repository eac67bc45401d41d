//! `process.terminal`: a pty made in the container, its master sent over the
//! `--console-socket` (SCM_RIGHTS) as runc does, its slave made the stdio.

use engine_core::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
        let ws = rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let _ = rustix::termios::tcsetwinsize(&master, ws);
    }
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&name)
        .map_err(|e| Error::io(format!("open pty slave {name}"), e))?;
    send_fd(sock, master.as_raw_fd(), "/dev/ptmx")?;
    // Close our copy (the receiver has its own).
    drop(master);
    Ok((slave.into(), PathBuf::from(name)))
}

use std::os::unix::fs::OpenOptionsExt;

/// Make `slave` the stdio and controlling terminal of the calling process (after setsid).
pub fn make_stdio(slave: &OwnedFd) -> Result<()> {
    use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};
    dup2_stdin(slave)
        .and_then(|()| dup2_stdout(slave))
        .and_then(|()| dup2_stderr(slave))
        .map_err(|e| Error::io("dup2 the pty slave", e.into()))?;
    rustix::process::ioctl_tiocsctty(std::io::stdin())
        .map_err(|e| Error::io("set the controlling terminal", e.into()))?;
    Ok(())
}

/// A connected unix socket pair (close-on-exec) for a pty the runtime keeps
/// itself: the init sends the master over one end as it would over a console socket.
pub fn local_pair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::io("socketpair for the console", e.into()))
}

/// Receive one fd sent with [`send_fd`].
pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| Error::io("receive the pty master", e.into()))?;
    for c in msg.cmsgs().map_err(|e| Error::io("receive the pty master", e.into()))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: a freshly received fd that we now own.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Other("the init sent no pty master".into()))
}

/// Copies between our stdio and a pty master, with our terminal (if stdin is
/// one) in raw mode until dropped.
pub struct Proxy {
    master: std::fs::File,
    saved: Option<nix::sys::termios::Termios>,
    stdin_open: bool,
    master_open: bool,
}

impl Proxy {
    /// Take over `master`; put stdin in raw mode and copy its window size.
    pub fn new(master: OwnedFd) -> Self {
        use nix::sys::termios;
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
        }
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let _ = fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK | OFlag::O_RDWR));
        let p = Proxy { master: master.into(), saved, stdin_open: true, master_open: true };
        p.resize();
        p
    }
    /// Copy our terminal's window size to the pty.
    pub fn resize(&self) {
        if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin()) {
            let _ = rustix::termios::tcsetwinsize(&self.master, ws);
        }
    }
    /// The master, for polling.
    pub fn master(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.master.as_fd()
    }
    /// Whether stdin is still worth polling.
    pub fn stdin_open(&self) -> bool {
        self.stdin_open
    }
    /// Whether the pty is still worth polling.
    pub fn master_open(&self) -> bool {
        self.master_open
    }
    /// Copy what the pty has to stdout; false once it is closed (then it is not polled again).
    pub fn pump_out(&mut self) -> bool {
        let open = self.copy_out();
        self.master_open &= open;
        open
    }
    fn copy_out(&mut self) -> bool {
        use std::io::{Read, Write};
        let mut buf = [0u8; 8192];
        loop {
            match self.master.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }
    /// Copy what stdin has to the pty.
    pub fn pump_in(&mut self) {
        use std::io::{Read, Write};
        let mut buf = [0u8; 8192];
        match std::io::stdin().lock().read(&mut buf) {
            Ok(0) | Err(_) => {
                self.stdin_open = false;
                // End of input: tell the terminal (^D) as a user at a terminal would.
                let _ = self.master.write_all(&[4]);
            }
            Ok(n) => {
                let _ = self.master.write_all(&buf[..n]);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}
