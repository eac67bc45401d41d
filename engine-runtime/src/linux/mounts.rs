//! OCI `mounts`: option parsing and mounting one entry under the rootfs.

use super::syscall::Syscall;
use engine_core::{Error, Result};
use nix::mount::MsFlags;
use std::path::{Component, Path, PathBuf};

/// One `mounts[]` entry, parsed once in the parent before clone.
#[derive(Debug, Clone, PartialEq)]
pub struct MountPlan {
    /// The destination inside the container (absolute).
    pub destination: PathBuf,
    /// The filesystem type (`bind` for bind mounts).
    pub fstype: String,
    /// The source: a host path for binds (made absolute against the bundle), else a device or name.
    pub source: Option<PathBuf>,
    /// Flags for the first mount call (without propagation flags).
    pub flags: MsFlags,
    /// Propagation flags, applied one by one after the mount.
    pub propagation: Vec<MsFlags>,
    /// The filesystem-specific data (options the kernel flags do not cover).
    pub data: String,
    /// Recursive attributes (`rro`, `rnosuid`, ...), set on the mount and all
    /// its submounts with `mount_setattr(AT_RECURSIVE)` after it is made.
    pub recursive: MountAttr,
}

/// Attributes for `mount_setattr(2)`: the `MOUNT_ATTR_*` bits to set and to clear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttr {
    /// Bits to set.
    pub set: u64,
    /// Bits to clear.
    pub clear: u64,
}

impl MountAttr {
    /// True when no attribute is asked for.
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }
}

/// `MOUNT_ATTR_*` values (linux/mount.h).
pub(crate) mod attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    pub const ATIME_MASK: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// The recursive mount option `o` (runtime-spec: `rro`, `rrw`, `rnosuid`, ...)
/// applied to `a`; false when `o` is not one.
fn recursive_option(o: &str, a: &mut MountAttr) -> bool {
    let (set, bit) = match o {
        "rro" => (true, attr::RDONLY),
        "rrw" => (false, attr::RDONLY),
        "rnosuid" => (true, attr::NOSUID),
        "rsuid" => (false, attr::NOSUID),
        "rnodev" => (true, attr::NODEV),
        "rdev" => (false, attr::NODEV),
        "rnoexec" => (true, attr::NOEXEC),
        "rexec" => (false, attr::NOEXEC),
        "rnodiratime" => (true, attr::NODIRATIME),
        "rdiratime" => (false, attr::NODIRATIME),
        "rnosymfollow" => (true, attr::NOSYMFOLLOW),
        "rsymfollow" => (false, attr::NOSYMFOLLOW),
        "rrelatime" | "rnoatime" | "rstrictatime" => {
            // The access-time mode is one field: clear it, then set the mode.
            a.clear |= attr::ATIME_MASK;
            a.set &= !attr::ATIME_MASK;
            a.set |= match o {
                "rnoatime" => attr::NOATIME,
                "rstrictatime" => attr::STRICTATIME,
                _ => attr::RELATIME,
            };
            return true;
        }
        "rnorelatime" | "ratime" => {
            // Back to the default (relatime), as runc reads them.
            a.clear |= attr::ATIME_MASK;
            a.set &= !attr::ATIME_MASK;
            return true;
        }
        _ => return false,
    };
    if set {
        a.set |= bit;
        a.clear &= !bit;
    } else {
        a.clear |= bit;
        a.set &= !bit;
    }
    true
}

impl MountPlan {
    /// True for `bind`/`rbind` mounts.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
    /// Flags that need a remount after a bind (ro, nosuid, ...).
    pub fn remount_flags(&self) -> MsFlags {
        self.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }
}

/// Parse mount options into (set flags, cleared flags, propagation flags, data).
///
/// ```
/// use engine_runtime::linux::mounts::parse_options;
/// use nix::mount::MsFlags;
/// let (flags, prop, data) = parse_options(&["nosuid".into(), "rbind".into(), "ro".into(), "rprivate".into(), "size=65536k".into()]);
/// assert!(flags.contains(MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
/// assert_eq!(prop, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
/// assert_eq!(data, "size=65536k");
/// ```
pub fn parse_options(options: &[String]) -> (MsFlags, Vec<MsFlags>, String) {
    let mut flags = MsFlags::empty();
    let mut prop = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for o in options {
        let o = o.as_str();
        if let Some(p) = propagation_flag(o) {
            prop.push(p);
            continue;
        }
        match flag_for(o) {
            Some((clear, f)) => {
                if clear {
                    flags &= !f;
                } else {
                    flags |= f;
                }
            }
            None => {
                // crun/runc extensions that carry no kernel meaning here.
                if !matches!(o, "tmpcopyup" | "copy-symlink" | "idmap" | "ridmap") {
                    data.push(o);
                }
            }
        }
    }
    (flags, prop, data.join(","))
}

/// `(clears?, flag)` for a flag option.
fn flag_for(o: &str) -> Option<(bool, MsFlags)> {
    Some(match o {
        "defaults" => (false, MsFlags::empty()),
        "ro" => (false, MsFlags::MS_RDONLY),
        "rw" => (true, MsFlags::MS_RDONLY),
        "suid" => (true, MsFlags::MS_NOSUID),
        "nosuid" => (false, MsFlags::MS_NOSUID),
        "dev" => (true, MsFlags::MS_NODEV),
        "nodev" => (false, MsFlags::MS_NODEV),
        "exec" => (true, MsFlags::MS_NOEXEC),
        "noexec" => (false, MsFlags::MS_NOEXEC),
        "sync" => (false, MsFlags::MS_SYNCHRONOUS),
        "async" => (true, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (false, MsFlags::MS_DIRSYNC),
        "remount" => (false, MsFlags::MS_REMOUNT),
        "mand" => (false, MsFlags::MS_MANDLOCK),
        "nomand" => (true, MsFlags::MS_MANDLOCK),
        "atime" => (true, MsFlags::MS_NOATIME),
        "noatime" => (false, MsFlags::MS_NOATIME),
        "diratime" => (true, MsFlags::MS_NODIRATIME),
        "nodiratime" => (false, MsFlags::MS_NODIRATIME),
        "bind" => (false, MsFlags::MS_BIND),
        "rbind" => (false, MsFlags::MS_BIND | MsFlags::MS_REC),
        "relatime" => (false, MsFlags::MS_RELATIME),
        "norelatime" => (true, MsFlags::MS_RELATIME),
        "strictatime" => (false, MsFlags::MS_STRICTATIME),
        "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
        "silent" => (false, MsFlags::MS_SILENT),
        "loud" => (true, MsFlags::MS_SILENT),
        _ => return None,
    })
}

/// The propagation flags for `private`, `rshared`, ... (also used for `rootfsPropagation`).
pub fn propagation_flag(o: &str) -> Option<MsFlags> {
    Some(match o {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Build the plan for one `mounts[]` entry. Relative bind sources are taken
/// relative to the bundle directory, as the runtime spec says.
pub fn plan(m: &oci_spec::runtime::Mount, bundle: &Path) -> Result<MountPlan> {
    let dest = m.destination();
    if dest.as_os_str().is_empty() {
        return Err(Error::invalid("mount destination", "is empty"));
    }
    let destination = if dest.is_absolute() { dest.clone() } else { Path::new("/").join(dest) };
    let opts: &[String] = m.options().as_deref().unwrap_or(&[]);
    let mut recursive = MountAttr::default();
    let plain: Vec<String> = opts.iter().filter(|o| !recursive_option(o, &mut recursive)).cloned().collect();
    let (mut flags, propagation, data) = parse_options(&plain);
    let mut fstype = m.typ().clone().unwrap_or_default();
    if fstype == "bind" {
        flags |= MsFlags::MS_BIND;
    }
    if flags.contains(MsFlags::MS_BIND) {
        fstype = "bind".into();
    }
    if fstype.is_empty() {
        return Err(Error::invalid(format!("mount {}", destination.display()), "has no type and is not a bind mount"));
    }
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() || opts.iter().any(|o| o == "idmap" || o == "ridmap") {
        return Err(Error::Unsupported(format!("id-mapped mount on {}", destination.display())));
    }
    let source = match m.source() {
        Some(s) if flags.contains(MsFlags::MS_BIND) && s.is_relative() => Some(bundle.join(s)),
        Some(s) => Some(s.clone()),
        None => None,
    };
    if flags.contains(MsFlags::MS_BIND) && source.is_none() {
        return Err(Error::invalid(format!("bind mount {}", destination.display()), "has no source"));
    }
    Ok(MountPlan { destination, fstype, source, flags, propagation, data, recursive })
}

/// Resolve `unsafe_path` inside `root` the way the kernel would from inside a
/// chroot at `root`: symlinks are followed but can never lead outside `root`.
/// Components that do not exist are appended as they are.
///
/// ```
/// let p = engine_runtime::linux::mounts::secure_join("/nonexistent-root".as_ref(), "/a/../../b/./c".as_ref());
/// assert_eq!(p, std::path::PathBuf::from("/nonexistent-root/b/c"));
/// ```
pub fn secure_join(root: &Path, unsafe_path: &Path) -> PathBuf {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> =
        unsafe_path.components().rev().filter_map(comp_name).map(|c| c.to_owned()).collect();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            parts.pop();
            continue;
        }
        if c == "." {
            continue;
        }
        let mut cur = root.to_path_buf();
        cur.extend(&parts);
        cur.push(&c);
        match std::fs::read_link(&cur) {
            Ok(target) if links < 255 => {
                links += 1;
                if target.is_absolute() {
                    parts.clear();
                }
                for t in target.components().rev().filter_map(comp_name) {
                    pending.push(t.to_owned());
                }
            }
            _ => parts.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

fn comp_name(c: Component<'_>) -> Option<&std::ffi::OsStr> {
    match c {
        Component::Normal(n) => Some(n),
        Component::ParentDir => Some("..".as_ref()),
        _ => None,
    }
}

/// Make `path` (a directory, or an empty file when `file` is true) and its parents.
pub fn create_dest(path: &Path, file: bool) -> Result<()> {
    if file {
        if path.symlink_metadata().is_ok() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
            .map_err(|e| Error::io(format!("create mount point {}", path.display()), e))
    } else {
        std::fs::create_dir_all(path).map_err(|e| Error::io(format!("create mount point {}", path.display()), e))
    }
}

/// A mount target opened inside the rootfs: an `O_PATH` descriptor and its
/// `/proc/self/fd/N` path. Mounting on that path mounts on exactly the
/// directory (or file) that was opened and checked, whatever happens to the
/// path in the rootfs meanwhile.
#[derive(Debug)]
pub struct Target {
    fd: std::os::fd::OwnedFd,
    path: PathBuf,
}

impl Target {
    /// `/proc/self/fd/N`, for `mount(2)` and friends.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::os::fd::AsFd for Target {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Open `dest` (a path inside the container) below `rootfs` with the kernel
/// resolving every component, symlinks included, inside the rootfs
/// (`openat2` with `RESOLVE_IN_ROOT`, no magic links). With `nofollow` a final
/// symlink is opened as itself rather than followed.
pub fn open_in_root(rootfs: &Path, dest: &Path, nofollow: bool) -> Result<Target> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let root =
        nix::fcntl::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(|e| Error::io(format!("open the rootfs {}", rootfs.display()), e.into()))?;
    let rel = dest.strip_prefix("/").unwrap_or(dest);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let how = OpenHow::new().flags(flags).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = engine_core::fs::retry_on(nix::Error::EAGAIN, || nix::fcntl::openat2(&root, rel, how))
        .map_err(|e| Error::io(format!("open mount point {} inside the rootfs", dest.display()), e.into()))?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)));
    Ok(Target { fd, path })
}

/// Make the mount point of `dest` inside `rootfs` (a directory, or an empty
/// file when `file`) and open it there (see [`open_in_root`]). For `proc` and
/// `sysfs` the mount point must be an ordinary directory: a symlink (to
/// anywhere) or a file there is refused, as runc does, and the check holds
/// for the descriptor the mount is made on.
pub fn prepare_target(rootfs: &Path, dest: &Path, fstype: &str, file: bool) -> Result<Target> {
    let strict = matches!(fstype, "proc" | "sysfs");
    let opened = match open_in_root(rootfs, dest, strict) {
        Ok(t) => t,
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            create_dest(&secure_join(rootfs, dest), file)?;
            open_in_root(rootfs, dest, strict)?
        }
        Err(e) => return Err(e),
    };
    if strict {
        check_ordinary_dir(&opened, dest, fstype)?;
    }
    Ok(opened)
}

fn check_ordinary_dir(t: &Target, dest: &Path, fstype: &str) -> Result<()> {
    let st = nix::sys::stat::fstat(&t.fd)
        .map_err(|e| Error::io(format!("stat mount point {}", dest.display()), e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::invalid(
            format!("mount {}", dest.display()),
            format!("filesystem {fstype:?} must be mounted on ordinary directory (it is a symlink or not a directory)"),
        ));
    }
    Ok(())
}

/// Mount one planned entry under `rootfs` (before pivot_root). The
/// destination is resolved inside the rootfs by the kernel and the mount is
/// made on the opened descriptor (see [`prepare_target`]).
pub fn mount_one(sys: &dyn Syscall, rootfs: &Path, m: &MountPlan) -> Result<()> {
    let target = if m.is_bind() {
        let src = m.source.as_deref().expect("bind has a source (checked in plan)");
        let meta = std::fs::metadata(src).map_err(|e| Error::io(format!("bind mount source {}", src.display()), e))?;
        let t = prepare_target(rootfs, &m.destination, &m.fstype, !meta.is_dir())?;
        sys.mount(Some(src), t.path(), None, m.flags & (MsFlags::MS_BIND | MsFlags::MS_REC), None)?;
        let extra = m.remount_flags();
        if extra.is_empty() && m.recursive.is_empty() && m.propagation.is_empty() {
            return Ok(());
        }
        // From here on, work on the new mount (its root), not on the directory under it.
        let t = open_in_root(rootfs, &m.destination, false)?;
        if !extra.is_empty() {
            let fl = extra | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
            if let Err(e) = sys.mount(None, t.path(), None, fl, None) {
                // Flags locked by the source mount (nosuid/nodev/noexec) must be kept.
                let locked = locked_flags(t.path());
                if locked.is_empty() {
                    return Err(e);
                }
                sys.mount(None, t.path(), None, fl | locked, None)?;
            }
        }
        t
    } else {
        let t = prepare_target(rootfs, &m.destination, &m.fstype, false)?;
        let data = (!m.data.is_empty()).then_some(m.data.as_str());
        let src = m.source.as_deref().unwrap_or(Path::new(&m.fstype));
        sys.mount(Some(src), t.path(), Some(&m.fstype), m.flags & !MsFlags::MS_REMOUNT, data)?;
        if m.recursive.is_empty() && m.propagation.is_empty() {
            return Ok(());
        }
        open_in_root(rootfs, &m.destination, false)?
    };
    if !m.recursive.is_empty() {
        sys.mount_setattr(&target, m.recursive)?;
    }
    for p in &m.propagation {
        sys.mount(None, target.path(), None, *p, None)?;
    }
    Ok(())
}

/// The nosuid/nodev/noexec/rdonly flags a mount currently has.
pub fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(path) else { return MsFlags::empty() };
    let f = st.flags();
    use nix::sys::statvfs::FsFlags;
    let mut out = MsFlags::empty();
    for (a, b) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(a) {
            out |= b;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::syscall::Recorder;

    fn m(json: &str) -> oci_spec::runtime::Mount {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plans() {
        let b = Path::new("/bundle");
        let p =
            plan(&m(r#"{"destination":"/data","type":"bind","source":"src","options":["ro","rprivate"]}"#), b).unwrap();
        assert_eq!(p.source.as_deref(), Some(Path::new("/bundle/src")));
        assert!(p.is_bind());
        assert_eq!(p.remount_flags(), MsFlags::MS_RDONLY);
        let p = plan(&m(r#"{"destination":"/x","source":"/h","options":["rbind"]}"#), b).unwrap();
        assert_eq!(p.fstype, "bind");
        assert!(p.flags.contains(MsFlags::MS_REC));
        let p =
            plan(&m(r#"{"destination":"/tmp","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]}"#), b)
                .unwrap();
        assert_eq!(p.data, "mode=755");
        assert!(plan(&m(r#"{"destination":"/x"}"#), b).unwrap_err().to_string().contains("/x"));
        assert!(plan(&m(r#"{"destination":"/x","type":"bind"}"#), b).is_err());
    }

    #[test]
    fn mount_calls_for_ro_bind() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let p = MountPlan {
            destination: "/a/b".into(),
            fstype: "bind".into(),
            source: Some(src.path().into()),
            flags: MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            propagation: vec![MsFlags::MS_PRIVATE],
            data: String::new(),
            recursive: MountAttr::default(),
        };
        let r = Recorder::default();
        mount_one(&r, root.path(), &p).unwrap();
        let calls = r.calls.borrow();
        assert_eq!(calls.len(), 3, "{calls:?}");
        // Mounted through the descriptor opened inside the root.
        assert!(calls[0].starts_with(&format!("mount {} /proc/self/fd/", src.path().display())), "{calls:?}");
        assert!(calls[0].contains(" - 0x1000 "), "{calls:?}");
        assert!(
            calls[1].contains(&format!("{:#x}", (MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY).bits()))
        );
        assert!(root.path().join("a/b").is_dir());
    }

    #[test]
    fn recursive_options() {
        let b = Path::new("/bundle");
        let p = plan(
            &m(r#"{"destination":"/d","source":"/h","options":["rbind","rro","rnosuid","rnodev","rnoexec","rnodiratime","rnosymfollow","rnoatime"]}"#),
            b,
        )
        .unwrap();
        assert_eq!(p.data, "", "recursive options are not filesystem data");
        assert!(!p.flags.contains(MsFlags::MS_RDONLY), "rro is not the non-recursive ro");
        let want = attr::RDONLY
            | attr::NOSUID
            | attr::NODEV
            | attr::NOEXEC
            | attr::NODIRATIME
            | attr::NOSYMFOLLOW
            | attr::NOATIME;
        assert_eq!(p.recursive.set, want);
        assert_eq!(p.recursive.clear, attr::ATIME_MASK);
        let p = plan(&m(r#"{"destination":"/d","source":"/h","options":["rbind","rro","rrw","rstrictatime"]}"#), b)
            .unwrap();
        assert_eq!(p.recursive.set, attr::STRICTATIME);
        assert_eq!(p.recursive.clear, attr::RDONLY | attr::ATIME_MASK);
    }

    #[test]
    fn proc_on_a_symlink_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join("proc")).unwrap();
        std::fs::write(root.path().join("sysfile"), "").unwrap();
        let e = prepare_target(root.path(), "/proc".as_ref(), "proc", false).unwrap_err().to_string();
        assert!(e.contains("ordinary directory"), "{e}");
        let e = prepare_target(root.path(), "/sysfile".as_ref(), "sysfs", false).unwrap_err().to_string();
        assert!(e.contains("ordinary directory"), "{e}");
        // Other types follow the link, inside the root.
        let t = prepare_target(root.path(), "/proc".as_ref(), "tmpfs", false).unwrap();
        assert!(std::fs::read_link(t.path()).unwrap().starts_with(root.path()));
        assert!(prepare_target(root.path(), "/new/dir".as_ref(), "proc", false).is_ok());
        assert!(root.path().join("new/dir").is_dir());
    }

    #[test]
    fn secure_join_stays_inside() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("link")).unwrap();
        std::os::unix::fs::symlink("../../..", root.path().join("up")).unwrap();
        assert_eq!(secure_join(root.path(), "/link/passwd".as_ref()), root.path().join("etc/passwd"));
        assert_eq!(secure_join(root.path(), "/up/x".as_ref()), root.path().join("x"));
    }
}
