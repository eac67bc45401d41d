//! `linux.namespaces`: which to create (clone flags) and which to join (setns).

use engine_core::{Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

/// The clone flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(0x80),
    }
}

/// The `/proc/<pid>/ns/<name>` file name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join: its type and an open handle on it.
#[derive(Debug)]
pub struct Join {
    /// The namespace type.
    pub typ: LinuxNamespaceType,
    /// Where it came from (for messages).
    pub path: PathBuf,
    /// The open namespace file.
    pub fd: OwnedFd,
}

/// The namespace plan of a container: new ones as clone flags, existing ones opened.
#[derive(Debug)]
pub struct NsPlan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join, in config order.
    pub join: Vec<Join>,
}

impl Default for NsPlan {
    fn default() -> Self {
        NsPlan { new: CloneFlags::empty(), join: Vec::new() }
    }
}

impl NsPlan {
    /// Validate and open the namespaces of a config. Duplicate types are an
    /// error; paths are opened now so a missing one fails before clone.
    pub fn new(list: &[LinuxNamespace]) -> Result<Self> {
        let mut plan = NsPlan::default();
        let mut seen = CloneFlags::empty();
        for ns in list {
            let f = flag(ns.typ());
            if seen.contains(f) {
                return Err(Error::invalid(
                    "linux.namespaces",
                    format!("namespace {:?} listed twice", proc_name(ns.typ())),
                ));
            }
            seen |= f;
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    let file = std::fs::File::open(p)
                        .map_err(|e| Error::io(format!("open {} namespace {}", proc_name(ns.typ()), p.display()), e))?;
                    plan.join.push(Join { typ: ns.typ(), path: p.clone(), fd: file.into() });
                }
                _ => plan.new |= f,
            }
        }
        if plan.joined(LinuxNamespaceType::User).is_some() && !plan.new.is_empty() {
            // New namespaces would belong to the host's user namespace, where the
            // container's root has no capabilities to set them up.
            return Err(Error::Unsupported(
                "a user namespace joined by path together with new namespaces (join them all, or create them all)"
                    .into(),
            ));
        }
        Ok(plan)
    }

    /// True when a namespace of this type is created or joined.
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t)) || self.join.iter().any(|j| j.typ == t)
    }

    /// True when the parent must join the namespaces before clone: a new user
    /// namespace cannot be left to join namespaces of the host's user namespace.
    pub fn parent_joins(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWUSER)
            && self.join.iter().any(|j| !matches!(j.typ, LinuxNamespaceType::Pid | LinuxNamespaceType::User))
    }

    /// Join the non-pid namespaces in the calling (parent) process, returning
    /// what it needs to come back with [`NsPlan::restore`].
    pub fn join_in_parent(&self) -> Result<Vec<Join>> {
        join_in_parent(&self.join)
    }

    /// Return to the namespaces saved by [`NsPlan::join_in_parent`].
    pub fn restore(saved: &[Join]) -> Result<()> {
        saved.iter().rev().try_for_each(setns)
    }

    /// The joined namespace of a type, if any.
    pub fn joined(&self, t: LinuxNamespaceType) -> Option<&Join> {
        self.join.iter().find(|j| j.typ == t)
    }
}

/// True when `path` is the same namespace as the calling process's own of type `t`.
pub fn is_host(t: LinuxNamespaceType, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mine = format!("/proc/self/ns/{}", proc_name(t));
    match (std::fs::metadata(path), std::fs::metadata(mine)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Bring the loopback interface `lo` up in the calling process's network
/// namespace (`SIOCSIFFLAGS` with `IFF_UP`), as runc and crun do in a new
/// network namespace: processes that talk to themselves over 127.0.0.1 work.
pub fn loopback_up() -> Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::io("socket to set up the loopback interface", e.into()))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS on our socket with a valid ifreq naming "lo".
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr as *mut libc::ifreq) } != 0 {
        return Err(Error::io("read the flags of lo", std::io::Error::last_os_error()));
    }
    // SAFETY: the flags member of the union, just filled in by the kernel.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS on our socket with the ifreq read above.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr as *mut libc::ifreq) } != 0 {
        return Err(Error::io("bring lo up", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Join every namespace of `joins` but pid and user in the calling process
/// (a clone then starts inside them), returning what it needs to come back
/// with [`NsPlan::restore`]. On an error it has already come back.
pub fn join_in_parent(joins: &[Join]) -> Result<Vec<Join>> {
    let mut saved = Vec::new();
    for j in joins.iter().filter(|j| !matches!(j.typ, LinuxNamespaceType::Pid | LinuxNamespaceType::User)) {
        let own = PathBuf::from(format!("/proc/self/ns/{}", proc_name(j.typ)));
        let file = match std::fs::File::open(&own) {
            Ok(f) => f,
            Err(e) => {
                let _ = NsPlan::restore(&saved);
                return Err(Error::io(format!("open {}", own.display()), e));
            }
        };
        if let Err(e) = setns(j) {
            let _ = NsPlan::restore(&saved);
            return Err(e);
        }
        saved.push(Join { typ: j.typ, path: own, fd: file.into() });
    }
    Ok(saved)
}

/// `setns` into one namespace.
pub fn setns(j: &Join) -> Result<()> {
    nix::sched::setns(j.fd.as_fd(), flag(j.typ))
        .map_err(|e| Error::io(format!("join {} namespace {}", proc_name(j.typ), j.path.display()), e.into()))
}

/// Open the namespaces of a running process, for `exec`: every type whose
/// inode differs from ours, user first so the rest can be joined with its caps.
pub fn of_process(pid: i32) -> Result<Vec<Join>> {
    use std::os::unix::fs::MetadataExt;
    let order = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::Mount,
    ];
    let mut out = Vec::new();
    for t in order {
        let name = proc_name(t);
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let mine = format!("/proc/self/ns/{name}");
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&mine)) else { continue };
        if a.ino() == b.ino() && a.dev() == b.dev() {
            continue;
        }
        let file = std::fs::File::open(&theirs).map_err(|e| Error::io(format!("open {}", theirs.display()), e))?;
        out.push(Join { typ: t, path: theirs, fd: file.into() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_flags_and_errors() {
        let list: Vec<LinuxNamespace> =
            serde_json::from_str(r#"[{"type":"pid"},{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"}]"#)
                .unwrap();
        let p = NsPlan::new(&list).unwrap();
        assert_eq!(p.new, CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS);
        assert_eq!(p.join.len(), 1);
        assert!(p.has(LinuxNamespaceType::Network));
        let dup: Vec<LinuxNamespace> = serde_json::from_str(r#"[{"type":"pid"},{"type":"pid"}]"#).unwrap();
        assert!(NsPlan::new(&dup).unwrap_err().to_string().contains("pid"));
        let missing: Vec<LinuxNamespace> =
            serde_json::from_str(r#"[{"type":"uts","path":"/nonexistent/ns"}]"#).unwrap();
        assert!(NsPlan::new(&missing).unwrap_err().to_string().contains("/nonexistent/ns"));
        assert!(serde_json::from_str::<Vec<LinuxNamespace>>(r#"[{"type":"bogus"}]"#)
            .unwrap_err()
            .to_string()
            .contains("bogus"));
    }
}
