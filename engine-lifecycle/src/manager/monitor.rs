//! Exits: the monitor task of a running container, restart policies,
//! auto-remove, and exits learned without a shim.

use super::*;

impl Inner {
    pub(super) fn spawn_monitor(self: &Arc<Self>, entry: Arc<Entry>, shim: Arc<dyn Shim>) {
        let inner = self.clone();
        tokio::spawn(async move {
            let status = match shim.wait(&ProcessRef::Init).await {
                Ok(s) => Some(s),
                Err(e) => {
                    let dir = entry.rec.lock().unwrap().shim_dir.clone();
                    tracing::warn!(id = %entry.id, "lost the shim while waiting: {e}");
                    inner.cfg.shims.recorded_exit(&dir).await.ok().flatten()
                }
            };
            inner.on_exit(&entry, &shim, status).await;
        });
    }

    /// Record an exit, clean up its shim, apply the restart policy.
    pub(super) async fn on_exit(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        shim: &Arc<dyn Shim>,
        status: Option<ExitStatus>,
    ) {
        let current = entry.shim().is_some_and(|s| Arc::ptr_eq(&s, shim));
        if !current {
            return;
        }
        let oom = if entry.rec.lock().unwrap().info.config.resources.memory.is_some() {
            shim.stats().await.ok().and_then(|s| s.oom_kills).is_some_and(|n| n > 0)
        } else {
            false
        };
        let code = status.map(|s| s.code);
        {
            let mut r = entry.rec.lock().unwrap();
            r.info.state = if status.is_some() { ContainerState::Exited } else { ContainerState::Dead };
            r.info.exit_code = code.or(Some(-1));
            r.info.finished_at = Some(status.map(|s| s.at).unwrap_or_else(SystemTime::now));
            r.info.pid = None;
            r.info.oom_killed = oom;
        }
        if let Err(e) = self.persist(entry).await {
            tracing::error!(id = %entry.id, "recording exit: {e}");
        }
        let exit = status.unwrap_or_else(|| ExitStatus::now(-1));
        entry.obs.send_modify(|o| {
            o.exits += 1;
            o.last_exit = Some(exit);
        });
        if oom {
            self.emit(entry, EventKind::Oom);
        }
        self.emit(entry, EventKind::Exited { code: exit.code });
        tracing::info!(id = %entry.id, code = exit.code, "container exited");
        // The shim's work is done: runtime delete, shim exits.
        let taken = {
            let mut s = entry.shim.lock().unwrap();
            if s.as_ref().is_some_and(|x| Arc::ptr_eq(x, shim)) {
                s.take()
            } else {
                None
            }
        };
        if let Some(s) = taken {
            // A shim exits after a successful delete.
            if let Err(e) = s.delete().await {
                tracing::debug!(id = %entry.id, "shim delete: {e}");
                let rec = entry.rec.lock().unwrap().clone();
                self.runtime_delete(&rec).await;
                let _ = s.shutdown().await;
            }
            let rec = entry.rec.lock().unwrap().clone();
            self.stop_log_plugin(&rec).await;
        }
        entry.obs.send_modify(|o| o.settled += 1);
        self.after_exit(entry, exit.code);
    }

    /// Auto-remove or restart per policy.
    fn after_exit(self: &Arc<Self>, entry: &Arc<Entry>, code: i32) {
        let (policy, auto_remove, stopped, count, state, owner) = {
            let r = entry.rec.lock().unwrap();
            let c = &r.info.config;
            (c.restart, c.auto_remove, r.stopped_by_user, r.info.restart_count, r.info.state, c.owner_pid)
        };
        if state == ContainerState::Removing {
            return;
        }
        // A container whose owner died goes with it (its shim already killed it).
        let owner_gone = owner_gone(owner);
        let auto_remove = auto_remove || owner_gone;
        let restart = !stopped
            && !owner_gone
            && match policy {
                RestartPolicy::No => false,
                RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
                RestartPolicy::OnFailure { max_retries } => code != 0 && (max_retries == 0 || count < max_retries),
            };
        let inner = self.clone();
        let entry = entry.clone();
        if restart {
            let delay = self.cfg.restart_delay * 2u32.pow(count.min(6));
            tokio::spawn(async move {
                entry.rec.lock().unwrap().info.state = ContainerState::Restarting;
                tokio::time::sleep(delay).await;
                let _op = entry.op.lock().await;
                let go = {
                    let r = entry.rec.lock().unwrap();
                    r.info.state == ContainerState::Restarting && !r.stopped_by_user
                };
                if !go || !inner.containers.read().unwrap().contains_key(&entry.id) {
                    return;
                }
                entry.rec.lock().unwrap().info.restart_count += 1;
                match inner.start_locked(&entry).await {
                    Ok(()) => inner.emit(&entry, EventKind::Restarted),
                    Err(e) => {
                        tracing::warn!(id = %entry.id, "restart failed: {e}");
                        entry.rec.lock().unwrap().info.state = ContainerState::Exited;
                        let _ = inner.persist(&entry).await;
                    }
                }
            });
        } else if auto_remove {
            tokio::spawn(async move {
                if let Err(e) = inner.remove(&entry.id, true).await {
                    if !e.is_not_found() {
                        tracing::warn!(id = %entry.id, "auto-remove failed: {e}");
                    }
                }
            });
        }
    }

    /// Delete the container in its runtime directly (when its shim is gone).
    pub(super) async fn runtime_delete(&self, rec: &Record) {
        let rt = &rec.runtime;
        let mut cmd = tokio::process::Command::new(&rt.path);
        cmd.args(&rt.args);
        if let Some(root) = &rt.root {
            cmd.arg("--root").arg(root);
        }
        cmd.args(["delete", "--force", &rec.info.id]);
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        match cmd.status().await {
            Ok(s) if !s.success() => tracing::debug!(id = %rec.info.id, "{} delete --force: {s}", rt.name),
            Err(e) => tracing::debug!(id = %rec.info.id, "running {} delete: {e}", rt.name),
            _ => {}
        }
    }

    /// Record an exit learned without a shim (recovery); returns the code.
    pub(super) async fn detached_exit(self: &Arc<Self>, entry: &Arc<Entry>, exit: Option<ExitStatus>) -> i32 {
        let code = exit.map(|e| e.code).unwrap_or(-1);
        {
            let mut r = entry.rec.lock().unwrap();
            r.info.state = if exit.is_some() { ContainerState::Exited } else { ContainerState::Dead };
            r.info.exit_code = Some(code);
            r.info.finished_at = Some(exit.map(|e| e.at).unwrap_or_else(SystemTime::now));
            r.info.pid = None;
        }
        let _ = self.persist(entry).await;
        // It ended while no manager ran: its log plugin hears of it now.
        let rec = entry.rec.lock().unwrap().clone();
        self.stop_log_plugin(&rec).await;
        let st = exit.unwrap_or_else(|| ExitStatus::now(code));
        entry.obs.send_modify(|o| {
            o.exits += 1;
            o.settled += 1;
            o.last_exit = Some(st);
        });
        self.emit(entry, EventKind::Exited { code });
        let auto_remove = entry.rec.lock().unwrap().info.config.auto_remove;
        if auto_remove {
            self.after_exit(entry, code);
        }
        code
    }
}
