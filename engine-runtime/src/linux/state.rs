//! The per-container state directory (`<root>/<id>/state.json`, `exec.fifo`)
//! and the status computed from it.

use crate::cgroups::Cgroup;
use engine_core::{ContainerStatus, Error, Result, RuntimeState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What `engine-runc` records about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The runtime-spec version of the config.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// The init's host pid.
    pub pid: i32,
    /// The init's start time (field 22 of `/proc/<pid>/stat`), to detect pid reuse.
    pub pid_start: u64,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The rootfs on the host.
    pub rootfs: PathBuf,
    /// The config's annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// The container's cgroup.
    #[serde(default)]
    pub cgroup: Option<Cgroup>,
    /// The config's hooks (poststart and poststop run after create).
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The config's seccomp profile, applied to exec'd processes too.
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// `process.noNewPrivileges` of the init (the default for exec).
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The init's process spec (defaults for exec: env, cwd, user, caps, rlimits).
    #[serde(default)]
    pub process: Option<oci_spec::runtime::Process>,
}

impl State {
    /// The OCI state with a freshly computed status.
    pub fn oci(&self, status: ContainerStatus) -> RuntimeState {
        let pid = if status == ContainerStatus::Stopped { 0 } else { self.pid };
        RuntimeState::new(self.id.clone(), status, pid, self.bundle.clone())
            .oci_version(self.oci_version.clone())
            .annotations(self.annotations.clone())
    }
}

/// The state directory of one container.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// `<root>/<id>`.
    pub dir: PathBuf,
}

impl StateDir {
    /// The directory for `id` under `root`.
    pub fn new(root: &Path, id: &str) -> Self {
        StateDir { dir: root.join(id) }
    }
    /// `state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// `exec.fifo`.
    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }
    /// Load `state.json`; `NotFound` when the container does not exist.
    pub fn load(&self, id: &str) -> Result<State> {
        let data = match std::fs::read(self.state_file()) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::not_found("container", id)),
            Err(e) => return Err(Error::io(format!("read {}", self.state_file().display()), e)),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::Other(format!("corrupt state {}: {e}", self.state_file().display())))
    }
    /// Write `state.json` atomically (temp file, rename). There is no fsync on
    /// purpose: the file describes live processes, which a power loss ends
    /// anyway, and rename already keeps readers from seeing a partial file
    /// (`delete --force` removes an unreadable one). It saves milliseconds per
    /// create on hosts whose `/run` is not a tmpfs.
    pub fn save(&self, st: &State) -> Result<()> {
        use std::io::Write;
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(st).map_err(|e| Error::Other(format!("encode state: {e}")))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
        f.write_all(&data).map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, self.state_file())
            .map_err(|e| Error::io(format!("rename to {}", self.state_file().display()), e))
    }
    /// `cgroup.json`: the container's cgroup, recorded before it is made.
    pub fn cgroup_file(&self) -> PathBuf {
        self.dir.join("cgroup.json")
    }
    /// Record the cgroup `create` is about to make (before `state.json` exists).
    pub fn save_cgroup(&self, cg: &Cgroup) -> Result<()> {
        let path = self.cgroup_file();
        let data = serde_json::to_vec(cg).map_err(|e| Error::Other(format!("encode cgroup record: {e}")))?;
        std::fs::write(&path, data).map_err(|e| Error::io(format!("write {}", path.display()), e))
    }
    /// The cgroup recorded by [`StateDir::save_cgroup`], if any (an unreadable record counts as none).
    pub fn load_cgroup(&self) -> Option<Cgroup> {
        let data = std::fs::read(self.cgroup_file()).ok()?;
        serde_json::from_slice(&data).ok()
    }
    /// Remove the whole directory; fine if it is already gone.
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("remove {}", self.dir.display()), e))
            }
            _ => Ok(()),
        }
    }
}

/// Field 22 (start time) and field 3 (state) of `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split(' ');
    let state = it.next()?.chars().next()?;
    let start = it.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// True when `pid` is the same live (non-zombie) process that was recorded.
pub fn alive(pid: i32, start: u64) -> bool {
    match proc_stat(pid) {
        Some((s, st)) => s == start && st != 'Z' && st != 'X',
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn own_stat_and_atomic_save() {
        let me = std::process::id() as i32;
        let (start, st) = proc_stat(me).unwrap();
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
        assert_ne!(st, 'Z');
        let d = tempfile::tempdir().unwrap();
        let sd = StateDir::new(d.path(), "c1");
        std::fs::create_dir(&sd.dir).unwrap();
        assert!(sd.load("c1").unwrap_err().is_not_found());
        let s = State {
            oci_version: "1.2.0".into(),
            id: "c1".into(),
            pid: me,
            pid_start: start,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            annotations: HashMap::new(),
            created: "now".into(),
            cgroup: None,
            hooks: None,
            seccomp: None,
            no_new_privileges: false,
            process: None,
        };
        sd.save(&s).unwrap();
        assert_eq!(sd.load("c1").unwrap().pid, me);
        sd.remove().unwrap();
        sd.remove().unwrap();
    }
}
