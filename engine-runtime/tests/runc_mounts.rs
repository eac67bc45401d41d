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

/// Masked directories are empty and read-only, and share one tmpfs (each
/// superblock costs the kernel memory in every memory cgroup).
#[test]
fn masked_directories_share_one_empty_read_only_tmpfs() {
    let dirs = ["/proc/acpi", "/sys/firmware"];
    for d in dirs {
        assert!(std::path::Path::new(d).is_dir(), "this test needs {d} on the host");
    }
    let script = "for d in /proc/acpi /sys/firmware; do echo $(ls -A $d | wc -l) $(mkdir $d/x 2>/dev/null && echo rw || echo ro) $(stat -c %d $d); done";
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.config["linux"]["maskedPaths"] = json!(dirs);
    b.write();
    let out = Runc::new().run_ok(&b, &unique_id("mask"));
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        assert_eq!(&l[..2], &["0", "ro"], "masked directory empty and read-only: {out}");
    }
    assert_eq!(lines[0][2], lines[1][2], "one tmpfs for both: {out}");
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
