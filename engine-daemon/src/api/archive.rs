//! `docker cp`: `HEAD|GET|PUT /containers/{id}/archive?path=...`, and
//! `docker export`, through `engine_archive`: every path is resolved inside
//! the container's root with `openat2(RESOLVE_IN_ROOT)` and used through file
//! descriptors only, so a container that swaps a directory for a symlink
//! while a copy runs cannot redirect it to the host. A running container is
//! seen as its processes see it (its mounts included).

use super::State;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use base64::Engine as _;
use bytes::Bytes;
use engine_archive::{ContainerRoot, ExtractOptions, PathStat};
use engine_core::{Error, Result};
use http::{HeaderValue, StatusCode};

fn stat_header(st: &PathStat) -> Result<HeaderValue> {
    let mtime = humantime::format_rfc3339_seconds(st.mtime).to_string();
    let json = serde_json::json!({
        "name": st.name,
        "size": st.size,
        "mode": st.go_mode(),
        "mtime": mtime,
        "linkTarget": st.link_target.clone().unwrap_or_default(),
    });
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json.to_string()))
        .map_err(|e| Error::Other(e.to_string()))
}

/// The container's root: its processes' view while it runs, else its root
/// filesystem (`live`: false always takes the root filesystem, without the
/// container's mounts, as `docker export` does).
async fn container_root(st: &State, id: &str, live: bool) -> Result<ContainerRoot> {
    let info = st.manager.inspect(id).await?;
    let root = info.bundle.join("rootfs");
    if !root.join("proc").exists() && std::fs::read_dir(&root).map(|mut d| d.next().is_none()).unwrap_or(true) {
        return Err(Error::conflict("container", id, "its root filesystem is not mounted"));
    }
    let pid =
        if live && matches!(info.state, engine_core::ContainerState::Running | engine_core::ContainerState::Paused) {
            info.pid
        } else {
            None
        };
    blocking(move || ContainerRoot::open(pid, &root)).await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Other(format!("copy task: {e}")))?
}

fn query_path(q: &Query) -> Result<String> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(Error::invalid("query parameter path", "a path is required")),
    }
}

fn not_found_in(id: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::NotFound { id: what, .. } => {
            Error::not_found("path", format!("{} {id}", what.replace("the container", "container")))
        }
        e => e,
    }
}

/// `HEAD /containers/{id}/archive`: stat a path.
pub(crate) async fn head(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let path = query_path(q)?;
    let root = container_root(st, id, true).await?;
    let stat = blocking(move || root.stat(&path)).await.map_err(not_found_in(id))?;
    let mut r = h::status(StatusCode::OK);
    r.headers_mut().insert("x-docker-container-path-stat", stat_header(&stat)?);
    Ok(r)
}

/// `GET /containers/{id}/archive`: a tar of a path.
pub(crate) async fn get(st: &State, id: &str, q: &Query) -> Result<Resp> {
    let path = query_path(q)?;
    let root = container_root(st, id, true).await?;
    let (root, stat) = {
        let path = path.clone();
        blocking(move || root.stat(&path).map(|s| (root, s))).await.map_err(not_found_in(id))?
    };
    let header = stat_header(&stat)?;
    let s = tar_stream(move |w| root.write_tar(&path, w).map(drop));
    let mut r = h::with_status(StatusCode::OK, h::stream_body(s));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    r.headers_mut().insert("x-docker-container-path-stat", header);
    Ok(r)
}

/// A tar written by `write` (on a blocking thread) streamed as it is written.
fn tar_stream(
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<()> + Send + 'static,
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
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, ChanWriter(tx.clone()));
        let r = write(&mut w).and_then(|_| std::io::Write::flush(&mut w).map_err(|e| Error::io("sending the tar", e)));
        if let Err(e) = r {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    futures::StreamExt::boxed(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// `GET /containers/{id}/export`: the container's whole filesystem as a tar.
pub(crate) async fn export(st: &State, id: &str) -> Result<Resp> {
    let root = container_root(st, id, false).await?;
    let s = tar_stream(move |w| root.write_tar_of_root(w));
    let mut r = h::with_status(StatusCode::OK, h::stream_body(s));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

/// `PUT /containers/{id}/archive`: extract a tar into a directory
/// (`copyUIDGID` keeps the archive's owners, `noOverwriteDirNonDir` refuses
/// to replace a directory with a file or the reverse).
pub(crate) async fn put(st: &State, id: &str, q: &Query, body: Incoming) -> Result<Resp> {
    let path = query_path(q)?;
    let root = container_root(st, id, true).await?;
    let opts = ExtractOptions::default()
        .copy_uid_gid(q.bool("copyUIDGID"))
        .no_overwrite_dir_non_dir(q.bool("noOverwriteDirNonDir"));
    // The destination must exist before the body is read.
    let (root, _) = {
        let path = path.clone();
        blocking(move || root.stat(&path).map(|s| (root, s))).await.map_err(not_found_in(id))?
    };
    let tmp = super::images::body_to_file(st, body).await?;
    blocking(move || {
        let f = std::fs::File::open(&tmp).map_err(|e| Error::io(format!("opening {}", tmp.display()), e));
        f.and_then(|f| root.extract_tar(&path, std::io::BufReader::new(f), &opts))
    })
    .await?;
    Ok(h::status(StatusCode::OK))
}
