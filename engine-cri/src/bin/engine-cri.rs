//! `engine-cri`: a Kubernetes CRI v1 server on a unix socket, with the
//! engine's lifecycle manager and image store in-process (see the
//! `engine_cri` crate docs for why it is a binary of its own). Pods and
//! containers outlive it: SIGKILL it, start it again on the same root and
//! socket, and kubelet (or crictl) sees them as they are.

use clap::Parser;
use engine_core::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// A Kubernetes CRI v1 server over the engine.
#[derive(Parser, Debug)]
#[command(name = "engine-cri", version)]
struct Args {
    /// The socket kubelet's `--container-runtime-endpoint` names.
    #[arg(long, default_value = "/run/engine-cri/engine-cri.sock")]
    listen: PathBuf,
    /// Persistent state: images, containers (not shared with a running engined).
    #[arg(long, default_value = "/var/lib/engine-cri")]
    root: PathBuf,
    /// The cgroup pods' containers' cgroups are made under.
    #[arg(long, default_value = "/engine-cri")]
    cgroup_parent: String,
    /// How pods get a network: `cni` (the CNI plugins of --cni-bin-dir run
    /// for the default network of --cni-conf-dir, as on a kubelet node) or
    /// `none` (a loopback-only namespace; only hostNetwork pods are useful).
    #[arg(long, value_name = "cni|none", default_value = "cni")]
    network_driver: String,
    /// CNI (`--cni-conf-dir`: the first configuration is the pods'
    /// network, written with Debian's plugins when there is none;
    /// `--cni-bin-dir`).
    #[command(flatten)]
    cni: engine_network::cli::CniArgs,
    /// The network namespace treated as the host's (bridges, host ports);
    /// default: this process's. Tests pass one of their own.
    #[arg(long, value_name = "PATH")]
    network_host_netns: Option<PathBuf>,
    /// containerd's `restrict_oom_score_adj`: raise an OOM score adjustment
    /// a container asks for below engine-cri's own to it (without
    /// CAP_SYS_RESOURCE a process cannot lower it; kubelet asks -997 for
    /// guaranteed pods). `false`: such containers fail to start.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    restrict_oom_score_adj: bool,
    /// Where the streaming server (Exec, Attach, PortForward URLs) listens;
    /// port 0 picks a free one. Loopback by default: the one-time tokens
    /// in its URLs are its only authentication.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    streaming_address: std::net::SocketAddr,
    /// Log level or tracing filter.
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "{},h2=warn,hyper=warn,tower=warn",
            args.log_level
        )))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("engine-cri: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("engine-cri: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.root).map_err(|e| Error::io(format!("creating {}", args.root.display()), e))?;
    let images: Arc<dyn engine_core::ImageStore> = Arc::new(engine_image::Store::open(args.root.join("images"))?);
    let shims = Arc::new(engine_shim::Launcher::default());
    let mut cfg =
        engine_lifecycle::ManagerConfig::new(&args.root, images.clone(), shims).cgroup_parent(&args.cgroup_parent)?;
    let networked = match args.network_driver.as_str() {
        "none" => false,
        "cni" => {
            let mut b = args.cni.builder(args.root.join("network"));
            if let Some(ns) = &args.network_host_netns {
                b = b.host_netns(ns);
            }
            let d = b.open().await?;
            let def = engine_core::NetworkDriver::default_network(&d).await?;
            tracing::info!(conf_dir = %args.cni.conf_dir.display(), network = %def.name, "pod networking through CNI");
            cfg = cfg.network_driver(Arc::new(d));
            true
        }
        other => return Err(Error::invalid("--network-driver", format!("{other:?}: cni or none"))),
    };
    // RuntimeClass handlers: every runtime the manager found other than
    // the default (`runc`, `crun`, `youki` on PATH), by its own name.
    let handlers: Vec<String> = cfg.runtimes.keys().filter(|n| **n != cfg.default_runtime).cloned().collect();
    let mgr = Arc::new(engine_lifecycle::Manager::new(cfg).await?);
    let mut server =
        engine_cri::CriServer::new(mgr, images, &args.root).restrict_oom_score_adj(args.restrict_oom_score_adj);
    for h in handlers {
        tracing::info!(handler = %h, "runtime handler");
        server = server.runtime_handler(h.clone(), h);
    }
    if networked {
        server = server.with_pod_network();
    }
    let streaming = tokio::net::TcpListener::bind(args.streaming_address)
        .await
        .map_err(|e| Error::io(format!("streaming server on {}", args.streaming_address), e))?;
    if let Ok(a) = streaming.local_addr() {
        tracing::info!(address = %a, "streaming server (WebSocket, v5/v4.channel.k8s.io)");
    }
    server = server.with_streaming(streaming)?;
    server.ensure_pause_image().await?;
    if let Some(d) = args.listen.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    // A socket left by a killed server is stale: nobody answers on it.
    if std::os::unix::net::UnixStream::connect(&args.listen).is_err() {
        let _ = std::fs::remove_file(&args.listen);
    }
    let listener = tokio::net::UnixListener::bind(&args.listen)
        .map_err(|e| Error::io(format!("listening on {}", args.listen.display()), e))?;
    tracing::info!(socket = %args.listen.display(), "CRI listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("installing the SIGTERM handler", e))?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping (pods keep running)");
    };
    let res = server.serve(listener, shutdown).await;
    let _ = std::fs::remove_file(&args.listen);
    res
}
