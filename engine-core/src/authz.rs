//! The authorization hook on the daemon's API: an [`Authorizer`] sees every
//! request before it is served and its response before it is sent, and may
//! deny either (dockerd's `--authorization-plugin`).
//!
//! ```
//! use engine_core::authz::{AuthzRequest, AuthzVerdict, Authorizer, ReadOnly};
//! # async fn demo() -> engine_core::Result<()> {
//! let ro = ReadOnly;
//! let get = AuthzRequest::new("GET", "/v1.47/containers/json");
//! assert_eq!(ro.authorize_request(&get).await?, AuthzVerdict::Allow);
//! let rm = AuthzRequest::new("DELETE", "/v1.47/containers/web");
//! assert!(matches!(ro.authorize_request(&rm).await?, AuthzVerdict::Deny(_)));
//! # Ok(()) }
//! ```

use crate::Result;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;

/// A request as an authorizer sees it (the fields of dockerd's
/// `authorization.Request`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthzRequest {
    /// The authenticated user (a TLS client certificate's common name);
    /// empty on a unix socket.
    pub user: String,
    /// How the user was authenticated (`TLS`), empty when not.
    pub user_authn_method: String,
    /// The HTTP method.
    pub method: String,
    /// The request URI as sent, API version prefix and query included.
    pub uri: String,
    /// Headers, one value each, without credentials (`Authorization`,
    /// `X-Registry-Auth`, `X-Registry-Config` are left out).
    pub headers: BTreeMap<String, String>,
    /// The body, when it is JSON and small enough to show (as dockerd: not
    /// for `/auth`, whose body holds a password).
    pub body: Option<Bytes>,
}

impl AuthzRequest {
    /// A request with no headers, body or user.
    pub fn new(method: impl Into<String>, uri: impl Into<String>) -> Self {
        AuthzRequest { method: method.into(), uri: uri.into(), ..Default::default() }
    }
}

/// A response as an authorizer sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthzResponse {
    /// The HTTP status.
    pub status: u16,
    /// Headers, one value each.
    pub headers: BTreeMap<String, String>,
    /// The body, when it is JSON and small enough to show (not for streams
    /// and hijacked connections).
    pub body: Option<Bytes>,
}

impl AuthzResponse {
    /// A response with a status only.
    pub fn new(status: u16) -> Self {
        AuthzResponse { status, ..Default::default() }
    }
}

/// What an authorizer decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthzVerdict {
    /// Go on.
    Allow,
    /// Refuse, with the authorizer's message (the client gets a 403
    /// "authorization denied by plugin NAME: MESSAGE").
    Deny(String),
}

/// An authorization hook. Every authorizer of a daemon is asked in order;
/// the first denial wins. An error (the authorizer is unreachable or
/// broken) refuses the request too, with a 500 naming the authorizer: a
/// broken authorizer never lets a request through.
#[async_trait]
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// Its name, as denials and errors show it.
    fn name(&self) -> &str;
    /// Decide on a request before it is served.
    async fn authorize_request(&self, req: &AuthzRequest) -> Result<AuthzVerdict>;
    /// Decide on a response before it is sent.
    async fn authorize_response(&self, req: &AuthzRequest, resp: &AuthzResponse) -> Result<AuthzVerdict>;
}

/// A built-in authorizer: reads only. `GET` and `HEAD` requests are
/// allowed, everything else is denied.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOnly;

#[async_trait]
impl Authorizer for ReadOnly {
    fn name(&self) -> &str {
        "read-only"
    }
    async fn authorize_request(&self, req: &AuthzRequest) -> Result<AuthzVerdict> {
        Ok(if matches!(req.method.as_str(), "GET" | "HEAD") {
            AuthzVerdict::Allow
        } else {
            AuthzVerdict::Deny(format!("{} {} changes state; this daemon is read-only", req.method, req.uri))
        })
    }
    async fn authorize_response(&self, _: &AuthzRequest, _: &AuthzResponse) -> Result<AuthzVerdict> {
        Ok(AuthzVerdict::Allow)
    }
}
