//! `engine-lifecycled`: the lifecycle manager in its own process (containerd's
//! role), serving gRPC on a unix socket. Containers outlive it: SIGKILL it,
//! start it again on the same root, and it reconnects to their shims.
//!
//! Plugins (Docker's protocol v1, discovered as dockerd does or in the
//! `--plugin-socket-dir`/`--plugin-spec-dir` given): log plugins
//! (`--log-driver <plugin>`), and with `--network-driver bridge|cni`
//! network plugins beside that driver (`engine_network::NetworkRouter`), so
//! `engined --lifecycle` serves `docker network create -d <plugin>` too.
//! Volume plugins are not served here (containers' volumes are plain
//! directories under the root).

use clap::Parser;
use engine_lifecycle::{ManagerConfig, RemoteManager};
use std::path::PathBuf;
use std::sync::Arc;

/// The engine's lifecycle manager daemon.
#[derive(Parser, Debug)]
#[command(name = "engine-lifecycled", version)]
struct Args {
    /// State root (database, bundles, shim state, volumes).
    #[arg(long, default_value = "/var/lib/engine-lifecycle")]
    root: PathBuf,
    /// The gRPC unix socket (default: ROOT/lifecycle.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Image store root (default: ROOT/images).
    #[arg(long)]
    images: Option<PathBuf>,
    /// The engine-shim binary (default: next to this binary, then PATH).
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Add a runtime: NAME=PATH (repeatable).
    #[arg(long = "runtime", value_name = "NAME=PATH")]
    runtimes: Vec<String>,
    /// The runtime used when a container names none.
    #[arg(long, default_value = engine_lifecycle::DEFAULT_RUNTIME)]
    default_runtime: String,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// The storage driver that makes containers' root filesystems:
    /// `overlay2` (the default) or `vfs` (plain copies).
    #[arg(short = 's', long, value_name = "overlay2|vfs", default_value = "overlay2")]
    storage_driver: String,
    /// The cgroup containers' cgroups are made under.
    #[arg(long, default_value = "/engine")]
    cgroup_parent: String,
    /// The network driver for `bridge` and user-network containers:
    /// `bridge` (state under ROOT/network), `cni` (CNI plugins for the
    /// networks of --cni-conf-dir) or `none`.
    #[arg(long, value_name = "bridge|cni|none", default_value = "none")]
    network_driver: String,
    /// CNI (`--cni-conf-dir`, `--cni-bin-dir`).
    #[cfg(feature = "bridge")]
    #[command(flatten)]
    cni: engine_network::cli::CniArgs,
    /// The network namespace the bridge driver treats as the host's
    /// (default: this process's); tests pass one of their own.
    #[arg(long, value_name = "PATH")]
    network_host_netns: Option<PathBuf>,
    /// Plugins (`--plugin-socket-dir`, `--plugin-spec-dir`,
    /// `--plugin-timeout`): log plugins (`--log-driver`) and, with
    /// --network-driver bridge|cni, network plugins (`docker network
    /// create -d <plugin>`) are served here.
    #[command(flatten)]
    plugins: engine_plugin::cli::PluginArgs,
}

/// The driver `--network-driver` asks for; a bridge or CNI driver is
/// routed beside the plugin networks of `plugins`.
#[allow(unused_variables)]
async fn network_driver(
    args: &Args,
    plugins: &Arc<engine_plugin::Plugins>,
) -> engine_core::Result<Option<Arc<dyn engine_core::NetworkDriver>>> {
    #[cfg(feature = "bridge")]
    let route = |d: Arc<dyn engine_core::NetworkDriver>| async move {
        let remote = engine_network::RemoteDriver::open(
            plugins.clone(),
            args.root.join("plugins").join("networks"),
            args.network_host_netns.as_deref(),
        )
        .await?;
        Ok::<_, engine_core::Error>(Some(Arc::new(engine_network::NetworkRouter::new(d, remote)) as Arc<_>))
    };
    match args.network_driver.as_str() {
        "none" if args.network_host_netns.is_some() => {
            Err(engine_core::Error::invalid("--network-host-netns", "only with --network-driver bridge or cni"))
        }
        "none" => Ok(None),
        #[cfg(feature = "bridge")]
        "bridge" => {
            let mut b = engine_network::BridgeDriver::builder(args.root.join("network"));
            if let Some(ns) = &args.network_host_netns {
                b = b.host_netns(ns);
            }
            route(Arc::new(b.open().await?)).await
        }
        #[cfg(feature = "bridge")]
        "cni" => {
            let mut b = args.cni.builder(args.root.join("network"));
            if let Some(ns) = &args.network_host_netns {
                b = b.host_netns(ns);
            }
            route(Arc::new(b.open().await?)).await
        }
        other => Err(engine_core::Error::invalid(
            "--network-driver",
            format!("{other:?}: bridge or cni (when built with the bridge feature) or none"),
        )),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        .init();
    match engine_lifecycle::raise_open_files_limit() {
        Ok(n) => tracing::debug!(open_files = n, "open files limit"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
    if let Err(e) = run(args).await {
        eprintln!("engine-lifecycled: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> engine_core::Result<()> {
    let images_root = args.images.clone().unwrap_or_else(|| args.root.join("images"));
    let storage_driver: engine_image::StorageDriver = args
        .storage_driver
        .parse()
        .map_err(|e: engine_core::Error| engine_core::Error::invalid("--storage-driver", e.to_string()))?;
    let images = Arc::new(engine_image::Store::open_with(
        &images_root,
        engine_image::StoreOptions::default().storage_driver(storage_driver),
    )?);
    let shims = Arc::new(match &args.shim {
        Some(p) => engine_shim::Launcher::new(p),
        None => engine_shim::Launcher::default(),
    });
    let mut cfg = ManagerConfig::new(&args.root, images, shims);
    for r in &args.runtimes {
        let (name, path) = r
            .split_once('=')
            .ok_or_else(|| engine_core::Error::invalid("--runtime", format!("{r:?} is not NAME=PATH")))?;
        cfg = cfg.runtime(name, path);
    }
    cfg = cfg.default_runtime(&args.default_runtime).cgroup_parent(&args.cgroup_parent)?;
    let plugins = args.plugins.registry()?;
    cfg = cfg.log_plugins(Arc::new(engine_plugin::PluginLogDrivers::new(plugins.clone())));
    let net = network_driver(&args, &plugins).await?;
    if let Some(d) = &net {
        cfg = cfg.network_driver(d.clone());
    }
    if !cfg.runtimes.contains_key(&cfg.default_runtime) {
        return Err(engine_core::Error::invalid(
            "--default-runtime",
            format!("{} is not a known runtime (add it with --runtime NAME=PATH)", cfg.default_runtime),
        ));
    }
    let socket = args.socket.clone().unwrap_or_else(|| args.root.join("lifecycle.sock"));
    // Refuse to run twice on one socket.
    if socket.exists() && RemoteManager::connect(&socket).await.is_ok() {
        return Err(engine_core::Error::conflict(
            "socket",
            socket.display().to_string(),
            "another engine-lifecycled serves it",
        ));
    }
    let mgr = engine_lifecycle::Manager::new(cfg).await?;
    tracing::info!(root = %args.root.display(), "manager ready");
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down; containers keep running");
    };
    engine_lifecycle::serve_with_network(Arc::new(mgr), net, &socket, shutdown).await?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
