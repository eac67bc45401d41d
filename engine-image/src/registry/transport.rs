//! The HTTP side of a registry: one [`Client`] per repository (URLs,
//! retries on transient errors, plain HTTP for loopback and insecure
//! registries, auth challenges answered), manifests and blobs fetched.

use super::auth::{docker_config_auth, parse_challenge, AuthState, Scheme};
use crate::digest::sha256;
use crate::media;
use crate::reference::{host_is_loopback, Reference};
use crate::store::Store;
use engine_core::{Error, RegistryAuth, Result};
use reqwest::{header, Method, StatusCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const MAX_MANIFEST: usize = 8 << 20;

/// Options for talking to registries.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RegistryOptions {
    /// Layers fetched or pushed at once (default 4).
    pub concurrency: usize,
    /// Retries on transient errors (connection failures, 429, 5xx); default 3.
    pub retries: u32,
    /// First retry delay, doubled each time (default 200 ms).
    pub retry_delay: Duration,
    /// The docker CLI config file with `auths` (default
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// Registries (`host[:port]`) spoken to in plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
}

engine_core::__setters!(RegistryOptions { concurrency: usize, retries: u32, retry_delay: Duration, docker_config: Option<PathBuf>, insecure_registries: Vec<String> });

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            concurrency: 4,
            retries: 3,
            retry_delay: Duration::from_millis(200),
            docker_config: None,
            insecure_registries: vec![],
        }
    }
}

/// A client for one repository of one registry.
pub(crate) struct Client {
    pub(super) http: reqwest::Client,
    pub(super) base: url::Url,
    pub(super) reference: Reference,
    pub(super) repo: String,
    pub(super) creds: Option<RegistryAuth>,
    pub(super) state: tokio::sync::Mutex<AuthState>,
    pub(super) opts: RegistryOptions,
}

pub(super) type BoxFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;
type BodyFn<'a> = &'a (dyn Fn() -> Result<reqwest::Body> + Send + Sync);

impl Client {
    pub(crate) fn new(store: &Store, reference: &Reference, auth: Option<&RegistryAuth>) -> Result<Client> {
        let opts = store.inner.registry.clone();
        let host = reference.api_host();
        let plain = host_is_loopback(host) || opts.insecure_registries.iter().any(|r| r == reference.registry());
        let base = url::Url::parse(&format!("{}://{host}/", if plain { "http" } else { "https" }))
            .map_err(|e| Error::invalid(format!("registry {host}"), e.to_string()))?;
        let creds = auth
            .cloned()
            .filter(|a| *a != RegistryAuth::default())
            .or_else(|| docker_config_auth(opts.docker_config.as_deref(), reference.registry()));
        Ok(Client {
            http: store.inner.http.clone(),
            base,
            reference: reference.clone(),
            repo: reference.repository().to_string(),
            creds,
            state: tokio::sync::Mutex::new(AuthState { scheme: Scheme::None, tokens: HashMap::new() }),
            opts,
        })
    }

    pub(super) fn url(&self, path: &str) -> Result<url::Url> {
        self.base.join(path).map_err(|e| Error::invalid(format!("registry path {path}"), e.to_string()))
    }

    pub(super) fn err(&self, what: &str, message: impl Into<String>) -> Error {
        let r = if what.is_empty() { self.reference.to_string() } else { format!("{} ({what})", self.reference) };
        Error::Registry { reference: r, message: message.into() }
    }

    pub(super) async fn token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        let mut u = url::Url::parse(realm).map_err(|e| self.err("", format!("bad token realm {realm:?}: {e}")))?;
        {
            let mut q = u.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        if let Some(rt) = self.creds.as_ref().and_then(|c| c.identity_token.clone()) {
            // OAuth2 refresh-token grant (what docker does with an identity token).
            let form = {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", &rt)
                    .append_pair("client_id", "engine-image")
                    .append_pair("scope", &scopes.join(" "));
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                form.finish()
            };
            let resp = self
                .http
                .post(realm)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .map_err(|e| self.err("", format!("token request to {realm}: {e}")))?;
            let status = resp.status();
            if status.is_success() {
                let v: serde_json::Value =
                    resp.json().await.map_err(|e| self.err("", format!("token server {realm}: bad answer: {e}")))?;
                return v
                    .get("access_token")
                    .or_else(|| v.get("token"))
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| self.err("", format!("token server {realm} sent no access_token")));
            }
            if status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED {
                let body = resp.text().await.unwrap_or_default();
                return Err(
                    self.err("", format!("token server {realm} refused the identity token: {status}: {}", body.trim()))
                );
            }
        }
        let mut req = self.http.get(u.clone());
        if let Some(c) = &self.creds {
            if let (Some(user), Some(pw)) = (&c.username, &c.password) {
                req = req.basic_auth(user, Some(pw));
            }
        }
        let resp = req.send().await.map_err(|e| self.err("", format!("token request to {realm}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(self.err("", format!("token server {realm} answered {status}: {}", body.trim())));
        }
        let v: serde_json::Value =
            resp.json().await.map_err(|e| self.err("", format!("token server {realm}: bad answer: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| self.err("", format!("token server {realm} sent no token")))
    }

    /// Send a request with auth and retries. `what` names the object (a
    /// digest or tag) for errors.
    pub(super) async fn send(
        &self,
        method: Method,
        url: url::Url,
        scopes: &[String],
        headers: &[(header::HeaderName, String)],
        body: Option<BodyFn<'_>>,
        what: &str,
    ) -> Result<reqwest::Response> {
        let mut attempt = 0;
        let mut authed = false;
        let scope_key = scopes.join(" ");
        loop {
            let mut req = self.http.request(method.clone(), url.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            {
                let st = self.state.lock().await;
                if let Some(t) = self.creds.as_ref().and_then(|c| c.registry_token.clone()) {
                    req = req.bearer_auth(t);
                } else {
                    match &st.scheme {
                        Scheme::Basic => {
                            if let Some(c) = &self.creds {
                                req = req.basic_auth(c.username.clone().unwrap_or_default(), c.password.clone());
                            }
                        }
                        Scheme::Bearer { .. } => {
                            if let Some(t) = st.tokens.get(&scope_key) {
                                req = req.bearer_auth(t);
                            }
                        }
                        Scheme::None => {}
                    }
                }
            }
            if let Some(b) = body {
                req = req.body(b()?);
            }
            let transient;
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED && !authed {
                        authed = true;
                        let challenge = resp
                            .headers()
                            .get(header::WWW_AUTHENTICATE)
                            .and_then(|h| h.to_str().ok())
                            .map(parse_challenge)
                            .unwrap_or(Scheme::None);
                        match challenge {
                            Scheme::Bearer { realm, service } => {
                                let t = self.token(&realm, service.as_deref(), scopes).await?;
                                let mut st = self.state.lock().await;
                                st.tokens.insert(scope_key.clone(), t);
                                st.scheme = Scheme::Bearer { realm, service };
                                continue;
                            }
                            Scheme::Basic if self.creds.is_some() => {
                                self.state.lock().await.scheme = Scheme::Basic;
                                continue;
                            }
                            _ => return Ok(resp),
                        }
                    }
                    if matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504) {
                        transient = format!("{status}");
                        if attempt >= self.opts.retries {
                            return Ok(resp);
                        }
                    } else {
                        return Ok(resp);
                    }
                }
                Err(e) => {
                    transient = format!("{e}");
                    if attempt >= self.opts.retries || !(e.is_connect() || e.is_timeout() || e.is_request()) {
                        return Err(self.err(what, format!("{method} {url}: {e}")));
                    }
                }
            }
            let delay = self.opts.retry_delay * 2u32.pow(attempt);
            tracing::warn!(%url, attempt, "transient registry error ({transient}); retrying in {delay:?}");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    pub(super) async fn fail(&self, resp: reqwest::Response, what: &str, op: &str) -> Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.trim().chars().take(500).collect();
        self.err(what, format!("{op}: {status}{}{body}", if body.is_empty() { "" } else { ": " }))
    }

    pub(super) fn pull_scope(&self) -> Vec<String> {
        vec![format!("repository:{}:pull", self.repo)]
    }

    /// GET a manifest; returns (bytes, media type, digest).
    pub(super) async fn manifest(&self, object: &str) -> Result<(Vec<u8>, String, String)> {
        let url = self.url(&format!("v2/{}/manifests/{object}", self.repo))?;
        let mut resp = self
            .send(Method::GET, url, &self.pull_scope(), &[(header::ACCEPT, MANIFEST_ACCEPT.into())], None, object)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            let e = self.fail(resp, object, "manifest").await;
            return Err(Error::NotFound { kind: "manifest", id: e.to_string() });
        }
        if !resp.status().is_success() {
            return Err(self.fail(resp, object, "GET manifest").await);
        }
        let ct = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let sent_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.starts_with("sha256:"))
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|e| self.err(object, format!("read manifest: {e}")))? {
            bytes.extend_from_slice(&c);
            if bytes.len() > MAX_MANIFEST {
                return Err(self.err(object, "manifest larger than 8 MiB"));
            }
        }
        let digest = sha256(&bytes);
        if object.starts_with("sha256:") && digest != object {
            return Err(self.err(object, format!("manifest content has digest {digest}: digest mismatch")));
        }
        if let Some(sent) = sent_digest.filter(|d| *d != digest) {
            return Err(self.err(
                &sent,
                format!("manifest content has digest {digest} but the registry says {sent}: digest mismatch"),
            ));
        }
        let mt = media::sniff(ct.as_deref(), &bytes, &format!("manifest {} ({object})", self.reference))?;
        Ok((bytes, mt, digest))
    }

    pub(super) async fn blob_get(&self, digest: &str) -> Result<reqwest::Response> {
        let url = self.url(&format!("v2/{}/blobs/{digest}", self.repo))?;
        let resp = self.send(Method::GET, url, &self.pull_scope(), &[], None, digest).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, digest, "GET blob").await);
        }
        Ok(resp)
    }

    pub(super) async fn small_blob(&self, digest: &str, max: usize) -> Result<Vec<u8>> {
        let mut resp = self.blob_get(digest).await?;
        let mut bytes = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|e| self.err(digest, format!("read blob: {e}")))? {
            bytes.extend_from_slice(&c);
            if bytes.len() > max {
                return Err(self.err(digest, format!("blob larger than {max} bytes")));
            }
        }
        let got = sha256(&bytes);
        if got != digest {
            return Err(self.err(digest, format!("blob content has digest {got}: digest mismatch")));
        }
        Ok(bytes)
    }
}
