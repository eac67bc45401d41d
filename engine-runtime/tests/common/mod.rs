//! Shared helpers for engine-runtime's integration tests: a busybox-static
//! rootfs, a bundle with an editable config, and an `engine-runc` with its
//! own `--root` that force-deletes its containers when dropped.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique container id for this test process.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// Fill `rootfs` with Debian's busybox-static and its applets, plus /etc/passwd and /etc/group.
pub fn busybox_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed (/bin/busybox)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["proc", "dev", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n").unwrap();
}

/// A bundle directory: `rootfs/` from busybox and a `config.json` made from
/// `oci_spec`'s default (runc's `spec`), editable as JSON.
pub struct Bundle {
    /// The temp dir holding it.
    pub dir: tempfile::TempDir,
    /// The config, written by [`Bundle::write`].
    pub config: Value,
}

impl Bundle {
    /// Run in a new user namespace, container ids 0-65535 mapped to host
    /// 100000-165535, without cgroup mounts (a cgroup v1 file system cannot
    /// be mounted from a user namespace); writes the config.
    pub fn in_user_namespace(&mut self) {
        self.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        self.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        self.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        self.config["mounts"].as_array_mut().unwrap().retain(|m| m["type"] != "cgroup");
        self.write();
    }
    /// A bundle whose process runs `args` (no terminal, writable rootfs).
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new().prefix("runc-bundle-").tempdir().unwrap();
        busybox_rootfs(&dir.path().join("rootfs"));
        let mut config = serde_json::to_value(oci_spec::runtime::Spec::default()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["readonly"] = json!(false);
        config["hostname"] = json!("testhost");
        let b = Bundle { dir, config };
        b.write();
        b
    }
    /// The bundle path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// The rootfs path.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
    /// Write `config.json`.
    pub fn write(&self) {
        std::fs::write(self.path().join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }
    /// Set the process args and write.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self.write();
        self
    }
    /// Put the container in cgroup `/engine-runc-test/<id>` (so a test can find it) and write.
    pub fn cgroup_for(&mut self, id: &str) -> String {
        let p = format!("/engine-runc-test/{id}");
        self.config["linux"]["cgroupsPath"] = json!(p);
        self.write();
        p
    }
}

/// `engine-runc` with its own state root; force-deletes every container it knows when dropped.
pub struct Runc {
    /// The state root.
    pub root: tempfile::TempDir,
    ids: std::cell::RefCell<Vec<String>>,
    /// The root is a tmpfs this value mounted (unmounted when dropped).
    tmpfs: bool,
}

impl Default for Runc {
    fn default() -> Self {
        Self::new()
    }
}

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_engine-runc")
}

impl Runc {
    /// A fresh state root.
    pub fn new() -> Runc {
        Runc {
            root: tempfile::Builder::new().prefix("runc-root-").tempdir().unwrap(),
            ids: Default::default(),
            tmpfs: false,
        }
    }
    /// A fresh state root on a tmpfs of its own (as `/run` usually is).
    pub fn on_tmpfs() -> Runc {
        let mut r = Runc::new();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m,mode=700", "tmpfs"])
            .arg(r.root.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs on {}", r.root.path().display());
        r.tmpfs = true;
        r
    }
    /// A command with `--root` set and stdio null/captured.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root").arg(self.root.path());
        c.stdin(Stdio::null());
        c
    }
    /// Remember `id` for cleanup.
    pub fn track(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_string());
    }
    /// Run with these args; capture output.
    pub fn exec(&self, args: &[&str]) -> Output {
        if let Some(pos) = args.iter().position(|a| matches!(*a, "create" | "run")) {
            if let Some(id) = args.last() {
                let _ = pos;
                self.track(id);
            }
        }
        self.cmd().args(args).output_files()
    }
    /// Run with these args and assert success; stdout as a string.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.exec(args);
        assert!(o.status.success(), "engine-runc {args:?} failed: {}{}", stderr(&o), stdout(&o));
        stdout(&o)
    }
    /// `create` (stdout/stderr to /dev/null so the init does not hold test pipes).
    pub fn create(&self, bundle: &Bundle, id: &str) {
        self.track(id);
        let o = self.cmd().args(["create", "--bundle"]).arg(bundle.path()).arg(id).output_files();
        assert!(o.status.success(), "create {id}: {}", stderr(&o));
    }
    /// `run` the bundle in the foreground; returns (exit code, stdout, stderr).
    pub fn run(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let o = self.exec(&["run", "--bundle", bundle.path().to_str().unwrap(), id]);
        (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
    }
    /// Run and assert success; stdout.
    pub fn run_ok(&self, bundle: &Bundle, id: &str) -> String {
        let (code, out, err) = self.run(bundle, id);
        assert_eq!(code, 0, "run {id}: stdout {out} stderr {err}");
        out
    }
    /// The state JSON.
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }
    /// The state directory of a container.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.path().join(id)
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.cmd().args(["delete", "--force", id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        if self.tmpfs {
            let _ = Command::new("umount").arg(self.root.path()).status();
        }
    }
}

/// Run a command with stdout and stderr going to temp files rather than
/// pipes: a container's init inherits them, and a pipe would stay open.
pub trait OutputFiles {
    /// Like `output()`, but through files.
    fn output_files(&mut self) -> Output;
}

impl OutputFiles for Command {
    fn output_files(&mut self) -> Output {
        use std::io::{Read, Seek};
        let mut out = tempfile::tempfile().unwrap();
        let mut err = tempfile::tempfile().unwrap();
        self.stdout(out.try_clone().unwrap()).stderr(err.try_clone().unwrap());
        let status = self.status().unwrap();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        out.rewind().unwrap();
        out.read_to_end(&mut o).unwrap();
        err.rewind().unwrap();
        err.read_to_end(&mut e).unwrap();
        Output { status, stdout: o, stderr: e }
    }
}

/// stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// True when `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let st = s.rsplit_once(')').map(|(_, r)| r.trim_start().chars().next().unwrap_or('?')).unwrap_or('?');
            st != 'Z' && st != 'X'
        }
        Err(_) => false,
    }
}

/// Pids of processes whose command line mentions `needle` (e.g. a test's state root).
pub fn procs_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == std::process::id() as i32 {
            continue;
        }
        if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&c).contains(needle) && pid_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Mount points (from our mountinfo) under `path`.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_string_lossy().into_owned();
    mi.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&p)).map(String::from).collect()
}

/// The cgroup directories a cgroupsPath maps to on this host (v1 controllers and/or unified).
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    // Pure v2: /sys/fs/cgroup itself is the hierarchy.
    if Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
        return vec![Path::new("/sys/fs/cgroup").join(rel)];
    }
    // v1 or hybrid: one hierarchy per directory (symlinks like cpu,cpuacct are aliases).
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) && p.join("cgroup.procs").exists() {
            out.push(p.join(rel));
        }
    }
    assert!(!out.is_empty(), "no cgroup hierarchy found under /sys/fs/cgroup");
    out
}

/// Assert that a container left nothing: no state dir, no cgroup dir, no process, no mount.
pub fn assert_no_leftovers(runc: &Runc, id: &str, bundle: &Bundle, cgroups_path: Option<&str>) {
    assert!(!runc.state_dir(id).exists(), "state dir of {id} left behind");
    if let Some(cg) = cgroups_path {
        for d in cgroup_dirs(cg) {
            assert!(!d.exists(), "cgroup {} left behind", d.display());
        }
    }
    let root = runc.root.path().to_string_lossy().into_owned();
    let procs: Vec<i32> = procs_mentioning(&root)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).split('\0').any(|a| a == id))
                .unwrap_or(false)
        })
        .collect();
    assert!(procs.is_empty(), "processes of {id} left behind: {procs:?}");
    assert!(mounts_under(bundle.path()).is_empty(), "mounts left behind: {:?}", mounts_under(bundle.path()));
}
