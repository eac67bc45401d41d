//! `/volumes`: create, list, inspect, remove, prune, in docker's JSON shapes,
//! over the daemon's [`VolumeDriver`]; and the volume parts of container
//! inspect, `docker rm -v` and `docker system df`.

use super::State;
use crate::http::ReqBody as Incoming;
use crate::http::{self as h, Query, Resp};
use engine_core::volume::ANONYMOUS_LABEL;
use engine_core::{ContainerInfo, Error, ListFilter, MountSpec, Result, Volume, VolumeCreate, VolumeDriver};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

fn driver(st: &State) -> Result<&Arc<dyn VolumeDriver>> {
    st.volumes.as_ref().ok_or_else(|| Error::Unsupported("volumes: this daemon has no volume driver".into()))
}

/// Docker's `Volume` object (`UsageData` only in `system df`).
fn volume_json(v: &Volume, usage: Option<(u64, usize)>) -> Value {
    let mut j = json!({
        "CreatedAt": engine_core::time::format_rfc3339(v.created),
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    });
    if let Some((size, refs)) = usage {
        j["UsageData"] = json!({"Size": size, "RefCount": refs});
    }
    j
}

/// Container ids (of all containers, any state) using each volume.
async fn users(st: &State) -> Result<HashMap<String, Vec<String>>> {
    let all = st.manager.list(ListFilter::default().all(true)).await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for c in &all {
        for m in &c.config.mounts {
            if let MountSpec::Volume { name, .. } = m {
                out.entry(name.clone()).or_default().push(c.id.clone());
            }
        }
    }
    Ok(out)
}

fn label_matches(v: &Volume, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
        None => v.labels.contains_key(want),
    }
}

/// Apply docker's volume filters (`name`, `label`, `label!`, `driver`, `dangling`).
fn filter(
    vols: Vec<Volume>,
    filters: &HashMap<String, Vec<String>>,
    used: &HashMap<String, Vec<String>>,
) -> Result<Vec<Volume>> {
    for k in filters.keys() {
        if !matches!(k.as_str(), "name" | "label" | "label!" | "driver" | "dangling" | "all") {
            return Err(Error::invalid("filters", format!("invalid filter '{k}'")));
        }
    }
    let mut dangling = None;
    for d in filters.get("dangling").into_iter().flatten() {
        dangling = Some(match d.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            other => return Err(Error::invalid("filters", format!("invalid filter 'dangling={other}'"))),
        });
    }
    Ok(vols
        .into_iter()
        .filter(|v| filters.get("name").is_none_or(|ns| ns.iter().any(|n| v.name.contains(n.as_str()))))
        .filter(|v| filters.get("driver").is_none_or(|ds| ds.contains(&v.driver)))
        .filter(|v| filters.get("label").is_none_or(|ls| ls.iter().all(|l| label_matches(v, l))))
        .filter(|v| filters.get("label!").is_none_or(|ls| !ls.iter().any(|l| label_matches(v, l))))
        .filter(|v| dangling.is_none_or(|d| d != used.contains_key(&v.name)))
        .collect())
}

/// `GET /volumes`.
pub(crate) async fn list(st: &State, q: &Query) -> Result<Resp> {
    let d = driver(st)?;
    let filters = q.filters()?;
    let used = users(st).await?;
    let vols = filter(d.list().await?, &filters, &used)?;
    let body = json!({"Volumes": vols.iter().map(|v| volume_json(v, None)).collect::<Vec<_>>(), "Warnings": []});
    Ok(h::json(StatusCode::OK, &body))
}

/// `GET /volumes/{name}`.
pub(crate) async fn inspect(st: &State, name: &str) -> Result<Resp> {
    let v = driver(st)?.get(name).await?;
    Ok(h::json(StatusCode::OK, &volume_json(&v, None)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/create`.
pub(crate) async fn create(st: &State, body: Incoming) -> Result<Resp> {
    let data = match h::read_limited(body, st.config.max_json_body).await {
        Ok(d) => d,
        Err(e) => return Ok(e.response()),
    };
    let b: CreateBody = if data.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&data).map_err(|e| Error::invalid("volume create body", e.to_string()))?
    };
    let d = driver(st)?;
    // `docker volume create` without a name: a random name, but not an
    // anonymous volume (prune without `all` keeps it), as with dockerd.
    let mut req = VolumeCreate::named(b.name.filter(|n| !n.is_empty()).unwrap_or_else(engine_core::random_hex64));
    req.driver_opts = b.driver_opts.unwrap_or_default();
    req.labels = b.labels.unwrap_or_default();
    // A plugin's name is routed by the engine's driver; one that routes
    // nowhere refuses any name but its own (a 404 naming the plugin).
    req.driver = b.driver.filter(|x| !x.is_empty());
    let v = d.create(req).await?;
    Ok(h::json(StatusCode::CREATED, &volume_json(&v, None)))
}

/// `DELETE /volumes/{name}`: a volume any container uses is a 409;
/// `force` only makes a missing volume no error.
pub(crate) async fn remove(st: &State, name: &str, q: &Query) -> Result<Resp> {
    let d = driver(st)?;
    let used = users(st).await?;
    if let Some(ids) = used.get(name) {
        return Err(Error::conflict("volume", name, format!("remove {name}: volume is in use - [{}]", ids.join(", "))));
    }
    match d.remove(name).await {
        Err(e) if e.is_not_found() && q.bool("force") => {}
        r => r?,
    }
    Ok(h::status(StatusCode::NO_CONTENT))
}

/// Whether a request path's API version (`/v1.41/...`) is below 1.42,
/// where prune removed named volumes too.
fn before_1_42(raw_path: &str) -> bool {
    let Some(v) = raw_path.strip_prefix("/v").and_then(|r| r.split('/').next()) else { return false };
    let mut it = v.split('.').map(|n| n.parse::<u32>());
    match (it.next(), it.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) < (1, 42),
        _ => false,
    }
}

/// `POST /volumes/prune`: unused anonymous volumes (all unused ones with
/// the `all=true` filter, or on API versions before 1.42, as dockerd),
/// narrowed by `label` filters.
pub(crate) async fn prune(st: &State, q: &Query, raw_path: &str) -> Result<Resp> {
    let d = driver(st)?;
    let mut filters = q.filters()?;
    let all = filters.remove("all").is_some_and(|v| v.iter().any(|x| x == "true" || x == "1")) || before_1_42(raw_path);
    for k in filters.keys() {
        if !matches!(k.as_str(), "label" | "label!") {
            return Err(Error::invalid("filters", format!("invalid filter '{k}'")));
        }
    }
    let used = users(st).await?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for v in filter(d.list().await?, &filters, &used)? {
        if used.contains_key(&v.name) || !(all || v.is_anonymous()) {
            continue;
        }
        let size = dir_size(v.mountpoint.clone()).await;
        match d.remove(&v.name).await {
            Ok(()) => {
                reclaimed += size;
                deleted.push(v.name);
            }
            Err(e) => tracing::warn!(volume = %v.name, "prune: {e}"),
        }
    }
    Ok(h::json(StatusCode::OK, &json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})))
}

/// `docker rm -v`: remove the anonymous volumes of a removed container (a
/// volume still used elsewhere stays, as with dockerd).
pub(crate) async fn remove_anonymous(st: &State, info: &ContainerInfo) {
    let Some(d) = &st.volumes else { return };
    for m in &info.config.mounts {
        let MountSpec::Volume { name, .. } = m else { continue };
        match d.get(name).await {
            Ok(v) if v.labels.contains_key(ANONYMOUS_LABEL) => {
                if let Err(e) = d.remove(name).await {
                    tracing::warn!(volume = %name, container = %info.id, "removing an anonymous volume: {e}");
                }
            }
            _ => {}
        }
    }
}

/// `--volumes-from c[:ro|:rw]`: the volume and bind mounts of each named
/// container, at the same paths (read-only with `:ro`), unless the new
/// container mounts something there itself.
pub(crate) async fn volumes_from(
    st: &State,
    from: Option<&Vec<String>>,
    config: &mut engine_core::ContainerConfig,
) -> Result<()> {
    for spec in from.into_iter().flatten() {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m)) => (n, m),
            None => (spec.as_str(), ""),
        };
        let ro = match mode {
            "" | "rw" => None,
            "ro" => Some(true),
            other => return Err(Error::invalid("field HostConfig.VolumesFrom", format!("invalid mode: {other}"))),
        };
        let other = st.manager.inspect(name).await?;
        for m in &other.config.mounts {
            let m = match (m.clone(), ro) {
                (MountSpec::Volume { name, target, read_only, no_copy }, ro) => {
                    MountSpec::Volume { name, target, read_only: ro.unwrap_or(read_only), no_copy }
                }
                (MountSpec::Bind { source, target, read_only }, ro) => {
                    MountSpec::Bind { source, target, read_only: ro.unwrap_or(read_only) }
                }
                _ => continue,
            };
            let target = m.target().to_string();
            let taken = config.mounts.iter().any(|x| x.target().trim_end_matches('/') == target.trim_end_matches('/'));
            if !taken {
                config.mounts.push(m);
            }
        }
    }
    Ok(())
}

/// `--mount type=volume,source=x,volume-opt=k=v` (`VolumeOptions.DriverConfig`
/// and `Labels`): create the named volume with those options when it does
/// not exist yet (an existing volume is used as it is, as with dockerd).
/// Returns the volumes made, for [`forget_created`] if the create fails.
pub(crate) async fn create_with_options(
    st: &State,
    host_config: Option<&engine_api::models::HostConfig>,
) -> Result<Vec<String>> {
    let mut made = Vec::new();
    let mounts = host_config.and_then(|h| h.mounts.as_ref());
    for m in mounts.into_iter().flatten() {
        let (Some(name), Some(opts)) = (m.source.as_deref().filter(|s| !s.is_empty()), m.volume_options.as_ref())
        else {
            continue;
        };
        if m.r#type.as_deref().unwrap_or("volume") != "volume" {
            continue;
        }
        let driver_cfg = opts.driver_config.as_ref();
        let driver_opts: BTreeMap<String, String> = driver_cfg
            .and_then(|d| d.get("Options"))
            .and_then(|o| serde_json::from_value(o.clone()).ok())
            .unwrap_or_default();
        let labels: BTreeMap<String, String> = opts.labels.clone().map(|l| l.into_iter().collect()).unwrap_or_default();
        let plugin = driver_cfg.and_then(|d| d.get("Name")).and_then(Value::as_str).filter(|d| !d.is_empty());
        if driver_opts.is_empty() && labels.is_empty() && plugin.is_none() {
            continue;
        }
        let d = driver(st)?;
        match d.get(name).await {
            Ok(_) => continue,
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                forget_created(st, &made).await;
                return Err(e);
            }
        }
        let mut req = VolumeCreate::named(name);
        req.driver_opts = driver_opts;
        req.labels = labels;
        req.driver = plugin.map(str::to_string);
        match d.create(req).await {
            Ok(v) => made.push(v.name),
            Err(e) => {
                forget_created(st, &made).await;
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// Remove volumes [`create_with_options`] made for a create that failed.
pub(crate) async fn forget_created(st: &State, names: &[String]) {
    let Some(d) = &st.volumes else { return };
    for n in names {
        if let Err(e) = d.remove(n).await {
            tracing::warn!(volume = %n, "removing a volume after a failed create: {e}");
        }
    }
}

/// Fill in the host paths of volume mounts in a container's inspect.
pub(crate) async fn fill_sources(st: &State, mounts: &mut [engine_api::models::MountPoint]) {
    let Some(d) = &st.volumes else { return };
    for m in mounts.iter_mut().filter(|m| m.r#type == "volume") {
        if let Ok(v) = d.get(&m.name).await {
            m.source = v.mountpoint.display().to_string();
            m.driver = v.driver;
        }
    }
}

/// Volumes with their usage, for `GET /system/df`.
pub(crate) async fn df(st: &State) -> Result<Vec<Value>> {
    let Some(d) = &st.volumes else { return Ok(Vec::new()) };
    let used = users(st).await?;
    let mut out = Vec::new();
    for v in d.list().await? {
        let size = dir_size(v.mountpoint.clone()).await;
        let refs = used.get(&v.name).map(Vec::len).unwrap_or(0);
        out.push(volume_json(&v, Some((size, refs))));
    }
    Ok(out)
}

/// Bytes under a directory (not following symlinks, staying on its filesystem).
async fn dir_size(p: std::path::PathBuf) -> u64 {
    fn walk(p: &std::path::Path, dev: u64) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(rd) = std::fs::read_dir(p) else { return 0 };
        rd.flatten()
            .filter_map(|e| Some((e.path(), e.metadata().ok()?)))
            .map(|(path, md)| if md.is_dir() && md.dev() == dev { walk(&path, dev) } else { md.len() })
            .sum()
    }
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&p).map(|m| walk(&p, m.dev())).unwrap_or(0)
    })
    .await
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn prune_versions() {
        assert!(super::before_1_42("/v1.41/volumes/prune"));
        assert!(!super::before_1_42("/v1.43/volumes/prune"));
        assert!(!super::before_1_42("/volumes/prune"));
    }
}
