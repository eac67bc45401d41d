//! Plugins on the API: `GET /plugins` and `/plugins/{name}/json` list the
//! v1 plugins discovered (dockerd lists only its managed v2 plugins there;
//! this engine has no managed plugins, so it shows what it discovered, in
//! the v2 JSON shape), and `--volume-driver` for a container's volumes.

use super::State;
use crate::http::{self as h, Query, Resp};
use engine_core::{ContainerConfig, Error, MountSpec, Result, VolumeCreate};
use engine_plugin::PluginSpec;
use http::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

/// The type dockerd shows for a v1 interface name.
fn interface_type(i: &str) -> String {
    let t = match i {
        "authz" | "AuthZPlugin" => "authz",
        other => other,
    };
    format!("docker.{}/1.0", t.to_ascii_lowercase())
}

/// One plugin in dockerd's `Plugin` shape. A plugin that does not answer
/// `Plugin.Activate` is listed disabled, with the reason as its description.
async fn plugin_json(st: &State, spec: &PluginSpec) -> Value {
    let Some(plugins) = &st.config.plugins else { return Value::Null };
    let (enabled, types, description) = match plugins.activate(&spec.name).await {
        Ok(p) => (
            true,
            p.manifest().implements.iter().map(|i| interface_type(i)).collect::<Vec<_>>(),
            format!("v1 plugin discovered at {}", spec.found_at.display()),
        ),
        Err(e) => (false, Vec::new(), format!("v1 plugin discovered at {}: {e}", spec.found_at.display())),
    };
    let socket = spec.addr.to_string();
    json!({
        "Id": hex::encode(sha2::Sha256::digest(spec.name.as_bytes())),
        "Name": spec.name,
        "Enabled": enabled,
        "PluginReference": "",
        "Settings": {"Mounts": [], "Env": [], "Args": [], "Devices": []},
        "Config": {
            "DockerVersion": "",
            "Description": description,
            "Documentation": "",
            "Interface": {"Types": types, "Socket": socket, "ProtocolScheme": "moby.plugins.http/v1"},
            "Entrypoint": [],
            "WorkDir": "",
            "Network": {"Type": ""},
            "Linux": {"Capabilities": null, "AllowAllDevices": false, "Devices": null},
            "PropagatedMount": "",
            "IpcHost": false,
            "PidHost": false,
            "Mounts": null,
            "Env": null,
            "Args": {"Name": "", "Description": "", "Settable": null, "Value": null},
        },
    })
}

/// `GET /plugins`, with docker's `enabled` and `capability` filters.
pub(crate) async fn list(st: &State, q: &Query) -> Result<Resp> {
    let filters = q.filters()?;
    for k in filters.keys() {
        if !matches!(k.as_str(), "enabled" | "capability") {
            return Err(Error::invalid("filters", format!("invalid filter '{k}'")));
        }
    }
    let Some(plugins) = &st.config.plugins else { return Ok(h::json(StatusCode::OK, &json!([]))) };
    let specs = plugins.scan().await;
    let all = futures::future::join_all(specs.iter().map(|s| plugin_json(st, s))).await;
    let out: Vec<Value> = all
        .into_iter()
        .filter(|p| {
            filters.get("enabled").is_none_or(|v| v.iter().any(|e| Some(e == "true") == p["Enabled"].as_bool()))
        })
        .filter(|p| {
            filters.get("capability").is_none_or(|caps| {
                caps.iter().all(|c| {
                    p["Config"]["Interface"]["Types"].as_array().into_iter().flatten().any(|t| {
                        t.as_str().is_some_and(|t| t.trim_start_matches("docker.").starts_with(&c.to_ascii_lowercase()))
                    })
                })
            })
        })
        .collect();
    Ok(h::json(StatusCode::OK, &out))
}

/// `GET /plugins/{name}/json`.
pub(crate) async fn inspect(st: &State, name: &str) -> Result<Resp> {
    let Some(plugins) = &st.config.plugins else { return Err(Error::not_found("plugin", name)) };
    let spec = plugins.discovery().lookup(name.trim_end_matches(":latest")).await.map_err(Error::from)?;
    Ok(h::json(StatusCode::OK, &plugin_json(st, &spec).await))
}

/// `--volume-driver NAME` (`HostConfig.VolumeDriver`): the container's
/// volumes that do not exist yet are made by that driver (anonymous ones
/// too); existing ones must belong to it (a 409 otherwise). Returns the
/// volumes made, for `forget_created` if the create fails.
pub(crate) async fn volume_driver_mounts(
    st: &State,
    host_config: Option<&engine_api::models::HostConfig>,
    config: &mut ContainerConfig,
) -> Result<Vec<String>> {
    let Some(drv) = host_config.and_then(|h| h.volume_driver.as_deref()).filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    let d =
        st.volumes.as_ref().ok_or_else(|| Error::Unsupported("volumes: this daemon has no volume driver".into()))?;
    let mut made = Vec::new();
    for m in config.mounts.iter_mut() {
        let MountSpec::Volume { name, .. } = m else { continue };
        let existed = !name.is_empty() && d.get(name).await.is_ok();
        let req = if name.is_empty() { VolumeCreate::anonymous() } else { VolumeCreate::named(name.clone()) };
        match d.create(req.driver(drv)).await {
            Ok(v) => {
                if !existed {
                    made.push(v.name.clone());
                }
                *name = v.name;
            }
            Err(e) => {
                super::volumes::forget_created(st, &made).await;
                return Err(e);
            }
        }
    }
    Ok(made)
}
