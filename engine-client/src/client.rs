//! The typed client.

use crate::frames::{Frame, FrameDecoder, RawDecoder};
use crate::models::*;
use bytes::Bytes;
use engine_core::{Error, RegistryAuth, Result};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, BodyStream, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyperlocal::UnixConnector;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::FramedRead;
use tokio_util::io::{ReaderStream, StreamReader};

/// The socket engined listens on when nothing else is said.
pub const DEFAULT_SOCKET: &str = "/run/engine/engined.sock";

use engine_api::{split_tag, API_VERSION, ERROR_KIND_HEADER};

type ReqBody = BoxBody<Bytes, std::io::Error>;

/// A live hijacked stream (attach or exec): output frames from the process
/// and a writer to its stdin. Shutting `input` down half-closes the
/// connection, which closes the process's stdin; output keeps flowing until
/// the process's output ends. Dropping both detaches.
pub struct AttachIo {
    /// Output frames (a terminal's raw bytes come as stdout frames).
    pub output: BoxStream<'static, Result<Frame>>,
    /// Raw bytes to the process's stdin.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for AttachIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachIo").finish_non_exhaustive()
    }
}

/// What to attach to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachParams {
    /// Send input to stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
    /// Replay the stored log first.
    pub logs: bool,
}

impl Default for AttachParams {
    fn default() -> Self {
        AttachParams { stdin: false, stdout: true, stderr: true, logs: false }
    }
}

/// Options for [`Client::logs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogsParams {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Keep streaming until the container exits.
    pub follow: bool,
    /// Prefix each line with its capture time (RFC 3339 nanos and a space).
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only lines at or after this Unix time (seconds).
    pub since: Option<i64>,
}

impl Default for LogsParams {
    fn default() -> Self {
        LogsParams { stdout: true, stderr: true, follow: false, timestamps: false, tail: None, since: None }
    }
}

/// The output and exit code of an exec, from [`Client::exec_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (a value, never an error).
    pub exit_code: i64,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

/// A wait whose response headers have arrived: the daemon is now watching
/// the container, so it is safe to start it. Await [`PendingWait::exit_code`]
/// for the result.
pub struct PendingWait {
    resp: Response<Incoming>,
    id: String,
}

impl std::fmt::Debug for PendingWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingWait").field("id", &self.id).finish_non_exhaustive()
    }
}

impl PendingWait {
    /// The container's exit code once the condition is met. A wait that the
    /// daemon ended with an error message gives [`Error::Other`].
    pub async fn exit_code(self) -> Result<i64> {
        let body = read_body(self.resp, 1 << 20).await?;
        let w: WaitResponse = parse_json(&body, "wait response")?;
        if let Some(e) = w.error {
            if !e.message.is_empty() {
                return Err(Error::Other(format!("waiting for container {}: {}", self.id, e.message)));
            }
        }
        Ok(w.status_code)
    }
}

/// A typed async client for engined's (Docker-compatible) API on a unix socket.
///
/// Errors are typed from the HTTP status: 404 is [`Error::NotFound`], 409
/// [`Error::Conflict`], 400 [`Error::InvalidInput`]; an exit code is a value.
/// Streams own their connection and do not borrow the client.
#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    http: HttpClient<UnixConnector, ReqBody>,
    prefix: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("socket", &self.socket).finish_non_exhaustive()
    }
}

fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn empty() -> ReqBody {
    full(Bytes::new())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Encode registry credentials the way docker does for `X-Registry-Auth`
/// (base64url of `{"username","password","serveraddress","identitytoken","registrytoken"}`).
pub fn encode_registry_auth(auth: Option<&RegistryAuth>, server: &str) -> String {
    use base64::Engine as _;
    let mut m = serde_json::Map::new();
    if let Some(a) = auth {
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        };
        put("username", &a.username);
        put("password", &a.password);
        put("identitytoken", &a.identity_token);
        put("registrytoken", &a.registry_token);
        if !server.is_empty() {
            m.insert("serveraddress".into(), server.into());
        }
    }
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::Value::Object(m).to_string())
}

fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Error::Other(format!("engined sent a {what} that does not parse: {e}: {}", String::from_utf8_lossy(body)))
    })
}

async fn read_body(resp: Response<Incoming>, limit: usize) -> Result<Bytes> {
    let body = http_body_util::Limited::new(resp.into_body(), limit);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::unavailable("engined response", format!("reading the body: {e}")))
}

/// Turn an error answer into the engine's typed error. `kind` and `id` name the
/// object the request was about.
pub async fn error_from_response(resp: Response<Incoming>, kind: &'static str, id: &str) -> Error {
    let status = resp.status();
    let engine_kind = resp.headers().get(ERROR_KIND_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = read_body(resp, 1 << 20).await.unwrap_or_default();
    let message = serde_json::from_slice::<ErrorResponse>(&body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
    error_from_status(status, engine_kind.as_deref(), &message, kind, id)
}

/// The typed error for a status, an optional engine error kind and a message.
pub fn error_from_status(
    status: StatusCode,
    engine_kind: Option<&str>,
    message: &str,
    kind: &'static str,
    id: &str,
) -> Error {
    // The daemon's own kind tells which object was missing (a create that
    // fails on its image names the image).
    let not_found_kind = |message: &str| -> (&'static str, String) {
        let lower = message.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("no such image: ") {
            return ("image", message[message.len() - rest.len()..].to_string());
        }
        if let Some(rest) = lower.strip_prefix("no such container: ") {
            return ("container", message[message.len() - rest.len()..].to_string());
        }
        if let Some(rest) = lower.strip_prefix("no such exec instance: ") {
            return ("exec", message[message.len() - rest.len()..].to_string());
        }
        (kind, id.to_string())
    };
    match (status.as_u16(), engine_kind) {
        (404, _) | (_, Some("not_found")) => {
            let (k, i) = not_found_kind(message);
            Error::NotFound { kind: k, id: i }
        }
        (409, _) | (_, Some("conflict")) => Error::conflict(kind, id, message),
        (400, _) | (_, Some("invalid_input")) => Error::invalid(format!("request for {kind} {id}"), message),
        (403, _) => Error::unavailable("engined", format!("permission denied: {message}")),
        (_, Some("unavailable")) | (503, _) => Error::unavailable(format!("{kind} {id}"), message),
        (_, Some("registry")) => Error::Registry { reference: id.to_string(), message: message.to_string() },
        (_, Some("runtime")) => Error::Runtime { runtime: "runtime".into(), message: message.to_string() },
        (_, Some("unsupported")) | (501, _) => Error::Unsupported(message.to_string()),
        _ => Error::Other(format!("{kind} {id}: {message} (HTTP {status})")),
    }
}

fn progress_stream(resp: Response<Incoming>, reference: String) -> BoxStream<'static, Result<ProgressMessage>> {
    json_stream::<ProgressMessage>(resp)
        .map(move |m| match m {
            Ok(m) if m.error.is_some() || m.error_detail.is_some() => {
                let msg = m.error.or(m.error_detail.map(|d| d.message)).unwrap_or_default();
                Err(Error::Registry { reference: reference.clone(), message: msg })
            }
            other => other,
        })
        .boxed()
}

/// A stream of JSON values as they arrive in a (chunked) body, however the
/// chunks cut them.
fn json_stream<T: DeserializeOwned + Send + 'static>(resp: Response<Incoming>) -> BoxStream<'static, Result<T>> {
    let reader = body_reader(resp);
    FramedRead::new(reader, crate::jsonstream::JsonDecoder::<T>::default())
        .map_err(|e| Error::unavailable("engined stream", e.to_string()))
        .boxed()
}

fn body_reader(resp: Response<Incoming>) -> impl AsyncRead + Send + Unpin + 'static {
    let s = BodyStream::new(resp.into_body())
        .try_filter_map(|f| futures::future::ready(Ok(f.into_data().ok())))
        .map_err(std::io::Error::other);
    StreamReader::new(s)
}

impl Client {
    /// A client for the daemon on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        let http = HttpClient::builder(TokioExecutor::new()).build(UnixConnector);
        Client { socket: socket.into(), http, prefix: format!("/v{API_VERSION}") }
    }

    /// A client for `unix:///path` or a plain path.
    pub fn from_host(host: &str) -> Result<Self> {
        let path = if let Some(p) = host.strip_prefix("unix://") {
            p
        } else if host.contains("://") {
            return Err(Error::invalid("host", format!("{host:?}: only unix:// sockets are supported")));
        } else {
            host
        };
        if path.is_empty() {
            return Err(Error::invalid("host", format!("{host:?} names no socket path")));
        }
        Ok(Client::new(path))
    }

    /// A client for `$ENGINE_HOST`, else [`DEFAULT_SOCKET`].
    pub fn from_env() -> Result<Self> {
        match std::env::var("ENGINE_HOST") {
            Ok(h) if !h.is_empty() => Client::from_host(&h),
            _ => Ok(Client::new(DEFAULT_SOCKET)),
        }
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn uri(&self, path_and_query: &str) -> hyper::Uri {
        hyperlocal::Uri::new(&self.socket, &format!("{}{}", self.prefix, path_and_query)).into()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: Option<&str>,
        extra: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let mut b = Request::builder().method(method.clone()).uri(self.uri(path));
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        for (k, v) in extra {
            b = b.header(*k, v);
        }
        let req = b.body(body).map_err(|e| Error::invalid("request", format!("{method} {path}: {e}")))?;
        self.http.request(req).await.map_err(|e| {
            Error::unavailable(
                format!("engined at {}", self.socket.display()),
                format!("{method} {path}: {e}{}", source_chain(&e)),
            )
        })
    }

    /// Send a request and fail with a typed error unless the status is 2xx or 304.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: Option<&str>,
        kind: &'static str,
        id: &str,
    ) -> Result<Response<Incoming>> {
        let resp = self.send(method, path, body, content_type, &[]).await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED {
            Ok(resp)
        } else {
            Err(error_from_response(resp, kind, id).await)
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str, kind: &'static str, id: &str) -> Result<T> {
        let resp = self.call(Method::GET, path, empty(), None, kind, id).await?;
        let body = read_body(resp, 64 << 20).await?;
        parse_json(&body, kind)
    }

    async fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        kind: &'static str,
        id: &str,
    ) -> Result<T> {
        let data = serde_json::to_vec(body).map_err(|e| Error::invalid("request body", e.to_string()))?;
        let resp = self.call(Method::POST, path, full(data), Some("application/json"), kind, id).await?;
        let body = read_body(resp, 64 << 20).await?;
        parse_json(&body, kind)
    }

    /// Status-only call; returns true when the daemon answered 304 (nothing to do).
    async fn post_status(&self, path: &str, kind: &'static str, id: &str) -> Result<bool> {
        let resp = self.call(Method::POST, path, empty(), None, kind, id).await?;
        Ok(resp.status() == StatusCode::NOT_MODIFIED)
    }

    // ---- system ----

    /// `GET /_ping`: the daemon's API version.
    pub async fn ping(&self) -> Result<String> {
        let resp = self.call(Method::GET, "/_ping", empty(), None, "daemon", "ping").await?;
        Ok(resp.headers().get("api-version").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string())
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<VersionResponse> {
        self.get_json("/version", "daemon", "version").await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<InfoResponse> {
        self.get_json("/info", "daemon", "info").await
    }

    /// `GET /system/df` as raw JSON.
    pub async fn system_df(&self) -> Result<serde_json::Value> {
        self.get_json("/system/df", "daemon", "df").await
    }

    /// `GET /events`: events from now on.
    /// `filters` is Docker's filter map (`{"type":["container"]}`).
    pub async fn events(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<BoxStream<'static, Result<EventMessage>>> {
        self.events_between(filters, None, None).await
    }

    /// `GET /events` with `since` and `until` (Unix seconds, or RFC 3339 as
    /// docker takes them): the daemon's recent events from `since` on, then
    /// live ones; the stream ends at `until`.
    ///
    /// ```no_run
    /// # async fn f(c: &engine_client::Client) -> engine_core::Result<()> {
    /// use futures::StreamExt;
    /// let mut s = c.events_between(&Default::default(), Some("1700000000"), Some("1700000060")).await?;
    /// while let Some(ev) = s.next().await {
    ///     println!("{}", ev?.action);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn events_between(
        &self,
        filters: &HashMap<String, Vec<String>>,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<BoxStream<'static, Result<EventMessage>>> {
        let mut params = Vec::new();
        if !filters.is_empty() {
            params.push(format!("filters={}", enc(&serde_json::to_string(filters).unwrap_or_default())));
        }
        if let Some(s) = since {
            params.push(format!("since={}", enc(s)));
        }
        if let Some(u) = until {
            params.push(format!("until={}", enc(u)));
        }
        let mut q = String::from("/events");
        if !params.is_empty() {
            q.push('?');
            q.push_str(&params.join("&"));
        }
        let resp = self.call(Method::GET, &q, empty(), None, "daemon", "events").await?;
        Ok(json_stream(resp))
    }

    // ---- containers ----

    /// `POST /containers/create`; an unknown image is [`Error::NotFound`] of kind `image`.
    pub async fn create_container(&self, name: Option<&str>, config: &ContainerConfigBody) -> Result<CreateResponse> {
        let path = match name {
            Some(n) => format!("/containers/create?name={}", enc(n)),
            None => "/containers/create".to_string(),
        };
        let image = config.image.clone().unwrap_or_default();
        let data = serde_json::to_vec(config).map_err(|e| Error::invalid("container config", e.to_string()))?;
        let resp = self.send(Method::POST, &path, full(data), Some("application/json"), &[]).await?;
        if resp.status().is_success() {
            let body = read_body(resp, 1 << 20).await?;
            return parse_json(&body, "create response");
        }
        let status = resp.status();
        let e = error_from_response(resp, "container", name.unwrap_or("")).await;
        Err(match e {
            Error::NotFound { kind: "container", .. } if status == StatusCode::NOT_FOUND => {
                Error::not_found("image", image)
            }
            e => e,
        })
    }

    /// `POST /containers/{id}/start`; `Ok(false)` when it was already running.
    pub async fn start(&self, id: &str) -> Result<bool> {
        Ok(!self.post_status(&format!("/containers/{}/start", enc(id)), "container", id).await?)
    }

    /// `POST /containers/{id}/stop?t=`; `Ok(false)` when it was already stopped.
    pub async fn stop(&self, id: &str, timeout_secs: Option<i64>) -> Result<bool> {
        let mut p = format!("/containers/{}/stop", enc(id));
        if let Some(t) = timeout_secs {
            p.push_str(&format!("?t={t}"));
        }
        Ok(!self.post_status(&p, "container", id).await?)
    }

    /// `POST /containers/{id}/restart?t=`.
    pub async fn restart(&self, id: &str, timeout_secs: Option<i64>) -> Result<()> {
        let mut p = format!("/containers/{}/restart", enc(id));
        if let Some(t) = timeout_secs {
            p.push_str(&format!("?t={t}"));
        }
        self.post_status(&p, "container", id).await.map(|_| ())
    }

    /// `POST /containers/{id}/kill?signal=` (default SIGKILL).
    pub async fn kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let mut p = format!("/containers/{}/kill", enc(id));
        if let Some(s) = signal {
            p.push_str(&format!("?signal={}", enc(s)));
        }
        self.post_status(&p, "container", id).await.map(|_| ())
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, id: &str) -> Result<()> {
        self.post_status(&format!("/containers/{}/pause", enc(id)), "container", id).await.map(|_| ())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, id: &str) -> Result<()> {
        self.post_status(&format!("/containers/{}/unpause", enc(id)), "container", id).await.map(|_| ())
    }

    /// `POST /containers/{id}/resize?h=&w=`.
    pub async fn resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.post_status(&format!("/containers/{}/resize?h={height}&w={width}", enc(id)), "container", id)
            .await
            .map(|_| ())
    }

    /// Send a wait and return once the daemon acknowledged it (headers in);
    /// `condition` is `not-running`, `next-exit` or `removed`.
    pub async fn wait_ready(&self, id: &str, condition: &str) -> Result<PendingWait> {
        let p = format!("/containers/{}/wait?condition={}", enc(id), enc(condition));
        let resp = self.call(Method::POST, &p, empty(), None, "container", id).await?;
        Ok(PendingWait { resp, id: id.to_string() })
    }

    /// `POST /containers/{id}/wait`: the exit code once it is not running.
    pub async fn wait(&self, id: &str) -> Result<i64> {
        self.wait_ready(id, "not-running").await?.exit_code().await
    }

    /// `DELETE /containers/{id}?force=`.
    pub async fn remove_container(&self, id: &str, force: bool) -> Result<()> {
        let p = format!("/containers/{}?force={}&v=false", enc(id), force);
        self.call(Method::DELETE, &p, empty(), None, "container", id).await.map(|_| ())
    }

    /// `GET /containers/json`; `filters` is Docker's filter map (`{"name":["web"]}`).
    pub async fn list_containers(
        &self,
        all: bool,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ContainerSummary>> {
        let mut p = format!("/containers/json?all={}", all as u8);
        if !filters.is_empty() {
            p.push_str(&format!("&filters={}", enc(&serde_json::to_string(filters).unwrap_or_default())));
        }
        self.get_json(&p, "container", "list").await
    }

    /// `GET /containers/{id}/json`.
    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInspect> {
        self.get_json(&format!("/containers/{}/json", enc(id)), "container", id).await
    }

    /// `GET /containers/{id}/top`.
    pub async fn top(&self, id: &str) -> Result<TopResponse> {
        self.get_json(&format!("/containers/{}/top", enc(id)), "container", id).await
    }

    /// `GET /containers/{id}/stats?stream=false` as Docker's stats JSON.
    pub async fn stats(&self, id: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/containers/{}/stats?stream=false", enc(id)), "container", id).await
    }

    /// `GET /containers/{id}/logs`: frames of stored (and with `follow`, live) output.
    pub async fn logs(&self, id: &str, params: &LogsParams) -> Result<BoxStream<'static, Result<Frame>>> {
        let tty = self.inspect_container(id).await?.config.tty.unwrap_or(false);
        let mut p = format!(
            "/containers/{}/logs?stdout={}&stderr={}&follow={}&timestamps={}&tail={}",
            enc(id),
            params.stdout as u8,
            params.stderr as u8,
            params.follow as u8,
            params.timestamps as u8,
            params.tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into())
        );
        if let Some(s) = params.since {
            p.push_str(&format!("&since={s}"));
        }
        let resp = self.call(Method::GET, &p, empty(), None, "container", id).await?;
        let reader = body_reader(resp);
        let map = |e: std::io::Error| Error::unavailable("log stream", e.to_string());
        Ok(if tty {
            FramedRead::new(reader, RawDecoder).map_err(map).boxed()
        } else {
            FramedRead::new(reader, FrameDecoder).map_err(map).boxed()
        })
    }

    /// `POST /containers/{id}/attach` (hijacked).
    pub async fn attach(&self, id: &str, params: AttachParams) -> Result<AttachIo> {
        let tty = self.inspect_container(id).await?.config.tty.unwrap_or(false);
        let p = format!(
            "/containers/{}/attach?stream=1&stdin={}&stdout={}&stderr={}&logs={}",
            enc(id),
            params.stdin as u8,
            params.stdout as u8,
            params.stderr as u8,
            params.logs as u8
        );
        self.hijack(&p, Bytes::new(), "text/plain", tty, "container", id).await
    }

    /// `POST /containers/{id}/exec`: create (not start) an exec; returns its id.
    pub async fn exec_create(&self, id: &str, body: &ExecCreateBody) -> Result<String> {
        let r: IdResponse = self.post_json(&format!("/containers/{}/exec", enc(id)), body, "container", id).await?;
        Ok(r.id)
    }

    /// `POST /exec/{id}/start` attached (hijacked).
    pub async fn exec_start(&self, exec_id: &str, tty: bool) -> Result<AttachIo> {
        let body = serde_json::to_vec(&ExecStartBody { detach: Some(false), tty: Some(tty), console_size: None })
            .unwrap_or_default();
        self.hijack(&format!("/exec/{}/start", enc(exec_id)), body.into(), "application/json", tty, "exec", exec_id)
            .await
    }

    /// `POST /exec/{id}/start` detached.
    pub async fn exec_start_detached(&self, exec_id: &str) -> Result<()> {
        let body = serde_json::to_vec(&ExecStartBody { detach: Some(true), tty: Some(false), console_size: None })
            .unwrap_or_default();
        let resp = self
            .call(
                Method::POST,
                &format!("/exec/{}/start", enc(exec_id)),
                full(body),
                Some("application/json"),
                "exec",
                exec_id,
            )
            .await?;
        read_body(resp, 1 << 20).await.map(|_| ())
    }

    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect> {
        self.get_json(&format!("/exec/{}/json", enc(exec_id)), "exec", exec_id).await
    }

    /// `POST /exec/{id}/resize?h=&w=`.
    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        self.post_status(&format!("/exec/{}/resize?h={height}&w={width}", enc(exec_id)), "exec", exec_id)
            .await
            .map(|_| ())
    }

    /// Run `cmd` in a running container and collect its output and exit code.
    pub async fn exec_output(&self, id: &str, cmd: &[&str]) -> Result<ExecOutput> {
        let body = ExecCreateBody {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(StrSlice(cmd.iter().map(|s| s.to_string()).collect())),
            ..Default::default()
        };
        let eid = self.exec_create(id, &body).await?;
        let mut io = self.exec_start(&eid, false).await?;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut io.input).await;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(f) = io.output.next().await {
            let f = f?;
            match f.stream {
                crate::frames::FrameStream::Stderr => stderr.extend_from_slice(&f.data),
                _ => stdout.extend_from_slice(&f.data),
            }
        }
        // The stream ends when the output closes; the exit code may land a moment later.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let info = self.exec_inspect(&eid).await?;
            if let (false, Some(code)) = (info.running, info.exit_code) {
                return Ok(ExecOutput { exit_code: code, stdout, stderr });
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: format!("exit code of exec {eid} in container {id}"),
                    after: std::time::Duration::from_secs(10),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn hijack(
        &self,
        path: &str,
        body: Bytes,
        content_type: &str,
        tty: bool,
        kind: &'static str,
        id: &str,
    ) -> Result<AttachIo> {
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::unavailable(format!("engined at {}", self.socket.display()), format!("POST {path}: {e}"))
        };
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| unavailable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, ReqBody>(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{}", self.prefix, path))
            .header(header::HOST, "engine")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp")
            .header(header::CONTENT_TYPE, content_type)
            .body(full(body))
            .map_err(|e| Error::invalid("request", e.to_string()))?;
        let mut resp = sender.send_request(req).await.map_err(|e| unavailable(&e))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            if resp.status().is_success() {
                return Err(Error::Other(format!("engined answered {} instead of upgrading {path}", resp.status())));
            }
            return Err(error_from_response(resp, kind, id).await);
        }
        let upgraded = hyper::upgrade::on(&mut resp).await.map_err(|e| unavailable(&e))?;
        let parts = upgraded
            .downcast::<TokioIo<tokio::net::UnixStream>>()
            .map_err(|_| Error::Other("upgraded connection is not a unix stream".into()))?;
        let stream = parts.io.into_inner();
        let (rd, wr) = stream.into_split();
        let reader = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(parts.read_buf), rd);
        let map = |e: std::io::Error| Error::unavailable("attach stream", e.to_string());
        let output = if tty {
            FramedRead::new(reader, RawDecoder).map_err(map).boxed()
        } else {
            FramedRead::new(reader, FrameDecoder).map_err(map).boxed()
        };
        Ok(AttachIo { output, input: Box::pin(wr) })
    }

    // ---- images ----

    /// `GET /images/json`.
    pub async fn list_images(&self) -> Result<Vec<ImageSummary>> {
        self.get_json("/images/json", "image", "list").await
    }

    /// `GET /images/{name}/json`.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        self.get_json(&format!("/images/{name}/json"), "image", name).await
    }

    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        self.get_json(&format!("/images/{name}/history"), "image", name).await
    }

    /// `POST /images/{name}/tag?repo=&tag=`.
    pub async fn tag_image(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        let p = format!("/images/{source}/tag?repo={}&tag={}", enc(repo), enc(tag));
        self.call(Method::POST, &p, empty(), None, "image", source).await.map(|_| ())
    }

    /// `DELETE /images/{name}`: what was untagged and deleted.
    pub async fn remove_image(&self, name: &str, force: bool) -> Result<Vec<HashMap<String, String>>> {
        let p = format!("/images/{name}?force={force}");
        let resp = self.call(Method::DELETE, &p, empty(), None, "image", name).await?;
        let body = read_body(resp, 1 << 20).await?;
        parse_json(&body, "image removal")
    }

    /// `POST /images/create?fromImage=`: pull, as a progress stream. A
    /// registry failure arrives as an `Err` item ([`Error::Registry`]); an
    /// unknown image before any progress is [`Error::NotFound`].
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<BoxStream<'static, Result<ProgressMessage>>> {
        let (image, tag) = split_tag(reference);
        let mut p = format!("/images/create?fromImage={}", enc(image));
        if let Some(t) = tag {
            p.push_str(&format!("&tag={}", enc(t)));
        }
        let resp =
            self.send(Method::POST, &p, empty(), None, &[("x-registry-auth", encode_registry_auth(auth, ""))]).await?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp, "image", reference).await);
        }
        Ok(progress_stream(resp, reference.to_string()))
    }

    /// `POST /images/{name}/push`, as a progress stream.
    pub async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<BoxStream<'static, Result<ProgressMessage>>> {
        let (image, tag) = split_tag(reference);
        let p = format!("/images/{image}/push?tag={}", enc(tag.unwrap_or("")));
        let resp =
            self.send(Method::POST, &p, empty(), None, &[("x-registry-auth", encode_registry_auth(auth, ""))]).await?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp, "image", reference).await);
        }
        Ok(progress_stream(resp, reference.to_string()))
    }

    /// `POST /images/load`: upload a docker-archive (or OCI archive) and
    /// return the progress stream (`stream: "Loaded image: ..."`).
    pub async fn load(
        &self,
        archive: impl AsyncRead + Send + Sync + 'static,
        quiet: bool,
    ) -> Result<BoxStream<'static, Result<ProgressMessage>>> {
        let body = BodyExt::boxed(StreamBody::new(ReaderStream::new(archive).map_ok(hyper::body::Frame::data)));
        let p = format!("/images/load?quiet={}", quiet as u8);
        let resp = self.call(Method::POST, &p, body, Some("application/x-tar"), "image", "archive").await?;
        Ok(progress_stream(resp, "archive".into()))
    }

    /// `POST /images/create?fromSrc=-&repo=`: import a root filesystem tar as an image.
    pub async fn import(
        &self,
        rootfs_tar: impl AsyncRead + Send + Sync + 'static,
        reference: &str,
    ) -> Result<BoxStream<'static, Result<ProgressMessage>>> {
        let body = BodyExt::boxed(StreamBody::new(ReaderStream::new(rootfs_tar).map_ok(hyper::body::Frame::data)));
        let p = format!("/images/create?fromSrc=-&repo={}", enc(reference));
        let resp = self.call(Method::POST, &p, body, Some("application/x-tar"), "image", reference).await?;
        Ok(progress_stream(resp, reference.to_string()))
    }

    /// `GET /images/get?names=...`: a docker-archive as a byte stream.
    pub async fn save(&self, names: &[&str]) -> Result<BoxStream<'static, Result<Bytes>>> {
        let q: Vec<String> = names.iter().map(|n| format!("names={}", enc(n))).collect();
        let p = format!("/images/get?{}", q.join("&"));
        let resp = self.call(Method::GET, &p, empty(), None, "image", &names.join(",")).await?;
        Ok(BodyStream::new(resp.into_body())
            .try_filter_map(|f| futures::future::ready(Ok(f.into_data().ok())))
            .map_err(|e| Error::unavailable("image archive stream", e.to_string()))
            .boxed())
    }

    /// `POST /build` (the classic builder's API): upload the build context
    /// (a tar of the context directory) and return the build's messages:
    /// `stream` text (steps, RUN output), then `aux` with the image id. A
    /// failed build arrives as an `Err` item naming the step; a bad
    /// Dockerfile or option is an error before any message.
    pub async fn build(
        &self,
        context_tar: impl AsyncRead + Send + Sync + 'static,
        params: &BuildParams,
    ) -> Result<BoxStream<'static, Result<ProgressMessage>>> {
        let body = BodyExt::boxed(StreamBody::new(ReaderStream::new(context_tar).map_ok(hyper::body::Frame::data)));
        let mut q: Vec<String> = params.tags.iter().map(|t| format!("t={}", enc(t))).collect();
        if let Some(d) = &params.dockerfile {
            q.push(format!("dockerfile={}", enc(d)));
        }
        if let Some(t) = &params.target {
            q.push(format!("target={}", enc(t)));
        }
        if !params.build_args.is_empty() {
            let m: HashMap<&str, &str> = params.build_args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            q.push(format!("buildargs={}", enc(&serde_json::to_string(&m).unwrap_or_default())));
        }
        q.push(format!("nocache={}", params.no_cache as u8));
        q.push(format!("pull={}", params.pull as u8));
        let p = format!("/build?{}", q.join("&"));
        let resp = self.call(Method::POST, &p, body, Some("application/x-tar"), "build", "context").await?;
        Ok(json_stream::<ProgressMessage>(resp)
            .map(|m| match m {
                Ok(m) if m.error.is_some() || m.error_detail.is_some() => {
                    Err(Error::invalid("build", m.error.or(m.error_detail.map(|d| d.message)).unwrap_or_default()))
                }
                other => other,
            })
            .boxed())
    }

    /// `POST /commit`: an image of `container`'s changes, tagged
    /// `repo:tag` when `repo` is given; returns the image id.
    pub async fn commit(&self, container: &str, repo: Option<&str>, params: &CommitParams) -> Result<String> {
        let mut q = vec![format!("container={}", enc(container)), format!("pause={}", params.pause as u8)];
        if let Some(r) = repo {
            let (name, tag) = split_tag(r);
            q.push(format!("repo={}&tag={}", enc(name), enc(tag.unwrap_or("latest"))));
        }
        q.extend(params.changes.iter().map(|c| format!("changes={}", enc(c))));
        if let Some(m) = &params.comment {
            q.push(format!("comment={}", enc(m)));
        }
        if let Some(a) = &params.author {
            q.push(format!("author={}", enc(a)));
        }
        let p = format!("/commit?{}", q.join("&"));
        let resp = self.call(Method::POST, &p, empty(), None, "container", container).await?;
        let body = read_body(resp, 1 << 20).await?;
        let v: serde_json::Value = parse_json(&body, "commit")?;
        Ok(v["Id"].as_str().unwrap_or_default().to_string())
    }

    /// `GET /networks`.
    pub async fn list_networks(&self) -> Result<Vec<NetworkBody>> {
        self.get_json("/networks", "network", "list").await
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = String::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// What [`Client::build`] asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildParams {
    /// Tags for the image (`-t`).
    pub tags: Vec<String>,
    /// The Dockerfile's path in the context (`-f`; default `Dockerfile`).
    pub dockerfile: Option<String>,
    /// Build up to this stage (`--target`).
    pub target: Option<String>,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    /// Do not use the cache.
    pub no_cache: bool,
    /// Pull base images even when present.
    pub pull: bool,
}

/// What [`Client::commit`] records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitParams {
    /// Dockerfile lines applied to the config (`--change`).
    pub changes: Vec<String>,
    /// Commit message (`-m`).
    pub comment: Option<String>,
    /// Author (`-a`).
    pub author: Option<String>,
    /// Pause a running container during the commit.
    pub pause: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_typed_errors() {
        let e = error_from_status(StatusCode::NOT_FOUND, None, "No such container: web", "container", "web");
        assert!(matches!(e, Error::NotFound { kind: "container", ref id } if id == "web"));
        let e = error_from_status(StatusCode::NOT_FOUND, None, "No such image: bb:latest", "container", "");
        assert!(matches!(e, Error::NotFound { kind: "image", ref id } if id == "bb:latest"));
        assert!(error_from_status(StatusCode::CONFLICT, None, "in use", "container", "a").is_conflict());
        assert!(error_from_status(StatusCode::BAD_REQUEST, None, "bad", "container", "a").is_invalid_input());
    }

    #[test]
    fn registry_auth_is_base64url_json() {
        use base64::Engine as _;
        let a = RegistryAuth::default().username(Some("u".into())).password(Some("p?>".into()));
        let enc = encode_registry_auth(Some(&a), "127.0.0.1:5000");
        let raw = base64::engine::general_purpose::URL_SAFE.decode(enc).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["username"], "u");
        assert_eq!(v["serveraddress"], "127.0.0.1:5000");
        assert_eq!(encode_registry_auth(None, ""), "e30=");
    }
}
