//! `docker exec --privileged` through the real docker CLI against engined,
//! with dockerd's semantics: the exec'd process gets every capability (here:
//! every one the engine holds, as `--privileged` containers do), whatever the
//! container's own set; the container's seccomp profile still applies, and
//! the container and its other processes keep their own set.

mod common;
use common::*;

fn field(s: &str, k: &str) -> String {
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{k}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {k} in {s}"))
}

/// What the engine holds: CapEff & CapBnd of engined (its lifecycle manager runs in it).
fn engine_caps(pid: u32) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let f = |k: &str| u64::from_str_radix(&field(&s, k), 16).unwrap();
    format!("{:016x}", f("CapEff") & f("CapBnd"))
}

#[test]
fn privileged_exec_gets_every_capability_the_engine_holds() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["run", "-d", "--name", "px", "--cap-drop", "ALL", "bb", "sleep", "1000"]);
    let probe = ["grep", "-E", "CapEff|CapBnd|Seccomp|NoNewPrivs", "/proc/self/status"];

    // A plain exec has the container's (empty) set: chown needs CAP_CHOWN.
    let mut args = vec!["exec", "px"];
    args.extend_from_slice(&probe);
    let s = e.ok(&args);
    assert_eq!((field(&s, "CapEff"), field(&s, "CapBnd")), ("0000000000000000".into(), "0000000000000000".into()));
    let o = e.docker(&["exec", "px", "sh", "-c", "touch /tmp/f && chown 1:1 /tmp/f"]);
    assert_ne!(o.status.code(), Some(0), "chown without CAP_CHOWN succeeded: {}", show(&o));

    // --privileged: every capability the engine holds, in the effective and
    // bounding sets; the container's seccomp filter stays (dockerd: Seccomp 2).
    let mut args = vec!["exec", "--privileged", "px"];
    args.extend_from_slice(&probe);
    let s = e.ok(&args);
    let held = engine_caps(e.pid());
    assert_ne!(held, "0000000000000000");
    assert_eq!((field(&s, "CapEff"), field(&s, "CapBnd")), (held.clone(), held));
    assert_eq!(field(&s, "Seccomp"), "2", "a privileged exec must keep the container's seccomp filter: {s}");
    assert_eq!(field(&s, "NoNewPrivs"), "0");
    e.ok(&["exec", "--privileged", "px", "sh", "-c", "touch /tmp/f && chown 1:1 /tmp/f"]);
    assert_eq!(e.ok(&["exec", "px", "stat", "-c", "%u:%g", "/tmp/f"]).trim(), "1:1");

    // The container's own process, and later plain execs, keep the empty set.
    let s = e.ok(&["exec", "px", "grep", "CapEff", "/proc/1/status"]);
    assert_eq!(field(&s, "CapEff"), "0000000000000000");
    let s = e.ok(&["exec", "px", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(field(&s, "CapEff"), "0000000000000000");

    // The exec's inspect says what it was.
    let (code, body) =
        e.http("POST", "/containers/px/exec", br#"{"Cmd":["true"],"Privileged":true,"AttachStdout":false}"#);
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"].as_str().unwrap().to_string();
    let (code, body) = e.http("GET", &format!("/exec/{id}/json"), b"");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ProcessConfig"]["privileged"], true, "{body}");
}
