//! # engine-daemon
//!
//! `engined`, dockerd's role: a Docker Engine API (1.41 shapes) on a unix
//! socket, in front of any [`LifecycleManager`] and [`ImageStore`]. The real
//! `docker` CLI, bollard and testcontainers drive it unchanged.
//!
//! - Version negotiation through `/_ping`; both `/v1.NN/...` and unversioned paths.
//! - Docker's JSON error bodies and statuses (400, 403, 404, 409, 413, 304, 500).
//! - Hijacked attach and exec (`101 UPGRADED`) with Docker's 8-byte frames
//!   ([`engine_api::frames`]) and half-close handled as docker expects.
//! - `wait` answers its headers at once and its body at exit.
//! - The socket is created 0660 with a group; every connection's peer
//!   credentials are checked ([`AccessPolicy`]), others get a 403.
//!
//! Networking: with a [`NetworkDriver`] ([`Daemon::with_network`];
//! `engined --network-driver bridge`, or `--network-driver cni
//! --cni-conf-dir D --cni-bin-dir D` for CNI plugins), `bridge` (the
//! default mode), user networks (`/networks`, with connect and disconnect
//! of created and running containers), published ports (`PortBindings`,
//! `-P`), aliases and `--ip`; `none`, `host` and `container:<id|name>` always. Without a
//! driver, `bridge` gives the container its own namespace with loopback
//! only, and whatever needs a driver (ports, user networks) is refused
//! with a 400 naming the option, never dropped.
//!
//! Volumes: `/volumes` (create, list with filters, inspect, remove, prune)
//! through the [`VolumeDriver`] given to [`Daemon::with_drivers`], the same
//! one the manager mounts containers' volumes with.
//!
//! Plugins (Docker's v1 protocol, [`engine_plugin`]): `engined` routes its
//! volumes through an [`engine_plugin::VolumeRouter`], so `docker volume
//! create -d PLUGIN`, `--volume-driver PLUGIN` and `--mount
//! volume-driver=PLUGIN` use volume plugins; `GET /plugins` lists the
//! plugins discovered ([`DaemonConfig::plugins`]); every request and
//! response goes through the [`DaemonConfig::authorization`] hooks
//! (`--authorization-plugin NAME`), as dockerd's authorization middleware.
//!
//! ```no_run
//! use engine_daemon::{Daemon, DaemonConfig};
//! # async fn demo(manager: std::sync::Arc<dyn engine_core::LifecycleManager>,
//! #               images: std::sync::Arc<dyn engine_core::ImageStore>) -> engine_core::Result<()> {
//! let config = DaemonConfig::new("/var/lib/engine", "/run/engine");
//! let daemon = Daemon::new(manager, images, config);
//! let listener = engine_daemon::bind("/run/engine/engined.sock".as_ref(), None)?;
//! daemon.serve(vec![(listener, "/run/engine/engined.sock".into())]).await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

mod api;
mod authz;
pub mod convert;
mod events;
pub mod http;
mod server;
mod volumes;

pub use server::{bind, bind_tls, group_gid, AccessPolicy, TlsFiles, TlsListener};

use engine_core::{ImageStore, LifecycleManager, NetworkDriver, VolumeDriver};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::UnixListener;

/// The daemon's settings.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// Persistent state (images, containers, temp uploads under `tmp/`).
    pub data_root: PathBuf,
    /// Runtime state (sockets, pid files).
    pub exec_root: PathBuf,
    /// The default runtime's name, as `docker info` shows it.
    pub default_runtime: String,
    /// Runtimes by name and path, as `docker info` shows them.
    pub runtimes: Vec<(String, PathBuf)>,
    /// Who may connect besides root.
    pub access: AccessPolicy,
    /// Largest JSON request body.
    pub max_json_body: usize,
    /// Largest upload (load, import; streamed into the image store as it
    /// arrives), or build context and archive upload (staged in a temp file).
    pub max_upload: u64,
    /// The log driver and options of containers that name none
    /// (`engined --log-driver/--log-opt`), merged as dockerd merges them.
    pub log: engine_core::LogSpec,
    /// The plugins `GET /plugins` lists (discovered v1 plugins); `None`: none.
    pub plugins: Option<Arc<engine_plugin::Plugins>>,
    /// Who sees every request and response and may deny them
    /// (`--authorization-plugin`), asked in order; empty: all allowed.
    pub authorization: Vec<Arc<dyn engine_core::Authorizer>>,
}

impl DaemonConfig {
    /// Defaults for a data root and an exec root.
    pub fn new(data_root: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> Self {
        DaemonConfig {
            data_root: data_root.into(),
            exec_root: exec_root.into(),
            default_runtime: "engine-runc".into(),
            runtimes: Vec::new(),
            access: AccessPolicy::default(),
            max_json_body: http::MAX_JSON_BODY,
            max_upload: 64 << 30,
            log: engine_core::LogSpec::new(engine_core::logs::JSON_FILE),
            plugins: None,
            authorization: Vec::new(),
        }
    }
}

/// The API server over a manager and an image store.
#[derive(Clone)]
pub struct Daemon {
    state: Arc<api::State>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("config", &self.state.config).finish_non_exhaustive()
    }
}

impl Daemon {
    /// A daemon over these tiers. Temp uploads left by a previous run are removed.
    pub fn new(manager: Arc<dyn LifecycleManager>, images: Arc<dyn ImageStore>, config: DaemonConfig) -> Self {
        Self::with_drivers(manager, images, None, None, config)
    }

    /// A daemon with a network driver (`bridge` and user networks) and a
    /// volume driver (`/volumes`): the same drivers the manager attaches and
    /// mounts containers with.
    pub fn with_drivers(
        manager: Arc<dyn LifecycleManager>,
        images: Arc<dyn ImageStore>,
        network: Option<Arc<dyn NetworkDriver>>,
        volumes: Option<Arc<dyn VolumeDriver>>,
        config: DaemonConfig,
    ) -> Self {
        let tmp = config.data_root.join("tmp");
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Daemon { state: api::State::new(manager, images, network, volumes, config) }
    }

    /// A daemon whose `bridge` and user networks go through `network`: the
    /// same driver the manager attaches containers with.
    pub fn with_network(
        manager: Arc<dyn LifecycleManager>,
        images: Arc<dyn ImageStore>,
        network: Option<Arc<dyn NetworkDriver>>,
        config: DaemonConfig,
    ) -> Self {
        Self::with_drivers(manager, images, network, None, config)
    }

    /// A daemon that also serves `/volumes` through `volumes` (the same
    /// driver the manager mounts containers' volumes with).
    pub fn with_volumes(
        manager: Arc<dyn LifecycleManager>,
        images: Arc<dyn ImageStore>,
        volumes: Arc<dyn VolumeDriver>,
        config: DaemonConfig,
    ) -> Self {
        Self::with_drivers(manager, images, None, Some(volumes), config)
    }

    /// Make the image builder now and clean up what builds cut short by a
    /// crash left (their RUN containers and root filesystems), as dockerd
    /// does at start, rather than at the first `/build`.
    pub async fn recover_builds(&self) -> engine_core::Result<()> {
        api::build::builder(&self.state).await.map(|_| ())
    }

    /// Serve on these listeners until the future is dropped. Container
    /// events are forwarded to `/events` clients meanwhile.
    pub async fn serve(&self, listeners: Vec<(UnixListener, PathBuf)>) {
        self.serve_with_tls(listeners, Vec::new()).await
    }

    /// Serve on unix sockets and TLS sockets until the future is dropped.
    pub async fn serve_with_tls(&self, listeners: Vec<(UnixListener, PathBuf)>, tls: Vec<TlsListener>) {
        let first = match self.state.manager.events().await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to the manager's events yet");
                None
            }
        };
        let fwd = tokio::spawn(events::forward(self.state.manager.clone(), self.state.clone(), first));
        let tasks: Vec<_> = listeners
            .into_iter()
            .map(|(l, p)| tokio::spawn(server::serve(self.state.clone(), l, p)))
            .chain(tls.into_iter().map(|l| tokio::spawn(server::serve_tls(self.state.clone(), l))))
            .collect();
        let _abort = AbortAll(tasks.iter().map(|t| t.abort_handle()).chain([fwd.abort_handle()]).collect());
        for t in tasks {
            let _ = t.await;
        }
    }
}

struct AbortAll(Vec<tokio::task::AbortHandle>);
impl Drop for AbortAll {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}
