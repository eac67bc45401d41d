//! `engine`: the engine's command line, with docker's verbs, over engined's socket.
#![forbid(unsafe_code)]

mod attach;
mod output;
mod run;
mod term;

use attach::{pump, write_frame, Pumped};
use clap::{Parser, Subcommand};
use engine_client::models::*;
use engine_client::{Client, LogsParams};
use engine_core::{Error, Result};
use futures::StreamExt;
use output::{print_progress, short_id, table};
use std::collections::HashMap;
use tokio::io::AsyncWriteExt;

/// A container engine's command line (docker's verbs).
#[derive(Parser, Debug)]
#[command(name = "engine", version, about)]
struct Cli {
    /// Daemon socket (`unix:///path`); default `$ENGINE_HOST`, then /run/engine/engined.sock.
    #[arg(short = 'H', long = "host", global = true, env = "ENGINE_HOST")]
    host: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create and start a container.
    Run(Box<run::RunArgs>),
    /// List containers.
    Ps {
        /// Show all containers (default shows just running).
        #[arg(short, long)]
        all: bool,
        /// Only display container ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List a container's published ports, or the mapping of one.
    Port {
        /// Container.
        container: String,
        /// `80` or `80/tcp`.
        port: Option<String>,
    },
    /// Fetch the logs of a container.
    Logs {
        /// Follow log output.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show from the end ("all" for every line).
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show timestamps.
        #[arg(short, long)]
        timestamps: bool,
        /// Container.
        container: String,
    },
    /// Run a command in a running container.
    Exec {
        /// Keep stdin open.
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal.
        #[arg(short, long)]
        tty: bool,
        /// Run in the background.
        #[arg(short, long)]
        detach: bool,
        /// Set environment variables.
        #[arg(short, long = "env")]
        env: Vec<String>,
        /// Working directory.
        #[arg(short, long)]
        workdir: Option<String>,
        /// User.
        #[arg(short, long)]
        user: Option<String>,
        /// Container.
        container: String,
        /// Command and arguments.
        #[arg(trailing_var_arg = true, required = true)]
        cmd: Vec<String>,
    },
    /// Start one or more stopped containers.
    Start {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop one or more running containers.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short, long)]
        time: Option<i64>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers.
    Restart {
        /// Seconds to wait before killing.
        #[arg(short, long)]
        time: Option<i64>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill one or more running containers.
    Kill {
        /// Signal to send.
        #[arg(short, long)]
        signal: Option<String>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Block until containers stop, then print their exit codes.
    Wait {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers.
    Rm {
        /// Force the removal of a running container.
        #[arg(short, long)]
        force: bool,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List images.
    Images {
        /// Only show image ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Pull an image from a registry.
    Pull {
        /// Image reference.
        image: String,
    },
    /// Push an image to a registry.
    Push {
        /// Image reference.
        image: String,
    },
    /// Build an image from a Dockerfile (the context directory is sent as a tar).
    Build {
        /// Tag the image (repeatable).
        #[arg(short, long = "tag")]
        tag: Vec<String>,
        /// The Dockerfile's path in the context.
        #[arg(short = 'f', long)]
        file: Option<String>,
        /// A build argument, `NAME=value` (repeatable).
        #[arg(long = "build-arg")]
        build_arg: Vec<String>,
        /// Build up to this stage.
        #[arg(long)]
        target: Option<String>,
        /// Do not use the cache.
        #[arg(long)]
        no_cache: bool,
        /// Pull base images even when present.
        #[arg(long)]
        pull: bool,
        /// Print only the image id.
        #[arg(short, long)]
        quiet: bool,
        /// The context directory.
        context: std::path::PathBuf,
    },
    /// Make an image of a container's changes.
    Commit {
        /// A Dockerfile line applied to the config (repeatable).
        #[arg(short, long)]
        change: Vec<String>,
        /// Commit message.
        #[arg(short, long)]
        message: Option<String>,
        /// Author.
        #[arg(short, long)]
        author: Option<String>,
        /// Do not pause a running container.
        #[arg(long)]
        no_pause: bool,
        /// The container.
        container: String,
        /// `repo[:tag]` for the image.
        repository: Option<String>,
    },
    /// Load images from a tar archive (stdin by default).
    Load {
        /// Read from this file instead of stdin.
        #[arg(short, long)]
        input: Option<std::path::PathBuf>,
        /// Suppress the load output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save images to a tar archive (stdout by default).
    Save {
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Import a root filesystem tarball as an image.
    Import {
        /// The tar file ("-" for stdin).
        file: String,
        /// Reference for the new image.
        reference: Option<String>,
    },
    /// Create a tag TARGET that refers to SOURCE.
    Tag {
        /// Source image.
        source: String,
        /// Target reference.
        target: String,
    },
    /// Remove one or more images.
    Rmi {
        /// Force removal.
        #[arg(short, long)]
        force: bool,
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Low-level information on containers or images.
    Inspect {
        /// Containers or images.
        #[arg(required = true)]
        objects: Vec<String>,
    },
    /// Real-time events from the daemon.
    Events {
        /// Filters (`type=container`, `container=web`, `event=die`).
        #[arg(short, long = "filter")]
        filter: Vec<String>,
        /// Show events since this time (Unix seconds or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Stop at this time (Unix seconds or RFC 3339).
        #[arg(long)]
        until: Option<String>,
    },
    /// Show version information.
    Version,
    /// Display system-wide information.
    Info,
}

/// A failure with the exit status docker would use.
struct Failure {
    code: i32,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure { code: 1, message: format!("Error: {e}") }
    }
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("engine: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        let client = match &cli.host {
            Some(h) => Client::from_host(h),
            None => Client::from_env(),
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                eprintln!("engine: {e}");
                return 1;
            }
        };
        match run(client, cli.cmd).await {
            Ok(code) => code,
            Err(f) => {
                eprintln!("{}", f.message);
                f.code
            }
        }
    });
    std::process::exit(code);
}

async fn run(c: Client, cmd: Cmd) -> std::result::Result<i32, Failure> {
    let c = &c;
    match cmd {
        Cmd::Run(a) => run::run_container(c, *a).await,
        Cmd::Ps { all, quiet } => {
            let list = c.list_containers(all, &HashMap::new()).await?;
            if quiet {
                for x in &list {
                    println!("{}", short_id(&x.id));
                }
            } else {
                let rows = list
                    .iter()
                    .map(|x| {
                        let mut cmd = x.command.clone();
                        if cmd.chars().count() > 20 {
                            cmd = format!("{}…", cmd.chars().take(19).collect::<String>());
                        }
                        vec![
                            short_id(&x.id),
                            x.image.clone(),
                            format!("\"{cmd}\""),
                            output::ago(x.created),
                            x.status.clone(),
                            String::new(),
                            x.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
                        ]
                    })
                    .collect();
                table(&["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows);
            }
            Ok(0)
        }
        Cmd::Logs { follow, tail, timestamps, container } => {
            let tail = if tail == "all" {
                None
            } else {
                Some(
                    tail.parse::<usize>()
                        .map_err(|_| Failure { code: 1, message: format!("invalid --tail {tail:?}") })?,
                )
            };
            let mut s = c.logs(&container, &LogsParams { follow, timestamps, tail, ..Default::default() }).await?;
            while let Some(f) = s.next().await {
                let f = f?;
                write_frame(&f);
            }
            Ok(0)
        }
        Cmd::Exec { interactive, tty, detach, env, workdir, user, container, cmd } => {
            let body = ExecCreateBody {
                attach_stdin: Some(interactive && !detach),
                attach_stdout: Some(!detach),
                attach_stderr: Some(!detach),
                tty: Some(tty),
                env: (!env.is_empty()).then_some(env),
                working_dir: workdir,
                user,
                cmd: Some(StrSlice(cmd)),
                ..Default::default()
            };
            let id = c.exec_create(&container, &body).await?;
            if detach {
                c.exec_start_detached(&id).await?;
                return Ok(0);
            }
            let io = c.exec_start(&id, tty).await?;
            let _raw = if tty && interactive { term::RawMode::enable() } else { None };
            if tty {
                if let Some((h, w)) = term::size() {
                    let _ = c.exec_resize(&id, h, w).await;
                }
            }
            if pump(io, interactive).await? == Pumped::Detached {
                drop(_raw);
                eprintln!("\r\nread escape sequence");
                return Ok(0);
            }
            drop(_raw);
            let info = c.exec_inspect(&id).await?;
            Ok(info.exit_code.unwrap_or(0) as i32)
        }
        Cmd::Start { containers } => each(containers, |x| async move { c.start(&x).await.map(|_| x) }).await,
        Cmd::Stop { time, containers } => each(containers, |x| async move { c.stop(&x, time).await.map(|_| x) }).await,
        Cmd::Restart { time, containers } => {
            each(containers, |x| async move { c.restart(&x, time).await.map(|_| x) }).await
        }
        Cmd::Kill { signal, containers } => {
            let s = signal.clone();
            each(containers, |x| {
                let s = s.clone();
                async move { c.kill(&x, s.as_deref()).await.map(|_| x) }
            })
            .await
        }
        Cmd::Wait { containers } => {
            each(containers, |x| async move { c.wait(&x).await.map(|code| code.to_string()) }).await
        }
        Cmd::Rm { force, containers } => {
            each(containers, |x| async move { c.remove_container(&x, force).await.map(|_| x) }).await
        }
        Cmd::Images { quiet } => {
            let list = c.list_images().await?;
            if quiet {
                for i in &list {
                    println!("{}", short_id(&i.id));
                }
                return Ok(0);
            }
            let mut rows = Vec::new();
            for i in &list {
                let tags = i.repo_tags.clone().unwrap_or_default();
                let tags = if tags.is_empty() { vec!["<none>:<none>".to_string()] } else { tags };
                for t in tags {
                    let (repo, tag) = engine_client::split_tag(&t);
                    rows.push(vec![
                        repo.to_string(),
                        tag.unwrap_or("<none>").to_string(),
                        short_id(&i.id),
                        output::ago(i.created),
                        output::size(i.size as u64),
                    ]);
                }
            }
            table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows);
            Ok(0)
        }
        Cmd::Pull { image } => {
            let s = c.pull(&image, None).await?;
            print_progress(s).await?;
            println!("{image}");
            Ok(0)
        }
        Cmd::Push { image } => {
            let s = c.push(&image, None).await?;
            print_progress(s).await?;
            Ok(0)
        }
        Cmd::Build { tag, file, build_arg, target, no_cache, pull, quiet, context } => {
            let mut build_args = Vec::new();
            for a in build_arg {
                let (k, v) = a
                    .split_once('=')
                    .ok_or_else(|| Failure { code: 1, message: format!("--build-arg {a}: expected NAME=value") })?;
                build_args.push((k.to_string(), v.to_string()));
            }
            let dir = context.clone();
            let tar = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                let mut b = tar::Builder::new(Vec::new());
                b.follow_symlinks(false);
                b.append_dir_all(".", &dir)?;
                b.into_inner()
            })
            .await
            .map_err(|e| Failure { code: 1, message: e.to_string() })?
            .map_err(|e| Failure { code: 1, message: format!("read the context {}: {e}", context.display()) })?;
            let params = engine_client::BuildParams { tags: tag, dockerfile: file, target, build_args, no_cache, pull };
            let mut s = c.build(std::io::Cursor::new(tar), &params).await?;
            let mut id = String::new();
            while let Some(m) = s.next().await {
                let m = m?;
                if let Some(i) = m.aux.as_ref().and_then(|a| a["ID"].as_str()) {
                    id = i.to_string();
                }
                if let Some(text) = m.stream.filter(|_| !quiet) {
                    print!("{text}");
                }
            }
            if quiet {
                println!("{id}");
            }
            Ok(0)
        }
        Cmd::Commit { change, message, author, no_pause, container, repository } => {
            let params = engine_client::CommitParams { changes: change, comment: message, author, pause: !no_pause };
            println!("{}", c.commit(&container, repository.as_deref(), &params).await?);
            Ok(0)
        }
        Cmd::Load { input, quiet } => {
            let s = match input {
                Some(p) => {
                    let f = tokio::fs::File::open(&p)
                        .await
                        .map_err(|e| Failure { code: 1, message: format!("open {}: {e}", p.display()) })?;
                    c.load(f, quiet).await?
                }
                None => c.load(tokio::io::stdin(), quiet).await?,
            };
            print_progress(s).await?;
            Ok(0)
        }
        Cmd::Save { output, images } => {
            let names: Vec<&str> = images.iter().map(String::as_str).collect();
            let mut s = c.save(&names).await?;
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match &output {
                Some(p) => Box::new(
                    tokio::fs::File::create(p)
                        .await
                        .map_err(|e| Failure { code: 1, message: format!("create {}: {e}", p.display()) })?,
                ),
                None => {
                    if term::stdout_is_tty() {
                        return Err(Failure {
                            code: 1,
                            message: "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                        });
                    }
                    Box::new(tokio::io::stdout())
                }
            };
            while let Some(chunk) = s.next().await {
                let chunk = chunk?;
                out.write_all(&chunk).await.map_err(|e| Failure { code: 1, message: format!("write: {e}") })?;
            }
            out.flush().await.map_err(|e| Failure { code: 1, message: format!("write: {e}") })?;
            Ok(0)
        }
        Cmd::Import { file, reference } => {
            let r = reference.unwrap_or_default();
            let s = if file == "-" {
                c.import(tokio::io::stdin(), &r).await?
            } else {
                let f = tokio::fs::File::open(&file)
                    .await
                    .map_err(|e| Failure { code: 1, message: format!("open {file}: {e}") })?;
                c.import(f, &r).await?
            };
            let mut s = s;
            while let Some(m) = s.next().await {
                let m = m?;
                if let Some(st) = m.status.filter(|s| s.starts_with("sha256:")) {
                    println!("{st}");
                }
            }
            Ok(0)
        }
        Cmd::Tag { source, target } => {
            let (repo, tag) = engine_client::split_tag(&target);
            c.tag_image(&source, repo, tag.unwrap_or("latest")).await?;
            Ok(0)
        }
        Cmd::Rmi { force, images } => {
            let mut code = 0;
            for i in images {
                match c.remove_image(&i, force).await {
                    Ok(list) => {
                        for m in list {
                            for (k, v) in m {
                                println!("{k}: {v}");
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("Error: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        Cmd::Port { container, port } => {
            let info = c.inspect_container(&container).await?;
            let ports = info.network_settings.get("Ports").and_then(|p| p.as_object()).cloned().unwrap_or_default();
            let want = port.map(|p| if p.contains('/') { p } else { format!("{p}/tcp") });
            let mut lines = Vec::new();
            for (k, list) in &ports {
                if want.as_ref().is_some_and(|w| w != k) {
                    continue;
                }
                for b in list.as_array().into_iter().flatten() {
                    let ip = b["HostIp"].as_str().unwrap_or("");
                    let hp = b["HostPort"].as_str().unwrap_or("");
                    lines.push(match &want {
                        Some(_) => format!("{ip}:{hp}"),
                        None => format!("{k} -> {ip}:{hp}"),
                    });
                }
            }
            if lines.is_empty() {
                if let Some(w) = want {
                    eprintln!("Error: No public port '{w}' published for {container}");
                    return Ok(1);
                }
            }
            for l in lines {
                println!("{l}");
            }
            Ok(0)
        }
        Cmd::Inspect { objects } => {
            let mut out = Vec::new();
            let mut code = 0;
            for o in objects {
                match c.inspect_container(&o).await {
                    Ok(x) => out.push(serde_json::to_value(x).unwrap_or_default()),
                    Err(e) if e.is_not_found() => match c.inspect_image(&o).await {
                        Ok(x) => out.push(serde_json::to_value(x).unwrap_or_default()),
                        Err(e) if e.is_not_found() => {
                            eprintln!("Error: No such object: {o}");
                            code = 1;
                        }
                        Err(e) => return Err(e.into()),
                    },
                    Err(e) => return Err(e.into()),
                }
            }
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            Ok(code)
        }
        Cmd::Events { filter, since, until } => {
            let mut filters: HashMap<String, Vec<String>> = HashMap::new();
            for f in filter {
                let (k, v) = f
                    .split_once('=')
                    .ok_or_else(|| Failure { code: 1, message: format!("bad filter {f:?}: want key=value") })?;
                filters.entry(k.to_string()).or_default().push(v.to_string());
            }
            let mut s = c.events_between(&filters, since.as_deref(), until.as_deref()).await?;
            while let Some(e) = s.next().await {
                let e = e?;
                let mut attrs: Vec<String> = e.actor.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                attrs.sort();
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(e.time_nano.max(0) as u64);
                println!(
                    "{} {} {} {} ({})",
                    engine_core::time::format_rfc3339(t),
                    e.typ,
                    e.action,
                    e.actor.id,
                    attrs.join(", ")
                );
            }
            Ok(0)
        }
        Cmd::Version => {
            let v = c.version().await?;
            println!(
                "Client:\n Version:\t{}\n API version:\t{}",
                env!("CARGO_PKG_VERSION"),
                engine_client::API_VERSION
            );
            println!(
                "\nServer: {}\n Engine:\n  Version:\t{}\n  API version:\t{} (minimum version {})\n  OS/Arch:\t{}/{}\n  Kernel:\t{}",
                v.platform.name, v.version, v.api_version, v.min_api_version, v.os, v.arch, v.kernel_version
            );
            Ok(0)
        }
        Cmd::Info => {
            let i = c.info().await?;
            println!("Server:");
            println!(" Containers: {}", i.containers);
            println!("  Running: {}", i.containers_running);
            println!("  Paused: {}", i.containers_paused);
            println!("  Stopped: {}", i.containers_stopped);
            println!(" Images: {}", i.images);
            println!(" Server Version: {}", i.server_version);
            println!(" Storage Driver: {}", i.driver);
            println!(" Cgroup Version: {}", i.cgroup_version);
            let mut rts: Vec<&String> = i.runtimes.keys().collect();
            rts.sort();
            println!(" Runtimes: {}", rts.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "));
            println!(" Default Runtime: {}", i.default_runtime);
            println!(" Kernel Version: {}", i.kernel_version);
            println!(" Operating System: {}", i.operating_system);
            println!(" CPUs: {}", i.ncpu);
            println!(" Total Memory: {}", output::size(i.mem_total.max(0) as u64));
            println!(" Name: {}", i.name);
            println!(" ID: {}", i.id);
            println!(" Engine Root Dir: {}", i.docker_root_dir);
            Ok(0)
        }
    }
}

/// Apply `f` to each name, printing its result or error, as docker does.
async fn each<F, Fut>(names: Vec<String>, f: F) -> std::result::Result<i32, Failure>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    let mut code = 0;
    for n in names {
        match f(n).await {
            Ok(out) => println!("{out}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}
