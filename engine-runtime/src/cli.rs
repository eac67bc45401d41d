//! `engine-runc`: a runc-compatible command line over [`crate::linux`]
//! (feature `cli`).
//!
//! [`main`] is the whole program: the `engine-runc` binary calls it, and so
//! can an application that serves as its own runtime (the `engine` facade's
//! `tier_main`, when started under the name `engine-runc`). It must run
//! single-threaded, before anything starts a thread: `create`, `run` and
//! `exec` clone the container's processes straight from it, after
//! re-executing the process from a read-only copy of its binary
//! ([`crate::sealed`]).

use crate::linux::{CreateOpts, ExecOpts, ExecOutcome, Runc};
use clap::{Args, Parser, Subcommand};
use engine_core::{ContainerId, Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Printed after the name, so the first line reads like runc's: `engine-runc version X`.
const VERSION_TEXT: &str = concat!("version ", env!("CARGO_PKG_VERSION"), "\ncommit: none\nspec: 1.2.0");

#[derive(Parser, Debug)]
#[command(
    name = "engine-runc",
    version = VERSION_TEXT,
    about = "A runc-compatible OCI runtime",
    disable_help_subcommand = true,
    disable_version_flag = true
)]
struct Cli {
    /// Print the version (`-v`, as runc).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Root directory for container state.
    #[arg(long, global = true, default_value = crate::linux::DEFAULT_ROOT)]
    root: PathBuf,
    /// Write errors (and debug lines) to this file instead of only stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Log debug information.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd for cgroups (not supported).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for compatibility, ignored.
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    /// Rootless mode (`spec --rootless` writes a rootless config; otherwise ignored).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the init's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra fds (from fd 3) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Container id.
    id: String,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container (its init waits for start).
    Create(CreateArgs),
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        c: CreateArgs,
        /// Detach from the container's process.
        #[arg(short, long)]
        detach: bool,
        /// Accepted for compatibility, ignored.
        #[arg(long, hide = true)]
        keep: bool,
    },
    /// Print a container's state JSON.
    State {
        /// Container id.
        id: String,
    },
    /// List containers.
    List {
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
    },
    /// Send a signal to a container's init (or all its processes).
    Kill {
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
        /// Container id.
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        /// Kill it first if it runs; succeed if it does not exist.
        #[arg(short, long)]
        force: bool,
        /// Container id.
        id: String,
    },
    /// Run a new process in a container.
    Exec(ExecArgs),
    /// Freeze a container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a container.
    Resume {
        /// Container id.
        id: String,
    },
    /// List a container's processes.
    Ps {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Container id.
        id: String,
        /// Ignored ps options.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print container events (resource statistics).
    Events {
        /// Print stats once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between stats (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Container id.
        id: String,
    },
    /// Write a default config.json.
    Spec {
        /// Bundle directory to write it in.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the features this runtime supports, as JSON.
    Features,
    /// Update a container's resource limits.
    Update(UpdateArgs),
}

#[derive(Args, Debug)]
struct UpdateArgs {
    /// A JSON file with `linux.resources` (`-` for stdin).
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long)]
    memory: Option<i64>,
    /// Memory + swap limit in bytes.
    #[arg(long = "memory-swap")]
    memory_swap: Option<i64>,
    /// Memory soft limit in bytes.
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    /// CPU CFS quota in microseconds.
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPUs to use (cpuset, e.g. 0-2,4).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use (cpuset).
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Maximum number of pids (-1 for unlimited).
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// Container id.
    id: String,
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// Path to a process.json.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Detach from the process.
    #[arg(short, long)]
    detach: bool,
    /// Allocate a pty.
    #[arg(short, long)]
    tty: bool,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Extra environment (KEY=VALUE).
    #[arg(short, long)]
    env: Vec<String>,
    /// The user: `uid`, `name`, `uid:gid` or `name:group` (names from the container's /etc/passwd and /etc/group).
    #[arg(short, long)]
    user: Option<String>,
    /// Extra capabilities.
    #[arg(short, long)]
    cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Pass N extra fds (from fd 3).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Allow exec in a paused container (the process starts frozen, as runc's).
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Container id.
    id: String,
    /// Command and arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

struct Logger {
    file: Option<std::fs::File>,
    json: bool,
    debug: bool,
}

impl Logger {
    fn new(cli: &Cli) -> Self {
        let file = cli.log.as_ref().and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
        Logger { file, json: cli.log_format == "json", debug: cli.debug }
    }
    fn line(&self, level: &str, msg: &str) -> String {
        let time = engine_core::time::format_rfc3339(std::time::SystemTime::now());
        if self.json {
            format!("{}\n", serde_json::json!({"level": level, "msg": msg, "time": time}))
        } else {
            format!("time={time:?} level={level} msg={msg:?}\n")
        }
    }
    /// An error goes to the log file (when given) and always to stderr, in
    /// runc's form: `time="..." level=error msg="..."`, or a JSON line with
    /// `"level":"error"` under `--log-format json`. Tools and people look for
    /// the word "error" in a failing command's stderr.
    fn error(&self, msg: &str) {
        let line = self.line("error", msg);
        if let Some(mut f) = self.file.as_ref() {
            let _ = f.write_all(line.as_bytes());
        }
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    fn warn(&self, msg: &str) {
        match self.file.as_ref() {
            Some(mut f) => {
                let _ = f.write_all(self.line("warning", msg).as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(self.line("warning", msg).as_bytes());
            }
        }
    }
    fn debug(&self, msg: &str) {
        if self.debug {
            if let Some(mut f) = self.file.as_ref() {
                let _ = f.write_all(self.line("debug", msg).as_bytes());
            } else {
                let _ = std::io::stderr().write_all(self.line("debug", msg).as_bytes());
            }
        }
    }
}

/// Routes the library's `tracing` events (hook warnings, debug lines) to the log.
struct LogSubscriber {
    log: &'static Logger,
    max: tracing::Level,
}

struct MessageVisitor(String);

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl tracing::Subscriber for LogSubscriber {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= self.max
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut v = MessageVisitor(String::new());
        e.record(&mut v);
        match *e.metadata().level() {
            tracing::Level::ERROR => self.log.error(&v.0),
            tracing::Level::WARN => self.log.warn(&v.0),
            _ => self.log.debug(&v.0),
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Run the `engine-runc` command line on this process's arguments, then exit
/// with its status. Call it first thing in `main`, before any thread exists.
pub fn main() -> ! {
    let cli = Cli::parse();
    // Commands that clone into a container run from a copy of this binary
    // that nothing can write (CVE-2019-5736 class; see `crate::sealed`).
    if matches!(cli.cmd, Cmd::Create(_) | Cmd::Run { .. } | Cmd::Exec(_)) {
        if let Err(e) = crate::sealed::reexec_sealed() {
            eprintln!("engine-runc: {e}");
            std::process::exit(1);
        }
    }
    let log: &'static Logger = Box::leak(Box::new(Logger::new(&cli)));
    let max = if cli.debug { tracing::Level::DEBUG } else { tracing::Level::WARN };
    let _ = tracing::subscriber::set_global_default(LogSubscriber { log, max });
    log.debug(&format!("{:?}", std::env::args().collect::<Vec<_>>()));
    let code = match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            // containerd and podman match runc's wording "does not exist" for a missing container.
            let msg = match &e {
                Error::NotFound { kind: "container", id } => format!("container does not exist: {id}"),
                _ => e.to_string(),
            };
            log.error(&msg);
            1
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn id(s: &str) -> Result<ContainerId> {
    ContainerId::new(s)
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Other(format!("encode JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

fn create_opts(c: &CreateArgs) -> CreateOpts {
    CreateOpts {
        bundle: c.bundle.clone(),
        pid_file: c.pid_file.clone(),
        console_socket: c.console_socket.clone(),
        no_pivot: c.no_pivot,
        no_new_keyring: c.no_new_keyring,
        preserve_fds: c.preserve_fds,
        listen_fds: listen_fds(),
        stdio: None,
    }
}

/// systemd's socket activation, as runc reads it: `LISTEN_FDS=n` for this
/// process (`LISTEN_PID` is our pid) hands fds 3..3+n on to the container.
fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    match std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()) {
        Some(n) if ours => n,
        _ => 0,
    }
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        return Err(Error::Unsupported("--systemd-cgroup: engine-runc manages cgroupfs directly".into()));
    }
    let runc = Runc::new(&cli.root);
    match &cli.cmd {
        Cmd::Create(c) => runc.create(&id(&c.id)?, &create_opts(c)).map(|_| 0),
        Cmd::Run { c, detach, .. } => runc.run(&id(&c.id)?, &create_opts(c), *detach),
        Cmd::Start { id: i } => runc.start(&id(i)?).map(|_| 0),
        Cmd::State { id: i } => {
            let (st, status) = runc.load(id(i)?.as_str())?;
            print_json(&runc.entry(&st, status))?;
            Ok(0)
        }
        Cmd::List { quiet, format } => {
            let list = runc.list()?;
            if *quiet {
                for e in &list {
                    println!("{}", e.id);
                }
            } else if format == "json" {
                println!("{}", serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()));
            } else {
                println!("{:<12} {:<8} {:<10} {:<40} {:<30} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
                for e in &list {
                    println!(
                        "{:<12} {:<8} {:<10} {:<40} {:<30} root",
                        e.id,
                        e.pid,
                        e.status.to_string(),
                        e.bundle.display(),
                        e.created
                    );
                }
            }
            Ok(0)
        }
        Cmd::Kill { all, id: i, signal } => {
            let sig: engine_core::Signal = signal.parse()?;
            runc.kill(&id(i)?, sig.number(), *all).map(|_| 0)
        }
        Cmd::Delete { force, id: i } => runc.delete(&id(i)?, *force).map(|_| 0),
        Cmd::Pause { id: i } => runc.pause(&id(i)?).map(|_| 0),
        Cmd::Resume { id: i } => runc.resume(&id(i)?).map(|_| 0),
        Cmd::Ps { format, id: i, .. } => {
            let pids = runc.ps(&id(i)?)?;
            if format == "json" {
                println!("{}", serde_json::to_string(&pids).unwrap_or_default());
            } else {
                println!("{:<8} CMD", "PID");
                for p in pids {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    let cmd: Vec<String> = cmd
                        .split(|b| *b == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into())
                        .collect();
                    println!("{p:<8} {}", cmd.join(" "));
                }
            }
            Ok(0)
        }
        Cmd::Events { stats, interval, id: i } => events(&runc, &id(i)?, *stats, interval),
        Cmd::Exec(e) => exec(&runc, e),
        Cmd::Spec { bundle } => spec(bundle, cli.rootless.as_deref() == Some("true")),
        Cmd::Features => {
            print_json(&features())?;
            Ok(0)
        }
        Cmd::Update(u) => update(&runc, u),
    }
}

fn update(runc: &Runc, u: &UpdateArgs) -> Result<i32> {
    use serde_json::{json, Value};
    let mut r: Value = match &u.resources {
        Some(p) => {
            let data = if p.as_os_str() == "-" {
                let mut s = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut s).map_err(|e| Error::io("read stdin", e))?;
                s
            } else {
                std::fs::read(p).map_err(|e| Error::io(format!("read {}", p.display()), e))?
            };
            serde_json::from_slice(&data).map_err(|e| Error::invalid("--resources", e.to_string()))?
        }
        None => json!({}),
    };
    let mut set = |section: &str, key: &str, v: Value| {
        if !r[section].is_object() {
            r[section] = json!({});
        }
        r[section][key] = v;
    };
    if let Some(v) = u.memory {
        set("memory", "limit", json!(v));
    }
    if let Some(v) = u.memory_swap {
        set("memory", "swap", json!(v));
    }
    if let Some(v) = u.memory_reservation {
        set("memory", "reservation", json!(v));
    }
    if let Some(v) = u.cpu_share {
        set("cpu", "shares", json!(v));
    }
    if let Some(v) = u.cpu_quota {
        set("cpu", "quota", json!(v));
    }
    if let Some(v) = u.cpu_period {
        set("cpu", "period", json!(v));
    }
    if let Some(v) = &u.cpuset_cpus {
        set("cpu", "cpus", json!(v));
    }
    if let Some(v) = &u.cpuset_mems {
        set("cpu", "mems", json!(v));
    }
    if let Some(v) = u.pids_limit {
        set("pids", "limit", json!(v));
    }
    if let Some(v) = u.blkio_weight {
        set("blockIO", "weight", json!(v));
    }
    let resources: oci_spec::runtime::LinuxResources =
        serde_json::from_value(r).map_err(|e| Error::invalid("resources", e.to_string()))?;
    runc.update(&id(&u.id)?, &resources)?;
    Ok(0)
}

fn events(runc: &Runc, id: &ContainerId, once: bool, interval: &str) -> Result<i32> {
    let every = humantime_like(interval)?;
    loop {
        let (_, status) = runc.load(id.as_str())?;
        if status == engine_core::ContainerStatus::Stopped {
            return Ok(0);
        }
        let stats = runc.stats(id)?;
        // runc's record shape, so runc-compatible consumers read it.
        let ev = crate::oci::StatsEvent::from_stats(id.as_str(), &stats);
        println!("{}", serde_json::to_string(&ev).map_err(|e| Error::Other(format!("encode stats: {e}")))?);
        let _ = std::io::stdout().flush();
        if once {
            return Ok(0);
        }
        std::thread::sleep(every);
    }
}

fn humantime_like(s: &str) -> Result<std::time::Duration> {
    let bad = || Error::invalid("--interval", format!("{s:?} is not a duration like 5s or 500ms"));
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn exec(runc: &Runc, e: &ExecArgs) -> Result<i32> {
    let cid = id(&e.id)?;
    let process: oci_spec::runtime::Process = match &e.process {
        Some(p) => {
            let data = std::fs::read(p).map_err(|err| Error::io(format!("read process {}", p.display()), err))?;
            serde_json::from_slice(&data)
                .map_err(|err| Error::invalid(format!("process {}", p.display()), err.to_string()))?
        }
        None => {
            if e.args.is_empty() {
                return Err(Error::invalid("exec", "give a command or --process"));
            }
            let (st, _) = runc.load(cid.as_str())?;
            let mut p = st.process.clone().unwrap_or_default();
            p.set_args(Some(e.args.clone()));
            p.set_terminal(Some(e.tty));
            p.set_console_size(None);
            p.set_env(Some(merge_env(p.env().as_deref().unwrap_or(&[]), &e.env)));
            if let Some(c) = &e.cwd {
                p.set_cwd(c.clone());
            }
            if let Some(u) = &e.user {
                // Names resolve through the container's own /etc/passwd and /etc/group.
                let user = crate::linux::users::resolve(st.pid, u)?;
                p.user_mut().set_uid(user.uid);
                p.user_mut().set_gid(user.gid);
                if !user.additional_gids.is_empty() {
                    let mut gids = p.user().additional_gids().clone().unwrap_or_default();
                    for g in user.additional_gids {
                        if !gids.contains(&g) {
                            gids.push(g);
                        }
                    }
                    p.user_mut().set_additional_gids(Some(gids));
                }
                if let Some(home) = user.home {
                    let mut env = p.env().clone().unwrap_or_default();
                    if !env.iter().any(|v| v.starts_with("HOME=")) {
                        env.push(format!("HOME={home}"));
                        p.set_env(Some(env));
                    }
                }
            }
            if e.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if !e.cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_default();
                for c in &e.cap {
                    let cap: oci_spec::runtime::Capability =
                        serde_json::from_value(serde_json::Value::String(c.clone()))
                            .map_err(|_| Error::invalid("--cap", format!("unknown capability {c}")))?;
                    for set in [caps.bounding().clone(), caps.effective().clone(), caps.permitted().clone()] {
                        let _ = set;
                    }
                    let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                        let mut s = s.clone().unwrap_or_default();
                        s.insert(cap);
                        Some(s)
                    };
                    caps.set_bounding(add(caps.bounding()));
                    caps.set_effective(add(caps.effective()));
                    caps.set_permitted(add(caps.permitted()));
                }
                p.set_capabilities(Some(caps));
            }
            p
        }
    };
    let opts = ExecOpts {
        pid_file: e.pid_file.clone(),
        console_socket: e.console_socket.clone(),
        detach: e.detach,
        preserve_fds: e.preserve_fds,
        ignore_paused: e.ignore_paused,
    };
    match runc.exec(&cid, &process, &opts)? {
        ExecOutcome::Started(_) => Ok(0),
        ExecOutcome::Exited(code) => Ok(code),
    }
}

/// The process spec's environment with `--env` values applied: a variable the
/// command line sets replaces the spec's (the command line wins, as in runc).
fn merge_env(spec: &[String], cli: &[String]) -> Vec<String> {
    let key = |v: &str| v.split_once('=').map(|(k, _)| k.to_string()).unwrap_or_else(|| v.to_string());
    let mut env: Vec<String> = spec.to_vec();
    for v in cli {
        let k = key(v);
        env.retain(|e| key(e) != k);
        env.push(v.clone());
    }
    env
}

fn spec(bundle: &Path, rootless: bool) -> Result<i32> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::conflict("file", path.display().to_string(), "config.json exists; remove it first"));
    }
    let spec = if rootless {
        oci_spec::runtime::Spec::rootless(nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())
    } else {
        oci_spec::runtime::Spec::default()
    };
    let data = serde_json::to_vec_pretty(&spec).map_err(|e| Error::Other(format!("encode spec: {e}")))?;
    std::fs::write(&path, data).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    Ok(0)
}

fn features() -> serde_json::Value {
    let caps: Vec<String> =
        caps::all().iter().map(|c| c.to_string()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async","atime","bind","defaults","dev","diratime","dirsync","exec","mand","noatime","nodev","nodiratime","noexec","nomand","norelatime","nostrictatime","nosuid","private","rbind","relatime","remount","ro","rprivate","rshared","rslave","runbindable","rw","shared","slave","strictatime","suid","sync","unbindable",
            "ratime","rdev","rdiratime","rexec","rnoatime","rnodev","rnodiratime","rnoexec","rnorelatime","rnostrictatime","rnosuid","rnosymfollow","rrelatime","rro","rrw","rstrictatime","rsuid","rsymfollow"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW","SCMP_ACT_ERRNO","SCMP_ACT_KILL","SCMP_ACT_KILL_PROCESS","SCMP_ACT_KILL_THREAD","SCMP_ACT_LOG","SCMP_ACT_TRACE","SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ","SCMP_CMP_GE","SCMP_CMP_GT","SCMP_CMP_LE","SCMP_CMP_LT","SCMP_CMP_MASKED_EQ","SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32","SCMP_ARCH_AARCH64","SCMP_ARCH_ARM"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"org.opencontainers.runc.version": env!("CARGO_PKG_VERSION")}
    })
}
