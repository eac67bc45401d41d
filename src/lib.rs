//! # engine
//!
//! An embeddable, async container engine. The tiers (runtime, shim, image
//! store, lifecycle manager) are traits in [`engine_core`] with default Linux
//! implementations; this crate wires the defaults into an [`Engine`] that an
//! application or a test harness embeds in-process, with no daemon:
//!
//! ```no_run
//! # async fn demo() -> engine::Result<()> {
//! use engine::{ContainerBuilder, Engine, WaitFor};
//! let engine = Engine::builder().root("/var/lib/engine").build().await?;
//! let c = engine.run(ContainerBuilder::new("busybox:latest").cmd(["echo", "hi"]).wait_for(WaitFor::stdout("hi"))).await?;
//! # c.remove().await }
//! ```
//!
//! - [`Engine::images`] is the image store ([`ImageStore`]) and
//!   [`Engine::containers`] the lifecycle manager ([`LifecycleManager`]);
//!   everything the tiers can do is reachable through them.
//! - [`Engine::run`] takes a typed [`ContainerBuilder`] (image, cmd,
//!   entrypoint, env, user, workdir, bind/tmpfs/volume mounts, resource
//!   limits, labels, runtime) and a [`WaitFor`] strategy (a log line on
//!   stdout or stderr, exit, a command that succeeds, a duration), bounded by
//!   a startup timeout (60 s by default) that fails with [`Error::Timeout`].
//! - A [`Container`] handle runs commands ([`Container::exec`] captures output
//!   and exit code), copies files in and out, and removes the container when
//!   dropped (or explicitly with [`Container::remove`]). Containers are bound to
//!   the process that made them: if it dies, even by SIGKILL, their shims kill
//!   and delete them, so a crashed test leaks no process.
//! - [`Engine::busybox_image`] makes a runnable image from Debian's
//!   busybox-static when no registry is at hand.
//!
//! - [`Engine::build`] builds an image from a Dockerfile (every RUN step a
//!   container of this engine's manager, a layer cache kept under
//!   `<root>/build`), its progress a stream; [`Container::commit`] makes an
//!   image of a container's changes (`docker commit`).
//!
//! The tiers are re-exported: [`core`], [`runtime`], [`shim`], [`image`],
//! [`lifecycle`], [`build`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod container;
#[cfg(feature = "single-binary")]
pub mod single_binary;
mod wait;

#[cfg(feature = "single-binary")]
pub use single_binary::tier_main;

/// The repository README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use container::{CommitOptions, Container, ContainerBuilder, ExecOutput};
pub use wait::WaitFor;

pub use engine_build as build;
pub use engine_build::{BuildEvent, BuildOptions, BuildOutput};
pub use engine_core as core;
pub use engine_image as image;
pub use engine_lifecycle as lifecycle;
pub use engine_network as network;
pub use engine_runtime as runtime;
pub use engine_shim as shim;
pub use engine_volume as volume;

pub use engine_core::{
    CgroupnsMode, ContainerConfig, ContainerInfo, ContainerState, DeviceMapping, Error, ExitStatus, ImageInfo,
    ImageStore, LifecycleManager, MountSpec, NetworkMode, Resources, RestartPolicy, Result, SeccompProfile,
    SecurityOptions, Signal,
};

use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The default startup timeout of [`Engine::run`].
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The engine: an image store and a lifecycle manager, in-process.
/// Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    root: PathBuf,
    images: Arc<dyn ImageStore>,
    containers: Arc<dyn LifecycleManager>,
    volumes: Arc<dyn engine_core::VolumeDriver>,
    startup_timeout: Duration,
    bind_to_process: bool,
    pending: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Where published ports are reachable (the network driver's host
    /// namespace; `None`: this process's).
    host_netns: Option<PathBuf>,
    /// The image builder, made on first use.
    builder: tokio::sync::OnceCell<Arc<engine_build::Builder>>,
}

/// A build in progress ([`Engine::build`]): its events as a stream, then
/// its result.
pub struct BuildProgress {
    /// Progress, as `docker build` prints it; ends when the build ends.
    pub events: futures::stream::BoxStream<'static, BuildEvent>,
    result: tokio::task::JoinHandle<Result<BuildOutput>>,
}

impl std::fmt::Debug for BuildProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildProgress").finish_non_exhaustive()
    }
}

impl BuildProgress {
    /// Wait for the end of the build (events not read yet are dropped).
    pub async fn finish(self) -> Result<BuildOutput> {
        drop(self.events);
        self.result.await.map_err(|e| Error::Other(format!("build task failed: {e}")))?
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("root", &self.inner.root).finish_non_exhaustive()
    }
}

/// Builds an [`Engine`] ([`Engine::builder`]).
#[derive(Default)]
pub struct EngineBuilder {
    root: Option<PathBuf>,
    runtimes: Vec<(String, PathBuf)>,
    default_runtime: Option<String>,
    images: Option<Arc<dyn ImageStore>>,
    shims: Option<Arc<dyn engine_core::ShimLauncher>>,
    manager: Option<Arc<dyn LifecycleManager>>,
    startup_timeout: Option<Duration>,
    unbound: bool,
    cgroup_parent: Option<String>,
    network: Option<Arc<dyn engine_core::NetworkDriver>>,
    volumes: Option<Arc<dyn engine_core::VolumeDriver>>,
    storage_driver: Option<engine_image::StorageDriver>,
    single_binary: bool,
}

impl EngineBuilder {
    /// The state root (default `/var/lib/engine`): images under `images/`,
    /// containers under `containers/`, ...
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }
    /// The default runtime by name: `"engine-runc"` (the default), `"runc"`,
    /// `"crun"`, a name added with [`EngineBuilder::add_runtime`], or an
    /// absolute path to a runc-compatible binary.
    pub fn runtime(mut self, name_or_path: impl Into<String>) -> Self {
        self.default_runtime = Some(name_or_path.into());
        self
    }
    /// Make every container's cgroup under this cgroup (default `/engine`).
    pub fn cgroup_parent(mut self, parent: impl Into<String>) -> Self {
        self.cgroup_parent = Some(parent.into());
        self
    }
    /// Register a runtime binary under a name.
    pub fn add_runtime(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.runtimes.push((name.into(), path.into()));
        self
    }
    /// The storage driver of the default image store (`engine_image::Store`
    /// under the root): [`engine_image::StorageDriver::Overlay2`] (overlay
    /// mounts, the default) or [`engine_image::StorageDriver::Vfs`] (plain
    /// copies, for hosts without overlayfs). Refused at
    /// [`EngineBuilder::build`] together with [`EngineBuilder::image_store`],
    /// whose store has its own.
    pub fn storage_driver(mut self, driver: engine_image::StorageDriver) -> Self {
        self.storage_driver = Some(driver);
        self
    }
    /// Use this image store instead of `engine_image::Store` under the root.
    pub fn image_store(mut self, store: Arc<dyn ImageStore>) -> Self {
        self.images = Some(store);
        self
    }
    /// Use this shim launcher instead of `engine_shim::Launcher::default()`.
    pub fn shim_launcher(mut self, launcher: Arc<dyn engine_core::ShimLauncher>) -> Self {
        self.shims = Some(launcher);
        self
    }
    /// Use this lifecycle manager (for example an
    /// [`engine_lifecycle::RemoteManager`] talking to `engine-lifecycled`)
    /// instead of an in-process one.
    pub fn manager(mut self, manager: Arc<dyn LifecycleManager>) -> Self {
        self.manager = Some(manager);
        self
    }
    /// Default startup timeout of [`Engine::run`] (60 s unless set).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = Some(timeout);
        self
    }
    /// Attach `bridge`-mode and user-network containers (and so publish
    /// ports, [`ContainerBuilder::publish`]) through this driver, usually an
    /// [`engine_network::BridgeDriver`] (or [`engine_network::CniDriver`]
    /// for CNI plugins). Without one, those modes are refused
    /// at create. Ignored with [`EngineBuilder::manager`]: a remote manager
    /// has its own.
    pub fn network_driver(mut self, driver: Arc<dyn engine_core::NetworkDriver>) -> Self {
        self.network = Some(driver);
        self
    }
    /// Create and mount volumes through this driver instead of the
    /// `local` driver ([`engine_volume::LocalDriver`]) under `<root>/volumes`.
    pub fn volume_driver(mut self, driver: Arc<dyn engine_core::VolumeDriver>) -> Self {
        self.volumes = Some(driver);
        self
    }
    /// Do not bind containers to this process (by default a container made
    /// through the facade is killed and deleted by its shim once this process dies).
    pub fn unbound(mut self) -> Self {
        self.unbound = true;
        self
    }

    /// Serve as this application's own shim and `engine-runc` (feature
    /// `single-binary`): at [`EngineBuilder::build`], make
    /// `<root>/bin/engine-shim` and `<root>/bin/engine-runc` symbolic links to
    /// this executable and use them as the shim binary and the `engine-runc`
    /// runtime, so no other binary of this project is needed. The
    /// application's `main` must call [`tier_main`] first. Refused together
    /// with [`EngineBuilder::shim_launcher`] or [`EngineBuilder::manager`]
    /// (which bring their own). See [`crate::single_binary`].
    #[cfg(feature = "single-binary")]
    pub fn single_binary(mut self) -> Self {
        self.single_binary = true;
        self
    }

    /// Open the image store and start (or recover) the lifecycle manager.
    pub async fn build(mut self) -> Result<Engine> {
        let root = self.root.clone().unwrap_or_else(|| PathBuf::from("/var/lib/engine"));
        if self.single_binary {
            self.use_own_binary(&root)?;
        }
        let images: Arc<dyn ImageStore> = match (self.images, self.storage_driver) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "storage_driver",
                    "a storage driver is chosen for the default image store only, not with image_store()",
                ))
            }
            (Some(i), None) => i,
            (None, driver) => Arc::new(engine_image::Store::open_with(
                root.join("images"),
                engine_image::StoreOptions::default().storage_driver(driver.unwrap_or_default()),
            )?),
        };
        let volumes: Arc<dyn engine_core::VolumeDriver> = match self.volumes {
            Some(v) => v,
            None => Arc::new(engine_volume::LocalDriver::open(root.join("volumes"))?),
        };
        let containers: Arc<dyn LifecycleManager> = match self.manager {
            Some(m) => m,
            None => {
                let shims: Arc<dyn engine_core::ShimLauncher> =
                    self.shims.unwrap_or_else(|| Arc::new(engine_shim::Launcher::default()));
                let mut cfg = engine_lifecycle::ManagerConfig::new(root.clone(), images.clone(), shims)
                    .volume_driver(volumes.clone());
                for (name, path) in self.runtimes {
                    cfg = cfg.runtime(name, path);
                }
                if let Some(p) = self.cgroup_parent {
                    cfg = cfg.cgroup_parent(p)?;
                }
                if let Some(n) = self.network.clone() {
                    cfg = cfg.network_driver(n);
                }
                if let Some(d) = self.default_runtime {
                    if !cfg.runtimes.contains_key(&d) && !d.starts_with('/') {
                        return Err(Error::invalid(
                            "runtime",
                            format!("unknown runtime {d:?}; known: {:?}", cfg.runtimes.keys().collect::<Vec<_>>()),
                        ));
                    }
                    if d.starts_with('/') {
                        let name =
                            Path::new(&d).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        cfg = cfg.runtime(name.clone(), &d).default_runtime(name);
                    } else {
                        cfg = cfg.default_runtime(d);
                    }
                }
                Arc::new(engine_lifecycle::Manager::new(cfg).await?)
            }
        };
        Ok(Engine {
            inner: Arc::new(EngineInner {
                root,
                images,
                containers,
                volumes,
                startup_timeout: self.startup_timeout.unwrap_or(DEFAULT_STARTUP_TIMEOUT),
                bind_to_process: !self.unbound,
                pending: Arc::new(Mutex::new(Vec::new())),
                host_netns: self.network.as_ref().and_then(|n| n.host_netns()),
                builder: tokio::sync::OnceCell::new(),
            }),
        })
    }
}

impl EngineBuilder {
    /// [`EngineBuilder::single_binary`]: this executable as shim and runtime.
    #[cfg(feature = "single-binary")]
    fn use_own_binary(&mut self, root: &Path) -> Result<()> {
        if self.shims.is_some() || self.manager.is_some() {
            return Err(Error::invalid(
                "single_binary",
                "this executable serves as shim and runtime of the in-process manager; \
                 not with shim_launcher() or manager()",
            ));
        }
        let (shim, runc) = single_binary::role_links(root)?;
        self.shims = Some(Arc::new(engine_shim::Launcher::new(shim)));
        self.runtimes.insert(0, (single_binary::RUNTIME_ROLE.to_string(), runc));
        Ok(())
    }

    #[cfg(not(feature = "single-binary"))]
    fn use_own_binary(&mut self, _root: &Path) -> Result<()> {
        Ok(())
    }
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The image store.
    pub fn images(&self) -> &Arc<dyn ImageStore> {
        &self.inner.images
    }

    /// The lifecycle manager.
    pub fn containers(&self) -> &Arc<dyn LifecycleManager> {
        &self.inner.containers
    }

    /// The volume driver: create, list, inspect and remove volumes
    /// ([`ContainerBuilder::volume`] mounts one, created on first use).
    ///
    /// ```no_run
    /// # async fn demo(engine: engine::Engine) -> engine::Result<()> {
    /// use engine::core::VolumeCreate;
    /// let v = engine.volumes().create(VolumeCreate::named("pgdata")).await?;
    /// assert!(engine.volumes().list().await?.iter().any(|x| x.name == v.name));
    /// engine.volumes().remove("pgdata").await?; // a Conflict while a container uses it
    /// # Ok(()) }
    /// ```
    pub fn volumes(&self) -> &Arc<dyn engine_core::VolumeDriver> {
        &self.inner.volumes
    }

    /// Create a container (not started) from a builder.
    pub async fn create(&self, builder: ContainerBuilder) -> Result<Container> {
        let (mut config, _, _, keep) = builder.into_parts();
        if self.inner.bind_to_process && config.owner_pid.is_none() {
            config.owner_pid = Some(std::process::id() as i32);
        }
        let info = self.inner.containers.create(config).await?;
        let mut c = Container::new(info, self.inner.containers.clone(), keep, self.inner.pending.clone());
        c.host_netns = self.inner.host_netns.clone();
        c.images = Some(self.inner.images.clone());
        Ok(c)
    }

    /// Create and start a container, then wait for its [`WaitFor`] strategies
    /// (in order) within the startup timeout. On failure the container is
    /// removed and the error returned ([`Error::Timeout`] when it took too long).
    pub async fn run(&self, builder: ContainerBuilder) -> Result<Container> {
        let timeout = builder.startup_timeout.unwrap_or(self.inner.startup_timeout);
        let waits = builder.waits.clone();
        let c = self.create(builder).await?;
        let started = async {
            c.start().await?;
            for w in &waits {
                w.wait(&c).await?;
            }
            Ok::<(), Error>(())
        };
        let res = match tokio::time::timeout(timeout, started).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: format!(
                    "container {} to be ready ({})",
                    c.name(),
                    waits.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(", ")
                ),
                after: timeout,
            }),
        };
        match res {
            Ok(()) => Ok(c),
            Err(e) => {
                let _ = c.remove().await;
                Err(e)
            }
        }
    }

    /// Build an image from the Dockerfile in the directory `context` (see
    /// [`engine_build`]): every RUN step runs as a container of this
    /// engine's manager, with its runtime. Returns at once; read
    /// [`BuildProgress::events`], then [`BuildProgress::finish`] for the image.
    ///
    /// ```no_run
    /// # async fn demo(engine: engine::Engine) -> engine::Result<()> {
    /// use futures::StreamExt;
    /// let opts = engine::BuildOptions::default().tags(vec!["app:1".into()]);
    /// let mut b = engine.build("/src/app", opts).await?;
    /// while let Some(e) = b.events.next().await {
    ///     print!("{}", e.text());
    /// }
    /// let out = b.finish().await?;
    /// println!("{}", out.image.id);
    /// # Ok(()) }
    /// ```
    pub async fn build(&self, context: impl AsRef<Path>, options: BuildOptions) -> Result<BuildProgress> {
        let inner = self.inner.clone();
        let builder = inner
            .builder
            .get_or_try_init(|| async {
                let b = engine_build::Builder::new(
                    inner.containers.clone(),
                    inner.images.clone(),
                    inner.root.join("build"),
                )?;
                b.recover().await?;
                Ok::<_, Error>(Arc::new(b))
            })
            .await?
            .clone();
        let context = context.as_ref().to_path_buf();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let result = tokio::spawn(async move { builder.build(&context, &options, Some(tx)).await });
        let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }).boxed();
        Ok(BuildProgress { events, result })
    }

    /// Wait for the removals that dropped [`Container`] handles started in
    /// the background (useful at the end of a current-thread test).
    pub async fn settle(&self) {
        let handles: Vec<_> = std::mem::take(&mut *self.inner.pending.lock().unwrap());
        for h in handles {
            let _ = h.await;
        }
    }

    /// The image `tag`, made first from Debian's busybox-static (`/bin/busybox`,
    /// or `$BUSYBOX`) if the store does not have it: a one-layer image with
    /// the applets linked in `/bin`, `/etc/passwd` and `/etc/group`, and
    /// `sh` as its command. Runs on a fresh machine with no registry.
    pub async fn busybox_image(&self, tag: &str) -> Result<ImageInfo> {
        match self.inner.images.inspect(tag).await {
            Ok(i) => return Ok(i),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let work = self.inner.root.join("tmp").join(format!("busybox-{}", &engine_core::random_hex64()[..12]));
        let rootfs = work.join("rootfs");
        let archive = work.join("image.tar");
        let (r, a, t) = (rootfs.clone(), archive.clone(), tag.to_string());
        let built = tokio::task::spawn_blocking(move || {
            engine_image::build::busybox_rootfs(&r)?;
            engine_image::build::image_from_dir(&r, &t, &a, &Default::default())
        })
        .await
        .map_err(|e| Error::Other(format!("building the busybox image: {e}")));
        let res = match built {
            Ok(Ok(())) => self
                .inner
                .images
                .import(&archive, engine_core::ArchiveFormat::DockerArchive, None, None)
                .await
                .and_then(|mut v| {
                    v.pop().ok_or_else(|| Error::Other("import of the busybox image gave nothing".into()))
                }),
            Ok(Err(e)) | Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_dir_all(&work).await;
        res
    }
}
