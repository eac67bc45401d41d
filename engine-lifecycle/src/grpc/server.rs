//! The gRPC service over any [`LifecycleManager`].

use super::pb::{self, lifecycle_server::Lifecycle};
use super::wire::{dec, enc, to_status};
use engine_core::network::{ConnectOptions, NetworkSpec};
use engine_core::{
    AttachOptions, ConsoleSize, ContainerConfig, Error, ExecConfig, LifecycleManager, ListFilter, LogOptions,
    NetworkDriver, Result, Signal, StdStream, WaitCondition,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

type Res<T> = std::result::Result<Response<T>, Status>;

/// The service: one manager (in-process or itself remote) behind gRPC,
/// and the network driver it attaches containers with.
pub(crate) struct Service {
    mgr: Arc<dyn LifecycleManager>,
    net: Option<Arc<dyn NetworkDriver>>,
}

impl Service {
    fn net(&self) -> std::result::Result<&Arc<dyn NetworkDriver>, Status> {
        self.net.as_ref().ok_or_else(|| {
            to_status(Error::Unsupported(
                "networks: this engine-lifecycled has no network driver (start it with --network-driver)".into(),
            ))
        })
    }
}

/// What `NetworkDriver` answers: the driver's name and host namespace.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct DriverInfo {
    pub name: String,
    pub host_netns: Option<std::path::PathBuf>,
    /// The driver takes `docker network create -d <plugin>` (a router of
    /// plugin networks); older servers leave it out.
    #[serde(default)]
    pub serves_plugins: bool,
}

/// A driver name no driver has, to ask whether a driver serves any name.
pub(crate) const PLUGIN_PROBE: &str = "plugin probe";

/// A `NetworkConnect` or `NetworkDisconnect` request.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ConnectRequest {
    pub id: String,
    pub network: String,
    #[serde(default)]
    pub options: ConnectOptions,
}

fn empty() -> Res<pb::Empty> {
    Ok(Response::new(pb::Empty {}))
}

fn json<T: serde::Serialize>(v: &T) -> Res<pb::Json> {
    Ok(Response::new(pb::Json { data: enc(v) }))
}

fn cond(s: &str) -> std::result::Result<WaitCondition, Status> {
    match s {
        "" | "not-running" => Ok(WaitCondition::NotRunning),
        "next-exit" => Ok(WaitCondition::NextExit),
        "removed" => Ok(WaitCondition::Removed),
        other => Err(Status::invalid_argument(format!("unknown wait condition {other:?}"))),
    }
}

fn size(r: &pb::ResizeRequest) -> ConsoleSize {
    ConsoleSize { height: r.height.min(u16::MAX as u32) as u16, width: r.width.min(u16::MAX as u32) as u16 }
}

#[tonic::async_trait]
impl Lifecycle for Service {
    async fn create(&self, r: Request<pb::Json>) -> Res<pb::Json> {
        let cfg: ContainerConfig = dec("container config", &r.into_inner().data)?;
        json(&self.mgr.create(cfg).await.map_err(to_status)?)
    }
    async fn start(&self, r: Request<pb::Target>) -> Res<pb::Empty> {
        self.mgr.start(&r.into_inner().id).await.map_err(to_status)?;
        empty()
    }
    async fn stop(&self, r: Request<pb::StopRequest>) -> Res<pb::Empty> {
        let r = r.into_inner();
        self.mgr.stop(&r.id, r.grace_ms.map(Duration::from_millis)).await.map_err(to_status)?;
        empty()
    }
    async fn kill(&self, r: Request<pb::KillRequest>) -> Res<pb::Empty> {
        let r = r.into_inner();
        let sig = Signal::new(r.signal).map_err(to_status)?;
        self.mgr.kill(&r.id, sig).await.map_err(to_status)?;
        empty()
    }
    async fn pause(&self, r: Request<pb::Target>) -> Res<pb::Empty> {
        self.mgr.pause(&r.into_inner().id).await.map_err(to_status)?;
        empty()
    }
    async fn resume(&self, r: Request<pb::Target>) -> Res<pb::Empty> {
        self.mgr.resume(&r.into_inner().id).await.map_err(to_status)?;
        empty()
    }
    async fn exec(&self, r: Request<pb::ExecRequest>) -> Res<pb::ExecReply> {
        let r = r.into_inner();
        let cfg: ExecConfig = dec("exec config", &r.config)?;
        let exec_id = self.mgr.exec(&r.id, cfg).await.map_err(to_status)?;
        Ok(Response::new(pb::ExecReply { exec_id }))
    }
    async fn exec_inspect(&self, r: Request<pb::Target>) -> Res<pb::Json> {
        json(&self.mgr.exec_inspect(&r.into_inner().id).await.map_err(to_status)?)
    }
    async fn exec_wait(&self, r: Request<pb::Target>) -> Res<pb::Json> {
        json(&self.mgr.exec_wait(&r.into_inner().id).await.map_err(to_status)?)
    }
    async fn exec_resize(&self, r: Request<pb::ResizeRequest>) -> Res<pb::Empty> {
        let r = r.into_inner();
        self.mgr.exec_resize(&r.id, size(&r)).await.map_err(to_status)?;
        empty()
    }
    async fn wait(&self, r: Request<pb::WaitRequest>) -> Res<pb::Json> {
        let r = r.into_inner();
        json(&self.mgr.wait(&r.id, cond(&r.condition)?).await.map_err(to_status)?)
    }

    type LogsStream = BoxStream<'static, std::result::Result<pb::LogLine, Status>>;
    async fn logs(&self, r: Request<pb::LogsRequest>) -> Res<Self::LogsStream> {
        let r = r.into_inner();
        let opts: LogOptions = dec("log options", &r.options)?;
        let s = self.mgr.logs(&r.id, opts).await.map_err(to_status)?;
        Ok(Response::new(
            s.map(|e| e.map(|e| pb::LogLine { json_line: e.to_json_line().into_bytes() }).map_err(to_status)).boxed(),
        ))
    }

    type AttachStream = BoxStream<'static, std::result::Result<pb::OutputChunk, Status>>;
    async fn attach(&self, r: Request<Streaming<pb::AttachInput>>) -> Res<Self::AttachStream> {
        let mut input = r.into_inner();
        let head = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("attach: the first message must name the target"))?;
        let opts = AttachOptions::default().stdin(head.stdin).stdout(head.stdout).stderr(head.stderr);
        let att =
            if head.exec { self.mgr.exec_attach(&head.id, opts).await } else { self.mgr.attach(&head.id, opts).await }
                .map_err(to_status)?;
        if let Some(mut stdin) = att.stdin {
            tokio::spawn(async move {
                if !head.data.is_empty() && stdin.write_all(&head.data).await.is_err() {
                    return;
                }
                while let Ok(Some(m)) = input.message().await {
                    if !m.data.is_empty() && stdin.write_all(&m.data).await.is_err() {
                        return;
                    }
                    let _ = stdin.flush().await;
                    if m.close_stdin {
                        let _ = stdin.shutdown().await;
                        return;
                    }
                }
            });
        }
        let out = att.output.map(|o| {
            o.map(|o| pb::OutputChunk {
                stream: if o.stream == StdStream::Stderr { 2 } else { 1 },
                data: o.data.to_vec(),
            })
            .map_err(to_status)
        });
        Ok(Response::new(out.boxed()))
    }

    async fn resize(&self, r: Request<pb::ResizeRequest>) -> Res<pb::Empty> {
        let r = r.into_inner();
        self.mgr.resize(&r.id, size(&r)).await.map_err(to_status)?;
        empty()
    }
    async fn stats(&self, r: Request<pb::Target>) -> Res<pb::Json> {
        json(&self.mgr.stats(&r.into_inner().id).await.map_err(to_status)?)
    }
    async fn top(&self, r: Request<pb::Target>) -> Res<pb::Pids> {
        let pids = self.mgr.top(&r.into_inner().id).await.map_err(to_status)?;
        Ok(Response::new(pb::Pids { pids }))
    }
    async fn list(&self, r: Request<pb::Json>) -> Res<pb::Json> {
        let f: ListFilter = dec("list filter", &r.into_inner().data)?;
        json(&self.mgr.list(f).await.map_err(to_status)?)
    }
    async fn inspect(&self, r: Request<pb::Target>) -> Res<pb::Json> {
        json(&self.mgr.inspect(&r.into_inner().id).await.map_err(to_status)?)
    }
    async fn remove(&self, r: Request<pb::RemoveRequest>) -> Res<pb::Empty> {
        let r = r.into_inner();
        self.mgr.remove(&r.id, r.force).await.map_err(to_status)?;
        empty()
    }

    type EventsStream = BoxStream<'static, std::result::Result<pb::Json, Status>>;
    async fn events(&self, _r: Request<pb::Empty>) -> Res<Self::EventsStream> {
        let s = self.mgr.events().await.map_err(to_status)?;
        Ok(Response::new(s.map(|e| e.map(|e| pb::Json { data: enc(&e) }).map_err(to_status)).boxed()))
    }

    async fn network_driver(&self, _r: Request<pb::Empty>) -> Res<pb::Json> {
        json(&self.net.as_ref().map(|d| DriverInfo {
            name: d.name().to_string(),
            host_netns: d.host_netns(),
            serves_plugins: d.serves_driver(PLUGIN_PROBE),
        }))
    }
    async fn network_create(&self, r: Request<pb::Json>) -> Res<pb::Json> {
        let spec: NetworkSpec = dec("network spec", &r.into_inner().data)?;
        json(&self.net()?.create_network(spec).await.map_err(to_status)?)
    }
    async fn network_default(&self, _r: Request<pb::Empty>) -> Res<pb::Json> {
        json(&self.net()?.default_network().await.map_err(to_status)?)
    }
    async fn network_remove(&self, r: Request<pb::Target>) -> Res<pb::Empty> {
        self.net()?.remove_network(&r.into_inner().id).await.map_err(to_status)?;
        empty()
    }
    async fn network_inspect(&self, r: Request<pb::Target>) -> Res<pb::Json> {
        json(&self.net()?.inspect_network(&r.into_inner().id).await.map_err(to_status)?)
    }
    async fn network_list(&self, _r: Request<pb::Empty>) -> Res<pb::Json> {
        json(&self.net()?.list_networks().await.map_err(to_status)?)
    }
    async fn network_connect(&self, r: Request<pb::Json>) -> Res<pb::Json> {
        let c: ConnectRequest = dec("network connect request", &r.into_inner().data)?;
        json(&self.mgr.connect_network(&c.id, &c.network, c.options).await.map_err(to_status)?)
    }
    async fn network_disconnect(&self, r: Request<pb::Json>) -> Res<pb::Empty> {
        let c: ConnectRequest = dec("network disconnect request", &r.into_inner().data)?;
        self.mgr.disconnect_network(&c.id, &c.network).await.map_err(to_status)?;
        empty()
    }
}

/// Serve `manager` on a unix socket at `socket` until the process ends.
/// A stale socket file is replaced; the socket is made accessible to root only.
pub async fn serve(manager: Arc<dyn LifecycleManager>, socket: impl AsRef<Path>) -> Result<()> {
    serve_with_shutdown(manager, socket, std::future::pending()).await
}

/// Like [`serve`], until `shutdown` completes.
pub async fn serve_with_shutdown(
    manager: Arc<dyn LifecycleManager>,
    socket: impl AsRef<Path>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    serve_with_network(manager, None, socket, shutdown).await
}

/// Like [`serve_with_shutdown`], also serving `network` (the driver
/// `manager` attaches containers with): networks, connect and disconnect
/// for a daemon in front of this service ([`RemoteManager::network_driver`](crate::RemoteManager::network_driver)).
pub async fn serve_with_network(
    manager: Arc<dyn LifecycleManager>,
    network: Option<Arc<dyn NetworkDriver>>,
    socket: impl AsRef<Path>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let socket = socket.as_ref();
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("removing stale socket {}", socket.display()), e)),
    }
    let listener =
        tokio::net::UnixListener::bind(socket).map_err(|e| Error::io(format!("binding {}", socket.display()), e))?;
    let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660));
    tracing::info!(socket = %socket.display(), "lifecycle service listening");
    serve_listener_with_network(manager, network, listener, shutdown).await
}

/// Serve `manager` on a listener the caller has bound, until `shutdown`
/// completes. Clients may connect as soon as the listener is bound (their
/// connections wait in its backlog), so a caller that binds first needs no
/// wait for the service to come up.
///
/// ```no_run
/// # async fn demo(manager: std::sync::Arc<dyn engine_core::LifecycleManager>) -> engine_core::Result<()> {
/// let listener = tokio::net::UnixListener::bind("/run/demo/lifecycle.sock")
///     .map_err(|e| engine_core::Error::io("binding the socket", e))?;
/// tokio::spawn(engine_lifecycle::serve_listener(manager, listener, std::future::pending()));
/// let client = engine_lifecycle::RemoteManager::connect("/run/demo/lifecycle.sock").await?;
/// # drop(client); Ok(()) }
/// ```
pub async fn serve_listener(
    manager: Arc<dyn LifecycleManager>,
    listener: tokio::net::UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    serve_listener_with_network(manager, None, listener, shutdown).await
}

/// Like [`serve_listener`], also serving `network` (see [`serve_with_network`]).
pub async fn serve_listener_with_network(
    manager: Arc<dyn LifecycleManager>,
    network: Option<Arc<dyn NetworkDriver>>,
    listener: tokio::net::UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let addr = listener.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string()));
    let svc = pb::lifecycle_server::LifecycleServer::new(Service { mgr: manager, net: network })
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| Error::Other(format!("lifecycle service on {}: {e}", addr.unwrap_or_default())))
}
