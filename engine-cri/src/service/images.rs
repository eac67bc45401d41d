//! The ImageService: list, inspect, pull and remove images in the engine's
//! store, and the image filesystem's usage.

use super::convert::{cri_image, nanos};
use super::{invalid, status, CriServer, R};
use crate::pb;
use base64::Engine as _;
use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl pb::image_service_server::ImageService for CriServer {
    async fn list_images(&self, req: Request<pb::ListImagesRequest>) -> R<pb::ListImagesResponse> {
        let want = req.into_inner().filter.and_then(|f| f.image).map(|i| i.image).unwrap_or_default();
        let mut images = Vec::new();
        for i in self.images.list().await.map_err(status)? {
            if want.is_empty() || i.id == want || i.repo_tags.contains(&want) {
                images.push(cri_image(&i));
            }
        }
        Ok(Response::new(pb::ListImagesResponse { images }))
    }

    async fn image_status(&self, req: Request<pb::ImageStatusRequest>) -> R<pb::ImageStatusResponse> {
        let image = req.into_inner().image.map(|i| i.image).unwrap_or_default();
        if image.is_empty() {
            return Err(invalid("image", "required"));
        }
        // CRI: a missing image is a nil image, not an error.
        let image = match self.images.inspect(&image).await {
            Ok(i) => Some(cri_image(&i)),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(status(e)),
        };
        Ok(Response::new(pb::ImageStatusResponse { image, info: HashMap::new() }))
    }

    async fn pull_image(&self, req: Request<pb::PullImageRequest>) -> R<pb::PullImageResponse> {
        let req = req.into_inner();
        let image = req.image.map(|i| i.image).unwrap_or_default();
        if image.is_empty() {
            return Err(invalid("image", "required"));
        }
        let auth = match req.auth {
            None => None,
            Some(a) if !a.identity_token.is_empty() || !a.registry_token.is_empty() => {
                return Err(invalid("auth", "token authentication is not supported yet (username/password or auth)"))
            }
            Some(a) => {
                let (mut username, mut password) = (a.username, a.password);
                if !a.auth.is_empty() {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(&a.auth)
                        .map_err(|_| invalid("auth.auth", "not base64"))?;
                    let s = String::from_utf8(raw).map_err(|_| invalid("auth.auth", "not UTF-8"))?;
                    let (u, p) = s.split_once(':').ok_or_else(|| invalid("auth.auth", "not user:password"))?;
                    (username, password) = (u.to_string(), p.to_string());
                }
                Some(engine_core::RegistryAuth::default().username(Some(username)).password(Some(password)))
            }
        };
        let info = self.images.pull(&image, auth.as_ref(), None).await.map_err(status)?;
        Ok(Response::new(pb::PullImageResponse { image_ref: info.id }))
    }

    async fn remove_image(&self, req: Request<pb::RemoveImageRequest>) -> R<pb::RemoveImageResponse> {
        let image = req.into_inner().image.map(|i| i.image).unwrap_or_default();
        if image.is_empty() {
            return Err(invalid("image", "required"));
        }
        // CRI: removing a missing image succeeds.
        let info = match self.images.inspect(&image).await {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(Response::new(pb::RemoveImageResponse {})),
            Err(e) => return Err(status(e)),
        };
        // By id removes every tag (CRI removes the image, not one name).
        self.images.remove(&info.id, false).await.map_err(status)?;
        Ok(Response::new(pb::RemoveImageResponse {}))
    }

    async fn image_fs_info(&self, _req: Request<pb::ImageFsInfoRequest>) -> R<pb::ImageFsInfoResponse> {
        let dir = self.root.join("images");
        let d = dir.clone();
        let (used, inodes) = tokio::task::spawn_blocking(move || du(&d))
            .await
            .map_err(|e| Status::internal(format!("measuring {}: {e}", dir.display())))?;
        let now = nanos(Some(SystemTime::now()));
        Ok(Response::new(pb::ImageFsInfoResponse {
            image_filesystems: vec![pb::FilesystemUsage {
                timestamp: now,
                fs_id: Some(pb::FilesystemIdentifier { mountpoint: dir.to_string_lossy().into_owned() }),
                used_bytes: Some(pb::UInt64Value { value: used }),
                inodes_used: Some(pb::UInt64Value { value: inodes }),
            }],
            container_filesystems: vec![],
        }))
    }
}

/// Bytes (allocated blocks) and inodes under `dir`, without following
/// symlinks or crossing into mounts (containers' root filesystems).
fn du(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else { return (0, 0) };
    let dev = top.dev();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
        if m.dev() != dev || !seen.insert(m.ino()) {
            continue;
        }
        bytes += m.blocks() * 512;
        inodes += 1;
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    (bytes, inodes)
}
