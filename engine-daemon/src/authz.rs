//! The authorization hook (`engined --authorization-plugin NAME`): every
//! request is shown to the daemon's [`Authorizer`]s before it is served,
//! and its response before it is sent, as dockerd's authorization
//! middleware does it.
//!
//! - The request: method, URI (version prefix and query included), headers
//!   without credentials, and the body when it is JSON, under 1 MiB and not
//!   `/auth`'s (which holds a password).
//! - The response: status, headers, and the body when it is JSON of a known
//!   size under 1 MiB (streams and hijacked connections are shown without
//!   their body, before anything is sent).
//! - A denial answers 403 "authorization denied by plugin NAME: MSG"; an
//!   authorizer that fails (unreachable, garbage, its own `Err`) answers
//!   500 "plugin NAME failed with error: ..." and the request is not served.
//!
//! [`Authorizer`]: engine_core::Authorizer

use crate::api::{self, State};
use crate::http::{self as h, ReqBody, Resp};
use bytes::Bytes;
use engine_core::authz::{AuthzRequest, AuthzResponse, AuthzVerdict};
use engine_core::Authorizer;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest body shown to an authorizer (dockerd's `maxBodySize`).
const MAX_SHOWN_BODY: u64 = 1 << 20;

/// Headers an authorizer never sees: they carry credentials.
const SECRET_HEADERS: [&str; 3] = ["authorization", "x-registry-auth", "x-registry-config"];

fn headers(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((canonical(k.as_str()), v.to_str().ok()?.to_string())))
        .collect()
}

/// `content-type` as Go writes header names: `Content-Type`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

fn denied(name: &str, msg: &str) -> Resp {
    h::error_status(StatusCode::FORBIDDEN, format!("authorization denied by plugin {name}: {msg}"))
}

fn failed(name: &str, e: &engine_core::Error) -> Resp {
    tracing::warn!(authorizer = name, error = %e, "authorization failed");
    h::error_status(StatusCode::INTERNAL_SERVER_ERROR, format!("plugin {name} failed with error: {e}"))
}

async fn ask(authorizers: &[Arc<dyn Authorizer>], req: &AuthzRequest, resp: Option<&AuthzResponse>) -> Option<Resp> {
    for a in authorizers {
        let verdict = match resp {
            None => a.authorize_request(req).await,
            Some(r) => a.authorize_response(req, r).await,
        };
        match verdict {
            Ok(AuthzVerdict::Allow) => {}
            Ok(AuthzVerdict::Deny(msg)) => {
                tracing::info!(authorizer = a.name(), method = %req.method, uri = %req.uri, %msg, "denied");
                return Some(denied(a.name(), &msg));
            }
            Err(e) => return Some(failed(a.name(), &e)),
        }
    }
    None
}

/// Serve one request through the daemon's authorizers (straight through
/// when it has none).
pub(crate) async fn handle(st: Arc<State>, req: Request<Incoming>) -> Resp {
    let authorizers = st.config.authorization.clone();
    if authorizers.is_empty() {
        return api::handle(st, h::req_body(req)).await;
    }
    let (parts, body) = req.into_parts();
    let uri = parts.uri.to_string();
    let length = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let show = is_json(&parts.headers)
        && !api::strip_version(parts.uri.path()).starts_with("/auth")
        && length.is_some_and(|l| l > 0 && l < MAX_SHOWN_BODY);
    let (body, shown): (ReqBody, Option<Bytes>) = if show {
        match h::read_limited(h::boxed_body(body), MAX_SHOWN_BODY as usize).await {
            Ok(b) => (h::full(b.clone()), Some(b)),
            Err(e) => return e.response(),
        }
    } else {
        (h::boxed_body(body), None)
    };
    let mut areq = AuthzRequest::new(parts.method.as_str(), uri);
    areq.headers = headers(&parts.headers);
    areq.body = shown;
    if let Some(denial) = ask(&authorizers, &areq, None).await {
        return denial;
    }

    let resp = api::handle(st, Request::from_parts(parts, body)).await;
    let (rparts, rbody) = resp.into_parts();
    let small = rbody.size_hint().exact().is_some_and(|n| n < MAX_SHOWN_BODY);
    let (rbody, shown) = if is_json(&rparts.headers) && small {
        match rbody.collect().await {
            Ok(c) => {
                let b = c.to_bytes();
                (h::full(b.clone()), Some(b))
            }
            Err(e) => return h::error_status(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the response: {e}")),
        }
    } else {
        (rbody, None)
    };
    let mut aresp = AuthzResponse::new(rparts.status.as_u16());
    aresp.headers = headers(&rparts.headers);
    aresp.body = shown;
    if let Some(denial) = ask(&authorizers, &areq, Some(&aresp)).await {
        return denial;
    }
    http::Response::from_parts(rparts, rbody)
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_names_as_go_writes_them() {
        assert_eq!(super::canonical("content-type"), "Content-Type");
        assert_eq!(super::canonical("x-registry-auth"), "X-Registry-Auth");
    }
}
