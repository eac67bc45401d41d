//! [`Launcher`]: starts `engine-shim` processes and reconnects to them.

use crate::{state, Client, ShimAddress};
use async_trait::async_trait;
use engine_core::WireError;
use engine_core::{ContainerId, Error, ExitStatus, LaunchRequest, Result, Shim, ShimLauncher};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
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
/// By default the launcher keeps one shim started ahead of need (detached,
/// its event loop built, waiting for a request on its stdin), so that a
/// launch does not wait for a process to start; the next one is started in
/// the background. A spare shim ends by itself when its launcher goes away.
/// [`Launcher::prestart`]`(false)` turns this off.
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
    spare: Arc<Mutex<Option<Spawned>>>,
}

/// A shim process started, not yet told what to do.
#[derive(Debug)]
struct Spawned {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
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
        Launcher { binary: binary.into(), prestart: true, spare: Arc::default() }
    }

    /// Keep a shim started ahead of need (the default) or start each one
    /// when a container is created.
    pub fn prestart(mut self, on: bool) -> Self {
        self.prestart = on;
        self
    }

    fn spawn(&self, id: &ContainerId) -> Result<Spawned> {
        let mut child = tokio::process::Command::new(&self.binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(format!("spawn shim {} for container {id}", self.binary.display()), e))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        Ok(Spawned { child, stdin, stdout })
    }

    /// Start the spare shim in the background, unless there is one.
    fn replenish(&self) {
        if !self.prestart || self.spare.lock().unwrap().is_some() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(id) = ContainerId::new("spare") else { return };
            if let Ok(s) = me.spawn(&id) {
                let mut slot = me.spare.lock().unwrap();
                if slot.is_none() {
                    *slot = Some(s);
                }
            }
        });
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
        let spare = if self.prestart { self.spare.lock().unwrap().take() } else { None };
        let (mut child, mut stdin, mut stdout) = match spare {
            Some(mut s) => match s.stdin.write_all(&json).await {
                Ok(()) => (s.child, s.stdin, s.stdout),
                // The spare is gone (killed): start one now.
                Err(_) => {
                    let mut s = self.spawn(&id)?;
                    s.stdin.write_all(&json).await.map_err(|e| Error::io(format!("talk to the shim of {id}"), e))?;
                    (s.child, s.stdin, s.stdout)
                }
            },
            None => {
                let mut s = self.spawn(&id)?;
                s.stdin.write_all(&json).await.map_err(|e| Error::io(format!("talk to the shim of {id}"), e))?;
                (s.child, s.stdin, s.stdout)
            }
        };
        self.replenish();
        let talk = async {
            stdin.shutdown().await?;
            drop(stdin);
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        let out = tokio::time::timeout(bound, talk)
            .await
            .map_err(|_| Error::Timeout { what: format!("shim of container {id} to create it"), after: bound })?
            .map_err(|e| Error::io(format!("talk to the shim of container {id}"), e))?;
        // The first shim process exits once it has detached; its status only
        // matters for the message below (a spare's may be long reaped).
        let status = match child.wait().await {
            Ok(s) => s.to_string(),
            Err(e) => format!("status unknown: {e}"),
        };
        let line = out.split(|b| *b == b'\n').find(|l| !l.is_empty()).unwrap_or_default();
        match serde_json::from_slice::<LaunchReply>(line) {
            // It said it is ready, so it is alive: give a loaded machine time to let it answer
            // (3 s was too short with thousands of containers and builds running: the create
            // failed and left the shim and its container behind).
            Ok(LaunchReply::Ok(_)) => Client::connect_within(&id, &state_dir, ANSWER_AFTER_LAUNCH).await,
            Ok(LaunchReply::Error(w)) => Err(w.into()),
            Err(_) => Err(Error::Other(format!(
                "shim {} for container {id} exited ({status}) without a reply: {}",
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
