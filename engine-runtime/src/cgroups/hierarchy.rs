//! Where the cgroup hierarchies are mounted, and which cgroup this process is in.

use super::Layout;
use engine_core::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Which cgroup of the hierarchy the mount shows (mountinfo's `root`).
    pub root: String,
}

/// The cgroup hierarchies of a host as this process sees them: the v1
/// controllers' mounts, the cgroup2 mount, and this process's own cgroups.
///
/// [`Hierarchies::detect`] reads `/proc/self/mountinfo` and `/proc/self/cgroup`;
/// [`Hierarchies::from_text`] builds one from those files' text (for tests, or
/// to look at another process's view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchies {
    pub(crate) layout: Layout,
    /// v1 controller (`memory`, `cpu`, `name=systemd`, ...) → its mount.
    pub(crate) v1: BTreeMap<String, Mount>,
    /// The cgroup2 mount.
    pub(crate) unified: Option<Mount>,
    /// Controller → this process's cgroup path in that hierarchy (`""` for v2).
    pub(crate) own: BTreeMap<String, String>,
}

/// The v1 controllers we know by name (mount options that are not options).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Controller → this process's cgroup path, from `/proc/self/cgroup` (`""`: cgroup2).
fn own_cgroups(proc_cgroup: &str) -> BTreeMap<String, String> {
    let mut own = BTreeMap::new();
    for line in proc_cgroup.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else { continue };
        if ctrls.is_empty() {
            own.insert(String::new(), path.to_string());
        } else {
            for c in ctrls.split(',') {
                own.insert(c.to_string(), path.to_string());
            }
        }
    }
    own
}

/// Where the hierarchy of `ctrls` (a `/proc/self/cgroup` controllers field,
/// `""` for cgroup2) is mounted by convention: `/sys/fs/cgroup/<ctrls>`
/// (`name=` dropped) for v1, `/sys/fs/cgroup` or `/sys/fs/cgroup/unified`
/// for cgroup2. Found with `statfs` (a cgroup file system of that version
/// mounted there) and checked to show the hierarchy's root (`path`, a cgroup
/// of that hierarchy as `/proc/self/cgroup` names it, is a directory under
/// it); `None` otherwise, and the caller reads the mount table. This avoids
/// `/proc/self/mountinfo`, whose text (and the kernel's time to make it) grows
/// with every container's root filesystem mount.
pub(crate) fn conventional_mount(ctrls: &str, path: &str) -> Option<PathBuf> {
    let (candidates, magic): (Vec<String>, i64) = if ctrls.is_empty() {
        (vec!["/sys/fs/cgroup".into(), "/sys/fs/cgroup/unified".into()], super::CGROUP2_SUPER_MAGIC)
    } else {
        (vec![format!("/sys/fs/cgroup/{}", ctrls.strip_prefix("name=").unwrap_or(ctrls))], super::CGROUP_SUPER_MAGIC)
    };
    candidates
        .into_iter()
        .find(|c| super::statfs_type(c).ok() == Some(magic))
        .map(PathBuf::from)
        .filter(|m| m.join(path.trim_start_matches('/')).is_dir())
}

impl Hierarchies {
    /// Detect the layout (statfs of `/sys/fs/cgroup`) and the mounts of this process.
    ///
    /// The mount table is read only when a hierarchy is not where the
    /// conventional layout puts it (`/sys/fs/cgroup/<controllers>`): its text grows
    /// with every container's root filesystem mount, so reading it made each
    /// container create cost more than the last.
    pub fn detect() -> Result<Self> {
        let layout = Layout::detect()?;
        let cgroup =
            std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::io("reading /proc/self/cgroup", e))?;
        if let Some(h) = Self::from_conventional(layout, &cgroup) {
            return Ok(h);
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("reading /proc/self/mountinfo", e))?;
        Ok(Self::from_text(layout, &mountinfo, &cgroup))
    }

    /// The hierarchies of `/proc/self/cgroup` at their conventional mount
    /// points, or `None` when one of them is not there.
    pub(crate) fn from_conventional(layout: Layout, proc_cgroup: &str) -> Option<Self> {
        let (mut v1, mut unified) = (BTreeMap::new(), None);
        for line in proc_cgroup.lines() {
            let mut it = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else { continue };
            match (ctrls.is_empty(), layout) {
                (true, Layout::V1) | (false, Layout::V2) => {}
                (true, _) => unified = Some(Mount { mountpoint: conventional_mount("", path)?, root: "/".into() }),
                (false, _) => {
                    // A v1 hierarchy with no directory at its conventional place is mounted
                    // nowhere this layout knows (a hierarchy can outlive its last mount while
                    // cgroups remain in it); it is not used, as crun does not, and a limit that
                    // needs its controller is refused as unmounted. Reading the mount table
                    // instead would cost every create more as containers are added.
                    // One statfs tells both: absent, or a v1 hierarchy (or something else).
                    let dir = format!("/sys/fs/cgroup/{}", ctrls.strip_prefix("name=").unwrap_or(ctrls));
                    match nix::sys::statfs::statfs(dir.as_str()) {
                        Err(nix::errno::Errno::ENOENT) => continue,
                        Ok(st) if st.filesystem_type() == nix::sys::statfs::CGROUP_SUPER_MAGIC => {}
                        _ => return None,
                    }
                    let mountpoint = PathBuf::from(dir);
                    if !mountpoint.join(path.trim_start_matches('/')).is_dir() {
                        return None;
                    }
                    for c in ctrls.split(',').filter(|c| V1_CONTROLLERS.contains(c) || c.starts_with("name=")) {
                        v1.insert(c.to_string(), Mount { mountpoint: mountpoint.clone(), root: "/".into() });
                    }
                }
            }
        }
        if (layout != Layout::V1 && unified.is_none()) || (layout != Layout::V2 && v1.is_empty()) {
            return None;
        }
        Some(Hierarchies { layout, v1, unified, own: own_cgroups(proc_cgroup) })
    }

    /// Build from the text of `/proc/<pid>/mountinfo` and `/proc/<pid>/cgroup`.
    pub fn from_text(layout: Layout, mountinfo: &str, proc_cgroup: &str) -> Self {
        let mut v1 = BTreeMap::new();
        let mut unified: Option<Mount> = None;
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
            if fields.len() < 5 || fields.len() < dash + 4 {
                continue;
            }
            let root = unescape(fields[3]);
            let mountpoint = PathBuf::from(unescape(fields[4]));
            let fstype = fields[dash + 1];
            let super_opts = fields[dash + 3];
            match fstype {
                "cgroup2" => {
                    // Prefer the conventional mount points when there are several.
                    let preferred = match layout {
                        Layout::V2 => Path::new("/sys/fs/cgroup"),
                        _ => Path::new("/sys/fs/cgroup/unified"),
                    };
                    if unified.is_none() || mountpoint == preferred {
                        unified = Some(Mount { mountpoint, root });
                    }
                }
                "cgroup" => {
                    for opt in super_opts.split(',') {
                        let known = V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=");
                        if known {
                            v1.entry(opt.to_string())
                                .or_insert_with(|| Mount { mountpoint: mountpoint.clone(), root: root.clone() });
                        }
                    }
                }
                _ => {}
            }
        }
        if layout == Layout::V2 {
            v1.clear();
        }
        if layout == Layout::V1 {
            unified = None;
        }
        Hierarchies { layout, v1, unified, own: own_cgroups(proc_cgroup) }
    }

    /// The layout these hierarchies were detected as.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The v1 controllers mounted (empty on a pure v2 host).
    pub fn v1_controllers(&self) -> Vec<&str> {
        self.v1.keys().map(|s| s.as_str()).collect()
    }

    /// The cgroup2 mount point, if any.
    pub fn unified_mountpoint(&self) -> Option<&Path> {
        self.unified.as_ref().map(|m| m.mountpoint.as_path())
    }

    /// The directory of cgroup `path` in a hierarchy: an absolute path is taken
    /// from the hierarchy's mount; a relative one from this process's own cgroup.
    pub(crate) fn dir(&self, mount: &Mount, key: &str, path: &CgroupPath) -> PathBuf {
        match path {
            CgroupPath::Absolute(p) => mount.mountpoint.join(p.trim_start_matches('/')),
            CgroupPath::Relative(p) => {
                let own = self.own.get(key).map(|s| s.as_str()).unwrap_or("/");
                // /proc/self/cgroup paths are from the hierarchy's root; the
                // mount may show a sub-tree of it.
                let own_in_mount = match own.strip_prefix(mount.root.as_str()) {
                    Some(rest) if mount.root != "/" => rest,
                    _ => own,
                };
                mount.mountpoint.join(own_in_mount.trim_start_matches('/')).join(p)
            }
        }
    }

    /// This process's own cgroup in a hierarchy: a v1 controller name, or `""` for v2.
    pub fn own_cgroup(&self, key: &str) -> Option<&str> {
        self.own.get(key).map(|s| s.as_str())
    }
}

/// A validated `cgroupsPath`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CgroupPath {
    /// From the hierarchies' roots.
    Absolute(String),
    /// Below the caller's own cgroup.
    Relative(String),
}

impl CgroupPath {
    /// Validate `linux.cgroupsPath`; `None` gives the default `/engine/<id>`.
    pub(crate) fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Self> {
        let raw = match cgroups_path {
            Some(p) if !p.trim().is_empty() => p.to_string(),
            _ => format!("/engine/{id}"),
        };
        let p = Path::new(&raw);
        let mut parts = Vec::new();
        for c in p.components() {
            match c {
                Component::RootDir => {}
                Component::CurDir => {}
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::invalid(
                        "linux.cgroupsPath",
                        format!("{raw:?} must not contain '..' components"),
                    ))
                }
            }
        }
        if parts.is_empty() {
            return Err(Error::invalid("linux.cgroupsPath", format!("{raw:?} names the root cgroup")));
        }
        let joined = parts.join("/");
        Ok(if raw.starts_with('/') { CgroupPath::Absolute(format!("/{joined}")) } else { CgroupPath::Relative(joined) })
    }

    /// The path as written (absolute with a leading `/`).
    pub(crate) fn as_str(&self) -> &str {
        match self {
            CgroupPath::Absolute(s) | CgroupPath::Relative(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 /docker/abc /sys/fs/cgroup/pids rw,relatime shared:5 - cgroup cgroup rw,pids
43 31 0:40 / /sys/fs/cgroup/net\\040cls rw - cgroup cgroup rw,net_cls,net_prio
";
    const PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/docker/abc/inner
4:memory:/process_api/xyz
1:cpu:/
2:cpuacct:/
0::/user.slice
";

    #[test]
    fn parses_hybrid() {
        let h = Hierarchies::from_text(Layout::Hybrid, MOUNTINFO, PROC_CGROUP);
        assert_eq!(h.v1_controllers(), ["cpu", "cpuacct", "memory", "name=systemd", "net_cls", "net_prio", "pids"]);
        assert_eq!(h.unified_mountpoint(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(h.v1["net_cls"].mountpoint, Path::new("/sys/fs/cgroup/net cls"));
        assert_eq!(h.own_cgroup("memory"), Some("/process_api/xyz"));
        assert_eq!(h.own_cgroup(""), Some("/user.slice"));
    }

    #[test]
    fn dirs_for_absolute_and_relative_paths() {
        let h = Hierarchies::from_text(Layout::Hybrid, MOUNTINFO, PROC_CGROUP);
        let abs = CgroupPath::parse(Some("/engine/c1"), "c1").unwrap();
        let rel = CgroupPath::parse(Some("engine/c1"), "c1").unwrap();
        let mem = &h.v1["memory"];
        assert_eq!(h.dir(mem, "memory", &abs), Path::new("/sys/fs/cgroup/memory/engine/c1"));
        assert_eq!(h.dir(mem, "memory", &rel), Path::new("/sys/fs/cgroup/memory/process_api/xyz/engine/c1"));
        // A mount showing a sub-tree: own path is translated into the mount.
        let pids = &h.v1["pids"];
        assert_eq!(h.dir(pids, "pids", &rel), Path::new("/sys/fs/cgroup/pids/inner/engine/c1"));
        let uni = h.unified.as_ref().unwrap();
        assert_eq!(h.dir(uni, "", &rel), Path::new("/sys/fs/cgroup/unified/user.slice/engine/c1"));
    }

    #[test]
    fn pure_v2_and_v1_filtering() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = Hierarchies::from_text(Layout::V2, v2, "0::/\n");
        assert!(h.v1_controllers().is_empty());
        assert_eq!(h.unified_mountpoint(), Some(Path::new("/sys/fs/cgroup")));
        let h = Hierarchies::from_text(Layout::V1, MOUNTINFO, PROC_CGROUP);
        assert_eq!(h.unified_mountpoint(), None);
    }

    #[test]
    fn cgroups_path_validation() {
        assert_eq!(CgroupPath::parse(None, "x").unwrap(), CgroupPath::Absolute("/engine/x".into()));
        assert_eq!(CgroupPath::parse(Some("/a//b/"), "x").unwrap(), CgroupPath::Absolute("/a/b".into()));
        assert_eq!(CgroupPath::parse(Some("a/./b"), "x").unwrap(), CgroupPath::Relative("a/b".into()));
        let e = CgroupPath::parse(Some("/a/../../etc"), "x").unwrap_err();
        assert!(e.to_string().contains("cgroupsPath") && e.to_string().contains(".."), "{e}");
        assert!(CgroupPath::parse(Some("/"), "x").is_err());
    }
}
