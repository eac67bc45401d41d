//! Volumes in the create-flow: anonymous volumes for the image's `VOLUME`s
//! and `-v /path`, named volumes created on first use, each mounted through
//! the manager's [`VolumeDriver`] for the container, and the image's content
//! copied into a volume that is still empty.

use engine_core::{ContainerConfig, Error, IoContext, MountSpec, Result, VolumeCreate, VolumeDriver};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// What a create did with volumes, to undo it if the create fails.
#[derive(Default)]
pub(crate) struct VolumeUndo {
    pub driver: Option<Arc<dyn VolumeDriver>>,
    /// Volumes this create made (removed on failure).
    pub created: Vec<String>,
    /// Volumes mounted for the container (unmounted on failure).
    pub mounted: Vec<String>,
}

impl VolumeUndo {
    pub(crate) async fn run(&self, id: &str) {
        let Some(d) = &self.driver else { return };
        for n in &self.mounted {
            if let Err(e) = d.unmount(n, id).await {
                tracing::warn!(id, volume = n, "unmounting after a failed create: {e}");
            }
        }
        for n in &self.created {
            if let Err(e) = d.remove(n).await {
                tracing::warn!(id, volume = n, "removing a volume after a failed create: {e}");
            }
        }
    }
}

/// Add an anonymous volume mount (empty name) for each of the image's
/// `VOLUME`s that no mount of the container covers.
pub(crate) fn add_image_volumes(config: &mut ContainerConfig, image_volumes: &[String]) {
    for v in image_volumes {
        let t = v.trim_end_matches('/');
        if t.is_empty() {
            continue;
        }
        let covered = config.mounts.iter().any(|m| m.target().trim_end_matches('/') == t);
        if !covered {
            config.mounts.push(MountSpec::Volume {
                name: String::new(),
                target: t.to_string(),
                read_only: false,
                no_copy: false,
            });
        }
    }
}

/// Create (named on first use, anonymous always) and mount the config's
/// volumes for container `id`; record the chosen names in `config`; copy the
/// image's content under `rootfs` into volumes that are empty. Returns each
/// volume's host path.
pub(crate) async fn prepare(
    driver: &Arc<dyn VolumeDriver>,
    config: &mut ContainerConfig,
    rootfs: &Path,
    id: &str,
    undo: &mut VolumeUndo,
) -> Result<BTreeMap<String, PathBuf>> {
    undo.driver = Some(driver.clone());
    let mut paths = BTreeMap::new();
    for m in config.mounts.iter_mut() {
        let MountSpec::Volume { name, target, no_copy, .. } = m else { continue };
        if name.is_empty() {
            let v = driver.create(VolumeCreate::anonymous()).await?;
            undo.created.push(v.name.clone());
            *name = v.name;
        } else {
            match driver.get(name).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    let v = driver.create(VolumeCreate::named(name.clone())).await?;
                    undo.created.push(v.name);
                }
                Err(e) => return Err(e),
            }
        }
        let path = driver.mount(name, id).await?;
        undo.mounted.push(name.clone());
        if !*no_copy {
            let (src, dst) = (image_path(rootfs, target), path.clone());
            tokio::task::spawn_blocking(move || copy_up(src.as_deref(), &dst))
                .await
                .map_err(|e| Error::Other(format!("volume copy task: {e}")))??;
        }
        paths.insert(name.clone(), path);
    }
    Ok(paths)
}

/// Unmount a container's volumes (its removal, or a crash-interrupted
/// one). An auto-removed container (`--rm`) takes its anonymous volumes
/// with it, as with dockerd.
pub(crate) async fn release(driver: &Option<Arc<dyn VolumeDriver>>, config: &ContainerConfig, id: &str) -> Result<()> {
    let Some(d) = driver else { return Ok(()) };
    for m in &config.mounts {
        if let MountSpec::Volume { name, .. } = m {
            match d.unmount(name, id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
            if config.auto_remove && d.get(name).await.is_ok_and(|v| v.is_anonymous()) {
                if let Err(e) = d.remove(name).await {
                    tracing::warn!(id, volume = name, "removing an anonymous volume of an auto-removed container: {e}");
                }
            }
        }
    }
    Ok(())
}

/// Count a recovered container as a user of its volumes again.
pub(crate) async fn reacquire(driver: &Option<Arc<dyn VolumeDriver>>, config: &ContainerConfig, id: &str) {
    let Some(d) = driver else { return };
    for m in &config.mounts {
        if let MountSpec::Volume { name, .. } = m {
            if let Err(e) = d.mount(name, id).await {
                tracing::warn!(id, volume = name, "remounting a volume of a recovered container: {e}");
            }
        }
    }
}

/// The directory at `target` inside the rootfs, if it is one reached
/// without symlinks (a symlink could point out of the rootfs).
fn image_path(rootfs: &Path, target: &str) -> Option<PathBuf> {
    let mut p = rootfs.to_path_buf();
    for c in Path::new(target).components() {
        match c {
            Component::Normal(n) => {
                p.push(n);
                let md = std::fs::symlink_metadata(&p).ok()?;
                if md.file_type().is_symlink() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir => {}
            _ => return None,
        }
    }
    std::fs::symlink_metadata(&p).ok()?.is_dir().then_some(p)
}

/// Copy `src`'s content into `dst` when `dst` is empty (docker's copy of
/// the image's content into a fresh volume), keeping modes, owners and
/// symlinks; also gives `dst` the mode and owner of `src`.
fn copy_up(src: Option<&Path>, dst: &Path) -> Result<()> {
    let Some(src) = src else { return Ok(()) };
    let empty = std::fs::read_dir(dst).context(|| format!("reading {}", dst.display()))?.next().is_none();
    if !empty {
        return Ok(());
    }
    copy_attrs(src, dst)?;
    copy_dir(src, dst)
}

fn copy_attrs(src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(src).context(|| format!("reading {}", src.display()))?;
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid())).context(|| format!("chown {}", dst.display()))?;
    if !md.file_type().is_symlink() {
        std::fs::set_permissions(dst, md.permissions()).context(|| format!("chmod {}", dst.display()))?;
    }
    Ok(())
}

fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    for e in std::fs::read_dir(src).context(|| format!("reading {}", src.display()))? {
        let e = e.context(|| format!("reading {}", src.display()))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type().context(|| format!("reading {}", from.display()))?;
        if ft.is_dir() {
            std::fs::create_dir(&to).context(|| format!("creating {}", to.display()))?;
            copy_dir(&from, &to)?;
        } else if ft.is_symlink() {
            let link = std::fs::read_link(&from).context(|| format!("reading link {}", from.display()))?;
            std::os::unix::fs::symlink(link, &to).context(|| format!("creating link {}", to.display()))?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).context(|| format!("copying {} to {}", from.display(), to.display()))?;
        } else {
            // Devices, fifos and sockets are not copied (docker copies
            // them; an image's volume path rarely holds any).
            continue;
        }
        copy_attrs(&from, &to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_volumes_become_anonymous_mounts_unless_covered() {
        let mut c = ContainerConfig::default();
        c.mounts.push(MountSpec::Tmpfs { target: "/a/".into(), size: None });
        add_image_volumes(&mut c, &["/a".into(), "/b".into()]);
        assert_eq!(c.mounts.len(), 2);
        assert!(matches!(&c.mounts[1], MountSpec::Volume { name, target, .. } if name.is_empty() && target == "/b"));
    }

    #[test]
    fn copy_up_copies_into_an_empty_dir_only() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink("sub/f", src.join("l")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        copy_up(Some(&src), &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("l")).unwrap(), "x");
        std::fs::write(src.join("new"), "y").unwrap();
        copy_up(Some(&src), &dst).unwrap();
        assert!(!dst.join("new").exists());
        // A symlinked path in the image is not followed.
        std::os::unix::fs::symlink("/etc", d.path().join("src/etc")).unwrap();
        assert_eq!(image_path(&src, "/etc"), None);
        assert_eq!(image_path(&src, "/sub"), Some(src.join("sub")));
    }
}
