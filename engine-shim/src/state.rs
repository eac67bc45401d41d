//! What a shim keeps in its state dir, written atomically (temp file, then
//! rename) so that no reader ever sees half a record.
//!
//! These records describe processes, so they matter only while the machine
//! is up (like runc's state under `/run`): a process crash (shim, manager,
//! daemon) never loses them, since they are in the page cache once written,
//! and a machine crash ends the processes they describe. They are not
//! fsynced; [`write_atomic`] is there for files that must outlive a reboot.

use engine_core::{Error, ExitStatus, Pid, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Name of the shim's address record in its state dir.
pub const ADDRESS_FILE: &str = "shim.json";
/// Name of the shim's gRPC socket in its state dir.
pub const SOCKET_FILE: &str = "shim.sock";
/// Name of the init's exit record in its state dir.
pub const EXIT_FILE: &str = "exit.json";

/// Where a running shim listens, as recorded in `shim.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimAddress {
    /// The container id.
    pub id: String,
    /// The shim process's pid.
    pub pid: Pid,
    /// The shim's unix socket.
    pub socket: PathBuf,
}

pub use engine_core::fs::{replace_file, write_atomic};

/// Record the shim's address in `state_dir/shim.json`.
pub fn write_address(state_dir: &Path, addr: &ShimAddress) -> Result<()> {
    let data = serde_json::to_vec(addr).map_err(|e| Error::Other(e.to_string()))?;
    replace_file(&state_dir.join(ADDRESS_FILE), &data)
}

/// Read `state_dir/shim.json`; `None` when there is none.
pub fn read_address(state_dir: &Path) -> Result<Option<ShimAddress>> {
    read_json(&state_dir.join(ADDRESS_FILE))
}

/// The file holding a process's exit record (`exit.json` for the init,
/// `exec-<id>.exit.json` for an exec).
pub fn exit_file(state_dir: &Path, exec_id: Option<&str>) -> PathBuf {
    match exec_id {
        None => state_dir.join(EXIT_FILE),
        Some(e) => state_dir.join(format!("exec-{e}.exit.json")),
    }
}

/// Record a process's exit.
pub fn write_exit(state_dir: &Path, exec_id: Option<&str>, status: &ExitStatus) -> Result<()> {
    let data = serde_json::to_vec(status).map_err(|e| Error::Other(e.to_string()))?;
    replace_file(&exit_file(state_dir, exec_id), &data)
}

/// Read a process's exit record; `None` when there is none.
pub fn read_exit(state_dir: &Path, exec_id: Option<&str>) -> Result<Option<ExitStatus>> {
    read_json(&exit_file(state_dir, exec_id))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| Error::invalid(path.display().to_string(), format!("unreadable record: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_record_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_exit(dir.path(), None).unwrap(), None);
        let e = ExitStatus::now(137);
        write_exit(dir.path(), None, &e).unwrap();
        assert_eq!(read_exit(dir.path(), None).unwrap(), Some(e));
        let e2 = ExitStatus::now(0);
        write_exit(dir.path(), None, &e2).unwrap();
        assert_eq!(read_exit(dir.path(), None).unwrap(), Some(e2));
        // no temp files left behind
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(EXIT_FILE)]);
    }
}
