//! engine-runc hooks: all six kinds run at their point with the state JSON on
//! stdin; a failing or slow hook fails create and leaves nothing behind.

mod common;
use common::*;
use serde_json::{json, Value};

fn hook(cmd: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", cmd]})
}

#[test]
fn all_hooks_run_with_state_on_stdin() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().display().to_string();
    let mut b = Bundle::new(&["true"]);
    b.config["hooks"] = json!({
        "prestart": [hook(&format!("cat > {o}/prestart"))],
        "createRuntime": [hook(&format!("cat > {o}/createRuntime"))],
        // Runs in the container's mount namespace before pivot_root: host paths still resolve.
        "createContainer": [hook(&format!("cat > {o}/createContainer; readlink /proc/self/ns/mnt > {o}/createContainer.mnt"))],
        // Runs in the container after pivot_root: the path is the container's.
        "startContainer": [hook("cat > /startContainer")],
        "poststart": [hook(&format!("cat > {o}/poststart"))],
        "poststop": [hook(&format!("cat > {o}/poststop"))],
    });
    b.write();
    let runc = Runc::new();
    let id = unique_id("hooks");
    runc.create(&b, &id);
    let st = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out.path().join(name)).unwrap_or_else(|_| panic!("{name} ran")))
            .unwrap()
    };
    for name in ["prestart", "createRuntime", "createContainer"] {
        let s = st(name);
        assert_eq!(s["id"], id.as_str(), "{name}: {s}");
        assert_eq!(s["status"], "creating", "{name}: {s}");
        assert!(s["pid"].as_i64().unwrap() > 0);
    }
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(
        std::fs::read_to_string(out.path().join("createContainer.mnt")).unwrap().trim(),
        host_mnt.to_str().unwrap()
    );
    assert!(!out.path().join("poststart").exists());
    runc.ok(&["start", &id]);
    assert_eq!(st("poststart")["status"], "running");
    // startContainer hooks run in the container before its process; once that
    // process (`true`) has exited, the hook has written its file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while runc.state(&id)["status"] != "stopped" {
        assert!(std::time::Instant::now() < deadline, "the container never stopped: {}", runc.state(&id));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sc: Value = serde_json::from_str(&std::fs::read_to_string(b.rootfs().join("startContainer")).unwrap()).unwrap();
    assert_eq!(sc["id"], id.as_str());
    runc.ok(&["delete", "--force", &id]);
    assert_eq!(st("poststop")["status"], "stopped");
}

#[test]
fn failing_and_slow_hooks_fail_create_cleanly() {
    let runc = Runc::new();
    for (kind, h, needle) in [
        ("createRuntime", hook("echo hook-said-no >&2; exit 3"), "hook-said-no"),
        ("prestart", json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}), "timed out"),
        ("createContainer", hook("exit 4"), "createContainer hook"),
    ] {
        let mut b = Bundle::new(&["true"]);
        let id = unique_id("badhook");
        let cg = b.cgroup_for(&id);
        b.config["hooks"] = json!({ kind: [h] });
        b.write();
        let t = std::time::Instant::now();
        let o = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
        assert!(!o.status.success(), "{kind}");
        assert!(stderr(&o).contains(needle), "{kind}: {}", stderr(&o));
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        assert_no_leftovers(&runc, &id, &b, Some(&cg));
    }
}

#[test]
fn failing_poststart_is_a_logged_warning() {
    let mut b = Bundle::new(&["sleep", "300"]);
    b.config["hooks"] = json!({"poststart": [hook("echo poststart-broke >&2; exit 1")]});
    b.write();
    let runc = Runc::new();
    let id = unique_id("poststart");
    runc.create(&b, &id);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let o = runc.exec(&["--log", log.to_str().unwrap(), "--log-format", "json", "start", &id]);
    assert!(o.status.success(), "a poststart failure does not fail start: {}", stderr(&o));
    assert_eq!(runc.state(&id)["status"], "running");
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "warning");
    assert!(line["msg"].as_str().unwrap().contains("poststart-broke"), "{line}");
    runc.ok(&["delete", "--force", &id]);
}
