//! The per-container VM monitor: the process the shim sees as the
//! container's init. It starts QEMU, relays the process's stdio between its
//! own stdio (the shim's pipes) and the agent, forwards signals and control
//! requests, and exits with the container process's exit code.

use crate::host::BootFiles;
use crate::proto::{ContainerSpec, Frame, Kind, ProcessSpec, Reply, Request};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a VM's boot (QEMU's start to the container created in the
/// guest: the kernel, the agent's hello, the guest's `engine-runc create`)
/// may run, not counting the time QEMU waited for a host CPU. An unloaded
/// boot takes 3-5 s of it; a boot that has had this much time and not
/// finished is hung, however loaded the host is (see [`BOOT_LIMIT`]).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The boot's bound in wall-clock time, however starved of CPU its QEMU
/// was (a host so loaded that a boot needs more is not serving it). The
/// shim launcher's bound for the `vm` runtime is longer, so that this
/// error, naming what the guest was doing, is the one the caller sees.
pub const BOOT_LIMIT: Duration = Duration::from_secs(600);
/// The guest console's log (`console.log` in the state dir) is rotated
/// into `console.log.1` at this size: at most twice this is kept.
pub const CONSOLE_MAX: u64 = 256 * 1024;

/// Everything the monitor needs, written by `create` to `<state>/plan.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The container id.
    pub id: String,
    /// Kernel, initramfs, QEMU, accelerator.
    pub boot: BootFiles,
    /// The VM's memory in MiB.
    pub memory_mib: u64,
    /// The container's memory limit in bytes (its cgroup's inside the guest).
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// The VM's vCPUs.
    pub cpus: u32,
    /// The container's root on the host (shared as 9p tag `rootfs`).
    pub rootfs: PathBuf,
    /// Further 9p shares: the sources of the spec's bind mounts.
    pub shares: Vec<Share>,
    /// The container as the agent sets it up.
    pub container: ContainerSpec,
    /// The init process.
    pub process: ProcessSpec,
    /// Where to send the terminal's master (with `process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// The spec's bind mounts (destination in the container, host source,
    /// read-only), mirrored in the monitor's view of the container's root.
    #[serde(default)]
    pub binds: Vec<(String, PathBuf, bool)>,
    /// The container's network namespace (made by the lifecycle manager,
    /// its veth put there by the network driver), taken over by the VM.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The boot's bound in running time, in milliseconds (`None`: [`BOOT_TIMEOUT`]).
    #[serde(default)]
    pub boot_timeout_ms: Option<u64>,
}

impl Plan {
    /// The boot's bound in running time.
    pub fn boot_timeout(&self) -> Duration {
        self.boot_timeout_ms.map(Duration::from_millis).unwrap_or(BOOT_TIMEOUT)
    }
}

/// The guest TSC's frequency in kHz under `-icount` (one tick per virtual nanosecond).
pub const ICOUNT_TSC_KHZ: u64 = 1_000_000;

/// The first fd number QEMU finds the taps on (`-netdev tap,fd=N`).
const TAP_FD: i32 = 200;

/// A host directory or file shared into the guest by 9p (mounted on
/// `/mnt/<tag>` there).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Share {
    /// The 9p tag.
    pub tag: String,
    /// The host directory or file.
    pub source: PathBuf,
    /// `source` is a file: the monitor shares a directory of the state dir
    /// holding only that file (bind-mounted in the monitor's own mount
    /// namespace), never the file's own directory.
    pub file: bool,
    /// Shared read-only.
    pub readonly: bool,
}

impl Share {
    /// The host directory QEMU shares.
    pub fn dir(&self, state: &Path) -> PathBuf {
        if self.file {
            state.join("binds").join(&self.tag)
        } else {
            self.source.clone()
        }
    }
}

/// The files of a container's state directory.
pub mod files {
    /// The plan.
    pub const PLAN: &str = "plan.json";
    /// The monitor's control socket.
    pub const CONTROL: &str = "monitor.sock";
    /// QEMU connects here (the virtio-serial port's host end).
    pub const AGENT: &str = "agent.sock";
    /// The guest's serial console (the kernel's warnings and errors, the
    /// agent's boot steps), kept by the monitor, at most
    /// [`super::CONSOLE_MAX`] bytes.
    pub const CONSOLE: &str = "console.log";
    /// The console's previous part, once `console.log` reached its bound.
    pub const CONSOLE_OLD: &str = "console.log.1";
    /// QEMU connects the guest's serial port here.
    pub const CONSOLE_SOCKET: &str = "console.sock";
    /// Present once the init has started.
    pub const RUNNING: &str = "running";
    /// QEMU's pid.
    pub const QEMU_PID: &str = "qemu.pid";
    /// Present while the VM is paused.
    pub const PAUSED: &str = "paused";
}

enum Event {
    Frame(Frame),
    AgentGone,
    Start(mpsc::Sender<Reply>),
    Exec(ProcessSpec, UnixStream),
}

/// QEMU's command line for `plan`.
pub fn qemu_args(plan: &Plan, state: &Path) -> Vec<String> {
    let b = &plan.boot;
    // The kernel's warnings and errors go to `console.log` (a handful of
    // lines per boot: "APIC frequency too slow, disabling apic timer" is
    // one, should the guest's timer calibration fail);
    // `ENGINE_VM_VERBOSE=1`: its whole log.
    let quiet = if std::env::var_os("ENGINE_VM_VERBOSE").is_some() { "loglevel=7" } else { "loglevel=5" };
    // Boot time: skip what a one-container guest does not need (device probes,
    // self-tests, the TSC watchdog, audit, speculative-execution mitigations:
    // the guest kernel isolates nothing but the container from itself).
    let mut cmdline = vec![
        "console=ttyS0",
        quiet,
        "panic=-1",
        "rdinit=/init",
        "nomodeset",
        "8250.nr_uarts=1",
        "pci=off",
        "i8042.noaux",
        "i8042.nomux",
        "i8042.nopnp",
        "i8042.dumbkbd",
        "cryptomgr.notests",
        "tsc=reliable",
        "no_timer_check",
        "nowatchdog",
        "audit=0",
        "mitigations=off",
        "random.trust_cpu=on",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    if b.accel == "tcg" {
        // Under `-icount` the guest's TSC counts the virtual clock's
        // nanoseconds: 1 GHz. Told so, the kernel does not calibrate it
        // (a calibration that fails on a loaded host and hangs the boot).
        cmdline.push(format!("tsc_early_khz={ICOUNT_TSC_KHZ}"));
    }
    let cpu = if b.accel == "kvm" { "host" } else { "max" };
    let serial = format!("socket,id=console,path={}", files::CONSOLE_SOCKET);
    let mut a: Vec<String> = vec![
        "-M".into(),
        "microvm,acpi=on,pit=off,pic=off".into(),
        "-accel".into(),
        // TCG's translation cache defaults to 1 GiB, grown as used: 32 MiB serves one container.
        if b.accel == "tcg" { "tcg,tb-size=32".into() } else { b.accel.clone() },
        "-cpu".into(),
        cpu.into(),
        "-m".into(),
        format!("{}M", plan.memory_mib),
        "-smp".into(),
        plan.cpus.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-nographic".into(),
        "-no-reboot".into(),
        // The monitor keeps the console's log, bounded (a file chardev grows for ever).
        "-chardev".into(),
        serial,
        "-serial".into(),
        "chardev:console".into(),
        "-kernel".into(),
        b.kernel.display().to_string(),
        "-initrd".into(),
        b.initramfs.display().to_string(),
        "-append".into(),
        cmdline.join(" "),
        // The guest's free pages go back to the host (what boot used and freed).
        "-device".into(),
        "virtio-balloon-device,free-page-reporting=on".into(),
        "-device".into(),
        "virtio-serial-device".into(),
        "-chardev".into(),
        // Relative to QEMU's working directory (the state dir): a unix socket's
        // path is limited to 107 bytes, and state dirs named by 64-hex ids are longer.
        format!("socket,id=agent,path={}", files::AGENT),
        "-device".into(),
        format!("virtserialport,chardev=agent,name={}", crate::agent::PORT_NAME),
    ];
    if b.accel == "tcg" {
        // The guest's clocks (TSC, local APIC timer) follow the instructions
        // it runs, not the host's clock: time the host's scheduler keeps
        // QEMU off the CPU does not pass for the guest. Without it, a vCPU
        // thread descheduled for 100 ms during the kernel's local APIC timer
        // calibration (a busy loop timed by the TSC, the only timer a
        // microvm has) makes the kernel measure a timer too slow to use and
        // disable it: no timer interrupt ever comes, and the boot hangs at
        // its first sleep (the cause of boots that never said hello on a
        // loaded host). `shift=auto` keeps the virtual clock near real time.
        a.push("-icount".into());
        a.push("shift=auto".into());
    }
    // One virtio-net device per interface of the container, on its tap.
    for (i, iface) in plan.container.network.interfaces.iter().enumerate() {
        a.push("-netdev".into());
        a.push(format!("tap,id=net{i},fd={}", TAP_FD + i as i32));
        a.push("-device".into());
        a.push(format!("virtio-net-device,netdev=net{i},mac={}", iface.mac));
    }
    let mut share = |tag: &str, path: &Path, readonly: bool| {
        let ro = if readonly { ",readonly=on" } else { "" };
        a.push("-fsdev".into());
        a.push(format!("local,id=fs_{tag},path={},security_model=passthrough{ro}", path.display()));
        a.push("-device".into());
        a.push(format!("virtio-9p-device,fsdev=fs_{tag},mount_tag={tag}"));
    };
    share("rootfs", &plan.rootfs, false);
    for s in &plan.shares {
        share(&s.tag, &s.dir(state), s.readonly);
    }
    a
}

fn block_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    let _ = set.thread_block();
    set
}

/// Send `fd` (a pty master) to a console socket, as runc does.
pub fn send_console(socket: &Path, fd: &impl AsRawFd) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let s = UnixStream::connect(socket)?;
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(s.as_raw_fd(), &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map_err(std::io::Error::from)?;
    Ok(())
}

/// A host-side pty whose master goes to the console socket; the monitor
/// relays between the slave and the agent (the guest has its own pty).
pub fn host_pty(socket: &Path) -> std::io::Result<std::fs::File> {
    let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
    let slave = std::fs::File::from(pty.slave);
    if let Ok(mut t) = nix::sys::termios::tcgetattr(&slave) {
        nix::sys::termios::cfmakeraw(&mut t);
        let _ = nix::sys::termios::tcsetattr(&slave, nix::sys::termios::SetArg::TCSANOW, &t);
    }
    // The slave becomes our controlling terminal: the shim's resizes of the
    // master reach us as SIGWINCH, to be forwarded to the guest's terminal.
    // SAFETY: setsid and TIOCSCTTY on a terminal we own.
    unsafe {
        libc::setsid();
        libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0);
    }
    send_console(socket, &pty.master)?;
    Ok(slave)
}

fn ready(msg: &str) {
    // SAFETY: fd 3 is the ready pipe `create` gave us (or not open, then the write fails).
    let mut f = unsafe { std::fs::File::from_raw_fd(3) };
    let _ = writeln!(f, "{msg}");
}

/// The monitor's whole life (`engine-vm monitor <state dir>`); returns the exit code.
pub fn run(state: &Path) -> i32 {
    let sigs = block_signals();
    match serve(state, sigs) {
        Ok(code) => code,
        Err(e) => {
            ready(&format!("error: {e}"));
            let _ = writeln!(std::io::stderr(), "engine-vm: {e}");
            255
        }
    }
}

fn serve(state: &Path, sigs: nix::sys::signal::SigSet) -> Result<i32, String> {
    let mut plan: Plan =
        serde_json::from_slice(&std::fs::read(state.join(files::PLAN)).map_err(|e| format!("plan: {e}"))?)
            .map_err(|e| format!("plan: {e}"))?;
    stage_files(&plan, state)?;
    // Still one thread: the network namespace is entered and left by the process.
    let taps = match &plan.netns {
        Some(ns) => {
            let (net, taps) = crate::net::host::take_over(ns)?;
            plan.container.network = net;
            taps
        }
        None => Vec::new(),
    };
    let tap_fds: Vec<i32> = taps.iter().map(|t| t.as_raw_fd()).collect();
    let dir = std::fs::File::open(state).map_err(|e| format!("{}: {e}", state.display()))?;
    let agent_path = short_path(&dir, files::AGENT);
    let _ = std::fs::remove_file(&agent_path);
    let listener =
        UnixListener::bind(&agent_path).map_err(|e| format!("{}: {e}", state.join(files::AGENT).display()))?;
    let console_path = short_path(&dir, files::CONSOLE_SOCKET);
    let _ = std::fs::remove_file(&console_path);
    let console_listener = UnixListener::bind(&console_path)
        .map_err(|e| format!("{}: {e}", state.join(files::CONSOLE_SOCKET).display()))?;
    let qemu_log = std::fs::File::create(state.join("qemu.log")).map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(&plan.boot.qemu);
    cmd.current_dir(state)
        .args(qemu_args(&plan, state))
        .stdin(std::process::Stdio::null())
        .stdout(qemu_log.try_clone().map_err(|e| e.to_string())?)
        .stderr(qemu_log);
    // SAFETY: async-signal-safe calls only: QEMU dies with the monitor and gets an empty signal mask.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // A copy of the monitor's mounts: the view `enter_view` makes later is not QEMU's.
            if libc::unshare(libc::CLONE_NEWNS) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The taps on the fds QEMU's command line names (dup2 clears CLOEXEC).
            for (i, fd) in tap_fds.iter().enumerate() {
                if libc::dup2(*fd, TAP_FD + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut qemu = cmd.spawn().map_err(|e| format!("starting {}: {e}", plan.boot.qemu.display()))?;
    // QEMU holds the taps now: they go when it does.
    drop(taps);
    let qemu_pid = qemu.id() as i32;
    // The guest's console: kept in the state dir, bounded.
    let console_done = {
        let dir = dir.try_clone().map_err(|e| e.to_string())?;
        let (done_tx, done_rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Ok((conn, _)) = console_listener.accept() {
                keep_console(conn, &dir, CONSOLE_MAX);
            }
            let _ = done_tx.send(());
        });
        done_rx
    };
    let fail = |qemu: &mut std::process::Child, what: String| -> String {
        let _ = qemu.kill();
        let _ = qemu.wait();
        // QEMU's end closes the console: all the guest wrote is in the file then.
        let _ = console_done.recv_timeout(Duration::from_secs(2));
        let log = std::fs::read_to_string(state.join("qemu.log")).unwrap_or_default();
        let console = console_tail(state, CONSOLE_TAIL);
        let log = log.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
        format!("{what} (qemu: {log}; the guest's console, last lines: {})", console.join(" | "))
    };
    crate::host::write_atomic(&state.join(files::QEMU_PID), qemu_pid.to_string().as_bytes())
        .map_err(|e| fail(&mut qemu, e.to_string()))?;
    // The whole boot is bounded by the time the VM had a CPU (or did not
    // want one): a boot that is slow because the host is loaded goes on,
    // one that makes no progress fails.
    let clock = BootClock { started: std::time::Instant::now(), bound: plan.boot_timeout(), qemu: qemu_pid };
    // QEMU connects at its start; it may die first.
    let (tx, rx) = mpsc::channel::<Event>();
    let conn = {
        let (ctx, crx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = ctx.send(listener.accept().map(|(s, _)| s));
        });
        loop {
            match crx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(s)) => break s,
                Ok(Err(e)) => return Err(fail(&mut qemu, format!("accepting QEMU's connection: {e}"))),
                Err(_) => {
                    if let Ok(Some(st)) = qemu.try_wait() {
                        return Err(fail(&mut qemu, format!("QEMU exited at start ({st})")));
                    }
                    if let Some(e) = clock.stalled("QEMU to connect to the agent's socket") {
                        return Err(fail(&mut qemu, e));
                    }
                }
            }
        }
    };
    let _ = std::fs::remove_file(&agent_path);
    let _ = std::fs::remove_file(&console_path);
    let writer = Arc::new(Mutex::new(conn.try_clone().map_err(|e| e.to_string())?));
    {
        let tx = tx.clone();
        let mut r = BufReader::with_capacity(64 * 1024, conn);
        std::thread::spawn(move || {
            while let Ok(Some(f)) = Frame::read_from(&mut r) {
                if tx.send(Event::Frame(f)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Event::AgentGone);
        });
    }
    let to_agent = {
        let writer = writer.clone();
        move |f: Frame| -> bool { writer.lock().map(|mut w| f.write_to(&mut *w).is_ok()).unwrap_or(false) }
    };
    // Boot: hello, then the container's setup.
    let mut release = String::new();
    let mut setup_sent = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Event::Frame(f)) if f.kind == Kind::Hello => {
                release = String::from_utf8_lossy(&f.data).into_owned();
                let spec = serde_json::to_vec(&plan.container).unwrap_or_default();
                to_agent(Frame::new(Kind::Setup, 0, spec));
                setup_sent = true;
            }
            Ok(Event::Frame(f)) if f.kind == Kind::Ready && setup_sent => break,
            Ok(Event::Frame(f)) if f.kind == Kind::Error => {
                return Err(fail(
                    &mut qemu,
                    format!("setting up the container in the VM: {}", String::from_utf8_lossy(&f.data)),
                ))
            }
            Ok(Event::AgentGone) => return Err(fail(&mut qemu, "the VM stopped while booting".into())),
            Ok(_) => {}
            Err(_) => {
                let what = if setup_sent {
                    "the guest agent to create the container (engine-runc create in the guest)"
                } else {
                    "the guest kernel to boot and the agent to say hello"
                };
                if let Some(e) = clock.stalled(what) {
                    return Err(fail(&mut qemu, e));
                }
            }
        }
    }
    tracing::debug!(id = %plan.id, %release, "VM ready");
    // Control socket for start, kill, exec.
    let control = short_path(&dir, files::CONTROL);
    let _ = std::fs::remove_file(&control);
    let ctl = UnixListener::bind(&control)
        .map_err(|e| fail(&mut qemu, format!("{}: {e}", state.join(files::CONTROL).display())))?;
    {
        let tx = tx.clone();
        let writer = writer.clone();
        std::thread::spawn(move || {
            for conn in ctl.incoming().flatten() {
                let tx = tx.clone();
                let writer = writer.clone();
                std::thread::spawn(move || control_conn(conn, tx, writer, qemu_pid));
            }
        });
    }
    // The terminal's master goes to the console socket before `create` returns (as runc's does).
    let mut tty: Option<std::fs::File> = match (plan.process.terminal, plan.console_socket.as_deref()) {
        (true, Some(sock)) => Some(host_pty(sock).map_err(|e| fail(&mut qemu, format!("console socket: {e}")))?),
        (true, None) => return Err(fail(&mut qemu, "a terminal needs a console socket".into())),
        _ => None,
    };
    // Signals sent to the monitor itself go to the container's init.
    forward_signals(sigs, tty.as_ref().and_then(|t| t.try_clone().ok()), to_agent.clone());
    // Copies in and out of the running container (`docker cp`, the
    // facade's) open `/proc/<this pid>/root`: the container's root with its
    // bind mounts, as its processes see them.
    enter_view(&plan).map_err(|e| fail(&mut qemu, e))?;
    ready("ok");
    // SAFETY: the ready pipe is written; close our end so `create` sees EOF.
    unsafe { libc::close(3) };

    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let mut pending: HashMap<u32, mpsc::Sender<Reply>> = HashMap::new();
    let mut execs: HashMap<u32, UnixStream> = HashMap::new();
    let mut next_stream = 1u32;
    let mut started = false;
    let code = loop {
        let Ok(ev) = rx.recv() else { break 255 };
        match ev {
            Event::Start(reply) => {
                if started {
                    let _ = reply.send(Reply { error: Some("the container was already started".into()) });
                    continue;
                }
                started = true;
                pending.insert(0, reply);
                to_agent(Frame::new(Kind::Spawn, 0, serde_json::to_vec(&plan.process).unwrap_or_default()));
                let input: Box<dyn Read + Send> = match &tty {
                    Some(t) => Box::new(t.try_clone().map_err(|e| e.to_string())?),
                    None => Box::new(std::io::stdin()),
                };
                pump_to_agent(input, 0, to_agent.clone());
            }
            Event::Exec(spec, conn) => {
                let stream = next_stream;
                next_stream += 1;
                if let Ok(c) = conn.try_clone() {
                    execs.insert(stream, c);
                }
                to_agent(Frame::new(Kind::Spawn, stream, serde_json::to_vec(&spec).unwrap_or_default()));
                // The exec's own frames (stdin, signals) go to the agent under its stream.
                let to_agent = to_agent.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn);
                    while let Ok(Some(mut f)) = Frame::read_from(&mut r) {
                        f.stream = stream;
                        to_agent(f);
                    }
                });
            }
            Event::Frame(f) => match (f.kind, f.stream) {
                (Kind::Started, s) | (Kind::Error, s) => {
                    let error = (f.kind == Kind::Error).then(|| String::from_utf8_lossy(&f.data).into_owned());
                    if s == 0 && error.is_none() {
                        // Recorded before `start` returns: a `state` right after it says running.
                        let _ = touch_at(&dir, files::RUNNING);
                    }
                    if let Some(p) = pending.remove(&s) {
                        let _ = p.send(Reply { error: error.clone() });
                    }
                    if let Some(c) = execs.get_mut(&s) {
                        // The reply line comes first on an exec's connection, then its frames.
                        let _ = c.write_all(reply_line(&Reply { error: error.clone() }).as_bytes());
                    }
                    if s == 0 {
                        if error.is_some() {
                            break 127;
                        }
                        if let Some(f) = tty.as_ref().and_then(winsize_frame) {
                            to_agent(f);
                        }
                    } else if error.is_some() {
                        execs.remove(&s);
                    }
                }
                (Kind::Stdout, 0) => {
                    let _ = match &mut tty {
                        Some(t) => t.write_all(&f.data),
                        None => stdout.write_all(&f.data).and_then(|_| stdout.flush()),
                    };
                }
                (Kind::Stderr, 0) => {
                    let _ = stderr.write_all(&f.data);
                }
                (Kind::Exit, 0) => break f.int(),
                (_, s) if s != 0 => {
                    if let Some(c) = execs.get_mut(&s) {
                        let _ = f.write_to(c);
                    }
                    if f.kind == Kind::Exit {
                        execs.remove(&s);
                    }
                }
                _ => {}
            },
            Event::AgentGone => {
                let _ = writeln!(stderr, "engine-vm: the VM stopped before the container's process exited");
                break 137;
            }
        }
    };
    for (_, p) in pending.drain() {
        let _ = p.send(Reply { error: Some("the container exited".into()) });
    }
    let _ = qemu.kill();
    let _ = qemu.wait();
    unlink_at(&dir, files::CONTROL);
    Ok(code)
}

/// A boot's bounds: [`Plan::boot_timeout`] of running time, [`BOOT_LIMIT`] in all.
struct BootClock {
    started: std::time::Instant,
    bound: Duration,
    qemu: i32,
}

impl BootClock {
    /// The error for a boot still waiting for `what` past its bounds.
    fn stalled(&self, what: &str) -> Option<String> {
        let elapsed = self.started.elapsed();
        let waited = cpu_wait(self.qemu).min(elapsed);
        if elapsed - waited <= self.bound && elapsed <= BOOT_LIMIT {
            return None;
        }
        Some(format!(
            "the VM's boot made no progress: still waiting for {what} after {:.1} s ({:.1} s of them waiting \
             for a host CPU; bounds: {:.0} s of running time, {:.0} s in all)",
            elapsed.as_secs_f64(),
            waited.as_secs_f64(),
            self.bound.as_secs_f64(),
            BOOT_LIMIT.as_secs_f64()
        ))
    }
}

/// How many of the console's last lines a boot's error quotes.
const CONSOLE_TAIL: usize = 12;

/// The longest time any of the process `pid`'s threads has spent runnable
/// but waiting for a CPU (the run-queue wait of `/proc/<pid>/task/*/schedstat`):
/// time a loaded host kept QEMU (its vCPU thread above all) from running.
fn cpu_wait(pid: i32) -> Duration {
    let mut max = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(wait) = stat.split_whitespace().nth(1).and_then(|w| w.parse::<u64>().ok()) {
            max = max.max(wait);
        }
    }
    Duration::from_nanos(max)
}

/// Copy the guest's console from `conn` (QEMU's serial port) into
/// `console.log` in `dir` (by its fd: the monitor's root changes later),
/// starting a new file once it holds `max` bytes (the previous one kept as
/// `console.log.1`), until QEMU closes it.
fn keep_console(mut conn: UnixStream, dir: &std::fs::File, max: u64) {
    let open = || -> Option<std::fs::File> {
        // SAFETY: openat with a valid directory fd and a NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c"console.log".as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
                0o640,
            )
        };
        // SAFETY: a new fd of ours.
        (fd >= 0).then(|| unsafe { std::fs::File::from_raw_fd(fd) })
    };
    let Some(mut file) = open() else { return };
    let mut written = 0u64;
    let mut buf = [0u8; 4096];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            if written >= max {
                // SAFETY: renameat within a valid directory fd, NUL-terminated names.
                unsafe {
                    libc::renameat(dir.as_raw_fd(), c"console.log".as_ptr(), dir.as_raw_fd(), c"console.log.1".as_ptr())
                };
                match open() {
                    Some(f) => file = f,
                    None => return,
                }
                written = 0;
            }
            let k = data.len().min((max - written) as usize);
            if file.write_all(&data[..k]).is_err() {
                return;
            }
            written += k as u64;
            data = &data[k..];
        }
    }
}

/// The last `n` lines of the guest's console log in `state`.
pub fn console_tail(state: &Path, n: usize) -> Vec<String> {
    let mut text = std::fs::read(state.join(files::CONSOLE_OLD)).unwrap_or_default();
    text.extend(std::fs::read(state.join(files::CONSOLE)).unwrap_or_default());
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Make the monitor's own mount namespace (its mounts go with it and
/// QEMU) and bind each shared file into a directory of its own under the
/// state dir there, so the guest sees that file and not its siblings. Runs
/// before any thread exists.
fn stage_files(plan: &Plan, state: &Path) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    let files: Vec<&Share> = plan.shares.iter().filter(|s| s.file).collect();
    let none: Option<&str> = None;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| format!("mount namespace: {e}"))?;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none).map_err(|e| format!("mount namespace: {e}"))?;
    for s in files {
        let dir = s.dir(state);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let target = dir.join(s.source.file_name().unwrap_or_default());
        std::fs::File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        mount(Some(&s.source), &target, none, MsFlags::MS_BIND, none)
            .map_err(|e| format!("binding {}: {e}", s.source.display()))?;
        if s.readonly {
            mount(none, &target, none, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, none)
                .map_err(|e| format!("binding {} read-only: {e}", s.source.display()))?;
        }
    }
    Ok(())
}

/// Bind each of the spec's bind mounts over its destination in the
/// container's root (in the monitor's own mount namespace: the guest's
/// runtime made the mount points through the share), then make that root
/// the monitor's: `/proc/<monitor>/root` is the container's view. A
/// destination that leads out of the root through a link gets no mirror
/// (the monitor's namespace is its own: nothing reaches the host's).
fn enter_view(plan: &Plan) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    let none: Option<&str> = None;
    let root = std::fs::canonicalize(&plan.rootfs).map_err(|e| format!("{}: {e}", plan.rootfs.display()))?;
    for (dest, source, readonly) in &plan.binds {
        let target = match std::fs::canonicalize(root.join(dest.trim_start_matches('/'))) {
            Ok(t) if t.starts_with(&root) && t != root => t,
            _ => continue,
        };
        mount(Some(source), &target, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)
            .map_err(|e| format!("mirroring the bind mount {}: {e}", target.display()))?;
        if *readonly {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(none, &target, none, flags, none)
                .map_err(|e| format!("mirroring the bind mount {} read-only: {e}", target.display()))?;
        }
    }
    nix::unistd::chroot(&root).map_err(|e| format!("the container's view: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("the container's view: {e}"))
}

/// Create the empty file `name` in the directory `dir` (by its fd: the
/// monitor's root is the container's once it runs).
fn touch_at(dir: &std::fs::File, name: &str) -> std::io::Result<()> {
    let c = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: openat with a valid directory fd and a NUL-terminated name.
    let fd =
        unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd of ours.
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.sync_all()
}

/// Remove `name` from the directory `dir` (by its fd).
fn unlink_at(dir: &std::fs::File, name: &str) {
    if let Ok(c) = std::ffi::CString::new(name) {
        // SAFETY: unlinkat with a valid directory fd and a NUL-terminated name.
        unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
    }
}

/// `name` in the directory `dir` as a path short enough for a unix socket
/// (through `/proc/self/fd`), whatever the directory's own path length.
pub fn short_path(dir: &std::fs::File, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// Forward the signals in `sigs` (blocked in every thread) to the process
/// (stream 0 of `send`'s channel); a terminal's resize (SIGWINCH) goes as its size.
fn forward_signals(
    sigs: nix::sys::signal::SigSet,
    tty: Option<std::fs::File>,
    send: impl Fn(Frame) -> bool + Send + 'static,
) {
    std::thread::spawn(move || loop {
        let Ok(sig) = sigs.wait() else { continue };
        if sig == nix::sys::signal::Signal::SIGWINCH {
            if let Some(f) = tty.as_ref().and_then(winsize_frame) {
                send(f);
            }
            continue;
        }
        let mut d = (sig as i32).to_le_bytes().to_vec();
        d.push(0);
        send(Frame::new(Kind::Signal, 0, d));
    });
}

/// The terminal's size as a [`Kind::Resize`] frame for stream 0.
fn winsize_frame(tty: &std::fs::File) -> Option<Frame> {
    let mut ws: libc::winsize = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    if unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } != 0 || ws.ws_row == 0 {
        return None;
    }
    let mut d = ws.ws_row.to_le_bytes().to_vec();
    d.extend_from_slice(&ws.ws_col.to_le_bytes());
    Some(Frame::new(Kind::Resize, 0, d))
}

fn reply_line(r: &Reply) -> String {
    let mut s = serde_json::to_string(r).unwrap_or_default();
    s.push('\n');
    s
}

fn pump_to_agent(mut input: Box<dyn Read + Send>, stream: u32, to_agent: impl Fn(Frame) -> bool + Send + 'static) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if !to_agent(Frame::new(Kind::Stdin, stream, buf[..n].to_vec())) {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        to_agent(Frame::new(Kind::StdinEof, stream, Vec::new()));
    });
}

fn control_conn(conn: UnixStream, tx: mpsc::Sender<Event>, writer: Arc<Mutex<UnixStream>>, qemu_pid: i32) {
    let mut line = String::new();
    let mut r = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut conn = conn;
    let reply = |conn: &mut UnixStream, r: Reply| {
        let _ = conn.write_all(reply_line(&r).as_bytes());
    };
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return reply(&mut conn, Reply { error: Some(format!("bad request: {e}")) }),
    };
    match req {
        Request::Start => {
            let (rtx, rrx) = mpsc::channel();
            let _ = tx.send(Event::Start(rtx));
            let r = rrx.recv().unwrap_or(Reply { error: Some("the monitor is stopping".into()) });
            reply(&mut conn, r);
        }
        Request::Kill { signal, all } => {
            let mut d = signal.to_le_bytes().to_vec();
            d.push(all as u8);
            let sent =
                writer.lock().map(|mut w| Frame::new(Kind::Signal, 0, d).write_to(&mut *w).is_ok()).unwrap_or(false);
            if !sent && signal == libc::SIGKILL {
                // SAFETY: kill(2) of our own QEMU child: the VM is the container.
                unsafe { libc::kill(qemu_pid, libc::SIGKILL) };
            }
            reply(&mut conn, Reply { error: None });
        }
        Request::Exec(spec) => {
            // The main loop answers on the connection once the process runs.
            let _ = tx.send(Event::Exec(spec, conn));
        }
    }
}

/// The exec relay's whole life (`engine-vm exec-relay <state dir> <process.json>`):
/// the process the shim sees as the exec'd process. Returns its exit code.
pub fn relay(state: &Path, process: &Path) -> i32 {
    let sigs = block_signals();
    match relay_inner(state, process, sigs) {
        Ok(code) => code,
        Err(e) => {
            ready(&format!("error: {e}"));
            255
        }
    }
}

fn relay_inner(state: &Path, process: &Path, sigs: nix::sys::signal::SigSet) -> Result<i32, String> {
    let spec: ProcessSpec =
        serde_json::from_slice(&std::fs::read(process).map_err(|e| format!("{}: {e}", process.display()))?)
            .map_err(|e| format!("process: {e}"))?;
    let console = std::env::var_os("ENGINE_VM_CONSOLE_SOCKET").map(PathBuf::from);
    let dir = std::fs::File::open(state).map_err(|e| format!("{}: {e}", state.display()))?;
    let mut conn =
        UnixStream::connect(short_path(&dir, files::CONTROL)).map_err(|e| format!("the container's monitor: {e}"))?;
    let terminal = spec.terminal;
    let mut line = serde_json::to_string(&Request::Exec(spec)).map_err(|e| e.to_string())?;
    line.push('\n');
    conn.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(conn.try_clone().map_err(|e| e.to_string())?);
    let mut answer = String::new();
    r.read_line(&mut answer).map_err(|e| e.to_string())?;
    let reply: Reply = serde_json::from_str(&answer).map_err(|e| format!("monitor reply {answer:?}: {e}"))?;
    if let Some(e) = reply.error {
        return Err(e);
    }
    let tty = match (terminal, console) {
        (true, Some(sock)) => Some(host_pty(&sock).map_err(|e| format!("console socket: {e}"))?),
        (true, None) => return Err("a terminal needs a console socket".into()),
        _ => None,
    };
    ready("ok");
    // SAFETY: close our end of the ready pipe.
    unsafe { libc::close(3) };
    let writer = Arc::new(Mutex::new(conn));
    let to_monitor = {
        let w = writer.clone();
        move |f: Frame| -> bool { w.lock().map(|mut w| f.write_to(&mut *w).is_ok()).unwrap_or(false) }
    };
    let input: Box<dyn Read + Send> = match &tty {
        Some(t) => Box::new(t.try_clone().map_err(|e| e.to_string())?),
        None => Box::new(std::io::stdin()),
    };
    pump_to_agent(input, 0, to_monitor.clone());
    if let Some(f) = tty.as_ref().and_then(winsize_frame) {
        to_monitor(f);
    }
    forward_signals(sigs, tty.as_ref().and_then(|t| t.try_clone().ok()), to_monitor);
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let mut tty = tty;
    loop {
        match Frame::read_from(&mut r) {
            Ok(Some(f)) => match f.kind {
                Kind::Stdout => {
                    let _ = match &mut tty {
                        Some(t) => t.write_all(&f.data),
                        None => stdout.write_all(&f.data).and_then(|_| stdout.flush()),
                    };
                }
                Kind::Stderr => {
                    let _ = stderr.write_all(&f.data);
                }
                Kind::Exit => return Ok(f.int()),
                _ => {}
            },
            _ => {
                let _ = writeln!(stderr, "engine-vm: the container stopped before the exec'd process exited");
                return Ok(137);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_kept_bounded_and_its_tail_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut guest, host) = UnixStream::pair().unwrap();
        let d = std::fs::File::open(dir.path()).unwrap();
        let keeper = std::thread::spawn(move || keep_console(host, &d, 100));
        for i in 0..30 {
            guest.write_all(format!("line {i:02}\n").as_bytes()).unwrap();
        }
        drop(guest);
        keeper.join().unwrap();
        let live = std::fs::metadata(dir.path().join(files::CONSOLE)).unwrap().len();
        let old = std::fs::metadata(dir.path().join(files::CONSOLE_OLD)).unwrap().len();
        assert!(live <= 100 && old <= 100, "{live} and {old} bytes kept");
        let tail = console_tail(dir.path(), 3);
        assert_eq!(tail, ["line 27", "line 28", "line 29"]);
    }

    #[test]
    fn tcg_guests_get_virtual_time_and_its_tsc_rate() {
        let boot = BootFiles {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            kernel: "/k".into(),
            release: "6.1".into(),
            initramfs: "/i".into(),
            accel: "tcg".into(),
        };
        let mut plan = Plan {
            id: "c".into(),
            boot,
            memory_mib: 256,
            memory_limit: None,
            cpus: 1,
            rootfs: "/r".into(),
            shares: Vec::new(),
            container: ContainerSpec::default(),
            process: ProcessSpec::default(),
            console_socket: None,
            binds: Vec::new(),
            netns: None,
            boot_timeout_ms: None,
        };
        let args = qemu_args(&plan, Path::new("/state")).join(" ");
        assert!(args.contains("-icount shift=auto"), "{args}");
        assert!(args.contains("tsc_early_khz=1000000"), "{args}");
        assert!(args.contains("-serial chardev:console"), "{args}");
        plan.boot.accel = "kvm".into();
        let args = qemu_args(&plan, Path::new("/state")).join(" ");
        assert!(!args.contains("-icount") && !args.contains("tsc_early_khz"), "{args}");
    }
}
