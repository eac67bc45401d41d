//! Device access rules (`linux.resources.devices`).

use engine_core::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// The v1 `devices.allow` / `devices.deny` line for a rule: `c 1:3 rwm`.
pub(crate) fn v1_rule(rule: &LinuxDeviceCgroup) -> Result<String> {
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => {
            return Err(Error::invalid(
                "linux.resources.devices",
                "device type \"p\" (FIFO) cannot be used in a device cgroup rule",
            ))
        }
    };
    let num = |v: Option<i64>| v.filter(|n| *n >= 0).map(|n| n.to_string()).unwrap_or_else(|| "*".into());
    let access = access(rule)?;
    Ok(format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor())))
}

/// The rule's access string, validated (`r`, `w`, `m`; empty means all).
pub(crate) fn access(rule: &LinuxDeviceCgroup) -> Result<String> {
    let a = rule.access().as_deref().unwrap_or("");
    if let Some(c) = a.chars().find(|c| !matches!(c, 'r' | 'w' | 'm')) {
        return Err(Error::invalid(
            "linux.resources.devices",
            format!("access {a:?} has {c:?}; only 'r', 'w' and 'm' are allowed"),
        ));
    }
    Ok(if a.is_empty() { "rwm".into() } else { a.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v1_lines() {
        assert_eq!(v1_rule(&rule(r#"{"allow":false,"access":"rwm"}"#)).unwrap(), "a *:* rwm");
        assert_eq!(v1_rule(&rule(r#"{"allow":true,"type":"c","major":1,"minor":3}"#)).unwrap(), "c 1:3 rwm");
        assert_eq!(v1_rule(&rule(r#"{"allow":true,"type":"b","major":8,"access":"r"}"#)).unwrap(), "b 8:* r");
        let e = v1_rule(&rule(r#"{"allow":true,"type":"c","access":"rx"}"#)).unwrap_err();
        assert!(e.to_string().contains("'x'"), "{e}");
    }
}
