//! The embedded init on the host: exit status, signal forwarding, reaping.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn forwards_signals_and_reaps_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let init = engine_init::install(dir.path()).unwrap();
    // Installing again with the same bytes keeps the file.
    assert_eq!(engine_init::install(dir.path()).unwrap(), init);
    let run = |args: &[&str]| Command::new(&init).args(args).stdin(Stdio::null()).status().unwrap().code();
    assert_eq!(run(&["--", "sh", "-c", "exit 7"]), Some(7));
    assert_eq!(run(&["/nonexistent"]), Some(127));

    // An orphan (the subshell's `true`) is reparented to the init and reaped;
    // SIGTERM to the init reaches `sleep`, which dies of it: 128 + 15.
    let mut c = Command::new(&init)
        .args(["--", "sh", "-c", "(true &); echo spawned; exec sleep 1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "spawned\n");
    let pid = c.id();
    until("only the command left as the init's child", || children(pid).len() == 1);
    let st = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(st.success());
    assert_eq!(c.wait().unwrap().code(), Some(143));
}
