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

/// The OOM counter of a cgroup v2 read again at the init's exit, for a container whose live
/// notifications could not be set up (no inotify instance left: `fs.inotify.max_user_instances`
/// counts every process of the user, and every shim on a pure cgroup v2 host takes one).
pub(crate) struct ExitCheck {
    events: PathBuf,
    seen: u64,
}

impl ExitCheck {
    /// Whether the OOM killer acted in the cgroup since the check was made.
    pub(crate) fn oom_killed(&self) -> bool {
        oom_kills(&self.events) > self.seen
    }
}

/// Call `on_oom` each time the OOM killer acts in `pid`'s memory cgroup, until the cgroup goes
/// away (a spawned task). Returns an [`ExitCheck`] when the live notification cannot be had on
/// cgroup v2 because the machine's inotify instances are used up.
pub(crate) fn watch(pid: Pid, on_oom: impl Fn() + Send + Sync + 'static) -> Option<ExitCheck> {
    match find(pid) {
        Some(Watch::V1(dir)) => {
            tokio::spawn(async move {
                if let Err(e) = watch_v1(&dir, &on_oom).await {
                    tracing::debug!("no OOM notifications: {e}");
                }
            });
            None
        }
        Some(Watch::V2(dir)) => {
            let events = dir.join("memory.events");
            let seen = oom_kills(&events);
            match v2_inotify(&events) {
                Ok(afd) => {
                    tokio::spawn(async move {
                        if let Err(e) = watch_v2(afd, &events, seen, &on_oom).await {
                            tracing::debug!("no OOM notifications: {e}");
                        }
                    });
                    None
                }
                Err(e) => {
                    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances").unwrap_or_default();
                    tracing::warn!(
                        "no live OOM notifications ({e}; fs.inotify.max_user_instances = {}): \
                         an OOM kill is reported at the container's exit",
                        limit.trim()
                    );
                    Some(ExitCheck { events, seen })
                }
            }
        }
        None => None,
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

fn v2_inotify(events: &Path) -> std::io::Result<AsyncFd<OwnedFd>> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    ino.add_watch(events, AddWatchFlags::IN_MODIFY)?;
    let fd: OwnedFd = ino.into();
    // SAFETY: the AsyncFd owns the inotify fd from here on.
    Ok(unsafe { AsyncFd::register(fd) }?)
}

async fn watch_v2(afd: AsyncFd<OwnedFd>, events: &Path, mut seen: u64, on_oom: &impl Fn()) -> std::io::Result<()> {
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
        let now = oom_kills(events);
        if now > seen {
            seen = now;
            on_oom();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_check_sees_a_kill_made_after_it() {
        let dir = std::env::temp_dir().join(format!("oom-exit-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let events = dir.join("memory.events");
        std::fs::write(&events, "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n").unwrap();
        let check = ExitCheck { seen: oom_kills(&events), events: events.clone() };
        assert!(!check.oom_killed(), "no kill since the check was made");
        std::fs::write(&events, "low 0\nhigh 0\nmax 4\noom 3\noom_kill 3\noom_group_kill 0\n").unwrap();
        assert!(check.oom_killed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
