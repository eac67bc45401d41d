//! The channel between `engine-runc` and the container's init: a
//! `SOCK_SEQPACKET` socketpair, one message per packet, so an error in the
//! init comes back to `create` with its message.

use engine_core::{Error, Result};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// A message on the sync channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Parent to init: cgroup joined and id maps written; go on.
    Go,
    /// Parent to init: the init is in its cgroup now (sent after `Go`, so the
    /// slow first cgroup migration overlaps with the init's mounts).
    CgroupJoined,
    /// Init to parent: namespaces and mounts ready, run the runtime-side hooks.
    RunHooks,
    /// Parent to init: hooks done; the payload is the state JSON for the container-side hooks.
    HooksDone(String),
    /// Init to parent: everything is set up; waiting for start.
    Ready,
    /// Parent to init (`create`): `state.json` is written; wait for start now.
    Saved,
    /// Init to parent: the seccomp user-notification listener rides along as
    /// `SCM_RIGHTS` (see [`SyncSocket::send_with_fd`]), for the agent at `listenerPath`.
    SeccompListener,
    /// Parent to init (`run` without a fifo): exec the user process now.
    Start,
    /// Either way: a failure, with its message.
    Error(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        let (tag, body): (u8, &str) = match self {
            Msg::Go => (b'G', ""),
            Msg::CgroupJoined => (b'C', ""),
            Msg::RunHooks => (b'H', ""),
            Msg::HooksDone(s) => (b'D', s),
            Msg::Ready => (b'R', ""),
            Msg::Saved => (b'W', ""),
            Msg::SeccompListener => (b'L', ""),
            Msg::Start => (b'S', ""),
            Msg::Error(s) => (b'E', s),
        };
        let mut v = Vec::with_capacity(1 + body.len());
        v.push(tag);
        v.extend_from_slice(body.as_bytes());
        v
    }
    fn decode(b: &[u8]) -> Result<Msg> {
        let body = || String::from_utf8_lossy(&b[1..]).into_owned();
        Ok(match b.first() {
            Some(b'G') => Msg::Go,
            Some(b'C') => Msg::CgroupJoined,
            Some(b'H') => Msg::RunHooks,
            Some(b'D') => Msg::HooksDone(body()),
            Some(b'R') => Msg::Ready,
            Some(b'W') => Msg::Saved,
            Some(b'L') => Msg::SeccompListener,
            Some(b'S') => Msg::Start,
            Some(b'E') => Msg::Error(body()),
            _ => return Err(Error::Other(format!("sync: unexpected message {:?}", String::from_utf8_lossy(b)))),
        })
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct SyncSocket(OwnedFd);

/// Make a connected pair (close-on-exec).
pub fn pair() -> Result<(SyncSocket, SyncSocket)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::io("socketpair for the init sync channel", e.into()))?;
    Ok((SyncSocket(a), SyncSocket(b)))
}

impl SyncSocket {
    /// Send one message.
    pub fn send(&self, m: &Msg) -> Result<()> {
        let buf = m.encode();
        loop {
            let e = match nix::sys::socket::send(self.0.as_raw_fd(), &buf, nix::sys::socket::MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(e) => std::io::Error::from(e),
            };
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io("sync: send to the init", e));
            }
        }
    }
    /// Send one message carrying a file descriptor (`SCM_RIGHTS`).
    pub fn send_with_fd(&self, m: &Msg, fd: RawFd) -> Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let buf = m.encode();
        let iov = [std::io::IoSlice::new(&buf)];
        let fds = [fd];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        loop {
            match sendmsg::<()>(self.0.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::io("sync: send a file descriptor", e.into())),
            }
        }
    }
    /// Receive one message; `None` when the other end closed.
    pub fn recv(&self) -> Result<Option<Msg>> {
        self.recv_flags(0).map(|(m, _)| m)
    }
    /// Receive one message and the file descriptor it carries, if any.
    pub fn recv_with_fd(&self) -> Result<(Option<Msg>, Option<OwnedFd>)> {
        self.recv_flags(0)
    }
    /// Receive a message if one is waiting (`None` if none or closed).
    pub fn try_recv(&self) -> Option<Msg> {
        self.recv_flags(libc::MSG_DONTWAIT).ok().and_then(|(m, _)| m)
    }
    fn recv_flags(&self, flags: libc::c_int) -> Result<(Option<Msg>, Option<OwnedFd>)> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::FromRawFd;
        let mut buf = vec![0u8; 1 << 16];
        let mut reset_seen = false;
        loop {
            let mut space = nix::cmsg_space!([RawFd; 1]);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let flags = MsgFlags::from_bits_truncate(flags) | MsgFlags::MSG_CMSG_CLOEXEC;
            let (n, fd) = match recvmsg::<()>(self.0.as_raw_fd(), &mut iov, Some(&mut space), flags) {
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs().map_err(|e| Error::io("sync: control message", e.into()))? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: the kernel just installed this fd for us.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                if fd.is_none() {
                                    fd = Some(owned);
                                }
                            }
                        }
                    }
                    (msg.bytes, fd)
                }
                Err(nix::Error::EINTR) => continue,
                // A peer that exits with unread packets of ours makes the kernel
                // report ECONNRESET once, ahead of the packets it sent before
                // exiting (an init's error message): read on to get them.
                Err(nix::Error::ECONNRESET) if !reset_seen => {
                    reset_seen = true;
                    continue;
                }
                Err(e) => return Err(Error::io("sync: receive from the init", e.into())),
            };
            if n == 0 {
                return Ok((None, None));
            }
            return Msg::decode(&buf[..n]).map(|m| (Some(m), fd));
        }
    }
    /// The raw fd.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_message_sent_before_the_peer_went_is_read_after_a_reset() {
        // The init sends its error and exits without reading what we sent it:
        // the kernel then reports ECONNRESET once before the error message.
        let (parent, init) = pair().unwrap();
        parent.send(&Msg::Go).unwrap();
        init.send(&Msg::Error("RLIMIT_NOFILE: too high".into())).unwrap();
        drop(init);
        assert_eq!(parent.recv().unwrap(), Some(Msg::Error("RLIMIT_NOFILE: too high".into())));
        assert_eq!(parent.recv().unwrap(), None);
    }

    #[test]
    fn round_trip() {
        let (a, b) = pair().unwrap();
        for m in [Msg::Go, Msg::Ready, Msg::HooksDone("{\"id\":1}".into()), Msg::Error("boom".into())] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        let (r, _w) = nix::unistd::pipe().unwrap();
        a.send_with_fd(&Msg::SeccompListener, r.as_raw_fd()).unwrap();
        let (m, fd) = b.recv_with_fd().unwrap();
        assert_eq!(m, Some(Msg::SeccompListener));
        assert!(fd.is_some_and(|f| f.as_raw_fd() != r.as_raw_fd()));
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
