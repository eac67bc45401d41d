//! The same flows through the `engine` CLI (engine-client's binary).

mod common;
use common::*;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(e: &Engined, args: &[&str]) -> String {
    let o = e.engine(args);
    assert!(o.status.success(), "engine {args:?}: {}", show(&o));
    out(&o)
}

#[test]
fn engine_cli_flows() {
    let e = Engined::start();
    assert!(engine_bin().exists(), "build the workspace binaries first: {}", engine_bin().display());
    let tar = busybox_archive(e.dir.path(), "bb:latest");
    assert_eq!(ok(&e, &["load", "-i", tar.to_str().unwrap()]).trim(), "Loaded image: bb:latest");
    let images = ok(&e, &["images"]);
    assert!(
        images.starts_with("REPOSITORY") && images.lines().any(|l| l.starts_with("bb ") && l.contains("latest")),
        "{images}"
    );
    assert!(ok(&e, &["version"]).contains("API version:\t1.41"));
    assert!(ok(&e, &["info"]).contains("Images: 1"));
    // run --rm with output and exit codes.
    assert_eq!(ok(&e, &["run", "--rm", "bb", "echo", "hi"]), "hi\n");
    let o = e.engine(&["run", "--rm", "bb", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let o = e.engine_in(&["run", "--rm", "-i", "bb", "cat"], Some(b"via-engine\n"));
    assert_eq!(out(&o), "via-engine\n", "{}", show(&o));
    // -it through a pty.
    let (code, text) = interactive_tty(
        &format!("{} -H {} run --rm -it bb sh", engine_bin().display(), e.host()),
        &e,
        "echo via-engine-tty\nexit 6\n",
    );
    assert_eq!(code, Some(6), "{text}");
    assert!(text.replace('\r', "").lines().any(|l| l == "via-engine-tty"), "{text:?}");
    // ctrl-p ctrl-q detaches; the container runs on with its stdin open:
    // attached again, the same shell still reads what is typed.
    let mut s = TtySession::start(&format!("{} -H {} run --name det -it bb sh", engine_bin().display(), e.host()), &e);
    s.expect("# ");
    s.send("echo before-$((40+2))\n");
    s.expect("before-42");
    s.send("\x10\x11");
    let (code, text) = s.finish();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("read escape sequence"), "{text:?}");
    let ps = ok(&e, &["ps"]);
    assert!(ps.contains("det") && ps.contains("Up "), "{ps}");
    let mut s = TtySession::start(&format!("{} -H {} attach det", docker_cli(), e.host()), &e);
    s.send("echo again-$((40+3))\n");
    s.expect("again-43");
    s.send("exit 4\n");
    let (code, text) = s.finish();
    assert_eq!(code, Some(4), "{text}");
    ok(&e, &["rm", "-f", "det"]);
    // detached, ps, logs, exec, stop, wait, rm
    let id = ok(&e, &["run", "-d", "--name", "w1", "-e", "X=1", "bb", "sh", "-c", "echo started; echo $X; sleep 100"]);
    assert_eq!(id.trim().len(), 64);
    let ps = ok(&e, &["ps"]);
    assert!(ps.starts_with("CONTAINER ID") && ps.contains("w1") && ps.contains("Up "), "{ps}");
    assert_eq!(ok(&e, &["ps", "-q"]).trim(), &id.trim()[..12]);
    assert!(eventually(10, || out(&e.engine(&["logs", "w1"])) == "started\n1\n"));
    let logs = ok(&e, &["logs", "-t", "--tail", "1", "w1"]);
    assert!(logs.ends_with(" 1\n"), "{logs:?}");
    let o = e.engine(&["exec", "w1", "sh", "-c", "echo from-exec; exit 6"]);
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(out(&o), "from-exec\n");
    assert_eq!(ok(&e, &["stop", "-t", "1", "w1"]).trim(), "w1");
    assert_eq!(ok(&e, &["wait", "w1"]).trim(), "137");
    let j: serde_json::Value = serde_json::from_str(&ok(&e, &["inspect", "w1"])).unwrap();
    assert_eq!(j[0]["State"]["ExitCode"], 137);
    assert_eq!(ok(&e, &["rm", "w1"]).trim(), "w1");
    let o = e.engine(&["rm", "w1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such container: w1"), "{}", show(&o));
    // start, kill, restart, and the event stream that saw them.
    let unix = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let since = unix().to_string();
    ok(&e, &["run", "-d", "--name", "k2", "bb", "sleep", "100"]);
    assert_eq!(ok(&e, &["kill", "-s", "KILL", "k2"]).trim(), "k2");
    assert_eq!(ok(&e, &["wait", "k2"]).trim(), "137");
    assert_eq!(ok(&e, &["start", "k2"]).trim(), "k2");
    assert_eq!(ok(&e, &["restart", "-t", "0", "k2"]).trim(), "k2");
    assert!(ok(&e, &["ps"]).contains("k2"));
    assert_eq!(ok(&e, &["rm", "-f", "k2"]).trim(), "k2");
    // The events since then, replayed: the stream ends at --until.
    let until = (unix() + 1).to_string();
    let ev = ok(&e, &["events", "--filter", "container=k2", "--since", &since, "--until", &until]);
    for a in ["create", "start", "kill", "die", "destroy"] {
        assert!(ev.contains(&format!("container {a} ")), "no {a} in {ev}");
    }
    // import a plain rootfs tar.
    let rootfs = busybox_rootfs_tar(e.dir.path());
    let id = ok(&e, &["import", rootfs.to_str().unwrap(), "bb:imp"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(ok(&e, &["run", "--rm", "bb:imp", "/bin/echo", "imp"]), "imp\n");
    // images: tag, save, rmi, load back.
    ok(&e, &["tag", "bb", "bb:v9"]);
    assert!(ok(&e, &["images"]).contains("v9"));
    let saved = e.dir.path().join("engine-saved.tar");
    ok(&e, &["save", "-o", saved.to_str().unwrap(), "bb:v9"]);
    assert!(std::fs::metadata(&saved).unwrap().len() > 100_000);
    assert_eq!(ok(&e, &["rmi", "bb:v9"]).trim(), "Untagged: bb:v9");
    assert!(ok(&e, &["load", "-i", saved.to_str().unwrap()]).contains("Loaded image: bb:v9"));
    // push and pull against a loopback registry.
    let reg = Registry::start();
    let r = format!("{}/engine-bb:1", reg.addr);
    ok(&e, &["tag", "bb", &r]);
    ok(&e, &["push", &r]);
    ok(&e, &["rmi", &r]);
    assert!(ok(&e, &["pull", &r]).contains(&r));
    assert_eq!(ok(&e, &["run", "--rm", &r, "echo", "pulled"]), "pulled\n");
    // An unknown image is an error with docker's run exit status.
    let o = e.engine(&["run", "--rm", &format!("{}/missing", reg.addr), "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
}

#[test]
fn engine_host_from_environment() {
    let e = Engined::start();
    let o = std::process::Command::new(engine_bin()).arg("version").env("ENGINE_HOST", e.host()).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let o = std::process::Command::new(engine_bin())
        .arg("version")
        .env("ENGINE_HOST", format!("unix://{}/nope.sock", e.dir.path().display()))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unavailable"), "{}", show(&o));
}
