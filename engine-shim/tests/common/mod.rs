//! Shared test helpers: busybox bundles, runtimes, cleanup guards.
#![allow(dead_code)]

use engine_core::{ContainerId, LaunchRequest, LogConfig, LogEntry, RuntimeBinary};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which runtime a test drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rt {
    Runc,
    EngineRunc,
}

/// Where the workspace's binaries are: `$ENGINE_BIN_DIR`, or two levels up
/// from the test executable (target/debug/deps/<test> -> target/debug).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

impl Rt {
    pub fn binary(self, root: &Path) -> RuntimeBinary {
        match self {
            Rt::Runc => RuntimeBinary::default()
                .name("runc".into())
                .path(which("runc").expect("runc is installed"))
                .root(Some(root.into()))
                .args(vec![]),
            Rt::EngineRunc => {
                let path = bin_dir().join("engine-runc");
                assert!(path.is_file(), "{} missing: run `cargo build --workspace --bins`", path.display());
                RuntimeBinary::default().name("engine-runc".into()).path(path).root(Some(root.into())).args(vec![])
            }
        }
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn shim_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_engine-shim"))
}

/// One test container's files and its cleanup: on drop (even after a
/// failed assertion) the container is force-deleted through the runtime and
/// the shim, if still alive, is killed.
pub struct TestContainer {
    pub id: ContainerId,
    pub dir: tempfile::TempDir,
    pub rt: Rt,
    pub runtime: RuntimeBinary,
    pub shim_pid: std::cell::Cell<Option<i32>>,
}

impl TestContainer {
    /// A bundle running `args` in a busybox rootfs.
    pub fn new(rt: Rt, name: &str, args: &[&str], terminal: bool) -> TestContainer {
        let id = ContainerId::new(format!("shimtest-{name}-{}", &engine_core::random_hex64()[..8])).unwrap();
        let dir = tempfile::Builder::new().prefix("eshim").tempdir_in("/tmp").unwrap();
        let bundle = dir.path().join("bundle");
        make_rootfs(&bundle.join("rootfs"));
        write_config(&bundle, args, terminal);
        std::fs::create_dir_all(dir.path().join("rtroot")).unwrap();
        let runtime = rt.binary(&dir.path().join("rtroot"));
        TestContainer { id, dir, rt, runtime, shim_pid: std::cell::Cell::new(None) }
    }

    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ctr-json.log")
    }

    pub fn request(&self) -> LaunchRequest {
        LaunchRequest::new(self.id.clone(), self.bundle(), self.state_dir(), self.runtime.clone())
            .log(Some(
                LogConfig::default()
                    .path(self.log_path())
                    .max_size(None)
                    .max_files(1)
                    .format(Default::default())
                    .fifo(None),
            ))
            .open_stdin(false)
            .owner_pid(None)
    }

    /// The log's entries.
    pub fn log_entries(&self) -> Vec<LogEntry> {
        let text = std::fs::read(self.log_path()).unwrap_or_default();
        text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| LogEntry::from_json_line(l).unwrap()).collect()
    }

    /// Does the runtime still know the container?
    pub fn runtime_knows(&self) -> bool {
        let mut c = std::process::Command::new(&self.runtime.path);
        c.arg("--root").arg(self.runtime.root.as_ref().unwrap()).arg("state").arg(self.id.as_str());
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        c.status().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.runtime.path)
            .arg("--root")
            .arg(self.runtime.root.as_ref().unwrap())
            .args(["delete", "--force", self.id.as_str()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if let Some(pid) = self.shim_pid.get() {
            if is_shim(pid) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Is `pid` a live engine-shim process?
pub fn is_shim(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p == shim_binary()).unwrap_or(false) && alive(pid)
}

/// Is `pid` running (not a zombie, not gone)?
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// The parent pid of `pid`.
pub fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok())
}

/// Children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
            if ppid(p) == Some(pid) && alive(p) {
                out.push(p);
            }
        }
    }
    out
}

pub fn make_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["proc", "dev", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let out = std::process::Command::new("/bin/busybox").arg("--list").output().unwrap();
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        if name != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(name));
        }
    }
}

pub fn write_config(bundle: &Path, args: &[&str], terminal: bool) {
    let mut spec = Spec::default();
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    process.set_terminal(Some(terminal));
    process.set_env(Some(vec!["PATH=/bin".into(), "TERM=xterm".into()]));
    spec.set_process(Some(process));
    let mut root = spec.root().clone().unwrap();
    root.set_path("rootfs".into());
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    let mut linux = spec.linux().clone().unwrap();
    if let Some(ns) = linux.namespaces().clone() {
        linux.set_namespaces(Some(ns.into_iter().filter(|n| n.typ() != LinuxNamespaceType::Network).collect()));
    }
    spec.set_linux(Some(linux));
    spec.save(bundle.join("config.json")).unwrap();
}

/// Poll `f` until it is true or `within` passes.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + within;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}
