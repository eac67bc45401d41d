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
        Podman { dir: tempfile::Builder::new().prefix("runc-podman-").tempdir().unwrap() }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
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
