//! Reading and writing cgroup interface files, with errors that name the file
//! and the value.

use engine_core::{Error, Result};
use std::fmt::Display;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Write `value` to `dir/file`, as one `write(2)`.
pub(crate) fn write(dir: &Path, file: &str, value: impl Display) -> Result<()> {
    let path = dir.join(file);
    let value = value.to_string();
    tracing::trace!(path = %path.display(), %value, "cgroup write");
    // Never create: a missing interface file means a missing controller.
    let res = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
    res.map_err(|e| write_error(&path, &value, e))
}

/// One interface file written several times through one descriptor (each
/// value one `write(2)`, applied in order): the device rules of a v1 cgroup,
/// a dozen writes to `devices.allow`, open the file once instead of a dozen
/// times (each open walks the cgroup filesystem's path again, under the lock
/// that concurrent `mkdir`s of other containers' cgroups take).
pub(crate) struct Writer {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Writer {
    /// A writer of `dir/file`, opened at the first write.
    pub(crate) fn new(dir: &Path, file: &str) -> Writer {
        Writer { path: dir.join(file), file: None }
    }

    /// Write `value` as one `write(2)`.
    pub(crate) fn write(&mut self, value: impl Display) -> Result<()> {
        let value = value.to_string();
        tracing::trace!(path = %self.path.display(), %value, "cgroup write");
        let f = match &mut self.file {
            Some(f) => f,
            None => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&self.path)
                    .map_err(|e| write_error(&self.path, &value, e))?;
                self.file.insert(f)
            }
        };
        std::io::Write::write_all(f, value.as_bytes()).map_err(|e| write_error(&self.path, &value, e))
    }
}

/// The error for a failed write of `value` to `path`.
pub(crate) fn write_error(path: &Path, value: &str, e: std::io::Error) -> Error {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::Unsupported(format!(
            "cgroup file {} does not exist (controller not enabled or not supported by this kernel); cannot set {file} to {value:?}",
            path.display()
        )),
        Some(libc::EINVAL) | Some(libc::ERANGE) | Some(libc::EOPNOTSUPP) => Error::invalid(
            format!("cgroup value for {file}"),
            format!("the kernel rejected {value:?} written to {}: {e}", path.display()),
        ),
        _ => Error::io(format!("writing {value:?} to {}", path.display()), e),
    }
}

/// Read `dir/file` as a trimmed string; `None` when the file does not exist.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) || e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Read `dir/file` as a trimmed string.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// Parse a single number, or `None` for `max` / the v1 "unlimited" sentinel.
pub(crate) fn parse_limit(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    // v1 reports "unlimited" as PAGE_COUNTER_MAX * page size, just below i64::MAX.
    if v >= 0x7FFF_FFFF_FFFF_F000 {
        None
    } else {
        Some(v)
    }
}

/// Read a single number from `dir/file`; `None` when the file is missing.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<Option<u64>> {
    Ok(read_opt(dir, file)?.and_then(|s| s.trim().parse().ok()))
}

/// Look up `key` in a flat-keyed file (`key value` lines: `memory.events`, `cpu.stat`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// The pids in `dir/cgroup.procs`.
pub(crate) fn procs(dir: &Path) -> Result<Vec<i32>> {
    let text = read(dir, "cgroup.procs")?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The pids in `dir` and every cgroup below it.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<i32>> {
    let mut out = procs(dir)?;
    for sub in subdirs(dir)? {
        out.extend(procs_recursive(&sub)?);
    }
    Ok(out)
}

/// Child cgroups (directories) of `dir`.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

/// Remove the cgroup `dir` and any cgroup below it. Retries while the kernel
/// still sees exiting tasks (`EBUSY`). A missing directory is success.
///
/// The common case (an empty leaf) costs one `rmdir`: the directory is listed
/// only when that fails with `EBUSY`/`ENOTEMPTY` (child cgroups, or tasks).
pub(crate) fn remove_tree(dir: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    let mut listed = false;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => {
                if !listed {
                    // Child cgroups keep the parent busy: remove them first, then retry at once.
                    listed = true;
                    let subs = subdirs(dir)?;
                    if !subs.is_empty() {
                        for sub in subs {
                            remove_tree(&sub, timeout)?;
                        }
                        continue;
                    }
                }
                if Instant::now() >= deadline {
                    let pids = procs(dir).unwrap_or_default();
                    return Err(Error::io(
                        format!("removing cgroup {} (processes still in it: {pids:?})", dir.display()),
                        e,
                    ));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                let pids = procs(dir).unwrap_or_default();
                return Err(Error::io(
                    format!("removing cgroup {} (processes still in it: {pids:?})", dir.display()),
                    e,
                ));
            }
        }
    }
}

/// Poll `check` until it returns true or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(50);
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_keys() {
        assert_eq!(parse_limit("max"), None);
        assert_eq!(parse_limit("9223372036854771712"), None);
        assert_eq!(parse_limit("1048576\n"), Some(1048576));
        let t = "usage_usec 120\nuser_usec 100\nsystem_usec 20\n";
        assert_eq!(keyed(t, "user_usec"), Some(100));
        assert_eq!(keyed(t, "usage"), None);
    }

    #[test]
    fn write_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let e = write(&d.path().join("missing"), "memory.max", 5).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("memory.max") && s.contains("\"5\""), "{s}");
    }

    #[test]
    fn remove_tree_removes_nested_and_tolerates_missing() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cg");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        remove_tree(&root, Duration::from_millis(10)).unwrap();
        assert!(!root.exists());
        remove_tree(&root, Duration::from_millis(10)).unwrap();
    }
}
