//! RFC 3339 timestamps with nanoseconds, as Docker writes them.

use std::time::SystemTime;

/// Format a time as RFC 3339 UTC with nanoseconds: `2026-11-28T13:32:51.134804507Z`.
///
/// ```
/// let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_500);
/// assert_eq!(engine_core::time::format_rfc3339(t), "1970-01-01T00:00:00.000001500Z");
/// ```
pub fn format_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Parse an RFC 3339 time (any precision, `Z` or a numeric offset).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    // A numeric offset `+hh:mm` / `-hh:mm` at the end (humantime ignores it, so apply it here).
    if b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':' {
        let (head, off) = s.split_at(s.len() - 6);
        let sign: i64 = if off.starts_with('-') { -1 } else { 1 };
        let secs = sign * (off[1..3].parse::<i64>().ok()? * 3600 + off[4..6].parse::<i64>().ok()? * 60);
        let base = humantime::parse_rfc3339_weak(head).ok()?;
        return if secs >= 0 {
            base.checked_sub(std::time::Duration::from_secs(secs as u64))
        } else {
            base.checked_add(std::time::Duration::from_secs((-secs) as u64))
        };
    }
    humantime::parse_rfc3339_weak(s).ok()
}

/// Serde helpers: a `SystemTime` as an RFC 3339 string.
pub mod serde_system_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;
    /// Serialize as RFC 3339.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*t))
    }
    /// Deserialize from RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom(format!("bad time {s:?}")))
    }
}

/// Serde helpers: an optional `SystemTime` as an RFC 3339 string or null.
pub mod serde_opt_system_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;
    /// Serialize as RFC 3339 or null.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
    /// Deserialize from RFC 3339 or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => {
                super::parse_rfc3339(&s).map(Some).ok_or_else(|| serde::de::Error::custom(format!("bad time {s:?}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_offsets() {
        let t = parse_rfc3339("2026-11-28T13:32:51.134804507Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-28T13:32:51.134804507Z");
        let o = parse_rfc3339("2026-11-28T14:32:51.134804507+01:00").unwrap();
        assert_eq!(o, t);
    }
}
