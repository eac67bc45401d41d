//! Authorization plugins: `AuthZPlugin.AuthZReq` and `AuthZPlugin.AuthZRes`
//! behind [`engine_core::Authorizer`].

use crate::{PluginError, Plugins};
use async_trait::async_trait;
use base64::Engine as _;
use engine_core::authz::{Authorizer, AuthzRequest, AuthzResponse, AuthzVerdict};
use engine_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The interface name authorization plugins announce in `Plugin.Activate`.
pub const AUTHZ_INTERFACE: &str = "authz";

/// dockerd's `authorization.Request`, as it goes on the wire: every field
/// omitted when empty, bodies base64 (Go's encoding of `[]byte`).
#[derive(Serialize, Default)]
struct WireRequest<'a> {
    #[serde(rename = "User", skip_serializing_if = "str::is_empty")]
    user: &'a str,
    #[serde(rename = "UserAuthNMethod", skip_serializing_if = "str::is_empty")]
    user_authn_method: &'a str,
    #[serde(rename = "RequestMethod", skip_serializing_if = "str::is_empty")]
    request_method: &'a str,
    #[serde(rename = "RequestURI", skip_serializing_if = "str::is_empty")]
    request_uri: &'a str,
    #[serde(rename = "RequestBody", skip_serializing_if = "Option::is_none")]
    request_body: Option<String>,
    #[serde(rename = "RequestHeaders", skip_serializing_if = "Option::is_none")]
    request_headers: Option<&'a BTreeMap<String, String>>,
    #[serde(rename = "ResponseBody", skip_serializing_if = "Option::is_none")]
    response_body: Option<String>,
    #[serde(rename = "ResponseHeaders", skip_serializing_if = "Option::is_none")]
    response_headers: Option<&'a BTreeMap<String, String>>,
    #[serde(rename = "ResponseStatusCode", skip_serializing_if = "Option::is_none")]
    response_status_code: Option<u16>,
}

/// dockerd's `authorization.Response` (`Err` is checked by the client).
#[derive(Deserialize)]
struct WireResponse {
    #[serde(rename = "Allow")]
    allow: bool,
    #[serde(rename = "Msg", default)]
    msg: String,
}

fn b64(b: &Option<bytes::Bytes>) -> Option<String> {
    b.as_ref().filter(|b| !b.is_empty()).map(|b| base64::engine::general_purpose::STANDARD.encode(b))
}

fn wire(req: &AuthzRequest) -> WireRequest<'_> {
    WireRequest {
        user: &req.user,
        user_authn_method: &req.user_authn_method,
        request_method: &req.method,
        request_uri: &req.uri,
        request_body: b64(&req.body),
        request_headers: Some(&req.headers).filter(|h| !h.is_empty()),
        ..Default::default()
    }
}

/// An authorization plugin (`engined --authorization-plugin NAME`).
#[derive(Clone, Debug)]
pub struct AuthzPlugin {
    plugins: Arc<Plugins>,
    name: String,
}

impl AuthzPlugin {
    /// The authorization plugin `name`, found through `plugins` and
    /// activated on first use.
    pub fn new(plugins: Arc<Plugins>, name: impl Into<String>) -> Self {
        AuthzPlugin { plugins, name: name.into() }
    }

    /// Find and activate it now (dockerd refuses to start with an
    /// authorization plugin it cannot find).
    pub async fn check(&self) -> std::result::Result<(), PluginError> {
        self.plugins.get(&self.name, AUTHZ_INTERFACE).await.map(|_| ())
    }

    async fn ask(&self, method: &str, w: &WireRequest<'_>) -> Result<AuthzVerdict> {
        let p = self.plugins.get(&self.name, AUTHZ_INTERFACE).await?;
        match p.client().call::<_, WireResponse>(method, w).await {
            Ok(r) if r.allow => Ok(AuthzVerdict::Allow),
            Ok(r) => Ok(AuthzVerdict::Deny(r.msg)),
            // The plugin's own `Err`: its message, as dockerd shows it.
            Err(PluginError::Remote { message, .. }) => Err(Error::Other(message)),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Authorizer for AuthzPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    async fn authorize_request(&self, req: &AuthzRequest) -> Result<AuthzVerdict> {
        self.ask("AuthZPlugin.AuthZReq", &wire(req)).await
    }

    async fn authorize_response(&self, req: &AuthzRequest, resp: &AuthzResponse) -> Result<AuthzVerdict> {
        let w = WireRequest {
            response_body: b64(&resp.body),
            response_headers: Some(&resp.headers).filter(|h| !h.is_empty()),
            response_status_code: Some(resp.status),
            ..wire(req)
        };
        self.ask("AuthZPlugin.AuthZRes", &w).await
    }
}
