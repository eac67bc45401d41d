//! Log plugins: [`PluginLogDrivers`] speaks the `LogDriver` interface
//! (`LogDriver.StartLogging`, `.StopLogging`, `.Capabilities`) of any
//! discovered plugin, as an [`engine_core::LogPlugins`].
//!
//! The engine makes a FIFO per container; the shim (not the daemon) writes
//! the container's entries into it as length-prefixed protobuf `LogEntry`
//! messages ([`engine_core::LogEntry::encode_plugin_frame`]). The shim
//! outlives the daemon and the manager, so no line is lost while either
//! restarts; the plugin itself must stay up. `LogDriver.ReadLogs` is not
//! used: `docker logs` reads the local cache the shim writes beside the
//! FIFO (Docker's dual logging).

use crate::{PluginError, Plugins};
use async_trait::async_trait;
use engine_core::logs::LogStart;
use engine_core::{Error, LogPlugins, Result};
use serde::Deserialize;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// The interface name log plugins announce in `Plugin.Activate`.
pub const LOG_INTERFACE: &str = "LogDriver";

/// An answer that carries nothing but `Err` (checked by the client).
#[derive(Deserialize)]
struct Empty {}

/// Log plugins found through a [`Plugins`] registry. Every call is bounded
/// by the registry's timeout; errors name the plugin.
#[derive(Clone, Debug)]
pub struct PluginLogDrivers {
    plugins: Arc<Plugins>,
}

impl PluginLogDrivers {
    /// Log drivers from `plugins`.
    pub fn new(plugins: Arc<Plugins>) -> Self {
        PluginLogDrivers { plugins }
    }

    async fn call(&self, driver: &str, method: &str, req: serde_json::Value) -> Result<()> {
        let p = self.plugins.get(driver, LOG_INTERFACE).await.map_err(|e| lookup_error(driver, e))?;
        let _: Empty =
            p.client().call(&format!("LogDriver.{method}"), &req).await.map_err(|e| call_error(driver, e))?;
        Ok(())
    }
}

/// dockerd's wording for a log driver no plugin provides (a 400: nothing is made).
fn lookup_error(driver: &str, e: PluginError) -> Error {
    match e {
        PluginError::NotFound { .. } | PluginError::NotImplemented { .. } | PluginError::BadSpec { .. } => {
            Error::invalid("log driver", format!("error looking up logging plugin {driver}: {e}"))
        }
        e => call_error(driver, e),
    }
}

/// A plugin that is there but fails: unavailable, naming it.
fn call_error(driver: &str, e: PluginError) -> Error {
    Error::unavailable(format!("logging plugin {driver}"), e.to_string())
}

#[async_trait]
impl LogPlugins for PluginLogDrivers {
    /// Activates the plugin and asks its `LogDriver.Capabilities`, so a
    /// plugin that is gone is an error at create, not at first output.
    async fn check(&self, driver: &str) -> Result<()> {
        let p = self.plugins.get(driver, LOG_INTERFACE).await.map_err(|e| lookup_error(driver, e))?;
        let _: serde_json::Value =
            p.client().call("LogDriver.Capabilities", &json!({})).await.map_err(|e| call_error(driver, e))?;
        Ok(())
    }

    async fn start(&self, driver: &str, fifo: &Path, info: &LogStart) -> Result<()> {
        let req = json!({
            "File": fifo,
            "Info": {
                "Config": info.opts,
                "ContainerID": info.container_id,
                "ContainerName": format!("/{}", info.container_name),
                "ContainerImageName": info.image,
                "ContainerLabels": info.labels,
                "DaemonName": "docker",
            },
        });
        self.call(driver, "StartLogging", req).await
    }

    async fn stop(&self, driver: &str, fifo: &Path) -> Result<()> {
        self.call(driver, "StopLogging", json!({ "File": fifo })).await
    }
}
