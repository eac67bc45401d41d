//! A minimal driver for a runc-compatible binary, used until
//! `engine_runtime::OciRuntime` is available.

use async_trait::async_trait;
use engine_core::{
    ContainerId, CreateOptions, Error, ExecOptions, Pid, Result, Runtime, RuntimeBinary, RuntimeState, Signal, Stats,
    StdioSpec,
};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::process::Command;

pub(crate) struct RuncDriver {
    bin: RuntimeBinary,
    seq: AtomicU64,
}

impl RuncDriver {
    pub(crate) fn new(bin: RuntimeBinary) -> Self {
        RuncDriver { bin, seq: AtomicU64::new(0) }
    }

    fn cmd(&self, log: Option<&Path>) -> Command {
        let mut c = Command::new(&self.bin.path);
        if let Some(r) = &self.bin.root {
            c.arg("--root").arg(r);
        }
        if let Some(l) = log {
            c.arg("--log").arg(l).arg("--log-format").arg("json");
        }
        c.args(&self.bin.args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    fn log_path(&self) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("engine-shim-{}-{n}.log", std::process::id()))
    }

    fn err(&self, msg: String) -> Error {
        Error::Runtime { runtime: self.bin.name.clone(), message: msg }
    }

    async fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = self
            .cmd(None)
            .args(args)
            .output()
            .await
            .map_err(|e| Error::io(format!("run {}", self.bin.path.display()), e))?;
        if !out.status.success() {
            return Err(self.err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        Ok(out.stdout)
    }

    async fn run_with_stdio(&self, mut c: Command, io: StdioSpec, log: &Path) -> Result<()> {
        let conv = |f: Option<std::os::fd::OwnedFd>| f.map(Stdio::from).unwrap_or_else(Stdio::null);
        c.stdin(conv(io.stdin)).stdout(conv(io.stdout)).stderr(conv(io.stderr));
        let st = c.status().await.map_err(|e| Error::io(format!("run {}", self.bin.path.display()), e));
        let logtext = std::fs::read_to_string(log).unwrap_or_default();
        let _ = std::fs::remove_file(log);
        let st = st?;
        if st.success() {
            return Ok(());
        }
        let msgs: Vec<String> = logtext
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == "error" || v["level"] == "fatal")
            .filter_map(|v| v["msg"].as_str().map(str::to_string))
            .collect();
        Err(self.err(if msgs.is_empty() { format!("exited with {st}") } else { msgs.join(": ") }))
    }
}

fn read_pid(p: &Path) -> Result<Pid> {
    let s = std::fs::read_to_string(p).map_err(|e| Error::io(format!("read pid file {}", p.display()), e))?;
    s.trim().parse().map_err(|_| Error::invalid(format!("pid file {}", p.display()), s))
}

#[async_trait]
impl Runtime for RuncDriver {
    fn name(&self) -> &str {
        &self.bin.name
    }
    async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Pid> {
        let log = self.log_path();
        let pid_file = opts.pid_file.clone().unwrap_or_else(|| bundle.join("init.pid"));
        let mut c = self.cmd(Some(&log));
        c.arg("create").arg("--bundle").arg(bundle).arg("--pid-file").arg(&pid_file);
        if let Some(s) = &opts.stdio.console_socket {
            c.arg("--console-socket").arg(s);
        }
        if opts.no_pivot {
            c.arg("--no-pivot");
        }
        c.arg(id.as_str());
        self.run_with_stdio(c, opts.stdio, &log).await?;
        read_pid(&pid_file)
    }
    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.run(&["start", id.as_str()]).await.map(drop)
    }
    async fn state(&self, id: &ContainerId) -> Result<RuntimeState> {
        match self.run(&["state", id.as_str()]).await {
            Ok(out) => serde_json::from_slice(&out).map_err(|e| self.err(format!("bad state json: {e}"))),
            Err(Error::Runtime { message, .. }) if message.contains("does not exist") => {
                Err(Error::not_found("container", id.as_str()))
            }
            Err(e) => Err(e),
        }
    }
    async fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<()> {
        let sig = signal.number().to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.push(id.as_str());
        args.push(&sig);
        self.run(&args).await.map(drop)
    }
    async fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id.as_str());
        self.run(&args).await.map(drop)
    }
    async fn exec(&self, id: &ContainerId, process: &oci_spec::runtime::Process, opts: ExecOptions) -> Result<Pid> {
        let log = self.log_path();
        let spec = log.with_extension("process.json");
        std::fs::write(&spec, serde_json::to_vec(process).map_err(|e| Error::Other(e.to_string()))?)
            .map_err(|e| Error::io(format!("write {}", spec.display()), e))?;
        let pid_file = opts.pid_file.clone().unwrap_or_else(|| log.with_extension("pid"));
        let mut c = self.cmd(Some(&log));
        c.arg("exec").arg("--detach").arg("--process").arg(&spec).arg("--pid-file").arg(&pid_file);
        if let Some(s) = &opts.stdio.console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id.as_str());
        let r = self.run_with_stdio(c, opts.stdio, &log).await;
        let _ = std::fs::remove_file(&spec);
        r?;
        let pid = read_pid(&pid_file);
        if opts.pid_file.is_none() {
            let _ = std::fs::remove_file(&pid_file);
        }
        pid
    }
    async fn pause(&self, id: &ContainerId) -> Result<()> {
        self.run(&["pause", id.as_str()]).await.map(drop)
    }
    async fn resume(&self, id: &ContainerId) -> Result<()> {
        self.run(&["resume", id.as_str()]).await.map(drop)
    }
    async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        let out = self.run(&["events", "--stats", id.as_str()]).await?;
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| self.err(format!("bad stats json: {e}")))?;
        let d = &v["data"];
        let u = |v: &serde_json::Value| v.as_u64();
        Ok(Stats {
            cpu_usage_ns: u(&d["cpu"]["usage"]["total"]),
            cpu_user_ns: u(&d["cpu"]["usage"]["user"]),
            cpu_system_ns: u(&d["cpu"]["usage"]["kernel"]),
            memory_usage: u(&d["memory"]["usage"]["usage"]),
            memory_limit: u(&d["memory"]["usage"]["limit"]),
            memory_max_usage: u(&d["memory"]["usage"]["max"]),
            oom_kills: None,
            pids_current: u(&d["pids"]["current"]),
            pids_limit: u(&d["pids"]["limit"]).filter(|&l| l > 0),
            io_read_bytes: None,
            io_write_bytes: None,
        })
    }
    async fn ps(&self, id: &ContainerId) -> Result<Vec<Pid>> {
        let out = self.run(&["ps", "--format", "json", id.as_str()]).await?;
        serde_json::from_slice(&out).map_err(|e| self.err(format!("bad ps json: {e}")))
    }
}
