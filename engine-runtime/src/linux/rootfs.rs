//! The container's root filesystem: propagation, the rootfs bind, mounts,
//! `/dev`, pivot_root (or `MS_MOVE` + chroot), masked and readonly paths.

use super::devices::{self, Device};
use super::mounts::{create_dest, locked_flags, mount_one, open_in_root, prepare_target, MountPlan};
use super::shared::{self, RawTrees};
use super::syscall::Syscall;
use engine_core::{Error, Result};
use nix::mount::{MntFlags, MsFlags};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Everything the init needs to build the rootfs, computed in the parent.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    /// The rootfs directory on the host (canonical).
    pub rootfs: PathBuf,
    /// `root.readonly`.
    pub readonly: bool,
    /// `linux.rootfsPropagation` as flags (default `MS_SLAVE|MS_REC`).
    pub propagation: MsFlags,
    /// The requested propagation, re-applied to `/` after pivot_root.
    pub final_propagation: Option<MsFlags>,
    /// The mounts in config order.
    pub mounts: Vec<MountPlan>,
    /// Device nodes to create (empty when `/dev` is a bind mount).
    pub devices: Vec<Device>,
    /// `linux.maskedPaths`.
    pub masked: Vec<PathBuf>,
    /// `linux.readonlyPaths`.
    pub readonly_paths: Vec<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// The container has a mount namespace (new or joined). Without one it
    /// shares the host's mount table: nothing is mounted, and the process is
    /// only chrooted into the rootfs (see [`RootfsPlan::without_mount_namespace`]).
    pub mount_ns: bool,
}

impl RootfsPlan {
    /// Build the plan from a spec and its bundle.
    pub fn new(spec: &oci_spec::runtime::Spec, bundle: &Path, no_pivot: bool) -> Result<Self> {
        let root = spec.root().as_ref().ok_or_else(|| Error::invalid("config.json", "has no root"))?;
        let path = if root.path().is_absolute() { root.path().clone() } else { bundle.join(root.path()) };
        let rootfs = std::fs::canonicalize(&path).map_err(|e| Error::io(format!("rootfs {}", path.display()), e))?;
        if !rootfs.is_dir() {
            return Err(Error::invalid("root.path", format!("{} is not a directory", rootfs.display())));
        }
        let linux = spec.linux().as_ref();
        let (propagation, final_propagation) = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            None | Some("") => (MsFlags::MS_SLAVE | MsFlags::MS_REC, None),
            Some(p) => {
                let f = super::mounts::propagation_flag(p)
                    .ok_or_else(|| Error::invalid("linux.rootfsPropagation", format!("unknown value {p:?}")))?;
                // pivot_root refuses shared mounts: use slave until after the pivot.
                if f.contains(MsFlags::MS_SHARED) {
                    (MsFlags::MS_SLAVE | MsFlags::MS_REC, Some(f))
                } else {
                    (f, None)
                }
            }
        };
        let mounts: Vec<MountPlan> =
            spec.mounts().iter().flatten().map(|m| super::mounts::plan(m, bundle)).collect::<Result<_>>()?;
        let dev_is_bind = mounts.iter().any(|m| m.destination == Path::new("/dev") && m.is_bind());
        let devices = if dev_is_bind { Vec::new() } else { devices::plan(linux.and_then(|l| l.devices().as_ref()))? };
        let paths = |v: Option<&Vec<String>>| v.into_iter().flatten().map(PathBuf::from).collect::<Vec<_>>();
        Ok(RootfsPlan {
            rootfs,
            readonly: root.readonly().unwrap_or(false),
            propagation,
            final_propagation,
            mounts,
            devices,
            masked: paths(linux.and_then(|l| l.masked_paths().as_ref())),
            readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
            no_pivot,
            mount_ns: true,
        })
    }

    /// Turn this plan into one for a container without a mount namespace,
    /// which shares the host's mount table (runc runs such configs).
    ///
    /// Every mount would then be made in the host's mount namespace and
    /// outlive the container (runc leaves the config's `proc`, `/dev`, `/sys`
    /// and cgroup mounts on the host, and makes the host's `/` a slave), so
    /// a config that asks for any (`mounts`, `linux.maskedPaths`,
    /// `linux.readonlyPaths`, `root.readonly`, `linux.rootfsPropagation`,
    /// `linux.devices`) is refused with the reason. Otherwise the process
    /// runs chrooted into the rootfs, with nothing mounted or created in it
    /// (the default device nodes need a `/dev` of the container's own).
    pub fn without_mount_namespace(mut self, spec: &oci_spec::runtime::Spec) -> Result<Self> {
        let linux = spec.linux().as_ref();
        let mut asks = Vec::new();
        if !self.mounts.is_empty() {
            asks.push("mounts");
        }
        if !self.masked.is_empty() {
            asks.push("linux.maskedPaths");
        }
        if !self.readonly_paths.is_empty() {
            asks.push("linux.readonlyPaths");
        }
        if self.readonly {
            asks.push("root.readonly");
        }
        if linux.and_then(|l| l.rootfs_propagation().as_deref()).is_some_and(|p| !p.is_empty()) {
            asks.push("linux.rootfsPropagation");
        }
        if linux.and_then(|l| l.devices().as_ref()).is_some_and(|d| !d.is_empty()) {
            asks.push("linux.devices");
        }
        if !asks.is_empty() {
            return Err(Error::invalid(
                "linux.namespaces",
                format!(
                    "without a mount namespace the container shares the host's mount table, so {} would be \
                     mounted on the host and outlive the container: add a mount namespace or remove them",
                    asks.join(", ")
                ),
            ));
        }
        self.devices.clear();
        self.mount_ns = false;
        Ok(self)
    }
}

/// Step 1, in the new mount namespace: make `/` non-shared and bind the rootfs
/// onto itself. Nothing without a mount namespace.
pub fn prepare(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<()> {
    if !plan.mount_ns {
        return Ok(());
    }
    sys.mount(None, Path::new("/"), None, plan.propagation, None)?;
    sys.mount(Some(&plan.rootfs), &plan.rootfs, Some("bind"), MsFlags::MS_BIND | MsFlags::MS_REC, None)
}

/// Step 2: the config's mounts, then `/dev` devices and symlinks.
///
/// `before_cgroup` runs once before the first cgroup mount (the init must be
/// in its cgroup, and in its cgroup namespace, by then). A cgroup v1 mount
/// uses (and closes) `trees.cgroup`, the clone of the runtime's skeleton.
pub fn mount_all(
    sys: &dyn Syscall,
    plan: &RootfsPlan,
    userns: bool,
    cgroupns: bool,
    before_cgroup: &mut dyn FnMut() -> Result<()>,
    trees: &mut RawTrees,
) -> Result<()> {
    for m in &plan.mounts {
        let r = if m.fstype == "cgroup" || m.fstype == "cgroup2" {
            before_cgroup()?;
            let skel = trees.cgroup.take();
            let r = mount_cgroup(sys, &plan.rootfs, m, cgroupns, skel.as_ref());
            shared::close_raw(&mut skel.map(|s| s.0));
            r
        } else {
            match mount_one(sys, &plan.rootfs, m) {
                // In a user namespace whose network namespace belongs to the host, the kernel
                // refuses a new sysfs: bind the host's read-only instead, as runc does.
                Err(Error::Io { source, .. })
                    if m.fstype == "sysfs" && userns && source.raw_os_error() == Some(libc::EPERM) =>
                {
                    prepare_target(&plan.rootfs, &m.destination, "sysfs", false)
                        .and_then(|t| {
                            sys.mount(Some(Path::new("/sys")), t.path(), None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
                        })
                        .and_then(|_| open_in_root(&plan.rootfs, &m.destination, false))
                        .and_then(|t| {
                            let fl = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                            sys.mount(None, t.path(), None, fl | locked_flags(t.path()), None)
                        })
                }
                r => r,
            }
        };
        r.map_err(|e| Error::Other(format!("mounting {} ({}): {e}", m.destination.display(), m.fstype)))?;
    }
    if !plan.devices.is_empty() {
        devices::create(sys, &plan.rootfs, &plan.devices, userns)?;
        devices::symlinks(sys, &plan.rootfs)?;
    }
    Ok(())
}

/// Mount the container's view of the cgroup hierarchies at `m.destination`.
///
/// With v1 (or hybrid) hierarchies the hierarchies go on directories named
/// after them, beside symlinks per controller (`cpu -> cpu,cpuacct`). When
/// the mount is read-only these come from `skel` (a detached clone of the
/// runtime's skeleton for this layout, see [`shared::cgroup_skeleton`]), so
/// `/sys/fs/cgroup` is no superblock of its own; otherwise (or without a
/// clone) they are made on a tmpfs.
fn mount_cgroup(
    sys: &dyn Syscall,
    rootfs: &Path,
    m: &MountPlan,
    cgroupns: bool,
    skel: Option<&(std::os::fd::RawFd, Vec<String>)>,
) -> Result<()> {
    // The destination resolved inside the rootfs and opened; everything below
    // it is made under the mount we put there.
    let opened = prepare_target(rootfs, &m.destination, &m.fstype, false)?;
    let target = opened.path().to_path_buf();
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::io("read /proc/self/cgroup", e))?;
    let keep = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME;
    let fl = m.flags & keep;
    let ro = m.flags.contains(MsFlags::MS_RDONLY);
    let lines = shared::parse_proc_cgroup(&own);
    let pure_v2 = lines.iter().all(|(c, _)| c.is_empty());
    // The mount table only when a hierarchy is not at its conventional place:
    // its text grows with every container's root filesystem mount.
    let mountinfo = std::cell::OnceCell::new();
    let host_mount = |ctrls: &str, path: &str| -> Option<PathBuf> {
        if let Some(m) = crate::cgroups::conventional_mount(ctrls, path) {
            return Some(m);
        }
        let mountinfo: &String =
            mountinfo.get_or_init(|| std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
        mountinfo.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mp = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let _src = post.next();
            let opts = post.next().unwrap_or("");
            let matches = if ctrls.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && ctrls.split(',').all(|c| opts.split(',').any(|o| o == c))
            };
            matches.then(|| PathBuf::from(mp))
        })
    };
    let bind = |host: &Path, path: &str, dest: &Path| -> Result<()> {
        let src = host.join(path.trim_start_matches('/'));
        sys.mount(Some(&src), dest, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
    };
    // A remount needs the new mount's root: a path looked up after the bind.
    let remount = |dest: &Path| -> Result<()> {
        sys.mount(
            None,
            dest,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | fl | if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() },
            None,
        )
    };
    if pure_v2 {
        if cgroupns {
            let f = fl | if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() };
            return sys.mount(Some(Path::new("cgroup2")), &target, Some("cgroup2"), f, None);
        }
        let own_path = lines.first().map(|l| l.1).unwrap_or("/");
        let host = host_mount("", own_path).ok_or_else(|| Error::Other("no cgroup2 mount on the host".into()))?;
        bind(&host, lines.first().map(|l| l.1).unwrap_or("/"), &target)?;
        // The descriptor is the directory under the bind: reopen to reach the mount.
        let top = open_in_root(rootfs, &m.destination, false)?;
        return remount(top.path());
    }
    let names: Vec<String> = lines.iter().map(|(c, _)| shared::hierarchy_name(c).0).collect();
    let mut on_skeleton = false;
    if let Some((fd, skel_names)) = skel.filter(|(_, n)| ro && *n == names) {
        // Already read-only, nosuid, nodev, noexec and private (see `shared::clone_tree`).
        match shared::attach(*fd, opened.as_fd(), Path::new("")) {
            Ok(()) => on_skeleton = true,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSYS)) => {
                tracing::debug!("attaching the cgroup skeleton {skel_names:?}: {e}; a tmpfs instead");
            }
            Err(e) => return Err(Error::io(format!("attach the cgroup skeleton on {}", m.destination.display()), e)),
        }
    }
    if !on_skeleton {
        sys.mount(Some(Path::new("tmpfs")), &target, Some("tmpfs"), fl, Some("mode=755"))?;
    }
    // Continue in the mount just made (the descriptor above is the directory under it).
    let top = open_in_root(rootfs, &m.destination, false)?;
    let target = top.path().to_path_buf();
    for (ctrls, path) in &lines {
        let (name, opts) = shared::hierarchy_name(ctrls);
        let dir = target.join(&name);
        create_dest(&dir, false)?;
        if cgroupns {
            let f = fl | if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() };
            match &opts {
                None => sys.mount(Some(Path::new("cgroup2")), &dir, Some("cgroup2"), f, None)?,
                Some(o) => sys.mount(Some(Path::new("cgroup")), &dir, Some("cgroup"), f, Some(o))?,
            }
        } else {
            let Some(host) = host_mount(ctrls, path) else { continue };
            bind(&host, path, &dir)?;
            remount(&dir)?;
        }
        if name.contains(',') && !on_skeleton {
            for c in name.split(',') {
                let _ = sys.symlink(Path::new(&name), &target.join(c));
            }
        }
    }
    // The skeleton is a bind: a remount without MS_BIND would reach the host's filesystem.
    if ro && !on_skeleton {
        sys.mount(None, &target, None, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | fl, Some("mode=755"))?;
    }
    Ok(())
}

/// Bind the console's pty slave onto `/dev/console` (before the pivot).
pub fn bind_console(sys: &dyn Syscall, rootfs: &Path, slave: &Path) -> Result<()> {
    let dest = rootfs.join("dev/console");
    create_dest(&dest, true)?;
    sys.mount(Some(slave), &dest, None, MsFlags::MS_BIND, None)
}

/// Step 3: make the rootfs the container's `/`.
pub fn pivot(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<()> {
    let root = &plan.rootfs;
    if !plan.mount_ns {
        // The host's mount table: no mount, only a chroot.
        nix::unistd::chroot(root).map_err(|e| Error::io(format!("chroot {}", root.display()), e.into()))?;
    } else if plan.no_pivot {
        std::env::set_current_dir(root).map_err(|e| Error::io(format!("chdir {}", root.display()), e))?;
        sys.mount(Some(root), Path::new("/"), None, MsFlags::MS_MOVE, None)?;
        nix::unistd::chroot(".").map_err(|e| Error::io("chroot .", e.into()))?;
    } else {
        let old = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::io("open /", e.into()))?;
        std::env::set_current_dir(root).map_err(|e| Error::io(format!("chdir {}", root.display()), e))?;
        nix::unistd::pivot_root(".", ".").map_err(|e| Error::io(format!("pivot_root {}", root.display()), e.into()))?;
        nix::unistd::fchdir(&old).map_err(|e| Error::io("fchdir old root", e.into()))?;
        sys.mount(None, Path::new("."), None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)?;
        sys.umount2(Path::new("."), MntFlags::MNT_DETACH)?;
    }
    std::env::set_current_dir("/").map_err(|e| Error::io("chdir /", e))?;
    if let Some(p) = plan.final_propagation {
        sys.mount(None, Path::new("/"), None, p, None)?;
    }
    Ok(())
}

/// Step 4, after the pivot: masked and readonly paths. `empty` (a detached
/// clone of the runtime's empty directory, `@empty` under the state root) is
/// attached at the first masked directory, and closed.
pub fn protect_paths(sys: &dyn Syscall, plan: &RootfsPlan, empty: &mut Option<std::os::fd::RawFd>) -> Result<()> {
    let r = protect(sys, plan, *empty);
    shared::close_raw(empty);
    r
}

fn protect(sys: &dyn Syscall, plan: &RootfsPlan, empty: Option<std::os::fd::RawFd>) -> Result<()> {
    for p in &plan.readonly_paths {
        match sys.mount(Some(p), p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None) {
            Ok(()) => {}
            Err(e) if is_enoent(&e) => continue,
            Err(e) => return Err(e),
        }
        let fl = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if sys.mount(None, p, None, fl, None).is_err() {
            sys.mount(None, p, None, fl | locked_flags(p), None)?;
        }
    }
    // Masked directories show one empty read-only directory: the first gets
    // the runtime's empty directory (a bind, no superblock of its own), the
    // others a read-only bind of it. Every superblock costs the kernel memory
    // in each memory cgroup of the machine (its shrinker's slot), so a
    // container should not hold one more for masking. Without the clone
    // (old kernel, no CAP_SYS_ADMIN) one read-only tmpfs serves them all.
    let mut empty_dir: Option<&Path> = None;
    for p in &plan.masked {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(_) => continue,
        };
        if meta.is_dir() {
            match empty_dir {
                None => {
                    let attached = match empty {
                        None => false,
                        Some(fd) => match shared::attach(fd, rustix::fs::CWD, p) {
                            Ok(()) => true,
                            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSYS)) => false,
                            Err(e) => {
                                return Err(Error::io(format!("attach the empty directory on {}", p.display()), e))
                            }
                        },
                    };
                    if !attached {
                        sys.mount(Some(Path::new("tmpfs")), p, Some("tmpfs"), MsFlags::MS_RDONLY, None)?;
                    }
                    empty_dir = Some(p);
                }
                Some(first) => {
                    sys.mount(Some(first), p, None, MsFlags::MS_BIND, None)?;
                    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | shared::SHARED_FLAGS;
                    sys.mount(None, p, None, ro, None)?;
                }
            }
        } else {
            sys.mount(Some(Path::new("/dev/null")), p, None, MsFlags::MS_BIND, None)?;
        }
    }
    Ok(())
}

/// Step 5: `root.readonly`.
pub fn finalize(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<()> {
    if plan.readonly {
        let fl = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if sys.mount(None, Path::new("/"), None, fl, None).is_err() {
            sys.mount(None, Path::new("/"), None, fl | locked_flags(Path::new("/")), None)?;
        }
    }
    Ok(())
}

fn is_enoent(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Write `linux.sysctl` values under `/proc/sys` (after the pivot).
pub fn write_sysctls(sysctl: &[(String, String)]) -> Result<()> {
    for (k, v) in sysctl {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v.as_bytes()).map_err(|e| Error::io(format!("sysctl {k}={v}"), e))?;
    }
    Ok(())
}

/// Check that a sysctl is namespaced, and that the container has its own
/// namespace of that kind, as runc does: otherwise it would change the host.
/// `has` tells whether the container creates or joins (not the host's) a namespace.
pub fn validate_sysctl(key: &str, has: impl Fn(oci_spec::runtime::LinuxNamespaceType) -> bool) -> Result<()> {
    use oci_spec::runtime::LinuxNamespaceType as T;
    if key.contains("..") || key.starts_with('/') || key.is_empty() {
        return Err(Error::invalid("linux.sysctl", format!("bad key {key:?}")));
    }
    let k = key.replace('/', ".");
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let (needs, name) = if ipc.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
        (T::Ipc, "ipc")
    } else if k.starts_with("net.") {
        (T::Network, "network")
    } else if k == "kernel.hostname" || k == "kernel.domainname" {
        (T::Uts, "uts")
    } else {
        return Err(Error::invalid(
            format!("linux.sysctl {key}"),
            "is not namespaced: setting it in a container would change the host",
        ));
    };
    if !has(needs) {
        return Err(Error::invalid(format!("linux.sysctl {key}"), format!("needs a new {name} namespace")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceType as T;
    #[test]
    fn sysctl_rules() {
        let all = |_| true;
        let none = |_| false;
        assert!(validate_sysctl("net.ipv4.ip_forward", all).is_ok());
        assert!(validate_sysctl("kernel.shmmax", all).is_ok());
        assert!(validate_sysctl("fs.mqueue.msg_max", all).is_ok());
        assert!(validate_sysctl("net.ipv4.ip_forward", none).unwrap_err().to_string().contains("network"));
        assert!(validate_sysctl("kernel.shmmax", |t| t == T::Network).is_err());
        let e = validate_sysctl("vm.swappiness", all).unwrap_err().to_string();
        assert!(e.contains("vm.swappiness") && e.contains("not namespaced"), "{e}");
        assert!(validate_sysctl("net/../../x", all).is_err());
    }
}
