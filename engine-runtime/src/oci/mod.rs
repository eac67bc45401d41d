//! [`OciRuntime`]: the [`Runtime`] trait over any runc-compatible command line
//! (this crate's `engine-runc`, runc, crun, youki, a Kata-style runtime), and
//! [`LinuxRuntime`], the default: `OciRuntime` driving `engine-runc`.
//!
//! Every operation is one short-lived runtime process started with
//! [`tokio::process`]: `--root R --log L --log-format json <command> ...`.
//! The async caller never forks into container-building code; the runtime
//! binary does that in its own single-threaded process and exits.
//!
//! - `create` and `exec` hand the caller's [`StdioSpec`] file descriptors to
//!   the runtime as its stdin, stdout and stderr; the container's process
//!   inherits them. With a terminal, the runtime sends the pty master to
//!   `console_socket`.
//! - A failure is [`Error::Runtime`] carrying the runtime's own message, read
//!   from its JSON log (the last `error` record's `msg`) or its stderr; a
//!   container that does not exist is [`Error::NotFound`], an id in use
//!   [`Error::Conflict`].
//! - `stats` reads runc's `events --stats` record ([`StatsEvent`]), the format
//!   `engine-runc` emits too.
//!
//! ```no_run
//! # async fn demo() -> engine_core::Result<()> {
//! use engine_core::{ContainerId, CreateOptions, Runtime};
//! use engine_runtime::OciRuntime;
//! let runc = OciRuntime::runc()?.root("/run/my-engine/runc");
//! let id = ContainerId::new("web")?;
//! let pid = runc.create(&id, "/srv/bundles/web".as_ref(), CreateOptions::default()).await?;
//! runc.start(&id).await?;
//! println!("{} runs {id} as pid {pid}", Runtime::name(&runc));
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use engine_core::{
    ContainerId, CreateOptions, Error, ExecOptions, IoContext, Pid, Result, Runtime, RuntimeBinary, RuntimeState,
    Signal, Stats, StdioSpec,
};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A runc-compatible runtime binary driven through its command line.
#[derive(Clone, Debug)]
pub struct OciRuntime {
    name: String,
    binary: PathBuf,
    pub(crate) root: Option<PathBuf>,
    pub(crate) args: Vec<String>,
    timeout: Duration,
}

pub use engine_core::binary::find_in_path;

mod stats;
pub use stats::{
    parse_stats_record, BlkioEntry, BlkioStats, CpuStats, CpuUsage, MemoryEntry, MemoryStats, PidsStats, StatsData,
    StatsEvent,
};
// `LinuxRuntime` lives in its own module; this path stays for compatibility.
pub use crate::linux_runtime::LinuxRuntime;

impl OciRuntime {
    /// A runtime at `binary` (a path, or a bare name looked up in `PATH` when it runs).
    /// Its name defaults to the binary's file name.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        let binary = binary.into();
        let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "oci".into());
        OciRuntime { name, binary, root: None, args: Vec::new(), timeout: Duration::from_secs(120) }
    }

    /// The runtime named `name`, found in `PATH`.
    pub fn find(name: &str) -> Result<Self> {
        find_in_path(name)
            .map(OciRuntime::new)
            .ok_or_else(|| Error::not_found("runtime binary", format!("{name} (not in PATH)")))
    }

    /// runc, found in `PATH`.
    pub fn runc() -> Result<Self> {
        Self::find("runc")
    }

    /// crun, found in `PATH`.
    pub fn crun() -> Result<Self> {
        Self::find("crun")
    }

    /// The runtime a shim was told to use.
    pub fn from_binary(b: &RuntimeBinary) -> Self {
        let mut rt = OciRuntime::new(&b.path).name(b.name.clone());
        rt.root = b.root.clone();
        rt.args = b.args.clone();
        rt
    }

    /// Set the name used in messages. (The [`Runtime::name`] getter is reached
    /// as `Runtime::name(&rt)` on the concrete type.)
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Set the state root (`--root`); by default the runtime's own (`/run/runc`, ...).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Add a global argument placed before every command (`--systemd-cgroup`, ...).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// How long one runtime command may take before it is killed (default 2 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The state root, when set.
    pub fn root_dir(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// As a [`RuntimeBinary`] (what a shim is told).
    pub fn to_binary(&self) -> RuntimeBinary {
        RuntimeBinary::default()
            .name(self.name.clone())
            .path(self.binary.clone())
            .root(self.root.clone())
            .args(self.args.clone())
    }

    /// Run one command. With `stdio`, the runtime (and the container process
    /// it starts) gets those descriptors and nothing is captured; without,
    /// stdout is returned and stderr kept for error messages.
    async fn call(&self, id: &str, args: Vec<OsString>, stdio: Option<StdioSpec>) -> Result<Vec<u8>> {
        let command = args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
        let log = tempfile::Builder::new()
            .prefix(".oci-runtime-log-")
            .suffix(".json")
            .tempfile()
            .context(|| "creating a temporary runtime log file".to_string())?;
        let mut cmd = tokio::process::Command::new(&self.binary);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        cmd.arg("--log").arg(log.path()).arg("--log-format").arg("json");
        cmd.args(&self.args).args(&args);
        cmd.kill_on_drop(true);
        let captured = stdio.is_none();
        match stdio {
            Some(s) => {
                cmd.stdin(s.stdin.map(Stdio::from).unwrap_or_else(Stdio::null));
                cmd.stdout(s.stdout.map(Stdio::from).unwrap_or_else(Stdio::null));
                cmd.stderr(s.stderr.map(Stdio::from).unwrap_or_else(Stdio::null));
            }
            None => {
                cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        tracing::debug!(runtime = %self.name, ?args, "runtime command");
        let child = cmd.spawn().map_err(|e| Error::Runtime {
            runtime: self.name.clone(),
            message: format!("cannot run {}: {e}", self.binary.display()),
        })?;
        // Drop our copies of the stdio descriptors now that the child has them.
        drop(cmd);
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| Error::io(format!("waiting for {} {command}", self.name), e))?,
            Err(_) => {
                return Err(Error::Timeout { what: format!("{} {command} {id}", self.name), after: self.timeout })
            }
        };
        if out.status.success() {
            return Ok(out.stdout);
        }
        let logged = std::fs::read_to_string(log.path()).unwrap_or_default();
        let mut message = error_from_log(&logged).unwrap_or_default();
        if message.is_empty() && captured {
            message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        }
        if message.is_empty() {
            message = format!("exited with {}", out.status);
        }
        Err(classify(&self.name, &command, id, message))
    }

    /// Parse `state` output.
    fn parse_state(&self, id: &str, out: &[u8]) -> Result<RuntimeState> {
        serde_json::from_slice(out).map_err(|e| Error::Runtime {
            runtime: self.name.clone(),
            message: format!("state {id}: unreadable state JSON ({e}): {}", String::from_utf8_lossy(out).trim()),
        })
    }
}

/// The runtime's own message from a `--log-format json` log: the last record
/// at level `error` or `fatal` (runc and crun use `msg`); plain-text logs give
/// their last line.
pub fn error_from_log(log: &str) -> Option<String> {
    let mut last_error = None;
    let mut last_line = None;
    for line in log.lines().map(str::trim).filter(|l| !l.is_empty()) {
        last_line = Some(line);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("");
            if matches!(level, "error" | "fatal" | "panic") {
                if let Some(m) = v.get("msg").or_else(|| v.get("message")).and_then(|m| m.as_str()) {
                    last_error = Some(m.to_string());
                }
            }
        }
    }
    last_error.or_else(|| last_line.filter(|l| !l.starts_with('{')).map(|l| l.to_string()))
}

/// Turn a runtime's failure into the engine's error kinds.
fn classify(runtime: &str, command: &str, id: &str, message: String) -> Error {
    let lower = message.to_ascii_lowercase();
    let missing = lower.contains("does not exist")
        || lower.contains("no such container")
        || lower.contains("container not found")
        || (lower.contains("no such file or directory")
            && (lower.contains("/status")
                || lower.contains("state.json")
                || message.contains(&format!("/{id}'"))
                || message.contains(&format!("/{id}`"))));
    if missing && command != "create" && command != "run" {
        return Error::not_found("container", id);
    }
    if command == "create"
        && (lower.contains("already exists") || lower.contains("id exists") || lower.contains("already in use"))
    {
        return Error::conflict("container", id, message);
    }
    Error::Runtime { runtime: runtime.to_string(), message: format!("{command} {id}: {message}") }
}

#[async_trait]
impl Runtime for OciRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Pid> {
        let tmp = tempfile::Builder::new()
            .prefix(".oci-runtime-")
            .tempdir()
            .context(|| "creating a temporary directory for the pid file".to_string())?;
        let pid_file = opts.pid_file.clone().unwrap_or_else(|| tmp.path().join("init.pid"));
        let mut args: Vec<OsString> = vec!["create".into(), "--bundle".into(), bundle.into(), "--pid-file".into()];
        args.push(pid_file.clone().into());
        if let Some(sock) = &opts.stdio.console_socket {
            args.push("--console-socket".into());
            args.push(sock.into());
        }
        if opts.no_pivot {
            args.push("--no-pivot".into());
        }
        args.push(id.as_str().into());
        self.call(id.as_str(), args, Some(opts.stdio)).await?;
        read_pid(&pid_file, &self.name, id.as_str())
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.call(id.as_str(), vec!["start".into(), id.as_str().into()], None).await.map(|_| ())
    }

    async fn state(&self, id: &ContainerId) -> Result<RuntimeState> {
        let out = self.call(id.as_str(), vec!["state".into(), id.as_str().into()], None).await?;
        self.parse_state(id.as_str(), &out)
    }

    async fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<()> {
        let mut args: Vec<OsString> = vec!["kill".into()];
        if all {
            args.push("--all".into());
        }
        args.push(id.as_str().into());
        args.push(signal.number().to_string().into());
        self.call(id.as_str(), args, None).await.map(|_| ())
    }

    async fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        let mut args: Vec<OsString> = vec!["delete".into()];
        if force {
            args.push("--force".into());
        }
        args.push(id.as_str().into());
        match self.call(id.as_str(), args, None).await {
            Err(e) if force && e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    async fn exec(&self, id: &ContainerId, process: &oci_spec::runtime::Process, opts: ExecOptions) -> Result<Pid> {
        let tmp = tempfile::Builder::new()
            .prefix(".oci-runtime-exec-")
            .tempdir()
            .context(|| "creating a temporary directory for the exec process".to_string())?;
        let process_file = tmp.path().join("process.json");
        let json = serde_json::to_vec(process).map_err(|e| Error::invalid("exec process", e.to_string()))?;
        std::fs::write(&process_file, json).context(|| format!("writing {}", process_file.display()))?;
        let pid_file = opts.pid_file.clone().unwrap_or_else(|| tmp.path().join("exec.pid"));
        let mut args: Vec<OsString> = vec![
            "exec".into(),
            "--process".into(),
            process_file.into(),
            "--detach".into(),
            "--pid-file".into(),
            pid_file.clone().into(),
        ];
        if let Some(sock) = &opts.stdio.console_socket {
            args.push("--console-socket".into());
            args.push(sock.into());
        }
        args.push(id.as_str().into());
        self.call(id.as_str(), args, Some(opts.stdio)).await?;
        read_pid(&pid_file, &self.name, id.as_str())
    }

    async fn pause(&self, id: &ContainerId) -> Result<()> {
        self.call(id.as_str(), vec!["pause".into(), id.as_str().into()], None).await.map(|_| ())
    }

    async fn resume(&self, id: &ContainerId) -> Result<()> {
        self.call(id.as_str(), vec!["resume".into(), id.as_str().into()], None).await.map(|_| ())
    }

    async fn update(&self, id: &ContainerId, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let tmp = tempfile::Builder::new()
            .prefix(".oci-runtime-update-")
            .tempdir()
            .context(|| "creating a temporary directory for the resources file".to_string())?;
        let file = tmp.path().join("resources.json");
        let json = serde_json::to_vec(resources).map_err(|e| Error::invalid("resources", e.to_string()))?;
        std::fs::write(&file, json).context(|| format!("writing {}", file.display()))?;
        let args = vec!["update".into(), "--resources".into(), file.into(), id.as_str().into()];
        self.call(id.as_str(), args, None).await.map(|_| ())
    }

    async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        let args = vec!["events".into(), "--stats".into(), id.as_str().into()];
        let out = match self.call(id.as_str(), args, None).await {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Err(e),
            Err(e) => {
                // Runtimes without `events` (crun): read the cgroup named in the bundle's config.
                match self.stats_from_cgroup(id).await {
                    Ok(Some(s)) => return Ok(s),
                    _ => return Err(e),
                }
            }
        };
        let text = String::from_utf8_lossy(&out);
        let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        parse_stats_record(line).map_err(|e| Error::Runtime {
            runtime: self.name.clone(),
            message: format!("events --stats {id}: unreadable stats record ({e}): {line}"),
        })
    }

    async fn ps(&self, id: &ContainerId) -> Result<Vec<Pid>> {
        let args = vec!["ps".into(), "--format".into(), "json".into(), id.as_str().into()];
        let out = self.call(id.as_str(), args, None).await?;
        let pids: Option<Vec<Pid>> = serde_json::from_slice(&out).map_err(|e| Error::Runtime {
            runtime: self.name.clone(),
            message: format!("ps {id}: unreadable pid list ({e}): {}", String::from_utf8_lossy(&out).trim()),
        })?;
        Ok(pids.unwrap_or_default())
    }
}

impl OciRuntime {
    async fn stats_from_cgroup(&self, id: &ContainerId) -> Result<Option<Stats>> {
        let state = self.state(id).await?;
        let config = state.bundle.join("config.json");
        let spec: oci_spec::runtime::Spec = match std::fs::read(&config) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| Error::invalid(config.display().to_string(), e.to_string()))?
            }
            Err(_) => return Ok(None),
        };
        let Some(path) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) else { return Ok(None) };
        let path = path.to_string_lossy().into_owned();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || crate::cgroups::Cgroup::open(Some(&path), &id)?.stats().map(Some))
            .await
            .map_err(|e| Error::Other(format!("stats task failed: {e}")))?
    }
}

fn read_pid(pid_file: &Path, runtime: &str, id: &str) -> Result<Pid> {
    let text = std::fs::read_to_string(pid_file).map_err(|e| Error::Runtime {
        runtime: runtime.to_string(),
        message: format!("{id}: no pid file {} after success: {e}", pid_file.display()),
    })?;
    text.trim().parse().map_err(|_| Error::Runtime {
        runtime: runtime.to_string(),
        message: format!("{id}: pid file {} holds {:?}", pid_file.display(), text.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_messages() {
        let runc = "{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"t\"}\n";
        assert_eq!(error_from_log(runc).as_deref(), Some("container does not exist"));
        let crun =
            "{\"msg\":\"error opening file `/run/crun/nope/status`: No such file or directory\",\"level\":\"error\"}\n";
        assert!(error_from_log(crun).unwrap().contains("No such file"));
        assert_eq!(error_from_log("plain failure\n").as_deref(), Some("plain failure"));
        assert_eq!(error_from_log(""), None);
    }

    #[test]
    fn classification() {
        assert!(classify("runc", "state", "a", "container does not exist".into()).is_not_found());
        let crun = "error opening file `/run/crun/a/status`: No such file or directory".to_string();
        assert!(classify("crun", "kill", "a", crun).is_not_found());
        let crun = "cannot open directory '/run/crun/a': No such file or directory".to_string();
        assert!(classify("crun", "delete", "a", crun).is_not_found());
        assert!(classify("runc", "create", "a", "container with id exists: a".into()).is_conflict());
        let e = classify("runc", "create", "a", "exec: \"/nope\": stat /nope: no such file or directory".into());
        assert!(matches!(e, Error::Runtime { .. }), "{e}");
        assert!(e.to_string().contains("/nope") && e.to_string().contains("create a"), "{e}");
    }

    #[tokio::test]
    async fn missing_binary_and_timeout_are_named() {
        let id = ContainerId::new("c1").unwrap();
        let rt = OciRuntime::new("/no/such/runtime");
        let e = rt.state(&id).await.unwrap_err();
        assert!(matches!(e, Error::Runtime { .. }) && e.to_string().contains("/no/such/runtime"), "{e}");
        // A runtime that hangs is killed after the timeout.
        let dir = tempfile::tempdir().unwrap();
        let slow = dir.path().join("slow-runtime");
        std::fs::write(&slow, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let rt = OciRuntime::new(&slow).timeout(Duration::from_millis(200));
        let t = std::time::Instant::now();
        let e = rt.start(&id).await.unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }) && e.to_string().contains("slow-runtime start c1"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
        // A runtime's stderr, when it logs nothing, is the message.
        let loud = dir.path().join("loud-runtime");
        std::fs::write(&loud, "#!/bin/sh\necho 'bad things happened' >&2; exit 1\n").unwrap();
        std::fs::set_permissions(&loud, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let e = OciRuntime::new(&loud).pause(&id).await.unwrap_err();
        assert_eq!(e.to_string(), "runtime loud-runtime failed: pause c1: bad things happened");
    }

    #[test]
    fn builder_and_lookup() {
        let rt = OciRuntime::new("/opt/bin/youki").root("/run/y").arg("--systemd-cgroup");
        assert_eq!(Runtime::name(&rt), "youki");
        assert_eq!(rt.root_dir(), Some(Path::new("/run/y")));
        let b = rt.to_binary();
        let again = OciRuntime::from_binary(&b);
        assert_eq!(again.args, ["--systemd-cgroup"]);
        assert!(OciRuntime::find("no-such-runtime-xyz").unwrap_err().is_not_found());
    }
}
