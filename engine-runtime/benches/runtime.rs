//! Runtime benchmark: `engine-runc`, runc and crun side by side, in one run,
//! on the same busybox bundle, interleaved. Not a test: run it with
//! `engine-runtime/bench/runtime-bench.sh` (or `cargo bench -p engine-runtime
//! --bench runtime -- [ITERATIONS]`) as root.
//!
//! For every iteration and every runtime (the order rotates each iteration):
//! - `run`: `<rt> run --bundle B <id>` of `/bin/true`, wall time until it exits;
//! - `create`, `start`, `delete`: each phase timed alone; between `start`
//!   and `delete` the bench reaps the container's init (it is the child
//!   subreaper, as a shim is), untimed;
//! - the floor: `unshare --fork --pid --mount --uts --ipc --net chroot <rootfs> /bin/true`.
//!
//! Reports medians (and p90) in milliseconds and ratios against crun and runc;
//! `run cpu` is the CPU time (user + system) of `run`, steadier than wall time
//! on a busy machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Rt {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
    /// The runtime's stderr goes to a file: a pipe would stay open in the
    /// container's init (which inherits it) and block the wait.
    err: PathBuf,
}

impl Rt {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        let err = std::fs::File::create(&self.err).map(Stdio::from).unwrap_or_else(|_| Stdio::null());
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        c
    }

    /// Run a runtime command; its wall time, or its error output.
    fn timed(&self, args: &[&str]) -> Result<Duration, String> {
        self.timed_cpu(args).map(|(wall, _)| wall)
    }

    /// Run a runtime command; its wall time and the CPU time (user + system)
    /// of the runtime process and the children it waited for.
    fn timed_cpu(&self, args: &[&str]) -> Result<(Duration, Duration), String> {
        let t = Instant::now();
        let child = self.cmd(args).spawn().map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 on the child we just spawned.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
        let wall = t.elapsed();
        reap_orphans();
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
        if r > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok((wall, cpu))
        } else {
            let err = std::fs::read_to_string(&self.err).unwrap_or_default();
            Err(format!("{} {}: wait status {status:#x} {}", self.name, args.join(" "), err.trim()))
        }
    }
}

/// Reap orphans handed to us as subreaper (a runtime's intermediate processes,
/// exited containers), without blocking.
fn reap_orphans() {
    // SAFETY: waitpid with WNOHANG on any child.
    unsafe {
        let mut st = 0;
        while libc::waitpid(-1, &mut st, libc::WNOHANG) > 0 {}
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn make_bundle(dir: &Path) {
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("/bin/busybox (busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    // The same config for every runtime: what `runc spec` writes, running /bin/true.
    let mut spec = oci_spec::runtime::Spec::default();
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(vec!["/bin/true".into()]));
    process.set_terminal(Some(false));
    spec.set_process(Some(process));
    spec.save(dir.join("config.json")).unwrap();
}

/// Wait until the container's init `pid` has exited (reaping it when it is
/// ours, as it is when the runtime hands it to us, the subreaper).
fn reap(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut st = 0;
        // SAFETY: waitpid with WNOHANG on one pid.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            return;
        }
        if r < 0 {
            // Not our child: wait for it to disappear (or turn zombie elsewhere).
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return,
                Ok(s) if s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) => return,
                Ok(_) => {}
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = ((s.len() - 1) as f64 * p).round() as usize;
    s[idx]
}

const PHASES: [&str; 6] = ["run", "create", "start", "delete", "c+s+d", "run cpu"];

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .or_else(|| std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()))
        .unwrap_or(30);
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("the runtime benchmark needs root");
        std::process::exit(2);
    }
    // SAFETY: prctl with integer arguments; containers' inits become our children, as a shim's.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let work = tempfile::Builder::new().prefix("runtime-bench-").tempdir().unwrap();
    let bundle = work.path().join("bundle");
    make_bundle(&bundle);
    let bundle_s = bundle.to_str().unwrap().to_string();

    let mut rts = vec![Rt {
        name: "engine-runc",
        bin: PathBuf::from(env!("CARGO_BIN_EXE_engine-runc")),
        root: work.path().join("root-engine-runc"),
        err: work.path().join("stderr-engine-runc"),
    }];
    // BENCH_BASELINE=<path>: another engine-runc build (say, before a change) beside this one.
    if let Some(base) = std::env::var_os("BENCH_BASELINE") {
        rts.push(Rt {
            name: "engine-runc-base",
            bin: PathBuf::from(base),
            root: work.path().join("root-engine-runc-base"),
            err: work.path().join("stderr-engine-runc-base"),
        });
    }
    for name in ["runc", "crun"] {
        match which(name) {
            Some(bin) => rts.push(Rt {
                name,
                bin,
                root: work.path().join(format!("root-{name}")),
                err: work.path().join(format!("stderr-{name}")),
            }),
            None => eprintln!("{name} not found in PATH; skipped"),
        }
    }
    // Smoke run: a runtime that cannot run the bundle is reported and left out.
    rts.retain(|rt| match rt.timed(&["run", "--bundle", &bundle_s, &format!("smoke-{}", rt.name)]) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("{} cannot run the bundle, left out: {e}", rt.name);
            let _ = rt.cmd(&["delete", "--force", &format!("smoke-{}", rt.name)]).output();
            false
        }
    });

    println!("runtime benchmark: {n} iterations, interleaved; bundle {}", bundle.display());
    for rt in &rts {
        let v = Command::new(&rt.bin).arg("--version").output().map(|o| o.stdout).unwrap_or_default();
        let first = String::from_utf8_lossy(&v).lines().next().unwrap_or("").to_string();
        println!("  {:<16} {} ({first})", rt.name, rt.bin.display());
    }

    // samples[runtime][phase] in ms; the floor separately.
    let mut samples: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); PHASES.len()]; rts.len()];
    let mut floor = Vec::new();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rootfs = bundle.join("rootfs");

    for i in 0..n {
        for k in 0..rts.len() {
            let j = (i + k) % rts.len();
            let rt = &rts[j];
            let id = format!("bench-{}-{}-{i}", rt.name, std::process::id());
            match rt.timed_cpu(&["run", "--bundle", &bundle_s, &format!("{id}-run")]) {
                Ok((wall, cpu)) => {
                    samples[j][0].push(ms(wall));
                    samples[j][5].push(ms(cpu));
                }
                Err(e) => eprintln!("{e}"),
            }
            let pid_file = work.path().join(format!("{id}.pid"));
            let pid_s = pid_file.to_str().unwrap();
            let create = rt.timed(&["create", "--bundle", &bundle_s, "--pid-file", pid_s, &id]);
            let Ok(create) = create.map_err(|e| eprintln!("{e}")) else {
                let _ = rt.cmd(&["delete", "--force", &id]).output();
                continue;
            };
            let start = match rt.timed(&["start", &id]) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("{e}");
                    let _ = rt.cmd(&["delete", "--force", &id]).output();
                    continue;
                }
            };
            if let Some(pid) = read_pid(&pid_file) {
                reap(pid);
            }
            let delete = match rt.timed(&["delete", &id]) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("{e}");
                    let _ = rt.cmd(&["delete", "--force", &id]).output();
                    continue;
                }
            };
            samples[j][1].push(ms(create));
            samples[j][2].push(ms(start));
            samples[j][3].push(ms(delete));
            samples[j][4].push(ms(create + start + delete));
        }
        let t = Instant::now();
        let ok = Command::new("unshare")
            .args(["--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "chroot"])
            .arg(&rootfs)
            .arg("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            floor.push(ms(t.elapsed()));
        }
    }

    println!();
    println!("medians in ms (p90 in brackets), {n} iterations each:");
    print!("  {:<16}", "runtime");
    for p in PHASES {
        print!(" {:>16}", p);
    }
    println!();
    let med = |v: &Vec<f64>| percentile(v, 0.5);
    for (j, rt) in rts.iter().enumerate() {
        print!("  {:<16}", rt.name);
        for s in &samples[j] {
            print!(" {:>16}", format!("{:.2} [{:.2}]", med(s), percentile(s, 0.9)));
        }
        println!();
    }
    println!(
        "  {:<16} {:>16}   (unshare --fork --pid --mount --uts --ipc --net chroot rootfs /bin/true)",
        "floor",
        format!("{:.2} [{:.2}]", med(&floor), percentile(&floor, 0.9))
    );
    for peer in ["crun", "runc"] {
        let Some(pj) = rts.iter().position(|r| r.name == peer) else { continue };
        println!();
        println!("ratios vs {peer} (median / {peer}'s median; below 1.00 is faster):");
        for (j, rt) in rts.iter().enumerate() {
            if j == pj {
                continue;
            }
            print!("  {:<16}", rt.name);
            for (ph, s) in samples[j].iter().enumerate() {
                print!(" {:>16}", format!("{:.2}", med(s) / med(&samples[pj][ph])));
            }
            println!();
        }
    }
    for rt in &rts {
        let _ = std::fs::remove_dir_all(&rt.root);
    }
}
