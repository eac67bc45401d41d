//! Benchmarks of the lifecycle tier and the facade, side by side with peers:
//!
//! 1. `Engine::run` of `/bin/true` to exit and removal, vs `crun run`,
//!    `runc run` (same busybox bundle, no image layer) and `podman run --rm`.
//! 2. N containers (`sleep`) started concurrently through the engine vs
//!    `crun run -d` / `runc run -d` and `crun create` + `crun start`
//!    scripted in parallel: time, and memory
//!    (shims' RSS and PSS; the scripted peers leave no per-container monitor);
//!    then N `Engine::run` of `/bin/true` at once, each to its exit and
//!    removed, vs N `crun run` in the foreground (create, start, delete in
//!    one process) and N `crun create`, `crun start`, `crun delete` (three
//!    commands per container, as a script drives a runtime).
//! 3. `engine-lifecycled` resident memory idle and with N containers.
//! 4. N containers created and started concurrently through `engined`'s
//!    API (`engine-client`, `--network none`), with engined and everything
//!    it starts confined to one core and then to all of them (does it scale
//!    with the cores?), beside scripted `crun run -d` confined the same way.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! sudo cargo run --release --example bench -- [iterations=30] [counts=50,200]
//! BENCH_SECTIONS=2,4 sudo -E cargo run --release --example bench -- 3 50,200   # only those sections
//! BENCH_CGROUPNS=private ...   # the facade's containers in a cgroup namespace of their own
//! ```

use engine::core::{ContainerConfig, LifecycleManager, ListFilter};
use engine::{ContainerBuilder, Engine, WaitFor};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// CPU time the whole machine spent busy so far, ms (user, nice, system,
/// irq and softirq of `/proc/stat`; not idle, iowait or steal). The
/// difference over a phase is that phase's CPU cost, which other guests on a
/// shared host (steal) do not inflate the way they inflate wall time.
fn busy_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    [0, 1, 2, 5, 6].iter().filter_map(|&i| ticks.get(i)).sum::<f64>() * 1000.0 / hz
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn status_kib(pid: i32, field: &str) -> u64 {
    let file = if field == "Pss:" { format!("/proc/{pid}/smaps_rollup") } else { format!("/proc/{pid}/status") };
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// The facade's busybox container; `BENCH_CGROUPNS=private|host` sets its
/// cgroup namespace (default: docker's for this host).
fn bb() -> ContainerBuilder {
    let mode = std::env::var("BENCH_CGROUPNS").unwrap_or_default();
    ContainerBuilder::new("busybox:bench").cgroupns(engine::CgroupnsMode::parse(&mode).expect("BENCH_CGROUPNS"))
}

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

/// A plain OCI bundle (busybox rootfs dir + config.json) for the peers.
fn peer_bundle(dir: &Path, args: &[&str]) -> PathBuf {
    let bundle = dir.join(format!("bundle-{}", args[0].trim_start_matches('/')));
    if !bundle.join("rootfs/bin/busybox").exists() {
        engine::image::build::busybox_rootfs(&bundle.join("rootfs")).unwrap();
    }
    let _ = std::fs::remove_file(bundle.join("config.json"));
    Command::new("runc").args(["spec"]).current_dir(&bundle).status().unwrap();
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(args);
    spec["root"]["readonly"] = false.into();
    std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    bundle
}

fn time_cmd(n: usize, mut f: impl FnMut(usize) -> Command) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let mut c = f(i);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            let t = Instant::now();
            let st = c.status().unwrap();
            let d = ms(t.elapsed());
            assert!(st.success(), "{c:?}: {st}");
            d
        })
        .collect()
}

fn report(name: &str, v: &mut [f64], base: Option<f64>) -> f64 {
    let m = median(v);
    let p90 = pct(v, 0.9);
    match base {
        Some(b) => println!("  {name:<34} median {m:>7.1} ms  p90 {p90:>7.1} ms  ({:.2}x of engine)", m / b),
        None => println!("  {name:<34} median {m:>7.1} ms  p90 {p90:>7.1} ms"),
    }
    m
}

#[tokio::main]
async fn main() -> engine::Result<()> {
    let mut args = std::env::args().skip(1);
    let iters: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let counts: Vec<usize> =
        args.next().unwrap_or_else(|| "50,200".into()).split(',').filter_map(|s| s.parse().ok()).collect();
    let root = PathBuf::from(std::env::var("ENGINE_ROOT").unwrap_or_else(|_| "/tmp/engine-bench".into()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let engine = Engine::builder()
        .root(root.join("e"))
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .build()
        .await?;
    engine.busybox_image("busybox:bench").await?;
    let peers = root.join("peers");
    std::fs::create_dir_all(&peers).unwrap();
    // BENCH_SECTIONS=2,4 runs only those sections (default: all).
    let only = std::env::var("BENCH_SECTIONS").ok();
    let want = |n: u32| only.as_deref().is_none_or(|s| s.split(',').any(|x| x.trim() == n.to_string()));

    if want(1) {
        println!("== 1. run /bin/true to exit and removal ({iters} runs each)");
        let run_true = |rt: &'static str| {
            let engine = engine.clone();
            async move {
                let mut v = Vec::new();
                for _ in 0..iters + 2 {
                    let t = Instant::now();
                    let c = engine.run(bb().cmd(["/bin/true"]).runtime(rt).wait_for(WaitFor::exit())).await?;
                    c.remove().await?;
                    v.push(ms(t.elapsed()));
                }
                v.drain(..2); // warm-up
                Ok::<_, engine::Error>(v)
            }
        };
        let mut ours = run_true("engine-runc").await?;
        let base = report("Engine::run (engine-runc)", &mut ours, None);
        let mut ours_crun = run_true("crun").await?;
        report("Engine::run (crun)", &mut ours_crun, Some(base));
        let bundle = peer_bundle(&peers, &["/bin/true"]);
        let croot = peers.join("crun-root");
        let mut crun = time_cmd(iters, |i| {
            let mut c = Command::new("crun");
            c.arg("--root").arg(&croot).args(["run", "--bundle"]).arg(&bundle).arg(format!("bench-crun-{i}"));
            c
        });
        let crun_m = report("crun run", &mut crun, Some(base));
        let rroot = peers.join("runc-root");
        let mut runc = time_cmd(iters, |i| {
            let mut c = Command::new("runc");
            c.arg("--root").arg(&rroot).args(["run", "--bundle"]).arg(&bundle).arg(format!("bench-runc-{i}"));
            c
        });
        report("runc run", &mut runc, Some(base));
        if Command::new("podman").arg("--version").output().is_ok() {
            let tar = peers.join("bb.tar");
            let ok = Command::new("tar")
                .arg("-C")
                .arg(bundle.join("rootfs"))
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status()
                .is_ok_and(|s| s.success())
                && Command::new("podman")
                    .args(["import", "-q"])
                    .arg(&tar)
                    .arg("localhost/engine-bench-bb:latest")
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if ok {
                let mut pod = time_cmd(iters.min(15), |_| {
                    let mut c = Command::new("podman");
                    c.args([
                        "run",
                        "--rm",
                        "--network",
                        "none",
                        "--ulimit",
                        "nofile=1024:1024",
                        "--ulimit",
                        "nproc=1024:1024",
                        "localhost/engine-bench-bb:latest",
                        "/bin/true",
                    ]);
                    c
                });
                report("podman run --rm", &mut pod, Some(base));
            }
        }
        println!("  engine vs crun: {:.2}x (target <= 2x)", base / crun_m);
    }

    if want(2) {
        println!("== 2. containers started concurrently (CPU: the machine's busy time per container)");
        for &n in &counts {
            let (t, cpu) = (Instant::now(), busy_ms());
            let starts = (0..n).map(|_| {
                engine.run(bb().cmd(["sleep", "3600"]).keep_on_drop().startup_timeout(Duration::from_secs(600)))
            });
            let cs = futures::future::try_join_all(starts).await?;
            let (took, cpu) = (t.elapsed(), busy_ms() - cpu);
            let (mut rss, mut pss, mut shims) = (0u64, 0u64, 0usize);
            for d in std::fs::read_dir(root.join("e/shims")).unwrap().flatten() {
                if let Some(a) = engine::shim::read_address(&d.path()).ok().flatten() {
                    rss += status_kib(a.pid, "VmRSS:");
                    pss += status_kib(a.pid, "Pss:");
                    shims += 1;
                }
            }
            let self_rss = status_kib(std::process::id() as i32, "VmRSS:");
            println!(
                "  engine  {n:>4}: {:>7.0} ms  ({:.1} ms/container, CPU {:.1} ms/container); {shims} shims: RSS {:.1} MiB ({:.2} MiB each), PSS {:.2} MiB each; embedding process RSS {:.1} MiB",
                ms(took),
                ms(took) / n as f64,
                cpu / n as f64,
                rss as f64 / 1024.0,
                rss as f64 / 1024.0 / shims.max(1) as f64,
                pss as f64 / 1024.0 / shims.max(1) as f64,
                self_rss as f64 / 1024.0
            );
            let t = Instant::now();
            futures::future::try_join_all(cs.into_iter().map(|c| c.remove())).await?;
            println!("          removed all in {:.0} ms", ms(t.elapsed()));

            let sleeper = peer_bundle(&peers, &["sleep", "3600"]);
            for rt in ["crun", "runc"] {
                let (took, cpu, running) =
                    scripted_runs(rt, &peers.join(format!("{rt}-root-d")), &sleeper, n, None, true);
                timing_line(
                    &format!("{rt:<6}  {n:>4}:"),
                    n,
                    took,
                    cpu,
                    &format!("{running} running, no per-container monitor process"),
                );
            }
            let (took, cpu, running) = scripted_commands("crun", &peers.join("crun-root-two"), &sleeper, n, false);
            timing_line(
                &format!("crun    {n:>4}, `crun create`, `crun start`:"),
                n,
                took,
                cpu,
                &format!("{running} running"),
            );

            // /bin/true run to its exit and removed, n at once, beside `crun run`
            // in the foreground (create, start, wait, delete) and the same as
            // three commands.
            let (t, cpu) = (Instant::now(), busy_ms());
            futures::future::try_join_all((0..n).map(|_| async {
                let c = engine
                    .run(
                        bb().cmd(["/bin/true"])
                            .wait_for(WaitFor::exit_code(0))
                            .startup_timeout(Duration::from_secs(600)),
                    )
                    .await?;
                c.remove().await
            }))
            .await?;
            let (took, cpu) = (t.elapsed(), busy_ms() - cpu);
            timing_line(&format!("engine  {n:>4} /bin/true, to its exit, removed:"), n, took, cpu, "");
            let truer = peer_bundle(&peers, &["/bin/true"]);
            let (took, cpu, left) = scripted_runs("crun", &peers.join("crun-root-true"), &truer, n, None, false);
            let what = format!("crun    {n:>4} /bin/true, `crun run` (create, start, wait, delete in one process):");
            timing_line(&what, n, took, cpu, &format!("{left} left behind"));
            let (took, cpu, left) = scripted_commands("crun", &peers.join("crun-root-three"), &truer, n, true);
            let what = format!("crun    {n:>4} /bin/true, `crun create`, `crun start`, its exit, `crun delete`:");
            timing_line(&what, n, took, cpu, &format!("{left} left behind"));
        }
    }
    drop(engine);
    if want(3) {
        println!("== 3. engine-lifecycled resident memory");
        // The daemon gets its own root, with the image made there first.
        let droot = root.join("d");
        Engine::builder().root(&droot).build().await?.busybox_image("busybox:bench").await?;
        let socket = root.join("lc.sock");
        let mut daemon = Command::new(bin_dir().join("engine-lifecycled"))
            .arg("--root")
            .arg(&droot)
            .arg("--socket")
            .arg(&socket)
            .arg("--shim")
            .arg(bin_dir().join("engine-shim"))
            .arg("--runtime")
            .arg(format!("engine-runc={}", bin_dir().join("engine-runc").display()))
            .arg("--log-level")
            .arg("warn")
            .spawn()
            .unwrap();
        let dpid = daemon.id() as i32;
        let n = counts.iter().copied().max().unwrap_or(200);
        let res = remote_memory(&socket, dpid, n).await;
        let _ = daemon.kill();
        let _ = daemon.wait();
        res?;
    }

    if want(4) {
        println!("== 4. containers started concurrently through engined (docker API)");
        let sleeper = peer_bundle(&peers, &["sleep", "3600"]);
        let tar = peers.join("bb.tar");
        if !tar.exists() {
            let st = Command::new("tar").arg("-C").arg(sleeper.join("rootfs")).arg("-cf").arg(&tar).arg(".").status();
            assert!(st.is_ok_and(|s| s.success()), "making {}", tar.display());
        }
        let all = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut cpu_sets = vec!["0".to_string()];
        if all > 1 {
            cpu_sets.push(format!("0-{}", all - 1));
        }
        for cpus in &cpu_sets {
            engined_concurrent(&root.join(format!("engined-{cpus}")), &tar, &sleeper, &peers, cpus, &counts).await?;
        }
    }
    Ok(())
}

/// Section 4 on the CPUs `cpus` (a `taskset` list): engined (and so its
/// shims, runtimes and containers) confined to them, `n` creates and starts
/// at once through the API for each count, then scripted crun on the same CPUs.
async fn engined_concurrent(
    dir: &Path,
    tar: &Path,
    sleeper: &Path,
    peers: &Path,
    cpus: &str,
    counts: &[usize],
) -> engine::Result<()> {
    use engine_client::models::{ContainerConfigBody, HostConfig, StrSlice};
    use futures::StreamExt;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let socket = dir.join("engined.sock");
    let mut daemon = Command::new("taskset")
        .args(["-c", cpus])
        .arg(bin_dir().join("engined"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .args(["--log-level", "warn"])
        .env("ENGINE_BIN_DIR", bin_dir())
        .spawn()
        .unwrap();
    let client = engine_client::Client::new(&socket);
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.ping().await.is_err() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            let _ = daemon.wait();
            return Err(engine::Error::unavailable("engined", "did not come up in 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = async {
        let mut progress = client.import(tokio::fs::File::open(tar).await.unwrap(), "bb:bench").await?;
        while let Some(m) = progress.next().await {
            m?;
        }
        let config = ContainerConfigBody {
            image: Some("bb:bench".into()),
            cmd: Some(StrSlice(vec!["sleep".into(), "3600".into()])),
            host_config: Some(HostConfig { network_mode: Some("none".into()), ..Default::default() }),
            ..Default::default()
        };
        for &n in counts {
            let t = Instant::now();
            let ids = futures::future::try_join_all((0..n).map(|_| {
                let (client, config) = (client.clone(), config.clone());
                async move {
                    let c = client.create_container(None, &config).await?;
                    client.start(&c.id).await?;
                    Ok::<_, engine::Error>(c.id)
                }
            }))
            .await?;
            let took = t.elapsed();
            println!(
                "  engined on CPUs {cpus:<4} {n:>4}: {:>7.0} ms  ({:.1} ms/container)",
                ms(took),
                ms(took) / n as f64
            );
            futures::future::try_join_all(ids.iter().map(|id| client.remove_container(id, true))).await?;
            let (took, _, running) = scripted_runs("crun", &peers.join("crun-root-cpus"), sleeper, n, Some(cpus), true);
            println!(
                "  crun    on CPUs {cpus:<4} {n:>4}: {:>7.0} ms  ({:.1} ms/container); {running} running",
                ms(took),
                ms(took) / n as f64
            );
        }
        Ok::<_, engine::Error>(())
    }
    .await;
    // SAFETY: kill(2) of the daemon this function started.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    res
}

async fn remote_memory(socket: &Path, dpid: i32, n: usize) -> engine::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let remote = loop {
        if Instant::now() > deadline {
            return Err(engine::Error::unavailable("engine-lifecycled", "did not come up in 30 s"));
        }
        if let Ok(r) = engine::lifecycle::RemoteManager::connect(socket).await {
            if r.list(ListFilter::default()).await.is_ok() {
                break r;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("  idle: RSS {:.1} MiB", status_kib(dpid, "VmRSS:") as f64 / 1024.0);
    let cfg = ContainerConfig::default().image("busybox:bench".into()).cmd(Some(vec!["sleep".into(), "3600".into()]));
    let t = Instant::now();
    let made = futures::future::try_join_all((0..n).map(|_| {
        let r = remote.clone();
        let cfg = cfg.clone();
        async move {
            let c = r.create(cfg).await?;
            r.start(&c.id).await?;
            Ok::<_, engine::Error>(c.id)
        }
    }))
    .await?;
    println!("  {n} containers through gRPC in {:.0} ms", ms(t.elapsed()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("  with {n} running: RSS {:.1} MiB", status_kib(dpid, "VmRSS:") as f64 / 1024.0);
    futures::future::try_join_all(made.iter().map(|id| remote.remove(id, true))).await?;
    Ok(())
}

/// One line of section 2: what, the time, and per container the time and the
/// machine's busy CPU (`cpu` ms over all `n`), then `rest`.
fn timing_line(what: &str, n: usize, took: Duration, cpu: f64, rest: &str) {
    let sep = if rest.is_empty() { "" } else { "; " };
    println!(
        "  {what} {:>7.0} ms  ({:.1} ms/container, CPU {:.1} ms/container){sep}{rest}",
        ms(took),
        ms(took) / n as f64,
        cpu / n as f64
    );
}

/// `n` containers of `bundle` at once by a shell script, each as separate
/// commands, as a script drives a runtime: `<rt> create`, `<rt> start` and,
/// with `to_exit`, `<rt> delete -f` once it has exited (seen without polling:
/// the container's stdout is a pipe the script reads to its end; `-f`, as the
/// end of the pipe can come before the exited process is reaped, when a plain
/// `delete` still sees it running and refuses). The time
/// until the script ends, the machine's busy CPU time over it (ms), and how
/// many containers were there when it ended (all are deleted afterwards).
fn scripted_commands(rt: &str, root: &Path, bundle: &Path, n: usize, to_exit: bool) -> (Duration, f64, usize) {
    let (r, b) = (root.display(), bundle.display());
    let each = if to_exit {
        format!("( ( {rt} --root {r} create --bundle {b} t-$i && {rt} --root {r} start t-$i ) </dev/null 2>/dev/null | while read -r l; do :; done; {rt} --root {r} delete -f t-$i >/dev/null 2>&1 )")
    } else {
        format!("( {rt} --root {r} create --bundle {b} t-$i && {rt} --root {r} start t-$i ) </dev/null >/dev/null 2>&1")
    };
    let script = format!("for i in $(seq 1 {n}); do {each} & done; wait");
    timed_script(Command::new("sh"), &script, rt, root)
}

/// `n` × `<rt> run -d` of `bundle` started at once by a shell script (under
/// `taskset -c cpus` when given): the time until the script ends and how
/// many were running then, and the machine's busy CPU time over the script
/// (ms); all are deleted afterwards. Without `detach`,
/// `<rt> run` in the foreground: create, start, wait for the exit and delete.
fn scripted_runs(
    rt: &str,
    root: &Path,
    bundle: &Path,
    n: usize,
    cpus: Option<&str>,
    detach: bool,
) -> (Duration, f64, usize) {
    let d = if detach { "-d " } else { "" };
    let script = format!(
        "for i in $(seq 1 {n}); do {rt} --root {r} run {d}--bundle {b} {rt}-par-$i >/dev/null 2>&1 </dev/null & done; wait",
        r = root.display(),
        b = bundle.display()
    );
    let cmd = match cpus {
        Some(c) => {
            let mut t = Command::new("taskset");
            t.args(["-c", c, "sh"]);
            t
        }
        None => Command::new("sh"),
    };
    timed_script(cmd, &script, rt, root)
}

/// Run `script` with `sh` (`cmd`): its time, the machine's busy CPU over it
/// (ms), and how many containers `rt` lists under `root` at its end; those
/// are deleted afterwards.
fn timed_script(mut cmd: Command, script: &str, rt: &str, root: &Path) -> (Duration, f64, usize) {
    let (t, cpu) = (Instant::now(), busy_ms());
    cmd.args(["-c", script]).status().unwrap();
    let (took, cpu) = (t.elapsed(), busy_ms() - cpu);
    let list = Command::new(rt).arg("--root").arg(root).args(["list", "-q"]).output().unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout).lines().map(String::from).collect();
    for id in &ids {
        let _ = Command::new(rt).arg("--root").arg(root).args(["delete", "-f", id]).status();
    }
    (took, cpu, ids.len())
}
