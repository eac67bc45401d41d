//! `engined`: the engine's Docker-compatible daemon (dockerd's role).
//!
//! Serves the Docker Engine API on unix sockets, with the lifecycle manager
//! in-process (default) or in a separate `engine-lifecycled` (`--lifecycle`).
//! Containers outlive it: SIGKILL it, start it again on the same data root
//! and socket, and `docker ps` shows them running.

use clap::Parser;
use engine_core::{Error, ImageStore, LifecycleManager, Result};
use engine_daemon::{AccessPolicy, Daemon, DaemonConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The engine's Docker-compatible daemon.
#[derive(Parser, Debug)]
#[command(name = "engined", version)]
struct Args {
    /// Socket to listen on, `unix:///path` or `tcp://host:port` (the latter
    /// only with `--tlsverify` or `--tls`) (repeatable).
    #[arg(short = 'H', long = "host", value_name = "unix:///path|tcp://host:port")]
    hosts: Vec<String>,
    /// Serve TCP sockets over TLS (any client that completes the handshake
    /// is served: prefer --tlsverify).
    #[arg(long)]
    tls: bool,
    /// Serve TCP sockets over TLS to clients whose certificate --tlscacert signed.
    #[arg(long)]
    tlsverify: bool,
    /// The CA that signs client certificates (PEM).
    #[arg(long, value_name = "PATH")]
    tlscacert: Option<PathBuf>,
    /// The server's certificate (PEM).
    #[arg(long, value_name = "PATH")]
    tlscert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, value_name = "PATH")]
    tlskey: Option<PathBuf>,
    /// Persistent state: images, containers, logs.
    #[arg(long, default_value = "/var/lib/engine")]
    data_root: PathBuf,
    /// Runtime state: sockets and the pid file.
    #[arg(long, default_value = "/run/engine")]
    exec_root: PathBuf,
    /// Group that owns the socket; its members may use it (root always may).
    #[arg(short = 'G', long, default_value = "docker")]
    group: String,
    /// Extra user ids allowed on the socket (repeatable).
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uids: Vec<u32>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
    /// Runtime used when a container names none.
    #[arg(long)]
    default_runtime: Option<String>,
    /// Add a runtime: NAME=PATH (repeatable).
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    add_runtimes: Vec<String>,
    /// Use a separate engine-lifecycled at unix:///path instead of the
    /// in-process manager (start it with `--images <data-root>/images`).
    #[arg(long, value_name = "unix:///path")]
    lifecycle: Option<String>,
    /// The pid file (default: EXEC_ROOT/engined.pid).
    #[arg(short = 'p', long)]
    pidfile: Option<PathBuf>,
    /// The cgroup containers' cgroups are made under.
    #[arg(long, default_value = "/engine")]
    cgroup_parent: String,
    /// Machine memory (MiB) a create leaves free: while the kernel's
    /// MemAvailable is under it, creates are refused with an error naming
    /// both (default 64; 0: no check). Not with --lifecycle.
    #[arg(long, value_name = "MIB")]
    memory_reserve: Option<u64>,
    /// The network driver: `bridge` (docker's default networking: a bridge,
    /// NAT, published ports, user networks), `cni` (CNI plugins run for the
    /// networks of --cni-conf-dir) or `none` (containers get `none`, `host`
    /// or `container:` networking only; `-p` is refused). With
    /// `--lifecycle`, the driver is engine-lifecycled's (started with the
    /// same `--network-driver` and its options): engined reaches it through
    /// the lifecycle service.
    #[arg(long, value_name = "bridge|cni|none", default_value = "none")]
    network_driver: String,
    /// CNI (`--cni-conf-dir`, where `docker network create` writes, and
    /// `--cni-bin-dir`).
    #[command(flatten)]
    cni: engine_network::cli::CniArgs,
    /// The network namespace the bridge driver treats as the host's
    /// (bridges, host-side veths, rules, sysctls and published ports live
    /// there); default: engined's own. Tests pass one of their own, e.g.
    /// `/run/netns/x` from `ip netns add x`.
    #[arg(long, value_name = "PATH")]
    network_host_netns: Option<PathBuf>,
    /// The default log driver of containers (`json-file`, `local`, `none`,
    /// or a log plugin's name), as dockerd's `--log-driver`.
    #[arg(long, value_name = "DRIVER", default_value = "json-file")]
    log_driver: String,
    /// A default log driver option KEY=VALUE (repeatable), as dockerd's `--log-opt`.
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    log_opts: Vec<String>,
    /// The bridge of the default `bridge` network (default `engine0`).
    #[arg(long, value_name = "NAME")]
    bridge_name: Option<String>,
    #[command(flatten)]
    plugins: engine_plugin::cli::PluginArgs,
    /// An authorization plugin that sees every API request and response
    /// and may deny them (repeatable; asked in order). engined refuses to
    /// start when one cannot be found and activated.
    #[arg(long = "authorization-plugin", value_name = "NAME")]
    authorization_plugins: Vec<String>,
    /// The storage driver that makes containers' root filesystems:
    /// `overlay2` (overlay mounts, the default) or `vfs` (plain copies, for
    /// hosts without overlayfs). With `--lifecycle`, start
    /// `engine-lifecycled` with the same `--storage-driver`.
    #[arg(short = 's', long, value_name = "overlay2|vfs", default_value = "overlay2")]
    storage_driver: String,
}

/// The network driver `--network-driver` asks for, opened on
/// `<data-root>/network`; the default network is made at once.
async fn network_driver(args: &Args) -> Result<Option<Arc<dyn engine_core::NetworkDriver>>> {
    if args.lifecycle.is_some() && args.network_driver != "none" {
        // engine-lifecycled's driver, reached once the manager is connected.
        if args.network_host_netns.is_some()
            || args.bridge_name.is_some()
            || args.network_driver != "bridge" && args.network_driver != "cni"
        {
            return Err(Error::invalid(
                "--network-driver/--network-host-netns/--bridge-name",
                "with --lifecycle, the network driver is engine-lifecycled's: give it --network-driver and its \
                 options, and engined only --network-driver bridge|cni",
            ));
        }
        return Ok(None);
    }
    match args.network_driver.as_str() {
        "none" => {
            if args.network_host_netns.is_some() || args.bridge_name.is_some() {
                return Err(Error::invalid(
                    "--network-host-netns/--bridge-name",
                    "only with --network-driver bridge or cni",
                ));
            }
            Ok(None)
        }
        "bridge" => {
            let mut b = engine_network::BridgeDriver::builder(args.data_root.join("network"));
            if let Some(ns) = &args.network_host_netns {
                b = b.host_netns(ns);
            }
            if let Some(n) = &args.bridge_name {
                b = b.default_bridge(n);
            }
            let d = b.open().await?;
            let def = engine_core::NetworkDriver::default_network(&d).await?;
            tracing::info!(bridge = ?def.interface, subnet = ?def.ipam.first().map(|c| c.subnet), "bridge networking on");
            Ok(Some(Arc::new(d)))
        }
        "cni" => {
            if args.bridge_name.is_some() {
                return Err(Error::invalid("--bridge-name", "only with --network-driver bridge"));
            }
            let mut b = args.cni.builder(args.data_root.join("network"));
            if let Some(ns) = &args.network_host_netns {
                b = b.host_netns(ns);
            }
            let d = b.open().await?;
            let def = engine_core::NetworkDriver::default_network(&d).await?;
            tracing::info!(conf_dir = %args.cni.conf_dir.display(), default = %def.name, "cni networking on");
            Ok(Some(Arc::new(d)))
        }
        other => Err(Error::invalid("--network-driver", format!("{other:?}: bridge, cni or none"))),
    }
}

/// The network driver of the engine-lifecycled behind `m`, which must be
/// the `want` driver; its default network is made at once.
async fn remote_network(
    m: &engine_lifecycle::RemoteManager,
    want: &str,
    sock: &Path,
) -> Result<Arc<dyn engine_core::NetworkDriver>> {
    let d = m.network_driver().await?.ok_or_else(|| {
        Error::invalid(
            "--network-driver",
            format!(
                "engine-lifecycled at {} has no network driver (start it with --network-driver {want})",
                sock.display()
            ),
        )
    })?;
    if engine_core::NetworkDriver::name(&d) != want {
        return Err(Error::invalid(
            "--network-driver",
            format!(
                "{want}: engine-lifecycled at {} runs the {} driver",
                sock.display(),
                engine_core::NetworkDriver::name(&d)
            ),
        ));
    }
    let def = engine_core::NetworkDriver::default_network(&d).await?;
    tracing::info!(driver = want, default = %def.name, "networking through engine-lifecycled");
    Ok(Arc::new(d))
}

fn unix_path(h: &str) -> Result<PathBuf> {
    let p = h.strip_prefix("unix://").unwrap_or(h);
    if p.is_empty() || h.contains("://") && !h.starts_with("unix://") {
        return Err(Error::invalid("-H", format!("{h:?}: only unix:///path sockets are supported")));
    }
    Ok(PathBuf::from(p))
}

/// The TLS settings for `tcp://` sockets, or an error naming what is missing.
fn tls_files(args: &Args, host: &str) -> Result<engine_daemon::TlsFiles> {
    if !args.tls && !args.tlsverify {
        return Err(Error::invalid(
            "-H",
            format!(
                "{host}: refusing an unauthenticated TCP socket (anyone who reaches it could run containers as root); \
                 add --tlsverify with --tlscacert, --tlscert and --tlskey"
            ),
        ));
    }
    let need = |v: &Option<PathBuf>, flag: &str| {
        v.clone().ok_or_else(|| Error::invalid(flag.to_string(), format!("{host} with TLS needs {flag}")))
    };
    Ok(engine_daemon::TlsFiles {
        ca: if args.tlsverify { Some(need(&args.tlscacert, "--tlscacert")?) } else { args.tlscacert.clone() },
        cert: need(&args.tlscert, "--tlscert")?,
        key: need(&args.tlskey, "--tlskey")?,
        verify_clients: args.tlsverify,
    })
}

fn main() {
    let args = Args::parse();
    let filter = match args.log_level.as_str() {
        l @ ("error" | "warn" | "info" | "debug" | "trace") => format!("{l},h2=warn,hyper=warn,tower=warn"),
        "fatal" | "panic" => "error".to_string(),
        other => other.to_string(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    match engine_lifecycle::raise_open_files_limit() {
        Ok(n) => tracing::debug!(open_files = n, "open files limit"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("engined: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("engined: {e}");
        std::process::exit(1);
    }
}

struct Cleanup(Vec<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn write_pidfile(p: &Path) -> Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    if let Ok(old) = std::fs::read_to_string(p) {
        if let Ok(pid) = old.trim().parse::<i32>() {
            // A zombie (killed, not yet reaped) does not count.
            let alive = pid != std::process::id() as i32
                && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "engined")
                && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with(['Z', 'X'])));
            if alive {
                return Err(Error::conflict("pid file", p.display().to_string(), format!("engined {pid} is running")));
            }
        }
    }
    let tmp = p.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|_| std::fs::rename(&tmp, p))
        .map_err(|e| Error::io(format!("writing {}", p.display()), e))
}

/// The default log spec `--log-driver`/`--log-opt` ask for, checked.
fn default_log(args: &Args) -> Result<engine_core::LogSpec> {
    let mut spec = engine_core::LogSpec::new(&args.log_driver);
    for o in &args.log_opts {
        let (k, v) = o.split_once('=').ok_or_else(|| Error::invalid("--log-opt", format!("{o:?} is not KEY=VALUE")))?;
        spec.opts.insert(k.to_string(), v.to_string());
    }
    if let engine_core::logs::LogTarget::Plugin { name, .. } = spec.resolve()? {
        return Err(Error::invalid(
            "--log-driver",
            format!("{name}: a log plugin as the daemon's default is not supported (choose it per container)"),
        ));
    }
    Ok(spec)
}

async fn run(args: Args) -> Result<()> {
    let storage_driver: engine_image::StorageDriver =
        args.storage_driver.parse().map_err(|e: Error| Error::invalid("--storage-driver", e.to_string()))?;
    let log = default_log(&args)?;
    let (tcp_hosts, unix_hosts): (Vec<&String>, Vec<&String>) =
        args.hosts.iter().partition(|h| h.starts_with("tcp://"));
    let hosts: Vec<PathBuf> = if args.hosts.is_empty() {
        vec![args.exec_root.join("engined.sock")]
    } else {
        unix_hosts.iter().map(|h| unix_path(h)).collect::<Result<_>>()?
    };
    let mut tls_listeners = Vec::new();
    for h in &tcp_hosts {
        let files = tls_files(&args, h)?;
        let addr = h.trim_start_matches("tcp://").trim_end_matches('/');
        let l = engine_daemon::bind_tls(addr, &files).await?;
        tracing::info!(addr = %l.local_addr(), verify_clients = files.verify_clients, "API listening on TLS");
        tls_listeners.push(l);
    }
    let mut runtimes = Vec::new();
    for r in &args.add_runtimes {
        let (name, path) =
            r.split_once('=').ok_or_else(|| Error::invalid("--add-runtime", format!("{r:?} is not NAME=PATH")))?;
        if name.is_empty() || !path.starts_with('/') {
            return Err(Error::invalid("--add-runtime", format!("{r:?}: NAME=/absolute/path expected")));
        }
        runtimes.push((name.to_string(), PathBuf::from(path)));
    }
    std::fs::create_dir_all(&args.data_root)
        .map_err(|e| Error::io(format!("creating {}", args.data_root.display()), e))?;
    std::fs::create_dir_all(&args.exec_root)
        .map_err(|e| Error::io(format!("creating {}", args.exec_root.display()), e))?;
    let pidfile = args.pidfile.clone().unwrap_or_else(|| args.exec_root.join("engined.pid"));
    write_pidfile(&pidfile)?;
    let mut cleanup = Cleanup(vec![pidfile]);

    let plugins = args.plugins.registry()?;
    // dockerd refuses to start with an authorization plugin it cannot use.
    let mut authorizers: Vec<Arc<dyn engine_core::Authorizer>> = Vec::new();
    for name in &args.authorization_plugins {
        let a = engine_plugin::AuthzPlugin::new(plugins.clone(), name);
        a.check().await.map_err(|e| Error::invalid("--authorization-plugin", e.to_string()))?;
        tracing::info!(plugin = %name, "authorization plugin on");
        authorizers.push(Arc::new(a));
    }
    let mut network = network_driver(&args).await?;
    // Plugin networks (`docker network create -d <plugin>`) beside the
    // bridge or CNI ones, in the manager engined holds; with --lifecycle
    // the network driver is engine-lifecycled's.
    if let Some(d) = network.take_if(|_| args.lifecycle.is_none()) {
        let remote = engine_network::RemoteDriver::open(
            plugins.clone(),
            args.data_root.join("plugins").join("networks"),
            args.network_host_netns.as_deref(),
        )
        .await?;
        network = Some(Arc::new(engine_network::NetworkRouter::new(d, remote)));
    }
    let images_root = args.data_root.join("images");
    let store = engine_image::Store::open_with(
        &images_root,
        engine_image::StoreOptions::default().storage_driver(storage_driver),
    )?;
    let images: Arc<dyn ImageStore> = Arc::new(store);
    let local: Arc<dyn engine_core::VolumeDriver> =
        Arc::new(engine_volume::LocalDriver::open(args.data_root.join("volumes"))?);
    // Plugin volumes are mounted by the manager that holds the router: with
    // a separate engine-lifecycled (its own local driver) they are refused.
    let volumes: Arc<dyn engine_core::VolumeDriver> = if args.lifecycle.is_some() {
        Arc::new(engine_plugin::VolumePluginsRefused::new(
            local,
            "volume plugins are not served with --lifecycle: engine-lifecycled mounts containers' volumes \
             itself and holds no volume driver (run engined without --lifecycle)",
        ))
    } else {
        Arc::new(engine_plugin::VolumeRouter::open(local, plugins.clone(), args.data_root.join("plugins"))?)
    };
    let (manager, runtime_table, default_runtime): (Arc<dyn LifecycleManager>, Vec<(String, PathBuf)>, String) =
        match &args.lifecycle {
            Some(l) => {
                if args.memory_reserve.is_some() {
                    return Err(Error::invalid(
                        "--memory-reserve",
                        "applies to the in-process manager only: with --lifecycle, engine-lifecycled keeps its own",
                    ));
                }
                let sock = unix_path(l)?;
                let m = engine_lifecycle::RemoteManager::connect(&sock).await?;
                tracing::info!(socket = %sock.display(), "using engine-lifecycled");
                if args.network_driver != "none" {
                    network = Some(remote_network(&m, &args.network_driver, &sock).await?);
                }
                let default = args.default_runtime.clone().unwrap_or_else(|| engine_lifecycle::DEFAULT_RUNTIME.into());
                (Arc::new(m), runtimes.clone(), default)
            }
            None => {
                let shims = Arc::new(engine_shim::Launcher::default());
                let mut cfg = engine_lifecycle::ManagerConfig::new(&args.data_root, images.clone(), shims)
                    .volume_driver(volumes.clone());
                for (n, p) in &runtimes {
                    cfg = cfg.runtime(n, p);
                }
                if let Some(d) = &args.default_runtime {
                    cfg = cfg.default_runtime(d);
                }
                if let Some(mib) = args.memory_reserve {
                    cfg = cfg.memory_reserve(mib << 20);
                }
                cfg = cfg
                    .cgroup_parent(&args.cgroup_parent)?
                    .default_log(log.clone())?
                    .log_plugins(Arc::new(engine_plugin::PluginLogDrivers::new(plugins.clone())));
                if let Some(n) = &network {
                    cfg = cfg.network_driver(n.clone());
                }
                if !cfg.runtimes.contains_key(&cfg.default_runtime) {
                    return Err(Error::invalid(
                        "--default-runtime",
                        format!("{} is not a known runtime (add it with --add-runtime NAME=PATH)", cfg.default_runtime),
                    ));
                }
                let table = cfg.runtimes.iter().map(|(n, b)| (n.clone(), b.path.clone())).collect();
                let default = cfg.default_runtime.clone();
                let m = engine_lifecycle::Manager::new(cfg).await?;
                (Arc::new(m), table, default)
            }
        };

    let gid = engine_daemon::group_gid(&args.group)?;
    if gid.is_none() {
        tracing::info!(group = %args.group, "socket group not found; only root may use the socket");
    }
    let mut config = DaemonConfig::new(&args.data_root, &args.exec_root);
    config.default_runtime = default_runtime;
    config.log = log;
    config.runtimes = runtime_table;
    config.access = AccessPolicy { uids: args.allow_uids.clone(), gids: gid.into_iter().collect() };
    config.authorization = authorizers;
    config.plugins = Some(plugins);
    let daemon = Daemon::with_drivers(manager, images, network, Some(volumes), config);
    if let Err(e) = daemon.recover_builds().await {
        // The first `/build` tries again (and reports it).
        tracing::warn!(error = %e, "cannot clean up after interrupted builds");
    }

    let mut listeners = Vec::new();
    for h in &hosts {
        let l = engine_daemon::bind(h, gid)?;
        cleanup.0.push(h.clone());
        tracing::info!(socket = %h.display(), "API listening");
        listeners.push((l, h.clone()));
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("installing the SIGTERM handler", e))?;
    tokio::select! {
        _ = daemon.serve_with_tls(listeners, tls_listeners) => {}
        _ = term.recv() => tracing::info!("SIGTERM: stopping (containers keep running)"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping (containers keep running)"),
    }
    drop(cleanup);
    Ok(())
}
