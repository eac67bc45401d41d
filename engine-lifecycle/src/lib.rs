//! # engine-lifecycle
//!
//! containerd's role: the default [`LifecycleManager`]. It turns an image and a
//! [`ContainerConfig`](engine_core::ContainerConfig) into an OCI bundle, launches
//! one shim per container, tracks every container in a redb database (one
//! durable transaction per change), monitors exits, applies restart policies,
//! and recovers after a restart: a new [`Manager`] on the same root reconnects
//! to running shims and records the exits that happened while it was away.
//!
//! The create-flow: validate (bad input fails before anything exists), resolve
//! the image ([`ImageStore::inspect`](engine_core::ImageStore::inspect)),
//! prepare the rootfs snapshot; for `bridge` and user networks, make the
//! container's network namespace (a bind-mounted file, `<root>/netns/<id>`)
//! and attach it through the configured
//! [`NetworkDriver`](engine_core::NetworkDriver) (addresses, published
//! ports), then hand the runtime its path; derive the runtime spec (image config, then
//! hostname, terminal, mounts, resources, network, read-only root, cgroups
//! path), write `config.json` atomically, persist the record, launch the shim
//! (which runs the runtime's `create`). Any failure undoes every step.
//!
//! The same trait is served over gRPC by [`serve`] (the `engine-lifecycled`
//! binary) and spoken by [`RemoteManager`], so a daemon can use the manager
//! in-process or in its own process through one interface.
//!
//! ```no_run
//! # async fn demo() -> engine_core::Result<()> {
//! use engine_core::{ContainerConfig, LifecycleManager, WaitCondition};
//! use std::sync::Arc;
//! let images = Arc::new(engine_image::Store::open("/var/lib/engine/images")?);
//! let shims = Arc::new(engine_shim::Launcher::default());
//! let mgr = engine_lifecycle::Manager::new(
//!     engine_lifecycle::ManagerConfig::new("/var/lib/engine", images, shims)).await?;
//! let c = mgr.create(ContainerConfig::new("busybox").cmd(Some(vec!["echo".into(), "hi".into()]))).await?;
//! mgr.start(&c.id).await?;
//! let exit = mgr.wait(&c.id, WaitCondition::NotRunning).await?;
//! assert_eq!(exit.code, 0);
//! mgr.remove(&c.id, false).await?;
//! # Ok(()) }
//! ```
//!
//! ## On disk
//! Under the root: `containers.redb` (the records), `containers/<id>/` (the
//! bundle: `config.json`, the `rootfs` mount point, the json-file log),
//! `shims/<id16>-<n>/` (the n-th shim's socket, pid and exit record; a new
//! state dir per launch, so an exiting shim never races its successor),
//! `volumes/<name>/` and `runtime/<name>/` (each runtime's state root).
//!
//! ## Names: `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`
//! Each container gets the three files in its bundle (`hosts`, `hostname`,
//! `resolv.conf`), bind-mounted read-write over the image's, as docker does
//! (unless the user mounts something there): localhost lines, `--add-host`
//! lines and its own address and hostname; `--hostname`; the host's name
//! servers without loopback ones (they mean nothing in another network
//! namespace; docker's public fallbacks when none remain), or `--dns`,
//! `--dns-search`, `--dns-option`. `host` mode gets the host's files plus
//! `--add-host`; `container:<x>` mode shares x's files.
//!
//! Containers on the same user-defined network resolve each other by name,
//! hostname and `--network-alias` through **hosts files kept current by the
//! manager**, not an embedded DNS server: whenever a container joins
//! (create) or leaves (remove) a network, the hosts files of the others on
//! it are rebuilt from the records and rewritten in place (the bind mount
//! pins the inode, so no rename). Why: the manager already sees every
//! attach and detach, so there is nothing to keep in sync; no resolver
//! process or port per namespace (memory per container), nothing that has
//! to run for lookups to work (a container keeps resolving its neighbours
//! while the manager restarts); every libc resolver (glibc, musl, busybox)
//! reads `/etc/hosts` first; and the container's `resolv.conf` points
//! straight at the host's upstream servers, so no forwarding is needed.
//! The cost: a program that caches `/etc/hosts` at start misses later
//! neighbours, and names are not served over DNS (`nslookup db` asks the
//! upstream server). The default `bridge` network does not resolve names,
//! as in docker.
//!
//! ## Owner binding
//! A container whose config names an `owner_pid` is killed and deleted by its
//! shim when that process dies (even by SIGKILL); the shim then unmounts its
//! rootfs (the owner mounted it), so nothing stays mounted. The manager then removes
//! it (record, bundle, rootfs): at once if it is running, else when the next
//! manager on the root starts, so no `Dead` record outlives its owner.
//!
//! ## Runtimes
//! Each container names its runtime (`engine-runc` by default, `runc`, `crun`,
//! any configured name, or an absolute path to a runc-compatible binary); its
//! state root is `<root>/runtime/<name>`. A Rust type implementing
//! [`engine_core::Runtime`] is hosted the same way: build a shim binary with
//! `engine-shim`'s library around that type and hand the manager a launcher for
//! it (see the `swap_runtime` example at the workspace root).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod etc;
mod grpc;
mod image_config;
mod limits;
mod logs;
mod manager;
mod names;
mod netns;
mod seccomp;
mod spec;
mod store;
mod top;
mod volumes;

pub use config::{
    find_engine_binary, find_in_path, ManagerConfig, DEFAULT_MEMORY_RESERVE, DEFAULT_RUNTIME, VM_CREATE_TIMEOUT,
    VM_RUNTIME,
};
pub use engine_core::LifecycleManager;
pub use grpc::client::{RemoteManager, RemoteNetwork};
pub use grpc::pb;
pub use grpc::server::{serve, serve_listener, serve_listener_with_network, serve_with_network, serve_with_shutdown};
pub use limits::raise_open_files_limit;
pub use manager::Manager;
