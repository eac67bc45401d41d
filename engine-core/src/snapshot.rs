//! The storage seam: how a container's root filesystem is made from an
//! image's unpacked layers ([`Snapshotter`]), docker's "storage driver".
//!
//! An [`crate::ImageStore`] unpacks each layer once into its own directory
//! (overlayfs whiteout form: a deleted path is a character device 0:0, an
//! opaque directory carries `trusted.overlay.opaque=y`) and hands the
//! directories of an image to its snapshotter, which makes the container's
//! root filesystem from them. `engine-image` has two: `overlay2` (an overlay
//! mount of the layers plus a private upper dir; the default) and `vfs` (a
//! plain copy of the layers into the root filesystem, for hosts without
//! overlayfs).

use crate::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A root filesystem a [`Snapshotter`] made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PreparedSnapshot {
    /// The container's root filesystem (the bundle's `rootfs`).
    pub target: PathBuf,
    /// What a commit turns into a layer, in overlayfs whiteout form: the
    /// overlay upper dir (the container's changes only), or, for a copying
    /// snapshotter, the whole root filesystem (a full-copy layer).
    pub upper: PathBuf,
    /// True when `target` is a mount point that removal unmounts.
    pub mounted: bool,
}

crate::setters::setters!(PreparedSnapshot { target: PathBuf, upper: PathBuf, mounted: bool });

/// Makes container root filesystems from unpacked image layers.
///
/// The calls do blocking filesystem work: an async caller runs them on a
/// blocking thread (`tokio::task::spawn_blocking`). Implementations keep no
/// state of their own between calls beyond what is on disk under the
/// directories they are given, so a store reopened after a crash removes
/// what an earlier process prepared.
pub trait Snapshotter: Send + Sync + std::fmt::Debug {
    /// Docker's name for this storage driver (`overlay2`, `vfs`), as
    /// `docker info` reports it under `Driver`.
    fn name(&self) -> &str;

    /// `docker info`'s `DriverStatus` lines (name, value).
    fn status(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Make `target` (created if missing) a root filesystem holding `layers`
    /// (unpacked layer directories, base first; none for an empty image).
    /// `dir` is an empty directory private to this root filesystem for the
    /// snapshotter's own files (an upper and a work dir). On error nothing
    /// is left mounted and `target` holds nothing the call put there.
    fn prepare(&self, layers: &[PathBuf], dir: &Path, target: &Path) -> Result<PreparedSnapshot>;

    /// Undo [`Snapshotter::prepare`]: unmount `target` or empty it, so that
    /// the caller can delete `dir` and `target`. Removing what is already
    /// gone succeeds.
    fn remove(&self, snapshot: &PreparedSnapshot) -> Result<()>;
}
