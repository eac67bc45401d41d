//! [`RemoteManager`]: the gRPC client of `engine-lifecycled`, implementing
//! [`LifecycleManager`] so callers cannot tell it from the in-process manager.

use super::pb::{self, lifecycle_client::LifecycleClient};
use super::server::{ConnectRequest, DriverInfo};
use super::wire::{dec_client, enc, from_status};
use async_trait::async_trait;
use bytes::Bytes;
use engine_core::network::{AttachRequest, ConnectOptions, EndpointInfo, NetworkInfo, NetworkSpec};
use engine_core::{
    Attach, AttachOptions, ConsoleSize, ContainerConfig, ContainerId, ContainerInfo, Error, Event, ExecConfig,
    ExecInfo, ExitStatus, LifecycleManager, ListFilter, LogEntry, LogOptions, NetworkDriver, Output, Pid, Result,
    Signal, Stats, StdStream, WaitCondition,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

/// A client of `engine-lifecycled` (or of anything [`crate::serve`] serves)
/// over its unix socket.
///
/// ```no_run
/// # async fn demo() -> engine_core::Result<()> {
/// use engine_core::{LifecycleManager, ListFilter};
/// let mgr = engine_lifecycle::RemoteManager::connect("/run/engine/lifecycle.sock").await?;
/// for c in mgr.list(ListFilter::default().all(true)).await? {
///     println!("{} {} {:?}", &c.id[..12], c.name, c.state);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RemoteManager {
    client: LifecycleClient<Channel>,
    socket: PathBuf,
}

impl RemoteManager {
    /// Connect to the service at `socket`.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<RemoteManager> {
        let socket = socket.as_ref().to_path_buf();
        let path = socket.clone();
        let channel = Endpoint::from_static("http://engine-lifecycled.invalid")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let p = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(p).await?))
                }
            }))
            .await
            .map_err(|e| Error::unavailable(format!("engine-lifecycled at {}", socket.display()), e.to_string()))?;
        let client =
            LifecycleClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
        Ok(RemoteManager { client, socket })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn c(&self) -> LifecycleClient<Channel> {
        self.client.clone()
    }

    /// The network driver of the manager behind the service, as a
    /// [`NetworkDriver`]: networks are created, listed and removed there
    /// (where the manager attaches containers to them). `None` when that
    /// manager has no network driver.
    pub async fn network_driver(&self) -> Result<Option<RemoteNetwork>> {
        let r = self.c().network_driver(pb::Empty {}).await.map_err(from_status)?;
        let d: Option<DriverInfo> = dec_client("network driver", &r.into_inner().data)?;
        Ok(d.map(|d| RemoteNetwork {
            mgr: self.clone(),
            name: d.name,
            host_netns: d.host_netns,
            serves_plugins: d.serves_plugins,
        }))
    }

    async fn attach_any(&self, id: &str, exec: bool, opts: AttachOptions) -> Result<Attach> {
        let (tx, rx) = mpsc::channel::<pb::AttachInput>(16);
        tx.send(pb::AttachInput {
            id: id.to_string(),
            exec,
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
            data: Vec::new(),
            close_stdin: false,
        })
        .await
        .map_err(|_| Error::Other("attach request channel closed".into()))?;
        let resp =
            self.c().attach(tokio_stream::wrappers::ReceiverStream::new(rx)).await.map_err(from_status)?.into_inner();
        let stdin: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>> = if opts.stdin {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let id = id.to_string();
            tokio::spawn(async move {
                let mut r = theirs;
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    let n = r.read(&mut buf).await.unwrap_or(0);
                    let msg = pb::AttachInput {
                        id: id.clone(),
                        data: buf[..n].to_vec(),
                        close_stdin: n == 0,
                        ..Default::default()
                    };
                    if tx.send(msg).await.is_err() || n == 0 {
                        return;
                    }
                }
            });
            Some(Box::pin(ours))
        } else {
            drop(tx);
            None
        };
        let output = resp
            .map(|m| {
                m.map(|c| Output {
                    stream: if c.stream == 2 { StdStream::Stderr } else { StdStream::Stdout },
                    data: Bytes::from(c.data),
                })
                .map_err(from_status)
            })
            .boxed();
        Ok(Attach { stdin, output })
    }
}

fn target(id: &str) -> pb::Target {
    pb::Target { id: id.to_string() }
}

fn resize(id: &str, s: ConsoleSize) -> pb::ResizeRequest {
    pb::ResizeRequest { id: id.to_string(), height: s.height as u32, width: s.width as u32 }
}

#[async_trait]
impl LifecycleManager for RemoteManager {
    async fn create(&self, config: ContainerConfig) -> Result<ContainerInfo> {
        let r = self.c().create(pb::Json { data: enc(&config) }).await.map_err(from_status)?;
        dec_client("container info", &r.into_inner().data)
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.c().start(target(id)).await.map_err(from_status)?;
        Ok(())
    }
    async fn stop(&self, id: &str, grace: Option<Duration>) -> Result<()> {
        let req = pb::StopRequest { id: id.to_string(), grace_ms: grace.map(|g| g.as_millis() as u64) };
        self.c().stop(req).await.map_err(from_status)?;
        Ok(())
    }
    async fn kill(&self, id: &str, signal: Signal) -> Result<()> {
        self.c().kill(pb::KillRequest { id: id.to_string(), signal: signal.number() }).await.map_err(from_status)?;
        Ok(())
    }
    async fn pause(&self, id: &str) -> Result<()> {
        self.c().pause(target(id)).await.map_err(from_status)?;
        Ok(())
    }
    async fn resume(&self, id: &str) -> Result<()> {
        self.c().resume(target(id)).await.map_err(from_status)?;
        Ok(())
    }
    async fn exec(&self, id: &str, config: ExecConfig) -> Result<String> {
        let r =
            self.c().exec(pb::ExecRequest { id: id.to_string(), config: enc(&config) }).await.map_err(from_status)?;
        Ok(r.into_inner().exec_id)
    }
    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInfo> {
        let r = self.c().exec_inspect(target(exec_id)).await.map_err(from_status)?;
        dec_client("exec info", &r.into_inner().data)
    }
    async fn exec_wait(&self, exec_id: &str) -> Result<ExitStatus> {
        let r = self.c().exec_wait(target(exec_id)).await.map_err(from_status)?;
        dec_client("exit status", &r.into_inner().data)
    }
    async fn exec_attach(&self, exec_id: &str, opts: AttachOptions) -> Result<Attach> {
        self.attach_any(exec_id, true, opts).await
    }
    async fn exec_resize(&self, exec_id: &str, size: ConsoleSize) -> Result<()> {
        self.c().exec_resize(resize(exec_id, size)).await.map_err(from_status)?;
        Ok(())
    }
    async fn wait(&self, id: &str, condition: WaitCondition) -> Result<ExitStatus> {
        let condition = match condition {
            WaitCondition::NotRunning => "not-running",
            WaitCondition::NextExit => "next-exit",
            WaitCondition::Removed => "removed",
        };
        let r = self
            .c()
            .wait(pb::WaitRequest { id: id.to_string(), condition: condition.into() })
            .await
            .map_err(from_status)?;
        dec_client("exit status", &r.into_inner().data)
    }
    async fn logs(&self, id: &str, opts: LogOptions) -> Result<BoxStream<'static, Result<LogEntry>>> {
        let r =
            self.c().logs(pb::LogsRequest { id: id.to_string(), options: enc(&opts) }).await.map_err(from_status)?;
        Ok(r.into_inner()
            .map(|m| m.map_err(from_status).and_then(|l| LogEntry::from_json_line(l.json_line.trim_ascii_end())))
            .boxed())
    }
    async fn attach(&self, id: &str, opts: AttachOptions) -> Result<Attach> {
        self.attach_any(id, false, opts).await
    }
    async fn resize(&self, id: &str, size: ConsoleSize) -> Result<()> {
        self.c().resize(resize(id, size)).await.map_err(from_status)?;
        Ok(())
    }
    async fn stats(&self, id: &str) -> Result<Stats> {
        let r = self.c().stats(target(id)).await.map_err(from_status)?;
        dec_client("stats", &r.into_inner().data)
    }
    async fn top(&self, id: &str) -> Result<Vec<Pid>> {
        Ok(self.c().top(target(id)).await.map_err(from_status)?.into_inner().pids)
    }
    async fn list(&self, filter: ListFilter) -> Result<Vec<ContainerInfo>> {
        let r = self.c().list(pb::Json { data: enc(&filter) }).await.map_err(from_status)?;
        dec_client("container list", &r.into_inner().data)
    }
    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let r = self.c().inspect(target(id)).await.map_err(from_status)?;
        dec_client("container info", &r.into_inner().data)
    }
    async fn remove(&self, id: &str, force: bool) -> Result<()> {
        self.c().remove(pb::RemoveRequest { id: id.to_string(), force }).await.map_err(from_status)?;
        Ok(())
    }
    async fn events(&self) -> Result<BoxStream<'static, Result<Event>>> {
        let r = self.c().events(pb::Empty {}).await.map_err(from_status)?;
        Ok(r.into_inner().map(|m| m.map_err(from_status).and_then(|j| dec_client("event", &j.data))).boxed())
    }
    async fn connect_network(&self, id: &str, network: &str, options: ConnectOptions) -> Result<EndpointInfo> {
        let req = ConnectRequest { id: id.to_string(), network: network.to_string(), options };
        let r = self.c().network_connect(pb::Json { data: enc(&req) }).await.map_err(from_status)?;
        dec_client("endpoint", &r.into_inner().data)
    }
    async fn disconnect_network(&self, id: &str, network: &str) -> Result<()> {
        let req = ConnectRequest { id: id.to_string(), network: network.to_string(), options: Default::default() };
        self.c().network_disconnect(pb::Json { data: enc(&req) }).await.map_err(from_status)?;
        Ok(())
    }
}

/// The network driver of a manager behind `engine-lifecycled`
/// ([`RemoteManager::network_driver`]): networks are made and removed
/// there. Endpoints are that manager's business: it attaches the
/// containers it starts and [`LifecycleManager::connect_network`] plugs in
/// more, so [`NetworkDriver::attach`] and [`NetworkDriver::detach`] here
/// are refused.
#[derive(Clone, Debug)]
pub struct RemoteNetwork {
    mgr: RemoteManager,
    name: String,
    host_netns: Option<PathBuf>,
    serves_plugins: bool,
}

#[async_trait]
impl NetworkDriver for RemoteNetwork {
    fn name(&self) -> &str {
        &self.name
    }
    async fn create_network(&self, spec: NetworkSpec) -> Result<NetworkInfo> {
        let r = self.mgr.c().network_create(pb::Json { data: enc(&spec) }).await.map_err(from_status)?;
        dec_client("network", &r.into_inner().data)
    }
    async fn default_network(&self) -> Result<NetworkInfo> {
        let r = self.mgr.c().network_default(pb::Empty {}).await.map_err(from_status)?;
        dec_client("network", &r.into_inner().data)
    }
    async fn remove_network(&self, network: &str) -> Result<()> {
        self.mgr.c().network_remove(target(network)).await.map_err(from_status)?;
        Ok(())
    }
    async fn inspect_network(&self, network: &str) -> Result<NetworkInfo> {
        let r = self.mgr.c().network_inspect(target(network)).await.map_err(from_status)?;
        dec_client("network", &r.into_inner().data)
    }
    async fn list_networks(&self) -> Result<Vec<NetworkInfo>> {
        let r = self.mgr.c().network_list(pb::Empty {}).await.map_err(from_status)?;
        dec_client("network list", &r.into_inner().data)
    }
    async fn attach(&self, network: &str, request: AttachRequest) -> Result<EndpointInfo> {
        Err(Error::Unsupported(format!(
            "attaching {} to network {network} from outside engine-lifecycled (its manager attaches containers)",
            request.container_id
        )))
    }
    async fn detach(&self, network: &str, container_id: &ContainerId) -> Result<()> {
        Err(Error::Unsupported(format!(
            "detaching {container_id} from network {network} from outside engine-lifecycled (its manager detaches containers)"
        )))
    }
    fn host_netns(&self) -> Option<PathBuf> {
        self.host_netns.clone()
    }
    fn serves_driver(&self, driver: &str) -> bool {
        driver == self.name || self.serves_plugins
    }
}
