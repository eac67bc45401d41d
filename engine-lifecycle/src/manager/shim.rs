//! Launching a container's shim and its log plugin.

use super::*;

impl Inner {
    /// The state dir of a container's `gen`-th shim: `<root>/shims/<id16>-<gen>`,
    /// or, when the root is too long for a unix socket path in it,
    /// `/run/engine-lifecycle/<hash of root>/<id16>-<gen>`.
    pub(super) fn shim_dir(&self, id: &str, gen: u32) -> PathBuf {
        let leaf = format!("{}-{gen}", &id[..id.len().min(16)]);
        let dir = self.cfg.root.join("shims").join(&leaf);
        if dir.join("shim.sock").as_os_str().len() < 104 {
            return dir;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.cfg.root.hash(&mut h);
        PathBuf::from("/run/engine-lifecycle").join(format!("{:016x}", h.finish())).join(leaf)
    }

    fn launch_request(&self, rec: &Record) -> Result<LaunchRequest> {
        Ok(LaunchRequest::new(
            ContainerId::new(rec.info.id.clone())?,
            rec.info.bundle.clone(),
            rec.shim_dir.clone(),
            rec.runtime.clone(),
        )
        .log(match rec.info.config.log.resolve()? {
            LogTarget::None => None,
            LogTarget::File(f) => Some(file_log(&rec.info.log_path, &f, None)),
            LogTarget::Plugin { cache, .. } => {
                Some(file_log(&rec.info.log_path, &cache, Some(log_fifo(&rec.info.bundle))))
            }
        })
        .open_stdin(rec.info.config.open_stdin)
        .owner_pid(rec.info.config.owner_pid))
    }

    /// Tell a container's log plugin (if its driver is one) to start reading
    /// a fresh FIFO, before a shim is launched to write into it.
    async fn start_log_plugin(&self, rec: &Record) -> Result<()> {
        let LogTarget::Plugin { name, opts, .. } = rec.info.config.log.resolve()? else { return Ok(()) };
        let plugins = self.log_plugins(&name)?;
        let fifo = log_fifo(&rec.info.bundle);
        let f = fifo.clone();
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_file(&f);
            nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o600))
        })
        .await
        .map_err(|e| Error::Other(format!("making the log FIFO: {e}")))?
        .map_err(|e| Error::io(format!("making the log FIFO {}", fifo.display()), e.into()))?;
        let mut info = engine_core::logs::LogStart::new(&rec.info.id, &rec.info.name);
        info.image = rec.info.config.image.clone();
        info.opts = opts;
        info.labels = rec.info.config.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Err(e) = plugins.start(&name, &fifo, &info).await {
            let _ = std::fs::remove_file(&fifo);
            return Err(e);
        }
        Ok(())
    }

    /// Launch a shim for `rec`, its log plugin (if any) told first.
    pub(super) async fn launch_shim(&self, rec: &Record) -> Result<Arc<dyn Shim>> {
        self.start_log_plugin(rec).await?;
        let launched = match self.launch_request(rec) {
            Ok(req) => self.cfg.shims.launch(req).await,
            Err(e) => Err(e),
        };
        match launched {
            Ok(s) => Ok(Arc::from(s)),
            Err(e) => {
                self.stop_log_plugin(rec).await;
                Err(e)
            }
        }
    }

    /// The container's shim is done: its log plugin (if any) lets go of the FIFO.
    pub(super) async fn stop_log_plugin(&self, rec: &Record) {
        let Ok(LogTarget::Plugin { name, .. }) = rec.info.config.log.resolve() else { return };
        let fifo = log_fifo(&rec.info.bundle);
        if !fifo.exists() {
            return;
        }
        if let Ok(p) = self.log_plugins(&name) {
            if let Err(e) = p.stop(&name, &fifo).await {
                tracing::warn!(id = %rec.info.id, "stopping log plugin {name}: {e}");
            }
        }
        let _ = std::fs::remove_file(&fifo);
    }

    pub(super) fn log_plugins(&self, name: &str) -> Result<Arc<dyn engine_core::LogPlugins>> {
        self.cfg.log_plugins.clone().ok_or_else(|| no_log_driver(name))
    }
}
