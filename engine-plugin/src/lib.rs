//! # engine-plugin
//!
//! Docker's plugin protocol, so plugins written for dockerd work with the
//! engine unchanged.
//!
//! ## Protocol versions
//!
//! Protocol **v1** plugins (dockerd's "legacy" plugins, found by socket or
//! spec file): HTTP/1.1 `POST /<Interface>.<Method>` with a JSON body, over
//! a unix socket or TCP. Requests carry `Accept` and `Content-Type:
//! application/vnd.docker.plugins.v1.2+json`, as dockerd sends them; answers
//! are read as JSON whatever their media type (`v1+json`, `v1.1+json`,
//! `v1.2+json`, `application/json`). Each call is a fresh connection bounded
//! by a timeout ([`Client::with_timeout`], `engined --plugin-timeout`,
//! default 30 s): a dead plugin is an error at once, a hung one after the
//! bound, an answer that is not the protocol an error naming plugin and
//! method ([`PluginError`]); a plugin's `Err` field becomes
//! [`PluginError::Remote`] with its message.
//!
//! Managed ("v2") plugins (`docker plugin install`, rootfs + config from a
//! registry) are not implemented: `docker plugin ls` shows the discovered v1
//! plugins in the v2 JSON shape instead.
//!
//! ## Discovery
//!
//! [`Discovery`], as dockerd: sockets `NAME.sock` / `NAME/NAME.sock` in
//! `/run/docker/plugins`; spec files `NAME.spec` (one URL, `unix://` or
//! `tcp://`) and `NAME.json` (`Name`, `Addr`) in `/etc/docker/plugins` and
//! `/usr/lib/docker/plugins` (also `NAME/NAME.spec|json`). The directories
//! are configurable (`engined --plugin-socket-dir`, `--plugin-spec-dir`).
//! `TLSConfig` in a `.json` spec is refused ([`PluginError::Unsupported`]):
//! TLS to plugins is not implemented.
//!
//! ## Endpoints served
//!
//! | interface | methods called | adapter |
//! |---|---|---|
//! | handshake | `Plugin.Activate` (`Implements`) | [`Plugins::get`], [`Plugins::activate`] |
//! | `VolumeDriver` | `Create`, `Remove`, `Mount`, `Unmount`, `Get`, `List`, `Path`, `Capabilities` | [`PluginVolumeDriver`], routed by [`VolumeRouter`] |
//! | `authz` | `AuthZPlugin.AuthZReq`, `AuthZPlugin.AuthZRes` (bodies base64) | [`AuthzPlugin`] |
//! | `LogDriver` | `StartLogging` (a FIFO the engine makes; the shim writes length-prefixed protobuf `LogEntry` messages into it), `StopLogging`, `Capabilities` (checked at create); not `ReadLogs` (`docker logs` reads the engine's local cache) | [`PluginLogDrivers`] |
//! | `NetworkDriver` | `GetCapabilities` (scope `local` only), `CreateNetwork`, `DeleteNetwork`, `CreateEndpoint`, `Join`, `EndpointOperInfo`, `Leave`, `DeleteEndpoint`; not `DiscoverNew`/`DiscoverDelete` (node discovery, swarm only: never sent), not `ProgramExternalConnectivity`/`RevokeExternalConnectivity` (no published ports on plugin networks) | `engine_network::RemoteDriver` (it needs netlink, so it lives with the other network drivers), routed by `engine_network::NetworkRouter` |
//! | any | any JSON method; streamed answers | [`Client::call`], [`Client::call_stream`] |
//!
//! Not served yet: the `IpamDriver` interface (the engine does IPAM for
//! plugin networks, as dockerd's default IPAM driver does).
//!
//! ```no_run
//! use engine_plugin::{Discovery, Plugins};
//! # async fn demo() -> Result<(), engine_plugin::PluginError> {
//! let plugins = Plugins::new(Discovery::default());
//! let p = plugins.get("myvolumes", "VolumeDriver").await?;
//! let caps: serde_json::Value = p.client().call("VolumeDriver.Capabilities", &serde_json::json!({})).await?;
//! # let _ = caps;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod authz;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
mod discovery;
mod error;
mod log;
mod volume;

pub use authz::{AuthzPlugin, AUTHZ_INTERFACE};
pub use client::{AnswerStream, Client, DEFAULT_TIMEOUT, MAX_ANSWER, MEDIA_TYPE_V1, MEDIA_TYPE_V1_2};
pub use discovery::{Discovery, PluginAddr, PluginSpec, DEFAULT_SOCKET_DIR, DEFAULT_SPEC_DIRS};
pub use error::PluginError;
pub use log::{PluginLogDrivers, LOG_INTERFACE};
pub use volume::{Capabilities, PluginVolumeDriver, VolumePluginsRefused, VolumeRouter, VOLUME_INTERFACE};

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The answer to `Plugin.Activate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The interfaces the plugin implements (`VolumeDriver`,
    /// `NetworkDriver`, `IpamDriver`, `LogDriver`, `authz`...).
    #[serde(rename = "Implements", default)]
    pub implements: Vec<String>,
}

impl Manifest {
    /// True when the plugin says it implements `interface`. dockerd's
    /// authorization interface is `authz`; `AuthZPlugin` is accepted too.
    pub fn implements(&self, interface: &str) -> bool {
        self.implements.iter().any(|i| {
            i == interface || (interface.eq_ignore_ascii_case("authz") && i.eq_ignore_ascii_case("authzplugin"))
        })
    }
}

/// An activated plugin: its client and what it implements.
#[derive(Debug)]
pub struct Plugin {
    client: Client,
    manifest: Manifest,
}

impl Plugin {
    /// Activate the plugin `spec` names (`POST /Plugin.Activate`).
    pub async fn activate(spec: PluginSpec, timeout: Duration) -> Result<Plugin, PluginError> {
        let client = Client::new(spec).with_timeout(timeout);
        let manifest: Manifest = client.call("Plugin.Activate", &serde_json::json!({})).await?;
        tracing::debug!(plugin = %client.name(), implements = ?manifest.implements, "plugin activated");
        Ok(Plugin { client, manifest })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.client.name()
    }

    /// The client to call it with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What activation said.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

/// The plugins an engine uses: discovers a plugin on first use, activates
/// it, and keeps it (as dockerd keeps activated v1 plugins).
#[derive(Debug)]
pub struct Plugins {
    discovery: Discovery,
    timeout: Duration,
    active: Mutex<HashMap<String, Arc<Plugin>>>,
}

impl Plugins {
    /// A registry over `discovery`, with [`DEFAULT_TIMEOUT`] per call.
    pub fn new(discovery: Discovery) -> Self {
        Plugins { discovery, timeout: DEFAULT_TIMEOUT, active: Mutex::new(HashMap::new()) }
    }

    /// Bound every call to every plugin by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The per-call bound.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Where plugins are looked for.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The plugin `name`, activated (whatever it implements).
    pub async fn activate(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        if let Some(p) = self.active.lock().await.get(name).cloned() {
            return Ok(p);
        }
        // Activate without holding the lock: a hung plugin delays only its
        // own callers.
        let spec = self.discovery.lookup(name).await?;
        let p = Arc::new(Plugin::activate(spec, self.timeout).await?);
        Ok(self.active.lock().await.entry(name.to_string()).or_insert(p).clone())
    }

    /// The plugin `name`, activated, which must implement `interface`
    /// (`"VolumeDriver"`, `"LogDriver"`, `"NetworkDriver"`, `"authz"`).
    /// A failed activation is not kept: the next call tries again.
    pub async fn get(&self, name: &str, interface: &str) -> Result<Arc<Plugin>, PluginError> {
        let plugin = self.activate(name).await?;
        if !plugin.manifest.implements(interface) {
            return Err(PluginError::NotImplemented {
                name: name.to_string(),
                interface: interface.to_string(),
                implements: plugin.manifest.implements.clone(),
            });
        }
        Ok(plugin)
    }

    /// The plugins activated so far.
    pub async fn active(&self) -> Vec<Arc<Plugin>> {
        let mut v: Vec<_> = self.active.lock().await.values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// Every plugin the discovery directories name (activated or not).
    pub async fn scan(&self) -> Vec<PluginSpec> {
        self.discovery.scan().await
    }
}
