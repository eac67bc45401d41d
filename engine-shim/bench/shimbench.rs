//! Benchmark driver for engine-shim (run by `bench/memory.sh`): launches N
//! sleeping busybox containers through `engine-shim`, times launch-to-running,
//! and reads each shim's RSS and PSS from `/proc/<pid>/smaps_rollup`.
//!
//! `shimbench <n> <runtime-binary> <work-dir> [connected|idle]`; prints
//! `key=value` lines (with `heap_dirty_kib_median`, the shims' `[heap]`
//! Private_Dirty). `connected` (the default) keeps each shim's connection
//! and a `Wait` call open while measuring, as the lifecycle manager does for
//! every running container; `idle` drops the connections first.
//! `SHIMBENCH_HOLD=<secs>` keeps the shims running that long after measuring
//! (their pids on stderr), to look at them.

use engine_core::{ContainerId, LaunchRequest, ProcessRef, RuntimeBinary, Shim, ShimLauncher, Signal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// (RSS, PSS, Private_Dirty) in KiB: private is what only this process
/// holds (shims forked from one fork server share the pages it had, which
/// `Anonymous` would count in each).
fn rss_pss(pid: i32) -> (f64, f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field("Rss:"), field("Pss:"), field("Private_Dirty:"))
}

/// Private_Dirty of the `[heap]` mapping (glibc's main arena) in KiB.
fn heap_dirty(pid: i32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_heap = false;
    for l in s.lines() {
        if l.ends_with("[heap]") {
            in_heap = true;
        } else if in_heap {
            if let Some(v) = l.strip_prefix("Private_Dirty:") {
                return v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0.0);
            }
        }
    }
    0.0
}

fn make_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for a in ["sh", "sleep"] {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(a));
    }
}

fn write_config(bundle: &Path, rootfs: &Path) {
    use oci_spec::runtime::{LinuxNamespaceType, Spec};
    std::fs::create_dir_all(bundle).unwrap();
    let mut spec = Spec::default();
    let mut p = spec.process().clone().unwrap();
    p.set_args(Some(vec!["sleep".into(), "100000".into()]));
    p.set_terminal(Some(false));
    p.set_env(Some(vec!["PATH=/bin".into()]));
    spec.set_process(Some(p));
    let mut root = spec.root().clone().unwrap();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    let mut linux = spec.linux().clone().unwrap();
    if let Some(ns) = linux.namespaces().clone() {
        linux.set_namespaces(Some(ns.into_iter().filter(|n| n.typ() != LinuxNamespaceType::Network).collect()));
    }
    spec.set_linux(Some(linux));
    spec.save(bundle.join("config.json")).unwrap();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let runtime = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "/usr/sbin/runc".into()));
    let work = PathBuf::from(args.get(3).cloned().unwrap_or_else(|| "/tmp/shimbench".into()));
    let connected = args.get(4).map(|m| m != "idle").unwrap_or(true);
    let launcher = engine_shim::Launcher::find().expect("engine-shim next to this binary");
    let rootfs = work.join("rootfs");
    make_rootfs(&rootfs);
    let name = runtime.file_name().unwrap().to_string_lossy().into_owned();
    let rt =
        RuntimeBinary::default().name(name.clone()).path(runtime.clone()).root(Some(work.join("rtroot"))).args(vec![]);
    let mut shims: Vec<std::sync::Arc<dyn Shim>> = Vec::new();
    let mut launch_ms = Vec::new();
    let mut pids = Vec::new();
    for i in 0..n {
        let id = ContainerId::new(format!("shimbench-{}-{i}", std::process::id())).unwrap();
        let bundle = work.join(format!("b{i}"));
        write_config(&bundle, &rootfs);
        let req = LaunchRequest::new(id, bundle, work.join(format!("s{i}")), rt.clone())
            .log(Some(
                engine_core::LogConfig::default()
                    .path(work.join(format!("c{i}.log")))
                    .max_size(None)
                    .max_files(1)
                    .format(Default::default())
                    .fifo(None),
            ))
            .open_stdin(false)
            .owner_pid(None);
        let t = Instant::now();
        let shim = launcher.launch(req).await.expect("launch");
        shim.start().await.expect("start");
        launch_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        pids.push(shim.shim_pid().await.unwrap());
        shims.push(shim.into());
    }
    let ids: Vec<ContainerId> = shims.iter().map(|s| s.id().clone()).collect();
    let mut waits = Vec::new();
    if connected {
        // As the manager: a `Wait` on each init (over an exit watch, not a gRPC connection).
        for s in &shims {
            let s = s.clone();
            waits.push(tokio::spawn(async move { s.wait(&ProcessRef::Init).await }));
        }
    } else {
        // Drop the connections: a shim at rest has no client.
        shims.clear();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m: Vec<(f64, f64, f64)> = pids.iter().map(|p| rss_pss(*p)).collect();
    let rss: Vec<f64> = m.iter().map(|x| x.0).collect();
    let pss: Vec<f64> = m.iter().map(|x| x.1).collect();
    let private: Vec<f64> = m.iter().map(|x| x.2).collect();
    // SHIMBENCH_SMAPS=<file>: keep one shim's /proc/<pid>/smaps, to see where its memory goes.
    if let (Ok(out), Some(p)) = (std::env::var("SHIMBENCH_SMAPS"), pids.first()) {
        let _ = std::fs::copy(format!("/proc/{p}/smaps"), out);
    }
    let heap: Vec<f64> = pids.iter().map(|p| heap_dirty(*p)).collect();
    println!("runtime={name}");
    println!("mode={}", if connected { "connected" } else { "idle" });
    println!("containers={n}");
    println!("rss_kib_median={:.0}", median(rss.clone()));
    println!("pss_kib_median={:.0}", median(pss.clone()));
    println!("private_kib_median={:.0}", median(private));
    println!("heap_dirty_kib_median={:.0}", median(heap));
    println!("rss_kib_max={:.0}", rss.iter().cloned().fold(0.0, f64::max));
    println!("pss_kib_total={:.0}", pss.iter().sum::<f64>());
    println!("launch_to_running_ms_median={:.1}", median(launch_ms.clone()));
    println!("launch_to_running_ms_max={:.1}", launch_ms.iter().cloned().fold(0.0, f64::max));
    if let Some(secs) = std::env::var("SHIMBENCH_HOLD").ok().and_then(|v| v.parse().ok()) {
        eprintln!("holding {secs}s: shim pids {pids:?}");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    drop(shims);
    for w in waits {
        w.abort();
    }
    for (i, id) in ids.iter().enumerate() {
        let shim = launcher.connect(id, &work.join(format!("s{i}"))).await.expect("reconnect");
        let _ = shim.kill(&ProcessRef::Init, Signal::KILL, true).await;
        let _ = shim.wait(&ProcessRef::Init).await;
        let _ = shim.delete().await;
    }
}
