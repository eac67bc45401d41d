//! Quickstart: run a container from an image on a fresh machine, in-process.
//!
//! Makes a busybox image from Debian's busybox-static (no registry needed),
//! then runs a container through the whole stack: image store (overlay
//! snapshot) -> lifecycle manager (bundle, record) -> shim -> engine-runc.
//!
//! One binary to ship: this executable is also its own shim and `engine-runc`
//! (`engine::tier_main`, `EngineBuilder::single_binary`), so nothing else of
//! this project needs to be built or installed:
//!
//! ```sh
//! sudo cargo run --features single-binary --example quickstart
//! ```
//! `ENGINE_ROOT` picks the state root (default `/var/lib/engine-quickstart`).

use engine::{ContainerBuilder, Engine, WaitFor};
use std::time::Instant;

fn main() -> engine::Result<()> {
    // Started as our own shim or runtime: serve that role and exit. First
    // thing, before the tokio runtime starts its threads.
    engine::tier_main();
    tokio::runtime::Runtime::new().map_err(|e| engine::Error::io("start tokio", e))?.block_on(quickstart())
}

async fn quickstart() -> engine::Result<()> {
    let root = std::env::var("ENGINE_ROOT").unwrap_or_else(|_| "/var/lib/engine-quickstart".into());
    let engine = Engine::builder().root(&root).single_binary().build().await?;
    let image = engine.busybox_image("busybox:quickstart").await?;
    println!("image   busybox:quickstart  {}", &image.id[..19]);

    // The three lines.
    let t = Instant::now();
    let c = engine
        .run(
            ContainerBuilder::new("busybox:quickstart")
                .cmd(["sh", "-c", "echo hello from $(hostname), pid $$ of $(ls /proc | grep -c '^[0-9]') processes"])
                .wait_for(WaitFor::exit_code(0)),
        )
        .await?;
    print!("stdout  {}", c.stdout().await?);
    println!("ran     {} ({}) in {:?}", c.name(), &c.id()[..12], t.elapsed());
    c.remove().await?;

    // A long-running one: exec into it, copy a file in and back out.
    let svc = engine
        .run(
            ContainerBuilder::new("busybox:quickstart")
                .cmd(["sh", "-c", "echo ready; exec sleep 300"])
                .memory(64 << 20)
                .label("demo", "quickstart")
                .wait_for(WaitFor::stdout("ready")),
        )
        .await?;
    let out = svc.exec(["sh", "-c", "id; cat /sys/fs/cgroup/memory.max 2>/dev/null || true"]).await?;
    print!("exec    {}", out.stdout_str());
    svc.copy_file_in("/tmp/note.txt", b"copied in\n").await?;
    print!("copy    {}", String::from_utf8_lossy(&svc.copy_file_out("/tmp/note.txt").await?));
    let t = Instant::now();
    svc.stop(Some(std::time::Duration::from_secs(1))).await?;
    println!("stopped in {:?} (exit {:?})", t.elapsed(), svc.inspect().await?.exit_code);
    svc.remove().await?;
    Ok(())
}
