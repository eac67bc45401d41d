//! The image store tier: content-addressed blobs, registries, archives,
//! and overlay snapshots that become container root filesystems.

use crate::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Credentials for a registry, as docker sends them in `X-Registry-Auth`
/// or keeps them in `~/.docker/config.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegistryAuth {
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password or token.
    #[serde(default)]
    pub password: Option<String>,
    /// A ready identity/refresh token.
    #[serde(default)]
    pub identity_token: Option<String>,
    /// A ready bearer token for the registry.
    #[serde(default)]
    pub registry_token: Option<String>,
}

crate::setters::setters!(RegistryAuth { username: Option<String>, password: Option<String>, identity_token: Option<String>, registry_token: Option<String> });

/// One progress event from pull, push or load, fit to draw a progress bar
/// per layer (Docker's JSON progress stream has the same fields).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Progress {
    /// What is being worked on (a short layer digest, or empty for the image).
    pub id: String,
    /// `"Downloading"`, `"Extracting"`, `"Pull complete"`, `"Pushed"`, ...
    pub status: String,
    /// Bytes done so far.
    pub current: Option<u64>,
    /// Bytes in all, if known.
    pub total: Option<u64>,
}

crate::setters::setters!(Progress { id: String, status: String, current: Option<u64>, total: Option<u64> });

/// Where progress events go. Cheap to clone; sending never blocks.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<Progress>;

/// Bytes arriving in order (an upload's body). The stream ends (`None`) only
/// once all of it arrived; a body cut off half-way yields an error instead, so
/// a reader never takes a cut-off archive for a whole one.
pub type ByteStream = futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;

/// What an image store knows of one image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageInfo {
    /// The image id: the digest of its config (`sha256:...`).
    pub id: String,
    /// Tags that point at it (`registry/repo:tag`, normalized).
    pub repo_tags: Vec<String>,
    /// `repo@sha256:...` of the manifests it was pulled or pushed as.
    pub repo_digests: Vec<String>,
    /// Creation time from its config.
    #[serde(with = "crate::time::serde_opt_system_time")]
    pub created: Option<SystemTime>,
    /// Unpacked size of all its layers, in bytes.
    pub size: u64,
    /// Its config (entrypoint, cmd, env, ...), as the OCI image spec defines it.
    pub config: oci_spec::image::ImageConfiguration,
}

crate::setters::setters!(ImageInfo { id: String, repo_tags: Vec<String>, repo_digests: Vec<String>, created: Option<SystemTime>, size: u64, config: oci_spec::image::ImageConfiguration });

/// Archive formats for import and export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ArchiveFormat {
    /// What `docker save` writes (legacy and Docker 25+ layouts on import).
    DockerArchive,
    /// An OCI image layout as a tar.
    OciArchive,
    /// A plain root filesystem tar, imported as a one-layer image (`docker import`).
    RootfsTar,
}

/// A prepared root filesystem for one container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rootfs {
    /// The snapshot key it was prepared under.
    pub key: String,
    /// Where it is mounted (the bundle's `rootfs`).
    pub path: PathBuf,
    /// The writable layer (an overlay upper dir, or the copy).
    pub upper: PathBuf,
}

crate::setters::setters!(Rootfs { key: String, path: PathBuf, upper: PathBuf });

/// One entry of what a removal did (`docker rmi` prints these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Removed {
    /// A tag was removed.
    Untagged(String),
    /// An image (or layer) was deleted.
    Deleted(String),
}

/// What [`ImageStore::commit`] makes: a new image from a parent image plus,
/// optionally, the changes in a prepared root filesystem (its upper dir)
/// as one more layer. `docker commit` and every step of an image build use it.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CommitRequest {
    /// The root filesystem (its snapshot key; a container's is its id) whose
    /// changes become the new layer. `None` adds no layer (a metadata-only
    /// step, recorded in the history as an empty layer).
    pub rootfs: Option<String>,
    /// The parent image (reference or id) when `rootfs` is `None`; `None`
    /// with no `rootfs` starts from nothing (`FROM scratch`). With `rootfs`,
    /// the parent is the image the root filesystem was prepared from.
    pub parent: Option<String>,
    /// The new image's run config as the image config's `config` object
    /// (`Cmd`, `Env`, `Healthcheck`, `OnBuild`, ... as dockerd writes them),
    /// replacing the parent's; `None` keeps the parent's.
    pub config: Option<serde_json::Value>,
    /// The history entry's `created_by` (`/bin/sh -c #(nop)  CMD ["sh"]`).
    pub created_by: String,
    /// The history entry's and the image's comment (`docker commit -m`).
    pub comment: Option<String>,
    /// The image's author (`docker commit -a`).
    pub author: Option<String>,
    /// Tag the new image with this reference.
    pub tag: Option<String>,
}

crate::setters::setters!(CommitRequest { rootfs: Option<String>, parent: Option<String>, config: Option<serde_json::Value>, created_by: String, comment: Option<String>, author: Option<String>, tag: Option<String> });

/// An image store (containerd's content + images + snapshots services in one).
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Pull `reference` from its registry; returns the image.
    async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress: Option<ProgressSender>,
    ) -> Result<ImageInfo>;
    /// Push a local image to the registry its reference names; returns the manifest digest.
    async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress: Option<ProgressSender>,
    ) -> Result<String>;
    /// Import images from an archive file; `tag` names a [`ArchiveFormat::RootfsTar`] import.
    async fn import(
        &self,
        archive: &Path,
        format: ArchiveFormat,
        tag: Option<&str>,
        progress: Option<ProgressSender>,
    ) -> Result<Vec<ImageInfo>>;
    /// [`ImageStore::import`] of an archive read from `body` as it arrives
    /// (`docker load`, `docker import`): the store never holds the whole
    /// archive. A body that breaks off is an error and leaves nothing behind.
    /// The default spools `body` to a temporary file and imports that; a
    /// store that can, reads it once into its content store instead.
    async fn import_stream(
        &self,
        body: ByteStream,
        format: ArchiveFormat,
        tag: Option<&str>,
        progress: Option<ProgressSender>,
    ) -> Result<Vec<ImageInfo>> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let path = std::env::temp_dir().join(format!("engine-import-{}.tar", &crate::random_hex64()[..16]));
        let spool = async {
            let mut f = tokio::fs::File::create(&path)
                .await
                .map_err(|e| crate::Error::io(format!("create {}", path.display()), e))?;
            let mut body = body;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| crate::Error::invalid("upload", format!("the body broke off: {e}")))?;
                f.write_all(&chunk).await.map_err(|e| crate::Error::io(format!("write {}", path.display()), e))?;
            }
            f.flush().await.map_err(|e| crate::Error::io(format!("write {}", path.display()), e))
        };
        let r = match spool.await {
            Ok(()) => self.import(&path, format, tag, progress).await,
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&path).await;
        r
    }
    /// Export images to an archive file.
    async fn export(&self, references: &[String], format: ArchiveFormat, dest: &Path) -> Result<()>;
    /// [`ImageStore::export`] as a stream of the archive's bytes
    /// (`docker save`): an unknown image is an error before the first byte;
    /// an error later ends the stream with it. The default exports to a
    /// temporary file and streams that; a store that can writes the archive
    /// as it is read instead.
    async fn export_stream(&self, references: &[String], format: ArchiveFormat) -> Result<ByteStream> {
        use futures::StreamExt;
        use tokio::io::AsyncReadExt;
        let path = std::env::temp_dir().join(format!("engine-export-{}.tar", &crate::random_hex64()[..16]));
        let r = self.export(references, format, &path).await;
        let f = match r {
            Ok(()) => {
                tokio::fs::File::open(&path).await.map_err(|e| crate::Error::io(format!("open {}", path.display()), e))
            }
            Err(e) => Err(e),
        };
        // Unlinked now; the open file stays readable until the stream ends.
        let _ = tokio::fs::remove_file(&path).await;
        let f = f?;
        Ok(futures::stream::unfold(Some(f), |f| async move {
            let mut f = f?;
            let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
            match f.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(buf.freeze()), Some(f))),
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed())
    }
    /// All images.
    async fn list(&self) -> Result<Vec<ImageInfo>>;
    /// One image, by reference, id or id prefix.
    async fn inspect(&self, reference: &str) -> Result<ImageInfo>;
    /// Make `target` point at the image `source` names.
    async fn tag(&self, source: &str, target: &str) -> Result<()>;
    /// Remove a tag or image; unreferenced blobs and snapshots are collected.
    /// An image in use by a container is a conflict unless `force`.
    async fn remove(&self, reference: &str, force: bool) -> Result<Vec<Removed>>;
    /// Prepare the root filesystem of a new container from `image` under
    /// snapshot `key`, mounted at `target`.
    async fn prepare_rootfs(&self, image: &str, key: &str, target: &Path) -> Result<Rootfs>;
    /// Unmount and delete a container's root filesystem.
    async fn remove_rootfs(&self, key: &str) -> Result<()>;
    /// Make a new image (see [`CommitRequest`]); returns it.
    async fn commit(&self, request: CommitRequest) -> Result<ImageInfo> {
        let _ = request;
        Err(crate::Error::Unsupported("this image store cannot commit images".into()))
    }
    /// The image's config JSON as stored, with the fields the OCI types do
    /// not carry (`Healthcheck`, `OnBuild`, `Shell`); the default
    /// re-encodes [`ImageInfo::config`].
    async fn config_json(&self, reference: &str) -> Result<serde_json::Value> {
        let info = self.inspect(reference).await?;
        serde_json::to_value(&info.config).map_err(|e| crate::Error::Other(format!("encode image config: {e}")))
    }
    /// The storage driver that makes containers' root filesystems, for
    /// `docker info` (`None`: the store does not say).
    fn snapshotter(&self) -> Option<&dyn crate::Snapshotter> {
        None
    }
    /// Labels of images, for filters.
    async fn labels(&self, reference: &str) -> Result<HashMap<String, String>> {
        Ok(self.inspect(reference).await?.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default())
    }
}
