//! Registry client per the OCI distribution spec: manifests (Docker schema 2
//! and OCI, indexes with the host platform chosen), blobs (parallel,
//! streamed straight into the content store and the unpacker, skipped when
//! present, cross-repo mounted on push), anonymous, basic and bearer-token
//! auth, credentials from `~/.docker/config.json`, plain HTTP for loopback
//! registries, retries on transient errors.

mod auth;
mod transport;

pub use auth::docker_config_auth;
pub(crate) use transport::Client;
pub use transport::RegistryOptions;

use crate::blobs::ChannelReader;
use crate::digest::hex_of;
use crate::ingest::{ingest_layer, Unpack};
use crate::media::{self, Index, Manifest};
use crate::reference::Reference;
use crate::store::{layer_records, progress, short, LayerRecord, Store};
use engine_core::{Error, ImageInfo, ProgressSender, RegistryAuth, Result};
use futures::StreamExt;
use reqwest::{header, Method, StatusCode};
use transport::BoxFut;

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
            let snapshots = root.join("snapshots");
            let how = if unpack { Unpack::Must(&opts) } else { Unpack::No };
            let got =
                ingest_layer(&blobs, &snapshots, ChannelReader::new(rx), Some(&layer.digest), how).map_err(|e| {
                    Error::Registry {
                        reference: format!("{reference} (layer {})", layer.digest),
                        message: e.to_string(),
                    }
                })?;
            match got.snapshot {
                Some(s) => s.finish(&snapshots.join(&layer.chain_id[7..])),
                None => Ok(()),
            }
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
