//! A pool of sandboxed workers: N long-lived containers (memory, CPU and pids
//! limits, read-only root, no network), jobs fanned out to them with `exec`,
//! results collected with their exit codes. Containers are removed when the
//! pool is dropped, and bound to this process, so a crash leaks nothing.
//!
//! A single binary: it serves as its own shim and `engine-runc`
//! (`engine::tier_main`, `EngineBuilder::single_binary`).
//!
//! ```sh
//! sudo cargo run --features single-binary --example worker_pool -- 4 20
//! ```

use engine::{Container, ContainerBuilder, Engine, WaitFor};
use std::sync::Arc;
use std::time::Instant;

fn main() -> engine::Result<()> {
    engine::tier_main(); // in the shim's or runtime's role: serve it and exit
    tokio::runtime::Runtime::new().map_err(|e| engine::Error::io("start tokio", e))?.block_on(pool())
}

async fn pool() -> engine::Result<()> {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4);
    let jobs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let root = std::env::var("ENGINE_ROOT").unwrap_or_else(|_| "/var/lib/engine-pool".into());
    let engine = Engine::builder().root(&root).single_binary().build().await?;
    engine.busybox_image("busybox:pool").await?;

    let t = Instant::now();
    let starts = (0..workers).map(|i| {
        engine.run(
            ContainerBuilder::new("busybox:pool")
                .name(format!("worker-{i}-{}", std::process::id()))
                .cmd(["sh", "-c", "echo ready; exec sleep 3600"])
                .memory(32 << 20)
                .cpus(0.5)
                .pids_limit(32)
                .read_only_rootfs(true)
                .tmpfs("/work")
                .label("pool", "demo")
                .wait_for(WaitFor::stdout("ready")),
        )
    });
    let pool: Vec<Arc<Container>> = futures::future::try_join_all(starts).await?.into_iter().map(Arc::new).collect();
    println!("{workers} workers up in {:?}", t.elapsed());

    let t = Instant::now();
    let tasks = (0..jobs).map(|j| {
        let w = pool[j % workers].clone();
        tokio::spawn(async move {
            // Each job: compute something in the sandbox; odd jobs "fail".
            let script = format!(
                "cd /work && seq 1 {n} > in && s=$(awk '{{s+=$1}} END {{print s}}' in) && echo $s && exit $(({j} % 2))",
                n = 1000 + j
            );
            let out = w.exec(["sh", "-c", &script]).await?;
            Ok::<_, engine::Error>((j, w.name().to_string(), out))
        })
    });
    for r in futures::future::join_all(tasks).await {
        let (j, worker, out) = r.map_err(|e| engine::Error::Other(e.to_string()))??;
        println!("job {j:>3} on {worker}: sum={} exit={}", out.stdout_str().trim(), out.exit_code);
    }
    println!("{jobs} jobs in {:?}", t.elapsed());
    // Writing outside /work is refused: the root is read-only.
    let denied = pool[0].exec(["sh", "-c", "echo x > /etc/x"]).await?;
    println!("write to /etc: exit {} ({})", denied.exit_code, denied.stderr_str().trim());
    drop(pool); // removes every worker
    Ok(())
}
