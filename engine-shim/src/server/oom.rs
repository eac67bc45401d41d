//! OOM notifications from the container's memory cgroup: `cgroup.event_control`
//! with an eventfd on cgroup v1, inotify on `memory.events` on cgroup v2.

use engine_core::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use tokio::io::unix::AsyncFd;

/// Where the OOM counter of `pid`'s memory cgroup lives.
enum Watch {
    V1(PathBuf),
    V2(PathBuf),
}

fn find(pid: Pid) -> Option<Watch> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let rel = path.trim_start_matches('/');
        if pure_v2 && ctrls.is_empty() {
            return Some(Watch::V2(Path::new("/sys/fs/cgroup").join(rel)));
        }
        if !pure_v2 && ctrls.split(',').any(|c| c == "memory") {
            return Some(Watch::V1(Path::new("/sys/fs/cgroup/memory").join(rel)));
        }
    }
    None
}

fn oom_kills(events: &Path) -> u64 {
    std::fs::read_to_string(events)
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// Call `on_oom` each time the OOM killer acts in `pid`'s memory cgroup,
/// until the cgroup goes away. Returns at once when no cgroup is found.
pub(crate) async fn watch(pid: Pid, on_oom: impl Fn()) {
    let r = match find(pid) {
        Some(Watch::V1(dir)) => watch_v1(&dir, &on_oom).await,
        Some(Watch::V2(dir)) => watch_v2(&dir, &on_oom).await,
        None => Ok(()),
    };
    if let Err(e) = r {
        tracing::debug!("no OOM notifications: {e}");
    }
}

async fn watch_v1(dir: &Path, on_oom: &impl Fn()) -> std::io::Result<()> {
    let control = std::fs::File::open(dir.join("memory.oom_control"))?;
    use nix::sys::eventfd::{EfdFlags, EventFd};
    let efd: OwnedFd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?.into();
    std::fs::write(dir.join("cgroup.event_control"), format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()))?;
    // SAFETY: the AsyncFd owns the eventfd from here on.
    let afd = unsafe { AsyncFd::register(efd) }?;
    loop {
        let mut g = afd.readable().await?;
        let mut buf = [0u8; 8];
        match g.try_io(|fd| nix::unistd::read(fd.get_ref().as_fd(), &mut buf).map_err(std::io::Error::from)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
        // The event also fires when the cgroup is removed.
        if !dir.exists() {
            return Ok(());
        }
        on_oom();
    }
}

async fn watch_v2(dir: &Path, on_oom: &impl Fn()) -> std::io::Result<()> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let events = dir.join("memory.events");
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    ino.add_watch(&events, AddWatchFlags::IN_MODIFY)?;
    let mut seen = oom_kills(&events);
    let fd: OwnedFd = ino.into();
    // SAFETY: the AsyncFd owns the inotify fd from here on.
    let afd = unsafe { AsyncFd::register(fd) }?;
    loop {
        let mut g = afd.readable().await?;
        let mut buf = [0u8; 512];
        match g.try_io(|fd| nix::unistd::read(fd.get_ref().as_fd(), &mut buf).map_err(std::io::Error::from)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
        if !events.exists() {
            return Ok(());
        }
        let now = oom_kills(&events);
        if now > seen {
            seen = now;
            on_oom();
        }
    }
}
