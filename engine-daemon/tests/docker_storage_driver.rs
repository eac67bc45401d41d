//! `engined --storage-driver vfs|overlay2` through the real docker CLI: the
//! second snapshotter behind the storage seam runs containers whose writes
//! survive a restart, `docker info` names the driver in use, and removal
//! leaves nothing behind.

mod common;
use common::*;

/// Overlay mounts whose options or mount point mention `dir`.
fn overlay_mounts_under(dir: &std::path::Path) -> Vec<String> {
    let d = dir.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - overlay ") && l.contains(d.as_ref()))
        .map(String::from)
        .collect()
}

/// Files named `name` under `dir` (not following symlinks).
fn find_named(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name() == name {
                out.push(e.path());
            }
        }
    }
    out
}

fn entries(p: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(p) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn vfs_runs_containers_without_overlay_and_leaves_nothing() {
    let e = Engined::start_with(&["--storage-driver", "vfs"]);
    e.load_busybox();
    assert_eq!(e.ok(&["info", "--format", "{{.Driver}}"]).trim(), "vfs");

    e.ok(&["run", "-d", "--name", "store1", "bb", "sleep", "1000"]);
    e.ok(&[
        "exec",
        "store1",
        "sh",
        "-c",
        "echo kept > /kept.txt && mkdir -p /srv/d && echo x > /srv/d/x && rm /etc/group",
    ]);
    assert!(overlay_mounts_under(e.dir.path()).is_empty(), "vfs made an overlay mount");
    // The root filesystem is a plain directory on the host holding the container's files.
    let found = find_named(e.dir.path(), "kept.txt");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(std::fs::read_to_string(&found[0]).unwrap(), "kept\n");

    // Writes survive a restart (stop, start): the copy is the container's disk.
    e.ok(&["restart", "-t", "1", "store1"]);
    let s = e.ok(&["exec", "store1", "sh", "-c", "cat /kept.txt /srv/d/x; ls /etc/group 2>&1 || true"]);
    assert!(s.starts_with("kept\nx\n") && s.contains("No such file"), "{s}");

    // A second container from the same image sees the image, not the first one's writes.
    let s = e.ok(&["run", "--rm", "bb", "sh", "-c", "ls /kept.txt 2>&1; cat /etc/group | head -1"]);
    assert!(s.contains("No such file") && s.contains("root:"), "{s}");

    // Removal frees everything.
    e.ok(&["rm", "-f", "store1"]);
    let images = e.data_root().join("images");
    assert_eq!(entries(&images.join("rootfs")), Vec::<String>::new(), "root filesystems left behind");
    assert_eq!(entries(&images.join("tmp")), Vec::<String>::new(), "scratch files left behind");
    let left = e.ok(&["ps", "-aq"]);
    assert_eq!(left.trim(), "");
}

#[test]
fn default_driver_is_overlay2_and_unknown_ones_are_refused() {
    let e = Engined::start();
    assert_eq!(e.ok(&["info", "--format", "{{.Driver}}"]).trim(), "overlay2");
    let status = e.ok(&["info", "--format", "{{json .DriverStatus}}"]);
    assert!(status.contains("Backing Filesystem"), "{status}");

    // An unknown driver: engined refuses to start, naming the flag and the value,
    // and makes nothing.
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_engined"))
        .arg("-H")
        .arg(format!("unix://{}", dir.path().join("s.sock").display()))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("run"))
        .args(["--storage-driver", "devicemapper"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--storage-driver") && err.contains("devicemapper"), "{err}");
    assert_eq!(entries(dir.path()), Vec::<String>::new(), "engined left files behind: {err}");
}
