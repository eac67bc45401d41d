//! # engine-image
//!
//! The engine's default [`engine_core::ImageStore`]: a content-addressed
//! blob store, a registry client (OCI distribution spec: Docker schema 2 and
//! OCI manifests and indexes, anonymous, basic and bearer-token auth),
//! docker-archive and OCI layout import and export, safe layer unpacking into
//! one snapshot directory per chain id (overlayfs whiteout form), and
//! container root filesystems made by an [`engine_core::Snapshotter`]:
//! [`OverlaySnapshotter`] (`overlay2`, overlay mounts with a copying
//! fallback; the default) or [`VfsSnapshotter`] (`vfs`, plain copies),
//! chosen with [`StoreOptions::storage_driver`].
//!
//! ```no_run
//! use engine_core::ImageStore;
//! # async fn demo() -> engine_core::Result<()> {
//! let store = engine_image::Store::open("/var/lib/engine/image")?;
//! // A runnable image without any registry:
//! let dir = tempfile::tempdir().unwrap();
//! engine_image::build::busybox_rootfs(dir.path())?;
//! let img = store.import_dir(dir.path(), "busybox:latest").await?;
//! let rootfs = store.prepare_rootfs(&img.id, "ctr1", std::path::Path::new("/run/ctr1/rootfs")).await?;
//! assert!(rootfs.path.join("bin/busybox").exists());
//! store.remove_rootfs("ctr1").await?;
//! // From a registry:
//! let img = store.pull("127.0.0.1:5000/busybox:latest", None, None).await?;
//! println!("{} {:?}", img.id, img.repo_tags);
//! # Ok(()) }
//! ```
//!
//! On-disk layout under the root: `blobs/sha256/<hex>` (content),
//! `snapshots/<chain-id-hex>/fs` (unpacked layers), `rootfs/<key>/{upper,work}`
//! (containers), `state.json` (images, tags, root filesystems; written
//! atomically), `tmp/` (blobs being written).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod archive;
mod blobs;
pub mod build;
pub mod diff;
pub mod digest;
mod ingest;
pub mod media;
mod reference;
mod registry;
mod snapshot;
pub mod spec;
mod store;
mod sys;
pub mod unpack;

pub use blobs::{BlobWriter, Blobs};
pub use reference::{host_is_loopback, Reference, DOCKER_HUB};
pub use registry::{docker_config_auth, RegistryOptions};
pub use snapshot::{copy_layers, OverlaySnapshotter, VfsSnapshotter};
pub use store::{short, ImageRecord, LayerRecord, RootfsRecord, State, StorageDriver, Store, StoreOptions};

/// Test helpers: make images from directories (an alias of [`build`]).
pub mod testutil {
    pub use crate::build::{busybox_rootfs, image_from_dir, image_from_dirs, ImageOptions};
}
