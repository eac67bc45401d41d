//! Finding executables: this project's own binaries and peer tools, by one rule.
//!
//! ```
//! // `sh` is on every host's PATH (or in the sbin/bin directories searched too).
//! assert!(engine_core::binary::find_in_path("sh").is_some());
//! assert!(engine_core::binary::find_in_path("surely-no-such-tool").is_none());
//! ```

use std::path::{Path, PathBuf};

/// Where this project's binaries (`engine-runc`, `engine-shim`,
/// `engine-lifecycled`, ...) are looked for, in order: `$ENGINE_BIN_DIR`, the
/// directory of the current executable, its parent (a test binary lives in
/// `target/debug/deps`, the binaries in `target/debug`), then [`find_in_path`].
/// A path found from a relative `$ENGINE_BIN_DIR` or `PATH` entry is made
/// absolute (a shim runs its runtime from `/`, not from the caller's
/// directory).
pub fn find_engine_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("ENGINE_BIN_DIR") {
        dirs.push(dir.into());
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if let Some(up) = dir.parent() {
                dirs.push(up.to_path_buf());
            }
        }
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| is_executable(p)).or_else(|| find_in_path(name)).map(absolute)
}

fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// Find an executable on `PATH`, then in the usual sbin and bin directories
/// (root's `PATH` in a test runner or a service unit may lack them).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    std::env::split_paths(&path).chain(extra.iter().map(PathBuf::from)).map(|d| d.join(name)).find(|p| is_executable(p))
}

/// A regular file (after symlinks) with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
