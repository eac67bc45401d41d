//! One binary to ship (feature `single-binary`): the application that embeds
//! the engine serves as its own shim and its own `engine-runc`.
//!
//! The engine's containers need two helper processes: a shim per container
//! (which outlives the call that made it) and runs of the OCI runtime
//! (`engine-runc`, for `exec` and for creates that join namespaces). With
//! [`EngineBuilder::single_binary`](crate::EngineBuilder::single_binary) both
//! are this process's own executable, started busybox-style under another
//! name: `<root>/bin/engine-shim` and `<root>/bin/engine-runc` are symbolic
//! links to [`std::env::current_exe`], and [`tier_main`], called first thing
//! in `main`, recognises the role from the name the process was started
//! under (`argv[0]`), serves it and exits.
//!
//! ```no_run
//! fn main() -> engine::Result<()> {
//!     engine::tier_main(); // returns only in the application's own role
//!     tokio::runtime::Runtime::new().unwrap().block_on(async {
//!         let engine = engine::Engine::builder().root("/var/lib/my-app").single_binary().build().await?;
//!         engine.busybox_image("busybox:demo").await?;
//!         let c = engine.run(engine::ContainerBuilder::new("busybox:demo").cmd(["echo", "hi"])).await?;
//!         c.remove().await
//!     })
//! }
//! ```
//!
//! `tier_main` must run before any thread is started (so not inside
//! `#[tokio::main]`): the shim detaches with a double fork and the runtime
//! clones container processes without exec. In the runtime's role the process
//! re-executes itself from a read-only bind mount of its binary before it
//! clones into a container, as `engine-runc` does ([`engine_runtime::sealed`]).

use engine_core::{Error, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The name under which the process serves as a container's shim.
pub const SHIM_ROLE: &str = engine_shim::SHIM_BINARY;
/// The name under which the process serves as the OCI runtime (the shim
/// drives a runtime of this name in-process where it can).
pub const RUNTIME_ROLE: &str = engine_lifecycle::DEFAULT_RUNTIME;

/// The role this process was started in, from the file name of `argv[0]`.
fn role(arg0: Option<&OsStr>) -> Option<&'static str> {
    let name = Path::new(arg0?).file_name()?;
    [SHIM_ROLE, RUNTIME_ROLE].into_iter().find(|r| name == OsStr::new(r))
}

/// Serve the shim's or the runtime's role and exit when this process was
/// started as one ([`EngineBuilder::single_binary`](crate::EngineBuilder::single_binary)
/// starts it so); return at once otherwise. Call it first thing in `main`,
/// before any thread exists.
pub fn tier_main() {
    match role(std::env::args_os().next().as_deref()) {
        Some(SHIM_ROLE) => engine_shim::serve::shim_main(engine_shim::serve::runtime_for),
        Some(RUNTIME_ROLE) => engine_runtime::cli::main(),
        _ => {}
    }
}

/// Make (or refresh) `<root>/bin/engine-shim` and `<root>/bin/engine-runc`
/// as symbolic links to this executable, each replaced atomically (a
/// temporary link renamed over the old one). Returns their paths.
pub(crate) fn role_links(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().map_err(|e| Error::io("find this process's executable", e))?;
    let dir = root.join("bin");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let link = |name: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        if std::fs::read_link(&path).is_ok_and(|t| t == exe) {
            return Ok(path);
        }
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&exe, &tmp).map_err(|e| Error::io(format!("symlink {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(format!("rename {} to {}", tmp.display(), path.display()), e)
        })?;
        Ok(path)
    };
    Ok((link(SHIM_ROLE)?, link(RUNTIME_ROLE)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_is_the_file_name_of_argv0() {
        assert_eq!(role(Some(OsStr::new("/var/lib/app/bin/engine-shim"))), Some(SHIM_ROLE));
        assert_eq!(role(Some(OsStr::new("engine-runc"))), Some(RUNTIME_ROLE));
        assert_eq!(role(Some(OsStr::new("/usr/bin/my-app"))), None);
        assert_eq!(role(Some(OsStr::new("/engine-runc/my-app"))), None);
        assert_eq!(role(None), None);
    }

    #[test]
    fn role_links_point_at_this_executable_and_are_refreshed() {
        let root = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", root.path().join("bin/engine-runc")).unwrap();
        let (shim, runc) = role_links(root.path()).unwrap();
        assert_eq!(shim, root.path().join("bin/engine-shim"));
        assert_eq!(std::fs::read_link(&shim).unwrap(), exe);
        assert_eq!(std::fs::read_link(&runc).unwrap(), exe);
        // Idempotent, and nothing else left in the directory.
        role_links(root.path()).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(root.path().join("bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["engine-runc", "engine-shim"]);
    }

    /// With a shim launcher of the caller's, the request cannot be honoured:
    /// refused, and nothing is made under the root.
    #[tokio::test]
    async fn refused_with_a_shim_launcher_of_its_own() {
        let root = tempfile::tempdir().unwrap();
        let err = crate::Engine::builder()
            .root(root.path())
            .shim_launcher(std::sync::Arc::new(engine_shim::Launcher::new("/nonexistent/engine-shim")))
            .single_binary()
            .build()
            .await
            .expect_err("single_binary with shim_launcher");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        assert!(err.to_string().contains("single_binary"), "{err}");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
