//! Recovery when a manager starts: records, shims still running, exits
//! that happened meanwhile, interrupted removals, orphaned files.

use super::*;

impl Inner {
    // -------------------------------------------------------------- recovery

    pub(super) async fn recover(self: &Arc<Self>) -> Result<()> {
        let store = self.store.clone();
        let (records, corrupt) = tokio::task::spawn_blocking(move || store.load_all())
            .await
            .map_err(|e| Error::Other(format!("loading records: {e}")))??;
        self.corrupt.lock().unwrap().extend(corrupt);
        let mut restarts = Vec::new();
        for rec in records {
            let id = rec.info.id.clone();
            if rec.info.state == ContainerState::Removing {
                if let Err(e) = self.finish_removal(&rec).await {
                    tracing::warn!(id, "finishing an interrupted removal: {e}");
                }
                continue;
            }
            if owner_gone(rec.info.config.owner_pid) {
                // Its owner died, and with it the container (its shim killed and
                // deleted it): nothing of it stays, not even the record.
                self.runtime_delete(&rec).await;
                match self.finish_removal(&rec).await {
                    Ok(()) => tracing::info!(id, "removed a container whose owner died"),
                    Err(e) => tracing::warn!(id, "removing a container whose owner died: {e}"),
                }
                continue;
            }
            self.names.lock().unwrap().insert(rec.info.name.clone(), id.clone());
            crate::volumes::reacquire(&self.cfg.volumes, &rec.info.config, &id).await;
            let cid = ContainerId::new(id.clone())?;
            let state = rec.info.state;
            let shim = if rec.shim_dir.exists() {
                match self.cfg.shims.connect(&cid, &rec.shim_dir).await {
                    Ok(s) => Some(Arc::<dyn Shim>::from(s)),
                    Err(e) => {
                        tracing::info!(id, "shim not reachable: {e}");
                        None
                    }
                }
            } else {
                None
            };
            let entry = Entry::new(rec.clone(), shim.clone());
            self.containers.write().unwrap().insert(id.clone(), entry.clone());
            match (state, shim) {
                (ContainerState::Running | ContainerState::Paused | ContainerState::Restarting, Some(shim)) => {
                    match shim.state(&ProcessRef::Init).await {
                        Ok(ps) if ps.exit.is_some() => {
                            self.on_exit(&entry, &shim, ps.exit).await;
                        }
                        Ok(ps) => {
                            {
                                let mut r = entry.rec.lock().unwrap();
                                r.info.pid = Some(ps.pid);
                                r.info.state = if ps.status == engine_core::ContainerStatus::Paused {
                                    ContainerState::Paused
                                } else {
                                    ContainerState::Running
                                };
                            }
                            let _ = self.persist(&entry).await;
                            self.spawn_monitor(entry.clone(), shim);
                            tracing::info!(id, pid = ps.pid, "reconnected to a running container");
                        }
                        Err(e) => {
                            tracing::warn!(id, "shim state: {e}");
                            self.spawn_monitor(entry.clone(), shim);
                        }
                    }
                }
                (ContainerState::Running | ContainerState::Paused | ContainerState::Restarting, None) => {
                    // The shim is gone: its recorded exit is the truth.
                    let exit = self.cfg.shims.recorded_exit(&rec.shim_dir).await.ok().flatten();
                    self.runtime_delete(&rec).await;
                    let _ = std::fs::remove_dir_all(&rec.shim_dir);
                    let dummy = self.detached_exit(&entry, exit).await;
                    tracing::info!(id, code = dummy, "container exited while the manager was away");
                }
                (ContainerState::Created, Some(_)) => {}
                (ContainerState::Created, None) => {
                    // Its runtime container went with the shim; start launches a new one.
                    self.runtime_delete(&rec).await;
                }
                (_, Some(shim)) => {
                    // An exited container whose shim was not cleaned up.
                    entry.shim.lock().unwrap().take();
                    if shim.delete().await.is_err() {
                        let _ = shim.shutdown().await;
                    }
                }
                (_, None) => {}
            }
            let r = entry.rec.lock().unwrap().clone();
            if r.info.state == ContainerState::Exited || r.info.state == ContainerState::Dead {
                let wanted = match r.info.config.restart {
                    RestartPolicy::Always => true,
                    RestartPolicy::UnlessStopped => !r.stopped_by_user,
                    _ => false,
                };
                if wanted {
                    restarts.push(entry.clone());
                }
            }
        }
        self.sweep_orphans().await;
        for entry in restarts {
            let inner = self.clone();
            tokio::spawn(async move {
                let _op = entry.op.lock().await;
                if let Err(e) = inner.start_locked(&entry).await {
                    tracing::warn!(id = %entry.id, "restart on recovery failed: {e}");
                }
            });
        }
        Ok(())
    }

    /// Remove what a crash in the middle of a create or removal left without
    /// a record: bundles (and their rootfs snapshots) and old shim state dirs.
    pub(super) async fn sweep_orphans(&self) {
        let (ids, shim_dirs): (std::collections::HashSet<String>, std::collections::HashSet<PathBuf>) = {
            let map = self.containers.read().unwrap();
            (map.keys().cloned().collect(), map.values().map(|e| e.rec.lock().unwrap().shim_dir.clone()).collect())
        };
        if let Ok(rd) = std::fs::read_dir(self.cfg.root.join("containers")) {
            for d in rd.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                if ids.contains(&name) {
                    continue;
                }
                tracing::info!(id = %name, "removing the leftovers of an interrupted create or removal");
                if let Err(e) = self.cfg.images.remove_rootfs(&name).await {
                    if !e.is_not_found() {
                        tracing::warn!(id = %name, "removing leftover rootfs: {e}");
                        continue;
                    }
                }
                let _ = tokio::fs::remove_dir_all(d.path()).await;
            }
        }
        // A namespace file without a record: a create cut short after the
        // attach. Detach it wherever it is attached, then remove the file.
        if let Ok(rd) = std::fs::read_dir(self.cfg.root.join("netns")) {
            let nets = match &self.cfg.network {
                Some(d) => d.list_networks().await.unwrap_or_default(),
                None => Vec::new(),
            };
            for d in rd.flatten() {
                let id = d.file_name().to_string_lossy().into_owned();
                if ids.contains(&id) {
                    continue;
                }
                tracing::info!(id = %id, "releasing the network of an interrupted create");
                if let Some(driver) = &self.cfg.network {
                    for n in nets.iter().filter(|n| n.endpoints.contains_key(&id)) {
                        if let Err(e) = detach(&**driver, &n.id, &id).await {
                            tracing::warn!(id = %id, network = %n.name, "detaching a leftover endpoint: {e}");
                        }
                    }
                }
                let p = d.path();
                let _ = tokio::task::spawn_blocking(move || crate::netns::remove(&p)).await;
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.cfg.root.join("shims")) {
            for d in rd.flatten() {
                let p = d.path();
                // A live shim keeps its socket; leave those alone.
                if !shim_dirs.contains(&p) && !p.join("shim.sock").exists() {
                    let _ = tokio::fs::remove_dir_all(&p).await;
                }
            }
        }
    }
}
