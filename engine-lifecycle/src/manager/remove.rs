//! Stop and remove, and the removal of a container's files.

use super::*;

impl Inner {
    // ------------------------------------------------------------------ stop

    pub(super) async fn stop(self: &Arc<Self>, key: &str, grace: Option<Duration>) -> Result<()> {
        let entry = self.lookup(key)?;
        let _op = entry.op.lock().await;
        let settled0 = entry.obs.borrow().settled;
        let (state, sig, timeout) = {
            let mut r = entry.rec.lock().unwrap();
            r.stopped_by_user = true;
            let c = &r.info.config;
            (
                r.info.state,
                c.stop_signal.unwrap_or(Signal::TERM),
                grace.or(c.stop_timeout).unwrap_or(Duration::from_secs(10)),
            )
        };
        if state == ContainerState::Restarting {
            let mut r = entry.rec.lock().unwrap();
            r.info.state = ContainerState::Exited;
        }
        self.persist(&entry).await?;
        if !matches!(state, ContainerState::Running | ContainerState::Paused) {
            return Ok(());
        }
        let Some(shim) = entry.shim() else { return Ok(()) };
        if state == ContainerState::Paused {
            let _ = shim.resume().await;
        }
        if !timeout.is_zero() {
            if let Err(e) = shim.kill(&ProcessRef::Init, sig, false).await {
                tracing::debug!(id = %entry.id, "stop signal: {e}");
            }
            if wait_settled_after(&entry, settled0, timeout).await.is_ok() {
                return Ok(());
            }
        }
        tracing::info!(id = %entry.id, "no exit after {timeout:?}; sending SIGKILL");
        let _ = shim.kill(&ProcessRef::Init, Signal::KILL, true).await;
        wait_settled_after(&entry, settled0, KILL_WAIT).await
    }

    // ---------------------------------------------------------------- remove

    pub(super) async fn remove(self: &Arc<Self>, key: &str, force: bool) -> Result<()> {
        if self.corrupt.lock().unwrap().contains_key(key) && !self.containers.read().unwrap().contains_key(key) {
            // Nothing of it can be trusted but its id: drop the record only.
            self.store.delete(key).await?;
            self.corrupt.lock().unwrap().remove(key);
            tracing::warn!(id = key, "removed the corrupt record of container {key}");
            return Ok(());
        }
        let entry = self.lookup(key)?;
        let _op = entry.op.lock().await;
        if !self.containers.read().unwrap().contains_key(&entry.id) {
            return Err(Error::not_found("container", key));
        }
        let settled0 = entry.obs.borrow().settled;
        let state = entry.state();
        if is_running(state) {
            if !force {
                return Err(Error::conflict(
                    "container",
                    &entry.id,
                    format!("is {state:?}; stop it first or remove with force"),
                ));
            }
            entry.rec.lock().unwrap().stopped_by_user = true;
            if state == ContainerState::Restarting {
                entry.rec.lock().unwrap().info.state = ContainerState::Exited;
            } else if let Some(shim) = entry.shim() {
                let _ = shim.kill(&ProcessRef::Init, Signal::KILL, true).await;
                if state == ContainerState::Paused {
                    let _ = shim.resume().await;
                }
                wait_settled_after(&entry, settled0, KILL_WAIT).await?;
            }
        }
        wait_settled(&entry, KILL_WAIT).await?;
        let before = std::mem::replace(&mut entry.rec.lock().unwrap().info.state, ContainerState::Removing);
        // A created (never started) container still has its shim.
        let shim = entry.shim.lock().unwrap().take();
        if let Some(shim) = shim {
            let _ = shim.kill(&ProcessRef::Init, Signal::KILL, true).await;
            if shim.delete().await.is_err() {
                let rec = entry.rec.lock().unwrap().clone();
                self.runtime_delete(&rec).await;
                let _ = shim.shutdown().await;
            }
            let rec = entry.rec.lock().unwrap().clone();
            self.stop_log_plugin(&rec).await;
        }
        let rec = entry.rec.lock().unwrap().clone();
        // The record goes first, durably: a crash after it leaves only files,
        // which the next manager on this root sweeps (`sweep_orphans`).
        if let Err(e) = self.store.delete(&rec.info.id).await {
            entry.rec.lock().unwrap().info.state = before;
            return Err(e);
        }
        if let Err(e) = self.remove_files(&rec).await {
            // Keep the container listed (dead) so that a later remove retries.
            entry.rec.lock().unwrap().info.state = ContainerState::Dead;
            let _ = self.persist(&entry).await;
            return Err(e);
        }
        self.containers.write().unwrap().remove(&entry.id);
        self.names.lock().unwrap().retain(|_, id| *id != entry.id);
        self.execs.lock().unwrap().retain(|_, x| x.info.lock().unwrap().container_id != entry.id);
        entry.obs.send_modify(|o| o.removed = true);
        self.emit(&entry, EventKind::Removed);
        tracing::info!(id = %entry.id, "container removed");
        Ok(())
    }

    /// Remove what a container has on disk, then its record (a removal that
    /// a crash interrupted, found by recovery).
    pub(super) async fn finish_removal(&self, rec: &Record) -> Result<()> {
        self.remove_files(rec).await?;
        self.store.delete(&rec.info.id).await
    }

    /// Remove a container's files: rootfs (unmounted first), then bundle; the
    /// shim's state dir meanwhile.
    async fn remove_files(&self, rec: &Record) -> Result<()> {
        let rm = |dir: PathBuf| async move {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
            }
        };
        self.release_network(&rec.info).await?;
        crate::volumes::release(&self.cfg.volumes, &rec.info.config, &rec.info.id).await?;
        let bundle = async {
            if let Err(e) = self.cfg.images.remove_rootfs(&rec.rootfs_key).await {
                if !e.is_not_found() {
                    return Err(e);
                }
            }
            rm(rec.info.bundle.clone()).await
        };
        let (b, s) = tokio::join!(bundle, rm(rec.shim_dir.clone()));
        b.and(s)
    }
}
