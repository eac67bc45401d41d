//! [`Client`]: the [`Shim`] trait over a shim's unix socket (gRPC).

use crate::proto::{self, attach_in, event_msg, shim_client::ShimClient};
use crate::state;
use crate::wire::{self, exit_from_msg, from_status};
use async_trait::async_trait;
use bytes::Bytes;
use engine_core::{
    Attach, AttachOptions, ConsoleSize, ContainerId, ContainerStatus, Error, ExecRequest, ExitStatus, Output, Pid,
    ProcessRef, ProcessState, Result, Shim, ShimEvent, Signal, Stats, StdStream,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::PollSender;
use tonic::transport::{Channel, Endpoint};

/// How long connecting to a shim's socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection to one running shim; implements [`Shim`].
///
/// ```no_run
/// # async fn demo() -> engine_core::Result<()> {
/// use engine_core::{ContainerId, ProcessRef, Shim};
/// let id = ContainerId::new("web")?;
/// let shim = engine_shim::Client::connect(&id, "/run/engine/web".as_ref()).await?;
/// let exit = shim.wait(&ProcessRef::Init).await?;
/// println!("exited with {}", exit.code);
/// # Ok(()) }
/// ```
///
/// A client holds its connection only while something uses it: a
/// [`wait`](Shim::wait) for the container's init lets it go and waits on an
/// exit watch instead (a socket on which the shim sends one byte when the
/// init ends, without HTTP/2's buffers at either end), so a manager of many
/// idle containers holds one bare socket per container; the next call
/// reconnects. Clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    id: ContainerId,
    socket: PathBuf,
    conn: Arc<tokio::sync::Mutex<Slot>>,
}

/// The connection, if anyone still holds it; `pinned` keeps the first one
/// (the create-to-start calls that follow a connect need not reconnect) until
/// a wait goes idle.
#[derive(Debug, Default)]
struct Slot {
    live: Weak<Conn>,
    pinned: Option<Arc<Conn>>,
}

/// A connection.
#[derive(Debug)]
struct Conn {
    client: ShimClient<Channel>,
}

impl Client {
    /// Connect to the shim serving `state_dir` (its address is in
    /// `state_dir/shim.json`). A shim that is gone gives
    /// [`Error::Unavailable`] within a few seconds at most.
    pub async fn connect(id: &ContainerId, state_dir: &Path) -> Result<Client> {
        Self::connect_within(id, state_dir, CONNECT_TIMEOUT).await
    }

    /// [`Client::connect`], waiting up to `answer` for the shim's first reply (a shim that has
    /// just reported itself ready is alive, but may be slow to answer on a loaded machine).
    pub(crate) async fn connect_within(id: &ContainerId, state_dir: &Path, answer: Duration) -> Result<Client> {
        let what = || format!("shim of container {id}");
        let addr = state::read_address(state_dir)?
            .ok_or_else(|| Error::unavailable(what(), format!("no shim address in {}", state_dir.display())))?;
        if addr.id != id.as_str() {
            return Err(Error::invalid(
                "state dir",
                format!("{} belongs to container {}, not {id}", state_dir.display(), addr.id),
            ));
        }
        let client = Self::connect_socket(id, &addr.socket).await?;
        let info = tokio::time::timeout(answer, client.rpc().await?.info(proto::Empty {}))
            .await
            .map_err(|_| Error::unavailable(what(), format!("no answer on {}", addr.socket.display())))?
            .map_err(|s| from_status(id.as_str(), s))?
            .into_inner();
        if info.id != id.as_str() {
            return Err(Error::invalid(
                "shim socket",
                format!("{} serves {}, not {id}", addr.socket.display(), info.id),
            ));
        }
        Ok(client)
    }

    /// Connect to a shim's socket directly.
    pub async fn connect_socket(id: &ContainerId, socket: &Path) -> Result<Client> {
        let rpc = Arc::new(Self::open(id, socket).await?);
        let slot = Slot { live: Arc::downgrade(&rpc), pinned: Some(rpc) };
        Ok(Client { id: id.clone(), socket: socket.to_path_buf(), conn: Arc::new(tokio::sync::Mutex::new(slot)) })
    }

    /// A new connection to `socket`.
    async fn open(id: &ContainerId, socket: &Path) -> Result<Conn> {
        let path = socket.to_path_buf();
        let p = path.clone();
        let connector = tower::service_fn(move |_: tonic::transport::Uri| {
            let p = p.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?)) }
        });
        let channel = Endpoint::from_static("http://engine-shim.invalid")
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_with_connector(connector)
            .await
            .map_err(|e| {
                let src = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string());
                Error::unavailable(format!("shim of container {id}"), format!("connect {}: {src}", path.display()))
            })?;
        Ok(Conn { client: ShimClient::new(channel) })
    }

    /// How many gRPC connections the shim serves now, this call's included
    /// (a client that only waits for the init holds none: see above).
    pub async fn connections(&self) -> Result<u32> {
        let r = self.rpc().await?.info(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(r.into_inner().connections)
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The connection (a new one if nobody holds the last): the call made
    /// on it keeps it open until the call ends.
    async fn rpc(&self) -> Result<Rpc> {
        let mut slot = self.conn.lock().await;
        let held = match slot.live.upgrade() {
            Some(c) => c,
            None => {
                let c = Arc::new(Self::open(&self.id, &self.socket).await?);
                slot.live = Arc::downgrade(&c);
                c
            }
        };
        Ok(Rpc { client: held.client.clone(), _held: held })
    }

    /// Wait for the container's init to end over an exit watch: a
    /// connection without HTTP/2 on which the shim sends one byte when the
    /// init has ended, or which it closes when it goes away. The caller's
    /// gRPC connection is let go meanwhile. Returns once either happens, or
    /// at once if no watch can be had (the wait over gRPC then decides).
    async fn watch_init(&self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut watch) = tokio::net::UnixStream::connect(&self.socket).await else { return };
        if watch.write_all(&[crate::server::WATCH]).await.is_err() {
            return;
        }
        self.conn.lock().await.pinned = None;
        let mut b = [0u8; 1];
        let _ = watch.read(&mut b).await;
    }

    fn err(&self, s: tonic::Status) -> Error {
        from_status(self.id.as_str(), s)
    }

    fn preq(p: &ProcessRef) -> proto::ProcessReq {
        proto::ProcessReq { exec_id: wire::exec_id(p) }
    }
}

/// One use of a client's connection: the connection stays open while any
/// use of it is alive.
struct Rpc {
    client: ShimClient<Channel>,
    _held: Arc<Conn>,
}

impl std::ops::Deref for Rpc {
    type Target = ShimClient<Channel>;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl std::ops::DerefMut for Rpc {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.client
    }
}

fn parse_status(s: &str) -> ContainerStatus {
    match s {
        "creating" => ContainerStatus::Creating,
        "created" => ContainerStatus::Created,
        "running" => ContainerStatus::Running,
        "paused" => ContainerStatus::Paused,
        _ => ContainerStatus::Stopped,
    }
}

/// The writing half of an attachment: each write is one message to the
/// shim; shutdown closes the process's stdin, drop just detaches.
struct StdinWriter {
    tx: PollSender<proto::AttachIn>,
    closed: bool,
}

fn broken() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "attachment closed")
}

impl tokio::io::AsyncWrite for StdinWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.closed {
            return Poll::Ready(Err(broken()));
        }
        match self.tx.poll_reserve(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(broken())),
            Poll::Ready(Ok(())) => {
                let n = buf.len().min(32 * 1024);
                let msg = proto::AttachIn { msg: Some(attach_in::Msg::Stdin(buf[..n].to_vec())) };
                self.tx.send_item(msg).map_err(|_| broken())?;
                Poll::Ready(Ok(n))
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        match self.tx.poll_reserve(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(broken())),
            Poll::Ready(Ok(())) => {
                let msg = proto::AttachIn { msg: Some(attach_in::Msg::CloseStdin(proto::Empty {})) };
                self.tx.send_item(msg).map_err(|_| broken())?;
                self.closed = true;
                Poll::Ready(Ok(()))
            }
        }
    }
}

#[async_trait]
impl Shim for Client {
    fn id(&self) -> &ContainerId {
        &self.id
    }

    async fn shim_pid(&self) -> Result<Pid> {
        let r = self.rpc().await?.info(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(r.into_inner().shim_pid)
    }

    async fn start(&self) -> Result<Pid> {
        let r = self.rpc().await?.start(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(r.into_inner().pid)
    }

    async fn state(&self, process: &ProcessRef) -> Result<ProcessState> {
        let r = self.rpc().await?.state(Self::preq(process)).await.map_err(|s| self.err(s))?.into_inner();
        Ok(ProcessState::new(parse_status(&r.status), r.pid).exit(r.exit.as_ref().map(exit_from_msg)))
    }

    async fn kill(&self, process: &ProcessRef, signal: Signal, all: bool) -> Result<()> {
        let req = proto::KillReq { exec_id: wire::exec_id(process), signal: signal.number(), all };
        self.rpc().await?.kill(req).await.map_err(|s| self.err(s))?;
        Ok(())
    }

    async fn wait(&self, process: &ProcessRef) -> Result<ExitStatus> {
        if matches!(process, ProcessRef::Init) {
            // Then the call below answers at once (or, from a shim without
            // exit watches, once the init ends).
            self.watch_init().await;
        }
        let r = self.rpc().await?.wait(Self::preq(process)).await.map_err(|s| self.err(s))?;
        Ok(exit_from_msg(&r.into_inner()))
    }

    async fn exec(&self, req: ExecRequest) -> Result<Pid> {
        let process_json =
            serde_json::to_vec(&req.process).map_err(|e| Error::invalid("exec process", e.to_string()))?;
        let m = proto::ExecReq { exec_id: req.exec_id, process_json, open_stdin: req.open_stdin };
        let r = self.rpc().await?.exec(m).await.map_err(|s| self.err(s))?;
        Ok(r.into_inner().pid)
    }

    async fn attach(&self, process: &ProcessRef, opts: AttachOptions) -> Result<Attach> {
        let (tx, rx) = tokio::sync::mpsc::channel::<proto::AttachIn>(8);
        let open = proto::AttachOpen {
            exec_id: wire::exec_id(process),
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        };
        tx.send(proto::AttachIn { msg: Some(attach_in::Msg::Open(open)) })
            .await
            .map_err(|_| Error::Other("attach channel closed".into()))?;
        let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
        let resp = self.rpc().await?.attach(outbound).await.map_err(|s| self.err(s))?;
        let id = self.id.clone();
        let output = resp
            .into_inner()
            .map(move |r| match r {
                Ok(m) => Ok(Output {
                    stream: if m.stream == 2 { StdStream::Stderr } else { StdStream::Stdout },
                    data: Bytes::from(m.data),
                }),
                Err(s) => Err(from_status(id.as_str(), s)),
            })
            .boxed();
        let stdin: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>> = if opts.stdin {
            Some(Box::pin(StdinWriter { tx: PollSender::new(tx), closed: false }))
        } else {
            // Keep the request stream open for the life of the output.
            let keep = tx;
            let output = output;
            let output = futures::stream::unfold((output, Some(keep)), |(mut o, k)| async move {
                o.next().await.map(|item| (item, (o, k)))
            })
            .boxed();
            return Ok(Attach { stdin: None, output });
        };
        Ok(Attach { stdin, output })
    }

    async fn resize(&self, process: &ProcessRef, size: ConsoleSize) -> Result<()> {
        let req =
            proto::ResizeReq { exec_id: wire::exec_id(process), height: size.height as u32, width: size.width as u32 };
        self.rpc().await?.resize(req).await.map_err(|s| self.err(s))?;
        Ok(())
    }

    async fn close_stdin(&self, process: &ProcessRef) -> Result<()> {
        self.rpc().await?.close_stdin(Self::preq(process)).await.map_err(|s| self.err(s))?;
        Ok(())
    }

    async fn pause(&self) -> Result<()> {
        self.rpc().await?.pause(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(())
    }

    async fn resume(&self) -> Result<()> {
        self.rpc().await?.resume(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(())
    }

    async fn stats(&self) -> Result<Stats> {
        let r = self.rpc().await?.stats(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(wire::stats_from_msg(r.into_inner()))
    }

    async fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let resources_json = serde_json::to_vec(resources).map_err(|e| Error::invalid("resources", e.to_string()))?;
        self.rpc().await?.update(proto::UpdateReq { resources_json }).await.map_err(|s| self.err(s))?;
        Ok(())
    }

    async fn reopen_log(&self) -> Result<()> {
        self.rpc().await?.reopen_log(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(())
    }

    async fn delete(&self) -> Result<Option<ExitStatus>> {
        let r = self.rpc().await?.delete(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(r.into_inner().exit.as_ref().map(exit_from_msg))
    }

    async fn shutdown(&self) -> Result<()> {
        self.rpc().await?.shutdown(proto::Empty {}).await.map_err(|s| self.err(s))?;
        Ok(())
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<ShimEvent>>> {
        let r = self.rpc().await?.events(proto::Empty {}).await.map_err(|s| self.err(s))?;
        let id = self.id.clone();
        Ok(r.into_inner()
            .filter_map(move |r| {
                let id = id.clone();
                async move {
                    match r {
                        Err(s) => Some(Err(from_status(id.as_str(), s))),
                        Ok(m) => {
                            let e = match m.event? {
                                event_msg::Event::Started(p) => ShimEvent::Started { pid: p.pid },
                                event_msg::Event::Exited(x) => ShimEvent::Exited {
                                    process: wire::process_ref(&x.exec_id),
                                    status: x.status.as_ref().map(exit_from_msg)?,
                                },
                                event_msg::Event::Oom(_) => ShimEvent::Oom,
                                event_msg::Event::Paused(_) => ShimEvent::Paused,
                                event_msg::Event::Resumed(_) => ShimEvent::Resumed,
                                event_msg::Event::ExecStarted(x) => {
                                    ShimEvent::ExecStarted { exec_id: x.exec_id, pid: x.pid }
                                }
                            };
                            Some(Ok(e))
                        }
                    }
                }
            })
            .boxed())
    }
}
