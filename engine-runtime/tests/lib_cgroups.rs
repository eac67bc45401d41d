//! Real cgroups on this host (v1, v2 or hybrid): create a cgroup, put a real
//! process in it, and check what a user would: the limit files, the process's
//! `/proc/<pid>/cgroup`, freezing, stats, OOM kills, and that nothing is left.
//! Needs root.

use engine_runtime::cgroups::{Cgroup, Hierarchies, Layout};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Tests that enable controllers at the cgroup2 root take this lock, and put
/// the root's `cgroup.subtree_control` back as they found it.
static ROOT_CONTROLLERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Disable at the cgroup2 root every controller enabled since `before` was read.
fn restore_subtree_control(root: &Path, before: &str) {
    let now = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
    for c in now.split_whitespace().filter(|c| !before.split_whitespace().any(|b| b == *c)) {
        let _ = std::fs::write(root.join("cgroup.subtree_control"), format!("-{c}"));
    }
}

/// Restores the cgroup2 root's controllers on drop (even when the test fails);
/// declared before the cgroup's [`Guard`], so it drops after it, once that cgroup is gone.
struct RestoreRoot(PathBuf, String);

impl Drop for RestoreRoot {
    fn drop(&mut self) {
        restore_subtree_control(&self.0, &self.1);
    }
}

fn res(json: &str) -> oci_spec::runtime::LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// Kills its children and destroys its cgroup, even when the test fails.
struct Guard {
    cg: Option<Cgroup>,
    children: Vec<Child>,
    path: String,
}

impl Guard {
    fn new(name: &str) -> Guard {
        Guard { cg: None, children: Vec::new(), path: format!("/engine-libtest/{name}-{}", std::process::id()) }
    }
    fn spawn(&mut self, args: &[&str]) -> i32 {
        let child = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }
    fn cg(&self) -> &Cgroup {
        self.cg.as_ref().unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(cg) = &self.cg {
            let _ = cg.thaw();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(cg) = &self.cg {
            let _ = cg.destroy();
        }
        // The test parent: removed when no other test uses it.
        let parent = Path::new(&self.path).parent().unwrap().to_string_lossy().into_owned();
        if let Ok(h) = Hierarchies::detect() {
            if let Ok(parent) = h.resolve(Some(&parent), "x") {
                for d in parent.dirs() {
                    let _ = std::fs::remove_dir(d);
                }
            }
        }
    }
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display())).trim().to_string()
}

/// The directory holding `file` for a controller: its v1 dir, else the unified one.
fn dir_for(cg: &Cgroup, controller: &str) -> PathBuf {
    cg.v1_dir(controller).or(cg.unified_dir()).unwrap().to_path_buf()
}

fn proc_cgroup(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

#[test]
fn limits_membership_freeze_stats_and_destroy() {
    let mut g = Guard::new("limits");
    let r = res(r#"{
        "memory": {"limit": 67108864, "reservation": 33554432},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 32}
    }"#);
    g.cg = Some(Cgroup::create(Some(&g.path), "limits", Some(&r)).unwrap());
    let cg = g.cg().clone();
    let layout = Layout::detect().unwrap();
    assert_eq!(cg.layout(), layout);

    // Limit files, as the kernel reports them.
    match cg.v1_dir("memory") {
        Some(m) => {
            assert_eq!(read(m, "memory.limit_in_bytes"), "67108864");
            assert_eq!(read(m, "memory.soft_limit_in_bytes"), "33554432");
        }
        None => {
            let u = cg.unified_dir().unwrap();
            assert_eq!(read(u, "memory.max"), "67108864");
            assert_eq!(read(u, "memory.low"), "33554432");
        }
    }
    match cg.v1_dir("cpu") {
        Some(c) => {
            assert_eq!(read(c, "cpu.shares"), "512");
            assert_eq!(read(c, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(c, "cpu.cfs_period_us"), "100000");
        }
        None => {
            let u = cg.unified_dir().unwrap();
            assert_eq!(read(u, "cpu.weight"), "20");
            assert_eq!(read(u, "cpu.max"), "50000 100000");
        }
    }
    assert_eq!(read(&dir_for(&cg, "cpuset"), "cpuset.cpus"), "0");
    assert_eq!(read(&dir_for(&cg, "pids"), "pids.max"), "32");

    // A real process joins every hierarchy.
    // The child execs `sleep` once it is in the cgroup, so its memory is charged there.
    let pid = g.spawn(&["sh", "-c", "sleep 0.2; exec sleep 60"]);
    cg.add_pid(pid).unwrap();
    // Wait for the exec (the shell's short-lived `sleep 0.2` child is gone by then).
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() != b"sleep\x0060\x00" {
        assert!(Instant::now() < deadline, "child never exec'd sleep 60");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pc = proc_cgroup(pid);
    let leaf = g.path.clone();
    for line in pc.lines() {
        let ctrls = line.split(':').nth(1).unwrap();
        let path = line.splitn(3, ':').nth(2).unwrap();
        let joined = ctrls.is_empty() && layout != Layout::V1 || !ctrls.is_empty() && layout != Layout::V2;
        if joined {
            assert_eq!(path, leaf, "hierarchy {ctrls:?} of pid {pid}: {pc}");
        }
    }
    assert_eq!(cg.pids().unwrap(), vec![pid]);

    // Freeze: the process stops running (its state is no longer S/R), thaw brings it back.
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    let deadline = Instant::now() + Duration::from_secs(5);
    while cg.stats().unwrap().memory_usage.unwrap_or(0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = cg.stats().unwrap();
    assert_eq!(s.pids_current, Some(1));
    assert_eq!(s.pids_limit, Some(32));
    assert_eq!(s.memory_limit, Some(67108864));
    assert!(s.memory_usage.unwrap_or(0) > 0, "{s:?}");
    assert!(s.cpu_usage_ns.unwrap_or(0) > 0, "{s:?}");

    // kill_all reaches the process; destroy leaves no directory.
    cg.kill_all(libc::SIGKILL).unwrap();
    let status = g.children[0].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    cg.destroy().unwrap();
    for d in cg.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    // Destroying again is fine.
    cg.destroy().unwrap();
}

#[test]
fn kill_all_with_sigterm_reaches_every_process() {
    let mut g = Guard::new("killall");
    g.cg = Some(Cgroup::create(Some(&g.path), "killall", None).unwrap());
    let pids: Vec<i32> = (0..3).map(|_| g.spawn(&["sleep", "60"])).collect();
    for p in &pids {
        g.cg().add_pid(*p).unwrap();
    }
    let mut listed = g.cg().pids().unwrap();
    listed.sort();
    let mut want = pids.clone();
    want.sort();
    assert_eq!(listed, want);
    g.cg().kill_all(libc::SIGTERM).unwrap();
    use std::os::unix::process::ExitStatusExt;
    for c in &mut g.children {
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGTERM));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !g.cg().pids().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    g.cg().destroy().unwrap();
}

#[test]
fn oom_kill_is_counted() {
    let mut g = Guard::new("oom");
    // 16 MiB of memory and no swap beyond it.
    let layout = Layout::detect().unwrap();
    let json = if layout == Layout::V2 {
        r#"{"memory": {"limit": 16777216, "swap": 16777216}}"#
    } else {
        r#"{"memory": {"limit": 16777216}}"#
    };
    let cg = Cgroup::create(Some(&g.path), "oom", Some(&res(json))).unwrap();
    if let Some(m) = cg.v1_dir("memory") {
        // With swap accounting, forbid swap too.
        if m.join("memory.memsw.limit_in_bytes").exists() {
            cg.apply(&res(r#"{"memory": {"limit": 16777216, "swap": 16777216}}"#)).unwrap();
        }
    }
    g.cg = Some(cg);
    assert_eq!(g.cg().oom_kill_count().unwrap(), 0);
    // A child that waits to be moved into the cgroup, then allocates 256 MiB.
    let pid = g.spawn(&["sh", "-c", "sleep 0.5; x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo ${#x}"]);
    g.cg().add_pid(pid).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while g.cg().oom_kill_count().unwrap() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(g.cg().oom_kill_count().unwrap() >= 1);
    assert!(g.cg().stats().unwrap().oom_kills.unwrap_or(0) >= 1);
}

#[test]
fn busy_cgroup_is_refused_and_bad_value_leaves_nothing() {
    let mut g = Guard::new("busy");
    g.cg = Some(Cgroup::create(Some(&g.path), "busy", None).unwrap());
    let pid = g.spawn(&["sleep", "60"]);
    g.cg().add_pid(pid).unwrap();
    let e = Cgroup::create(Some(&g.path), "busy", None).unwrap_err();
    assert!(e.is_conflict(), "{e}");

    // An empty cgroup left behind frozen is reused, thawed.
    let stale = format!("{}-stale", g.path);
    let left = Cgroup::create(Some(&stale), "stale", None).unwrap();
    left.freeze().unwrap();
    let again = Cgroup::create(Some(&stale), "stale", None).unwrap();
    assert!(!again.is_frozen().unwrap());
    again.destroy().unwrap();

    // A cpuset the host does not have: the error names the file and the value; nothing remains.
    let bad = format!("{}-bad", g.path);
    let e = Cgroup::create(Some(&bad), "bad", Some(&res(r#"{"cpu": {"cpus": "4000"}}"#))).unwrap_err();
    assert!(e.to_string().contains("cpuset.cpus") && e.to_string().contains("4000"), "{e}");
    let would_be = Cgroup::open(Some(&bad), "bad").unwrap();
    for d in would_be.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn devices_v1_rules_are_applied() {
    let mut g = Guard::new("devices");
    let r = res(r#"{"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}
    ]}"#);
    let cg = match Cgroup::create(Some(&g.path), "devices", Some(&r)) {
        Ok(cg) => cg,
        Err(e) => panic!("{e}"),
    };
    g.cg = Some(cg);
    let Some(d) = g.cg().v1_dir("devices") else { return }; // v2: eBPF, checked elsewhere
    let list = read(d, "devices.list");
    assert_eq!(list.lines().collect::<Vec<_>>(), ["c 1:3 rwm", "c 1:5 r"]);
}

#[test]
fn hugetlb_limit_on_this_host() {
    let h = Hierarchies::detect().unwrap();
    let sizes: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let kb: u64 = n.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
                    Some(if kb >= 1 << 20 { format!("{}GB", kb >> 20) } else { format!("{}MB", kb >> 10) })
                })
                .collect()
        })
        .unwrap_or_default();
    let Some(size) = sizes.iter().find(|s| s.as_str() == "2MB").or(sizes.first()).cloned() else { return };
    let in_v1 = h.v1_controllers().contains(&"hugetlb");
    let in_v2 = h
        .unified_mountpoint()
        .and_then(|m| std::fs::read_to_string(m.join("cgroup.controllers")).ok())
        .is_some_and(|c| c.split_whitespace().any(|x| x == "hugetlb"));
    if !in_v1 && !in_v2 {
        return;
    }
    let _lock = ROOT_CONTROLLERS.lock().unwrap_or_else(|e| e.into_inner());
    let uroot = h.unified_mountpoint().map(Path::to_path_buf);
    let before = uroot.as_ref().and_then(|r| std::fs::read_to_string(r.join("cgroup.subtree_control")).ok());
    let _restore = uroot.clone().map(|r| RestoreRoot(r, before.clone().unwrap_or_default()));
    let mut g = Guard::new("hugetlb");
    // A parent of its own, so that hugetlb can be unbound from v2 afterwards.
    let parent = format!("/engine-libtest-huge-{}", std::process::id());
    g.path = format!("{parent}/hugetlb");
    let r = res(&format!(r#"{{"hugepageLimits": [{{"pageSize": "{size}", "limit": 4194304}}]}}"#));
    g.cg = Some(Cgroup::create(Some(&g.path), "hugetlb", Some(&r)).unwrap());
    let cg = g.cg();
    match cg.v1_dir("hugetlb") {
        Some(d) => assert_eq!(read(d, &format!("hugetlb.{size}.limit_in_bytes")), "4194304"),
        None => assert_eq!(read(cg.unified_dir().unwrap(), &format!("hugetlb.{size}.max")), "4194304"),
    }
    if h.layout() == Layout::Hybrid && !in_v1 {
        // Leave the host as found: hugetlb unbound from v2 so it can still be mounted as v1.
        let cg = g.cg.take().unwrap();
        cg.destroy().unwrap();
        let root = uroot.unwrap();
        let _ = std::fs::remove_dir(root.join(parent.trim_start_matches('/')));
        restore_subtree_control(&root, before.as_deref().unwrap_or(""));
        assert!(!std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap().contains("hugetlb"));
    }
}

#[test]
fn v2_device_program_enforces_rules() {
    // The cgroup2 hierarchy (pure v2, or the `unified` mount of a hybrid host)
    // takes an eBPF device program; check what a process in the cgroup can open.
    let mut g = Guard::new("bpfdev");
    g.cg = Some(Cgroup::create(Some(&g.path), "bpfdev", None).unwrap());
    let Some(dir) = g.cg().unified_dir().map(Path::to_path_buf) else { return };
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]"#,
    )
    .unwrap();
    engine_runtime::cgroups::attach_device_filter(&dir, &rules).unwrap();
    // Replacing the program (an update) leaves exactly the new rules in force.
    engine_runtime::cgroups::attach_device_filter(&dir, &rules).unwrap();
    let script = "sleep 0.3; cat /dev/null && echo R; (echo x > /dev/null) 2>/dev/null && echo W; \
                  head -c1 /dev/zero > /dev/zero && echo Z; (cat /dev/full) 2>/dev/null; echo done";
    let child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    g.cg().add_pid(child.id() as i32).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "R\nZ\ndone\n");
}

#[test]
fn pure_v2_paths_on_this_hosts_cgroup2_mount() {
    // On a v1 or hybrid host, drive the v2 code paths (freeze via cgroup.freeze
    // and cgroup.events, cgroup.kill, cpu.stat, device program) against the
    // real cgroup2 mount, as if it were a pure v2 host. (On a v2 host the
    // tests above already run these paths.)
    let real = Hierarchies::detect().unwrap();
    if real.layout() == Layout::V2 {
        return;
    }
    let Some(mp) = real.unified_mountpoint().map(Path::to_path_buf) else { return };
    let _lock = ROOT_CONTROLLERS.lock().unwrap_or_else(|e| e.into_inner());
    let before = std::fs::read_to_string(mp.join("cgroup.subtree_control")).unwrap_or_default();
    let mountinfo = format!("1 1 0:1 / {} rw - cgroup2 cgroup2 rw\n", mp.display());
    let h = Hierarchies::from_text(Layout::V2, &mountinfo, "0::/\n");
    let _restore = RestoreRoot(mp.clone(), before.clone());
    let mut g = Guard::new("purev2");
    let parent = format!("/engine-libtest-v2-{}", std::process::id());
    g.path = format!("{parent}/c");
    let r = res(
        r#"{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}"#,
    );
    let cg = h.create(Some(&g.path), "c", Some(&r)).unwrap();
    assert_eq!(cg.layout(), Layout::V2);
    assert_eq!(cg.dirs(), vec![mp.join(g.path.trim_start_matches('/'))]);
    g.cg = Some(cg.clone());

    let child = Command::new("sh")
        .args(["-c", "sleep 0.3; (echo x > /dev/null) && echo null-ok; (head -c1 /dev/zero >/dev/null) 2>/dev/null || echo zero-denied; exec sleep 60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    cg.add_pid(pid).unwrap();
    assert!(proc_cgroup(pid).contains(&format!("0::{}", g.path)), "{}", proc_cgroup(pid));

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert_eq!(read(&cg.dirs()[0], "cgroup.freeze"), "1");
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() != b"sleep\x0060\x00" {
        assert!(Instant::now() < deadline, "child never exec'd sleep 60");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = cg.stats().unwrap();
    assert!(s.cpu_usage_ns.unwrap_or(0) > 0, "cpu.stat: {s:?}");
    assert_eq!(cg.pids().unwrap(), vec![pid]);

    cg.kill_all(libc::SIGKILL).unwrap();
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "null-ok\nzero-denied\n");
    cg.destroy().unwrap();
    assert!(!cg.dirs()[0].exists());
    let _ = std::fs::remove_dir(mp.join(parent.trim_start_matches('/')));
    // A pure-v2 create enables every controller the root offers; undo that now (and on failure, on drop).
    restore_subtree_control(&mp, &before);
}

#[test]
fn relative_cgroups_path_is_under_the_callers_cgroup() {
    let mut g = Guard::new("rel");
    g.path = format!("engine-libtest-rel-{}/c", std::process::id());
    g.cg = Some(Cgroup::create(Some(&g.path), "rel", None).unwrap());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let pid = g.spawn(&["sleep", "60"]);
    g.cg().add_pid(pid).unwrap();
    // Each hierarchy: the child's cgroup is this process's cgroup + the relative path.
    let child = proc_cgroup(pid);
    for line in own.lines() {
        let (key, path) = line.split_once(':').map(|(_, r)| r.split_once(':').unwrap()).unwrap();
        let want = format!("{}/{}", path.trim_end_matches('/'), g.path);
        let got = child.lines().find(|l| l.split(':').nth(1) == Some(key)).unwrap().splitn(3, ':').nth(2).unwrap();
        assert_eq!(got, want, "hierarchy {key:?}");
    }
}

#[test]
fn block_io_throttle_on_a_real_device() {
    // The first block device of this host (vda, loop0, ...): its major:minor.
    let Some(dev) = std::fs::read_dir("/sys/block")
        .ok()
        .and_then(|rd| rd.filter_map(|e| e.ok()).find_map(|e| std::fs::read_to_string(e.path().join("dev")).ok()))
    else {
        return;
    };
    let (major, minor) = dev.trim().split_once(':').unwrap();
    let mut g = Guard::new("blkio");
    let r = res(&format!(
        r#"{{"blockIO": {{"throttleReadBpsDevice": [{{"major": {major}, "minor": {minor}, "rate": 1048576}}],
                          "throttleWriteIOPSDevice": [{{"major": {major}, "minor": {minor}, "rate": 100}}]}}}}"#
    ));
    g.cg = Some(Cgroup::create(Some(&g.path), "blkio", Some(&r)).unwrap());
    let cg = g.cg();
    match cg.v1_dir("blkio") {
        Some(d) => {
            assert_eq!(read(d, "blkio.throttle.read_bps_device"), format!("{major}:{minor} 1048576"));
            assert_eq!(read(d, "blkio.throttle.write_iops_device"), format!("{major}:{minor} 100"));
        }
        None => {
            let io_max = read(cg.unified_dir().unwrap(), "io.max");
            assert!(io_max.contains(&format!("{major}:{minor} rbps=1048576")), "{io_max}");
            assert!(io_max.contains("wiops=100"), "{io_max}");
        }
    }
}
