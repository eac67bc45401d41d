//! Where the time of one container run goes: create, start, wait and remove
//! through the lifecycle manager (median of 15). `cargo run --release --example phase_timing -- [runtime]`
use engine::core::{ContainerConfig, WaitCondition};
use std::time::Instant;

#[tokio::main]
async fn main() -> engine::Result<()> {
    let root = std::env::var("ENGINE_ROOT").unwrap_or_else(|_| "/tmp/engine-phases".into());
    let rt = std::env::args().nth(1).unwrap_or_else(|| "engine-runc".into());
    let engine = engine::Engine::builder().root(&root).build().await?;
    engine.busybox_image("busybox:phases").await?;
    let m = engine.containers();
    let mut t = vec![Vec::new(); 4];
    for _ in 0..15 {
        let cfg = ContainerConfig::default()
            .image("busybox:phases".into())
            .cmd(Some(vec!["/bin/true".into()]))
            .runtime(Some(rt.clone()));
        let a = Instant::now();
        let c = m.create(cfg).await?;
        let b = Instant::now();
        m.start(&c.id).await?;
        let d = Instant::now();
        m.wait(&c.id, WaitCondition::NotRunning).await?;
        let e = Instant::now();
        m.remove(&c.id, false).await?;
        let f = Instant::now();
        for (i, (x, y)) in [(a, b), (b, d), (d, e), (e, f)].into_iter().enumerate() {
            t[i].push((y - x).as_secs_f64() * 1000.0);
        }
    }
    for (name, v) in ["create", "start", "wait", "remove"].iter().zip(t.iter_mut()) {
        v.sort_by(|a, b| a.total_cmp(b));
        println!("{name:<8} median {:.1} ms", v[v.len() / 2]);
    }
    Ok(())
}
