//! # engine-build
//!
//! Image builds from a Dockerfile, the classic builder's way: every step
//! becomes an image (a layer, or config only), `RUN` steps run as real
//! containers through the engine's [`engine_core::LifecycleManager`] (so any
//! runtime plugged in there builds, a VM-isolated one included), and file
//! steps (`COPY`, `ADD`, `WORKDIR`) write into a root filesystem prepared by
//! the [`engine_core::ImageStore`], which commits its upper dir as the
//! layer. The image config is the one dockerd writes: history with
//! `created_by`, `Env`, `Cmd`, `Entrypoint`, `ExposedPorts`, `Volumes`,
//! `Labels`, `User`, `WorkingDir`, `StopSignal`, `Healthcheck`, `OnBuild`,
//! `Shell`.
//!
//! The Dockerfile parser ([`parse`]) is ours, not a crate: the one Rust
//! crate for it (`dockerfile-parser`) is unmaintained since 2021 and knows
//! neither here-documents nor the escape directive, and what the builder
//! needs (directives, continuations, flags, exec/shell forms, here-documents,
//! shell-style word expansion) is a few hundred lines. Parse errors name
//! the line.
//!
//! The cache works like the classic builder's: a step is reused when its
//! parent image, its instruction (with the build args it sees and, for
//! `COPY`/`ADD`, a hash of the sources' content, names, modes and owners)
//! and the config it starts from are the same. The index lives in
//! `<root>/cache.json` (written atomically), so it survives restarts;
//! entries whose image was removed are misses.
//!
//! `COPY` never leaves its source root: paths resolve with openat2
//! `RESOLVE_IN_ROOT` ([`engine_archive::ContainerRoot`]), and symbolic links
//! are copied as links, never followed, wherever they point.
//!
//! Not supported (refused with an error, never ignored): `ADD` from a URL,
//! here-documents in `COPY`/`ADD`, `RUN --mount`, `FROM --platform` other
//! than the host's.
//!
//! ```no_run
//! # async fn demo(manager: std::sync::Arc<dyn engine_core::LifecycleManager>,
//! #               images: std::sync::Arc<dyn engine_core::ImageStore>) -> engine_core::Result<()> {
//! use engine_build::{BuildOptions, Builder};
//! let builder = Builder::new(manager, images, "/var/lib/engine/build")?;
//! let opts = BuildOptions::default().tags(vec!["app:1".into()]);
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! tokio::spawn(async move { while let Some(e) = rx.recv().await { print!("{}", engine_build::BuildEvent::text(&e)) } });
//! let out = builder.build("/src/app".as_ref(), &opts, Some(tx)).await?;
//! println!("built {}", out.image.id);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod builder;
mod commit;
mod copy;
pub mod ignore;
pub mod parse;

pub use builder::{apply_changes, BuildEvent, BuildOptions, BuildOutput, Builder};
pub use commit::{commit_container, container_run_config, CommitOptions};
