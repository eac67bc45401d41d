//! `/dev` in the container: the default devices, `linux.devices`, and the
//! standard symlinks.

use super::mounts::{create_dest, open_in_root, prepare_target, secure_join};
use super::syscall::Syscall;
use engine_core::{Error, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::path::{Path, PathBuf};

/// A device node to create, parsed from the config or the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Path inside the container.
    pub path: PathBuf,
    /// `c`, `b` or `p`.
    pub kind: char,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The devices every container gets (runc's list): null, zero, full, random, urandom, tty.
pub fn defaults() -> Vec<Device> {
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
        .iter()
        .map(|(n, ma, mi)| Device {
            path: PathBuf::from("/dev").join(n),
            kind: 'c',
            major: *ma,
            minor: *mi,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect()
}

/// Convert a `linux.devices` entry.
pub fn from_oci(d: &LinuxDevice) -> Result<Device> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::P => 'p',
        LinuxDeviceType::A => {
            return Err(Error::invalid(
                format!("device {}", d.path().display()),
                "type \"a\" is not a device node type",
            ))
        }
    };
    if !d.path().starts_with("/dev") {
        return Err(Error::invalid(format!("device {}", d.path().display()), "must be under /dev"));
    }
    Ok(Device {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// The device list for a config: the defaults, overridden by `linux.devices` of the same path.
pub fn plan(spec_devices: Option<&Vec<LinuxDevice>>) -> Result<Vec<Device>> {
    let mut out = defaults();
    for d in spec_devices.into_iter().flatten() {
        let d = from_oci(d)?;
        out.retain(|x| x.path != d.path);
        out.push(d);
    }
    Ok(out)
}

/// Create the device nodes under `rootfs`. In a user namespace, where mknod is
/// not allowed, bind-mount the host's node instead.
pub fn create(sys: &dyn Syscall, rootfs: &Path, devices: &[Device], userns: bool) -> Result<()> {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::empty());
    let r = devices.iter().try_for_each(|d| create_one(sys, rootfs, d, userns));
    umask(old);
    r
}

fn create_one(sys: &dyn Syscall, rootfs: &Path, d: &Device, userns: bool) -> Result<()> {
    if userns {
        // The node is bound onto a file made and opened inside the rootfs.
        let t = prepare_target(rootfs, &d.path, "bind", true)?;
        return sys.mount(Some(&d.path), t.path(), Some("bind"), MsFlags::MS_BIND, None);
    }
    // The node is made in its parent directory, opened inside the rootfs
    // (never followed out of it); the name itself is not followed.
    let parent = d.path.parent().unwrap_or(Path::new("/"));
    let name = d.path.file_name().ok_or_else(|| Error::invalid("device path", d.path.display().to_string()))?;
    create_dest(&secure_join(rootfs, parent), false)?;
    let dir = open_in_root(rootfs, parent, false)?;
    let dest = dir.path().join(name);
    let _ = std::fs::remove_file(&dest);
    let fmt = match d.kind {
        'b' => libc::S_IFBLK,
        'p' => libc::S_IFIFO,
        _ => libc::S_IFCHR,
    };
    sys.mknod(&dest, fmt | d.mode, libc::makedev(d.major as u32, d.minor as u32))?;
    if d.uid != 0 || d.gid != 0 {
        sys.lchown(&dest, d.uid, d.gid)?;
    }
    Ok(())
}

/// The `/dev` symlinks: fd, stdin, stdout, stderr, ptmx (to `pts/ptmx`) and core.
pub fn symlinks(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    // Resolved inside the rootfs by the kernel: a `dev` symlink in an image must not lead to the host.
    let dev = open_in_root(rootfs, Path::new("/dev"), false)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        let link = dev.path().join(name);
        if name == "ptmx" {
            let _ = std::fs::remove_file(&link);
        }
        match sys.symlink(Path::new(target), &link) {
            Ok(()) => {}
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The cgroup `devices` rules that let the container use `devices` (the
/// runtime passes the defaults) and the terminals, appended after the config's
/// own rules, as runc does.
pub fn cgroup_rules(devices: &[Device]) -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;
    let mut rules: Vec<_> = devices
        .iter()
        .filter_map(|d| {
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(if d.kind == 'b' { LinuxDeviceType::B } else { LinuxDeviceType::C })
                .major(d.major as i64)
                .minor(d.minor as i64)
                .access("rwm")
                .build()
                .ok()
        })
        .collect();
    // /dev/pts/* and /dev/ptmx.
    for (ma, mi) in [(136, None), (5, Some(2))] {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(true).typ(LinuxDeviceType::C).major(ma).access("rwm");
        if let Some(mi) = mi {
            b = b.minor(mi);
        }
        if let Ok(r) = b.build() {
            rules.push(r);
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::syscall::Recorder;

    #[test]
    fn default_and_configured_devices() {
        let extra: Vec<LinuxDevice> =
            serde_json::from_str(r#"[{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0},{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384}]"#)
                .unwrap();
        let devs = plan(Some(&extra)).unwrap();
        assert_eq!(devs.len(), 7);
        assert_eq!(devs.iter().find(|d| d.path == Path::new("/dev/null")).unwrap().mode, 0o600);
        let root = tempfile::tempdir().unwrap();
        let r = Recorder::default();
        create(&r, root.path(), &devs, false).unwrap();
        let calls = r.calls.borrow();
        // Made through the parent directory opened inside the root.
        let fuse = format!("/fuse 20666 {}", libc::makedev(10, 229));
        assert!(calls.iter().any(|c| c.starts_with("mknod /proc/self/fd/") && c.ends_with(&fuse)), "{calls:?}");
        assert!(root.path().join("dev").is_dir());
        // A `dev` symlink in the image leads inside the rootfs, never to the host
        // (real symlinks, made in a temporary rootfs).
        let evil = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", evil.path().join("dev")).unwrap();
        std::fs::create_dir(evil.path().join("etc")).unwrap();
        symlinks(&crate::linux::syscall::LinuxSyscall, evil.path()).unwrap();
        assert_eq!(std::fs::read_link(evil.path().join("etc/stdin")).unwrap(), Path::new("/proc/self/fd/0"));
        assert_eq!(std::fs::read_link(evil.path().join("etc/ptmx")).unwrap(), Path::new("pts/ptmx"));
        let bad: Vec<LinuxDevice> =
            serde_json::from_str(r#"[{"path":"/etc/x","type":"c","major":1,"minor":1}]"#).unwrap();
        assert!(plan(Some(&bad)).unwrap_err().to_string().contains("/etc/x"));
    }
}
