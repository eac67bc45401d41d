//! Run the runtime from a copy of its binary that nothing can write
//! (CVE-2019-5736 class, for containers that hold `CAP_SYS_PTRACE`).
//!
//! Every process the runtime clones into a container is, until it execs the
//! container's program, a copy of the runtime's own binary: its
//! `/proc/<pid>/exe`, `/proc/<pid>/map_files/*` name that binary. The
//! non-dumpable flag hides those links from a container process, unless that
//! process holds `CAP_SYS_PTRACE` in the host user namespace
//! (`--cap-add SYS_PTRACE`, `--privileged`), for which the kernel lets the
//! links through. [`reexec_sealed`] closes that case: before any container
//! work, the process re-executes itself from a detached, read-only bind mount
//! of its own binary (`open_tree(OPEN_TREE_CLONE)` +
//! `mount_setattr(MOUNT_ATTR_RDONLY)`, never attached anywhere, dissolved when
//! the descriptor closes at `execve`). Every descriptor a container can get
//! through `/proc/<pid>/exe` then lies on a read-only mount that no process
//! can reach to remount: opening it (or re-opening a read descriptor of it
//! through `/proc/self/fd/N`) for writing fails with `EROFS` (or `ETXTBSY`
//! while it runs). This is runc 1.2's idea (a private read-only mount of the
//! binary) without the overlay: one extra `execve`, no copy. Kernels without
//! `mount_setattr` (before 5.12) or callers without `CAP_SYS_ADMIN` fall back
//! to runc 1.1's way, a sealed `memfd` copy of the binary (`F_SEAL_WRITE`,
//! `F_SEAL_GROW`, `F_SEAL_SHRINK`, `F_SEAL_SEAL`), which costs one copy of the
//! binary per run.

use engine_core::{Error, Result};
use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

/// Set in the environment of the re-executed process, so that a failed
/// check after the re-exec is reported instead of looping.
const SEALED_ENV: &str = "_ENGINE_RUNTIME_SEALED";

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// How the running binary is protected from writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// The binary lies on a read-only mount (the detached bind mount made
    /// here, or a read-only filesystem).
    ReadOnlyMount,
    /// The binary is a `memfd` with write, grow and shrink seals.
    SealedMemfd,
}

/// How this process's binary (`/proc/self/exe`) is protected from writes, or
/// `None` when it is a writable host file.
pub fn current_sealing() -> Result<Option<Sealing>> {
    let fd = open_self_exe()?;
    let st = nix::sys::statvfs::fstatvfs(&fd).map_err(|e| Error::io("fstatvfs /proc/self/exe", e.into()))?;
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok(Some(Sealing::ReadOnlyMount));
    }
    // EINVAL for files without seals.
    let seals = get_seals(&fd);
    if seals >= 0 && seals & libc::F_SEAL_WRITE != 0 {
        return Ok(Some(Sealing::SealedMemfd));
    }
    Ok(None)
}

/// `F_GET_SEALS`: the seals of `fd`, or -1 (a file that cannot be sealed).
fn get_seals(fd: &impl AsFd) -> libc::c_int {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GET_SEALS).unwrap_or(-1)
}

fn open_self_exe() -> Result<OwnedFd> {
    // std opens with O_CLOEXEC.
    let f = std::fs::File::open("/proc/self/exe").map_err(|e| Error::io("open /proc/self/exe", e))?;
    Ok(f.into())
}

/// Make sure this process runs from a binary nothing can write: return at
/// once if it already does, otherwise re-execute it, with the same arguments
/// and environment, from a detached read-only bind mount of itself (or, where
/// that is not possible, a sealed `memfd` copy). Call it first thing in
/// `main`, before any thread is started, in a binary whose clones join
/// containers (it changes the environment, which needs a single thread).
/// Returns only when already sealed, or with the error that made both ways
/// fail.
pub fn reexec_sealed() -> Result<()> {
    match current_sealing()? {
        Some(_) => {
            // Not for the hooks and helpers this process starts. Called before
            // any thread exists, so changing the environment is sound.
            std::env::remove_var(SEALED_ENV);
            return Ok(());
        }
        None if std::env::var_os(SEALED_ENV).is_some() => {
            return Err(Error::Other(format!(
                "re-executed from a sealed copy ({SEALED_ENV} is set), yet /proc/self/exe is writable"
            )))
        }
        None => {}
    }
    let fd = match read_only_mount_of_self() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!("read-only bind mount of the runtime binary: {e}; using a sealed memfd copy");
            sealed_memfd_of_self()?
        }
    };
    exec_fd(&fd)
}

/// A detached bind mount of `/proc/self/exe`, made read-only, nosuid, nodev.
fn read_only_mount_of_self() -> Result<OwnedFd> {
    // SAFETY: open_tree with a NUL-terminated path; the result is a fresh fd we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(Error::io("open_tree(/proc/self/exe, OPEN_TREE_CLONE)", std::io::Error::last_os_error()));
    }
    // SAFETY: as above.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on our detached mount with a correctly sized struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(Error::io(
            "mount_setattr(MOUNT_ATTR_RDONLY) on the runtime binary",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(fd)
}

/// A `memfd` copy of `/proc/self/exe`, sealed against any change.
fn sealed_memfd_of_self() -> Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let memfd = memfd_create(c"engine-runtime", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .map_err(|e| Error::io("memfd_create for a sealed copy of the runtime binary", e.into()))?;
    let mut src = std::fs::File::from(open_self_exe()?);
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).map_err(|e| Error::io("copy the runtime binary into a memfd", e))?;
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    let seals = SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
    fcntl(&dst, FcntlArg::F_ADD_SEALS(seals))
        .map_err(|e| Error::io("seal the runtime binary's memfd copy", e.into()))?;
    Ok(OwnedFd::from(dst))
}

/// `execveat(fd, "", argv, envp + SEALED_ENV, AT_EMPTY_PATH)`: returns only on failure.
fn exec_fd(fd: &OwnedFd) -> Result<()> {
    let cstr = |s: OsString| CString::new(s.into_vec()).map_err(|_| Error::invalid("argument", "contains a NUL byte"));
    let args: Vec<CString> = std::env::args_os().map(cstr).collect::<Result<_>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(kv)
        })
        .collect::<Result<_>>()?;
    env.push(cstr(format!("{SEALED_ENV}=1").into())?);
    let argv: Vec<*const libc::c_char> =
        args.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        env.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // SAFETY: NULL-terminated arrays of NUL-terminated strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(Error::io("re-execute the runtime from its sealed copy", std::io::Error::last_os_error()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The fallback copy is the binary, byte for byte, and refuses every write.
    #[test]
    fn memfd_fallback_is_an_exact_sealed_copy() {
        let fd = sealed_memfd_of_self().unwrap();
        let seals = get_seals(&fd);
        let want = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        assert_eq!(seals & want, want);
        let mut copy = Vec::new();
        std::fs::File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap().read_to_end(&mut copy).unwrap();
        assert_eq!(copy, std::fs::read("/proc/self/exe").unwrap());
        // Re-opening for writing is allowed for a memfd; no write goes through.
        let mut w = std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let err = std::io::Write::write_all(&mut w, b"pwned").expect_err("wrote into a sealed memfd");
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    }

    /// The read-only mount of the binary refuses writes, and is nowhere in the mount table.
    #[test]
    fn read_only_mount_refuses_writes() {
        let fd = read_only_mount_of_self().unwrap();
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let err = std::fs::OpenOptions::new().append(true).open(&path).expect_err("opened for writing");
        assert!(matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)), "{err}");
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.lines().any(|l| l.split(' ').nth(4) == exe.to_str()), "{mounts}");
    }
}
