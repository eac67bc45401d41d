//! Networks (`/networks/...`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// A network in `GET /networks`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkBody {
    /// Name.
    pub name: String,
    /// Id.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// `local`.
    pub scope: String,
    /// `bridge`, `host`, `null`.
    pub driver: String,
    /// IPv6.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// IPAM.
    #[serde(rename = "IPAM")]
    pub ipam: Value,
    /// Internal.
    pub internal: bool,
    /// Attachable.
    pub attachable: bool,
    /// Ingress.
    pub ingress: bool,
    /// Config source.
    pub config_from: Value,
    /// Config only.
    pub config_only: bool,
    /// Containers.
    pub containers: Value,
    /// Options.
    pub options: HashMap<String, String>,
    /// Labels.
    pub labels: HashMap<String, String>,
}
