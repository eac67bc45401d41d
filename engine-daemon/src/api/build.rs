//! `POST /build` (the classic builder's API: a tar context in the body, a
//! JSON message stream back) and `POST /build/prune`, over
//! [`engine_build::Builder`], which runs every RUN step through the
//! daemon's own [`engine_core::LifecycleManager`].

use super::State;
use crate::convert;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use bytes::Bytes;
use engine_api::models::ProgressMessage;
use engine_archive::{ContainerRoot, ExtractOptions};
use engine_build::{BuildEvent, BuildOptions, Builder};
use engine_core::{Error, NetworkMode, Result};
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The daemon's builder (made at start or on first use; its state lives
/// under `<data-root>/build`). Making it recovers what builds cut short
/// by a crash left behind.
pub(crate) async fn builder(st: &State) -> Result<Arc<Builder>> {
    st.builder
        .get_or_try_init(|| async {
            let b = Builder::new(st.manager.clone(), st.images.clone(), st.config.data_root.join("build"))?;
            b.recover().await?;
            Ok::<_, Error>(Arc::new(b))
        })
        .await
        .cloned()
}

fn json_map(q: &Query, key: &str) -> Result<BTreeMap<String, String>> {
    let Some(raw) = q.get(key).filter(|s| !s.is_empty()) else { return Ok(BTreeMap::new()) };
    let m: BTreeMap<String, Option<String>> = serde_json::from_str(raw)
        .map_err(|e| Error::invalid(format!("query parameter {key}"), format!("not a JSON object of strings: {e}")))?;
    Ok(m.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
}

/// Options this builder cannot honour are refused, never dropped.
fn refuse_unsupported(q: &Query) -> Result<()> {
    let set = |k: &str| q.get(k).map(str::trim).filter(|v| !matches!(*v, "" | "0" | "[]" | "null" | "{}" | "false"));
    if q.get("version") == Some("2") {
        return Err(Error::invalid(
            "query parameter version",
            "BuildKit (version=2) is not supported; use the classic builder (version=1)",
        ));
    }
    for k in [
        "remote",
        "squash",
        "cachefrom",
        "extrahosts",
        "cgroupparent",
        "cpuperiod",
        "cpuquota",
        "cpusetcpus",
        "cpusetmems",
        "cpushares",
        "memory",
        "memswap",
        "shmsize",
        "ulimits",
        "outputs",
        "secrets",
    ] {
        if let Some(v) = set(k) {
            return Err(Error::invalid(format!("build option {k}={v}"), "not supported by this builder"));
        }
    }
    if let Some(p) = set("platform") {
        if !p.starts_with("linux") {
            return Err(Error::invalid(
                format!("build option platform={p}"),
                "this builder builds for the host's platform only",
            ));
        }
    }
    Ok(())
}

fn options(st: &State, q: &Query) -> Result<BuildOptions> {
    refuse_unsupported(q)?;
    let mut tags = Vec::new();
    for t in q.all("t").iter().filter(|t| !t.is_empty()) {
        let full =
            if engine_api::split_tag(t).1.is_some() || t.contains('@') { t.clone() } else { format!("{t}:latest") };
        convert::validate_reference(&full)?;
        tags.push(full);
    }
    let network = match q.get("networkmode").unwrap_or("default") {
        // As `docker run` here: without a network driver, the default is
        // a namespace of its own with loopback only.
        "" | "default" | "bridge" if st.network.is_none() => NetworkMode::None,
        "" | "default" | "bridge" => NetworkMode::Bridge,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        n => NetworkMode::Network(n.to_string()),
    };
    let flag = |k: &str, default: bool| match q.get(k) {
        None | Some("") => default,
        Some(v) => matches!(v, "1" | "true" | "True"),
    };
    Ok(BuildOptions::default()
        .dockerfile(q.get("dockerfile").filter(|s| !s.is_empty()).unwrap_or("Dockerfile").to_string())
        .tags(tags)
        .build_args(json_map(q, "buildargs")?)
        .target(q.get("target").filter(|s| !s.is_empty()).map(str::to_string))
        .no_cache(flag("nocache", false))
        .pull(flag("pull", false))
        .labels(json_map(q, "labels")?)
        .network(network)
        .remove_intermediate(flag("rm", true) || flag("forcerm", false)))
}

fn line(m: &ProgressMessage) -> Result<Bytes, std::io::Error> {
    let mut v = serde_json::to_vec(m).unwrap_or_default();
    v.extend_from_slice(b"\r\n");
    Ok(Bytes::from(v))
}

fn stream(s: impl Into<String>) -> ProgressMessage {
    ProgressMessage { stream: Some(s.into()), ..Default::default() }
}

/// `POST /build`.
pub(crate) async fn build(st: &State, q: &Query, body: Incoming) -> Result<Resp> {
    let opts = options(st, q)?;
    let quiet = q.bool("q");
    let upload = super::images::body_to_file(st, body).await?;
    let dir = tempfile::Builder::new()
        .prefix("context-")
        .tempdir_in(st.config.data_root.join("tmp"))
        .map_err(|e| Error::io("create a build context directory", e))?;
    let d2 = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let f = std::fs::File::open(&upload).map_err(|e| Error::io("open the build context", e))?;
        let mut r = std::io::BufReader::new(f);
        let gz = std::io::BufRead::fill_buf(&mut r).map(|b| b.starts_with(&[0x1f, 0x8b])).unwrap_or(false);
        let root = ContainerRoot::open_dir(&d2)?;
        let input: Box<dyn std::io::Read> = if gz { Box::new(flate2::read::GzDecoder::new(r)) } else { Box::new(r) };
        root.extract_tar("/", input, &ExtractOptions::default())
            .map_err(|e| Error::invalid("build context", e.to_string()))
    })
    .await
    .map_err(|e| Error::Other(format!("unpack task failed: {e}")))??;
    let builder = builder(st).await?;
    let (etx, mut erx) = mpsc::unbounded_channel::<BuildEvent>();
    let (tx, mut rx) = mpsc::channel::<Result<ProgressMessage>>(64);
    let events = st.events_handle();
    tokio::spawn(async move {
        let work = async {
            let r = builder.build(dir.path(), &opts, Some(etx)).await;
            drop(dir);
            r
        };
        tokio::pin!(work);
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                Some(e) = erx.recv() => if !quiet { let _ = tx.send(Ok(stream(e.text()))).await; },
            }
        };
        while let Ok(e) = erx.try_recv() {
            if !quiet {
                let _ = tx.send(Ok(stream(e.text()))).await;
            }
        }
        match result {
            Ok(out) => {
                let id = out.image.id.clone();
                let _ = tx.send(Ok(ProgressMessage { aux: Some(json!({ "ID": id })), ..Default::default() })).await;
                if quiet {
                    // The CLI prints what a quiet build streams: the id.
                    let _ = tx.send(Ok(stream(format!("{id}\n")))).await;
                } else {
                    let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
                    let _ = tx.send(Ok(stream(format!("Successfully built {short}\n")))).await;
                    for t in &opts.tags {
                        events.image("tag", &id, Some(&convert::familiar(t)));
                        let _ = tx.send(Ok(stream(format!("Successfully tagged {}\n", convert::familiar(t))))).await;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
            }
        }
    });
    // An error before any output is an HTTP error, as dockerd answers.
    let first = match rx.recv().await {
        Some(Err(e)) => return Err(e),
        other => other,
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    let body = futures::stream::iter(first)
        .chain(rest)
        .map(|item| match item {
            Ok(m) => line(&m),
            Err(e) => line(&ProgressMessage::error(h::docker_message(&e))),
        })
        .boxed();
    let mut r = h::with_status(StatusCode::OK, h::stream_body(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

/// `POST /build/prune`: forget the build cache and remove its unused images.
pub(crate) async fn prune(st: &State) -> Result<Resp> {
    let (removed, bytes) = builder(st).await?.prune().await?;
    for id in &removed {
        st.events.image("delete", id, None);
    }
    Ok(h::json(StatusCode::OK, &json!({"CachesDeleted": removed, "SpaceReclaimed": bytes})))
}
