//! The CNI flags of the engine's daemons (`engined`, `engine-lifecycled`,
//! `engine-cri`), for a command line built with clap.

use crate::{CniDriver, CniDriverBuilder};
use std::path::PathBuf;

/// Where CNI network configurations and plugin binaries are:
/// `--cni-conf-dir`, `--cni-bin-dir`. Flatten it into a daemon's arguments
/// (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug)]
pub struct CniArgs {
    /// With `--network-driver cni`: the directory of CNI network
    /// configurations (`*.conflist`; the first is the default network).
    #[arg(long = "cni-conf-dir", value_name = "DIR", default_value = "/etc/cni/net.d")]
    pub conf_dir: PathBuf,
    /// With `--network-driver cni`: where CNI plugin binaries are
    /// (repeatable; default /usr/lib/cni, then /opt/cni/bin).
    #[arg(long = "cni-bin-dir", value_name = "DIR")]
    pub bin_dirs: Vec<PathBuf>,
}

impl CniArgs {
    /// A CNI driver builder keeping its state under `state_dir`, with the
    /// directories the flags name.
    pub fn builder(&self, state_dir: impl Into<PathBuf>) -> CniDriverBuilder {
        let b = CniDriver::builder(state_dir).conf_dir(&self.conf_dir);
        if self.bin_dirs.is_empty() {
            b
        } else {
            b.bin_dirs(self.bin_dirs.clone())
        }
    }
}
