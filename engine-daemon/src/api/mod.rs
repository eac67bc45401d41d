//! Routing: the versioned and unversioned paths, greedy image names, and the
//! handlers behind them.

mod archive;
mod auth;
pub(crate) mod build;
mod commit;
mod containers;
mod exec;
mod hijack;
mod images;
mod networks;
mod plugins;
mod system;
pub(crate) mod volumes;

use crate::events::EventBus;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use crate::DaemonConfig;
use engine_core::{Error, ExecConfig, ImageStore, LifecycleManager, NetworkDriver, VolumeDriver};
use http::{Method, Request, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// An exec created through the API and maybe started.
#[derive(Clone, Debug)]
pub(crate) struct ExecEntry {
    pub container_id: String,
    pub config: ExecConfig,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    /// The manager's exec id once started.
    pub started: Option<String>,
    pub created: Instant,
}

/// Everything the handlers share.
pub(crate) struct State {
    pub manager: Arc<dyn LifecycleManager>,
    pub images: Arc<dyn ImageStore>,
    /// The network driver behind `bridge` and user networks (`None`: only
    /// `none`, `host` and `container:` modes).
    pub network: Option<Arc<dyn NetworkDriver>>,
    /// The volume driver behind `/volumes` (`None`: none served).
    pub volumes: Option<Arc<dyn VolumeDriver>>,
    pub config: DaemonConfig,
    pub execs: Mutex<HashMap<String, ExecEntry>>,
    pub events: Arc<EventBus>,
    pub id: String,
    /// The image builder, made at start ([`crate::Daemon::recover_builds`])
    /// or on first `/build`.
    pub builder: tokio::sync::OnceCell<Arc<engine_build::Builder>>,
}

impl State {
    pub(crate) fn new(
        manager: Arc<dyn LifecycleManager>,
        images: Arc<dyn ImageStore>,
        network: Option<Arc<dyn NetworkDriver>>,
        volumes: Option<Arc<dyn VolumeDriver>>,
        config: DaemonConfig,
    ) -> Arc<Self> {
        Arc::new(State {
            manager,
            images,
            network,
            volumes,
            config,
            execs: Mutex::new(HashMap::new()),
            events: Arc::new(EventBus::new()),
            id: engine_core::random_hex64(),
            builder: tokio::sync::OnceCell::new(),
        })
    }
}

impl State {
    /// A shareable handle on the event bus.
    pub(crate) fn events_handle(&self) -> Arc<EventBus> {
        self.events.clone()
    }
}

/// Strip `/v1.41` (any `/vN.N`) from a path; returns the rest (starting with `/`).
pub(crate) fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let v = &rest[..end];
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') && v.contains('.') {
            let tail = &rest[end..];
            return if tail.is_empty() { "/" } else { tail };
        }
    }
    path
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// Dispatch one request.
pub(crate) async fn handle(st: Arc<State>, mut req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let path = strip_version(&raw_path).to_string();
    let q = Query::parse(req.uri().query());
    tracing::debug!(%method, path = %raw_path, "request");
    let segs: Vec<String> = path.trim_start_matches('/').split('/').map(decode).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();

    let result: Result<Resp, Error> = match (m, s.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => Ok(system::ping(m == "HEAD")),
        ("GET", ["version"]) => Ok(system::version(&st)),
        ("POST", ["auth"]) => auth::login(&st, req.into_body()).await,
        ("GET", ["info"]) => system::info(&st).await,
        ("GET", ["events"]) => system::events(&st, &q).await,
        ("GET", ["system", "df"]) => system::df(&st).await,
        ("GET", ["networks"]) => networks::list(&st, &q).await,
        ("POST", ["networks", "create"]) => networks::create(&st, req.into_body()).await,
        ("POST", ["networks", "prune"]) => networks::prune(&st, &q).await,
        ("GET", ["networks", n]) => networks::inspect(&st, n).await,
        ("DELETE", ["networks", n]) => networks::remove(&st, n).await,
        ("POST", ["networks", n, "connect"]) => networks::connect(&st, n, true, req.into_body()).await,
        ("POST", ["networks", n, "disconnect"]) => networks::connect(&st, n, false, req.into_body()).await,
        ("GET", ["volumes"]) => volumes::list(&st, &q).await,
        ("POST", ["volumes", "create"]) => volumes::create(&st, req.into_body()).await,
        ("POST", ["volumes", "prune"]) => volumes::prune(&st, &q, &raw_path).await,
        ("GET", ["volumes", n]) => volumes::inspect(&st, n).await,
        ("DELETE", ["volumes", n]) => volumes::remove(&st, n, &q).await,
        ("GET", ["plugins"]) => plugins::list(&st, &q).await,
        ("GET", ["plugins", n, "json"]) => plugins::inspect(&st, n).await,

        ("GET", ["containers", "json"]) => containers::list(&st, &q).await,
        ("POST", ["containers", "prune"]) => containers::prune(&st).await,
        ("POST", ["containers", "create"]) => containers::create(&st, &q, req.into_body()).await,
        ("GET", ["containers", id, "json"]) => containers::inspect(&st, id).await,
        ("POST", ["containers", id, "start"]) => containers::start(&st, id).await,
        ("POST", ["containers", id, "stop"]) => containers::stop(&st, id, &q).await,
        ("POST", ["containers", id, "restart"]) => containers::restart(&st, id, &q).await,
        ("POST", ["containers", id, "kill"]) => containers::kill(&st, id, &q).await,
        ("POST", ["containers", id, "pause"]) => containers::pause(&st, id, true).await,
        ("POST", ["containers", id, "unpause"]) => containers::pause(&st, id, false).await,
        ("POST", ["containers", id, "wait"]) => containers::wait(&st, id, &q).await,
        ("POST", ["containers", id, "resize"]) => containers::resize(&st, id, &q).await,
        ("GET", ["containers", id, "logs"]) => containers::logs(&st, id, &q).await,
        ("GET", ["containers", id, "top"]) => containers::top(&st, id).await,
        ("GET", ["containers", id, "stats"]) => containers::stats(&st, id, &q).await,
        ("DELETE", ["containers", id]) => containers::remove(&st, id, &q).await,
        ("HEAD", ["containers", id, "archive"]) => archive::head(&st, id, &q).await,
        ("GET", ["containers", id, "archive"]) => archive::get(&st, id, &q).await,
        ("GET", ["containers", id, "export"]) => archive::export(&st, id).await,
        ("PUT", ["containers", id, "archive"]) => archive::put(&st, id, &q, req.into_body()).await,
        ("POST", ["containers", id, "attach"]) => {
            let id = id.to_string();
            hijack::attach(&st, &id, &q, &mut req).await
        }
        ("POST", ["containers", id, "exec"]) => exec::create(&st, id, req.into_body()).await,
        ("POST", ["exec", id, "start"]) => {
            let id = id.to_string();
            exec::start(&st, &id, req).await
        }
        ("GET", ["exec", id, "json"]) => exec::inspect(&st, id).await,
        ("POST", ["exec", id, "resize"]) => exec::resize(&st, id, &q).await,

        ("POST", ["commit"]) => commit::commit(&st, &q, req.into_body()).await,
        ("POST", ["build"]) => build::build(&st, &q, req.into_body()).await,
        ("POST", ["build", "prune"]) => build::prune(&st).await,
        (_, ["images", ..]) => images::route(&st, &method, &path, &q, req).await,
        _ => {
            return h::error_status(StatusCode::NOT_FOUND, format!("page not found: {method} {raw_path}"));
        }
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            if h::status_of(&e).is_server_error() {
                tracing::warn!(%method, path = %raw_path, error = %e, "request failed");
            } else {
                tracing::debug!(%method, path = %raw_path, error = %e, "request refused");
            }
            h::error(&e)
        }
    };
    if method == Method::HEAD {
        let (parts, _) = resp.into_parts();
        return http::Response::from_parts(parts, h::empty());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_stripped() {
        assert_eq!(strip_version("/v1.41/containers/json"), "/containers/json");
        assert_eq!(strip_version("/containers/json"), "/containers/json");
        assert_eq!(strip_version("/v1.50/_ping"), "/_ping");
        assert_eq!(strip_version("/volumes/x"), "/volumes/x");
        assert_eq!(decode("a%2Fb"), "a/b");
    }
}
