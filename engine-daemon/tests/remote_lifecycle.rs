//! engined with `--lifecycle`: the manager in its own engine-lifecycled process.

mod common;
use common::*;
use std::time::Duration;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn docker_cli_through_a_separate_lifecycle_manager() {
    let mut e = Engined::start_remote();
    e.load_busybox();
    let o = e.docker(&["run", "--rm", "bb", "sh", "-c", "echo remote; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    assert_eq!(out(&o), "remote\n");
    assert_eq!(e.ok(&["run", "--rm", "-i", "bb", "cat"]), "");
    let o = e.docker_in(&["run", "--rm", "-i", "bb", "cat"], Some(b"stdin-remote\n"));
    assert_eq!(out(&o), "stdin-remote\n", "{}", show(&o));
    e.ok(&["run", "-d", "--name", "r1", "bb", "sh", "-c", "i=0; while true; do echo t$i; i=$((i+1)); sleep 0.1; done"]);
    let o = e.docker(&["exec", "r1", "sh", "-c", "exit 6"]);
    assert_eq!(o.status.code(), Some(6), "{}", show(&o));
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "r1"])).unwrap();
    let pid = j[0]["State"]["Pid"].as_i64().unwrap();
    // Kill both daemons: the container keeps running and logging.
    e.kill9();
    e.kill9_lifecycled();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(alive(pid));
    e.spawn_lifecycled();
    e.spawn();
    let ps = e.ok(&["ps"]);
    assert!(ps.contains("r1") && ps.contains("Up "), "{ps}");
    // It logs on (however slowly a loaded machine runs it); every line, those
    // written while both daemons were down included, in order.
    let mut logs = String::new();
    assert!(
        eventually(60, || {
            logs = e.ok(&["logs", "r1"]);
            logs.lines().count() >= 10
        }),
        "{logs}"
    );
    let lines: Vec<&str> = logs.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("t{i}"));
    }
    assert_eq!(e.ok(&["exec", "r1", "echo", "back"]), "back\n");
    e.ok(&["stop", "-t", "1", "r1"]);
    assert_eq!(e.ok(&["wait", "r1"]).trim(), "137");
    assert!(!alive(pid));
}
