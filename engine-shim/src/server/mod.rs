//! The shim process itself: creates the container through a [`Runtime`],
//! parents it, serves the gRPC API on its socket, and records exits.

mod conn;
mod io;
mod oom;
mod service;
mod sys;

pub(crate) use conn::WATCH;
pub(crate) use sys::{recv_fd_msg, trim_thread_stack};

use crate::state::{self, ShimAddress};
use engine_core::{
    ContainerId, ContainerStatus, CreateOptions, Error, ExitStatus, LaunchRequest, LogDriver, Pid, ProcessRef,
    ProcessState, Result, Runtime, ShimEvent, Signal,
};
use io::Io;
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How long an exit waits for the process's output to drain before it is
/// recorded, so the log holds every line when the exit is reported.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How long an exited exec keeps its stdio for late attach clients.
const EXEC_IO_LINGER: Duration = Duration::from_secs(30);

/// Events kept for a slow `Events` client before it lags (and skips).
const EVENTS_CAPACITY: usize = 32;

/// The shim's events for `Events` clients. The channel (its
/// [`EVENTS_CAPACITY`] slots) exists only while a client listens: an event
/// nobody listens to is not kept either way, and a client only gets the
/// events sent after it subscribed.
#[derive(Default)]
pub(crate) struct Events(Mutex<Option<broadcast::Sender<ShimEvent>>>);

impl Events {
    /// Send `ev` to the clients listening, if any.
    fn send(&self, ev: ShimEvent) {
        let mut tx = self.0.lock().unwrap();
        // An error means no client listens any more: free the channel.
        if tx.as_ref().is_some_and(|t| t.send(ev).is_err()) {
            *tx = None;
        }
    }

    /// Listen to the events sent from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ShimEvent> {
        let mut tx = self.0.lock().unwrap();
        match tx.as_ref() {
            Some(t) => t.subscribe(),
            None => {
                let (t, rx) = broadcast::channel(EVENTS_CAPACITY);
                *tx = Some(t);
                rx
            }
        }
    }
}

/// One process of the container (the init or an exec).
pub(crate) struct Proc {
    exec_id: Option<String>,
    pid: AtomicI32,
    status: Mutex<ContainerStatus>,
    exit: watch::Sender<Option<ExitStatus>>,
    io: Mutex<Option<Arc<Io>>>,
}

impl Proc {
    fn new(exec_id: Option<String>) -> Arc<Proc> {
        Arc::new(Proc {
            exec_id,
            pid: AtomicI32::new(0),
            status: Mutex::new(ContainerStatus::Creating),
            exit: watch::channel(None).0,
            io: Mutex::new(None),
        })
    }
    fn exited(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }
    fn io(&self) -> Option<Arc<Io>> {
        self.io.lock().unwrap().clone()
    }
    fn state(&self) -> ProcessState {
        let exit = self.exited();
        let status = if exit.is_some() { ContainerStatus::Stopped } else { *self.status.lock().unwrap() };
        ProcessState::new(status, self.pid.load(Ordering::Relaxed)).exit(exit)
    }
    fn set_status(&self, s: ContainerStatus) {
        *self.status.lock().unwrap() = s;
    }
    async fn wait(&self) -> ExitStatus {
        let mut rx = self.exit.subscribe();
        let r = rx.wait_for(|e| e.is_some()).await.map(|e| e.expect("checked"));
        match r {
            Ok(e) => e,
            Err(_) => std::future::pending().await,
        }
    }
}

/// Why the shim stops serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quit {
    /// Container deleted or shutdown asked: remove the socket and address,
    /// keep the exit record for whoever comes later.
    Keep,
    /// Owner died or create failed: leave nothing.
    Purge,
}

/// The shared state of a running shim.
pub(crate) struct Core {
    id: ContainerId,
    req: LaunchRequest,
    rt: Arc<dyn Runtime>,
    init: Arc<Proc>,
    execs: Mutex<HashMap<String, Arc<Proc>>>,
    tracked: Mutex<HashMap<Pid, Arc<Proc>>>,
    inflight: AtomicUsize,
    /// gRPC (HTTP/2) connections being served.
    served: AtomicUsize,
    events: Arc<Events>,
    quit: watch::Sender<Option<Quit>>,
    seq: AtomicU64,
    deleted: AtomicBool,
    created_dir: bool,
    /// Set when live OOM notifications could not be had: checked at the init's exit.
    oom_at_exit: std::sync::OnceLock<oom::ExitCheck>,
}

/// Counts a runtime call in flight: while one is, exited children the shim
/// does not know may be the runtime process itself, which its caller reaps.
struct InFlight<'a>(&'a Arc<Core>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::SeqCst);
        self.0.reap();
    }
}

impl Core {
    fn inflight(self: &Arc<Self>) -> InFlight<'_> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }

    async fn rt<T>(self: &Arc<Self>, f: impl Future<Output = Result<T>>) -> Result<T> {
        let _g = self.inflight();
        f.await
    }

    fn dir(&self) -> &Path {
        &self.req.state_dir
    }

    fn proc(&self, p: &ProcessRef) -> Result<Arc<Proc>> {
        match p {
            ProcessRef::Init => Ok(self.init.clone()),
            ProcessRef::Exec(e) => {
                self.execs.lock().unwrap().get(e).cloned().ok_or_else(|| Error::not_found("exec", e.clone()))
            }
        }
    }

    fn console_path(&self) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir().join(format!("console-{n}.sock"))
    }

    /// Reap every exited child that can be: the processes the shim tracks
    /// (their exit is recorded), and orphans re-parented to it. Unknown
    /// children are left alone while a runtime call runs (its own child).
    fn reap(self: &Arc<Self>) {
        while let Some(pid) = sys::peek_exited() {
            let p = self.tracked.lock().unwrap().remove(&pid);
            match p {
                Some(p) => {
                    let code = sys::reap(pid).unwrap_or(255);
                    tokio::spawn(self.clone().on_exit(p, code));
                }
                None if self.inflight.load(Ordering::SeqCst) == 0 => {
                    sys::reap(pid);
                }
                None => break,
            }
        }
    }

    async fn on_exit(self: Arc<Self>, p: Arc<Proc>, code: i32) {
        let status = ExitStatus::now(code);
        if let Some(io) = p.io() {
            let _ = tokio::time::timeout(DRAIN_WAIT, io.drained()).await;
        }
        // The init's exit goes to disk before anyone hears of it; an exec's
        // stays in memory (health checks would pile up files otherwise).
        if p.exec_id.is_none() {
            if self.oom_at_exit.get().is_some_and(|c| c.oom_killed()) {
                tracing::info!("OOM killer acted in the container's cgroup");
                self.events.send(ShimEvent::Oom);
            }
            if let Err(e) = state::write_exit(self.dir(), None, &status) {
                tracing::error!("recording the init's exit: {e}");
            }
        }
        p.set_status(ContainerStatus::Stopped);
        p.exit.send_replace(Some(status));
        let process = p.exec_id.clone().map(ProcessRef::Exec).unwrap_or(ProcessRef::Init);
        tracing::info!(?process, code, "exited");
        self.events.send(ShimEvent::Exited { process, status });
        if p.exec_id.is_some() {
            // Late attach clients still get an exec's output for a while;
            // then its stdio (and held output) is released.
            tokio::time::sleep(EXEC_IO_LINGER).await;
            p.io.lock().unwrap().take();
        }
    }

    /// Create a process through the runtime (`run` gets the stdio), with
    /// its console accepted concurrently; registers the pid before the
    /// in-flight guard lets the reaper look.
    async fn spawn_proc<F, Fut>(
        self: &Arc<Self>,
        p: &Arc<Proc>,
        terminal: bool,
        open_stdin: bool,
        log: Option<Box<dyn LogDriver>>,
        run: F,
    ) -> Result<Pid>
    where
        F: FnOnce(engine_core::StdioSpec) -> Fut,
        Fut: Future<Output = Result<Pid>>,
    {
        let (spec, prep) = io::prepare(terminal, open_stdin, self.console_path())?;
        let g = self.inflight();
        let fut = run(spec);
        let (pid, master) = match &prep.console {
            None => (fut.await?, None),
            Some((l, path)) => {
                let acc = sys::recv_console(l, path);
                tokio::pin!(acc);
                tokio::pin!(fut);
                let mut master: Option<OwnedFd> = None;
                let r = loop {
                    tokio::select! {
                        r = &mut fut => break r,
                        m = &mut acc, if master.is_none() => master = Some(m?),
                    }
                };
                let pid = r?;
                let m = match master {
                    Some(m) => m,
                    None => tokio::time::timeout(Duration::from_secs(5), acc).await.map_err(|_| Error::Timeout {
                        what: "pty master from the runtime".into(),
                        after: Duration::from_secs(5),
                    })??,
                };
                (pid, Some(m))
            }
        };
        p.pid.store(pid, Ordering::Relaxed);
        let replay = p.exec_id.is_some();
        let io = Io::start(prep, master, open_stdin, log, replay)?;
        *p.io.lock().unwrap() = Some(io);
        self.tracked.lock().unwrap().insert(pid, p.clone());
        drop(g);
        Ok(pid)
    }

    async fn start(self: &Arc<Self>) -> Result<Pid> {
        let st = self.init.state();
        if st.status != ContainerStatus::Created {
            return Err(Error::conflict(
                "container",
                self.id.as_str(),
                format!("cannot start a {} container", st.status),
            ));
        }
        self.rt(self.rt.start(&self.id)).await?;
        if self.init.exited().is_none() {
            self.init.set_status(ContainerStatus::Running);
        }
        let pid = st.pid;
        self.events.send(ShimEvent::Started { pid });
        Ok(pid)
    }

    async fn kill(self: &Arc<Self>, p: &ProcessRef, sig: Signal, all: bool) -> Result<()> {
        let proc = self.proc(p)?;
        if all || p == &ProcessRef::Init {
            if proc.exited().is_some() && !all {
                return Err(Error::conflict("container", self.id.as_str(), "the init has exited"));
            }
            return self.rt(self.rt.kill(&self.id, sig, all)).await;
        }
        if proc.exited().is_some() {
            return Err(Error::conflict("exec", proc.exec_id.clone().unwrap_or_default(), "the process has exited"));
        }
        let pid = nix::unistd::Pid::from_raw(proc.pid.load(Ordering::Relaxed));
        let s = nix::sys::signal::Signal::try_from(sig.number()).map_err(|e| Error::invalid("signal", e.to_string()));
        match s {
            Ok(s) => nix::sys::signal::kill(pid, s),
            Err(_) => {
                // real-time signals: nix's enum lacks them
                // SAFETY: plain kill(2)
                let r = unsafe { libc::kill(pid.as_raw(), sig.number()) };
                if r == 0 {
                    Ok(())
                } else {
                    Err(nix::errno::Errno::last())
                }
            }
        }
        .map_err(|e| Error::io(format!("signal exec {:?}", proc.exec_id), e.into()))
    }

    async fn exec(self: &Arc<Self>, req: engine_core::ExecRequest) -> Result<Pid> {
        if self.init.state().status != ContainerStatus::Running {
            return Err(Error::conflict("container", self.id.as_str(), "exec needs a running container"));
        }
        if req.exec_id.is_empty() || req.exec_id.contains('/') {
            return Err(Error::invalid("exec id", format!("{:?}", req.exec_id)));
        }
        let p = Proc::new(Some(req.exec_id.clone()));
        {
            let mut ex = self.execs.lock().unwrap();
            if ex.contains_key(&req.exec_id) {
                return Err(Error::conflict("exec", req.exec_id, "an exec with this id exists"));
            }
            ex.insert(req.exec_id.clone(), p.clone());
        }
        let terminal = req.process.terminal().unwrap_or(false);
        let pid_file = self.dir().join(format!("exec-{}.pid", req.exec_id));
        let rt = self.rt.clone();
        let id = self.id.clone();
        let process = req.process;
        let r = self
            .spawn_proc(&p, terminal, req.open_stdin, None, |stdio| {
                let pid_file = pid_file.clone();
                async move {
                    let opts = engine_core::ExecOptions::default().stdio(stdio).pid_file(Some(pid_file));
                    rt.exec(&id, &process, opts).await
                }
            })
            .await;
        let _ = std::fs::remove_file(&pid_file);
        match r {
            Ok(pid) => {
                p.set_status(ContainerStatus::Running);
                self.events.send(ShimEvent::ExecStarted { exec_id: req.exec_id, pid });
                Ok(pid)
            }
            Err(e) => {
                self.execs.lock().unwrap().remove(&req.exec_id);
                Err(e)
            }
        }
    }

    async fn pause(self: &Arc<Self>, pause: bool) -> Result<()> {
        if pause {
            self.rt(self.rt.pause(&self.id)).await?;
            self.init.set_status(ContainerStatus::Paused);
            self.events.send(ShimEvent::Paused);
        } else {
            self.rt(self.rt.resume(&self.id)).await?;
            self.init.set_status(ContainerStatus::Running);
            self.events.send(ShimEvent::Resumed);
        }
        Ok(())
    }

    async fn delete(self: &Arc<Self>) -> Result<Option<ExitStatus>> {
        let st = self.init.state();
        if matches!(st.status, ContainerStatus::Running | ContainerStatus::Paused) {
            // The init may have just exited and not been recorded yet.
            let rs = self.rt(self.rt.state(&self.id)).await?;
            if rs.status != ContainerStatus::Stopped {
                return Err(Error::conflict(
                    "container",
                    self.id.as_str(),
                    format!("cannot delete a {} container; kill it first", rs.status),
                ));
            }
        }
        let force = st.status == ContainerStatus::Created;
        self.rt(self.rt.delete(&self.id, force)).await?;
        self.deleted.store(true, Ordering::SeqCst);
        let exit = tokio::time::timeout(Duration::from_secs(5), self.init.wait()).await.ok();
        self.quit.send_replace(Some(Quit::Keep));
        Ok(exit)
    }

    fn shutdown(&self) -> Result<()> {
        if !self.deleted.load(Ordering::SeqCst) {
            return Err(Error::conflict("container", self.id.as_str(), "the container exists; delete it first"));
        }
        self.quit.send_replace(Some(Quit::Keep));
        Ok(())
    }

    /// The owner died: kill everything, delete the container, leave nothing.
    async fn purge(self: &Arc<Self>) {
        tracing::info!("owner {:?} died: removing container", self.req.owner_pid);
        let _ = self.rt(self.rt.kill(&self.id, Signal::KILL, true)).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.init.wait()).await;
        if let Err(e) = self.rt(self.rt.delete(&self.id, true)).await {
            tracing::warn!("delete after owner death: {e}");
        }
        // The owner mounted the root filesystem and is not there to unmount it.
        if let Some(rootfs) = bundle_rootfs(&self.req.bundle) {
            if let Err(e) = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH) {
                if e != nix::errno::Errno::EINVAL && e != nix::errno::Errno::ENOENT {
                    tracing::warn!("unmounting {} after owner death: {e}", rootfs.display());
                }
            }
        }
        self.deleted.store(true, Ordering::SeqCst);
        self.quit.send_replace(Some(Quit::Purge));
    }
}

/// The root filesystem a bundle's `config.json` names (`root.path`, relative
/// to the bundle unless absolute); `None` when the config cannot be read.
fn bundle_rootfs(bundle: &Path) -> Option<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Config {
        root: Option<Root>,
    }
    #[derive(serde::Deserialize)]
    struct Root {
        path: PathBuf,
    }
    let cfg: Config = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    Some(bundle.join(cfg.root?.path))
}

/// Remove what the shim put into its state dir (everything with `purge`,
/// otherwise the socket and address only).
fn cleanup(dir: &Path, created_dir: bool, purge: bool) {
    let _ = std::fs::remove_file(dir.join(state::SOCKET_FILE));
    let _ = std::fs::remove_file(dir.join(state::ADDRESS_FILE));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let ours = n.starts_with("console-") || (n.starts_with("exec-") && n.ends_with(".pid")) || n == "init.pid";
            let record = n == state::EXIT_FILE || (n.starts_with("exec-") && n.ends_with(".exit.json"));
            if ours || (purge && record) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if purge && created_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn read_terminal(bundle: &Path) -> Result<bool> {
    let p = bundle.join("config.json");
    let data = std::fs::read(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
    let v: serde_json::Value =
        serde_json::from_slice(&data).map_err(|e| Error::invalid(p.display().to_string(), e.to_string()))?;
    Ok(v["process"]["terminal"].as_bool().unwrap_or(false))
}

/// Run a shim for `req` on the current (single-threaded) tokio runtime:
/// create the container through `rt`, call `report` once it is created
/// (or with the error, after removing everything), then serve until the
/// container is deleted, the shim is shut down or its owner dies.
///
/// The caller must already be the container's future parent (child
/// subreaper, detached from its launcher); the `engine-shim` binary does
/// that before calling this.
pub async fn run(req: LaunchRequest, rt: Arc<dyn Runtime>, report: impl FnOnce(Result<ShimAddress>)) -> Result<()> {
    run_with_log_driver(req, rt, None, report).await
}

/// [`run`] with another sink for the container's output than the default
/// json-file writer of `req.log` (journald, syslog, a collector...).
pub async fn run_with_log_driver(
    req: LaunchRequest,
    rt: Arc<dyn Runtime>,
    log: Option<Box<dyn LogDriver>>,
    report: impl FnOnce(Result<ShimAddress>),
) -> Result<()> {
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
        .map_err(|e| Error::io("watch SIGCHLD", e))?;
    let created_dir = !req.state_dir.exists();
    // Boxed: what create needs lives on the heap while it runs, not in this
    // future, which sits on the main thread's stack for the shim's whole life.
    let (core, listener, owner) = match Box::pin(setup(req.clone(), rt, log, created_dir)).await {
        Ok(v) => v,
        Err(e) => {
            cleanup(&req.state_dir, created_dir, true);
            report(Err(e));
            return Ok(());
        }
    };
    let addr = ShimAddress {
        id: core.id.as_str().to_string(),
        pid: std::process::id() as Pid,
        socket: core.dir().join(state::SOCKET_FILE),
    };
    if let Err(e) = state::write_address(core.dir(), &addr) {
        let _ = core.rt(core.rt.delete(&core.id, true)).await;
        cleanup(&req.state_dir, created_dir, true);
        report(Err(e));
        return Ok(());
    }
    let reaper = core.clone();
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            reaper.reap();
        }
    });
    if let Some(fd) = owner {
        let c = core.clone();
        tokio::spawn(async move {
            // SAFETY: the pidfd is owned by the AsyncFd from here on.
            if let Ok(afd) = unsafe { tokio::io::unix::AsyncFd::register(fd) } {
                let _ = afd.readable().await;
                c.purge().await;
            }
        });
    }
    let init_pid = core.init.pid.load(Ordering::Relaxed);
    let events = core.events.clone();
    if let Some(check) = oom::watch(init_pid, move || {
        tracing::info!("OOM killer acted in the container's cgroup");
        events.send(ShimEvent::Oom);
    }) {
        let _ = core.oom_at_exit.set(check);
    }
    let svc = service::ShimService::new(core.clone());
    let idle = conn::Idle::new(std::env::var_os("ENGINE_SHIM_NO_TRIM").is_none());
    tokio::spawn(conn::serve(listener, idle.clone(), core.clone(), crate::proto::shim_server::ShimServer::new(svc)));
    core.reap();
    report(Ok(addr));
    idle.touch();
    let mut q = core.quit.subscribe();
    let how = match q.wait_for(|q| q.is_some()).await {
        Ok(v) => v.expect("checked"),
        Err(_) => Quit::Keep,
    };
    // Let the last replies go out before the socket disappears.
    tokio::time::sleep(Duration::from_millis(100)).await;
    cleanup(core.dir(), core.created_dir, how == Quit::Purge);
    Ok(())
}

async fn setup(
    req: LaunchRequest,
    rt: Arc<dyn Runtime>,
    log: Option<Box<dyn LogDriver>>,
    created_dir: bool,
) -> Result<(Arc<Core>, tokio::net::UnixListener, Option<OwnedFd>)> {
    let id = req.id.clone();
    let owner = match req.owner_pid {
        Some(pid) => Some(
            sys::pidfd_open(pid)
                .map_err(|e| Error::invalid("owner pid", format!("process {pid} cannot be watched: {e}")))?,
        ),
        None => None,
    };
    let terminal = read_terminal(&req.bundle)?;
    std::fs::create_dir_all(&req.state_dir)
        .map_err(|e| Error::io(format!("create state dir {}", req.state_dir.display()), e))?;
    let sock = req.state_dir.join(state::SOCKET_FILE);
    if sock.as_os_str().len() >= 108 {
        return Err(Error::invalid(
            "state dir",
            format!("{} is too long for a unix socket path", req.state_dir.display()),
        ));
    }
    if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
        return Err(Error::conflict(
            "container",
            id.as_str(),
            format!("a shim already serves {}", req.state_dir.display()),
        ));
    }
    let _ = std::fs::remove_file(&sock);
    let listener =
        tokio::net::UnixListener::bind(&sock).map_err(|e| Error::io(format!("bind {}", sock.display()), e))?;
    let core = Arc::new(Core {
        id: id.clone(),
        rt,
        init: Proc::new(None),
        execs: Mutex::new(HashMap::new()),
        tracked: Mutex::new(HashMap::new()),
        inflight: AtomicUsize::new(0),
        served: AtomicUsize::new(0),
        events: Arc::default(),
        quit: watch::channel(None).0,
        seq: AtomicU64::new(0),
        deleted: AtomicBool::new(false),
        created_dir,
        oom_at_exit: std::sync::OnceLock::new(),
        req,
    });
    // An id the runtime already knows belongs to someone else: refuse it
    // before touching anything, so the cleanup below never deletes it
    // (some runtimes validate the bundle before they check the id).
    // runc-compatible runtimes keep one directory per container under
    // their `--root`; without a known root, ask the runtime.
    let known = match &core.req.runtime.root {
        Some(root) => root.join(id.as_str()).exists(),
        None => match core.rt(core.rt.state(&id)).await {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(Error::Runtime { .. }) => false,
            Err(e) => return Err(e),
        },
    };
    if known {
        return Err(Error::conflict("container", id.as_str(), "the runtime already has a container with this id"));
    }
    let log: Option<Box<dyn LogDriver>> = match (log, &core.req.log) {
        (Some(driver), _) => Some(driver),
        (None, Some(cfg)) => Some(crate::log::open_log(cfg)?),
        (None, None) => None,
    };
    let bundle = core.req.bundle.clone();
    let pid_file = core.dir().join("init.pid");
    let rt = core.rt.clone();
    let init = core.init.clone();
    let r = core
        .spawn_proc(&init, terminal, core.req.open_stdin, log, |stdio| {
            let id = id.clone();
            async move {
                let opts = CreateOptions::default().stdio(stdio).no_pivot(false).pid_file(Some(pid_file));
                rt.create(&id, &bundle, opts).await
            }
        })
        .await;
    let _ = std::fs::remove_file(core.dir().join("init.pid"));
    match r {
        Ok(_) => {
            core.init.set_status(ContainerStatus::Created);
            Ok((core, listener, owner))
        }
        Err(e) => {
            // A conflict means the id belongs to another container: leave it be.
            if !e.is_conflict() {
                let _ = core.rt(core.rt.delete(&id, true)).await;
            }
            if let Some(cfg) = &core.req.log {
                if std::fs::metadata(&cfg.path).map(|m| m.len() == 0).unwrap_or(false) {
                    let _ = std::fs::remove_file(&cfg.path);
                }
            }
            Err(e)
        }
    }
}
