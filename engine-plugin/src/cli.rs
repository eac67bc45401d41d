//! The plugin flags of the engine's daemons (`engined`,
//! `engine-lifecycled`), for a command line built with clap.

use crate::{Discovery, Plugins};
use engine_core::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where plugins are discovered and how long a call to one may take:
/// `--plugin-socket-dir`, `--plugin-spec-dir`, `--plugin-timeout`.
/// Flatten it into a daemon's arguments (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug)]
pub struct PluginArgs {
    /// Where plugins' sockets are discovered (repeatable; default
    /// /run/docker/plugins, as dockerd).
    #[arg(long = "plugin-socket-dir", value_name = "DIR")]
    pub socket_dirs: Vec<PathBuf>,
    /// Where plugins' spec files (NAME.spec, NAME.json) are discovered
    /// (repeatable; default /etc/docker/plugins and /usr/lib/docker/plugins).
    #[arg(long = "plugin-spec-dir", value_name = "DIR")]
    pub spec_dirs: Vec<PathBuf>,
    /// The bound on each call to a plugin (a hung plugin is an error after it).
    #[arg(long = "plugin-timeout", value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl PluginArgs {
    /// The plugin registry the flags describe; a zero `--plugin-timeout`
    /// is refused.
    pub fn registry(&self) -> Result<Arc<Plugins>> {
        if self.timeout.is_zero() {
            return Err(Error::invalid("--plugin-timeout", "must be more than 0s"));
        }
        let d = Discovery::in_dirs(&self.socket_dirs, &self.spec_dirs);
        Ok(Arc::new(Plugins::new(d).with_timeout(self.timeout)))
    }
}
