//! Density through the facade: N sleeping busybox containers started with
//! `Engine::run`, PAR at a time, then removed. `bench/density.sh` drives it
//! and measures memory and kernel objects while the containers run.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! sudo ENGINE_ROOT=/tmp/density cargo run --release --example density -- 1000 4
//! ```
//!
//! Prints, on stdout: one `started <ms since the first create>` line per
//! container, `running <N> in <s>`, `list <ms>` (the manager's list of all
//! containers), `ready <pid>`; then it waits for a line on stdin (the script
//! measures in between), removes every container PAR at a time and prints
//! `removed <N> in <s>`.

use engine::core::ListFilter;
use engine::{Container, ContainerBuilder, Engine};
use futures::StreamExt;
use std::io::BufRead;
use std::time::Instant;

#[tokio::main]
async fn main() -> engine::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let par: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4);
    let root = std::env::var("ENGINE_ROOT").unwrap_or_else(|_| "/var/lib/engine-density".into());
    let mut b = Engine::builder().root(&root);
    if let Ok(p) = std::env::var("ENGINE_CGROUP_PARENT") {
        b = b.cgroup_parent(p);
    }
    let engine = b.build().await?;
    engine.busybox_image("busybox:density").await?;

    let t0 = Instant::now();
    let runs = futures::stream::iter(0..n)
        .map(|i| {
            let engine = &engine;
            async move {
                let c = engine
                    .run(ContainerBuilder::new("busybox:density").name(format!("density-{i}")).cmd(["sleep", "100000"]))
                    .await?;
                println!("started {}", t0.elapsed().as_millis());
                Ok::<Container, engine::Error>(c)
            }
        })
        .buffer_unordered(par);
    let containers: Vec<Container> = runs.collect::<Vec<_>>().await.into_iter().collect::<engine::Result<_>>()?;
    println!("running {} in {:.2}", containers.len(), t0.elapsed().as_secs_f64());

    let t = Instant::now();
    let listed = engine.containers().list(ListFilter::default()).await?;
    println!("list {:.1} ({} running)", t.elapsed().as_secs_f64() * 1000.0, listed.len());
    println!("ready {}", std::process::id());

    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| engine::Error::io("reading stdin", e))?;

    let t = Instant::now();
    let removed = futures::stream::iter(containers).map(|c| c.remove()).buffer_unordered(par);
    let results: Vec<engine::Result<()>> = removed.collect().await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    println!("removed {} in {:.2} ({failed} failed)", results.len(), t.elapsed().as_secs_f64());
    Ok(())
}
