//! [`Launcher`]: starts `engine-shim` processes and reconnects to them.

use crate::{state, Client, ShimAddress};
use async_trait::async_trait;
use engine_core::WireError;
use engine_core::{ContainerId, Error, ExitStatus, LaunchRequest, Result, Shim, ShimLauncher};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Name of the shim binary.
pub const SHIM_BINARY: &str = "engine-shim";

/// How long a launch (the runtime's create included) may take, unless the
/// runtime says otherwise ([`engine_core::RuntimeBinary::create_timeout`]).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a shim that reported itself ready has to answer its first call.
const ANSWER_AFTER_LAUNCH: Duration = Duration::from_secs(60);

/// The one line a new shim writes to its launcher.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LaunchReply {
    Ok(ShimAddress),
    Error(WireError),
}

impl LaunchReply {
    pub(crate) fn from_result(r: Result<ShimAddress>) -> Self {
        match r {
            Ok(a) => LaunchReply::Ok(a),
            Err(e) => LaunchReply::Error(WireError::from(&e)),
        }
    }
}

/// Spawns `engine-shim` processes (one per container) and reconnects to
/// running ones. The shim detaches at once: it is not the launcher's child
/// and outlives it.
///
/// By default the launcher keeps one `engine-shim` process running as a
/// fork server and forks every shim from it: a launch costs a `fork`, not
/// an `exec` of the binary, and the shims share the memory the dynamic
/// loader wrote when the binary was loaded (about 70 KiB each that a shim
/// started by `exec` holds privately). The server starts at the first launch
/// and ends by itself when its launcher goes away (shims already forked do
/// not notice); one that was killed is replaced at the next launch. It runs
/// the binary as it was when it started: a launcher made after the binary
/// was replaced on disk uses the new one. [`Launcher::prestart`]`(false)`
/// turns this off (each shim is then started by `exec`).
///
/// ```no_run
/// # async fn demo() -> engine_core::Result<()> {
/// use engine_core::{ContainerId, LaunchRequest, RuntimeBinary, Shim, ShimLauncher};
/// let launcher = engine_shim::Launcher::find()?;
/// let req = LaunchRequest::new(
///     ContainerId::new("web")?,
///     "/var/lib/engine/bundles/web",
///     "/run/engine/web",
///     RuntimeBinary::new("runc", "/usr/sbin/runc"),
/// );
/// let shim = launcher.launch(req).await?; // the container is created
/// shim.start().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Launcher {
    binary: PathBuf,
    prestart: bool,
    server: Arc<tokio::sync::Mutex<Option<ForkServer>>>,
}

/// The running fork server (see [`crate::fork_server`]).
#[derive(Debug)]
struct ForkServer {
    // Kept so that the process is reaped once it ends (after its launcher's).
    _child: tokio::process::Child,
    ctl: tokio::net::UnixStream,
}

impl Default for Launcher {
    /// [`Launcher::find`], or plain `engine-shim` looked up in `PATH` at launch.
    fn default() -> Self {
        Launcher::find().unwrap_or_else(|_| Launcher::new(SHIM_BINARY))
    }
}

impl Launcher {
    /// A launcher running the shim binary at `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Launcher { binary: binary.into(), prestart: true, server: Arc::default() }
    }

    /// Fork shims from one `engine-shim` process kept running (the default),
    /// or start each one by `exec` when a container is created.
    pub fn prestart(mut self, on: bool) -> Self {
        self.prestart = on;
        self
    }

    /// Start the fork server; `id` names the container it is started for, in errors.
    fn start_server(&self, id: &ContainerId) -> Result<ForkServer> {
        let what = || format!("start the shim fork server {} for container {id}", self.binary.display());
        let (mine, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| Error::io(what(), e))?;
        let child = tokio::process::Command::new(&self.binary)
            .arg(crate::fork_server::ARG)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(what(), e))?;
        mine.set_nonblocking(true).map_err(|e| Error::io(what(), e))?;
        let ctl = tokio::net::UnixStream::from_std(mine).map_err(|e| Error::io(what(), e))?;
        Ok(ForkServer { _child: child, ctl })
    }

    /// A new shim forked from the server: the launcher's end of its stdin and stdout.
    async fn fork_shim(&self, id: &ContainerId) -> Result<tokio::net::UnixStream> {
        use std::os::fd::AsFd;
        let what = || format!("fork the shim of container {id} from {}", self.binary.display());
        let (mine, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| Error::io(what(), e))?;
        let mut server = self.server.lock().await;
        let mut failed = None;
        // A server that was killed (the send fails) is replaced once.
        for _ in 0..2 {
            let ctl = match server.as_ref() {
                Some(s) => &s.ctl,
                None => &server.insert(self.start_server(id)?).ctl,
            };
            match crate::fork_server::send_fd(ctl, theirs.as_fd()).await {
                Ok(()) => {
                    failed = None;
                    break;
                }
                Err(e) => {
                    *server = None;
                    failed = Some(e);
                }
            }
        }
        drop(server);
        if let Some(e) = failed {
            return Err(Error::io(what(), e));
        }
        drop(theirs);
        mine.set_nonblocking(true).map_err(|e| Error::io(what(), e))?;
        tokio::net::UnixStream::from_std(mine).map_err(|e| Error::io(what(), e))
    }

    /// Find `engine-shim`: `$ENGINE_BIN_DIR`, next to the current
    /// executable (or one directory up, for test binaries in `deps/`),
    /// then `PATH`.
    pub fn find() -> Result<Self> {
        engine_core::binary::find_engine_binary(SHIM_BINARY)
            .map(Launcher::new)
            .ok_or_else(|| Error::not_found("executable", SHIM_BINARY))
    }

    /// The shim binary this launcher runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Launch a shim and return the concrete [`Client`].
    pub async fn launch_client(&self, req: LaunchRequest) -> Result<Client> {
        let id = req.id.clone();
        let state_dir = req.state_dir.clone();
        let bound = req.runtime.create_timeout.unwrap_or(LAUNCH_TIMEOUT);
        let json = serde_json::to_vec(&req).map_err(|e| Error::invalid("launch request", e.to_string()))?;
        let timeout = || Error::Timeout { what: format!("shim of container {id} to create it"), after: bound };
        let talk_err = |e| Error::io(format!("talk to the shim of container {id}"), e);
        // The request goes in, then end of input; the shim's one reply line comes out.
        let (out, ended) = if self.prestart {
            let mut conn = self.fork_shim(&id).await?;
            let talk = async {
                conn.write_all(&json).await?;
                conn.shutdown().await?;
                let mut out = Vec::new();
                conn.read_to_end(&mut out).await?;
                Ok::<_, std::io::Error>(out)
            };
            let out = tokio::time::timeout(bound, talk).await.map_err(|_| timeout())?.map_err(talk_err)?;
            (out, "ended".to_string())
        } else {
            let mut child = tokio::process::Command::new(&self.binary)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| Error::io(format!("spawn shim {} for container {id}", self.binary.display()), e))?;
            let (mut stdin, mut stdout) = (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"));
            let talk = async {
                stdin.write_all(&json).await?;
                stdin.shutdown().await?;
                drop(stdin);
                let mut out = Vec::new();
                stdout.read_to_end(&mut out).await?;
                Ok::<_, std::io::Error>(out)
            };
            let out = tokio::time::timeout(bound, talk).await.map_err(|_| timeout())?.map_err(talk_err)?;
            // The first shim process exits once it has detached; its status
            // only matters for the message below.
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("status unknown: {e}"),
            };
            (out, format!("exited ({status})"))
        };
        let line = out.split(|b| *b == b'\n').find(|l| !l.is_empty()).unwrap_or_default();
        match serde_json::from_slice::<LaunchReply>(line) {
            // It said it is ready, so it is alive: give a loaded machine time to let it answer
            // (3 s was too short with thousands of containers and builds running: the create
            // failed and left the shim and its container behind).
            Ok(LaunchReply::Ok(_)) => Client::connect_within(&id, &state_dir, ANSWER_AFTER_LAUNCH).await,
            Ok(LaunchReply::Error(w)) => Err(w.into()),
            Err(_) => Err(Error::Other(format!(
                "shim {} for container {id} {ended} without a reply: {}",
                self.binary.display(),
                String::from_utf8_lossy(&out).trim()
            ))),
        }
    }
}

#[async_trait]
impl ShimLauncher for Launcher {
    async fn launch(&self, req: LaunchRequest) -> Result<Box<dyn Shim>> {
        Ok(Box::new(self.launch_client(req).await?))
    }

    async fn connect(&self, id: &ContainerId, state_dir: &Path) -> Result<Box<dyn Shim>> {
        Ok(Box::new(Client::connect(id, state_dir).await?))
    }

    async fn recorded_exit(&self, state_dir: &Path) -> Result<Option<ExitStatus>> {
        state::read_exit(state_dir, None)
    }
}
