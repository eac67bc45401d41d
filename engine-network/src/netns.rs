//! Network namespaces by path: running code inside one, netlink handles bound
//! to one, and namespace files (what `ip netns add` makes).

use engine_core::{Error, IoContext, Result};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open network namespace. Cheap to clone; the namespace stays alive
/// while a clone is held, even if its file is unmounted.
#[derive(Clone, Debug)]
pub struct Netns {
    file: Arc<File>,
    path: PathBuf,
}

impl Netns {
    /// Open the namespace file at `path` (a bind-mounted nsfs file, or
    /// `/proc/<pid>/ns/net`). A path that is not a network namespace is a
    /// [`Error::InvalidInput`]; a missing one [`Error::NotFound`].
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found("object", format!("network namespace {}", path.display()))
            } else {
                Error::io(format!("open network namespace {}", path.display()), e)
            }
        })?;
        // NS_GET_NSTYPE (0xb703) tells the namespace's type.
        // SAFETY: an ioctl without argument on an fd we own; it reads nothing of ours.
        let t = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), 0xb703) };
        if t != libc::CLONE_NEWNET {
            return Err(Error::invalid(
                format!("network namespace {}", path.display()),
                "not a network namespace file",
            ));
        }
        Ok(Netns { file: Arc::new(file), path: path.to_owned() })
    }

    /// The calling thread's own network namespace.
    pub fn current() -> Result<Self> {
        Netns::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run blocking `f` on a fresh thread that has entered this namespace
    /// (network namespaces are per thread: no other thread of the process
    /// moves). Sockets `f` creates stay in the namespace afterwards; child
    /// processes it spawns start there. `f` runs with the caller's tokio
    /// runtime entered, so it may create tokio I/O objects.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let file = self.file.clone();
        let path = self.path.clone();
        let rt = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("netns".into())
            .spawn(move || {
                let r = nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::io(format!("enter network namespace {}", path.display()), e.into()))
                    .and_then(|()| {
                        let _g = rt.enter();
                        f()
                    });
                let _ = tx.send(r);
            })
            .context(|| "spawn a thread".to_string())?;
        rx.await.map_err(|_| Error::Other(format!("thread in network namespace {} panicked", self.path.display())))?
    }

    /// A netlink (rtnetlink) handle whose socket lives in this namespace;
    /// its connection task runs on the current tokio runtime until the
    /// handle and its clones are dropped.
    pub async fn netlink(&self) -> Result<rtnetlink::Handle> {
        let path = self.path.clone();
        let (conn, handle, _) = self
            .run(move || rtnetlink::new_connection().context(|| format!("open a netlink socket in {}", path.display())))
            .await?;
        tokio::spawn(conn);
        Ok(handle)
    }

    /// Write a sysctl of this namespace (`net/ipv4/ip_forward`); network
    /// sysctls are per namespace.
    pub async fn write_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let p = PathBuf::from("/proc/sys").join(key);
        let v = value.to_string();
        self.run(move || std::fs::write(&p, v).context(|| format!("write sysctl {}", p.display()))).await
    }

    /// Read a sysctl of this namespace.
    pub async fn read_sysctl(&self, key: &str) -> Result<String> {
        let p = PathBuf::from("/proc/sys").join(key);
        self.run(move || {
            std::fs::read_to_string(&p).map(|s| s.trim().to_string()).context(|| format!("read sysctl {}", p.display()))
        })
        .await
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A new, empty network namespace kept alive by a bind mount on a file
/// (what `ip netns add` does, and what the lifecycle manager makes for a
/// container before create). Loopback is brought up. Dropping it unmounts
/// and removes the file; the namespace goes when nothing else holds it.
#[derive(Debug)]
pub struct NetnsFile {
    path: PathBuf,
    armed: bool,
}

impl NetnsFile {
    /// Create the namespace and bind it on `path` (a new file; its
    /// directory must exist).
    pub async fn create(path: &Path) -> Result<Self> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .context(|| format!("create network namespace file {}", path.display()))?;
        let mut me = NetnsFile { path: path.to_owned(), armed: false };
        let target = path.to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("netns-new".into())
            .spawn(move || {
                let r = (|| -> Result<()> {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| Error::io("unshare a network namespace", e.into()))?;
                    nix::mount::mount(
                        Some("/proc/thread-self/ns/net"),
                        &target,
                        None::<&str>,
                        nix::mount::MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(|e| Error::io(format!("bind the network namespace on {}", target.display()), e.into()))
                })();
                let _ = tx.send(r);
            })
            .context(|| "spawn a thread".to_string())?;
        rx.await.map_err(|_| Error::Other("network namespace thread panicked".into()))??;
        me.armed = true;
        let h = me.open()?.netlink().await?;
        crate::link::set_up(&h, "lo").await?;
        Ok(me)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open it.
    pub fn open(&self) -> Result<Netns> {
        Netns::open(&self.path)
    }

    /// Unmount and remove the file now, reporting errors.
    pub fn remove(mut self) -> Result<()> {
        self.armed = false;
        remove_netns_file(&self.path)
    }
}

/// Unmount a namespace file made by [`NetnsFile::create`] and remove it;
/// a file already gone is not an error.
pub fn remove_netns_file(path: &Path) -> Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::io(format!("unmount {}", path.display()), e.into())),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("remove {}", path.display()), e)),
        _ => Ok(()),
    }
}

impl Drop for NetnsFile {
    fn drop(&mut self) {
        if self.armed || self.path.exists() {
            let _ = remove_netns_file(&self.path);
        }
    }
}
