//! A VM's boot through [`engine_vm::VmRuntime`] with real QEMU guests: the
//! console the monitor keeps, and the bound on a boot that makes no
//! progress (its QEMU stopped: a hung guest), which fails with an error
//! naming what the VM was waiting for and leaves nothing behind.
//!
//! Needs `engine-vm` and `engine-vm-agent` built (`cargo build -p engine-vm --bins`).

use engine_core::{ContainerId, Runtime};
use engine_vm::monitor::files;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// These tests boot real guests: a machine without QEMU or a kernel fails
/// them (scripts/install-deps.sh installs both) rather than skipping.
fn require_vm_support() {
    assert!(has_vm_support(), "qemu-system-x86_64 or /boot/vmlinuz-* missing: run scripts/install-deps.sh");
}

fn has_vm_support() -> bool {
    engine_core::binary::find_in_path("qemu-system-x86_64").is_some()
        && std::fs::read_dir("/boot")
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-")))
            .unwrap_or(false)
}

/// A bundle whose root holds a static busybox as `/bin/sh`, running `args`.
fn bundle(dir: &Path, args: &[&str]) -> PathBuf {
    let bundle = dir.join("bundle");
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/usr/bin/busybox", bin.join("busybox")).unwrap();
    for name in ["sh", "sleep", "echo"] {
        std::os::unix::fs::symlink("busybox", bin.join(name)).unwrap();
    }
    let mut spec = oci_spec::runtime::Spec::default();
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    process.set_terminal(Some(false));
    spec.set_process(Some(process));
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    bundle
}

fn alive(pid: i32) -> bool {
    // A zombie counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).is_some_and(|st| st != "Z"))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_kept_with_the_agents_boot_steps() {
    require_vm_support();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let rt = engine_vm::VmRuntime::new(&root);
    let id = ContainerId::new("console").unwrap();
    let bundle = bundle(dir.path(), &["sh", "-c", "exit 0"]);
    let pid = rt.create(&id, &bundle, Default::default()).await.unwrap();
    // The console comes by its own channel: its last line may follow the agent's answer.
    let steps = ["started", "modules loaded", "control port found", "root mounted, saying hello", "container created"];
    let log = root.join("console").join(files::CONSOLE);
    let has_all = || {
        let console = std::fs::read_to_string(&log).unwrap_or_default();
        steps.iter().all(|s| console.contains(&format!("engine-vm-agent: {s}")))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_all() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        has_all(),
        "the agent's steps {steps:?} are not all in {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(!root.join("console").join(files::CONSOLE_SOCKET).exists());
    rt.delete(&id, true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(pid), "the monitor {pid} outlived the delete");
    assert!(!root.join("console").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_boot_that_makes_no_progress_fails_naming_it_and_leaves_nothing() {
    require_vm_support();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let bound = Duration::from_secs(3);
    let rt = engine_vm::VmRuntime::new(&root).boot_timeout(bound);
    let id = ContainerId::new("hung").unwrap();
    let bundle = bundle(dir.path(), &["sh", "-c", "exit 0"]);
    // The guest hangs: its QEMU is stopped once it has connected to the
    // monitor (the monitor removes the socket then), while the guest boots
    // (a stopped process does not wait for a CPU: the time counts against the bound).
    let state = root.join("hung");
    let stopper = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let pid =
                std::fs::read_to_string(state.join(files::QEMU_PID)).ok().and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|_| !state.join(files::AGENT).exists()) {
                // SAFETY: kill(2) of the QEMU this test's runtime started.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                return Some(pid);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    });
    let t = Instant::now();
    let err = rt.create(&id, &bundle, Default::default()).await.unwrap_err().to_string();
    let qemu = stopper.join().unwrap().expect("QEMU's pid was never recorded");
    assert!(err.contains("the VM's boot made no progress"), "{err}");
    assert!(err.contains("the guest kernel to boot and the agent to say hello"), "{err}");
    assert!(err.contains("the guest's console"), "{err}");
    assert!(t.elapsed() >= bound, "failed after {:?}, before its bound", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(60), "took {:?}", t.elapsed());
    assert!(!alive(qemu), "QEMU {qemu} was left behind");
    assert!(!root.join("hung").exists(), "the state dir was left behind");
}

/// A cgroup of this test's own that lets its processes have `quota_us` of
/// CPU time per `period_us` (cgroup v2's `cpu.max`, or v1's CFS quota);
/// `None` where the host offers neither.
struct Throttle {
    dir: PathBuf,
}

impl Throttle {
    fn new(quota_us: u64, period_us: u64) -> Option<Throttle> {
        let name = format!("engine-vm-test-{}-{}", std::process::id(), rand_suffix());
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
        if v2.exists() {
            let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control").unwrap_or_default();
            if !controllers.split_whitespace().any(|c| c == "cpu") {
                return None;
            }
            let dir = Path::new("/sys/fs/cgroup").join(name);
            std::fs::create_dir(&dir).ok()?;
            let t = Throttle { dir };
            std::fs::write(t.dir.join("cpu.max"), format!("{quota_us} {period_us}")).ok()?;
            return Some(t);
        }
        let cpu = Path::new("/sys/fs/cgroup/cpu");
        if !cpu.join("cpu.cfs_quota_us").exists() {
            return None;
        }
        let dir = cpu.join(name);
        std::fs::create_dir(&dir).ok()?;
        let t = Throttle { dir };
        std::fs::write(t.dir.join("cpu.cfs_period_us"), period_us.to_string()).ok()?;
        std::fs::write(t.dir.join("cpu.cfs_quota_us"), quota_us.to_string()).ok()?;
        Some(t)
    }

    /// Move the process `pid` (all its threads) into the cgroup.
    fn add(&self, pid: i32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        // Its processes are gone (or going): wait for the cgroup to empty, bounded.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    use std::io::Read;
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_boot_starved_of_cpu_goes_on_past_its_running_time_bound() {
    require_vm_support();
    // QEMU gets 20 ms of CPU per 200 ms: a boot takes several times its
    // bound in wall-clock time, and CPU-less gaps of 180 ms are what made the
    // guest kernel's timer calibration fail before its clocks were virtual.
    let Some(throttle) = Throttle::new(20_000, 200_000) else {
        eprintln!("skipped: no cgroup cpu controller to starve QEMU with");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let bound = Duration::from_secs(20);
    let rt = engine_vm::VmRuntime::new(&root).boot_timeout(bound);
    let id = ContainerId::new("starved").unwrap();
    let bundle = bundle(dir.path(), &["sh", "-c", "exit 0"]);
    let pid_file = root.join("starved").join(files::QEMU_PID);
    let t = Instant::now();
    let create = rt.create(&id, &bundle, Default::default());
    let starve = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                throttle.add(pid);
                return pid;
            }
            assert!(Instant::now() < deadline, "QEMU's pid was never recorded");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (created, qemu) = tokio::join!(create, starve);
    let took = t.elapsed();
    let pid = created.unwrap_or_else(|e| panic!("the starved boot failed after {took:?}: {e}"));
    assert!(took > bound, "the boot took {took:?}: QEMU {qemu} was not starved");
    let console = std::fs::read_to_string(root.join("starved").join(files::CONSOLE)).unwrap();
    assert!(!console.contains("APIC frequency too slow"), "{console}");
    rt.delete(&id, true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (alive(pid) || alive(qemu)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(qemu) && !alive(pid), "QEMU {qemu} or the monitor {pid} outlived the delete");
    drop(throttle);
}
