//! The `engine-vm` command line: runc's commands over [`VmRuntime`], so any
//! shim that drives an OCI runtime binary drives VMs; plus the internal
//! `monitor` and `exec-relay` roles.

use crate::VmRuntime;
use engine_core::{ContainerId, CreateOptions, Error, ExecOptions, Result, Runtime, Signal, StdioSpec};
use std::io::Write;
use std::path::PathBuf;

/// Default state root when `--root` is not given.
pub const DEFAULT_ROOT: &str = "/run/engine-vm";

struct Args {
    rest: Vec<String>,
}

impl Args {
    /// Take `--name value` (or `--name=value`) out of the arguments.
    fn value(&mut self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        if let Some(i) = self.rest.iter().position(|a| a.starts_with(&prefix)) {
            return Some(self.rest.remove(i)[prefix.len()..].to_string());
        }
        let i = self.rest.iter().position(|a| a == name)?;
        self.rest.remove(i);
        (i < self.rest.len()).then(|| self.rest.remove(i))
    }

    fn flag(&mut self, name: &str) -> bool {
        match self.rest.iter().position(|a| a == name) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }

    fn positional(&mut self, what: &str) -> Result<String> {
        if self.rest.is_empty() {
            return Err(Error::invalid("arguments", format!("missing {what}")));
        }
        Ok(self.rest.remove(0))
    }
}

fn own_stdio() -> StdioSpec {
    let dup = |fd: i32| nix::unistd::dup(unsafe_borrow(fd)).ok();
    StdioSpec { stdin: dup(0), stdout: dup(1), stderr: dup(2), console_socket: None }
}

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: fds 0-2 stay open for the life of the process.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Run the command line; never returns.
pub fn main() -> ! {
    let mut args = Args { rest: std::env::args().skip(1).collect() };
    if args.flag("--version") || args.flag("-v") {
        println!("engine-vm {}", env!("CARGO_PKG_VERSION"));
        std::process::exit(0);
    }
    let root = PathBuf::from(args.value("--root").unwrap_or_else(|| DEFAULT_ROOT.into()));
    let log = args.value("--log").map(PathBuf::from);
    let _ = args.value("--log-format");
    let _ = args.flag("--debug");
    let _ = args.flag("--systemd-cgroup");
    let code = match dispatch(root, &mut args) {
        Ok(code) => code,
        Err(e) => {
            let msg = e.to_string();
            if let Some(log) = log {
                if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                    let _ = writeln!(f, "{}", serde_json::json!({"level": "error", "msg": msg}));
                }
            }
            eprintln!("engine-vm: {msg}");
            1
        }
    };
    std::process::exit(code)
}

fn dispatch(root: PathBuf, args: &mut Args) -> Result<i32> {
    let cmd = args.positional("command")?;
    match cmd.as_str() {
        "monitor" => return Ok(crate::monitor::run(std::path::Path::new(&args.positional("state dir")?))),
        "exec-relay" => {
            let state = args.positional("state dir")?;
            let process = args.positional("process file")?;
            return Ok(crate::monitor::relay(std::path::Path::new(&state), std::path::Path::new(&process)));
        }
        _ => {}
    }
    let rt = VmRuntime::new(&root).binary(std::env::current_exe().map_err(|e| Error::io("current exe", e))?);
    let tokio =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::io("event loop", e))?;
    tokio.block_on(async move {
        match cmd.as_str() {
            "create" | "run" => {
                let bundle = PathBuf::from(args.value("--bundle").or(args.value("-b")).unwrap_or_else(|| ".".into()));
                let pid_file = args.value("--pid-file").map(PathBuf::from);
                let console = args.value("--console-socket").map(PathBuf::from);
                args.flag("--no-pivot");
                let id = ContainerId::new(args.positional("container id")?)?;
                let mut stdio = own_stdio();
                stdio.console_socket = console;
                rt.create(&id, &bundle, CreateOptions::default().stdio(stdio).no_pivot(false).pid_file(pid_file))
                    .await?;
                if cmd == "run" {
                    rt.start(&id).await?;
                }
                Ok(0)
            }
            "start" => rt.start(&ContainerId::new(args.positional("container id")?)?).await.map(|_| 0),
            "state" => {
                let st = rt.state(&ContainerId::new(args.positional("container id")?)?).await?;
                println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
                Ok(0)
            }
            "kill" => {
                let all = args.flag("--all") || args.flag("-a");
                let id = ContainerId::new(args.positional("container id")?)?;
                let sig: Signal = args.rest.first().map(String::as_str).unwrap_or("SIGTERM").parse()?;
                rt.kill(&id, sig, all).await.map(|_| 0)
            }
            "delete" => {
                let force = args.flag("--force") || args.flag("-f");
                let id = ContainerId::new(args.positional("container id")?)?;
                match rt.delete(&id, force).await {
                    Err(e) if force && e.is_not_found() => Ok(0),
                    r => r.map(|_| 0),
                }
            }
            "exec" => {
                let process = args.value("--process").or(args.value("-p"));
                let pid_file = args.value("--pid-file").map(PathBuf::from);
                let console = args.value("--console-socket").map(PathBuf::from);
                args.flag("--detach");
                args.flag("-d");
                let id = ContainerId::new(args.positional("container id")?)?;
                let process = process.ok_or_else(|| Error::invalid("exec", "--process <file> is required"))?;
                let data = std::fs::read(&process).map_err(|e| Error::io(format!("reading {process}"), e))?;
                let p: oci_spec::runtime::Process =
                    serde_json::from_slice(&data).map_err(|e| Error::invalid(process.clone(), e.to_string()))?;
                let mut stdio = own_stdio();
                stdio.console_socket = console;
                rt.exec(&id, &p, ExecOptions::default().stdio(stdio).pid_file(pid_file)).await.map(|_| 0)
            }
            "ps" => {
                args.value("--format");
                let pids = rt.ps(&ContainerId::new(args.positional("container id")?)?).await?;
                println!("{}", serde_json::to_string(&pids).unwrap_or_default());
                Ok(0)
            }
            "events" => {
                // `events --stats <id>`: one record in runc's shape, the figures flat.
                if !args.flag("--stats") {
                    return Err(Error::Unsupported(
                        "events without --stats (the vm runtime reports no event stream)".into(),
                    ));
                }
                let id = ContainerId::new(args.positional("container id")?)?;
                let stats = rt.stats(&id).await?;
                println!("{}", serde_json::json!({"type": "stats", "id": id.as_str(), "data": stats}));
                Ok(0)
            }
            "pause" => rt.pause(&ContainerId::new(args.positional("container id")?)?).await.map(|_| 0),
            "resume" => rt.resume(&ContainerId::new(args.positional("container id")?)?).await.map(|_| 0),
            other => Err(Error::invalid("command", format!("unknown command {other:?}"))),
        }
    })
}
