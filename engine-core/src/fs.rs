//! Replacing a file atomically, the one way every tier writes its records.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("engine-core-fs-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let p = dir.join("record.json");
//! engine_core::fs::write_atomic(&p, b"{}")?; // survives a machine crash once it returns
//! engine_core::fs::replace_file(&p, b"[]")?; // never seen half-written, not forced to disk
//! assert_eq!(std::fs::read(&p).unwrap(), b"[]");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), engine_core::Error>(())
//! ```

use crate::{Error, IoContext, Result};
use std::io::Write;
use std::path::Path;

/// Replace `path` with `data` durably: a temp file in the same directory,
/// fsync, rename over `path`, fsync of the directory. A crash at any point
/// leaves the old content or the new one, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    replace(path, data, true)
}

/// Replace `path` with `data` atomically (temp file, rename) without forcing
/// it to disk: for records that matter only while the machine is up (state
/// of live processes, like runc's under `/run`). A process crash never loses
/// them; no reader ever sees half a record.
pub fn replace_file(path: &Path, data: &[u8]) -> Result<()> {
    replace(path, data, false)
}

fn replace(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::invalid("file path", path.display().to_string()))?;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Unique per writer: two writers of one path never share a temp file.
    let tmp = dir.join(format!(".{name}.tmp-{}", &crate::random_hex64()[..12]));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.context(|| format!("write {}", path.display()))
}

/// Call `f` again while it fails with `again`, up to 64 times, then once
/// more and return what that gives. For `openat2` with `RESOLVE_IN_ROOT`,
/// which answers `EAGAIN` when a mount or rename anywhere on the machine
/// raced its resolution of a `..` (openat2(2): the caller may retry).
///
/// ```
/// let mut tries = 0;
/// let r: Result<u32, i32> = engine_core::fs::retry_on(11, || {
///     tries += 1;
///     if tries < 3 { Err(11) } else { Ok(tries) }
/// });
/// assert_eq!(r, Ok(3));
/// ```
pub fn retry_on<T, E: PartialEq>(
    again: E,
    mut f: impl FnMut() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    for _ in 0..64 {
        match f() {
            Err(e) if e == again => continue,
            r => return r,
        }
    }
    f()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_and_leaves_no_temp_file() {
        let d = tempfile_dir();
        let p = d.join("f.json");
        super::write_atomic(&p, b"one").unwrap();
        super::replace_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let e = super::write_atomic(&d.join("missing/f.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("missing/f.json"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("engine-core-fs-{}", crate::random_hex64()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
