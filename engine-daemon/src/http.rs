//! Response helpers, Docker's error bodies, request bodies with a size limit,
//! and query strings.

use bytes::Bytes;
use engine_api::models::ErrorResponse;
use engine_core::Error;
use futures::stream::{BoxStream, StreamExt};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use std::collections::HashMap;

/// The response body type of every handler.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A handler's response.
pub type Resp = Response<Body>;

/// The request body every handler reads: the connection's own, or, when an
/// authorizer was shown the body, those bytes handed on.
pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A connection's body as the handlers take it.
pub fn boxed_body(b: hyper::body::Incoming) -> ReqBody {
    b.map_err(std::io::Error::other).boxed_unsync()
}

/// A connection's request as the handlers take it.
pub fn req_body(req: http::Request<hyper::body::Incoming>) -> http::Request<ReqBody> {
    req.map(boxed_body)
}

/// The API version engined advertises (`Api-Version`), which pins the docker CLI to it.
pub const API_VERSION: &str = engine_api::API_VERSION;

/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";

/// Largest JSON request body, in bytes.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// A complete body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body from a stream of chunks.
pub fn stream_body(s: BoxStream<'static, Result<Bytes, std::io::Error>>) -> Body {
    StreamBody::new(s.map(|r| r.map(Frame::data))).boxed_unsync()
}

/// Add the headers every non-hijacked answer carries.
pub fn add_common_headers(resp: &mut Resp) {
    let h = resp.headers_mut();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert(header::SERVER, HeaderValue::from_static(concat!("Engine/", env!("CARGO_PKG_VERSION"), " (linux)")));
}

/// A response with a status and body.
pub fn with_status(status: StatusCode, body: Body) -> Resp {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}

/// A JSON answer.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> Resp {
    let data = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = with_status(status, full(data));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A status with an empty body.
pub fn status(status: StatusCode) -> Resp {
    with_status(status, empty())
}

/// The HTTP status Docker uses for an engine error.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        Error::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The message docker's tools expect for an engine error ("No such container: x", ...).
pub fn docker_message(e: &Error) -> String {
    match e {
        Error::NotFound { kind, id } => match *kind {
            "container" => format!("No such container: {id}"),
            "image" => format!("No such image: {id}"),
            "exec" => format!("No such exec instance: {id}"),
            "network" => format!("network {id} not found"),
            "volume" => format!("get {id}: no such volume"),
            "plugin" => format!("plugin \"{id}\" not found"),
            _ => e.to_string(),
        },
        Error::Unsupported(m) if m == engine_core::logs::READ_NOT_SUPPORTED => m.clone(),
        // Messages the daemon writes in Docker's words are sentences of their own.
        Error::Conflict { reason, .. } | Error::InvalidInput { reason, .. }
            if reason.chars().next().is_some_and(|c| c.is_ascii_uppercase()) =>
        {
            reason.clone()
        }
        _ => e.to_string(),
    }
}

/// Docker's error answer for an engine error: `{"message": ...}` with the
/// matching status, plus a header naming the error kind for engine clients.
pub fn error(e: &Error) -> Resp {
    let st = status_of(e);
    let mut r = json(st, &ErrorResponse { message: docker_message(e) });
    r.headers_mut().insert(engine_api::ERROR_KIND_HEADER, HeaderValue::from_static(e.kind_name()));
    r
}

/// An error answer with an explicit status and message.
pub fn error_status(st: StatusCode, message: impl Into<String>) -> Resp {
    json(st, &ErrorResponse { message: message.into() })
}

/// Read a request body of at most `limit` bytes. An oversized body is an
/// [`Error::InvalidInput`] the router answers with 413.
pub async fn read_limited(body: ReqBody, limit: usize) -> Result<Bytes, BodyError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge(limit)),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit.
    TooLarge(usize),
    /// The connection failed.
    Read(String),
}

impl BodyError {
    /// The answer for it.
    pub fn response(&self) -> Resp {
        match self {
            BodyError::TooLarge(n) => {
                error_status(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than the {n}-byte limit"))
            }
            BodyError::Read(e) => error_status(StatusCode::BAD_REQUEST, format!("reading the request body: {e}")),
        }
    }
}

/// A parsed query string: every value of every key.
#[derive(Clone, Debug, Default)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    /// Parse `a=1&b=x&b=y`.
    pub fn parse(q: Option<&str>) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(q) = q {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                m.entry(k.into_owned()).or_default().push(v.into_owned());
            }
        }
        Query(m)
    }
    /// The first value of `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }
    /// Every value of `k`.
    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }
    /// Docker's boolean: `1`, `true`, `True` (anything but empty, `0`, `false`).
    pub fn bool(&self, k: &str) -> bool {
        match self.get(k) {
            None => false,
            Some(v) => !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"),
        }
    }
    /// An integer parameter; a malformed one is a 400 naming it.
    pub fn int(&self, k: &str) -> Result<Option<i64>, Error> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Error::invalid(format!("query parameter {k}"), format!("{v:?} is not an integer"))),
        }
    }
    /// Docker's `filters` parameter, in either form: `{"name":["a"]}` or `{"name":{"a":true}}`.
    pub fn filters(&self) -> Result<HashMap<String, Vec<String>>, Error> {
        let Some(raw) = self.get("filters") else { return Ok(HashMap::new()) };
        if raw.trim().is_empty() {
            return Ok(HashMap::new());
        }
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Error::invalid("query parameter filters", format!("{raw:?} is not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::invalid("query parameter filters", format!("{raw:?} is not a JSON object")))?;
        let mut out = HashMap::new();
        for (k, val) in obj {
            let vals: Vec<String> = match val {
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                serde_json::Value::Object(o) => {
                    o.iter().filter(|(_, on)| on.as_bool().unwrap_or(true)).map(|(n, _)| n.clone()).collect()
                }
                serde_json::Value::String(s) => vec![s.clone()],
                _ => {
                    return Err(Error::invalid(
                        "query parameter filters",
                        format!("filter {k:?} must be a list of strings"),
                    ))
                }
            };
            out.insert(k.clone(), vals);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_both_forms() {
        let q = Query::parse(Some("all=1&filters=%7B%22name%22%3A%7B%22e1%22%3Atrue%7D%7D"));
        assert!(q.bool("all"));
        assert_eq!(q.filters().unwrap()["name"], vec!["e1".to_string()]);
        let q = Query::parse(Some("filters={\"label\":[\"a=b\"]}&all=false"));
        assert!(!q.bool("all"));
        assert_eq!(q.filters().unwrap()["label"], vec!["a=b".to_string()]);
        assert!(Query::parse(Some("filters=nope")).filters().is_err());
        assert!(Query::parse(Some("t=x")).int("t").is_err());
    }

    #[test]
    fn errors_are_docker_shaped() {
        let r = error(&Error::not_found("container", "web"));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(docker_message(&Error::not_found("image", "bb:latest")), "No such image: bb:latest");
        assert_eq!(status_of(&Error::conflict("container", "a", "running")), StatusCode::CONFLICT);
    }
}
