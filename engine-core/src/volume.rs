//! The volume tier: named storage that outlives containers.
//!
//! A [`VolumeDriver`] creates, lists and removes volumes, and mounts one for
//! a container: [`VolumeDriver::mount`] hands back the host path the manager
//! bind-mounts into the container, and counts the caller as a user until it
//! calls [`VolumeDriver::unmount`]. A volume with users cannot be removed
//! ([`Error::Conflict`], a 409 on Docker's API).
//!
//! ```
//! use engine_core::volume::{validate_volume_name, VolumeCreate, ANONYMOUS_LABEL};
//! assert!(validate_volume_name("data-1").is_ok());
//! assert!(validate_volume_name("bad/name").unwrap_err().is_invalid_input());
//! let req = VolumeCreate::named("data").opt("type", "tmpfs").label("app", "db");
//! assert_eq!(req.driver_opts["type"], "tmpfs");
//! assert!(!req.labels.contains_key(ANONYMOUS_LABEL));
//! ```

use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

/// The label docker puts on anonymous volumes (from an image's `VOLUME`,
/// `-v /path`, or `--mount type=volume` without a source): `docker rm -v`
/// removes them with their container, `docker volume prune` removes only
/// these unless told `all=true`.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Check a volume name by Docker's rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with
/// docker's wording in the error.
pub fn validate_volume_name(name: &str) -> Result<()> {
    let ok = name.len() >= 2
        && name.len() <= 255
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "volume name",
            format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \
                 \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            ),
        ))
    }
}

/// What to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VolumeCreate {
    /// The name; `None` makes an anonymous volume (a random 64-hex name and
    /// the [`ANONYMOUS_LABEL`]).
    pub name: Option<String>,
    /// Driver options (the local driver's `type`, `device`, `o`).
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The driver that should own the volume (`docker volume create -d`,
    /// `--volume-driver`), for an engine that routes between drivers;
    /// `None` is the engine's default. A driver that does not route refuses
    /// a name other than its own ([`Error::NotFound`], kind `"plugin"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

impl VolumeCreate {
    /// A named volume with no options.
    pub fn named(name: impl Into<String>) -> Self {
        VolumeCreate { name: Some(name.into()), ..Default::default() }
    }
    /// An anonymous volume.
    pub fn anonymous() -> Self {
        VolumeCreate::default()
    }
    /// Add a driver option.
    pub fn opt(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.driver_opts.insert(key.into(), value.into());
        self
    }
    /// Ask for the driver `name` to own the volume.
    pub fn driver(mut self, name: impl Into<String>) -> Self {
        self.driver = Some(name.into());
        self
    }
    /// Add a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// A volume as its driver reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// The driver's name (`local`).
    pub driver: String,
    /// Where its data is on the host (for the local driver
    /// `<root>/volumes/<name>/_data`).
    pub mountpoint: PathBuf,
    /// When it was created.
    #[serde(with = "crate::time::serde_system_time")]
    pub created: SystemTime,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The driver options it was created with.
    pub options: BTreeMap<String, String>,
    /// Who has it mounted now (container ids), sorted.
    pub users: Vec<String>,
}

impl Volume {
    /// A volume record with no users.
    pub fn new(name: impl Into<String>, driver: impl Into<String>, mountpoint: impl Into<PathBuf>) -> Self {
        Volume {
            name: name.into(),
            driver: driver.into(),
            mountpoint: mountpoint.into(),
            created: SystemTime::now(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            users: Vec::new(),
        }
    }
    /// True for an anonymous volume (it carries [`ANONYMOUS_LABEL`]).
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// A volume driver (docker's `local`, or a plugin's).
///
/// Errors: [`Error::NotFound`] (kind `"volume"`) for an unknown name,
/// [`Error::InvalidInput`] for a bad name or an option the driver rejects
/// (nothing is created), [`Error::Conflict`] for removing a volume in use or
/// re-creating one with other options.
#[async_trait]
pub trait VolumeDriver: Send + Sync {
    /// The driver's name, as `docker volume ls` shows it.
    fn name(&self) -> &str;
    /// Create a volume, or return the existing one of that name when the
    /// request asks for no other options (docker's create is idempotent).
    async fn create(&self, req: VolumeCreate) -> Result<Volume>;
    /// One volume.
    async fn get(&self, name: &str) -> Result<Volume>;
    /// All volumes, sorted by name.
    async fn list(&self) -> Result<Vec<Volume>>;
    /// Remove a volume and its data. A volume with users is a
    /// [`Error::Conflict`] and stays as it was.
    async fn remove(&self, name: &str) -> Result<()>;
    /// Make the volume available to `caller` (a container id) and return the
    /// host path to bind into the container. Mounting twice for one caller
    /// counts once. Devices (tmpfs, bind) are mounted for the first user.
    async fn mount(&self, name: &str, caller: &str) -> Result<PathBuf>;
    /// `caller` no longer uses the volume; the last user's unmount releases
    /// what `mount` mounted. Unmounting a caller that is not a user is a no-op.
    async fn unmount(&self, name: &str, caller: &str) -> Result<()>;
}
