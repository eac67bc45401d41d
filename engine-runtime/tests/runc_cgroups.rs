//! engine-runc cgroups: `linux.resources` lands in the container's cgroup
//! files (checked from the host and from inside), and delete removes it.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

#[test]
fn resources_in_cgroup_files() {
    let mut b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("cg");
    let cg = b.cgroup_for(&id);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 42});
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
    b.write();
    let runc = Runc::new();
    runc.create(&b, &id);
    let pid = runc.state(&id)["pid"].as_i64().unwrap();
    let rel = cg.trim_start_matches('/');
    let v1 = Path::new("/sys/fs/cgroup/memory").is_dir();
    if v1 {
        let m = Path::new("/sys/fs/cgroup/memory").join(rel);
        assert_eq!(read(&m.join("memory.limit_in_bytes")), "67108864");
        assert!(read(&m.join("cgroup.procs")).lines().any(|l| l == pid.to_string()));
        assert_eq!(read(&Path::new("/sys/fs/cgroup/pids").join(rel).join("pids.max")), "42");
        let cpu = Path::new("/sys/fs/cgroup/cpu").join(rel);
        let cpu = if cpu.exists() { cpu } else { Path::new("/sys/fs/cgroup/cpu,cpuacct").join(rel) };
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    } else {
        let d = Path::new("/sys/fs/cgroup").join(rel);
        assert_eq!(read(&d.join("memory.max")), "67108864");
        assert_eq!(read(&d.join("pids.max")), "42");
        assert_eq!(read(&d.join("cpu.max")), "50000 100000");
    }
    // Inside, through the cgroup namespace, the container sees its own limits.
    let o = runc.exec(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(stdout(&o).trim(), "42", "{}", stderr(&o));
    // update changes the limits of the live container.
    runc.ok(&["update", "--pids-limit", "17", "--memory", "33554432", &id]);
    let o = runc.exec(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(stdout(&o).trim(), "17");
    if v1 {
        assert_eq!(read(&Path::new("/sys/fs/cgroup/memory").join(rel).join("memory.limit_in_bytes")), "33554432");
    } else {
        assert_eq!(read(&Path::new("/sys/fs/cgroup").join(rel).join("memory.max")), "33554432");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.json"), r#"{"pids": {"limit": 23}}"#).unwrap();
    runc.ok(&["update", "--resources", dir.path().join("r.json").to_str().unwrap(), &id]);
    let o = runc.exec(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(stdout(&o).trim(), "23");
    runc.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}

#[test]
fn delete_removes_nested_cgroups_and_their_processes() {
    // A container that made cgroups below its own (as systemd or a nested
    // runtime inside it would), with its init moved into the deepest one:
    // delete --force kills it and removes the whole tree in every hierarchy.
    let mut b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("nested");
    let cg = b.cgroup_for(&id);
    let runc = Runc::new();
    runc.create(&b, &id);
    runc.ok(&["start", &id]);
    let pid = runc.state(&id)["pid"].as_i64().unwrap() as i32;
    let dirs: Vec<_> = cgroup_dirs(&cg).into_iter().filter(|d| d.exists()).collect();
    assert!(!dirs.is_empty());
    for d in &dirs {
        std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(d.join("other")).unwrap();
    }
    for d in &dirs {
        // cpuset children start empty on v1: give them the parent's cpus and mems.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if d.join(f).exists() {
                let v = read(&d.join(f));
                std::fs::write(d.join("sub").join(f), &v).unwrap();
                std::fs::write(d.join("sub/deeper").join(f), &v).unwrap();
            }
        }
        std::fs::write(d.join("sub/deeper/cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", d.join("sub/deeper").display()));
    }
    // `ps` still finds the init below the container's cgroup.
    assert!(runc.ok(&["ps", "--format", "json", &id]).contains(&pid.to_string()));
    runc.ok(&["delete", "--force", &id]);
    assert!(!pid_alive(pid));
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}

/// The init (which joins the v1 hierarchies itself and is cloned straight into
/// its cgroup2 directory) and an exec'd process end up in the container's
/// cgroup in every hierarchy the host has, as `/proc/<pid>/cgroup` shows.
#[test]
fn init_and_exec_are_in_the_cgroup_of_every_hierarchy() {
    let mut b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("cgjoin");
    let cg = b.cgroup_for(&id);
    let runc = Runc::new();
    runc.create(&b, &id);
    let init = runc.state(&id)["pid"].as_i64().unwrap();
    let pid_file = runc.root.path().join("exec.pid");
    runc.ok(&["exec", "-d", "--pid-file", pid_file.to_str().unwrap(), &id, "sleep", "300"]);
    let exec: i64 = read(&pid_file).parse().unwrap();
    let host_lines = std::fs::read_to_string("/proc/self/cgroup").unwrap().lines().count();
    for pid in [init, exec] {
        let lines: Vec<String> =
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap().lines().map(str::to_string).collect();
        assert_eq!(lines.len(), host_lines, "{lines:?}");
        for l in &lines {
            // hierarchy-id:controllers:path; v1 named hierarchies and cgroup2 included.
            let path = l.splitn(3, ':').nth(2).unwrap();
            assert_eq!(path, cg, "process {pid} outside the container cgroup: {l} (all: {lines:?})");
        }
    }
    runc.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}
