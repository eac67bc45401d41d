//! engine-runc rootfs and mounts: /proc/mounts seen from inside, bind mounts
//! with options, readonly rootfs, masked and readonly paths, devices and
//! /dev symlinks, sysctl, --no-pivot.

mod common;
use common::*;
use serde_json::json;

fn mount_line<'a>(mounts: &'a str, dest: &str) -> &'a str {
    mounts.lines().find(|l| l.split(' ').nth(1) == Some(dest)).unwrap_or_else(|| panic!("{dest} not in\n{mounts}"))
}

#[test]
fn default_mounts_and_binds() {
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("hello"), "from host").unwrap();
    let host_file = host_dir.path().join("single");
    std::fs::write(&host_file, "one file").unwrap();
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/mounts; cat /data/hello; echo; cat /etc/single; echo; echo x > /data/w && echo writable; echo y > /rw/w && echo rwok"]);
    let rw = tempfile::tempdir().unwrap();
    b.config["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/data", "type": "bind", "source": host_dir.path(), "options": ["rbind", "ro", "nosuid", "nodev"]}),
        json!({"destination": "/etc/single", "type": "bind", "source": host_file, "options": ["bind", "ro"]}),
        json!({"destination": "/rw", "type": "none", "source": rw.path(), "options": ["bind", "rw", "noexec"]}),
        json!({"destination": "/scratch/deep", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "mode=700"]}),
    ]);
    b.write();
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &unique_id("mnt"));
    assert_eq!(code, 0, "{err}");
    let proc = mount_line(&out, "/proc");
    assert!(proc.starts_with("proc /proc proc"), "{proc}");
    assert!(mount_line(&out, "/dev").contains("tmpfs"));
    assert!(mount_line(&out, "/dev/pts").contains("devpts"));
    assert!(mount_line(&out, "/dev/shm").contains("tmpfs"));
    assert!(mount_line(&out, "/dev/mqueue").contains("mqueue"));
    assert!(mount_line(&out, "/sys").contains("sysfs"));
    let data = mount_line(&out, "/data");
    assert!(data.contains(" ro,") && data.contains("nosuid") && data.contains("nodev"), "{data}");
    assert!(mount_line(&out, "/etc/single").contains(" ro"), "file bind");
    let rwl = mount_line(&out, "/rw");
    assert!(rwl.contains(" rw,") && rwl.contains("noexec"), "{rwl}");
    let t = mount_line(&out, "/scratch/deep");
    assert!(t.contains("tmpfs") && t.contains("size=1024k") && t.contains("mode=700"), "{t}");
    assert!(out.contains("from host\none file\n"), "{out}");
    assert!(!out.contains("\nwritable"), "a ro bind refuses writes: {out}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(out.contains("rwok"));
    assert_eq!(std::fs::read_to_string(rw.path().join("w")).unwrap(), "y\n");
    // The file bind destination was created as a file, the tmpfs one as nested dirs.
    assert!(b.rootfs().join("etc/single").is_file());
    assert!(b.rootfs().join("scratch/deep").is_dir());
    assert!(mounts_under(b.path()).is_empty(), "no mount leaks to the host");
}

#[test]
fn readonly_rootfs_masked_readonly_paths() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "touch /x 2>&1; echo ro=$?; cat /proc/timer_list | wc -c; ls /proc/acpi | wc -l; echo 1 > /proc/sys/kernel/ns_last_pid 2>&1; echo sys=$?; touch /tmp/ok && echo tmp",
    ]);
    b.config["root"]["readonly"] = json!(true);
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("ro"));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("Read-only"), "{out}");
    assert_eq!(lines[1], "ro=1");
    assert_eq!(lines[2].trim(), "0", "masked /proc/timer_list reads empty: {out}");
    assert_eq!(lines[3].trim(), "0", "masked /proc/acpi is empty: {out}");
    assert!(out.contains("sys=1"), "/proc/sys is read-only: {out}");
    assert!(out.contains("tmp\n"));
}

/// Docker's default `linux.maskedPaths` and `linux.readonlyPaths`.
use engine_core::security::{DEFAULT_MASKED_PATHS as DOCKER_MASKED, DEFAULT_READONLY_PATHS as DOCKER_READONLY};

/// A bundle with docker's default mounts, masked and readonly paths.
fn docker_default_bundle(script: &str) -> Bundle {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.config["mounts"] = json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
    ]);
    b.config["linux"]["maskedPaths"] = json!(DOCKER_MASKED);
    b.config["linux"]["readonlyPaths"] = json!(DOCKER_READONLY);
    b.write();
    b
}

/// `(major:minor, mount point, mount options)` of each line of a mountinfo.
fn mountinfo(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| l.contains(" - "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[2].to_string(), f[4].to_string(), f[5].to_string())
        })
        .collect()
}

/// `major:minor` of the filesystem holding `path` on the host.
fn dev_of(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let d = std::fs::symlink_metadata(path).unwrap().dev();
    format!("{}:{}", libc::major(d), libc::minor(d))
}

/// True on a cgroup v1 (or hybrid) host.
fn cgroup_v1_host() -> bool {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .any(|l| l.split(':').nth(1).is_some_and(|c| !c.is_empty()))
}

/// Masked directories are empty and read-only, and show the runtime's one
/// empty host directory: with docker's defaults a container has only the
/// superblocks it needs (proc, /dev, devpts, /dev/shm, mqueue, sysfs), none
/// per masked directory and (v1) none for /sys/fs/cgroup. Each superblock
/// costs kernel memory in every memory cgroup of the machine.
#[test]
fn masked_directories_and_cgroup_skeleton_add_no_superblock() {
    let dirs = ["/proc/acpi", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"];
    let present: Vec<&str> = dirs.iter().copied().filter(|d| std::path::Path::new(d).is_dir()).collect();
    assert!(present.len() >= 2, "this test needs at least two of {dirs:?} on the host");
    let script = format!(
        "cat /proc/self/mountinfo; echo ===; for d in {}; do echo $d $(ls -A $d | wc -l) $(mkdir $d/x 2>/dev/null && echo rw || echo ro); done; echo ===",
        present.join(" ")
    );
    let b = docker_default_bundle(&script);
    let runc = Runc::on_tmpfs();
    let host_before = mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let out = runc.run_ok(&b, &unique_id("sb"));
    let mut parts = out.split("===\n");
    let (mi, masks) = (parts.next().unwrap(), parts.next().unwrap());
    let mi = mountinfo(mi);

    // Every masked directory: empty, read-only as root, the runtime's empty directory.
    let empty = runc.root.path().join("@empty");
    let empty_dev = dev_of(&empty);
    for l in masks.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(&f[1..], &["0", "ro"], "masked directory empty and read-only: {l}");
        let (dev, _, opts) =
            mi.iter().rev().find(|(_, mp, _)| mp == f[0]).unwrap_or_else(|| panic!("{} not a mount", f[0]));
        assert_eq!(dev, &empty_dev, "{} shows the runtime's empty directory", f[0]);
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(opts.split(',').any(|x| x == o), "{} is {o}: {opts}", f[0]);
        }
    }
    assert_eq!(masks.lines().count(), present.len(), "{masks}");

    // The superblocks made for the container: the ones the host does not have.
    let host: std::collections::HashSet<&str> = host_before.iter().map(|(d, _, _)| d.as_str()).collect();
    let mut new: Vec<(&str, &str)> = Vec::new();
    for (dev, mp, _) in &mi {
        if !host.contains(dev.as_str()) && !new.iter().any(|(d, _)| d == dev) {
            new.push((dev, mp));
        }
    }
    let mut points: Vec<&str> = new.iter().map(|(_, mp)| *mp).collect();
    points.sort();
    assert_eq!(
        points,
        ["/dev", "/dev/mqueue", "/dev/pts", "/dev/shm", "/proc", "/sys"],
        "the container's own superblocks (no tmpfs for masking or /sys/fs/cgroup): {mi:?}"
    );

    // /sys/fs/cgroup on v1: the skeleton of the state root's filesystem, read-only.
    let cg = mi.iter().find(|(_, mp, _)| mp == "/sys/fs/cgroup").expect("/sys/fs/cgroup is mounted");
    if cgroup_v1_host() {
        assert_eq!(cg.0, dev_of(runc.root.path()), "/sys/fs/cgroup is a bind of the skeleton: {cg:?}");
        assert!(cg.2.split(',').any(|o| o == "ro"), "{cg:?}");
    }
    // The clones were closed: the container's process has stdio and, being
    // `ls` itself, the directory it reads.
    let mut b = b;
    b.args(&["ls", "/proc/self/fd"]);
    let fds = runc.run_ok(&b, &unique_id("sbfd"));
    assert_eq!(fds.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2", "3"], "the process's descriptors: {fds}");
}

/// In a user namespace (whose root cannot search the state root) the
/// masked directories are still the runtime's empty directory, read-only.
#[test]
fn masked_directories_in_a_user_namespace() {
    let script = "for d in /proc/acpi /sys/firmware; do echo $d $(ls -A $d | wc -l) $(mkdir $d/x 2>/dev/null && echo rw || echo ro); done; echo ===; cat /proc/self/mountinfo";
    let mut b = docker_default_bundle(script);
    b.in_user_namespace();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("sbuser"));
    let (masks, mi) = out.split_once("===\n").unwrap();
    let mi = mountinfo(mi);
    let empty_dev = dev_of(&runc.root.path().join("@empty"));
    for l in masks.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(&f[1..], &["0", "ro"], "masked directory empty and read-only: {l}");
        let (dev, _, _) = mi.iter().rev().find(|(_, mp, _)| mp == f[0]).unwrap();
        assert_eq!(dev, &empty_dev, "{} shows the runtime's empty directory", f[0]);
    }
}

/// On a cgroup v1 (or hybrid) host /sys/fs/cgroup lists one directory per
/// hierarchy, each with the hierarchy mounted on it, and a symlink per
/// controller of a combined one, as before; read-only when asked (the
/// skeleton), writable (a tmpfs of its own, as before) when not.
#[test]
fn cgroup_v1_skeleton_lists_the_hierarchies() {
    if !cgroup_v1_host() {
        eprintln!("not a cgroup v1 host: /sys/fs/cgroup is cgroup2, nothing to check");
        return;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut want: Vec<String> = Vec::new();
    let mut mounted: Vec<String> = Vec::new();
    for l in own.lines() {
        let ctrls = l.split(':').nth(1).unwrap();
        let name = if ctrls.is_empty() {
            "unified".to_string()
        } else {
            ctrls.strip_prefix("name=").unwrap_or(ctrls).to_string()
        };
        if name.contains(',') {
            for c in name.split(',') {
                want.push(format!("{c} -> {name}"));
            }
        }
        mounted.push(format!("/sys/fs/cgroup/{name}"));
        want.push(name);
    }
    want.sort();
    let script = "for e in /sys/fs/cgroup/*; do n=${e#/sys/fs/cgroup/}; if [ -L $e ]; then echo \"$n -> $(readlink $e)\"; else echo $n; fi; done; echo ===; mkdir /sys/fs/cgroup/x 2>&1 && echo rw; echo ===; cat /proc/self/mountinfo";
    let runc = Runc::on_tmpfs();
    for ro in [true, false] {
        let mut b = docker_default_bundle(script);
        if !ro {
            b.config["mounts"][4]["options"] = json!(["rw", "nosuid", "noexec", "nodev"]);
            b.write();
        }
        let out = runc.run_ok(&b, &unique_id("cgskel"));
        let mut parts = out.split("===\n");
        let (list, write, mi) = (parts.next().unwrap(), parts.next().unwrap(), mountinfo(parts.next().unwrap()));
        let mut got: Vec<&str> = list.lines().collect();
        got.sort();
        assert_eq!(got, want, "/sys/fs/cgroup lists the hierarchies (ro={ro})");
        for m in &mounted {
            assert!(mi.iter().any(|(_, mp, _)| mp == m), "{m} is mounted (ro={ro}): {mi:?}");
        }
        let top = mi.iter().find(|(_, mp, _)| mp == "/sys/fs/cgroup").unwrap();
        if ro {
            assert!(write.contains("Read-only file system"), "read-only: {write}");
            assert_eq!(top.0, dev_of(runc.root.path()), "the skeleton, not a superblock of its own: {top:?}");
        } else {
            assert_eq!(write.trim(), "rw", "writable when asked: {write}");
            let skel = std::fs::read_dir(runc.root.path())
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with("@cgroup-skel-"))
                .expect("the skeleton was made by the first container");
            assert!(
                std::fs::read_dir(skel.path().join(&want.iter().find(|w| !w.contains(" -> ")).unwrap()[..]))
                    .unwrap()
                    .next()
                    .is_none(),
                "a writable /sys/fs/cgroup is not the shared skeleton"
            );
        }
    }
    // From a state root that is no tmpfs, /sys/fs/cgroup stays a tmpfs of its
    // own: `statfs` tells a v1 host from a v2 one by it (systemd does).
    let plain = Runc::new();
    let fstype = |r: &Runc| {
        let b = docker_default_bundle("stat -f -c %T /sys/fs/cgroup");
        r.run_ok(&b, &unique_id("cgfs")).trim().to_string()
    };
    assert_eq!(fstype(&plain), "tmpfs", "state root on {}", plain.root.path().display());
    assert_eq!(fstype(&runc), "tmpfs", "the skeleton on the tmpfs state root");
}

/// A state root whose empty directory (or cgroup skeleton) holds something
/// is refused, naming it: a masked directory never shows host content. The
/// failed create leaves nothing.
#[test]
fn bad_empty_directory_is_refused_and_nothing_is_left() {
    use std::os::unix::fs::PermissionsExt;
    let runc = Runc::on_tmpfs();
    let empty = runc.root.path().join("@empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("planted"), "host secret").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut b = docker_default_bundle("true");
    // `run` fails naming `bad` and what it holds, and leaves nothing.
    let refused = |b: &mut Bundle, bad: &std::path::Path| {
        let id = unique_id("bad");
        let cg = b.cgroup_for(&id);
        let (code, _, err) = runc.run(b, &id);
        assert_ne!(code, 0, "{} holding a file is refused", bad.display());
        assert!(err.contains(&bad.display().to_string()) && err.contains("planted"), "{err}");
        assert_no_leftovers(&runc, &id, b, Some(&cg));
    };
    refused(&mut b, &empty);
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(empty.join("planted")).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o555)).unwrap();
    runc.run_ok(&b, &unique_id("goodempty"));

    if cgroup_v1_host() {
        let skel = std::fs::read_dir(runc.root.path())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("@cgroup-skel-"))
            .expect("the skeleton exists after a container with a cgroup mount")
            .path();
        std::fs::write(skel.join("planted"), "x").unwrap();
        refused(&mut b, &skel);
    }
}

#[test]
fn devices_and_symlinks() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "for d in null zero full random urandom tty fuse; do stat -c '%n %F %t:%T %a' /dev/$d; done; for l in fd stdin stdout stderr ptmx; do echo $l=$(readlink /dev/$l); done; head -c 4 /dev/zero | wc -c; echo hi > /dev/null && echo nullok",
    ]);
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384, "uid": 0, "gid": 0}]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
    ]);
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("dev"));
    assert!(out.contains("/dev/null character special file 1:3 666"), "{out}");
    assert!(out.contains("/dev/urandom character special file 1:9 666"), "{out}");
    assert!(out.contains("/dev/tty character special file 5:0 666"), "{out}");
    assert!(out.contains("/dev/fuse character special file a:e5 600"), "{out}");
    for l in [
        "fd=/proc/self/fd",
        "stdin=/proc/self/fd/0",
        "stdout=/proc/self/fd/1",
        "stderr=/proc/self/fd/2",
        "ptmx=pts/ptmx",
    ] {
        assert!(out.contains(l), "{l} in {out}");
    }
    assert!(out.contains("\n4\nnullok"), "the devices cgroup allows the default devices: {out}");
}

#[test]
fn sysctl_hostname_domainname_no_pivot() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax; hostname; cat /proc/sys/kernel/domainname",
    ]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"});
    b.config["hostname"] = json!("box1");
    b.config["domainname"] = json!("example.test");
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("sysctl"));
    assert_eq!(out, "1\n12345\nbox1\nexample.test\n");
    // The host is untouched.
    assert_ne!(std::fs::read_to_string("/proc/sys/kernel/msgmax").unwrap().trim(), "12345");

    // --no-pivot: MS_MOVE + chroot still gives a working container.
    b.args(&["sh", "-c", "cat /proc/self/mountinfo | head -1; ls /bin/busybox"]);
    let id = unique_id("nopivot");
    let o = runc.exec(&["run", "--no-pivot", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("/bin/busybox"));
}

#[test]
fn rootfs_propagation_private() {
    let mut b = Bundle::new(&["awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
    b.config["linux"]["rootfsPropagation"] = json!("private");
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("prop"));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(!out.contains("shared:") && !out.contains("master:"), "private root: {out}");
    b.config["linux"]["rootfsPropagation"] = json!("rslave");
    b.write();
    let out = runc.run_ok(&b, &unique_id("prop"));
    assert!(!out.contains("shared:"), "{out}");
}
