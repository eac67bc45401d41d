//! Log throughput per log driver: a container prints N lines (`seq`), the
//! shim stamps and stores each one, and the engine reads them back (what
//! `docker logs` reads). Prints lines per second for the write side (run
//! to exit) and the read side (all N lines streamed back), per driver.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! sudo target/release/examples/log_throughput [lines=200000]
//! ```
//!
//! Measured 2026-12-02, release build, 2 shared cores (load ~2), 200 000
//! lines of `seq` (two runs):
//!
//! | driver | write, lines/s | read back, lines/s |
//! |---|---|---|
//! | json-file | 1.32 M, 1.57 M | 1.93 M, 2.12 M |
//! | json-file max-size=10m max-file=3 | 1.84 M, 1.83 M | 2.10 M, 2.08 M |
//! | local | 2.28 M, 2.09 M | 2.66 M, 2.86 M |
//!
//! "write" includes creating, starting and reaping the container. Log
//! plugins are not measured here (the test plugin is Python: it would
//! measure Python).

use engine::core::LogOptions;
use engine::{ContainerBuilder, Engine, WaitFor};
use futures::StreamExt;
use std::time::Instant;

#[tokio::main]
async fn main() -> engine::core::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let root = tempfile::Builder::new().prefix("logbench").tempdir_in("/tmp").expect("temp dir");
    let engine = Engine::builder().root(root.path()).build().await?;
    engine.busybox_image("busybox:logbench").await?;
    println!("| driver | lines | write (run to exit), lines/s | read back, lines/s |");
    println!("|---|---|---|---|");
    for (driver, opts) in
        [("json-file", &[][..]), ("json-file", &[("max-size", "10m"), ("max-file", "3")][..]), ("local", &[][..])]
    {
        let mut b = ContainerBuilder::new("busybox:logbench")
            .cmd(["seq", "1", &n.to_string()])
            .log_driver(driver)
            .wait_for(WaitFor::exit_code(0));
        for (k, v) in opts {
            b = b.log_opt(*k, *v);
        }
        let t0 = Instant::now();
        let c = engine.run(b).await?;
        let write = t0.elapsed();
        let t1 = Instant::now();
        let mut logs = c.logs(LogOptions::default().stdout(true).stderr(true)).await?;
        let mut got = 0usize;
        while let Some(e) = logs.next().await {
            e?;
            got += 1;
        }
        let read = t1.elapsed();
        let label = if opts.is_empty() {
            driver.to_string()
        } else {
            format!("{driver} {}", opts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
        };
        println!(
            "| {label} | {got} | {:.0} | {:.0} |",
            n as f64 / write.as_secs_f64(),
            got as f64 / read.as_secs_f64()
        );
        c.remove().await?;
    }
    Ok(())
}
