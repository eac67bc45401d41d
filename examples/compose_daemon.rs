//! Compose your own daemon from the parts: an image store, a shim launcher
//! and the lifecycle manager, served over gRPC on a unix socket (what
//! `engine-lifecycled` does), then driven through the same trait by a client
//! in another task, the way a Docker-style daemon would use it.
//!
//! ```sh
//! sudo cargo run --example compose_daemon
//! ```

use engine::core::{ContainerConfig, LifecycleManager, ListFilter, WaitCondition};
use engine::lifecycle::{Manager, ManagerConfig, RemoteManager};
use futures::StreamExt;
use std::sync::Arc;

#[tokio::main]
async fn main() -> engine::Result<()> {
    let root =
        std::path::PathBuf::from(std::env::var("ENGINE_ROOT").unwrap_or_else(|_| "/var/lib/engine-compose".into()));
    // 1. The parts.
    let images = Arc::new(engine::image::Store::open(root.join("images"))?);
    let shims = Arc::new(engine::shim::Launcher::default());
    let manager = Manager::new(ManagerConfig::new(&root, images.clone(), shims)).await?;
    // An image to run (the facade's helper works on any store).
    let facade =
        engine::Engine::builder().root(&root).image_store(images).manager(Arc::new(manager.clone())).build().await?;
    facade.busybox_image("busybox:compose").await?;

    // 2. The service, on a socket.
    let socket = root.join("compose.sock");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Bound before the server task runs: the client below connects at once.
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).map_err(|e| engine::Error::io("binding the socket", e))?;
    let server = tokio::spawn(engine::lifecycle::serve_listener(Arc::new(manager), listener, async {
        let _ = stop_rx.await;
    }));

    // 3. A client: the same trait, over gRPC.
    let client = RemoteManager::connect(&socket).await?;
    let mut events = client.events().await?;
    let c = client
        .create(ContainerConfig::default().image("busybox:compose".into()).cmd(Some(vec![
            "sh".into(),
            "-c".into(),
            "echo served over gRPC; exit 3".into(),
        ])))
        .await?;
    client.start(&c.id).await?;
    let exit = client.wait(&c.id, WaitCondition::NotRunning).await?;
    let mut logs = client.logs(&c.id, Default::default()).await?;
    while let Some(line) = logs.next().await {
        print!("log: {}", String::from_utf8_lossy(&line?.line));
    }
    println!("exit code {} (a value, not an error)", exit.code);
    println!("listed: {}", client.list(ListFilter::default().all(true)).await?.len());
    client.remove(&c.id, false).await?;
    for _ in 0..4 {
        if let Ok(Some(Ok(e))) = tokio::time::timeout(std::time::Duration::from_millis(200), events.next()).await {
            println!("event: {:?}", e.kind);
        }
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}
