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
    if !has_vm_support() {
        eprintln!("skipped: no QEMU or no kernel in /boot");
        return;
    }
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
    if !has_vm_support() {
        eprintln!("skipped: no QEMU or no kernel in /boot");
        return;
    }
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
