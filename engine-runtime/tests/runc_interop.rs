//! engine-runc in runc's place under podman (through conmon): run, exec,
//! stop and remove a container from a local busybox image, as a user would.

mod common;
use common::*;
use std::process::{Command, Stdio};

struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let dir = tempfile::Builder::new().prefix("runc-podman-").tempdir().unwrap();
        // File locks in its own tmpdir: podman's default SHM locks live in one
        // /dev/shm segment that every podman on the machine shares, so two
        // tests (or a test and a user's podman) collide ("failed to create
        // 2048 locks in /libpod_lock: file exists").
        std::fs::write(dir.path().join("containers.conf"), "[engine]\nlock_type = \"file\"\n").unwrap();
        Podman { dir }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"));
        c.arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            // Its own libpod tmpdir too: the default /run/libpod is shared, and
            // another test's `system reset` removes it.
            .arg("--tmpdir")
            .arg(self.dir.path().join("libpod"))
            .arg("--volumepath")
            .arg(self.dir.path().join("volumes"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"])
            .arg("--runtime")
            .arg(bin());
        c.stdin(Stdio::null());
        c
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd().args(args).output_files();
        assert!(o.status.success(), "podman {args:?}: {}{}", stderr(&o), stdout(&o));
        stdout(&o)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output_files();
        let _ = self.cmd().args(["system", "reset", "-f"]).output_files();
    }
}

#[test]
fn podman_runs_containers_with_engine_runc() {
    let p = Podman::new();
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    let archive = tempfile::NamedTempFile::new().unwrap();
    let st = Command::new("tar").arg("-C").arg(rootfs.path()).arg("-cf").arg(archive.path()).arg(".").status().unwrap();
    assert!(st.success());
    let o = p.cmd().args(["import", archive.path().to_str().unwrap(), "localhost/runc-interop"]).output_files();
    assert!(o.status.success(), "podman import: {}", stderr(&o));
    // This host's root may not raise rlimits above its own: ask for modest ones (runc needs the same).
    let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--net", "none"];

    let mut args = vec!["run", "--rm"];
    args.extend(limits);
    args.extend(["localhost/runc-interop", "sh", "-c", "echo pid=$$; id -u; ulimit -n"]);
    assert_eq!(p.ok(&args), "pid=1\n0\n1024\n");

    let name = unique_id("pod");
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend(limits);
    args.extend(["localhost/runc-interop", "sleep", "300"]);
    p.ok(&args);
    assert_eq!(
        p.ok(&["exec", &name, "sh", "-c", "echo exec $(cat /proc/1/cmdline | tr '\\0' ' ')"]),
        "exec sleep 300\n"
    );
    p.ok(&["pause", &name]);
    assert!(p.ok(&["inspect", "--format", "{{.State.Status}}", &name]).contains("paused"));
    p.ok(&["unpause", &name]);
    p.ok(&["rm", "-f", "-t", "0", &name]);
    assert!(!p.ok(&["ps", "-a", "--format", "{{.Names}}"]).contains(&name));

    // A missing program is reported with engine-runc's message.
    let mut args = vec!["run", "--rm"];
    args.extend(limits);
    args.extend(["localhost/runc-interop", "no-such-program"]);
    let o = p.cmd().args(&args).output_files();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-program"), "{}", stderr(&o));
}

/// A private containerd (own root, state and socket), killed and cleaned up on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new().prefix("runc-ctd-").tempdir().unwrap();
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n[grpc]\n  address = \"{d}/ctd.sock\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_tcp_service = true\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd is installed");
        let c = Containerd { dir, child };
        let t = std::time::Instant::now();
        while c.ctr().args(["version"]).output_files().status.code() != Some(0) {
            assert!(t.elapsed() < std::time::Duration::from_secs(20), "containerd did not come up");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        c
    }
    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(self.dir.path().join("ctd.sock"));
        c.stdin(Stdio::null());
        c
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctr().args(args).output_files();
        assert!(o.status.success(), "ctr {args:?}: {}{}", stderr(&o), stdout(&o));
        stdout(&o)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Unmount whatever containerd left under its directories, deepest first.
        let mut m = mounts_under(self.dir.path());
        m.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in m {
            let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn containerd_shim_runs_containers_with_engine_runc() {
    // An image archive, made locally with podman (no registry).
    let p = Podman::new();
    let rootfs = tempfile::tempdir().unwrap();
    busybox_rootfs(rootfs.path());
    let archive = tempfile::NamedTempFile::new().unwrap();
    assert!(Command::new("tar")
        .arg("-C")
        .arg(rootfs.path())
        .arg("-cf")
        .arg(archive.path())
        .arg(".")
        .status()
        .unwrap()
        .success());
    p.ok(&["import", archive.path().to_str().unwrap(), "localhost/runc-ctd"]);
    let oci = p.dir.path().join("image.tar");
    p.ok(&["save", "--format", "oci-archive", "-o", oci.to_str().unwrap(), "localhost/runc-ctd"]);

    let ctd = Containerd::start();
    ctd.ok(&["images", "import", "--snapshotter", "native", oci.to_str().unwrap()]);
    let image = "localhost/runc-ctd:latest";
    let rt = ["--snapshotter", "native", "--runc-binary", bin()];
    let id = unique_id("ctd");
    let mut args = vec!["run", "--rm"];
    args.extend(rt);
    args.extend([image, id.as_str(), "sh", "-c", "echo pid=$$; id -u"]);
    assert_eq!(ctd.ok(&args), "pid=1\n0\n");

    let id = unique_id("ctd");
    let mut args = vec!["run", "-d"];
    args.extend(rt);
    args.extend([image, id.as_str(), "sleep", "300"]);
    ctd.ok(&args);
    let o = ctd.ctr().args(["task", "exec", "--exec-id", "e1", &id, "sh", "-c", "echo in exec; exit 3"]).output_files();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "in exec\n");
    ctd.ok(&["task", "pause", &id]);
    assert!(ctd.ok(&["task", "ls"]).contains("PAUSED"));
    ctd.ok(&["task", "resume", &id]);
    ctd.ok(&["task", "kill", "-s", "KILL", &id]);
    let t = std::time::Instant::now();
    while !ctd.ok(&["task", "ls"]).contains("STOPPED") && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ctd.ok(&["task", "delete", &id]);
    ctd.ok(&["container", "delete", &id]);

    // A failure reaches the user with engine-runc's message, through the --log file containerd reads.
    let id = unique_id("ctd");
    let mut args = vec!["run", "--rm"];
    args.extend(rt);
    args.extend([image, id.as_str(), "no-such-program"]);
    let o = ctd.ctr().args(&args).output_files();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-program") && stderr(&o).contains("not found"), "{}", stderr(&o));
}
