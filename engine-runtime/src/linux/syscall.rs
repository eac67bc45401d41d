//! The mount-related system calls behind a small trait, so unit tests can
//! record what the rootfs code would do without touching the host.

use super::mounts::{MountAttr, Target};
use engine_core::{Error, Result};
use nix::mount::{MntFlags, MsFlags};
use std::path::Path;

/// The syscalls the rootfs, mount and device code makes.
pub trait Syscall {
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// `umount2(2)`.
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()>;
    /// `mknod(2)` with an explicit mode (file type bits included) and device number.
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> Result<()>;
    /// `symlink(2)`.
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    /// `chown(2)` (not following a final symlink).
    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> Result<()>;
    /// `mount_setattr(2)` with `AT_RECURSIVE` on an opened mount point: the
    /// attributes reach every submount.
    fn mount_setattr(&self, target: &Target, attr: MountAttr) -> Result<()>;
}

/// The real syscalls.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

fn errno_err(what: String, e: nix::Error) -> Error {
    Error::io(what, std::io::Error::from_raw_os_error(e as i32))
}

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(|e| {
            errno_err(
                format!(
                    "mount {} on {} (type {}, flags {:#x}, data {:?})",
                    source.map(|s| s.display().to_string()).unwrap_or_else(|| "none".into()),
                    target.display(),
                    fstype.unwrap_or("none"),
                    flags.bits(),
                    data.unwrap_or("")
                ),
                e,
            )
        })
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        nix::mount::umount2(target, flags).map_err(|e| errno_err(format!("umount {}", target.display()), e))
    }
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> Result<()> {
        use nix::sys::stat::{mknod, Mode, SFlag};
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(Error::invalid("device path", format!("{} contains NUL", path.display())));
        }
        let (kind, perm) = (SFlag::from_bits_truncate(mode & libc::S_IFMT), Mode::from_bits_truncate(mode & 0o7777));
        mknod(path, kind, perm, dev).map_err(|e| Error::io(format!("mknod {}", path.display()), e.into()))
    }
    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| Error::io(format!("symlink {} -> {}", link.display(), target.display()), e))
    }
    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| Error::io(format!("chown {} to {uid}:{gid}", path.display()), e))
    }
    fn mount_setattr(&self, target: &Target, attr: MountAttr) -> Result<()> {
        use std::os::fd::AsFd;
        let flags = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
        mount_setattr_fd(target.as_fd(), flags, attr, 0).map_err(|e| {
            Error::io(
                format!(
                    "mount_setattr (recursive, set {:#x}, clear {:#x}) on {}",
                    attr.set,
                    attr.clear,
                    target.path().display()
                ),
                e,
            )
        })
    }
}

/// `mount_setattr(2)` on the mount open at `fd` (`AT_EMPTY_PATH` among
/// `flags`): set and clear `attr`, and with `propagation` non-zero change the
/// propagation type (`MS_PRIVATE`, ...).
pub(crate) fn mount_setattr_fd(
    fd: std::os::fd::BorrowedFd<'_>,
    flags: libc::c_uint,
    attr: MountAttr,
    propagation: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    /// The kernel's `struct mount_attr` (version 0).
    #[repr(C)]
    struct KernelMountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let a = KernelMountAttr { attr_set: attr.set, attr_clr: attr.clear, propagation, userns_fd: 0 };
    // SAFETY: mount_setattr on a descriptor the caller holds, with an empty
    // NUL-terminated path, a valid struct and its size; nothing is retained.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &a as *const KernelMountAttr,
            std::mem::size_of::<KernelMountAttr>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A syscall recorder for unit tests: records each call as a line and
/// succeeds, except for targets listed in `fail_on`.
#[cfg(test)]
#[derive(Default)]
pub struct Recorder {
    /// The recorded calls, one line each.
    pub calls: std::cell::RefCell<Vec<String>>,
}

#[cfg(test)]
impl Syscall for Recorder {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        self.calls.borrow_mut().push(format!(
            "mount {} {} {} {:#x} {}",
            source.map(|s| s.display().to_string()).unwrap_or_else(|| "-".into()),
            target.display(),
            fstype.unwrap_or("-"),
            flags.bits(),
            data.unwrap_or("-")
        ));
        Ok(())
    }
    fn umount2(&self, target: &Path, _flags: MntFlags) -> Result<()> {
        self.calls.borrow_mut().push(format!("umount {}", target.display()));
        Ok(())
    }
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> Result<()> {
        self.calls.borrow_mut().push(format!("mknod {} {:o} {dev}", path.display(), mode));
        Ok(())
    }
    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.calls.borrow_mut().push(format!("symlink {} {}", link.display(), target.display()));
        Ok(())
    }
    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        self.calls.borrow_mut().push(format!("chown {} {uid}:{gid}", path.display()));
        Ok(())
    }
    fn mount_setattr(&self, target: &Target, attr: MountAttr) -> Result<()> {
        self.calls.borrow_mut().push(format!(
            "mount_setattr {} {:#x} {:#x}",
            target.path().display(),
            attr.set,
            attr.clear
        ));
        Ok(())
    }
}
