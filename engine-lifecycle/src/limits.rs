//! Process limits a long-running engine process raises for itself.

/// Raise this process's soft limit on open files (`RLIMIT_NOFILE`) to its hard limit and return
/// the new soft limit.
///
/// A daemon or manager keeps two descriptors per running container (pidfds on its init and its
/// shim, or a connection to the shim while it is in use), so the usual soft limit of 1024 caps it
/// near five hundred containers; dockerd and containerd are run with the
/// limit raised for the same reason. Raising the soft limit up to the hard one needs no privilege.
/// Call it once at the start of a binary that manages many containers; a library embedding the
/// engine decides for its own process.
///
/// ```
/// let soft = engine_lifecycle::raise_open_files_limit().unwrap();
/// assert!(soft >= 1);
/// ```
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
    }
    Ok(hard.max(soft))
}
