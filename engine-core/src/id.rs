//! Validated container ids.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A container id: 1 to 1024 characters of `[A-Za-z0-9_.+-]`, not `.` or `..`,
/// so it can never name a path outside the state directory.
///
/// ```
/// use engine_core::ContainerId;
/// assert!(ContainerId::new("web-1").is_ok());
/// assert!(ContainerId::new("../etc").is_err());
/// assert!(ContainerId::new("a/b").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    /// Validate and wrap an id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        validate_id(&id)?;
        Ok(ContainerId(id))
    }
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// A new random 64-hex-digit id, the form Docker uses.
    pub fn random() -> Self {
        ContainerId(random_hex64())
    }
}

/// 64 random hex digits from the kernel's random source (`getrandom(2)`).
///
/// # Panics
///
/// If the kernel cannot give random bytes (Linux before 3.17 without
/// `/dev/urandom`): an id made of anything else could collide.
pub fn random_hex64() -> String {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).expect("the kernel's random source (getrandom) failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("container id", "must not be empty"));
    }
    if id.len() > 1024 {
        return Err(Error::invalid("container id", format!("{} characters is longer than 1024", id.len())));
    }
    if id == "." || id == ".." {
        return Err(Error::invalid("container id", format!("{id:?} is not allowed")));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))) {
        return Err(Error::invalid(
            "container id",
            format!("{id:?} contains {c:?}; only letters, digits, '_', '.', '+' and '-' are allowed"),
        ));
    }
    Ok(())
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ContainerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContainerId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ContainerId::new(s)
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> String {
        id.0
    }
}

impl std::str::FromStr for ContainerId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ContainerId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ids() {
        for ok in ["a", "web_1.2+x-y", &"a".repeat(1024)] {
            assert!(ContainerId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"a".repeat(1025)] {
            let e = ContainerId::new(bad).unwrap_err();
            assert!(e.is_invalid_input(), "{bad}: {e}");
        }
        assert_eq!(ContainerId::random().as_str().len(), 64);
    }
}
