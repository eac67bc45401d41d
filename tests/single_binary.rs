//! One binary to ship: an application outside this workspace that depends on
//! `engine` (feature `single-binary`) is built alone, copied alone into an
//! empty directory and run with no other binary of this project reachable; it
//! runs a busybox container and execs into a running one, its shim and its
//! `engine-runc` being the application's own executable.
//!
//! The application is built with `CARGO_TARGET_DIR` set to this workspace's
//! target directory (and `--offline`, with this workspace's `Cargo.lock`), so
//! its dependencies are the ones already compiled: the build compiles the
//! `engine` crate with the feature and the application, about a minute on two
//! cores, not the whole dependency tree.

use std::path::{Path, PathBuf};
use std::process::Command;

const APP_MAIN: &str = r#"
use engine::{ContainerBuilder, Engine, WaitFor};

fn main() {
    engine::tier_main();
    let root = std::env::args().nth(1).expect("usage: onebin-app <root>");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(root)) {
        eprintln!("onebin-app: {e}");
        std::process::exit(1);
    }
}

async fn run(root: String) -> engine::Result<()> {
    let engine = Engine::builder().root(&root).single_binary().build().await?;
    engine.busybox_image("busybox:onebin").await?;
    let c = engine
        .run(ContainerBuilder::new("busybox:onebin").cmd(["echo", "hello from one binary"]).wait_for(WaitFor::exit_code(0)))
        .await?;
    print!("run: {}", c.stdout().await?);
    c.remove().await?;

    let svc = engine
        .run(ContainerBuilder::new("busybox:onebin").cmd(["sh", "-c", "echo ready; exec sleep 300"]).wait_for(WaitFor::stdout("ready")))
        .await?;
    let out = svc.exec(["sh", "-c", "echo exec beside pid 1 $(cat /proc/1/comm)"]).await?;
    println!("exec-code: {}", out.exit_code);
    print!("exec: {}", out.stdout_str());
    // The shim is the parent of the container's init.
    let pid = svc.inspect().await?.pid.expect("running container has a pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:")).unwrap().trim().to_string();
    println!("shim-exe: {}", std::fs::read_link(format!("/proc/{ppid}/exe")).unwrap().display());
    svc.remove().await?;
    Ok(())
}
"#;

/// The workspace's target directory (this test binary is in `<target>/debug/deps`).
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return d.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn an_application_built_alone_is_its_own_shim_and_runtime() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::Builder::new().prefix("onebin").tempdir_in("/tmp").unwrap();

    // The application: its own crate, outside the workspace.
    let src = tmp.path().join("onebin-app");
    write(
        &src.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"onebin-app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n\
             [dependencies]\nengine = {{ path = {:?}, features = [\"single-binary\"] }}\n\
             tokio = {{ version = \"1\", features = [\"full\"] }}\n",
            ws.display().to_string()
        ),
    );
    write(&src.join("src/main.rs"), APP_MAIN);
    std::fs::copy(ws.join("Cargo.lock"), src.join("Cargo.lock")).unwrap();
    let target = target_dir();
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--offline", "--quiet"])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .status()
        .unwrap();
    assert!(build.success(), "cargo build of the application failed");

    // Only the application's binary, in a directory of its own.
    let app_dir = tmp.path().join("app");
    std::fs::create_dir(&app_dir).unwrap();
    let app = app_dir.join("onebin-app");
    std::fs::copy(target.join("debug/onebin-app"), &app).unwrap();
    let path = "/usr/bin:/bin";
    for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        for name in ["engine-shim", "engine-runc"] {
            assert!(!Path::new(dir).join(name).exists(), "{dir}/{name} exists: the test needs a host without it");
        }
    }

    let root = tmp.path().join("root");
    let out = Command::new(&app).arg(&root).current_dir(&app_dir).env_clear().env("PATH", path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "application failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("run: hello from one binary\n"), "{stdout}");
    assert!(stdout.contains("exec-code: 0\n"), "{stdout}");
    // The exec'd process is in the container's pid namespace, whose pid 1 is the container's `sleep`.
    assert!(stdout.contains("exec: exec beside pid 1 sleep\n"), "{stdout}");
    assert!(stdout.contains(&format!("shim-exe: {}\n", app.display())), "{stdout}");
    for name in ["engine-shim", "engine-runc"] {
        assert_eq!(std::fs::read_link(root.join("bin").join(name)).unwrap(), app, "{name}");
    }
}
