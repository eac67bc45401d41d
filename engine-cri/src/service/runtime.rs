//! The RuntimeService: each RPC goes to the module that serves it; the
//! runtime's own status and its RuntimeClass handlers are answered here.

use super::{containers, exec, invalid, pods, stats, CriServer, PAUSE_IMAGE, R};
use crate::pb;
use engine_core::ListFilter;
use tonic::{Request, Response, Status};

impl CriServer {
    /// The manager's runtime for RuntimeClass handler `handler` (`None`:
    /// its default runtime, for the empty handler).
    pub(super) fn handler_runtime(&self, handler: &str) -> Result<Option<String>, Status> {
        match handler {
            "" => Ok(None),
            h => match self.handlers.get(h) {
                Some(r) => Ok(Some(r.clone())),
                None => {
                    let known: Vec<&str> =
                        std::iter::once("\"\" (default)").chain(self.handlers.keys().map(|s| s.as_str())).collect();
                    Err(invalid("runtime_handler", format!("{h:?} is not served (known: {})", known.join(", "))))
                }
            },
        }
    }
}

#[tonic::async_trait]
impl pb::runtime_service_server::RuntimeService for CriServer {
    async fn version(&self, _req: Request<pb::VersionRequest>) -> R<pb::VersionResponse> {
        Ok(Response::new(pb::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: crate::RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: crate::CRI_VERSION.into(),
        }))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> R<pb::StatusResponse> {
        let runtime_ok = self.mgr.list(ListFilter::default()).await;
        let pause = self.images.inspect(PAUSE_IMAGE).await;
        let conditions = vec![
            pb::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: runtime_ok.is_ok() && pause.is_ok(),
                reason: if runtime_ok.is_ok() && pause.is_ok() { String::new() } else { "RuntimeNotReady".into() },
                message: match (&runtime_ok, &pause) {
                    (Err(e), _) | (_, Err(e)) => e.to_string(),
                    _ => String::new(),
                },
            },
            // Without a network driver, pods get a loopback-only namespace
            // (or the host's): kubelet must know that pod networking is not
            // there, as containerd says when it has no CNI configuration.
            pb::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: self.networked,
                reason: if self.networked { String::new() } else { "NetworkPluginNotReady".into() },
                message: if self.networked {
                    String::new()
                } else {
                    "no pod network: engine-cri runs with --network-driver none (pods get a loopback-only \
                     namespace; only hostNetwork pods reach the network)"
                        .into()
                },
            },
        ];
        let runtime_handlers = std::iter::once(String::new())
            .chain(self.handlers.keys().cloned())
            .map(|name| pb::RuntimeHandler { name, features: Some(Default::default()) })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            status: Some(pb::RuntimeStatus { conditions }),
            runtime_handlers,
            ..Default::default()
        }))
    }

    async fn run_pod_sandbox(&self, req: Request<pb::RunPodSandboxRequest>) -> R<pb::RunPodSandboxResponse> {
        pods::run(self, req).await
    }

    async fn stop_pod_sandbox(&self, req: Request<pb::StopPodSandboxRequest>) -> R<pb::StopPodSandboxResponse> {
        pods::stop(self, req).await
    }

    async fn remove_pod_sandbox(&self, req: Request<pb::RemovePodSandboxRequest>) -> R<pb::RemovePodSandboxResponse> {
        pods::remove(self, req).await
    }

    async fn pod_sandbox_status(&self, req: Request<pb::PodSandboxStatusRequest>) -> R<pb::PodSandboxStatusResponse> {
        pods::sandbox_status(self, req).await
    }

    async fn list_pod_sandbox(&self, req: Request<pb::ListPodSandboxRequest>) -> R<pb::ListPodSandboxResponse> {
        pods::list(self, req).await
    }

    async fn create_container(&self, req: Request<pb::CreateContainerRequest>) -> R<pb::CreateContainerResponse> {
        containers::create(self, req).await
    }

    async fn start_container(&self, req: Request<pb::StartContainerRequest>) -> R<pb::StartContainerResponse> {
        containers::start(self, req).await
    }

    async fn stop_container(&self, req: Request<pb::StopContainerRequest>) -> R<pb::StopContainerResponse> {
        containers::stop(self, req).await
    }

    async fn remove_container(&self, req: Request<pb::RemoveContainerRequest>) -> R<pb::RemoveContainerResponse> {
        containers::remove(self, req).await
    }

    async fn list_containers(&self, req: Request<pb::ListContainersRequest>) -> R<pb::ListContainersResponse> {
        containers::list(self, req).await
    }

    async fn container_status(&self, req: Request<pb::ContainerStatusRequest>) -> R<pb::ContainerStatusResponse> {
        containers::container_status(self, req).await
    }

    async fn update_container_resources(
        &self,
        req: Request<pb::UpdateContainerResourcesRequest>,
    ) -> R<pb::UpdateContainerResourcesResponse> {
        containers::update_resources(self, req).await
    }

    async fn reopen_container_log(
        &self,
        req: Request<pb::ReopenContainerLogRequest>,
    ) -> R<pb::ReopenContainerLogResponse> {
        containers::reopen_log(self, req).await
    }

    async fn container_stats(&self, req: Request<pb::ContainerStatsRequest>) -> R<pb::ContainerStatsResponse> {
        stats::container(self, req).await
    }

    async fn list_container_stats(
        &self,
        req: Request<pb::ListContainerStatsRequest>,
    ) -> R<pb::ListContainerStatsResponse> {
        stats::list_containers(self, req).await
    }

    async fn pod_sandbox_stats(&self, req: Request<pb::PodSandboxStatsRequest>) -> R<pb::PodSandboxStatsResponse> {
        stats::pod(self, req).await
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<pb::ListPodSandboxStatsRequest>,
    ) -> R<pb::ListPodSandboxStatsResponse> {
        stats::list_pods(self, req).await
    }

    async fn exec(&self, req: Request<pb::ExecRequest>) -> R<pb::ExecResponse> {
        exec::exec(self, req).await
    }

    async fn exec_sync(&self, req: Request<pb::ExecSyncRequest>) -> R<pb::ExecSyncResponse> {
        exec::exec_sync(self, req).await
    }

    async fn attach(&self, req: Request<pb::AttachRequest>) -> R<pb::AttachResponse> {
        exec::attach(self, req).await
    }

    async fn port_forward(&self, req: Request<pb::PortForwardRequest>) -> R<pb::PortForwardResponse> {
        exec::port_forward(self, req).await
    }
}
