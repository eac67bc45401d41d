//! Processes in a running container: exec, wait, top.

use super::*;

impl Inner {
    // ------------------------------------------------------------------ exec

    pub(super) async fn exec(self: &Arc<Self>, key: &str, config: ExecConfig) -> Result<String> {
        if config.cmd.is_empty() {
            return Err(Error::invalid("exec command", "must not be empty"));
        }
        let entry = self.lookup(key)?;
        let shim = entry.running_shim()?;
        let rec = entry.rec.lock().unwrap().clone();
        let process = crate::image_config::exec_process(&rec.info.bundle, &config)?;
        let exec_id = engine_core::random_hex64();
        let pid = shim
            .exec(ExecRequest::default().exec_id(exec_id.clone()).process(process).open_stdin(config.open_stdin))
            .await?;
        let x = Arc::new(ExecEntry {
            info: Mutex::new(
                ExecInfo::default()
                    .id(exec_id.clone())
                    .container_id(entry.id.clone())
                    .config(config)
                    .pid(Some(pid))
                    .running(true),
            ),
            shim: shim.clone(),
            done: watch::Sender::new(None),
        });
        self.execs.lock().unwrap().insert(exec_id.clone(), x.clone());
        self.emit(&entry, EventKind::ExecStarted { exec_id: exec_id.clone() });
        let inner = self.clone();
        let pref = ProcessRef::Exec(exec_id.clone());
        tokio::spawn(async move {
            let st = shim.wait(&pref).await.unwrap_or_else(|e| {
                tracing::debug!("exec wait: {e}");
                ExitStatus::now(-1)
            });
            {
                let mut i = x.info.lock().unwrap();
                i.running = false;
                i.exit_code = Some(st.code);
            }
            x.done.send_replace(Some(st));
            let exec_id = x.info.lock().unwrap().id.clone();
            inner.emit(&entry, EventKind::ExecExited { exec_id, code: st.code });
        });
        Ok(exec_id)
    }

    pub(super) fn exec_entry(&self, exec_id: &str) -> Result<Arc<ExecEntry>> {
        self.execs.lock().unwrap().get(exec_id).cloned().ok_or_else(|| Error::not_found("exec", exec_id))
    }

    // ------------------------------------------------------------------ wait

    pub(super) async fn wait(&self, key: &str, cond: WaitCondition) -> Result<ExitStatus> {
        let entry = self.lookup(key)?;
        let mut rx = entry.obs.subscribe();
        let snap = rx.borrow_and_update().clone();
        let last = |o: &Observed, e: &Entry| {
            o.last_exit.unwrap_or_else(|| {
                let r = e.rec.lock().unwrap();
                ExitStatus { code: r.info.exit_code.unwrap_or(0), at: r.info.finished_at.unwrap_or(r.info.created) }
            })
        };
        match cond {
            WaitCondition::NotRunning | WaitCondition::NextExit => {
                // not-running returns at once for a container that isn't running;
                // next-exit always waits for an exit after this call.
                if cond == WaitCondition::NotRunning
                    && !matches!(entry.state(), ContainerState::Running | ContainerState::Paused)
                {
                    return Ok(last(&snap, &entry));
                }
                let o = rx
                    .wait_for(|o| o.exits > snap.exits || o.removed)
                    .await
                    .map_err(|_| Error::not_found("container", key))?
                    .clone();
                Ok(last(&o, &entry))
            }
            WaitCondition::Removed => {
                let o = rx.wait_for(|o| o.removed).await.map_err(|_| Error::not_found("container", key))?.clone();
                Ok(last(&o, &entry))
            }
        }
    }

    pub(super) async fn top(&self, key: &str) -> Result<Vec<Pid>> {
        let entry = self.lookup(key)?;
        let (pid, id) = {
            let r = entry.rec.lock().unwrap();
            (r.info.pid, r.info.id.clone())
        };
        let Some(pid) = pid.filter(|_| matches!(entry.state(), ContainerState::Running | ContainerState::Paused))
        else {
            return Err(Error::conflict("container", &id, "is not running"));
        };
        tokio::task::spawn_blocking(move || crate::top::pids(&id, pid))
            .await
            .map_err(|e| Error::Other(format!("top: {e}")))?
    }
}
