//! `process.rlimits`.

use engine_core::{Error, Result};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

/// The `RLIMIT_*` resource number and the config name of an rlimit type.
pub fn resource(t: PosixRlimitType) -> (libc::__rlimit_resource_t, &'static str) {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// Check the list (soft above hard, duplicates) before clone.
pub fn validate(list: &[PosixRlimit]) -> Result<()> {
    let mut seen = Vec::new();
    for r in list {
        let (res, name) = resource(r.typ());
        if r.soft() > r.hard() {
            return Err(Error::invalid(
                format!("process.rlimits {name}"),
                format!("soft limit {} is above the hard limit {}", r.soft(), r.hard()),
            ));
        }
        if seen.contains(&res) {
            return Err(Error::invalid("process.rlimits", format!("{name} is listed twice")));
        }
        seen.push(res);
    }
    Ok(())
}

/// Apply the limits to the calling process. Raising a hard limit above the
/// current one needs CAP_SYS_RESOURCE; the error names the rlimit and values.
pub fn apply(list: &[PosixRlimit]) -> Result<()> {
    for r in list {
        let (res, name) = resource(r.typ());
        let lim = libc::rlimit { rlim_cur: r.soft(), rlim_max: r.hard() };
        // SAFETY: a valid resource number and a pointer to a live rlimit.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            let e = std::io::Error::last_os_error();
            let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: as above.
            unsafe { libc::getrlimit(res, &mut cur) };
            return Err(Error::invalid(
                format!("process.rlimits {name}"),
                format!(
                    "cannot set soft={} hard={} (the host allows hard={} without CAP_SYS_RESOURCE): {e}",
                    r.soft(),
                    r.hard(),
                    cur.rlim_max
                ),
            ));
        }
    }
    Ok(())
}
