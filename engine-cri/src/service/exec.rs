//! Exec, Attach and PortForward (checked here, served as one-time URLs on
//! the streaming server, `crate::streaming`) and ExecSync (run here).

use super::convert::sandbox_state;
use super::{invalid, status, CriServer, R};
use crate::pb;
use engine_core::{ExecConfig, StdStream};
use futures::StreamExt;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// kubelet's rules for a streaming request: some stream, and no stderr
/// with a terminal (a terminal has one output).
fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<(), Status> {
    if !stdin && !stdout && !stderr {
        return Err(invalid("stdin/stdout/stderr", "one of them must be asked for"));
    }
    if tty && stderr {
        return Err(invalid("stderr", "tty and stderr cannot both be true"));
    }
    Ok(())
}

impl CriServer {
    fn streaming(&self) -> Result<&crate::streaming::Streaming, Status> {
        self.streaming
            .as_deref()
            .ok_or_else(|| Status::unavailable("this CRI server has no streaming server (CriServer::with_streaming)"))
    }
}

pub(super) async fn exec(srv: &CriServer, req: Request<pb::ExecRequest>) -> R<pb::ExecResponse> {
    let req = req.into_inner();
    if req.cmd.is_empty() {
        return Err(invalid("cmd", "empty"));
    }
    check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
    let c = srv.running_container(&req.container_id).await?;
    let url = srv.streaming()?.url(crate::streaming::Session::Exec {
        container: c.id,
        cmd: req.cmd,
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    });
    Ok(Response::new(pb::ExecResponse { url }))
}

pub(super) async fn attach(srv: &CriServer, req: Request<pb::AttachRequest>) -> R<pb::AttachResponse> {
    let req = req.into_inner();
    check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
    let c = srv.running_container(&req.container_id).await?;
    if req.tty != c.config.tty {
        return Err(invalid("tty", format!("{}: the container was created with tty {}", req.tty, c.config.tty)));
    }
    if req.stdin && !c.config.open_stdin {
        return Err(invalid("stdin", "the container was created without stdin"));
    }
    let url = srv.streaming()?.url(crate::streaming::Session::Attach {
        container: c.id,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    });
    Ok(Response::new(pb::AttachResponse { url }))
}

pub(super) async fn port_forward(srv: &CriServer, req: Request<pb::PortForwardRequest>) -> R<pb::PortForwardResponse> {
    let req = req.into_inner();
    let ports = req
        .port
        .iter()
        .map(|&p| {
            u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| invalid("port", format!("{p} is not 1-65535")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sb = srv.sandbox(&req.pod_sandbox_id).await?;
    if sandbox_state(&sb) != pb::PodSandboxState::SandboxReady {
        return Err(Status::failed_precondition(format!("pod sandbox {} is not ready", sb.id)));
    }
    let url = srv.streaming()?.url(crate::streaming::Session::PortForward { sandbox: sb.id, ports });
    Ok(Response::new(pb::PortForwardResponse { url }))
}

pub(super) async fn exec_sync(srv: &CriServer, req: Request<pb::ExecSyncRequest>) -> R<pb::ExecSyncResponse> {
    let req = req.into_inner();
    if req.cmd.is_empty() {
        return Err(invalid("cmd", "empty"));
    }
    if req.timeout < 0 {
        return Err(invalid("timeout", "negative"));
    }
    let c = srv.running_container(&req.container_id).await?;
    let exec_id = srv.mgr.exec(&c.id, ExecConfig::default().cmd(req.cmd.clone())).await.map_err(status)?;
    let run = async {
        let att = srv
            .mgr
            .exec_attach(&exec_id, engine_core::AttachOptions::default().stdin(false).stdout(true).stderr(true))
            .await
            .map_err(status)?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut output = att.output;
        while let Some(o) = output.next().await {
            let o = o.map_err(status)?;
            match o.stream {
                StdStream::Stderr => stderr.extend_from_slice(&o.data),
                _ => stdout.extend_from_slice(&o.data),
            }
        }
        let st = srv.mgr.exec_wait(&exec_id).await.map_err(status)?;
        Ok::<_, Status>(pb::ExecSyncResponse { stdout, stderr, exit_code: st.code })
    };
    let out = if req.timeout > 0 {
        tokio::time::timeout(Duration::from_secs(req.timeout as u64), run)
            .await
            .map_err(|_| Status::deadline_exceeded(format!("exec in {} timed out after {}s", c.id, req.timeout)))??
    } else {
        run.await?
    };
    Ok(Response::new(out))
}
