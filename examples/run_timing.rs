//! `Engine::run` of `/bin/true` to exit and removal, with and without the
//! owner-process binding (median of 30). `cargo run --release --example run_timing`
use engine::{ContainerBuilder, WaitFor};
use std::time::Instant;

#[tokio::main]
async fn main() -> engine::Result<()> {
    let root = std::env::var("ENGINE_ROOT").unwrap_or_else(|_| "/tmp/engine-run-timing".into());
    for bind in [true, false] {
        let mut b = engine::Engine::builder().root(&root);
        if !bind {
            b = b.unbound();
        }
        let engine = b.build().await?;
        engine.busybox_image("busybox:timing").await?;
        let mut v = Vec::new();
        for _ in 0..32 {
            let t = Instant::now();
            let c = engine
                .run(ContainerBuilder::new("busybox:timing").cmd(["/bin/true"]).wait_for(WaitFor::exit()))
                .await?;
            c.remove().await?;
            v.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        v.drain(..2);
        v.sort_by(|a, b| a.total_cmp(b));
        println!("bind_to_process({bind}): median {:.1} ms", v[v.len() / 2]);
    }
    Ok(())
}
