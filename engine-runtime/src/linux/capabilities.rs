//! `process.capabilities`: the five capability sets.

use caps::{CapSet, Capability, CapsHashSet};
use engine_core::{Error, Result};

/// The five sets, converted from the config (a missing set is empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapPlan {
    /// Bounding set.
    pub bounding: CapsHashSet,
    /// Effective set.
    pub effective: CapsHashSet,
    /// Inheritable set.
    pub inheritable: CapsHashSet,
    /// Permitted set.
    pub permitted: CapsHashSet,
    /// Ambient set.
    pub ambient: CapsHashSet,
}

fn convert(set: &Option<oci_spec::runtime::Capabilities>, which: &str, known: &CapsHashSet) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: Capability = name.parse().map_err(|_| {
            Error::invalid(format!("process.capabilities.{which}"), format!("unknown capability {name}"))
        })?;
        // Capabilities the running kernel does not know are skipped, as runc does.
        if known.contains(&cap) {
            out.insert(cap);
        }
    }
    Ok(out)
}

impl CapPlan {
    /// Convert the config's sets. `None` (no `capabilities` at all) keeps nothing.
    pub fn new(c: Option<&oci_spec::runtime::LinuxCapabilities>) -> Result<Self> {
        let Some(c) = c else { return Ok(CapPlan::default()) };
        let known = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
        Ok(CapPlan {
            bounding: convert(c.bounding(), "bounding", &known)?,
            effective: convert(c.effective(), "effective", &known)?,
            inheritable: convert(c.inheritable(), "inheritable", &known)?,
            permitted: convert(c.permitted(), "permitted", &known)?,
            ambient: convert(c.ambient(), "ambient", &known)?,
        })
    }

    /// Drop from the bounding set everything not listed (needs CAP_SETPCAP; call before changing user).
    pub fn apply_bounding(&self) -> Result<()> {
        let cur = caps::read(None, CapSet::Bounding).map_err(|e| Error::Other(format!("read bounding set: {e}")))?;
        for c in cur.difference(&self.bounding) {
            caps::drop(None, CapSet::Bounding, *c)
                .map_err(|e| Error::Other(format!("drop {c} from bounding set: {e}")))?;
        }
        Ok(())
    }

    /// Set inheritable, effective, permitted and ambient (after changing user with keep-caps).
    pub fn apply_sets(&self) -> Result<()> {
        let err = |set: &str, e: caps::errors::CapsError| Error::Other(format!("set {set} capabilities: {e}"));
        // Regain the permitted caps as effective so the following capset calls are allowed.
        let perm = caps::read(None, CapSet::Permitted).map_err(|e| err("permitted", e))?;
        caps::set(None, CapSet::Effective, &perm).map_err(|e| err("effective", e))?;
        caps::set(None, CapSet::Inheritable, &self.inheritable).map_err(|e| err("inheritable", e))?;
        caps::set(None, CapSet::Effective, &self.effective).map_err(|e| err("effective", e))?;
        caps::set(None, CapSet::Permitted, &self.permitted).map_err(|e| err("permitted", e))?;
        if !self.ambient.is_empty() {
            for c in &self.ambient {
                // Ambient needs the cap in both permitted and inheritable; skip others as runc does.
                if self.permitted.contains(c) && self.inheritable.contains(c) {
                    caps::raise(None, CapSet::Ambient, *c).map_err(|e| err("ambient", e))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn converts_names() {
        let c: oci_spec::runtime::LinuxCapabilities =
            serde_json::from_str(r#"{"bounding":["CAP_KILL","CAP_NET_BIND_SERVICE"],"effective":["CAP_KILL"]}"#)
                .unwrap();
        let p = CapPlan::new(Some(&c)).unwrap();
        assert!(p.bounding.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert_eq!(p.effective.len(), 1);
        assert!(p.ambient.is_empty());
        assert!(serde_json::from_str::<oci_spec::runtime::LinuxCapabilities>(r#"{"bounding":["CAP_NOPE"]}"#).is_err());
    }
}
