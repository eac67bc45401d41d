//! The volume parts of Docker's create body, kept apart from `convert`.

use engine_core::MountSpec;
use serde_json::Value;
use std::collections::HashMap;

/// `Config.Volumes` (`{"/data":{}}`, what the CLI sends for `-v /data`): an
/// anonymous volume mount for each path no other mount covers.
pub(crate) fn anonymous_mounts(volumes: Option<&HashMap<String, Value>>, mounts: &mut Vec<MountSpec>) {
    let mut paths: Vec<&String> = volumes.into_iter().flat_map(|v| v.keys()).collect();
    paths.sort();
    for p in paths {
        let t = p.trim_end_matches('/');
        let covered = mounts.iter().any(|m| m.target().trim_end_matches('/') == t);
        if !covered && !t.is_empty() {
            mounts.push(MountSpec::Volume {
                name: String::new(),
                target: t.to_string(),
                read_only: false,
                no_copy: false,
            });
        }
    }
}
