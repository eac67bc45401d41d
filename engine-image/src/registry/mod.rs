//! Registry client per the OCI distribution spec: manifests (Docker schema 2
//! and OCI, indexes with the host platform chosen), blobs (parallel,
//! streamed straight into the content store and the unpacker, skipped when
//! present, cross-repo mounted on push), anonymous, basic and bearer-token
//! auth, credentials from `~/.docker/config.json`, plain HTTP for loopback
//! registries, retries on transient errors.

use crate::blobs::{ChannelReader, TeeReader};
use crate::digest::{hex_of, sha256};
use crate::media::{self, Index, Manifest};
use crate::reference::{host_is_loopback, Reference};
use crate::store::{finish_snapshot, layer_records, progress, short, LayerRecord, Store};
use crate::unpack::unpack_layer;
use base64::Engine as _;
use engine_core::{Error, ImageInfo, ProgressSender, RegistryAuth, Result};
use futures::StreamExt;
use reqwest::{header, Method, StatusCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const MAX_MANIFEST: usize = 8 << 20;

/// Options for talking to registries.
#[derive(Clone, Debug)]
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

fn default_docker_config() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

fn auth_key_host(key: &str) -> String {
    let k = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => crate::DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

/// Credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub)
/// from a docker CLI config file (`auths.<host>.auth` is base64 `user:pass`;
/// `identitytoken` is kept too). `path` defaults to `~/.docker/config.json`.
pub fn docker_config_auth(path: Option<&std::path::Path>, registry: &str) -> Option<RegistryAuth> {
    let p = path.map(|p| p.to_path_buf()).or_else(default_docker_config)?;
    let bytes = std::fs::read(&p).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let want = auth_key_host(registry);
    let (_, entry) = auths.iter().find(|(k, _)| auth_key_host(k) == want)?;
    let mut out = RegistryAuth::default();
    if let Some(a) = entry.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
        let dec = base64::engine::general_purpose::STANDARD.decode(a.trim()).ok()?;
        let s = String::from_utf8(dec).ok()?;
        let (u, pw) = s.split_once(':')?;
        out.username = Some(u.to_string());
        out.password = Some(pw.to_string());
    }
    if let Some(u) = entry.get("username").and_then(|a| a.as_str()) {
        out.username = Some(u.to_string());
    }
    if let Some(pw) = entry.get("password").and_then(|a| a.as_str()) {
        out.password = Some(pw.to_string());
    }
    if let Some(t) = entry.get("identitytoken").and_then(|a| a.as_str()).filter(|t| !t.is_empty()) {
        out.identity_token = Some(t.to_string());
    }
    if out == RegistryAuth::default() {
        None
    } else {
        Some(out)
    }
}

#[derive(Clone, Debug)]
enum Scheme {
    None,
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// Parse a `WWW-Authenticate` header.
fn parse_challenge(h: &str) -> Scheme {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let s2 = s.trim_start_matches([',', ' ']);
        let Some((k, after)) = s2.split_once('=') else { break };
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k.trim().to_ascii_lowercase(), v.to_string());
        s = next;
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Scheme::Basic,
        "bearer" => match params.get("realm") {
            Some(r) => Scheme::Bearer { realm: r.clone(), service: params.get("service").cloned() },
            None => Scheme::None,
        },
        _ => Scheme::None,
    }
}

struct AuthState {
    scheme: Scheme,
    tokens: HashMap<String, String>,
}

/// A client for one repository of one registry.
pub(crate) struct Client {
    http: reqwest::Client,
    base: url::Url,
    reference: Reference,
    repo: String,
    creds: Option<RegistryAuth>,
    state: tokio::sync::Mutex<AuthState>,
    opts: RegistryOptions,
}

type BoxFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;
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

    fn url(&self, path: &str) -> Result<url::Url> {
        self.base.join(path).map_err(|e| Error::invalid(format!("registry path {path}"), e.to_string()))
    }

    fn err(&self, what: &str, message: impl Into<String>) -> Error {
        let r = if what.is_empty() { self.reference.to_string() } else { format!("{} ({what})", self.reference) };
        Error::Registry { reference: r, message: message.into() }
    }

    async fn token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
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
    async fn send(
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

    async fn fail(&self, resp: reqwest::Response, what: &str, op: &str) -> Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.trim().chars().take(500).collect();
        self.err(what, format!("{op}: {status}{}{body}", if body.is_empty() { "" } else { ": " }))
    }

    fn pull_scope(&self) -> Vec<String> {
        vec![format!("repository:{}:pull", self.repo)]
    }

    /// GET a manifest; returns (bytes, media type, digest).
    async fn manifest(&self, object: &str) -> Result<(Vec<u8>, String, String)> {
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

    async fn blob_get(&self, digest: &str) -> Result<reqwest::Response> {
        let url = self.url(&format!("v2/{}/blobs/{digest}", self.repo))?;
        let resp = self.send(Method::GET, url, &self.pull_scope(), &[], None, digest).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, digest, "GET blob").await);
        }
        Ok(resp)
    }

    async fn small_blob(&self, digest: &str, max: usize) -> Result<Vec<u8>> {
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

impl Store {
    pub(crate) async fn pull_image(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress_tx: Option<ProgressSender>,
    ) -> Result<ImageInfo> {
        let r = Reference::parse(reference)?;
        let client = Client::new(self, &r, auth)?;
        let guard = self.lease().await?;
        let res = self.pull_inner(&client, &r, &progress_tx).await;
        drop(guard);
        if res.is_err() {
            // Leave the store as it was: nothing of a failed pull stays.
            if let Err(e) = self.gc().await {
                tracing::warn!("cleanup after failed pull of {r}: {e}");
            }
        }
        res
    }

    async fn pull_inner(&self, c: &Client, r: &Reference, progress_tx: &Option<ProgressSender>) -> Result<ImageInfo> {
        progress(progress_tx, r.object(), "Pulling from", None, None);
        let (mut bytes, mut mt, mut digest) = c.manifest(r.object()).await?;
        let mut index_digest = None;
        let mut index_bytes = None;
        if media::is_index(&mt) {
            let index: Index = serde_json::from_slice(&bytes).map_err(|e| c.err(&digest, format!("bad index: {e}")))?;
            let host = media::host_platform();
            let Some(d) = media::select_platform(&index, &host) else {
                let avail: Vec<String> =
                    index.manifests.iter().filter_map(|d| d.platform.as_ref().map(|p| p.to_string())).collect();
                return Err(c.err(
                    &digest,
                    format!("no manifest for platform {host} in the index (it has: {})", avail.join(", ")),
                ));
            };
            index_digest = Some(digest.clone());
            index_bytes = Some(bytes);
            (bytes, mt, digest) = c.manifest(&d.digest).await?;
            if !media::is_manifest(&mt) {
                return Err(c.err(&digest, format!("index entry has media type {mt}, not an image manifest")));
            }
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| c.err(&digest, format!("bad manifest: {e}")))?;
        let cm = &manifest.config.media_type;
        if cm != media::OCI_CONFIG && cm != media::DOCKER_CONFIG {
            return Err(c.err(&digest, format!("config {} has unsupported media type {cm:?}", manifest.config.digest)));
        }
        for l in &manifest.layers {
            if !media::is_layer(&l.media_type) {
                return Err(c.err(&digest, format!("layer {} has unsupported media type {:?}", l.digest, l.media_type)));
            }
            hex_of(&l.digest)?;
        }
        hex_of(&manifest.config.digest)?;
        let config = if self.inner.blobs.has(&manifest.config.digest) {
            self.inner.blobs.read(&manifest.config.digest)?
        } else {
            c.small_blob(&manifest.config.digest, 16 << 20).await?
        };
        let (_, diff_ids) = crate::store::parse_config(&config, &manifest.config.digest)?;
        let layers = layer_records(&manifest, &diff_ids, &format!("{r} (manifest {digest})"))?;
        for l in &layers {
            progress(progress_tx, &short(&l.digest), "Pulling fs layer", None, Some(l.size));
        }
        let n = self.inner.registry.concurrency.max(1);
        let mut futs: Vec<BoxFut<'_>> = Vec::new();
        for l in &layers {
            futs.push(Box::pin(self.pull_layer(c, l, progress_tx)));
        }
        let results: Vec<Result<()>> = futures::stream::iter(futs).buffer_unordered(n).collect().await;
        for res in results {
            res?;
        }
        self.inner.blobs.write_bytes(&config, Some(&manifest.config.digest))?;
        self.inner.blobs.write_bytes(&bytes, Some(&digest))?;
        let mut extra = vec![];
        if let (Some(d), Some(b)) = (&index_digest, &index_bytes) {
            self.inner.blobs.write_bytes(b, Some(d))?;
            extra.push(d.clone());
        }
        let repo_digest = format!("{}@{}", r.name(), index_digest.as_deref().unwrap_or(&digest));
        let info =
            self.register(&digest, r.tagged().into_iter().collect(), vec![repo_digest], extra, progress_tx).await?;
        progress(progress_tx, "", &format!("Digest: {}", index_digest.as_deref().unwrap_or(&digest)), None, None);
        Ok(info)
    }

    /// Fetch one layer unless present; unpack it while it streams in.
    async fn pull_layer(&self, c: &Client, l: &LayerRecord, progress_tx: &Option<ProgressSender>) -> Result<()> {
        let id = short(&l.digest);
        let lock = self.key_lock(&format!("pull:{}", l.digest));
        let _g = lock.lock().await;
        let snap = self.inner.root.join("snapshots").join(hex_of(&l.chain_id)?);
        let have_snap = snap.join("fs").is_dir();
        if self.inner.blobs.has(&l.digest) {
            if have_snap {
                progress(progress_tx, &id, "Already exists", None, None);
            } else {
                self.ensure_snapshot(l, progress_tx).await?;
            }
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            match self.fetch_layer(c, l, progress_tx, !have_snap).await {
                Ok(()) => break,
                Err((e, transient)) if transient && attempt < c.opts.retries => {
                    tracing::warn!("layer {} of {}: {e}; retrying", l.digest, c.reference);
                    tokio::time::sleep(c.opts.retry_delay * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        }
        progress(progress_tx, &id, "Pull complete", None, None);
        Ok(())
    }

    /// Returns `(error, transient)` on failure.
    async fn fetch_layer(
        &self,
        c: &Client,
        l: &LayerRecord,
        progress_tx: &Option<ProgressSender>,
        unpack: bool,
    ) -> std::result::Result<(), (Error, bool)> {
        let id = short(&l.digest);
        let mut resp = c.blob_get(&l.digest).await.map_err(|e| (e, false))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        let blobs = self.inner.blobs.clone();
        let mut opts = self.inner.unpack.clone();
        opts.expected_diff_id = Some(l.diff_id.clone());
        let root = self.inner.root.clone();
        let layer = l.clone();
        let reference = c.reference.to_string();
        let worker = tokio::task::spawn_blocking(move || -> Result<()> {
            let w = blobs.writer()?;
            let mut tee = TeeReader { r: ChannelReader::new(rx), w };
            let snap = root.join("snapshots").join(&layer.chain_id[7..]);
            let tmp = root.join("snapshots").join(format!("tmp-{}", &engine_core::random_hex64()[..16]));
            let res = (|| -> Result<Option<u64>> {
                let size = if unpack {
                    let fs = tmp.join("fs");
                    std::fs::create_dir_all(&fs).map_err(|e| Error::io(format!("create {}", fs.display()), e))?;
                    let stats = unpack_layer(&mut tee, &fs, &opts).map_err(|e| Error::Registry {
                        reference: format!("{reference} (layer {})", layer.digest),
                        message: e.to_string(),
                    })?;
                    Some(stats.size)
                } else {
                    None
                };
                std::io::copy(&mut tee, &mut std::io::sink()).map_err(|e| Error::Registry {
                    reference: format!("{reference} (layer {})", layer.digest),
                    message: format!("download failed: {e}"),
                })?;
                Ok(size)
            })();
            let TeeReader { r, w } = tee;
            drop(r);
            let res = res.and_then(|size| {
                w.commit(Some(&layer.digest)).map_err(|e| Error::Registry {
                    reference: format!("{reference} (layer {})", layer.digest),
                    message: e.to_string(),
                })?;
                if let Some(size) = size {
                    finish_snapshot(&tmp, &snap, size)?;
                }
                Ok(())
            });
            if res.is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            res
        });
        let mut done: u64 = 0;
        let mut last = 0;
        let mut net_err = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    done += chunk.len() as u64;
                    if done > l.size && l.size > 0 {
                        net_err = Some(c.err(
                            &l.digest,
                            format!("registry sent more than the {} bytes the manifest lists", l.size),
                        ));
                        let _ = tx.send(Err(std::io::Error::other("oversized blob"))).await;
                        break;
                    }
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // the worker failed; its error is reported below
                    }
                    if done - last >= 512 * 1024 || done == l.size {
                        last = done;
                        progress(progress_tx, &id, "Downloading", Some(done), Some(l.size));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    net_err = Some(c.err(&l.digest, format!("download interrupted after {done} bytes: {e}")));
                    break;
                }
            }
        }
        drop(tx);
        let worker_res = worker.await.map_err(|e| (Error::Other(format!("layer worker: {e}")), false))?;
        if let Some(e) = net_err {
            return Err((e, done <= l.size));
        }
        worker_res.map_err(|e| (e, false))?;
        if unpack {
            progress(progress_tx, &id, "Extracting", Some(l.size), Some(l.size));
        }
        Ok(())
    }

    pub(crate) async fn push_image(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress_tx: Option<ProgressSender>,
    ) -> Result<String> {
        let r = Reference::parse(reference)?;
        let state = self.state().await?;
        let rec = state.resolve(reference)?.clone();
        let c = Client::new(self, &r, auth)?;
        progress(&progress_tx, "", &format!("The push refers to repository [{}]", r.name()), None, None);
        // Other repositories of the same registry that hold these blobs.
        let mut from: Vec<String> = Vec::new();
        for name in rec.repo_digests.iter().map(|d| d.split('@').next().unwrap_or("").to_string()).chain(
            state
                .tags
                .iter()
                .filter(|(_, v)| **v == rec.id)
                .map(|(k, _)| Reference::parse(k).map(|p| p.name()).unwrap_or_default()),
        ) {
            if let Ok(p) = Reference::parse(&name) {
                if p.registry() == r.registry()
                    && p.repository() != r.repository()
                    && !from.contains(&p.repository().to_string())
                {
                    from.push(p.repository().to_string());
                }
            }
        }
        let mut items: Vec<(String, u64)> = rec.layers.iter().map(|l| (l.digest.clone(), l.size)).collect();
        items.push((rec.id.clone(), self.inner.blobs.size(&rec.id)?));
        let n = self.inner.registry.concurrency.max(1);
        let mut futs: Vec<BoxFut<'_>> = Vec::new();
        for (d, s) in &items {
            futs.push(Box::pin(self.push_blob(&c, d, *s, &from, &progress_tx)));
        }
        let results: Vec<Result<()>> = futures::stream::iter(futs).buffer_unordered(n).collect().await;
        for res in results {
            res?;
        }
        let bytes = self.inner.blobs.read(&rec.manifest)?;
        let object =
            r.digest().map(str::to_string).or_else(|| r.tag().map(str::to_string)).unwrap_or_else(|| "latest".into());
        let url = c.url(&format!("v2/{}/manifests/{object}", c.repo))?;
        let scopes = vec![format!("repository:{}:pull,push", c.repo)];
        let b = bytes.clone();
        let body = move || Ok(reqwest::Body::from(b.clone()));
        let resp = c
            .send(
                Method::PUT,
                url,
                &scopes,
                &[(header::CONTENT_TYPE, rec.manifest_media_type.clone())],
                Some(&body),
                &rec.manifest,
            )
            .await?;
        if !resp.status().is_success() {
            return Err(c.fail(resp, &rec.manifest, "PUT manifest").await);
        }
        let digest = rec.manifest.clone();
        let rd = format!("{}@{}", r.name(), digest);
        let id = rec.id.clone();
        self.update(move |s| {
            if let Some(i) = s.images.get_mut(&id) {
                if !i.repo_digests.contains(&rd) {
                    i.repo_digests.push(rd);
                }
            }
            Ok(())
        })
        .await?;
        progress(&progress_tx, "", &format!("{}: digest: {digest} size: {}", object, bytes.len()), None, None);
        Ok(digest)
    }

    async fn push_blob(
        &self,
        c: &Client,
        digest: &str,
        size: u64,
        from: &[String],
        progress_tx: &Option<ProgressSender>,
    ) -> Result<()> {
        let id = short(digest);
        progress(progress_tx, &id, "Preparing", None, None);
        let push_scope = format!("repository:{}:pull,push", c.repo);
        let url = c.url(&format!("v2/{}/blobs/{digest}", c.repo))?;
        let resp = c.send(Method::HEAD, url, std::slice::from_ref(&push_scope), &[], None, digest).await?;
        if resp.status().is_success() {
            progress(progress_tx, &id, "Layer already exists", None, None);
            return Ok(());
        }
        let mut location = None;
        for f in from {
            let url = c.url(&format!("v2/{}/blobs/uploads/?mount={digest}&from={f}", c.repo))?;
            let scopes = vec![push_scope.clone(), format!("repository:{f}:pull")];
            let resp =
                c.send(Method::POST, url, &scopes, &[(header::CONTENT_LENGTH, "0".into())], None, digest).await?;
            if resp.status() == StatusCode::CREATED {
                progress(progress_tx, &id, &format!("Mounted from {f}"), None, None);
                return Ok(());
            }
            if resp.status() == StatusCode::ACCEPTED {
                location = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
                break;
            }
        }
        let location = match location {
            Some(l) => l,
            None => {
                let url = c.url(&format!("v2/{}/blobs/uploads/", c.repo))?;
                let resp = c
                    .send(
                        Method::POST,
                        url,
                        std::slice::from_ref(&push_scope),
                        &[(header::CONTENT_LENGTH, "0".into())],
                        None,
                        digest,
                    )
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(c.fail(resp, digest, "start blob upload").await);
                }
                resp.headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| c.err(digest, "upload started without a Location"))?
            }
        };
        let mut url = c.url(&location)?;
        url.query_pairs_mut().append_pair("digest", digest);
        let path = self.inner.blobs.path(digest)?;
        let ptx = progress_tx.clone();
        let id2 = id.clone();
        let body = move || -> Result<reqwest::Body> {
            let f = std::fs::File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
            let f = tokio::fs::File::from_std(f);
            let mut done = 0u64;
            let ptx = ptx.clone();
            let id = id2.clone();
            let s = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).inspect(move |c| {
                if let Ok(b) = c {
                    done += b.len() as u64;
                    progress(&ptx, &id, "Pushing", Some(done), Some(size));
                }
            });
            Ok(reqwest::Body::wrap_stream(s))
        };
        let resp = c
            .send(
                Method::PUT,
                url,
                &[push_scope],
                &[
                    (header::CONTENT_LENGTH, size.to_string()),
                    (header::CONTENT_TYPE, "application/octet-stream".into()),
                ],
                Some(&body),
                digest,
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(c.fail(resp, digest, "upload blob").await);
        }
        progress(progress_tx, &id, "Pushed", None, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn challenge() {
        match parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ) {
            Scheme::Bearer { realm, service } => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_challenge(r#"Basic realm="x""#), Scheme::Basic));
    }
    #[test]
    fn docker_config() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(&p, format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#)).unwrap();
        let a = docker_config_auth(Some(&p), "docker.io").unwrap();
        assert_eq!((a.username.as_deref(), a.password.as_deref()), (Some("alice"), Some("s3cret")));
        assert!(docker_config_auth(Some(&p), "127.0.0.1:5000").is_some());
        assert!(docker_config_auth(Some(&p), "quay.io").is_none());
    }
}
