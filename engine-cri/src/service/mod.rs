//! The RuntimeService and ImageService implementations.
//!
//! One file an idea: this one holds [`CriServer`] (its settings and the
//! lookups every RPC shares) and the labels that record CRI facts on engine
//! containers; [`runtime`] maps each RuntimeService RPC to the module that
//! serves it: [`pods`] (sandboxes), [`containers`], [`exec`] (Exec,
//! Attach, PortForward, ExecSync), [`stats`]; [`images`] is the
//! ImageService; [`convert`] turns engine values into CRI messages.

mod containers;
mod convert;
mod exec;
mod images;
mod pods;
mod runtime;
mod stats;

use crate::pb;
use convert::{container_state, is_kind};
use engine_core::{ContainerInfo, ContainerState, Error, ImageStore, LifecycleManager, ListFilter};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Response, Status};

/// The built-in pause image sandboxes run (made from the host's busybox).
pub const PAUSE_IMAGE: &str = "engine-cri/pause:busybox";

// The labels that record CRI facts on the engine's containers (a restarted
// server reads everything back from them).
/// `sandbox` or `container`.
const KIND: &str = "io.engine.cri.kind";
/// A container's sandbox id.
const SANDBOX: &str = "io.engine.cri.sandbox-id";
/// The CRI config (base64 of its protobuf encoding).
const CONFIG: &str = "io.engine.cri.config";
/// The image as the CRI config names it.
const IMAGE: &str = "io.engine.cri.image";
/// A sandbox's RuntimeClass handler.
const HANDLER: &str = "io.engine.cri.runtime-handler";

/// The CRI server: both services, over one manager and one image store.
#[derive(Clone)]
pub struct CriServer {
    mgr: Arc<dyn LifecycleManager>,
    images: Arc<dyn ImageStore>,
    root: PathBuf,
    /// Pods get their network through the manager's network driver (CNI).
    networked: bool,
    /// Clamp asked OOM score adjustments to the server's own.
    restrict_oom_score_adj: bool,
    /// RuntimeClass handlers other than the default (`""`, the manager's
    /// default runtime): handler name to the manager's runtime name.
    handlers: std::collections::BTreeMap<String, String>,
    /// The streaming server for Exec, Attach and PortForward.
    streaming: Option<Arc<crate::streaming::Streaming>>,
}

/// The gRPC status for an engine error.
fn status(e: Error) -> Status {
    let msg = e.to_string();
    match e {
        Error::NotFound { .. } => Status::not_found(msg),
        Error::InvalidInput { .. } => Status::invalid_argument(msg),
        Error::Conflict { .. } => Status::already_exists(msg),
        Error::Unavailable { .. } => Status::unavailable(msg),
        Error::Timeout { .. } => Status::deadline_exceeded(msg),
        Error::Unsupported(_) => Status::unimplemented(msg),
        _ => Status::internal(msg),
    }
}

type R<T> = Result<Response<T>, Status>;

/// `InvalidArgument`, naming the field and what is wrong with it.
fn invalid(what: &str, why: impl Into<String>) -> Status {
    Status::invalid_argument(format!("{what}: {}", why.into()))
}

/// A Kubernetes object name piece, checked so it fits an engine container name.
fn name_part(what: &str, s: &str) -> Result<(), Status> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err(invalid(what, format!("{s:?}: a non-empty DNS label or subdomain expected")));
    }
    Ok(())
}

impl CriServer {
    /// A server over `mgr` and `images`; `root` holds the server's scratch
    /// files (the pause image is built under it).
    pub fn new(mgr: Arc<dyn LifecycleManager>, images: Arc<dyn ImageStore>, root: impl Into<PathBuf>) -> Self {
        CriServer {
            mgr,
            images,
            root: root.into(),
            networked: false,
            restrict_oom_score_adj: false,
            handlers: Default::default(),
            streaming: None,
        }
    }

    /// Serve `Exec`, `Attach` and `PortForward` sessions on `listener`
    /// (kubelet's URL flow: each RPC returns a one-time URL on it; clients
    /// speak WebSocket with Kubernetes' `v5.channel.k8s.io` or
    /// `v4.channel.k8s.io` subprotocol, not SPDY). Without it those RPCs
    /// answer `Unavailable`. Bind it to loopback unless the node's
    /// clients (kubelet's proxy) need it elsewhere: the tokens are the only
    /// authentication.
    pub fn with_streaming(mut self, listener: tokio::net::TcpListener) -> engine_core::Result<Self> {
        self.streaming = Some(crate::streaming::Streaming::new(listener)?);
        Ok(self)
    }

    /// Serve the RuntimeClass handler `handler` with the manager's runtime
    /// `runtime` (a name of its runtime table, such as `runc`): pods run
    /// with `runtime_handler: handler` get it for their sandbox and every
    /// container. The empty handler is the manager's default runtime.
    pub fn runtime_handler(mut self, handler: impl Into<String>, runtime: impl Into<String>) -> Self {
        self.handlers.insert(handler.into(), runtime.into());
        self
    }

    /// containerd's `restrict_oom_score_adj`: an OOM score adjustment a
    /// container asks for below this process's own is raised to it (a
    /// process without `CAP_SYS_RESOURCE`, as root in many containers and
    /// sandboxes, cannot lower it, and kubelet asks -997 for guaranteed
    /// pods). Off: such a container fails to start, naming the value.
    pub fn restrict_oom_score_adj(mut self, on: bool) -> Self {
        self.restrict_oom_score_adj = on;
        self
    }

    /// Say that the manager has a network driver (CNI): pods that are not
    /// `hostNetwork` join its default network (an address, port mappings)
    /// instead of a loopback-only namespace.
    pub fn with_pod_network(mut self) -> Self {
        self.networked = true;
        self
    }

    /// Serve both services on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::UnixListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> engine_core::Result<()> {
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let streaming = self.streaming.clone().map(|s| tokio::spawn(s.serve(self.mgr.clone())));
        let res = tonic::transport::Server::builder()
            .add_service(pb::runtime_service_server::RuntimeServiceServer::new(self.clone()))
            .add_service(pb::image_service_server::ImageServiceServer::new(self))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| Error::Other(format!("CRI server: {e}")));
        if let Some(s) = streaming {
            s.abort();
        }
        res
    }

    /// Every container this server made: sandboxes and pods' containers.
    async fn all(&self) -> Result<Vec<ContainerInfo>, Status> {
        self.mgr.list(ListFilter::default().all(true).labels(vec![KIND.to_string()])).await.map_err(status)
    }

    /// The one of `kind` (`sandbox` or `container`, named `what` in errors)
    /// with exactly this id or a unique prefix of it, as crictl allows.
    async fn one(&self, kind: &str, what: &str, id: &str) -> Result<ContainerInfo, Status> {
        if id.is_empty() {
            return Err(invalid(&format!("{what} id"), "empty"));
        }
        let found: Vec<_> =
            self.all().await?.into_iter().filter(|c| is_kind(c, kind) && c.id.starts_with(id)).collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(Status::not_found(format!("{what} {id} not found"))),
            _ => Err(invalid(&format!("{what} id"), format!("{id} is ambiguous"))),
        }
    }

    /// The sandbox with this id or a unique prefix of it.
    async fn sandbox(&self, id: &str) -> Result<ContainerInfo, Status> {
        self.one("sandbox", "pod sandbox", id).await
    }

    /// The pod's container with this id or a unique prefix of it.
    async fn container(&self, id: &str) -> Result<ContainerInfo, Status> {
        self.one("container", "container", id).await
    }

    /// A container that must be running (FailedPrecondition otherwise).
    async fn running_container(&self, id: &str) -> Result<ContainerInfo, Status> {
        let c = self.container(id).await?;
        if container_state(&c) != pb::ContainerState::ContainerRunning {
            return Err(Status::failed_precondition(format!("container {} is not running", c.id)));
        }
        Ok(c)
    }

    /// Stop `info` if it runs, giving it `timeout` seconds; one already
    /// gone is stopped.
    async fn stop_engine_container(&self, info: &ContainerInfo, timeout: i64) -> Result<(), Status> {
        if matches!(info.state, ContainerState::Running | ContainerState::Paused | ContainerState::Restarting) {
            let grace = Duration::from_secs(timeout.max(0) as u64);
            match self.mgr.stop(&info.id, Some(grace)).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(status(e)),
            }
        }
        Ok(())
    }
}
