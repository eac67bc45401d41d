//! The gRPC face of a running shim.

use super::Core;
use crate::proto::{self, attach_in, event_msg, shim_server::Shim as ShimRpc};
use crate::wire::{self, exit_to_msg, process_ref, to_status};
use engine_core::{AttachOptions, ConsoleSize, Error, Signal, StdStream};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tonic::{Request, Response, Status, Streaming};

pub(crate) struct ShimService {
    core: Arc<Core>,
}

impl ShimService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        ShimService { core }
    }
}

type RpcResult<T> = std::result::Result<Response<T>, Status>;

fn st(e: Error) -> Status {
    to_status(&e)
}

fn stream_num(s: StdStream) -> i32 {
    if s == StdStream::Stderr {
        2
    } else {
        1
    }
}

#[tonic::async_trait]
impl ShimRpc for ShimService {
    async fn info(&self, _: Request<proto::Empty>) -> RpcResult<proto::InfoReply> {
        Ok(Response::new(proto::InfoReply {
            id: self.core.id.as_str().into(),
            shim_pid: std::process::id() as i32,
            connections: self.core.served.load(std::sync::atomic::Ordering::Relaxed) as u32,
        }))
    }

    async fn start(&self, _: Request<proto::Empty>) -> RpcResult<proto::PidReply> {
        let pid = self.core.start().await.map_err(st)?;
        Ok(Response::new(proto::PidReply { pid }))
    }

    async fn state(&self, r: Request<proto::ProcessReq>) -> RpcResult<proto::StateReply> {
        let p = self.core.proc(&process_ref(&r.get_ref().exec_id)).map_err(st)?;
        let s = p.state();
        Ok(Response::new(proto::StateReply {
            status: s.status.to_string(),
            pid: s.pid,
            exit: s.exit.as_ref().map(exit_to_msg),
        }))
    }

    async fn kill(&self, r: Request<proto::KillReq>) -> RpcResult<proto::Empty> {
        let r = r.into_inner();
        let sig = Signal::new(r.signal).map_err(st)?;
        self.core.kill(&process_ref(&r.exec_id), sig, r.all).await.map_err(st)?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn wait(&self, r: Request<proto::ProcessReq>) -> RpcResult<proto::ExitMsg> {
        let p = self.core.proc(&process_ref(&r.get_ref().exec_id)).map_err(st)?;
        let e = p.wait().await;
        Ok(Response::new(exit_to_msg(&e)))
    }

    async fn exec(&self, r: Request<proto::ExecReq>) -> RpcResult<proto::PidReply> {
        let r = r.into_inner();
        let process: oci_spec::runtime::Process = serde_json::from_slice(&r.process_json)
            .map_err(|e| st(Error::invalid(format!("process of exec {}", r.exec_id), e.to_string())))?;
        let req = engine_core::ExecRequest::default().exec_id(r.exec_id).process(process).open_stdin(r.open_stdin);
        let pid = self.core.exec(req).await.map_err(st)?;
        Ok(Response::new(proto::PidReply { pid }))
    }

    type AttachStream = BoxStream<'static, std::result::Result<proto::OutputMsg, Status>>;

    async fn attach(&self, r: Request<Streaming<proto::AttachIn>>) -> RpcResult<Self::AttachStream> {
        let mut inbound = r.into_inner();
        let open = match inbound.message().await? {
            Some(proto::AttachIn { msg: Some(attach_in::Msg::Open(o)) }) => o,
            _ => return Err(Status::invalid_argument("attach: the first message must be `open`")),
        };
        let opts = AttachOptions::default().stdin(open.stdin).stdout(open.stdout).stderr(open.stderr);
        let p = self.core.proc(&process_ref(&open.exec_id)).map_err(st)?;
        let io = p.io().ok_or_else(|| Status::failed_precondition("the process has no stdio yet"))?;
        if opts.stdin {
            let io = io.clone();
            tokio::spawn(async move {
                while let Ok(Some(m)) = inbound.message().await {
                    let r = match m.msg {
                        Some(attach_in::Msg::Stdin(d)) => io.write_stdin(&d).await,
                        Some(attach_in::Msg::CloseStdin(_)) => io.close_stdin().await,
                        _ => Ok(()),
                    };
                    if let Err(e) = r {
                        tracing::debug!("attach stdin: {e}");
                        break;
                    }
                }
            });
        }
        let want =
            move |s: StdStream| (s == StdStream::Stderr && opts.stderr) || (s != StdStream::Stderr && opts.stdout);
        let to_msg = |o: engine_core::Output| proto::OutputMsg { stream: stream_num(o.stream), data: o.data.to_vec() };
        let out: Self::AttachStream = match io.subscribe() {
            Some((held, rx)) => {
                let held = futures::stream::iter(held);
                let live = BroadcastStream::new(rx).filter_map(|r| async move { r.ok() });
                held.chain(live)
                    .filter(move |o| futures::future::ready(want(o.stream)))
                    .map(move |o| Ok(to_msg(o)))
                    .boxed()
            }
            None => futures::stream::iter(io.take_replay())
                .filter(move |o| futures::future::ready(want(o.stream)))
                .map(move |o| Ok(to_msg(o)))
                .boxed(),
        };
        Ok(Response::new(out))
    }

    async fn resize(&self, r: Request<proto::ResizeReq>) -> RpcResult<proto::Empty> {
        let r = r.into_inner();
        let p = self.core.proc(&process_ref(&r.exec_id)).map_err(st)?;
        let io = p.io().ok_or_else(|| Status::failed_precondition("the process has no stdio yet"))?;
        io.resize(ConsoleSize { height: r.height as u16, width: r.width as u16 }).map_err(st)?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn close_stdin(&self, r: Request<proto::ProcessReq>) -> RpcResult<proto::Empty> {
        let p = self.core.proc(&process_ref(&r.get_ref().exec_id)).map_err(st)?;
        if let Some(io) = p.io() {
            io.close_stdin().await.map_err(st)?;
        }
        Ok(Response::new(proto::Empty {}))
    }

    async fn pause(&self, _: Request<proto::Empty>) -> RpcResult<proto::Empty> {
        self.core.pause(true).await.map_err(st)?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn resume(&self, _: Request<proto::Empty>) -> RpcResult<proto::Empty> {
        self.core.pause(false).await.map_err(st)?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn stats(&self, _: Request<proto::Empty>) -> RpcResult<proto::StatsReply> {
        let s = self.core.rt(self.core.rt.stats(&self.core.id)).await.map_err(st)?;
        Ok(Response::new(wire::stats_to_msg(&s)))
    }

    async fn update(&self, r: Request<proto::UpdateReq>) -> RpcResult<proto::Empty> {
        let res: oci_spec::runtime::LinuxResources = serde_json::from_slice(&r.get_ref().resources_json)
            .map_err(|e| st(Error::invalid("resources", e.to_string())))?;
        self.core.rt(self.core.rt.update(&self.core.id, &res)).await.map_err(st)?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn reopen_log(&self, _: Request<proto::Empty>) -> RpcResult<proto::Empty> {
        let p = self.core.proc(&engine_core::ProcessRef::Init).map_err(st)?;
        let io = p.io().ok_or_else(|| Status::failed_precondition("the container has no stdio yet"))?;
        io.reopen_log().map_err(st)?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn delete(&self, _: Request<proto::Empty>) -> RpcResult<proto::DeleteReply> {
        let e = self.core.delete().await.map_err(st)?;
        Ok(Response::new(proto::DeleteReply { exit: e.as_ref().map(exit_to_msg) }))
    }

    async fn shutdown(&self, _: Request<proto::Empty>) -> RpcResult<proto::Empty> {
        self.core.shutdown().map_err(st)?;
        Ok(Response::new(proto::Empty {}))
    }

    type EventsStream = BoxStream<'static, std::result::Result<proto::EventMsg, Status>>;

    async fn events(&self, _: Request<proto::Empty>) -> RpcResult<Self::EventsStream> {
        let rx = self.core.events.subscribe();
        let s = BroadcastStream::new(rx)
            .filter_map(|r| async move {
                use engine_core::ShimEvent as E;
                let ev = match r.ok()? {
                    E::Started { pid } => event_msg::Event::Started(proto::PidReply { pid }),
                    E::Exited { process, status } => event_msg::Event::Exited(proto::ExitedEvent {
                        exec_id: wire::exec_id(&process),
                        status: Some(exit_to_msg(&status)),
                    }),
                    E::Oom => event_msg::Event::Oom(proto::Empty {}),
                    E::Paused => event_msg::Event::Paused(proto::Empty {}),
                    E::Resumed => event_msg::Event::Resumed(proto::Empty {}),
                    E::ExecStarted { exec_id, pid } => {
                        event_msg::Event::ExecStarted(proto::ExecStartedEvent { exec_id, pid })
                    }
                    // A kind this wire protocol has no message for yet.
                    _ => return None,
                };
                Some(Ok(proto::EventMsg { event: Some(ev) }))
            })
            .boxed();
        Ok(Response::new(s))
    }
}
