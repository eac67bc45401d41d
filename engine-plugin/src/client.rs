//! The protocol's client: one HTTP/1.1 POST per call, JSON in and out.

use crate::{PluginAddr, PluginError, PluginSpec};
use bytes::Bytes;
use futures::TryStreamExt;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, BodyStream, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::task::JoinHandle;

/// The media type of protocol v1 bodies (what plugins send back).
pub const MEDIA_TYPE_V1: &str = "application/vnd.docker.plugins.v1+json";
/// The media type of protocol v1.2, what dockerd puts in `Accept` and
/// `Content-Type` of every call.
pub const MEDIA_TYPE_V1_2: &str = "application/vnd.docker.plugins.v1.2+json";
/// How long a call may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest JSON answer read from a plugin.
pub const MAX_ANSWER: usize = 16 << 20;

/// A client for one plugin: calls `POST /<Interface>.<Method>` with a JSON
/// body and decodes the JSON answer, each call on a fresh connection and
/// bounded by [`Client::timeout`] (connect, send, and read the answer).
///
/// A non-200 answer with `{"Err": "..."}` becomes [`PluginError::Remote`]
/// with that message; any other non-200 answer, a body that is not the
/// expected JSON, or a dropped connection becomes [`PluginError::BadAnswer`]
/// or [`PluginError::Unreachable`], naming plugin and method.
#[derive(Clone, Debug)]
pub struct Client {
    spec: PluginSpec,
    timeout: Duration,
}

/// A JSON answer's `Err` field, which every v1 interface carries.
#[derive(Deserialize, Default)]
struct ErrField {
    #[serde(rename = "Err", default)]
    err: Option<String>,
}

/// An answer body streamed as it arrives (`LogDriver.ReadLogs`). It reads
/// until the plugin ends the body; dropping it closes the connection.
pub struct AnswerStream {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    _conn: AbortOnDrop,
}

impl std::fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerStream")
    }
}

impl AsyncRead for AnswerStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Client {
    /// A client for the plugin `spec` names, with [`DEFAULT_TIMEOUT`].
    pub fn new(spec: PluginSpec) -> Self {
        Client { spec, timeout: DEFAULT_TIMEOUT }
    }

    /// Bound every call by `timeout` instead.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bound on each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What discovery found.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// Call `method` (`"VolumeDriver.Mount"`) with `req` as the JSON body and
    /// decode the answer as `T`. The answer's `Err` field, when present and
    /// not empty, is returned as [`PluginError::Remote`] whatever the status.
    pub async fn call<Req: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<T, PluginError> {
        let body = serde_json::to_vec(req).map_err(|e| self.bad(method, format!("encoding the request: {e}")))?;
        let answer = self.call_raw(method, body.into()).await?;
        let text = if answer.is_empty() { &b"{}"[..] } else { &answer[..] };
        if let Ok(ErrField { err: Some(err) }) = serde_json::from_slice::<ErrField>(text) {
            if !err.is_empty() {
                return Err(self.remote(method, err));
            }
        }
        serde_json::from_slice(text).map_err(|e| self.bad(method, format!("{e} in {}", preview(&answer))))
    }

    /// Call `method` with a raw body and return the raw answer of a 200.
    /// Other statuses become [`PluginError::Remote`] (an `Err` field) or
    /// [`PluginError::BadAnswer`].
    pub async fn call_raw(&self, method: &str, body: Bytes) -> Result<Bytes, PluginError> {
        let fut = async {
            let (resp, _conn) = self.send(method, body).await?;
            let status = resp.status();
            let answer = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| self.unreachable(method, format!("reading the answer: {e}")))?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(self.status_error(method, status, &answer));
            }
            Ok(answer)
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| self.timed_out(method))?
    }

    /// Call `method` and stream the answer's body (for answers that are not
    /// one JSON value, like `LogDriver.ReadLogs`). The timeout bounds the
    /// call until the answer's head arrives; reading the body is unbounded.
    pub async fn call_stream<Req: Serialize + ?Sized>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<AnswerStream, PluginError> {
        let body = serde_json::to_vec(req).map_err(|e| self.bad(method, format!("encoding the request: {e}")))?;
        let fut = async {
            let (resp, conn) = self.send(method, body.into()).await?;
            let status = resp.status();
            if status != StatusCode::OK {
                let answer = Limited::new(resp.into_body(), MAX_ANSWER)
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                return Err(self.status_error(method, status, &answer));
            }
            let stream = BodyStream::new(resp.into_body())
                .try_filter_map(|frame| futures::future::ready(Ok(frame.into_data().ok())))
                .map_err(std::io::Error::other);
            Ok(AnswerStream { inner: Box::pin(tokio_util::io::StreamReader::new(stream)), _conn: conn })
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| self.timed_out(method))?
    }

    /// The error for a non-200 answer: the plugin's `Err` when it gave one.
    fn status_error(&self, method: &str, status: StatusCode, answer: &[u8]) -> PluginError {
        match serde_json::from_slice::<ErrField>(answer) {
            Ok(ErrField { err: Some(err) }) if !err.is_empty() => self.remote(method, err),
            _ => self.bad(method, format!("HTTP {status}: {}", preview(answer))),
        }
    }

    async fn send(&self, method: &str, body: Bytes) -> Result<(hyper::Response<Incoming>, AbortOnDrop), PluginError> {
        match &self.spec.addr {
            PluginAddr::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| self.unreachable(method, format!("connect: {e}")))?;
                self.send_on(s, method, body).await
            }
            PluginAddr::Tcp(addr) => {
                let s = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| self.unreachable(method, format!("connect: {e}")))?;
                self.send_on(s, method, body).await
            }
        }
    }

    async fn send_on<S>(
        &self,
        stream: S,
        method: &str,
        body: Bytes,
    ) -> Result<(hyper::Response<Incoming>, AbortOnDrop), PluginError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(method, format!("handshake: {e}")))?;
        let name = self.spec.name.clone();
        let conn = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(plugin = %name, error = %e, "plugin connection ended");
            }
        }));
        let host = match &self.spec.addr {
            PluginAddr::Tcp(a) => a.clone(),
            PluginAddr::Unix(_) => "plugin".to_string(),
        };
        let req = Request::post(format!("/{method}"))
            .header(header::HOST, host)
            .header(header::ACCEPT, MEDIA_TYPE_V1_2)
            .header(header::CONTENT_TYPE, MEDIA_TYPE_V1_2)
            .body(Full::new(body))
            .map_err(|e| self.bad(method, format!("building the request: {e}")))?;
        tracing::trace!(plugin = %self.spec.name, %method, "plugin call");
        let resp = sender.send_request(req).await.map_err(|e| self.unreachable(method, e.to_string()))?;
        Ok((resp, conn))
    }

    fn unreachable(&self, method: &str, reason: String) -> PluginError {
        PluginError::Unreachable {
            name: self.spec.name.clone(),
            addr: self.spec.addr.to_string(),
            method: method.to_string(),
            reason,
        }
    }

    fn timed_out(&self, method: &str) -> PluginError {
        PluginError::Timeout { name: self.spec.name.clone(), method: method.to_string(), after: self.timeout }
    }

    fn bad(&self, method: &str, reason: String) -> PluginError {
        PluginError::BadAnswer { name: self.spec.name.clone(), method: method.to_string(), reason }
    }

    fn remote(&self, method: &str, message: String) -> PluginError {
        PluginError::Remote { name: self.spec.name.clone(), method: method.to_string(), message }
    }
}

/// The start of an answer, for error messages.
fn preview(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned();
    if b.len() > 120 {
        format!("{s:?}...")
    } else {
        format!("{s:?}")
    }
}
