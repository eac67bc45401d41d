//! The guest's side: PID 1 of the initramfs.
//!
//! Loads the modules the initramfs carries (in the order their names give),
//! moves itself onto a tmpfs root (so that the guest's runtime can
//! `pivot_root` out of it, which the initramfs's own root does not allow),
//! mounts `/proc`, `/sys`, `/dev`, the cgroup2 hierarchy, opens the
//! virtio-serial port `engine.0`, mounts the container's root (9p tag
//! `rootfs`) on [`GUEST_ROOTFS`], says hello, then serves frames:
//!
//! - `Setup` mounts the bind sources' shares and creates the container with
//!   this project's Linux runtime: the agent's own binary run as
//!   `engine-runc` (`engine_runtime::cli::main`, single-threaded as that
//!   code requires) on the spec the host rewrote for the guest, so the
//!   namespaces, the cgroup (memory and pids limits), capabilities, seccomp,
//!   no_new_privs and masked paths are the same as on the host.
//! - `Spawn` of stream 0 starts the container (`engine-runc start`); of
//!   another stream runs an exec (`engine-runc exec --detach`).
//! - stdin, signals and resizes go to the processes.
//!
//! As the guest's PID 1 it reaps every process that ends up its child (the
//! container's init and exec'd processes once the runtime that made them
//! exits, and any orphan), reports the exit status of the container's own
//! processes, and when the init exits kills what is left and waits for the
//! host to stop the VM (it powers off if the host goes away).

use crate::proto::{ContainerSpec, Frame, Kind, ProcessSpec};
use nix::mount::{mount, MsFlags};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The virtio-serial port's name.
pub const PORT_NAME: &str = "engine.0";
/// Where the container's root (9p tag `rootfs`) is mounted in the guest.
pub const GUEST_ROOTFS: &str = "/rootfs";
/// The name under which the agent's binary is the guest's `engine-runc`.
pub const RUNC_NAME: &str = "engine-runc";
/// The guest runtime's state root.
const RUNC_ROOT: &str = "/run/engine-runc";
/// Where the agent keeps the bundle, exec process files and runtime logs.
const WORK: &str = "/run/engine-vm";
/// The container's id inside the guest (the guest holds only this one).
const CONTAINER: &str = "container";
/// How long a runtime command in the guest may take.
const RUNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How many exits of processes nobody waits for (yet) are remembered.
const UNCLAIMED: usize = 256;

type Out = Arc<Mutex<File>>;

#[derive(Default)]
struct Proc {
    pid: i32,
    stdin: Option<File>,
    outputs: Vec<(File, Kind)>,
}

type Procs = Arc<Mutex<HashMap<u32, Proc>>>;

/// Exit statuses collected by the reaper (the guest's PID 1 reaps every
/// process that becomes its child).
#[derive(Default)]
struct Reaped {
    /// Pids someone waits for.
    tracked: HashSet<i32>,
    /// Exit codes of tracked pids.
    exited: HashMap<i32, i32>,
    /// Recent exits of pids not tracked when they were reaped (a detached
    /// exec can exit before its pid is read).
    unclaimed: VecDeque<(i32, i32)>,
}

#[derive(Default)]
struct Children {
    reaped: Mutex<Reaped>,
    cv: Condvar,
}

impl Children {
    fn lock(&self) -> std::sync::MutexGuard<'_, Reaped> {
        self.reaped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reap every child, for ever (the reaper thread).
    fn reap(&self) {
        use nix::sys::wait::{waitpid, WaitStatus};
        loop {
            let (pid, code) = match waitpid(None, None) {
                Ok(WaitStatus::Exited(p, c)) => (p.as_raw(), c),
                Ok(WaitStatus::Signaled(p, s, _)) => (p.as_raw(), 128 + s as i32),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    // No children right now.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            let mut g = self.lock();
            if g.tracked.remove(&pid) {
                g.exited.insert(pid, code);
            } else {
                if g.unclaimed.len() == UNCLAIMED {
                    g.unclaimed.pop_front();
                }
                g.unclaimed.push_back((pid, code));
            }
            drop(g);
            self.cv.notify_all();
        }
    }

    /// Track `pid` (an exit already reaped is found among the unclaimed).
    fn track(&self, pid: i32) {
        let mut g = self.lock();
        if let Some(i) = g.unclaimed.iter().position(|(p, _)| *p == pid) {
            let (_, code) = g.unclaimed.remove(i).unwrap_or_default();
            g.exited.insert(pid, code);
        } else {
            g.tracked.insert(pid);
        }
    }

    /// Wait for a tracked pid's exit code (`None` after `timeout`).
    fn wait(&self, pid: i32, timeout: Option<Duration>) -> Option<i32> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = self.lock();
        loop {
            if let Some(code) = g.exited.remove(&pid) {
                return Some(code);
            }
            g = match deadline {
                None => self.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.cv.wait_timeout(g, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }

    /// Spawn `cmd` with its pid tracked before the reaper can see it exit.
    fn spawn(&self, cmd: &mut Command) -> std::io::Result<std::process::Child> {
        let mut g = self.lock();
        let child = cmd.spawn()?;
        g.tracked.insert(child.id() as i32);
        Ok(child)
    }
}

fn console(msg: &str) {
    // Opened once and kept: the serial port's driver shuts the port down
    // when its last file closes, and what was written before may be lost.
    static CONSOLE: std::sync::OnceLock<Option<Mutex<File>>> = std::sync::OnceLock::new();
    let c = CONSOLE.get_or_init(|| std::fs::OpenOptions::new().write(true).open("/dev/console").ok().map(Mutex::new));
    if let Some(mut c) = c.as_ref().and_then(|c| c.lock().ok()) {
        let _ = writeln!(c, "engine-vm-agent: {msg}");
    }
}

/// A boot step on the console with the guest's uptime: what a boot that
/// hangs was doing shows in the host's `console.log` and in its error.
fn step(what: &str) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime fills a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    console(&format!("{what} ({}.{:03} s after boot)", ts.tv_sec, ts.tv_nsec / 1_000_000));
}

fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    std::process::exit(1)
}

fn send(out: &Out, f: Frame) {
    if let Ok(mut w) = out.lock() {
        let _ = f.write_to(&mut *w);
    }
}

/// The agent's whole life (the `engine-vm-agent` binary's `main`). Started
/// under the name [`RUNC_NAME`] it is the guest's `engine-runc` instead.
pub fn main() -> ! {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    if Path::new(&arg0).file_name().is_some_and(|n| n == RUNC_NAME) {
        engine_runtime::cli::main()
    }
    // It mounts over /proc, /sys and /dev and powers the machine off: only
    // ever as the init of the VM's initramfs.
    if std::process::id() != 1 || !Path::new("/init").is_file() {
        eprintln!("engine-vm-agent: this is the guest's init (PID 1 of the engine-vm initramfs); not starting");
        std::process::exit(2);
    }
    if let Err(e) = boot() {
        console(&e);
        power_off();
    }
    power_off()
}

/// Make a tmpfs the root, as `switch_root` does (`pivot_root` cannot leave
/// the initramfs's own root): the agent and its libraries are bind-mounted
/// into it from the initramfs, not copied (the guest's memory is small).
/// The runtime is run as `/init` of the new root, a bind mount it can clone
/// read-only for its sealed re-exec (no copy of the binary per run).
fn switch_root() -> Result<(), String> {
    let none: Option<&str> = None;
    let new = Path::new("/newroot");
    std::fs::create_dir_all(new).map_err(|e| format!("{}: {e}", new.display()))?;
    mount(Some("tmpfs"), new, Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))
        .map_err(|e| format!("tmpfs root: {e}"))?;
    for entry in ["init", "lib", "lib64", "usr"] {
        let (src, dst) = (Path::new("/").join(entry), new.join(entry));
        if !src.exists() {
            continue;
        }
        if src.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        } else {
            File::create(&dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        }
        mount(Some(&src), &dst, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)
            .map_err(|e| format!("binding {} into the new root: {e}", src.display()))?;
    }
    nix::unistd::chdir(new).map_err(|e| e.to_string())?;
    mount(Some("."), "/", none, MsFlags::MS_MOVE, none).map_err(|e| format!("moving the tmpfs root: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| e.to_string())
}

fn boot() -> Result<(), String> {
    step("started");
    load_modules()?;
    step("modules loaded");
    switch_root()?;
    let none: Option<&str> = None;
    for d in ["/proc", "/sys", "/dev", "/run", "/tmp", GUEST_ROOTFS] {
        let _ = std::fs::create_dir_all(d);
    }
    let _ = mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), none);
    let _ = mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), none);
    let _ = mount(Some("devtmpfs"), "/dev", Some("devtmpfs"), MsFlags::empty(), none);
    let _ = std::fs::create_dir_all("/dev/pts");
    let _ = mount(Some("devpts"), "/dev/pts", Some("devpts"), MsFlags::empty(), Some("ptmxmode=0666,mode=620"));
    mount(Some("cgroup2"), "/sys/fs/cgroup", Some("cgroup2"), MsFlags::empty(), none)
        .map_err(|e| format!("mounting the cgroup2 hierarchy: {e}"))?;
    std::fs::create_dir_all(WORK).map_err(|e| format!("{WORK}: {e}"))?;
    let port = find_port(Duration::from_secs(30))?;
    step("control port found");
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&port).map_err(|e| format!("{port:?}: {e}"))?;
    mount(
        Some("rootfs"),
        GUEST_ROOTFS,
        Some("9p"),
        MsFlags::empty(),
        Some("trans=virtio,version=9p2000.L,msize=512000,access=client"),
    )
    .map_err(|e| format!("mounting the container's root (9p tag rootfs): {e}"))?;
    let children: Arc<Children> = Arc::default();
    {
        let c = children.clone();
        std::thread::spawn(move || c.reap());
    }
    let mut reader = file.try_clone().map_err(|e| e.to_string())?;
    let out: Out = Arc::new(Mutex::new(file));
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    step("root mounted, saying hello");
    send(&out, Frame::new(Kind::Hello, 0, release.into_bytes()));
    let procs: Procs = Arc::default();
    loop {
        let f = match Frame::read_from(&mut reader) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("control port: {e}")),
        };
        match f.kind {
            Kind::Setup => {
                let r = serde_json::from_slice::<ContainerSpec>(&f.data)
                    .map_err(|e| e.to_string())
                    .and_then(|s| setup(&s, &children, &procs));
                step(if r.is_ok() { "container created" } else { "container set-up failed" });
                match r {
                    Ok(()) => send(&out, Frame::new(Kind::Ready, 0, Vec::new())),
                    Err(e) => send(&out, Frame::new(Kind::Error, 0, e.into_bytes())),
                }
            }
            Kind::Spawn => {
                let r = if f.stream == 0 {
                    start(&out, &procs, &children)
                } else {
                    serde_json::from_slice::<ProcessSpec>(&f.data)
                        .map_err(|e| e.to_string())
                        .and_then(|p| exec(f.stream, &p, &out, &procs, &children))
                };
                if let Err(e) = r {
                    send(&out, Frame::new(Kind::Error, f.stream, e.into_bytes()));
                }
            }
            Kind::Stdin => {
                let mut g = procs.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(w) = g.get_mut(&f.stream).and_then(|p| p.stdin.as_mut()) {
                    let _ = w.write_all(&f.data);
                }
            }
            Kind::StdinEof => {
                let mut g = procs.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = g.get_mut(&f.stream) {
                    p.stdin = None;
                }
            }
            Kind::Signal => {
                let sig = f.int();
                let all = f.data.get(4).copied().unwrap_or(0) != 0;
                let pid = procs.lock().unwrap_or_else(|e| e.into_inner()).get(&f.stream).map(|p| p.pid);
                // SAFETY: plain kill(2).
                unsafe {
                    if all {
                        libc::kill(-1, sig);
                    } else if let Some(pid) = pid.filter(|p| *p > 0) {
                        libc::kill(pid, sig);
                    }
                }
            }
            Kind::Resize => {
                let g = procs.lock().unwrap_or_else(|e| e.into_inner());
                if let (Some(w), Some(d)) = (g.get(&f.stream).and_then(|p| p.stdin.as_ref()), f.data.get(..4)) {
                    let ws = libc::winsize {
                        ws_row: u16::from_le_bytes([d[0], d[1]]),
                        ws_col: u16::from_le_bytes([d[2], d[3]]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    // SAFETY: TIOCSWINSZ with a valid winsize on the pty master.
                    unsafe { libc::ioctl(w.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                }
            }
            _ => {}
        }
    }
}

fn load_modules() -> Result<(), String> {
    let mut mods: Vec<PathBuf> = std::fs::read_dir("/lib/modules")
        .map_err(|e| format!("/lib/modules: {e}"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    mods.sort();
    for m in mods {
        let f = File::open(&m).map_err(|e| format!("{}: {e}", m.display()))?;
        // SAFETY: finit_module with an open module file and an empty parameter string.
        let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), c"".as_ptr(), 0) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(format!("loading {}: {e}", m.display()));
            }
        }
    }
    Ok(())
}

/// The `/dev` node of the port named [`PORT_NAME`] (waits for the driver to probe it).
fn find_port(within: Duration) -> Result<PathBuf, String> {
    let deadline = Instant::now() + within;
    loop {
        for e in std::fs::read_dir("/sys/class/virtio-ports").into_iter().flatten().flatten() {
            let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default();
            let dev = Path::new("/dev").join(e.file_name());
            if name.trim() == PORT_NAME && dev.exists() {
                return Ok(dev);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no virtio-serial port named {PORT_NAME} after {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn setup(spec: &ContainerSpec, children: &Children, procs: &Procs) -> Result<(), String> {
    if !spec.network.interfaces.is_empty() {
        crate::net::guest::configure(&spec.network).map_err(|e| format!("the guest's network: {e}"))?;
    }
    for tag in &spec.shares {
        let dir = Path::new("/mnt").join(tag);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        mount(
            Some(tag.as_str()),
            &dir,
            Some("9p"),
            MsFlags::empty(),
            Some("trans=virtio,version=9p2000.L,msize=512000"),
        )
        .map_err(|e| format!("mounting share {tag}: {e}"))?;
    }
    let bundle = Path::new(WORK).join("bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let config = serde_json::to_vec(&spec.oci).map_err(|e| e.to_string())?;
    std::fs::write(bundle.join("config.json"), config).map_err(|e| format!("writing the guest's config.json: {e}"))?;
    let terminal = spec.oci.pointer("/process/terminal").and_then(|t| t.as_bool()).unwrap_or(false);
    let bundle_arg = bundle.to_string_lossy().into_owned();
    let p = run_runtime(0, &["create", "--bundle", &bundle_arg], terminal, children)?;
    procs.lock().unwrap_or_else(|e| e.into_inner()).insert(0, p);
    Ok(())
}

/// The process of stream `stream`: run the guest's runtime (`args` plus
/// `--pid-file`, `--console-socket` for a terminal, and the container id),
/// with the process's stdio (pipes, or the terminal the runtime sends back),
/// wait for the runtime to exit, and return the process (its pid tracked).
fn run_runtime(stream: u32, args: &[&str], terminal: bool, children: &Children) -> Result<Proc, String> {
    let pid_file = Path::new(WORK).join(format!("pid-{stream}"));
    let log = Path::new(WORK).join(format!("runtime-{stream}.log"));
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new("/init");
    {
        use std::os::unix::process::CommandExt;
        cmd.arg0(RUNC_NAME);
    }
    cmd.args(["--root", RUNC_ROOT, "--log"]).arg(&log).args(args).arg("--pid-file").arg(&pid_file);
    let console = if terminal {
        let sock = Path::new(WORK).join(format!("console-{stream}.sock"));
        let _ = std::fs::remove_file(&sock);
        let l = std::os::unix::net::UnixListener::bind(&sock).map_err(|e| format!("console socket: {e}"))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        cmd.arg("--console-socket").arg(&sock);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        Some((l, sock))
    } else {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        None
    };
    cmd.arg(CONTAINER);
    let mut child = children.spawn(&mut cmd).map_err(|e| format!("running the guest's runtime: {e}"))?;
    let rpid = child.id() as i32;
    let mut proc = Proc::default();
    if let Some(o) = child.stdout.take() {
        proc.outputs.push((File::from(OwnedFd::from(o)), Kind::Stdout));
    }
    if let Some(e) = child.stderr.take() {
        proc.outputs.push((File::from(OwnedFd::from(e)), Kind::Stderr));
    }
    proc.stdin = child.stdin.take().map(|i| File::from(OwnedFd::from(i)));
    drop(cmd);
    // The terminal's master arrives while the runtime runs.
    let mut master = None;
    let deadline = Instant::now() + RUNC_TIMEOUT;
    let take_master = |master: &mut Option<OwnedFd>| -> Result<(), String> {
        if let (Some((l, _)), None) = (&console, &master) {
            if let Ok((conn, _)) = l.accept() {
                let _ = conn.set_nonblocking(false);
                *master = Some(
                    engine_runtime::linux::console::recv_fd(conn.as_raw_fd())
                        .map_err(|e| format!("the terminal from the guest's runtime: {e}"))?,
                );
            }
        }
        Ok(())
    };
    let code = loop {
        take_master(&mut master)?;
        let step = if console.is_some() && master.is_none() { Duration::from_millis(10) } else { RUNC_TIMEOUT };
        let left = deadline.saturating_duration_since(Instant::now()).min(step);
        if let Some(code) = children.wait(rpid, Some(left)) {
            break code;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) of the runtime process we started.
            unsafe { libc::kill(rpid, libc::SIGKILL) };
            let _ = children.wait(rpid, None);
            return Err(format!("the guest's runtime did not finish `{}` within {RUNC_TIMEOUT:?}", args[0]));
        }
    };
    // A connection the runtime made just before it exited waits in the backlog.
    take_master(&mut master)?;
    if let Some((_, sock)) = &console {
        let _ = std::fs::remove_file(sock);
    }
    if code != 0 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let msg = text
            .lines()
            .filter(|l| l.contains("level=error"))
            .map(|l| l.split_once("msg=").map_or(l, |(_, m)| m).trim_matches('"').replace("\\\"", "\""))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(if msg.is_empty() { format!("the guest's runtime exited with {code}") } else { msg });
    }
    if terminal {
        let m = File::from(master.ok_or("the guest's runtime sent no terminal")?);
        proc.outputs.push((m.try_clone().map_err(|e| e.to_string())?, Kind::Stdout));
        proc.stdin = Some(m);
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("the guest's runtime wrote no pid to {}", pid_file.display()))?;
    children.track(pid);
    proc.pid = pid;
    Ok(proc)
}

/// Start the created container and relay its output; report its exit.
fn start(out: &Out, procs: &Procs, children: &Arc<Children>) -> Result<(), String> {
    let created = procs.lock().unwrap_or_else(|e| e.into_inner()).remove(&0);
    let Some(proc) = created else { return Err("no container was created".into()) };
    if let Err(e) = run_runtime_plain(&["start"], children) {
        procs.lock().unwrap_or_else(|e| e.into_inner()).insert(0, proc);
        return Err(e);
    }
    relay(0, proc, out, procs, children);
    Ok(())
}

/// `engine-runc <args> container` with no stdio of a process (`start`).
fn run_runtime_plain(args: &[&str], children: &Children) -> Result<(), String> {
    let log = Path::new(WORK).join("runtime-start.log");
    let mut cmd = Command::new("/init");
    {
        use std::os::unix::process::CommandExt;
        cmd.arg0(RUNC_NAME);
    }
    cmd.args(["--root", RUNC_ROOT, "--log"]).arg(&log).args(args).arg(CONTAINER);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let child = children.spawn(&mut cmd).map_err(|e| format!("running the guest's runtime: {e}"))?;
    match children.wait(child.id() as i32, Some(RUNC_TIMEOUT)) {
        Some(0) => Ok(()),
        Some(code) => Err(format!(
            "the guest's runtime failed to {}: {} (exit {code})",
            args[0],
            std::fs::read_to_string(&log).unwrap_or_default().trim()
        )),
        None => Err(format!("the guest's runtime did not {} within {RUNC_TIMEOUT:?}", args[0])),
    }
}

/// Run an exec'd process (the spec's whole OCI process when the host sent it).
fn exec(stream: u32, p: &ProcessSpec, out: &Out, procs: &Procs, children: &Arc<Children>) -> Result<(), String> {
    let process = match &p.oci {
        Some(v) => v.clone(),
        None => serde_json::json!({
            "args": p.args, "env": p.env, "cwd": if p.cwd.is_empty() { "/" } else { p.cwd.as_str() },
            "terminal": p.terminal,
            "user": {"uid": p.uid, "gid": p.gid, "additionalGids": p.additional_gids},
        }),
    };
    let file = Path::new(WORK).join(format!("process-{stream}.json"));
    std::fs::write(&file, serde_json::to_vec(&process).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let file_arg = file.to_string_lossy().into_owned();
    let r = run_runtime(stream, &["exec", "--detach", "--process", &file_arg], p.terminal, children);
    let _ = std::fs::remove_file(&file);
    relay(stream, r?, out, procs, children);
    Ok(())
}

/// Report the process started, relay its output, and report its exit
/// status once it is reaped and its output drained.
fn relay(stream: u32, mut proc: Proc, out: &Out, procs: &Procs, children: &Arc<Children>) {
    let pid = proc.pid;
    let outputs = std::mem::take(&mut proc.outputs);
    procs.lock().unwrap_or_else(|e| e.into_inner()).insert(stream, proc);
    // Started goes out before any output: an exec's connection carries the
    // monitor's reply (sent on Started) before the process's frames.
    send(out, Frame::new(Kind::Started, stream, pid.to_le_bytes().to_vec()));
    let readers: Vec<_> = outputs.into_iter().map(|(f, kind)| pump(f, kind, stream, out.clone())).collect();
    let (out, procs, children) = (out.clone(), procs.clone(), children.clone());
    std::thread::spawn(move || {
        let code = children.wait(pid, None).unwrap_or(255);
        if stream == 0 {
            // The container is over: nothing of it may hold its output open.
            // SAFETY: kill(2) of every other process in the guest.
            unsafe { libc::kill(-1, libc::SIGKILL) };
        }
        for r in readers {
            let _ = r.join();
        }
        procs.lock().unwrap_or_else(|e| e.into_inner()).remove(&stream);
        send(&out, Frame::new(Kind::Exit, stream, code.to_le_bytes().to_vec()));
    });
}

fn pump(mut r: File, kind: Kind, stream: u32, out: Out) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => send(&out, Frame::new(kind, stream, buf[..n].to_vec())),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: the pty's slave side is closed.
                Err(_) => break,
            }
        }
    })
}
