//! Soak: a thousand `docker run --rm` through engined, then 50 at once, then
//! creates racing for one name. Nothing may be left: mounts, cgroups, state
//! entries, processes, engined's descriptors; engined's memory stays flat.

mod common;
use common::*;
use std::time::Instant;

const RUNS: usize = 1000;

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_thousand_runs_then_fifty_at_once_leave_nothing() {
    let parent = format!("/engine-soak-{}", std::process::id());
    let e = Engined::start_with(&["--cgroup-parent", &parent]);
    e.load_busybox();
    let pid = e.pid() as i32;
    // Warm up (the shim fork server, the image's first rootfs, allocator pools).
    for _ in 0..20 {
        assert_eq!(e.ok(&["run", "--rm", "bb", "true"]), "");
    }
    let settle = |want: &Leftovers| {
        let mut last = None;
        let same = eventually(20, || {
            let now = Leftovers::count(&e.data_root(), &parent, &[pid]);
            let ok = now.back_to(want);
            last = Some(now);
            ok
        });
        assert!(same, "left behind: {last:?}, before: {want:?}");
    };
    let before = Leftovers::count(&e.data_root(), &parent, &[pid]);
    assert_eq!((before.mounts, before.cgroups, before.container_dirs), (0, 0, 0), "{before:?}");
    let rss0 = rss_kib(pid);
    let t0 = Instant::now();
    for i in 0..RUNS {
        let o = e.docker(&["run", "--rm", "bb", "true"]);
        assert!(o.status.success(), "run {i}: {}", show(&o));
    }
    let took = t0.elapsed();
    settle(&before);
    let rss1 = rss_kib(pid);
    eprintln!("{RUNS} runs in {took:?}; engined RSS {rss0} KiB before, {rss1} KiB after");
    assert!(rss1 < rss0 + 16 * 1024, "engined grew from {rss0} to {rss1} KiB over {RUNS} runs");

    // 50 at once.
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (sock, cfg) = (e.host(), e.dir.path().join("docker-config"));
            std::thread::spawn(move || {
                let o = std::process::Command::new(docker_cli())
                    .args(["-H", &sock, "run", "--rm", "bb", "sh", "-c", &format!("echo par-{i}")])
                    .env("DOCKER_CONFIG", cfg)
                    .output()
                    .unwrap();
                (i, o)
            })
        })
        .collect();
    for h in handles {
        let (i, o) = h.join().unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("par-{i}\n"), "{}", show(&o));
    }
    settle(&before);

    // Two creates racing for one name: one container, one 409.
    for round in 0..10 {
        let name = format!("same-{round}");
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (sock, cfg, name) = (e.host(), e.dir.path().join("docker-config"), name.clone());
                std::thread::spawn(move || {
                    std::process::Command::new(docker_cli())
                        .args(["-H", &sock, "create", "--name", &name, "bb", "true"])
                        .env("DOCKER_CONFIG", cfg)
                        .output()
                        .unwrap()
                })
            })
            .collect();
        let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "round {round}: {}", outs.iter().map(show).collect::<Vec<_>>().join("\n"));
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        assert!(err(lost).contains("Conflict") || err(lost).contains("already in use"), "{}", show(lost));
        let all = e.ok(&["ps", "-aq", "--filter", &format!("name={name}")]);
        assert_eq!(all.lines().count(), 1, "{all}");
        e.ok(&["rm", &name]);
    }
    settle(&before);
    drop(e);
    remove_cgroup_parent(&parent);
}
