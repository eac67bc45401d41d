//! `/containers/{id}/exec` and `/exec/{id}/...`.

use super::{ExecEntry, State};
use crate::convert;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use engine_api::models::*;
use engine_core::{AttachOptions, ConsoleSize, ContainerState, Error, ExecConfig, Result};
use http::{Request, StatusCode};
use std::time::{Duration, Instant};

fn prune(execs: &mut std::collections::HashMap<String, ExecEntry>) {
    if execs.len() > 1024 {
        let cutoff = Instant::now() - Duration::from_secs(600);
        execs.retain(|_, e| e.created > cutoff);
    }
}

pub(crate) async fn create(st: &State, id: &str, body: Incoming) -> Result<Resp> {
    let data = match h::read_limited(body, st.config.max_json_body).await {
        Ok(d) => d,
        Err(e) => return Ok(e.response()),
    };
    let b: ExecCreateBody = convert::parse_body(&data, "exec config")?;
    let cmd = b.cmd.clone().map(|c| c.0).unwrap_or_default();
    if cmd.is_empty() {
        return Err(Error::invalid("field Cmd", "No exec command specified"));
    }
    for e in b.env.iter().flatten() {
        if e.is_empty() || e.starts_with('=') {
            return Err(Error::invalid("field Env", format!("invalid environment variable: {e:?}")));
        }
    }
    let info = st.manager.inspect(id).await?;
    if !matches!(info.state, ContainerState::Running) {
        let why = if info.state == ContainerState::Paused {
            "is paused, unpause the container before exec"
        } else {
            "is not running"
        };
        return Err(Error::conflict("container", id, format!("Container {} {why}", info.id)));
    }
    let config = ExecConfig::default()
        .cmd(cmd)
        .env(b.env.clone().unwrap_or_default())
        .user(b.user.clone().filter(|u| !u.is_empty()))
        .working_dir(b.working_dir.clone().filter(|w| !w.is_empty()))
        .tty(b.tty.unwrap_or(false))
        .open_stdin(b.attach_stdin.unwrap_or(false))
        .privileged(b.privileged.unwrap_or(false));
    super::hijack::DetachKeys::parse(b.detach_keys.as_deref().unwrap_or(""))?;
    let exec_id = engine_core::random_hex64();
    let entry = ExecEntry {
        container_id: info.id.clone(),
        config,
        attach_stdout: b.attach_stdout.unwrap_or(true),
        attach_stderr: b.attach_stderr.unwrap_or(true),
        detach_keys: b.detach_keys.clone().unwrap_or_default(),
        started: None,
        created: Instant::now(),
    };
    {
        let mut execs = st.execs.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut execs);
        execs.insert(exec_id.clone(), entry);
    }
    Ok(h::json(StatusCode::CREATED, &IdResponse { id: exec_id }))
}

fn entry(st: &State, id: &str) -> Result<ExecEntry> {
    st.execs.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned().ok_or_else(|| Error::not_found("exec", id))
}

pub(crate) async fn start(st: &State, id: &str, mut req: Request<Incoming>) -> Result<Resp> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let wants_upgrade = req.headers().get(http::header::UPGRADE).is_some();
    let data = match h::read_limited(req.into_body(), st.config.max_json_body).await {
        Ok(d) => d,
        Err(e) => return Ok(e.response()),
    };
    let b: ExecStartBody = if data.iter().all(|c| c.is_ascii_whitespace()) {
        ExecStartBody::default()
    } else {
        convert::parse_body(&data, "exec start")?
    };
    let e = entry(st, id)?;
    if e.started.is_some() {
        return Err(Error::conflict("exec", id, format!("Exec {id} has already been started")));
    }
    let info = st.manager.inspect(&e.container_id).await?;
    if info.state != ContainerState::Running {
        return Err(Error::conflict("container", &e.container_id, format!("Container {} is not running", info.id)));
    }
    let detach = b.detach.unwrap_or(false);
    if !detach && !wants_upgrade {
        return Err(Error::invalid("exec start", "the request must ask for a connection upgrade (Upgrade: tcp)"));
    }
    let mut config = e.config.clone();
    if let Some(t) = b.tty {
        config.tty = config.tty || t;
    }
    if detach {
        config.open_stdin = false;
    }
    let tty = config.tty;
    let opts = AttachOptions::default().stdin(config.open_stdin).stdout(e.attach_stdout).stderr(e.attach_stderr);
    let real = st.manager.exec(&e.container_id, config).await?;
    if let Some(x) = st.execs.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
        x.started = Some(real.clone());
    }
    if let Some([hgt, wid]) = b.console_size.as_deref().and_then(|c| <[u16; 2]>::try_from(c).ok()) {
        if tty && hgt > 0 && wid > 0 {
            let _ = st.manager.exec_resize(&real, ConsoleSize { height: hgt, width: wid }).await;
        }
    }
    if detach {
        return Ok(h::status(StatusCode::OK));
    }
    let attach = st.manager.exec_attach(&real, opts).await?;
    let manager = st.manager.clone();
    let real2 = real.clone();
    let finish: super::hijack::Finish = Box::pin(async move {
        // The docker CLI reads the exit code right after the stream ends.
        let _ = tokio::time::timeout(Duration::from_secs(30), manager.exec_wait(&real2)).await;
    });
    let keys = super::hijack::DetachKeys::parse(&e.detach_keys)?;
    super::hijack::spawn_pump(on_upgrade, attach, tty, keys, None, Some(finish), format!("exec {id}"));
    Ok(super::hijack::upgraded_response())
}

pub(crate) async fn inspect(st: &State, id: &str) -> Result<Resp> {
    let e = entry(st, id)?;
    let (running, exit_code, pid) = match &e.started {
        None => (false, None, 0),
        Some(real) => {
            let i = st.manager.exec_inspect(real).await?;
            (i.running, if i.running { None } else { i.exit_code.map(|c| c as i64) }, i.pid.unwrap_or(0) as i64)
        }
    };
    let v = ExecInspect {
        id: id.to_string(),
        running,
        exit_code,
        process_config: ExecProcessConfig {
            tty: e.config.tty,
            entrypoint: e.config.cmd.first().cloned().unwrap_or_default(),
            arguments: e.config.cmd.iter().skip(1).cloned().collect(),
            privileged: e.config.privileged,
            user: e.config.user.clone().unwrap_or_default(),
        },
        open_stdin: e.config.open_stdin,
        open_stderr: e.attach_stderr,
        open_stdout: e.attach_stdout,
        can_remove: false,
        container_id: e.container_id.clone(),
        detach_keys: e.detach_keys.clone(),
        pid,
    };
    Ok(h::json(StatusCode::OK, &v))
}

pub(crate) async fn resize(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let height = q.int("h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let width = q.int("w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let e = entry(st, id)?;
    let Some(real) = e.started else {
        return Err(Error::conflict("exec", id, format!("Exec {id} is not running")));
    };
    st.manager.exec_resize(&real, ConsoleSize { height, width }).await?;
    Ok(h::status(StatusCode::OK))
}
