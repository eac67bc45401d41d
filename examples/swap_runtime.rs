//! Swap the runtime, keep the create-flow.
//!
//! The same container runs on `engine-runc` (this project's runtime), `runc`
//! and `crun` (chosen per container by name), and then on a custom, Kata-style
//! `Runtime`: a Rust type wrapping another runtime that adds its own isolation
//! step before create (here it drops every capability, sets no-new-privileges
//! and marks the sandbox; a VM-based runtime would boot its VM and run the
//! container inside it at this point). Because `engine-shim` is a library, the
//! custom runtime is hosted by a custom shim binary: this example re-executes
//! itself as that shim (`engine_shim::serve::shim_main` with the wrapper), and the
//! manager launches it through an ordinary `engine_shim::Launcher`.
//!
//! ```sh
//! cargo build --workspace --bins && sudo cargo run --example swap_runtime
//! ```

use async_trait::async_trait;
use engine::core::{ContainerId, CreateOptions, ExecOptions, Pid, Result, Runtime, RuntimeState, Signal, Stats};
use engine::{ContainerBuilder, Engine, WaitFor};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const SHIM_NAME: &str = "sandbox-shim";

/// A Kata-style wrapper: its own isolation step, then the inner runtime.
struct Sandbox {
    inner: Arc<dyn Runtime>,
}

impl Sandbox {
    fn harden(bundle: &Path) -> Result<()> {
        let path = bundle.join("config.json");
        let data = std::fs::read(&path).map_err(|e| engine::Error::io(format!("reading {}", path.display()), e))?;
        let mut spec: serde_json::Value =
            serde_json::from_slice(&data).map_err(|e| engine::Error::invalid("config.json", e.to_string()))?;
        let none = serde_json::json!([]);
        spec["process"]["capabilities"] = serde_json::json!({
            "bounding": none, "effective": none, "permitted": none, "inheritable": none, "ambient": none
        });
        spec["process"]["noNewPrivileges"] = true.into();
        if let Some(env) = spec["process"]["env"].as_array_mut() {
            env.push("SANDBOX=strict".into());
        }
        spec["annotations"]["io.example.sandbox"] = "strict".into();
        let tmp = bundle.join(".config.json.sandbox");
        std::fs::write(&tmp, serde_json::to_vec(&spec).unwrap_or_default())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| engine::Error::io(format!("writing {}", path.display()), e))
    }
}

#[async_trait]
impl Runtime for Sandbox {
    fn name(&self) -> &str {
        "sandbox"
    }
    async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Pid> {
        Self::harden(bundle)?;
        self.inner.create(id, bundle, opts).await
    }
    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.inner.start(id).await
    }
    async fn state(&self, id: &ContainerId) -> Result<RuntimeState> {
        self.inner.state(id).await
    }
    async fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<()> {
        self.inner.kill(id, signal, all).await
    }
    async fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        self.inner.delete(id, force).await
    }
    async fn exec(&self, id: &ContainerId, p: &engine::core::oci::runtime::Process, o: ExecOptions) -> Result<Pid> {
        self.inner.exec(id, p, o).await
    }
    async fn pause(&self, id: &ContainerId) -> Result<()> {
        self.inner.pause(id).await
    }
    async fn resume(&self, id: &ContainerId) -> Result<()> {
        self.inner.resume(id).await
    }
    async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        self.inner.stats(id).await
    }
    async fn ps(&self, id: &ContainerId) -> Result<Vec<Pid>> {
        self.inner.ps(id).await
    }
}

/// The custom shim: what the `engine-shim` binary does, with the wrapper as
/// its runtime. Called before any thread exists (the shim forks to detach).
fn run_as_shim() -> ! {
    engine::shim::serve::shim_main(|bin| Arc::new(Sandbox { inner: engine::shim::serve::runtime_for(bin) }))
}

async fn demo(engine: &Engine, runtime: Option<&str>, label: &str) -> engine::Result<()> {
    let mut b = ContainerBuilder::new("busybox:swap")
        .cmd(["sh", "-c", "echo \"$(grep CapEff /proc/self/status | tr -s '\\t' ' ') sandbox=${SANDBOX:-none}\""])
        .wait_for(WaitFor::exit_code(0));
    if let Some(r) = runtime {
        b = b.runtime(r);
    }
    let t = Instant::now();
    let c = engine.run(b).await?;
    let elapsed = t.elapsed();
    let info = c.inspect().await?;
    print!("{label:<28} runtime={:<12} {:>7.1?}  {}", info.runtime, elapsed, c.stdout().await?);
    c.remove().await
}

fn main() -> engine::Result<()> {
    let argv0 = std::env::args().next().unwrap_or_default();
    if Path::new(&argv0).file_name().is_some_and(|n| n == SHIM_NAME) {
        run_as_shim();
    }
    tokio::runtime::Runtime::new().expect("runtime").block_on(async {
        let root =
            std::path::PathBuf::from(std::env::var("ENGINE_ROOT").unwrap_or_else(|_| "/var/lib/engine-swap".into()));
        let engine = Engine::builder().root(&root).build().await?;
        engine.busybox_image("busybox:swap").await?;
        for rt in ["engine-runc", "runc", "crun"] {
            if rt != "engine-runc" && engine::lifecycle::find_in_path(rt).is_none() {
                println!("{rt}: not installed, skipped");
                continue;
            }
            match demo(&engine, Some(rt), &format!("by name {rt:?}")).await {
                Ok(()) => {}
                // A peer runtime may refuse this host (crun and hybrid cgroups).
                Err(e) if rt != "engine-runc" => println!("{rt}: {e}"),
                Err(e) => return Err(e),
            }
        }
        // A runtime given by path.
        if let Some(p) = engine::lifecycle::find_in_path("runc") {
            demo(&engine, Some(&p.to_string_lossy()), "by path").await?;
        }

        // The custom Runtime type, hosted by this binary acting as a shim.
        let shim_dir = root.join("sandbox-shim-bin");
        std::fs::create_dir_all(&shim_dir).map_err(|e| engine::Error::io("creating the shim dir", e))?;
        let link = shim_dir.join(SHIM_NAME);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(std::env::current_exe().expect("current exe"), &link)
            .map_err(|e| engine::Error::io("linking the custom shim", e))?;
        let sandboxed = Engine::builder()
            .root(root.join("sandboxed"))
            .image_store(engine.images().clone())
            .shim_launcher(Arc::new(engine::shim::Launcher::new(&link)))
            .build()
            .await?;
        demo(&sandboxed, None, "custom Runtime (sandbox)").await?;
        Ok(())
    })
}
