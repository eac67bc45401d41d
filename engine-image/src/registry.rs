//! Registry client (placeholder until pull/push land).
use crate::store::Store;
use engine_core::{Error, ImageInfo, ProgressSender, RegistryAuth, Result};

/// Options for talking to registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {}

/// Credentials for `registry` from `~/.docker/config.json`.
pub fn docker_config_auth(_registry: &str) -> Option<RegistryAuth> {
    None
}

impl Store {
    pub(crate) async fn pull_image(&self, reference: &str, _a: Option<&RegistryAuth>, _p: Option<ProgressSender>) -> Result<ImageInfo> {
        Err(Error::Unsupported(format!("pull {reference}")))
    }
    pub(crate) async fn push_image(&self, reference: &str, _a: Option<&RegistryAuth>, _p: Option<ProgressSender>) -> Result<String> {
        Err(Error::Unsupported(format!("push {reference}")))
    }
}
