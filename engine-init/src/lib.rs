//! # engine-init
//!
//! The small init a container runs as pid 1 with `--init`
//! ([`engine_core::ContainerConfig::init`](https://docs.rs/engine-core)): it
//! starts the container's command as its only child, forwards every signal it
//! receives to it, reaps every zombie reparented to it, and exits with the
//! command's status (128 + signal number when the command was killed).
//!
//! It is a static executable built from `bin/init.rs` by this crate's build
//! script and embedded here as bytes ([`INIT`]), so an embedding application
//! needs no separate binary on disk: the lifecycle manager writes it once
//! under its own root ([`install`]) and bind-mounts it read-only at
//! [`CONTAINER_PATH`] in the container, with the command after `--`.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = engine_init::install(dir.path())?;
//! let out = std::process::Command::new(&path).args(["--", "sh", "-c", "exit 3"]).status()?;
//! assert_eq!(out.code(), Some(3));
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The init executable (static, for this build's target).
pub const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/engine-init"));

/// Where the init is mounted in a container.
pub const CONTAINER_PATH: &str = "/sbin/engine-init";

/// The file name [`install`] writes.
pub const FILE_NAME: &str = "engine-init";

/// A static test helper (`secprobe unshare-user keyctl add_key ...`) that
/// tries system calls docker's default seccomp profile blocks and prints
/// `<call>: ok` or `<call>: errno <n>` for each. Only with the `probe` feature.
#[cfg(feature = "probe")]
pub const PROBE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/secprobe"));

/// Write `bytes` as an executable at `path` unless an identical file is
/// there: to a temp file in the same directory, fsync, rename.
pub fn write_executable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|cur| cur == bytes) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Unique per writer: two creates in one process may install at once.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.{nanos}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("bin"),
        std::process::id(),
        std::thread::current().id(),
    ));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    f.write_all(bytes)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Write the init into `dir` (as [`FILE_NAME`], mode 0755) unless an
/// identical one is there, and return its path.
pub fn install(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join(FILE_NAME);
    write_executable(&path, INIT)?;
    Ok(path)
}
