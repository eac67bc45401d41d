//! The real docker CLI (28.2.2, /usr/local/bin/docker) against engined.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_info_load_images() {
    let e = Engined::start();
    let v = e.ok(&["version"]);
    assert!(v.contains("Server: engine"), "{v}");
    assert!(v.contains("API version:      1.41"), "{v}");
    let info = e.ok(&["info"]);
    assert!(info.contains("Containers: 0") && info.contains("Images: 0"), "{info}");
    let loaded = e.load_busybox();
    assert_eq!(loaded.trim(), "Loaded image: bb:latest");
    let images = e.ok(&["images"]);
    let row = images.lines().find(|l| l.starts_with("bb ")).unwrap_or_else(|| panic!("no bb row: {images}"));
    assert!(row.split_whitespace().nth(1) == Some("latest"), "{images}");
    let info = e.ok(&["info"]);
    assert!(info.contains("Images: 1"), "{info}");
    // The untyped inspect probes containers, images, networks, volumes, plugins: all 404.
    let o = e.docker(&["inspect", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("No such object: nosuch"), "{}", show(&o));
}

#[test]
fn run_rm_passes_output_and_exit_codes() {
    let e = Engined::start();
    e.load_busybox();
    let o = e.docker(&["run", "--rm", "--network", "none", "bb", "echo", "hi"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(out(&o), "hi\n");
    let o = e.docker(&["run", "--rm", "bb", "sh", "-c", "echo to-err >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert_eq!(err(&o), "to-err\n");
    let o = e.docker(&["run", "--rm", "--network", "host", "bb", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // --rm removed them all.
    assert!(eventually(10, || e.ok(&["ps", "-aq"]).trim().is_empty()), "{}", e.ok(&["ps", "-a"]));
    // Without --rm the container stays, exited with its code.
    let o = e.docker(&["run", "--name", "keep", "bb", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let ps = e.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (5)") && ps.contains("keep"), "{ps}");
    // create, then start -a (wait next-exit is sent before start): output and exit code.
    e.ok(&["create", "--name", "later", "bb", "sh", "-c", "echo started-later; exit 2"]);
    assert!(e.ok(&["ps", "-a"]).contains("Created"));
    let o = e.docker(&["start", "-a", "later"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert_eq!(out(&o), "started-later\n");
    // And again: an exited container starts anew.
    let o = e.docker(&["start", "-a", "later"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert_eq!(out(&o), "started-later\n");
    let o = e.docker(&["ps", "-a", "--filter", "status=exited", "--filter", "name=later", "-q"]);
    assert_eq!(out(&o).lines().count(), 1, "{}", show(&o));
}

#[test]
fn detached_ps_logs_exec() {
    let e = Engined::start();
    e.load_busybox();
    let id = e.ok(&[
        "run",
        "-d",
        "--name",
        "s1",
        "bb",
        "sh",
        "-c",
        "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done; sleep 100",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = e.ok(&["ps"]);
    let row = ps.lines().find(|l| l.contains("s1")).unwrap_or_else(|| panic!("{ps}"));
    assert!(row.starts_with(&id[..12]) && row.contains("Up "), "{ps}");
    assert_eq!(e.ok(&["ps", "-q"]).trim(), &id[..12]);
    assert!(eventually(10, || e.docker(&["logs", "s1"]).stdout == b"out1\nout2\nout3\n"));
    let o = e.docker(&["logs", "s1"]);
    assert_eq!(err(&o), "err1\nerr2\nerr3\n");
    // The last two lines are out3 (stdout) and err3 (stderr).
    let o = e.docker(&["logs", "--timestamps", "--tail", "2", "s1"]);
    assert!(err(&o).ends_with(" err3\n"), "{}", show(&o));
    let line = out(&o);
    assert!(line.ends_with(" out3\n") && line.starts_with("20"), "{line:?}");
    // exec: output and exit code passed through.
    let o = e.docker(&["exec", "s1", "sh", "-c", "echo in-exec; exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    assert_eq!(out(&o), "in-exec\n");
    let o = e.docker(&["exec", "-i", "s1", "cat"]);
    assert_eq!(o.status.code(), Some(0));
    let o = e.docker_in(&["exec", "-i", "s1", "cat"], Some(b"to-exec-stdin\n"));
    assert_eq!(out(&o), "to-exec-stdin\n", "{}", show(&o));
    // logs -f ends when the container exits, with every line.
    e.ok(&["run", "-d", "--name", "f1", "bb", "sh", "-c", "for i in 1 2 3 4 5; do echo f$i; sleep 0.2; done"]);
    let t = Instant::now();
    let o = e.docker(&["logs", "-f", "f1"]);
    assert_eq!(out(&o), "f1\nf2\nf3\nf4\nf5\n", "{}", show(&o));
    assert!(t.elapsed() < Duration::from_secs(20));
    // exec in a stopped container is a 409.
    let o = e.docker(&["exec", "f1", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains("is not running"), "{}", show(&o));
}

#[test]
fn interactive_stdin_and_tty() {
    let e = Engined::start();
    e.load_busybox();
    let o = e.docker_in(&["run", "--rm", "-i", "bb", "cat"], Some(b"piped-stdin\nsecond line\n"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(out(&o), "piped-stdin\nsecond line\n");
    let o = e.docker_in(&["run", "--rm", "-i", "bb", "sh", "-c", "wc -l"], Some(b"a\nb\nc\n"));
    assert_eq!(out(&o).trim(), "3");
    // -t through a pty (script), so the CLI has a terminal.
    let cmd = format!("{} -H {} run --rm -t bb sh -c 'tty; echo done'", docker_cli(), e.host());
    let o = std::process::Command::new("timeout")
        .args(["60", "script", "-qec", &cmd, "/dev/null"])
        .env("DOCKER_CONFIG", e.dir.path().join("docker-config"))
        .output()
        .unwrap();
    let text = out(&o);
    assert!(text.contains("/dev/pts/") && text.contains("done"), "{}", show(&o));
    // -it: typed input reaches the container's shell through the terminal; its exit code comes back.
    let (code, text) = interactive_tty(
        &format!("{} -H {} run --rm -it bb sh", docker_cli(), e.host()),
        &e,
        "echo hello-from-tty\nexit 5\n",
    );
    assert_eq!(code, Some(5), "{text}");
    assert!(text.replace('\r', "").lines().any(|l| l == "hello-from-tty"), "{text:?}");
    // exec -it into a running container (exec resize included).
    e.ok(&["run", "-d", "--name", "tty1", "bb", "sleep", "100"]);
    let (code, text) = interactive_tty(
        &format!("{} -H {} exec -it tty1 sh", docker_cli(), e.host()),
        &e,
        "echo in-exec-tty\nexit 3\n",
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.replace('\r', "").lines().any(|l| l == "in-exec-tty"), "{text:?}");
    // The docker CLI's detach keys (ctrl-p ctrl-q, and --detach-keys): the
    // container runs on, its shell still reads its terminal when attached again.
    let mut s = TtySession::start(&format!("{} -H {} run --name det1 -it bb sh", docker_cli(), e.host()), &e);
    s.expect("# ");
    s.send("echo first-$((40+1))\n");
    s.expect("first-41");
    s.send("\x10\x11");
    let (code, text) = s.finish();
    assert_eq!(code, Some(0), "{text}");
    let ps = e.ok(&["ps", "--filter", "name=det1", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Up "), "{ps}");
    let mut s = TtySession::start(&format!("{} -H {} attach --detach-keys ctrl-x,y det1", docker_cli(), e.host()), &e);
    s.send("echo second-$((40+2))\n");
    s.expect("second-42");
    s.send("\x18y");
    // (`docker attach` reports a detach as "read escape sequence", exit 1.)
    let (_, text) = s.finish();
    assert!(text.contains("read escape sequence"), "{text}");
    let mut s = TtySession::start(&format!("{} -H {} attach det1", docker_cli(), e.host()), &e);
    s.send("echo third-$((40+3))\n");
    s.expect("third-43");
    s.send("exit 7\n");
    let (code, text) = s.finish();
    assert_eq!(code, Some(7), "{text}");
    e.ok(&["rm", "det1"]);
    // -t without a terminal on the CLI side: raw bytes, pty line endings.
    let o = e.docker(&["run", "--rm", "-t", "bb", "echo", "tty"]);
    assert_eq!(o.stdout, b"tty\r\n", "{}", show(&o));
}

#[test]
fn inspect_stop_kill_wait_rm() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["run", "-d", "--name", "s1", "-e", "FOO=bar", "--label", "k=v", "bb", "sleep", "100"]);
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "s1"])).unwrap();
    let c = &j[0];
    assert_eq!(c["Name"], "/s1");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(c["Config"]["Tty"], false);
    assert_eq!(c["Config"]["Labels"]["k"], "v");
    assert!(c["Config"]["Env"].as_array().unwrap().iter().any(|v| v == "FOO=bar"));
    assert_eq!(c["Path"], "sleep");
    assert_eq!(c["Args"][0], "100");
    let pid = c["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0 && alive(pid));
    // `sleep` as PID 1 ignores SIGTERM: stop -t 1 kills it after a second.
    let t = Instant::now();
    assert_eq!(e.ok(&["stop", "-t", "1", "s1"]).trim(), "s1");
    assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
    assert!(!alive(pid));
    assert_eq!(e.ok(&["wait", "s1"]).trim(), "137");
    // Already stopped: 304, which the CLI treats as success.
    assert_eq!(e.ok(&["stop", "s1"]).trim(), "s1");
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "s1"])).unwrap();
    assert_eq!(j[0]["State"]["ExitCode"], 137);
    assert_ne!(j[0]["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    // kill + wait
    e.ok(&["run", "-d", "--name", "k1", "bb", "sleep", "100"]);
    e.ok(&["kill", "k1"]);
    assert_eq!(e.ok(&["wait", "k1"]).trim(), "137");
    let o = e.docker(&["kill", "k1"]);
    assert!(!o.status.success() && err(&o).contains("is not running"), "{}", show(&o));
    e.ok(&["start", "k1"]);
    // rm of a running container needs -f.
    let o = e.docker(&["rm", "k1"]);
    assert!(!o.status.success() && err(&o).contains("cannot remove a running container"), "{}", show(&o));
    e.ok(&["rm", "-f", "k1"]);
    e.ok(&["rm", "s1"]);
    assert!(e.ok(&["ps", "-aq"]).trim().is_empty());
    let o = e.docker(&["rm", "s1"]);
    assert!(err(&o).contains("No such container: s1"), "{}", show(&o));
    // A taken name is a conflict.
    e.ok(&["create", "--name", "dup", "bb", "true"]);
    let o = e.docker(&["create", "--name", "dup", "bb", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("is already in use"), "{}", show(&o));
}

#[test]
fn tag_rmi_save_import() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["tag", "bb:latest", "bb:v2"]);
    let images = e.ok(&["images"]);
    assert!(images.lines().any(|l| l.starts_with("bb ") && l.contains(" v2 ")), "{images}");
    assert_eq!(e.ok(&["rmi", "bb:v2"]).trim(), "Untagged: bb:v2");
    let images = e.ok(&["images"]);
    assert!(!images.contains(" v2 "), "{images}");
    let saved = e.dir.path().join("saved.tar");
    e.ok(&["save", "bb:latest", "-o", saved.to_str().unwrap()]);
    let list = std::process::Command::new("tar").arg("tf").arg(&saved).output().unwrap();
    assert!(out(&list).lines().any(|l| l == "manifest.json"), "{}", out(&list));
    // Round trip: remove, load the saved archive, run it.
    let rm = e.ok(&["rmi", "bb:latest"]);
    assert!(rm.contains("Untagged: bb:latest"), "{rm}");
    assert!(!e.ok(&["images"]).contains("bb "));
    assert_eq!(e.ok(&["load", "-i", saved.to_str().unwrap()]).trim(), "Loaded image: bb:latest");
    assert_eq!(e.ok(&["run", "--rm", "bb", "echo", "reloaded"]), "reloaded\n");
    // docker import of a plain rootfs tar.
    let rootfs = busybox_rootfs_tar(e.dir.path());
    let id = e.ok(&["import", rootfs.to_str().unwrap(), "bb:imported"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(e.ok(&["run", "--rm", "bb:imported", "/bin/echo", "imported"]), "imported\n");
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["image", "inspect", "bb:imported"])).unwrap();
    assert_eq!(j[0]["Id"].as_str().unwrap(), id.trim());
    assert_eq!(j[0]["RootFS"]["Type"], "layers");
}

#[test]
fn push_and_pull_with_a_loopback_registry() {
    let e = Engined::start();
    e.load_busybox();
    let reg = Registry::start();
    let r = format!("{}/bb", reg.addr);
    e.ok(&["tag", "bb:latest", &r]);
    let o = e.docker(&["push", &r]);
    assert!(o.status.success(), "{}\n{}", show(&o), e.log());
    e.ok(&["rmi", &r]);
    let o = e.docker(&["pull", &r]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(out(&o).contains(&format!("{r}:latest")), "{}", show(&o));
    assert_eq!(e.ok(&["run", "--rm", &r, "echo", "pulled"]), "pulled\n");
    // An image the registry does not have.
    let o = e.docker(&["pull", &format!("{}/nope", reg.addr)]);
    assert!(!o.status.success(), "{}", show(&o));
}

#[test]
fn kill_engined_and_restart() {
    let mut e = Engined::start();
    e.load_busybox();
    let id = e.ok(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "bb",
        "sh",
        "-c",
        "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "survivor"])).unwrap();
    let pid = j[0]["State"]["Pid"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    e.kill9();
    let killed_at = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(pid), "the container died with engined");
    assert!(std::os::unix::net::UnixStream::connect(&e.sock).is_err());
    let back_at = std::time::SystemTime::now();
    e.spawn();
    let ps = e.ok(&["ps"]);
    assert!(ps.contains("survivor") && ps.contains("Up "), "{ps}");
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "survivor"])).unwrap();
    assert_eq!(j[0]["State"]["Pid"].as_i64().unwrap(), pid);
    // Every line, including those written while engined was down, with its capture time.
    let mut logs = String::new();
    assert!(
        eventually(60, || {
            logs = e.ok(&["logs", "-t", "survivor"]);
            logs.lines().count() >= 15
        }),
        "{logs}"
    );
    let lines: Vec<&str> = logs.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let (ts, text) = l.split_once(' ').unwrap();
        assert_eq!(text, format!("tick{i}"), "line {i} of {logs}");
        assert!(engine_core::time::parse_rfc3339(ts).is_some(), "{ts}");
    }
    let during = lines.iter().filter(|l| {
        let t = engine_core::time::parse_rfc3339(l.split(' ').next().unwrap()).unwrap();
        t > killed_at && t < back_at
    });
    // 1.5 s down at a line per 0.1 s: even a loaded machine writes a few.
    assert!(during.count() >= 2, "no lines captured while engined was down: {logs}");
    let o = e.docker(&["exec", "survivor", "echo", "after-restart"]);
    assert_eq!(out(&o), "after-restart\n", "{}", show(&o));
    e.ok(&["stop", "-t", "1", "survivor"]);
    assert!(!alive(pid));
    assert!(e.ok(&["ps", "-a"]).contains("Exited (137)"));
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), &id[..12]);
}

#[test]
fn client_disconnect_mid_stream_wedges_nothing() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["run", "-d", "--name", "talker", "bb", "sh", "-c", "while true; do echo x; sleep 0.05; done"]);
    for args in [vec!["logs", "-f", "talker"], vec!["attach", "talker"], vec!["events"], vec!["stats", "talker"]] {
        let mut c = std::process::Command::new(docker_cli())
            .args(["-H", &e.host()])
            .args(&args)
            .env("DOCKER_CONFIG", e.dir.path().join("docker-config"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let _ = c.kill();
        let _ = c.wait();
    }
    // The daemon and the container carry on.
    let ps = e.ok(&["ps"]);
    assert!(ps.contains("talker") && ps.contains("Up "), "{ps}");
    assert_eq!(e.ok(&["run", "--rm", "bb", "echo", "still-fine"]), "still-fine\n");
    assert_eq!(e.ok(&["exec", "talker", "echo", "ok"]), "ok\n");
}

#[test]
fn pause_restart_top_events() {
    let e = Engined::start();
    e.load_busybox();
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 1;
    e.ok(&["run", "-d", "--name", "p1", "bb", "sleep", "100"]);
    e.ok(&["pause", "p1"]);
    assert!(e.ok(&["ps"]).contains("(Paused)"));
    e.ok(&["unpause", "p1"]);
    let top = e.ok(&["top", "p1"]);
    assert!(top.contains("sleep 100"), "{top}");
    e.ok(&["restart", "-t", "0", "p1"]);
    assert!(e.ok(&["ps"]).contains("Up "));
    // Replay from `since`, ending a second from now.
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let ev =
        e.ok(&["events", "--since", &since.to_string(), "--until", &until.to_string(), "--filter", "container=p1"]);
    for action in ["create", "start", "pause", "unpause", "die"] {
        assert!(ev.contains(&format!("container {action} ")), "no {action} in {ev}");
    }
    let nets = e.ok(&["network", "ls"]);
    for n in ["bridge", "host", "none"] {
        assert!(nets.contains(n), "{nets}");
    }
    let df = e.ok(&["system", "df"]);
    assert!(df.contains("Images"), "{df}");
    let hist = e.ok(&["history", "bb"]);
    assert!(hist.lines().count() >= 2, "{hist}");
    // prune removes stopped containers only.
    e.ok(&["run", "--name", "done1", "bb", "true"]);
    let pruned = e.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    let ps = e.ok(&["ps", "-a"]);
    assert!(!ps.contains("done1") && ps.contains("p1"), "{ps}");
}

#[test]
fn docker_cp_in_and_out() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["run", "-d", "--name", "cp1", "bb", "sleep", "100"]);
    let src = e.dir.path().join("hello.txt");
    std::fs::write(&src, "copied in\n").unwrap();
    e.ok(&["cp", src.to_str().unwrap(), "cp1:/tmp/"]);
    assert_eq!(e.ok(&["exec", "cp1", "cat", "/tmp/hello.txt"]), "copied in\n");
    e.ok(&["exec", "cp1", "sh", "-c", "mkdir -p /data/sub && echo out > /data/sub/f && ln -s /etc /data/etc-link"]);
    let dst = e.dir.path().join("out");
    e.ok(&["cp", "cp1:/data", dst.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dst.join("sub/f")).unwrap(), "out\n");
    assert_eq!(std::fs::read_link(dst.join("etc-link")).unwrap(), std::path::Path::new("/etc"));
    // A symlink pointing at / inside the container never reaches the host's files.
    e.ok(&["exec", "cp1", "ln", "-s", "/", "/escape"]);
    e.ok(&["cp", src.to_str().unwrap(), "cp1:/escape/tmp/"]);
    assert_eq!(e.ok(&["exec", "cp1", "cat", "/tmp/hello.txt"]), "copied in\n");
    let o = e.docker(&["cp", "cp1:/no/such/file", dst.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", show(&o));
    // export, then import the result and find the copied file in the new image.
    let exported = e.dir.path().join("exported.tar");
    e.ok(&["export", "-o", exported.to_str().unwrap(), "cp1"]);
    e.ok(&["import", exported.to_str().unwrap(), "bb:exported"]);
    assert_eq!(e.ok(&["run", "--rm", "bb:exported", "/bin/cat", "/tmp/hello.txt"]), "copied in\n");
}

#[test]
fn docker_cp_sees_mounts_and_never_follows_a_swapped_link_to_the_host() {
    let e = Engined::start();
    e.load_busybox();
    // A host directory the container must never reach, with a secret in it.
    let host = tempfile::Builder::new().prefix("cp-host-").tempdir().unwrap();
    std::fs::write(host.path().join("secret"), "HOST-SECRET").unwrap();
    let hp = host.path().to_str().unwrap().to_string();
    let vol = tempfile::Builder::new().prefix("cp-vol-").tempdir().unwrap();
    let bind = format!("{}:/mnt/vol", vol.path().display());
    // The container swaps /data/d between a real directory and a link to the
    // host's directory as fast as it can.
    let swap = format!(
        "mkdir -p /data/d && echo container-file > /data/d/secret && \
         while :; do mv /data/d /data/d.real; ln -s {hp} /data/d; rm /data/d; mv /data/d.real /data/d; done"
    );
    e.ok(&["run", "-d", "--name", "racer", "-v", &bind, "bb", "sh", "-c", &swap]);
    // A copy into a running container goes where its processes see the path: into its bind mount.
    let src = e.dir.path().join("dropped");
    std::fs::write(&src, "dropped-by-cp\n").unwrap();
    e.ok(&["cp", src.to_str().unwrap(), "racer:/mnt/vol/"]);
    assert_eq!(std::fs::read_to_string(vol.path().join("dropped")).unwrap(), "dropped-by-cp\n");
    let out = e.dir.path().join("race-out");
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut outs, mut ins) = (0, 0);
    while (outs < 40 || ins < 40) && Instant::now() < deadline {
        let _ = std::fs::remove_dir_all(&out);
        let o = e.docker(&["cp", "racer:/data/d/secret", out.to_str().unwrap()]);
        if o.status.success() {
            assert_eq!(std::fs::read_to_string(&out).unwrap(), "container-file\n", "read the host's file");
        }
        outs += 1;
        let _ = e.docker(&["cp", src.to_str().unwrap(), "racer:/data/d/"]);
        ins += 1;
    }
    assert!(outs >= 10 && ins >= 10, "{outs} copies out, {ins} in");
    let names: Vec<_> = std::fs::read_dir(host.path()).unwrap().map(|d| d.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from("secret")], "a copy wrote into the host directory");
    assert_eq!(std::fs::read_to_string(host.path().join("secret")).unwrap(), "HOST-SECRET");
    e.ok(&["rm", "-f", "racer"]);
}

#[test]
fn login_and_push_with_registry_credentials() {
    let e = Engined::start();
    e.load_busybox();
    let reg = Registry::start_auth(Some(("tester", "s3cret")));
    let r = format!("{}/private/bb:1", reg.addr);
    e.ok(&["tag", "bb:latest", &r]);
    // Without credentials the registry refuses the push.
    let o = e.docker(&["push", &r]);
    assert!(!o.status.success(), "{}", show(&o));
    // A wrong password is a failed login.
    let o = e.docker_in(&["login", "-u", "tester", "--password-stdin", &reg.addr], Some(b"wrong\n"));
    assert!(!o.status.success(), "{}", show(&o));
    assert!(err(&o).contains("unauthorized"), "{}", show(&o));
    let o = e.docker_in(&["login", "-u", "tester", "--password-stdin", &reg.addr], Some(b"s3cret\n"));
    assert!(o.status.success() && out(&o).contains("Login Succeeded"), "{}", show(&o));
    // The CLI now sends X-Registry-Auth with the credentials: push and pull work.
    let o = e.docker(&["push", &r]);
    assert!(o.status.success(), "{}\n{}", show(&o), e.log());
    e.ok(&["rmi", &r]);
    e.ok(&["pull", &r]);
    assert_eq!(e.ok(&["run", "--rm", &r, "echo", "private"]), "private\n");
}

#[test]
fn create_options_reach_the_container() {
    let e = Engined::start();
    e.load_busybox();
    let host_dir = e.dir.path().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "h\n").unwrap();
    let bind = format!("{}:/host:ro", host_dir.display());
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                  cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
                  pwd; id -u; echo $GREETING; cat /host/from-host; touch /host/x 2>/dev/null || echo ro-bind; \
                  df -k /scratch | tail -1 | awk '{print $2}'; hostname";
    let o = e.docker(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--cpus",
        "1.5",
        "--pids-limit",
        "50",
        "-v",
        &bind,
        "--tmpfs",
        "/scratch:size=1m",
        "-w",
        "/host",
        "-u",
        "65534",
        "-e",
        "GREETING=hello",
        "--hostname",
        "box1",
        "bb",
        "sh",
        "-c",
        script,
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let lines: Vec<String> = out(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines, ["67108864", "50", "/host", "65534", "hello", "h", "ro-bind", "1024", "box1"], "{}", show(&o));
    // Read-only root filesystem.
    let o = e.docker(&["run", "--rm", "--read-only", "bb", "touch", "/x"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    // Default network: a namespace of its own with loopback only; host: the host's interfaces.
    assert_eq!(e.ok(&["run", "--rm", "bb", "ls", "/sys/class/net"]).trim(), "lo");
    let host_ifaces = std::fs::read_dir("/sys/class/net").unwrap().count();
    let n = e.ok(&["run", "--rm", "--network", "host", "bb", "sh", "-c", "ls /sys/class/net | wc -l"]);
    assert_eq!(n.trim().parse::<usize>().unwrap(), host_ifaces);
    // inspect reports them back in Docker's HostConfig.
    e.ok(&["create", "--name", "opts", "--memory", "64m", "--restart", "on-failure:3", "bb", "true"]);
    let j: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "opts"])).unwrap();
    assert_eq!(j[0]["HostConfig"]["Memory"], 67108864);
    assert_eq!(j[0]["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(j[0]["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
}

/// A default `docker run` container holds only the superblocks it needs:
/// the overlay rootfs (mounted by the engine on the host), proc, /dev,
/// devpts, /dev/shm, mqueue, sysfs. No
/// tmpfs for the masked directories or (cgroup v1) for /sys/fs/cgroup:
/// every superblock costs kernel memory in every memory cgroup.
#[test]
fn default_container_superblocks() {
    let e = Engined::start();
    e.load_busybox();
    e.ok(&["run", "-d", "--name", "sb", "bb", "sleep", "60"]);
    let pid = e.ok(&["inspect", "-f", "{{.State.Pid}}", "sb"]).trim().to_string();
    let devs = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                Some((f.get(2)?.to_string(), f.get(4)?.to_string()))
            })
            .collect()
    };
    let host = devs(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let inside = devs(&std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap());
    let mut new: Vec<(String, String)> = Vec::new();
    for (d, mp) in &inside {
        if !host.iter().any(|(h, _)| h == d) && !new.iter().any(|(n, _)| n == d) {
            new.push((d.clone(), mp.clone()));
        }
    }
    let mut points: Vec<&str> = new.iter().map(|(_, mp)| mp.as_str()).collect();
    points.sort();
    // On a cgroup v1 host /sys/fs/cgroup is a bind of the runtime's skeleton
    // only when its state root is on a tmpfs (the runtime's tests check both).
    points.retain(|p| *p != "/sys/fs/cgroup");
    let distinct: std::collections::HashSet<&str> = inside.iter().map(|(d, _)| d.as_str()).collect();
    eprintln!(
        "superblocks made for the container: {points:?}; distinct devices in its mount table: {}",
        distinct.len()
    );
    // The overlay rootfs is mounted on the host, so it is not among them.
    assert_eq!(points, ["/dev", "/dev/mqueue", "/dev/pts", "/dev/shm", "/proc", "/sys"], "{inside:?}");
    let masked = inside.iter().find(|(_, mp)| mp == "/proc/acpi" || mp == "/sys/firmware").expect("a masked directory");
    assert!(host.iter().any(|(h, _)| *h == masked.0), "a masked directory is a bind from the host: {masked:?}");
    e.ok(&["rm", "-f", "sb"]);
}
