//! `/images/...`. Image names appear unescaped in paths (`/images/127.0.0.1:5000/bb/push`),
//! so routing matches greedily up to the last fixed segment.

use super::State;
use crate::convert;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use bytes::Bytes;
use engine_api::models::*;
use engine_core::{ArchiveFormat, Error, Progress, RegistryAuth, Removed, Result};
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use std::future::Future;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

fn pct_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

pub(crate) async fn route(st: &State, method: &Method, path: &str, q: &Query, req: Request<Incoming>) -> Result<Resp> {
    let rest = pct_decode(path.trim_start_matches('/').strip_prefix("images/").unwrap_or(""));
    let m = method.as_str();
    match (m, rest.as_str()) {
        ("GET", "json") => list(st, q).await,
        ("POST", "load") => load(st, q, req.into_body()).await,
        ("GET", "get") => save(st, q.all("names").to_vec()).await,
        ("POST", "create") => create(st, q, req).await,
        ("GET", "search") => Ok(h::json(StatusCode::OK, &json!([]))),
        ("POST", "prune") => prune(st).await,
        ("DELETE", name) if !name.is_empty() => remove(st, name, q).await,
        ("GET", r) if r.ends_with("/json") => inspect(st, &r[..r.len() - 5]).await,
        ("GET", r) if r.ends_with("/history") => history(st, &r[..r.len() - 8]).await,
        ("GET", r) if r.ends_with("/get") => save(st, vec![r[..r.len() - 4].to_string()]).await,
        ("POST", r) if r.ends_with("/tag") => tag(st, &r[..r.len() - 4], q).await,
        ("POST", r) if r.ends_with("/push") => {
            let auth = registry_auth(req.headers())?;
            push(st, &r[..r.len() - 5], q, auth).await
        }
        _ => Ok(h::error_status(StatusCode::NOT_FOUND, format!("page not found: {method} {path}"))),
    }
}

/// Decode `X-Registry-Auth` (base64url JSON, as docker sends it; plain base64 accepted).
pub(crate) fn registry_auth(headers: &HeaderMap) -> Result<Option<RegistryAuth>> {
    use base64::Engine as _;
    let Some(v) = headers.get("x-registry-auth").and_then(|v| v.to_str().ok()).map(str::trim) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    let engines = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let raw = engines
        .iter()
        .find_map(|e| e.decode(v).ok())
        .ok_or_else(|| Error::invalid("X-Registry-Auth header", "not base64"))?;
    #[derive(serde::Deserialize, Default)]
    struct Wire {
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default, rename = "identitytoken")]
        identity_token: Option<String>,
        #[serde(default, rename = "registrytoken")]
        registry_token: Option<String>,
    }
    let w: Wire = serde_json::from_slice(&raw)
        .map_err(|e| Error::invalid("X-Registry-Auth header", format!("not the expected JSON: {e}")))?;
    let ne = |s: Option<String>| s.filter(|s| !s.is_empty());
    let a = RegistryAuth::default()
        .username(ne(w.username))
        .password(ne(w.password))
        .identity_token(ne(w.identity_token))
        .registry_token(ne(w.registry_token));
    Ok((a != RegistryAuth::default()).then_some(a))
}

async fn list(st: &State, q: &Query) -> Result<Resp> {
    let filters = q.filters()?;
    let mut images = st.images.list().await?;
    if let Some(refs) = filters.get("reference") {
        images.retain(|i| {
            refs.iter().any(|r| {
                i.repo_tags.iter().any(|t| {
                    let f = convert::familiar(t);
                    f == *r || engine_api::split_tag(&f).0 == r || t == r
                })
            })
        });
    }
    if let Some(d) = filters.get("dangling").and_then(|v| v.first()) {
        let want = d == "true" || d == "1";
        images.retain(|i| i.repo_tags.is_empty() == want);
    }
    if !q.bool("all") {
        // As dockerd: an untagged image another image was made on (a build's
        // intermediate step) shows only with `-a`.
        let hidden: Vec<bool> =
            images.iter().map(|i| i.repo_tags.is_empty() && images.iter().any(|c| is_parent_of(i, c))).collect();
        let mut keep = hidden.iter().map(|h| !h);
        images.retain(|_| keep.next().unwrap_or(true));
    }
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
    let out: Vec<ImageSummary> = images.iter().map(convert::image_summary).collect();
    Ok(h::json(StatusCode::OK, &out))
}

/// Was `child` made on `parent` (a commit or build step on top of it)?
/// Its history and layers extend the parent's.
fn is_parent_of(parent: &engine_core::ImageInfo, child: &engine_core::ImageInfo) -> bool {
    let (ph, ch) =
        (parent.config.history().as_deref().unwrap_or(&[]), child.config.history().as_deref().unwrap_or(&[]));
    let (pl, cl) = (parent.config.rootfs().diff_ids(), child.config.rootfs().diff_ids());
    parent.id != child.id && !ph.is_empty() && ch.len() > ph.len() && ch.starts_with(ph) && cl.starts_with(pl)
}

/// `POST /images/prune`: remove untagged images no container uses.
async fn prune(st: &State) -> Result<Resp> {
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for img in st.images.list().await?.into_iter().filter(|i| i.repo_tags.is_empty()) {
        match st.images.remove(&img.id, false).await {
            Ok(removed) => {
                reclaimed += img.size;
                for r in removed {
                    deleted.push(match r {
                        Removed::Untagged(t) => json!({ "Untagged": t }),
                        Removed::Deleted(d) => json!({ "Deleted": d }),
                    });
                }
            }
            Err(e) => tracing::debug!(id = %img.id, error = %e, "prune skipped an image"),
        }
    }
    Ok(h::json(StatusCode::OK, &json!({"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed})))
}

async fn inspect(st: &State, name: &str) -> Result<Resp> {
    let info = st.images.inspect(name).await?;
    // A store that cannot give its raw config falls back to the OCI types.
    let raw = st.images.config_json(&info.id).await.ok();
    Ok(h::json(StatusCode::OK, &convert::image_inspect(&info, raw.as_ref())))
}

async fn history(st: &State, name: &str) -> Result<Resp> {
    let info = st.images.inspect(name).await?;
    Ok(h::json(StatusCode::OK, &convert::image_history(&info)))
}

async fn tag(st: &State, source: &str, q: &Query) -> Result<Resp> {
    let repo = q.get("repo").unwrap_or("");
    if repo.is_empty() {
        return Err(Error::invalid("query parameter repo", "a repository name is required"));
    }
    let tag = q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest");
    let target = format!("{repo}:{tag}");
    convert::validate_reference(&target)?;
    let info = st.images.inspect(source).await?;
    st.images.tag(&info.id, &target).await?;
    st.events.image("tag", &info.id, Some(&convert::familiar(&target)));
    Ok(h::status(StatusCode::CREATED))
}

async fn remove(st: &State, name: &str, q: &Query) -> Result<Resp> {
    let removed = st.images.remove(name, q.bool("force")).await?;
    let out: Vec<serde_json::Value> = removed
        .iter()
        .map(|r| match r {
            Removed::Untagged(t) => {
                st.events.image("untag", t, Some(&convert::familiar(t)));
                json!({ "Untagged": convert::familiar(t) })
            }
            Removed::Deleted(d) => {
                st.events.image("delete", d, None);
                json!({ "Deleted": d })
            }
        })
        .collect();
    Ok(h::json(StatusCode::OK, &out))
}

fn tmp_dir(st: &State) -> PathBuf {
    st.config.data_root.join("tmp")
}

/// Stream an upload into a temp file under the data root; removed when dropped.
pub(crate) async fn body_to_file(st: &State, body: Incoming) -> Result<tempfile::TempPath> {
    let dir = tmp_dir(st);
    tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(format!("creating a temp file in {}", dir.display()), e))?;
    let (f, path) = tmp.into_parts();
    let mut f = tokio::fs::File::from_std(f);
    let mut body = body;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::invalid("upload", format!("the request body broke off: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > st.config.max_upload {
                return Err(Error::invalid("upload", format!("larger than the {}-byte limit", st.config.max_upload)));
            }
            f.write_all(&data).await.map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
    }
    f.flush().await.map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    if total == 0 {
        return Err(Error::invalid("upload", "the request body is empty; a tar archive is required"));
    }
    Ok(path)
}

/// An upload as the image store reads it: chunks as they arrive, at most
/// `max_upload` bytes in all, a body that breaks off an error. The first chunk
/// is awaited here, so an empty body is refused before anything is stored.
pub(crate) async fn body_stream(st: &State, body: Incoming) -> Result<engine_core::ByteStream> {
    let limit = st.config.max_upload;
    let mut body = body.into_data_stream();
    let first = loop {
        match body.next().await {
            None => return Err(Error::invalid("upload", "the request body is empty; a tar archive is required")),
            Some(Err(e)) => return Err(Error::invalid("upload", format!("the request body broke off: {e}"))),
            Some(Ok(b)) if b.is_empty() => continue,
            Some(Ok(b)) => break b,
        }
    };
    if first.len() as u64 > limit {
        return Err(Error::invalid("upload", format!("larger than the {limit}-byte limit")));
    }
    let mut total = first.len() as u64;
    let rest = body.map(move |chunk| {
        let b = chunk.map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("the request body broke off: {e}"))
        })?;
        total += b.len() as u64;
        if total > limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the upload is larger than the {limit}-byte limit"),
            ));
        }
        Ok(b)
    });
    Ok(futures::stream::once(async move { Ok(first) }).chain(rest).boxed())
}

fn human_bytes(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.2}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}

/// A Docker progress message from an engine progress event.
pub(crate) fn progress_message(p: &Progress) -> ProgressMessage {
    let bar = match (p.current, p.total) {
        (Some(c), Some(t)) if t > 0 => {
            let width = 50usize;
            let done = ((c.min(t) as f64 / t as f64) * width as f64) as usize;
            let arrow = if done < width { ">" } else { "" };
            Some(format!(
                "[{}{}{}] {}/{}",
                "=".repeat(done.saturating_sub(if arrow.is_empty() { 0 } else { 1 })),
                arrow,
                " ".repeat(width - done),
                human_bytes(c),
                human_bytes(t)
            ))
        }
        (Some(c), None) => Some(human_bytes(c)),
        _ => None,
    };
    ProgressMessage {
        status: Some(p.status.clone()),
        id: (!p.id.is_empty()).then(|| p.id.clone()),
        progress: bar,
        progress_detail: Some(ProgressDetail { current: p.current, total: p.total }),
        ..Default::default()
    }
}

enum Item {
    Msg(ProgressMessage),
    Done(Result<Vec<ProgressMessage>>),
}

/// Run `work` with a progress channel and answer with Docker's JSON progress
/// stream. With `fail_early`, an error before any progress becomes an HTTP
/// error (a pull of an unknown image is a 404, as dockerd answers).
async fn progress_response<F, Fut>(prefix: Vec<ProgressMessage>, quiet: bool, fail_early: bool, work: F) -> Result<Resp>
where
    F: FnOnce(engine_core::ProgressSender) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<ProgressMessage>>> + Send + 'static,
{
    let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
    let (tx, mut rx) = mpsc::channel::<Item>(64);
    tokio::spawn(async move {
        let fut = work(ptx);
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                r = &mut fut => break r,
                Some(p) = prx.recv() => {
                    // The handler already said what is pulled from where.
                    if !quiet && p.status != "Pulling from" {
                        let _ = tx.send(Item::Msg(progress_message(&p))).await;
                    }
                }
            }
        };
        while let Ok(p) = prx.try_recv() {
            if !quiet {
                let _ = tx.send(Item::Msg(progress_message(&p))).await;
            }
        }
        let _ = tx.send(Item::Done(result)).await;
    });
    let mut first = None;
    if fail_early {
        match rx.recv().await {
            Some(Item::Done(Err(e))) => return Err(e),
            other => first = other,
        }
    }
    let head = futures::stream::iter(prefix.into_iter().map(Item::Msg).chain(first));
    let rest = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    let body = head
        .chain(rest)
        .flat_map(|item| {
            let msgs: Vec<ProgressMessage> = match item {
                Item::Msg(m) => vec![m],
                Item::Done(Ok(v)) => v,
                Item::Done(Err(e)) => vec![ProgressMessage::error(h::docker_message(&e))],
            };
            futures::stream::iter(msgs.into_iter().map(|m| {
                let mut v = serde_json::to_vec(&m).unwrap_or_default();
                v.extend_from_slice(b"\r\n");
                Ok::<_, std::io::Error>(Bytes::from(v))
            }))
        })
        .boxed();
    let mut r = h::with_status(StatusCode::OK, h::stream_body(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

async fn load(st: &State, q: &Query, body: Incoming) -> Result<Resp> {
    let quiet = q.bool("quiet");
    let body = body_stream(st, body).await?;
    let images = st.images.clone();
    let events = st.events_handle();
    progress_response(vec![], quiet, true, move |ptx| async move {
        // A docker archive if it has `manifest.json`, else an OCI layout.
        let loaded = images.import_stream(body, ArchiveFormat::DockerArchive, None, Some(ptx)).await?;
        let mut out = Vec::new();
        for img in &loaded {
            if img.repo_tags.is_empty() {
                out.push(ProgressMessage {
                    stream: Some(format!("Loaded image ID: {}\n", img.id)),
                    ..Default::default()
                });
                events.image("load", &img.id, None);
            }
            for t in &img.repo_tags {
                out.push(ProgressMessage {
                    stream: Some(format!("Loaded image: {}\n", convert::familiar(t))),
                    ..Default::default()
                });
                events.image("load", &img.id, Some(&convert::familiar(t)));
            }
        }
        Ok(out)
    })
    .await
}

async fn save(st: &State, names: Vec<String>) -> Result<Resp> {
    let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err(Error::invalid("query parameter names", "at least one image is required"));
    }
    for n in &names {
        st.images.inspect(n).await?;
    }
    // Written as the client reads it, never staged on disk.
    let s = st.images.export_stream(&names, ArchiveFormat::DockerArchive).await?;
    for n in &names {
        st.events.image("save", n, Some(n));
    }
    let mut r = h::with_status(StatusCode::OK, h::stream_body(s));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

async fn create(st: &State, q: &Query, req: Request<Incoming>) -> Result<Resp> {
    if let Some(src) = q.get("fromSrc").filter(|s| !s.is_empty()) {
        if src != "-" {
            return Err(Error::Unsupported(format!(
                "importing from a URL ({src}); send the tar as the body with fromSrc=-"
            )));
        }
        let repo = q.get("repo").unwrap_or("");
        let reference = match (repo, q.get("tag").filter(|t| !t.is_empty())) {
            ("", _) => None,
            (r, Some(t)) => Some(format!("{r}:{t}")),
            (r, None) => Some(r.to_string()),
        };
        if let Some(r) = &reference {
            convert::validate_reference(r)?;
        }
        let body = body_stream(st, req.into_body()).await?;
        let images = st.images.clone();
        let events = st.events_handle();
        // dockerd answers an import with the image id only.
        return progress_response(vec![], true, true, move |ptx| async move {
            let imgs = images.import_stream(body, ArchiveFormat::RootfsTar, reference.as_deref(), Some(ptx)).await?;
            let id = imgs.first().map(|i| i.id.clone()).unwrap_or_default();
            events.image("import", &id, reference.as_deref());
            Ok(vec![ProgressMessage::status(id)])
        })
        .await;
    }
    let Some(from) = q.get("fromImage").filter(|s| !s.is_empty()) else {
        return Err(Error::invalid("query", "fromImage or fromSrc is required"));
    };
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let reference = if from.contains('@') {
        from.to_string()
    } else {
        match tag {
            Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
            Some(t) => format!("{from}:{t}"),
            None if engine_api::split_tag(from).1.is_some() => from.to_string(),
            None => format!("{from}:latest"),
        }
    };
    convert::validate_reference(&reference)?;
    let auth = registry_auth(req.headers())?;
    let images = st.images.clone();
    let events = st.events_handle();
    let short = engine_api::split_tag(&reference).1.unwrap_or("latest").to_string();
    let r2 = reference.clone();
    progress_response(
        vec![ProgressMessage::status(format!("Pulling from {}", engine_api::split_tag(&reference).0)).with_id(&short)],
        false,
        true,
        move |ptx| async move {
            let img = images.pull(&r2, auth.as_ref(), Some(ptx)).await?;
            events.image("pull", &img.id, Some(&r2));
            let mut out = Vec::new();
            if let Some(d) = img.repo_digests.first() {
                if let Some((_, digest)) = d.split_once('@') {
                    out.push(ProgressMessage::status(format!("Digest: {digest}")));
                }
            }
            out.push(ProgressMessage::status(format!("Status: Downloaded newer image for {}", convert::familiar(&r2))));
            Ok(out)
        },
    )
    .await
}

async fn push(st: &State, name: &str, q: &Query, auth: Option<RegistryAuth>) -> Result<Resp> {
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let reference = match tag {
        Some(t) => format!("{name}:{t}"),
        None if engine_api::split_tag(name).1.is_some() => name.to_string(),
        None => format!("{name}:latest"),
    };
    convert::validate_reference(&reference)?;
    if let Err(e) = st.images.inspect(&reference).await {
        if e.is_not_found() {
            return Err(Error::not_found("image", reference));
        }
        return Err(e);
    }
    let images = st.images.clone();
    let events = st.events_handle();
    let (repo, t) = engine_api::split_tag(&reference);
    let (repo, t) = (repo.to_string(), t.unwrap_or("latest").to_string());
    let r2 = reference.clone();
    progress_response(
        vec![ProgressMessage::status(format!("The push refers to repository [{repo}]"))],
        false,
        false,
        move |ptx| async move {
            let digest = images.push(&r2, auth.as_ref(), Some(ptx)).await?;
            events.image("push", &r2, Some(&r2));
            Ok(vec![
                ProgressMessage::status(format!("{t}: digest: {digest}")),
                ProgressMessage {
                    aux: Some(json!({"Tag": t, "Digest": digest, "Size": 0})),
                    progress_detail: Some(ProgressDetail::default()),
                    ..Default::default()
                },
            ])
        },
    )
    .await
}

trait WithId {
    fn with_id(self, id: &str) -> Self;
}
impl WithId for ProgressMessage {
    fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-registry-auth", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn registry_auth_as_docker_sends_it() {
        // `{}` (what docker sends without credentials) is no auth.
        assert_eq!(registry_auth(&headers("e30=")).unwrap(), None);
        let json = r#"{"username":"u","password":"p>?","serveraddress":"127.0.0.1:5000","identitytoken":""}"#;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(json);
        let a = registry_auth(&headers(&enc)).unwrap().unwrap();
        assert_eq!(a.username.as_deref(), Some("u"));
        assert_eq!(a.password.as_deref(), Some("p>?"));
        assert_eq!(a.identity_token, None);
        let tok = base64::engine::general_purpose::STANDARD.encode(r#"{"registrytoken":"abc"}"#);
        assert_eq!(registry_auth(&headers(&tok)).unwrap().unwrap().registry_token.as_deref(), Some("abc"));
        assert!(registry_auth(&headers("!!!")).unwrap_err().is_invalid_input());
        assert!(registry_auth(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn progress_bars() {
        let m = progress_message(
            &Progress::default().id("abc".into()).status("Downloading".into()).current(Some(500)).total(Some(1000)),
        );
        assert_eq!(m.id.as_deref(), Some("abc"));
        let bar = m.progress.unwrap();
        assert!(bar.starts_with("[=") && bar.ends_with("500B/1.00kB"), "{bar}");
    }
}
