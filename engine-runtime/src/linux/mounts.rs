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
                if !matches!(o, "tmpcopyup" | "copy-symlink" | "idmap" | "ridmap" | "rro" | "rrw") {
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
    let (mut flags, propagation, data) = parse_options(opts);
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
    Ok(MountPlan { destination, fstype, source, flags, propagation, data })
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

/// Mount one planned entry under `rootfs` (before pivot_root).
pub fn mount_one(sys: &dyn Syscall, rootfs: &Path, m: &MountPlan) -> Result<()> {
    let target = secure_join(rootfs, &m.destination);
    if m.is_bind() {
        let src = m.source.as_deref().expect("bind has a source (checked in plan)");
        let meta = std::fs::metadata(src).map_err(|e| Error::io(format!("bind mount source {}", src.display()), e))?;
        create_dest(&target, !meta.is_dir())?;
        sys.mount(Some(src), &target, None, m.flags & (MsFlags::MS_BIND | MsFlags::MS_REC), None)?;
        let extra = m.remount_flags();
        if !extra.is_empty() {
            let fl = extra | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
            if let Err(e) = sys.mount(None, &target, None, fl, None) {
                // Flags locked by the source mount (nosuid/nodev/noexec) must be kept.
                let locked = locked_flags(&target);
                if locked.is_empty() {
                    return Err(e);
                }
                sys.mount(None, &target, None, fl | locked, None)?;
            }
        }
    } else {
        create_dest(&target, false)?;
        let data = (!m.data.is_empty()).then_some(m.data.as_str());
        let src = m.source.as_deref().unwrap_or(Path::new(&m.fstype));
        sys.mount(Some(src), &target, Some(&m.fstype), m.flags & !MsFlags::MS_REMOUNT, data)?;
    }
    for p in &m.propagation {
        sys.mount(None, &target, None, *p, None)?;
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
        };
        let r = Recorder::default();
        mount_one(&r, root.path(), &p).unwrap();
        let calls = r.calls.borrow();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(calls[0].starts_with(&format!(
            "mount {} {}/a/b - 0x1000 ",
            src.path().display(),
            root.path().display()
        )));
        assert!(
            calls[1].contains(&format!("{:#x}", (MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY).bits()))
        );
        assert!(root.path().join("a/b").is_dir());
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
