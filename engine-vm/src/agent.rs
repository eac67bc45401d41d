//! The guest's side: PID 1 of the initramfs.
//!
//! Mounts `/proc`, `/sys`, `/dev`, loads the modules the initramfs carries
//! (in the order their names give), opens the virtio-serial port
//! `engine.0`, mounts the container's root (9p tag `rootfs`) on `/rootfs`,
//! says hello, then serves frames: `Setup` (the spec's mounts and the
//! hostname), `Spawn` (a process, chrooted into `/rootfs` with its user,
//! environment and working directory), stdin, signals, resizes. When the
//! init (stream 0) exits it reports the exit code and waits for the host to
//! stop the VM (it powers off if the host goes away).

use crate::proto::{ContainerSpec, Frame, Kind, MountSpec, ProcessSpec};
use nix::mount::{mount, MsFlags};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The virtio-serial port's name.
pub const PORT_NAME: &str = "engine.0";

type Out = Arc<Mutex<File>>;

#[derive(Default)]
struct Proc {
    pid: i32,
    stdin: Option<File>,
}

type Procs = Arc<Mutex<HashMap<u32, Proc>>>;

fn console(msg: &str) {
    if let Ok(mut c) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(c, "engine-vm-agent: {msg}");
    }
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

/// The agent's whole life (the `engine-vm-agent` binary's `main`).
pub fn main() -> ! {
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

fn boot() -> Result<(), String> {
    let none: Option<&str> = None;
    let _ = mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), none);
    let _ = mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), none);
    let _ = mount(Some("devtmpfs"), "/dev", Some("devtmpfs"), MsFlags::empty(), none);
    let _ = std::fs::create_dir_all("/dev/pts");
    let _ = mount(Some("devpts"), "/dev/pts", Some("devpts"), MsFlags::empty(), Some("ptmxmode=0666,mode=620"));
    load_modules()?;
    let port = find_port(Duration::from_secs(30))?;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&port).map_err(|e| format!("{port:?}: {e}"))?;
    mount(
        Some("rootfs"),
        "/rootfs",
        Some("9p"),
        MsFlags::empty(),
        Some("trans=virtio,version=9p2000.L,msize=512000,access=client"),
    )
    .map_err(|e| format!("mounting the container's root (9p tag rootfs): {e}"))?;
    let mut reader = file.try_clone().map_err(|e| e.to_string())?;
    let out: Out = Arc::new(Mutex::new(file));
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
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
                let r =
                    serde_json::from_slice::<ContainerSpec>(&f.data).map_err(|e| e.to_string()).and_then(|s| setup(&s));
                match r {
                    Ok(()) => send(&out, Frame::new(Kind::Ready, 0, Vec::new())),
                    Err(e) => send(&out, Frame::new(Kind::Error, 0, e.into_bytes())),
                }
            }
            Kind::Spawn => {
                let r = serde_json::from_slice::<ProcessSpec>(&f.data)
                    .map_err(|e| e.to_string())
                    .and_then(|p| spawn(f.stream, &p, &out, &procs));
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

fn flags_and_data(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "rw" | "bind" | "rbind" | "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, data.join(","))
}

fn setup(spec: &ContainerSpec) -> Result<(), String> {
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
    for m in &spec.mounts {
        mount_one(m).map_err(|e| format!("mount {} on {}: {e}", m.fstype, m.destination))?;
    }
    if spec.readonly_root {
        let none: Option<&str> = None;
        mount(Some("/rootfs"), "/rootfs", none, MsFlags::MS_BIND | MsFlags::MS_REC, none).map_err(|e| e.to_string())?;
        mount(none, "/rootfs", none, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, none)
            .map_err(|e| format!("read-only root: {e}"))?;
    }
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname).map_err(|e| format!("hostname: {e}"))?;
    }
    Ok(())
}

fn mount_one(m: &MountSpec) -> Result<(), String> {
    let target = Path::new("/rootfs").join(m.destination.trim_start_matches('/'));
    let none: Option<&str> = None;
    let (flags, data) = flags_and_data(&m.options);
    if m.fstype == "bind" {
        let src = Path::new(&m.source);
        if src.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        } else if !target.exists() {
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
            }
            File::create(&target).map_err(|e| e.to_string())?;
        }
        mount(Some(src), &target, none, MsFlags::MS_BIND | MsFlags::MS_REC, none).map_err(|e| e.to_string())?;
        if flags.contains(MsFlags::MS_RDONLY) {
            mount(none, &target, none, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags, none)
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    if m.fstype == "devpts" {
        // The agent's own instance: the terminals it opens for processes are visible inside.
        return mount(Some("/dev/pts"), &target, none, MsFlags::MS_BIND, none).map_err(|e| e.to_string());
    }
    let fstype = if m.fstype == "cgroup" { "cgroup2" } else { m.fstype.as_str() };
    let data = if fstype == "cgroup2" { String::new() } else { data };
    mount(Some(fstype), &target, Some(fstype), flags, Some(data.as_str())).map_err(|e| e.to_string())?;
    if m.destination == "/dev" {
        populate_dev(&target)?;
    }
    Ok(())
}

fn populate_dev(dev: &Path) -> Result<(), String> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    for (name, major, minor) in
        [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
    {
        mknod(&dev.join(name), SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(major, minor))
            .map_err(|e| format!("mknod /dev/{name}: {e}"))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let _ = std::os::unix::fs::symlink(to, dev.join(link));
    }
    Ok(())
}

/// `args[0]` as a path inside the container (searched on the process's `PATH`).
fn resolve(p: &ProcessSpec) -> Result<String, String> {
    let arg0 = p.args.first().ok_or("the process has no args")?;
    if arg0.contains('/') {
        return Ok(arg0.clone());
    }
    let path = p
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let candidate = format!("{}/{arg0}", dir.trim_end_matches('/'));
        if Path::new("/rootfs").join(candidate.trim_start_matches('/')).symlink_metadata().is_ok() {
            return Ok(candidate);
        }
    }
    Err(format!("exec: {arg0:?}: executable file not found in $PATH"))
}

fn spawn(stream: u32, p: &ProcessSpec, out: &Out, procs: &Procs) -> Result<(), String> {
    let program = resolve(p)?;
    let mut cmd = std::process::Command::new(&program);
    cmd.args(p.args.iter().skip(1)).env_clear();
    for e in &p.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    let cwd = std::ffi::CString::new(if p.cwd.is_empty() { "/" } else { p.cwd.as_str() }).map_err(|e| e.to_string())?;
    let (uid, gid, groups) = (p.uid, p.gid, p.additional_gids.clone());
    let terminal = p.terminal;
    let mut master = None;
    if terminal {
        let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
        let slave = File::from(pty.slave);
        cmd.stdin(slave.try_clone().map_err(|e| e.to_string())?);
        cmd.stdout(slave.try_clone().map_err(|e| e.to_string())?);
        cmd.stderr(slave);
        master = Some(pty.master);
    } else {
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
    }
    let groups: Vec<libc::gid_t> = groups.into_iter().collect();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let ok = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
            ok(libc::chroot(c"/rootfs".as_ptr()))?;
            ok(libc::chdir(cwd.as_ptr()))?;
            libc::setsid();
            if terminal {
                ok(libc::ioctl(0, libc::TIOCSCTTY, 0))?;
            }
            ok(libc::setgroups(groups.len(), groups.as_ptr()))?;
            ok(libc::setgid(gid))?;
            ok(libc::setuid(uid))?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("exec {program}: {e}"))?;
    drop(cmd);
    let pid = child.id() as i32;
    let mut outputs: Vec<(File, Kind)> = Vec::new();
    let stdin = match master {
        Some(m) => {
            let m = File::from(m);
            outputs.push((m.try_clone().map_err(|e| e.to_string())?, Kind::Stdout));
            Some(m)
        }
        None => {
            if let Some(o) = child.stdout.take() {
                outputs.push((File::from(OwnedFd::from(o)), Kind::Stdout));
            }
            if let Some(e) = child.stderr.take() {
                outputs.push((File::from(OwnedFd::from(e)), Kind::Stderr));
            }
            child.stdin.take().map(|i| File::from(OwnedFd::from(i)))
        }
    };
    procs.lock().unwrap_or_else(|e| e.into_inner()).insert(stream, Proc { pid, stdin });
    // Started goes out before any output: an exec's connection carries the
    // monitor's reply (sent on Started) before the process's frames.
    send(out, Frame::new(Kind::Started, stream, pid.to_le_bytes().to_vec()));
    let readers: Vec<_> = outputs.into_iter().map(|(f, kind)| pump(f, kind, stream, out.clone())).collect();
    let out = out.clone();
    let procs = procs.clone();
    std::thread::spawn(move || {
        let status = child.wait();
        let code = match status {
            Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
            Err(_) => 255,
        };
        for r in readers {
            let _ = r.join();
        }
        procs.lock().unwrap_or_else(|e| e.into_inner()).remove(&stream);
        if stream == 0 {
            // SAFETY: kill(2) of every other process in the guest.
            unsafe { libc::kill(-1, libc::SIGKILL) };
        }
        send(&out, Frame::new(Kind::Exit, stream, code.to_le_bytes().to_vec()));
    });
    Ok(())
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
