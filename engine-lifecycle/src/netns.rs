//! Network namespace files: the manager makes a container's namespace
//! before create (a fresh namespace bind-mounted on `<root>/netns/<id>`),
//! the network driver configures it, and the runtime joins it by path.

use engine_core::{Error, IoContext, Result};
use std::path::Path;

/// Create a new network namespace and bind it on `path` (a new file).
pub(crate) async fn create(path: &Path) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).context(|| format!("create {}", d.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .context(|| format!("create network namespace file {}", path.display()))?;
    let target = path.to_owned();
    // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its
    // own, which binds its namespace on the file and ends.
    let r = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || -> Result<()> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io("unshare a network namespace", e.into()))?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| Error::io(format!("bind a network namespace on {}", target.display()), e.into()))
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Other("network namespace thread panicked".into())))
    })
    .await
    .map_err(|e| Error::Other(format!("network namespace task: {e}")))?;
    if r.is_err() {
        let _ = std::fs::remove_file(path);
    }
    r
}

/// Unmount and remove a namespace file; one already gone is fine.
pub(crate) fn remove(path: &Path) -> Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::io(format!("unmount {}", path.display()), e.into())),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("remove {}", path.display()), e)),
        _ => Ok(()),
    }
}
