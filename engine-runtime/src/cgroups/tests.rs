//! Unit tests against fake cgroup trees in temp dirs. The real kernel is
//! exercised by `tests/lib_cgroups.rs`.

use super::*;
use std::fs as sfs;

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// Make a fake cgroup directory with the given interface files (empty unless given).
fn fake(dir: &Path, files: &[(&str, &str)]) {
    sfs::create_dir_all(dir).unwrap();
    sfs::write(dir.join("cgroup.procs"), "").unwrap();
    for (f, v) in files {
        sfs::write(dir.join(f), v).unwrap();
    }
}

fn get(dir: &Path, f: &str) -> String {
    sfs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
}

fn v1_mountinfo(root: &Path, ctrls: &[&str]) -> String {
    let mut s = String::new();
    for (i, c) in ctrls.iter().enumerate() {
        let mp = root.join(c.trim_start_matches("name="));
        sfs::create_dir_all(&mp).unwrap();
        s.push_str(&format!("{} 1 0:{} / {} rw - cgroup cgroup rw,{c}\n", 40 + i, 40 + i, mp.display()));
    }
    s
}

#[test]
fn v1_resources_land_in_their_files() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let ctrls = ["memory", "cpu", "cpuset", "pids", "blkio", "devices", "freezer", "name=systemd"];
    let mi = v1_mountinfo(root, &ctrls);
    let h = Hierarchies::from_text(Layout::V1, &mi, "1:memory:/\n");
    let leaf = |c: &str| root.join(c).join("engine/c1");
    fake(&root.join("cpuset/engine"), &[("cpuset.cpus", "0-1"), ("cpuset.mems", "0")]);
    fake(
        &leaf("memory"),
        &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.soft_limit_in_bytes", ""),
            ("memory.swappiness", ""),
            ("memory.oom_control", ""),
        ],
    );
    fake(&leaf("cpu"), &[("cpu.shares", ""), ("cpu.cfs_period_us", ""), ("cpu.cfs_quota_us", "")]);
    fake(&leaf("cpuset"), &[("cpuset.cpus", ""), ("cpuset.mems", "")]);
    fake(&leaf("pids"), &[("pids.max", "")]);
    fake(&leaf("blkio"), &[("blkio.throttle.read_bps_device", ""), ("blkio.bfq.weight", "")]);
    fake(&leaf("devices"), &[("devices.allow", ""), ("devices.deny", "")]);
    fake(&leaf("freezer"), &[("freezer.state", "THAWED")]);
    fake(&leaf("systemd"), &[]);
    let r = res(r#"{
        "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432, "swappiness": 10, "disableOOMKiller": true},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 32},
        "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    }"#);
    let cg = h.create(None, "c1", Some(&r)).unwrap();
    assert_eq!(cg.path(), "/engine/c1");
    assert_eq!(cg.layout(), Layout::V1);
    let m = leaf("memory");
    assert_eq!(get(&m, "memory.limit_in_bytes"), "67108864");
    assert_eq!(get(&m, "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(get(&m, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(get(&m, "memory.swappiness"), "10");
    assert_eq!(get(&m, "memory.oom_control"), "1");
    assert_eq!(get(&leaf("cpu"), "cpu.shares"), "512");
    assert_eq!(get(&leaf("cpu"), "cpu.cfs_quota_us"), "50000");
    assert_eq!(get(&leaf("cpu"), "cpu.cfs_period_us"), "100000");
    // A new cpuset cgroup gets its parent's cpus and mems.
    assert_eq!(get(&leaf("cpuset"), "cpuset.cpus"), "0-1");
    assert_eq!(get(&leaf("cpuset"), "cpuset.mems"), "0");
    assert_eq!(get(&leaf("pids"), "pids.max"), "32");
    assert_eq!(get(&leaf("blkio"), "blkio.bfq.weight"), "300");
    assert_eq!(get(&leaf("blkio"), "blkio.throttle.read_bps_device"), "8:0 1048576");
    assert_eq!(get(&leaf("devices"), "devices.deny"), "a *:* rwm");
    assert_eq!(get(&leaf("devices"), "devices.allow"), "c 1:3 rwm");
    assert_eq!(cg.dirs().len(), ctrls.len());

    // Joining writes the pid to every hierarchy.
    cg.add_pid(4242).unwrap();
    for c in ["memory", "cpu", "freezer", "systemd"] {
        assert_eq!(get(&leaf(c), "cgroup.procs"), "4242");
    }
    // Freezer v1: FROZEN is written and read back.
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert_eq!(get(&leaf("freezer"), "freezer.state"), "THAWED");

    // The state file keeps it whole.
    let json = serde_json::to_string(&cg).unwrap();
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cg);
}

#[test]
fn v1_missing_controller_fails_and_removes_what_it_made() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let mi = v1_mountinfo(root, &["memory", "freezer"]);
    let h = Hierarchies::from_text(Layout::V1, &mi, "");
    let e = h.create(Some("/engine/c2"), "c2", Some(&res(r#"{"pids": {"limit": 10}}"#))).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("pids"), "{e}");
    assert!(!root.join("memory/engine").exists(), "made dirs must be removed");
    assert!(!root.join("freezer/engine").exists());
}

#[test]
fn existing_cgroup_with_processes_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let mi = v1_mountinfo(root, &["memory"]);
    let h = Hierarchies::from_text(Layout::V1, &mi, "");
    fake(&root.join("memory/busy"), &[("cgroup.procs", "77\n")]);
    let e = h.create(Some("/busy"), "x", None).unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.to_string().contains("busy") && e.to_string().contains("77"), "{e}");
    assert!(root.join("memory/busy").exists(), "an existing cgroup is not removed");
}

fn v2_setup(root: &Path) -> Hierarchies {
    let mi = format!("30 23 0:26 / {} rw - cgroup2 cgroup2 rw\n", root.display());
    fake(root, &[("cgroup.controllers", "cpuset cpu io memory hugetlb pids"), ("cgroup.subtree_control", "")]);
    fake(
        &root.join("engine"),
        &[("cgroup.controllers", "cpuset cpu io memory hugetlb pids"), ("cgroup.subtree_control", "")],
    );
    Hierarchies::from_text(Layout::V2, &mi, "0::/\n")
}

#[test]
fn v2_resources_are_converted() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let h = v2_setup(root);
    let leaf = root.join("engine/c3");
    fake(
        &leaf,
        &[
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("memory.low", "0"),
            ("cpu.weight", "100"),
            ("cpu.max", "max 100000"),
            ("cpuset.cpus", ""),
            ("pids.max", "max"),
            ("io.weight", "default 100"),
            ("io.max", ""),
            ("memory.high", "max"),
        ],
    );
    let r = res(r#"{
        "memory": {"limit": 67108864, "swap": 100663296, "reservation": 1048576},
        "cpu": {"shares": 1024, "quota": 25000, "period": 100000, "cpus": "0"},
        "pids": {"limit": -1},
        "blockIO": {"weight": 500, "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]},
        "unified": {"memory.high": "50000000"}
    }"#);
    let cg = h.create(None, "c3", Some(&r)).unwrap();
    assert_eq!(cg.layout(), Layout::V2);
    assert_eq!(cg.unified_dir(), Some(leaf.as_path()));
    assert_eq!(get(&leaf, "memory.max"), "67108864");
    assert_eq!(get(&leaf, "memory.swap.max"), "33554432");
    assert_eq!(get(&leaf, "memory.low"), "1048576");
    assert_eq!(get(&leaf, "cpu.weight"), "39");
    assert_eq!(get(&leaf, "cpu.max"), "25000 100000");
    assert_eq!(get(&leaf, "cpuset.cpus"), "0");
    assert_eq!(get(&leaf, "pids.max"), "max");
    assert_eq!(get(&leaf, "io.weight"), "default 4950");
    assert_eq!(get(&leaf, "io.max"), "8:16 wiops=100");
    assert_eq!(get(&leaf, "memory.high"), "50000000");
    // Controllers were enabled in the parents (the fake file keeps the last write).
    assert!(get(root, "cgroup.subtree_control").starts_with('+'));
    assert!(get(&root.join("engine"), "cgroup.subtree_control").starts_with('+'));
}

#[test]
fn v2_bad_values_are_named() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let h = v2_setup(root);
    let e = h.create(None, "c4", Some(&res(r#"{"memory": {"limit": 1000000, "swap": 10}}"#))).unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("memory.swap"), "{e}");
    assert!(!root.join("engine/c4").exists());
    let e = h.create(None, "c5", Some(&res(r#"{"unified": {"../escape": "1"}}"#))).unwrap_err();
    assert!(e.to_string().contains("../escape"), "{e}");
    let e = h.create(None, "c6", Some(&res(r#"{"cpu": {"realtimeRuntime": 1000}}"#))).unwrap_err();
    assert!(e.to_string().contains("realtime"), "{e}");
    // A controller file that does not exist: the error names it.
    let e = h.create(None, "c7", Some(&res(r#"{"pids": {"limit": 5}}"#))).unwrap_err();
    assert!(e.to_string().contains("pids.max"), "{e}");
    assert!(!root.join("engine/c7").exists());
}

#[test]
fn hybrid_hugetlb_goes_to_unified() {
    let sizes = convert::host_hugepage_sizes();
    let Some(size) = sizes.first() else { return };
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let mut mi = v1_mountinfo(root, &["memory"]);
    let uni = root.join("unified");
    mi.push_str(&format!("50 1 0:50 / {} rw - cgroup2 cgroup2 rw\n", uni.display()));
    fake(&uni, &[("cgroup.controllers", "hugetlb"), ("cgroup.subtree_control", "")]);
    fake(&uni.join("engine"), &[("cgroup.controllers", "hugetlb"), ("cgroup.subtree_control", "")]);
    let file = format!("hugetlb.{size}.max");
    fake(&uni.join("engine/c8"), &[(file.as_str(), "max")]);
    let h = Hierarchies::from_text(Layout::Hybrid, &mi, "");
    let r = res(&format!(r#"{{"hugepageLimits": [{{"pageSize": "{size}", "limit": 4194304}}]}}"#));
    let cg = h.create(None, "c8", Some(&r)).unwrap();
    assert_eq!(get(&uni.join("engine/c8"), &file), "4194304");
    assert_eq!(get(&uni, "cgroup.subtree_control"), "+hugetlb");
    assert_eq!(cg.dirs().len(), 2);
    let e = h.create(None, "c9", Some(&res(r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#))).unwrap_err();
    assert!(e.to_string().contains("3MB"), "{e}");
}

#[test]
fn v1_unified_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let mi = v1_mountinfo(t.path(), &["memory"]);
    let h = Hierarchies::from_text(Layout::V1, &mi, "");
    let e = h.create(None, "u", Some(&res(r#"{"unified": {"memory.high": "1"}}"#))).unwrap_err();
    assert!(e.to_string().contains("unified"), "{e}");
}

#[test]
fn layout_detects_this_host() {
    // Whatever the host, detection succeeds and agrees with the mounts.
    let layout = Layout::detect().unwrap();
    let h = Hierarchies::detect().unwrap();
    assert_eq!(h.layout(), layout);
    match layout {
        Layout::V2 => assert!(h.v1_controllers().is_empty() && h.unified_mountpoint().is_some()),
        Layout::Hybrid => assert!(!h.v1_controllers().is_empty() && h.unified_mountpoint().is_some()),
        Layout::V1 => assert!(!h.v1_controllers().is_empty()),
    }
}

#[test]
fn detection_without_the_mount_table_agrees_with_it() {
    // On a host with the conventional layout, `detect` finds the hierarchies
    // with statfs alone; what it finds is what the mount table says.
    let layout = Layout::detect().unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let from_table = Hierarchies::from_text(layout, &mountinfo, &cgroup);
    assert_eq!(Hierarchies::detect().unwrap(), from_table);
    if let Some(fast) = Hierarchies::from_conventional(layout, &cgroup) {
        assert_eq!(fast, from_table);
    }
}
