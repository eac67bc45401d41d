//! Create and start: validation, name reservation, rootfs, bundle, shim,
//! network, and the undo of a create that failed midway.

use super::*;

impl Inner {
    // ---------------------------------------------------------------- create

    pub(super) async fn create(self: &Arc<Self>, config: ContainerConfig) -> Result<ContainerInfo> {
        spec::validate(&config)?;
        check_memory_reserve(self.cfg.memory_reserve)?;
        let mut config = config;
        config.log = std::mem::take(&mut config.log).with_default(&self.cfg.default_log);
        if let LogTarget::Plugin { name, .. } = config.log.resolve()? {
            self.log_plugins(&name)?.check(&name).await?;
        }
        let runtime = resolve_runtime(&self.cfg, config.runtime.as_deref())?;
        let image = self.cfg.images.inspect(&config.image).await?;
        // A container with nothing to run fails before anything is made.
        engine_image::spec::resolve_args(&image.config, &config)?;
        let id = engine_core::random_hex64();
        let name = self.reserve_name(config.name.as_deref(), &id)?;
        let mut undo = Undo { inner: Some(self.clone()), id: id.clone(), name: name.clone(), ..Default::default() };
        match self.create_inner(&config, &runtime, &image, &id, &name, &mut undo).await {
            Ok(info) => {
                undo.disarm();
                self.refresh_hosts(&info, None).await;
                Ok(info)
            }
            Err(e) => {
                undo.run().await;
                Err(e)
            }
        }
    }

    fn reserve_name(&self, wanted: Option<&str>, id: &str) -> Result<String> {
        let mut names = self.names.lock().unwrap();
        if let Some(w) = wanted {
            let n = crate::names::validate(w)?;
            if let Some(other) = names.get(&n) {
                return Err(Error::conflict(
                    "container name",
                    &n,
                    format!("already in use by container {}", &other[..other.len().min(12)]),
                ));
            }
            names.insert(n.clone(), id.to_string());
            return Ok(n);
        }
        for retry in 0..100 {
            let n = crate::names::generate(retry);
            if !names.contains_key(&n) {
                names.insert(n.clone(), id.to_string());
                return Ok(n);
            }
        }
        Err(Error::Other("could not generate a unique container name".into()))
    }

    async fn create_inner(
        self: &Arc<Self>,
        config: &ContainerConfig,
        runtime: &RuntimeBinary,
        image: &engine_core::ImageInfo,
        id: &str,
        name: &str,
        undo: &mut Undo,
    ) -> Result<ContainerInfo> {
        let network = self.network_for(config).await?;
        let bundle = self.cfg.root.join("containers").join(id);
        let shim_dir = self.shim_dir(id, 0);
        std::fs::create_dir_all(&bundle).context(|| format!("creating bundle {}", bundle.display()))?;
        undo.bundle = Some(bundle.clone());
        let rootfs_path = bundle.join("rootfs");
        let rootfs = self.cfg.images.prepare_rootfs(&image.id, id, &rootfs_path).await?;
        undo.rootfs_key = Some(rootfs.key.clone());
        // Volumes: through the driver (the image's VOLUMEs as anonymous ones),
        // or, without one, plain directories created on first use.
        let mut with_volumes = config.clone();
        let volume_paths = match &self.cfg.volumes {
            Some(driver) => {
                crate::volumes::add_image_volumes(&mut with_volumes, &engine_image::spec::volumes(&image.config));
                crate::volumes::prepare(driver, &mut with_volumes, &rootfs.path, id, &mut undo.vols).await?
            }
            None => {
                for m in with_volumes.mounts.iter_mut() {
                    if let engine_core::MountSpec::Volume { name, .. } = m {
                        if name.is_empty() {
                            *name = engine_core::random_hex64();
                        }
                        let dir = self.cfg.root.join("volumes").join(&*name);
                        if !dir.exists() {
                            std::fs::create_dir_all(&dir).context(|| format!("creating volume {}", dir.display()))?;
                            undo.volumes.push(dir);
                        }
                    }
                }
                Default::default()
            }
        };
        let config = &with_volumes;

        let init_path = if config.init {
            let dir = self.cfg.root.join("bin");
            let p = tokio::task::spawn_blocking(move || engine_init::install(&dir))
                .await
                .map_err(|e| Error::Other(format!("installing engine-init: {e}")))?
                .map_err(|e| Error::io(format!("installing engine-init under {}", self.cfg.root.display()), e))?;
            Some(p)
        } else {
            None
        };
        // The container's network namespace: made here, configured by the
        // driver, joined by the runtime by path.
        let mut networks = std::collections::BTreeMap::new();
        let mut spec_config = None;
        if let Some((driver, net)) = network {
            let ns = self.netns_path(id);
            crate::netns::create(&ns).await?;
            undo.netns = Some(ns.clone());
            let mut req = AttachRequest::new(id, &ns);
            req.ports = config.ports.clone();
            req.aliases = config.network_aliases.clone();
            req.ipv4 = config.ipv4;
            req.dns = config.dns.clone();
            let ep = driver.attach(&net, req).await?;
            undo.endpoint = Some((driver, net));
            networks.insert(ep.network.clone(), ep);
            spec_config = Some(config.clone().network(NetworkMode::Path(ns)));
        }
        if let NetworkMode::Container(other) = &config.network {
            spec_config = Some(config.clone().network(NetworkMode::Path(self.shared_netns(other).await?)));
        }
        let spec_config = spec_config.as_ref().unwrap_or(config);
        let etc_files = self.write_etc_files(id, config, &networks, &bundle).await?;

        let mut oci = oci_spec::runtime::Spec::default();
        crate::image_config::apply(&mut oci, &image.config, &rootfs.path, spec_config)?;
        let oci = spec::finish(
            oci,
            &spec::SpecContext {
                id,
                name,
                config: spec_config,
                rootfs: &rootfs.path,
                volumes: &self.cfg.root.join("volumes"),
                volume_paths: &volume_paths,
                cgroup_parent: config.cgroup_parent.as_deref().unwrap_or(&self.cfg.cgroup_parent),
                init_path: init_path.as_deref(),
                etc_files: &etc_files,
            },
        )?;
        let mut args = oci.process().as_ref().and_then(|p| p.args().clone()).unwrap_or_default();
        if config.init {
            // The container's command, as inspect shows it: without the init.
            args.drain(..2.min(args.len()));
        }
        if args.is_empty() {
            return Err(Error::invalid(
                "command",
                format!("image {} has no Entrypoint or Cmd and none was given", config.image),
            ));
        }
        let log_path = match config.log.resolve()? {
            LogTarget::None => PathBuf::new(),
            LogTarget::File(FileLog { format: LogFormat::JsonFile, .. }) => bundle.join(format!("{id}-json.log")),
            // The CRI format goes where the caller (kubelet, through a CRI server) says.
            LogTarget::File(FileLog { format: LogFormat::Cri, .. }) => config.log.cri_path()?.to_path_buf(),
            _ => bundle.join("local-logs").join("container.log"),
        };
        let mut config = config.clone();
        config.name = Some(name.to_string());
        if config.stop_signal.is_none() {
            config.stop_signal = engine_image::spec::stop_signal(&image.config).ok().flatten();
        }
        let info = ContainerInfo::default()
            .id(id.to_string())
            .name(name.to_string())
            .config(config)
            .image_id(image.id.clone())
            .state(ContainerState::Created)
            .created(SystemTime::now())
            .args(args)
            .bundle(bundle.clone())
            .log_path(log_path)
            .runtime(runtime.name.clone())
            .networks(networks);
        let rec = Record {
            info: info.clone(),
            runtime: runtime.clone(),
            shim_dir: shim_dir.clone(),
            rootfs_key: rootfs.key.clone(),
            shim_gen: 0,
            stopped_by_user: false,
        };
        // The bundle's config.json and the record are made durable together.
        undo.record = true;
        let b = bundle.clone();
        let write = tokio::task::spawn_blocking(move || spec::write_bundle_config(&b, &oci));
        let (w, p) = tokio::join!(write, self.store.put(&rec));
        w.map_err(|e| Error::Other(format!("config.json writer: {e}")))??;
        p?;
        undo.shim_dir = Some(shim_dir);
        if let Some(dir) = info.log_path.parent().filter(|_| !info.log_path.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        }
        let shim = self.launch_shim(&rec).await?;
        let entry = Entry::new(rec, Some(shim));
        self.containers.write().unwrap().insert(id.to_string(), entry.clone());
        self.emit(&entry, EventKind::Created);
        tracing::info!(id, name, image = %info.config.image, runtime = %runtime.name, "container created");
        Ok(info)
    }

    // ----------------------------------------------------------------- start

    /// Start with the op lock held.
    pub(super) async fn start_locked(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<()> {
        let st = entry.state();
        match st {
            ContainerState::Running | ContainerState::Paused => return Ok(()),
            ContainerState::Removing => {
                return Err(Error::conflict("container", &entry.id, "is being removed"));
            }
            _ => {}
        }
        // A previous run's monitor may still be cleaning up its shim.
        wait_settled(entry, KILL_WAIT).await?;
        let shim = match entry.shim() {
            Some(s) if st == ContainerState::Created => s,
            _ => {
                let old = entry.shim.lock().unwrap().take();
                if let Some(old) = old {
                    // A shim exits after a successful delete.
                    if old.delete().await.is_err() {
                        let _ = old.shutdown().await;
                    }
                }
                let rec = {
                    let mut r = entry.rec.lock().unwrap();
                    let _ = std::fs::remove_dir_all(&r.shim_dir);
                    r.shim_gen += 1;
                    r.shim_dir = self.shim_dir(&r.info.id, r.shim_gen);
                    r.clone()
                };
                self.store.put(&rec).await?;
                let shim = self.launch_shim(&rec).await?;
                *entry.shim.lock().unwrap() = Some(shim.clone());
                shim
            }
        };
        let pid = shim.start().await?;
        {
            let mut r = entry.rec.lock().unwrap();
            r.info.state = ContainerState::Running;
            r.info.pid = Some(pid);
            r.info.started_at = Some(SystemTime::now());
            r.info.exit_code = None;
            r.info.oom_killed = false;
            r.stopped_by_user = false;
        }
        self.persist(entry).await?;
        self.spawn_monitor(entry.clone(), shim);
        self.emit(entry, EventKind::Started);
        Ok(())
    }
}

/// Undoes a failed create, newest step first.
#[derive(Default)]
struct Undo {
    inner: Option<Arc<Inner>>,
    id: String,
    name: String,
    bundle: Option<PathBuf>,
    volumes: Vec<PathBuf>,
    vols: crate::volumes::VolumeUndo,
    rootfs_key: Option<String>,
    record: bool,
    shim_dir: Option<PathBuf>,
    netns: Option<PathBuf>,
    endpoint: Option<(Arc<dyn NetworkDriver>, String)>,
    armed_off: bool,
}

impl Undo {
    fn disarm(&mut self) {
        self.armed_off = true;
    }
    async fn run(self) {
        let Some(inner) = self.inner.clone() else { return };
        if self.armed_off {
            return;
        }
        tracing::debug!(id = %self.id, "undoing a failed create");
        if let Some(d) = &self.shim_dir {
            let _ = tokio::fs::remove_dir_all(d).await;
        }
        if self.record {
            if let Err(e) = inner.store.delete(&self.id).await {
                tracing::warn!(id = %self.id, "removing record after failed create: {e}");
            }
        }
        if let Some(k) = &self.rootfs_key {
            if let Err(e) = inner.cfg.images.remove_rootfs(k).await {
                tracing::warn!(id = %self.id, "removing rootfs after failed create: {e}");
            }
        }
        if let Some((driver, net)) = &self.endpoint {
            if let Err(e) = detach(&**driver, net, &self.id).await {
                tracing::warn!(id = %self.id, "detaching after failed create: {e}");
            }
        }
        if let Some(ns) = self.netns.clone() {
            let _ = tokio::task::spawn_blocking(move || crate::netns::remove(&ns)).await;
        }
        self.vols.run(&self.id).await;
        if let Some(b) = &self.bundle {
            let _ = tokio::fs::remove_dir_all(b).await;
        }
        for v in &self.volumes {
            let _ = tokio::fs::remove_dir_all(v).await;
        }
        let mut names = inner.names.lock().unwrap();
        if names.get(&self.name).is_some_and(|id| *id == self.id) {
            names.remove(&self.name);
        }
    }
}

/// Refuse a create when the machine's available memory is under `reserve`
/// (bytes; 0: no check). A kernel without `MemAvailable` is not checked.
fn check_memory_reserve(reserve: u64) -> Result<()> {
    if reserve == 0 {
        return Ok(());
    }
    let Some(available) = mem_available() else { return Ok(()) };
    if available >= reserve {
        return Ok(());
    }
    Err(Error::unavailable(
        "machine memory",
        format!(
            "MemAvailable is {} MiB, under the engine's memory reserve of {} MiB: no container is created \
             until memory is freed (the reserve is the manager's `memory_reserve`, engined's --memory-reserve)",
            available >> 20,
            reserve >> 20
        ),
    ))
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().strip_suffix("kB")?.trim();
    kib.parse::<u64>().ok().map(|k| k << 10)
}
