//! `docker cp`: `HEAD|GET|PUT /containers/{id}/archive?path=...`, on the
//! container's root filesystem as mounted on the host. Every path is resolved
//! inside the root (symlinks followed as the container would see them), so
//! nothing outside it can be read or written.

use super::State;
use crate::http::{self as h, Query, Resp};
use base64::Engine as _;
use bytes::Bytes;
use engine_core::{Error, Result};
use http::{HeaderValue, StatusCode};
use hyper::body::Incoming;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Resolve `path` (as the container sees it) to a host path under `root`,
/// following symlinks within the root. The last component is followed too
/// unless `follow_last` is false.
pub(crate) fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> Result<PathBuf> {
    let mut todo: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let host = cur.iter().fold(root.to_path_buf(), |p, s| p.join(s)).join(&c);
        let last = todo.is_empty();
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() && (!last || follow_last) => {
                links += 1;
                if links > 40 {
                    return Err(Error::invalid("path", format!("{path}: too many levels of symbolic links")));
                }
                let target =
                    std::fs::read_link(&host).map_err(|e| Error::io(format!("readlink {}", host.display()), e))?;
                if target.is_absolute() {
                    cur.clear();
                }
                let parts: Vec<String> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                for p in parts.into_iter().rev() {
                    todo.push(p);
                }
            }
            _ => cur.push(c),
        }
    }
    Ok(cur.iter().fold(root.to_path_buf(), |p, s| p.join(s)))
}

fn stat_header(p: &Path, name: &str) -> Result<HeaderValue> {
    let m = std::fs::symlink_metadata(p).map_err(|e| Error::io(format!("stat {}", p.display()), e))?;
    let mut mode = m.permissions().mode() & 0o7777;
    // Go's os.FileMode bits: ModeDir (1<<31), ModeSymlink (1<<27).
    let mut go_mode: u64 = mode as u64;
    if m.is_dir() {
        go_mode |= 1 << 31;
    } else if m.file_type().is_symlink() {
        go_mode |= 1 << 27;
        mode = 0o777;
        go_mode |= mode as u64;
    }
    let link = if m.file_type().is_symlink() {
        std::fs::read_link(p).map(|l| l.display().to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let mtime = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.mtime().max(0) as u64),
    )
    .to_string();
    let json = serde_json::json!({"name": name, "size": m.size(), "mode": go_mode, "mtime": mtime, "linkTarget": link});
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json.to_string()))
        .map_err(|e| Error::Other(e.to_string()))
}

async fn rootfs(st: &State, id: &str) -> Result<PathBuf> {
    let info = st.manager.inspect(id).await?;
    let root = info.bundle.join("rootfs");
    if !root.join("proc").exists() && std::fs::read_dir(&root).map(|mut d| d.next().is_none()).unwrap_or(true) {
        return Err(Error::conflict("container", id, "its root filesystem is not mounted"));
    }
    Ok(root)
}

fn query_path(q: &Query) -> Result<String> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(Error::invalid("query parameter path", "a path is required")),
    }
}

fn base_name(path: &str) -> String {
    Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "/".into())
}

/// `HEAD /containers/{id}/archive`: stat a path.
pub(crate) async fn head(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let path = query_path(q)?;
    let root = rootfs(st, id).await?;
    let host = resolve_in_root(&root, &path, false)?;
    if std::fs::symlink_metadata(&host).is_err() {
        return Err(Error::not_found("path", format!("{path} in container {id}")));
    }
    let mut r = h::status(StatusCode::OK);
    r.headers_mut().insert("x-docker-container-path-stat", stat_header(&host, &base_name(&path))?);
    Ok(r)
}

/// `GET /containers/{id}/archive`: a tar of a path.
pub(crate) async fn get(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let path = query_path(q)?;
    let root = rootfs(st, id).await?;
    let host = resolve_in_root(&root, &path, true)?;
    let meta =
        std::fs::symlink_metadata(&host).map_err(|_| Error::not_found("path", format!("{path} in container {id}")))?;
    let name = base_name(&path);
    let stat = stat_header(&host, &name)?;
    let s = tar_stream(host, if meta.is_dir() { Some(name) } else { None }, Some(base_name(&path)));
    let mut r = h::with_status(StatusCode::OK, h::stream_body(s));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    r.headers_mut().insert("x-docker-container-path-stat", stat);
    Ok(r)
}

/// A tar of `host` streamed as it is written: a directory under `dir_name`
/// (or its contents at the top when `None`), a single entry as `file_name`.
fn tar_stream(
    host: PathBuf,
    dir_name: Option<String>,
    file_name: Option<String>,
) -> futures::stream::BoxStream<'static, std::result::Result<Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        struct ChanWriter(tokio::sync::mpsc::Sender<std::result::Result<Bytes, std::io::Error>>);
        impl std::io::Write for ChanWriter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .blocking_send(Ok(Bytes::copy_from_slice(buf)))
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(64 * 1024, ChanWriter(tx.clone())));
        b.follow_symlinks(false);
        let r = if host.is_dir() && !host.is_symlink() {
            b.append_dir_all(dir_name.unwrap_or_else(|| ".".into()), &host)
        } else {
            b.append_path_with_name(&host, file_name.unwrap_or_else(|| "file".into()))
        };
        let r = r.and_then(|_| b.into_inner()).and_then(|mut w| std::io::Write::flush(&mut w));
        if let Err(e) = r {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures::StreamExt::boxed(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// `GET /containers/{id}/export`: the container's whole filesystem as a tar.
pub(crate) async fn export(st: &State, id: &str) -> Result<Resp> {
    let root = rootfs(st, id).await?;
    let s = tar_stream(root, None, None);
    let mut r = h::with_status(StatusCode::OK, h::stream_body(s));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

/// `PUT /containers/{id}/archive`: extract a tar into a directory.
pub(crate) async fn put(st: &State, id: &str, q: &Query, body: Incoming) -> Result<Resp> {
    let path = query_path(q)?;
    let root = rootfs(st, id).await?;
    let dest = resolve_in_root(&root, &path, true)?;
    if !dest.is_dir() {
        return Err(Error::not_found("directory", format!("{path} in container {id}")));
    }
    let tmp = super::images::body_to_file(st, body).await?;
    let root2 = root.clone();
    let base = path.clone();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&tmp).map_err(|e| Error::io(format!("opening {}", tmp.display()), e))?;
        extract(&root2, &base, f)
    })
    .await
    .map_err(|e| Error::Other(format!("extract task: {e}")))??;
    Ok(h::status(StatusCode::OK))
}

fn extract(root: &Path, base: &str, data: impl std::io::Read) -> Result<()> {
    let mut ar = tar::Archive::new(data);
    ar.set_preserve_permissions(true);
    let entries = ar.entries().map_err(|e| Error::invalid("archive", e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::invalid("archive", e.to_string()))?;
        let rel = entry.path().map_err(|e| Error::invalid("archive", e.to_string()))?.into_owned();
        let rel_s = rel.to_string_lossy().into_owned();
        if rel.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Error::invalid("archive", format!("entry {rel_s:?} climbs out with '..'")));
        }
        let in_container =
            format!("{}/{}", base.trim_end_matches('/'), rel_s.trim_start_matches("./").trim_end_matches('/'));
        // Parents resolved in the root; the entry itself is never followed.
        let host = resolve_in_root(root, &in_container, false)?;
        if host == root {
            continue;
        }
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("mkdir {}", parent.display()), e))?;
        }
        let kind = entry.header().entry_type();
        if let Ok(m) = std::fs::symlink_metadata(&host) {
            if !(m.is_dir() && kind.is_dir()) {
                let _ = if m.is_dir() { std::fs::remove_dir_all(&host) } else { std::fs::remove_file(&host) };
            }
        }
        if kind.is_hard_link() {
            let target = entry.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
            let t = resolve_in_root(root, &format!("{}/{}", base.trim_end_matches('/'), target), false)?;
            std::fs::hard_link(&t, &host).map_err(|e| Error::io(format!("link {}", host.display()), e))?;
            continue;
        }
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind == tar::EntryType::Continuous) {
            return Err(Error::invalid(
                "archive",
                format!("entry {rel_s:?}: only files, directories and links are accepted"),
            ));
        }
        entry.unpack(&host).map_err(|e| Error::io(format!("extract {rel_s} to {}", host.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../", root.join("up")).unwrap();
        std::os::unix::fs::symlink("etc", root.join("rel")).unwrap();
        assert_eq!(resolve_in_root(root, "/abs/passwd", true).unwrap(), root.join("etc/passwd"));
        assert_eq!(resolve_in_root(root, "/up/etc/shadow", true).unwrap(), root.join("etc/shadow"));
        assert_eq!(resolve_in_root(root, "/../../etc", true).unwrap(), root.join("etc"));
        assert_eq!(resolve_in_root(root, "rel", false).unwrap(), root.join("rel"));
        assert_eq!(resolve_in_root(root, "rel", true).unwrap(), root.join("etc"));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in_root(root, "/loop/x", true).is_err());
    }
}
