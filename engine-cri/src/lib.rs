//! # engine-cri
//!
//! A Kubernetes CRI v1 server (`RuntimeService` and `ImageService`) over the
//! engine's [`LifecycleManager`](engine_core::LifecycleManager) and [`ImageStore`](engine_core::ImageStore): kubelet drives a node's
//! engine through it as it drives containerd's CRI plugin or CRI-O.
//!
//! The gRPC types are generated (tonic, prost) from the published CRI v1
//! definitions, `k8s.io/cri-api` `pkg/apis/runtime/v1/api.proto` (Apache-2.0),
//! vendored as `proto/api.proto`; [`pb`] holds them, clients included.
//!
//! ## A separate binary, not a mode of `engine-lifecycled`
//! `engine-cri` is its own binary (and this library), holding the manager
//! in-process as `engined` does. Why: CRI is a front end, like the Docker API,
//! with its own protocol, its own socket and its own release cadence (the CRI
//! version follows Kubernetes); keeping it out of `engine-lifecycled` keeps
//! the manager free of Kubernetes concepts (pods, sandboxes, log paths),
//! and lets a node run the CRI server without `engined`. Restart safety
//! comes from the tiers below: containers are held by their shims and
//! recorded by the manager, and every CRI fact (sandbox config, container
//! config, owning sandbox) is stored as labels on the engine's containers,
//! so a restarted server reads everything back from the manager and keeps
//! no state of its own.
//!
//! ## Sandboxes
//! A pod sandbox is an engine container running a pause process: the
//! built-in image [`PAUSE_IMAGE`] (made at start from the host's static
//! busybox, so no pause image is pulled) runs `sleep` under the engine's
//! init (`engine-init`, which forwards SIGTERM, so a sandbox stops at
//! once). It holds the pod's network namespace. With `--network-driver cni`
//! (the default, kubelet's node conventions: `/etc/cni/net.d`,
//! `/usr/lib/cni` then `/opt/cni/bin`) the sandbox joins the CNI driver's
//! default network (the first conflist; Debian's bridge, host-local,
//! portmap, firewall, tuning when the directory has none): the pod IP in
//! `PodSandboxStatus`, `hostPort` mappings through `portmap`. A
//! `hostNetwork` pod uses the host's namespace. With `--network-driver
//! none` a pod gets a loopback-only namespace, `NetworkReady` is false and
//! port mappings are refused. The pod's containers join the sandbox's
//! namespace (`container:<sandbox>` network mode), so they reach each
//! other on `127.0.0.1`, and share its `/etc/resolv.conf` (written from
//! the sandbox config's DNS servers, searches and options) and
//! `/etc/hosts`; each gets the pod's hostname.
//!
//! ## Containers
//! `CreateContainer` maps the CRI config onto the engine's: command and
//! args, env, working dir, binds, tty/stdin, the pod's hostname; resources
//! (memory, swap, CPU quota/period and shares, cpuset CPUs) into its
//! cgroup; the security context: run-as user/group/username, capabilities
//! (add/drop), privileged, `no_new_privs`, readonly rootfs, supplemental
//! groups, masked and read-only paths, seccomp (`RuntimeDefault` is the
//! engine's default profile, `Unconfined`, `Localhost` a JSON profile
//! file; no profile is unconfined, as CRI says).
//!
//! ## OOM score adjustment: `restrict_oom_score_adj`
//! kubelet asks for OOM score adjustments (-997 for guaranteed pods). A
//! process without `CAP_SYS_RESOURCE` (root inside many containers and
//! sandboxes, this project's CI machine among them) cannot lower its
//! score, so every such container would fail to start, as containerd's
//! CRI plugin fails here. Like containerd's `restrict_oom_score_adj`,
//! [`CriServer::restrict_oom_score_adj`] (`engine-cri
//! --restrict-oom-score-adj`, on by default) raises what is asked to the
//! server's own adjustment; values outside -1000..=1000 are refused.
//!
//! ## Cgroups, resources, runtime handlers
//! The sandbox's `linux.cgroup_parent`, as kubelet's cgroupfs driver sends
//! it (`/kubepods/burstable/pod<uid>`), is the cgroup parent of the
//! sandbox and of every container of the pod (the systemd driver's slice
//! names are refused); without one, `engine-cri --cgroup-parent`.
//! `UpdateContainerResources` changes a running container's memory limit,
//! CPU quota/period, shares and cpuset through the manager, the shim and
//! the runtime (`update --resources`); an OOM score adjustment may be
//! repeated, not changed. RuntimeClass handlers map to the manager's
//! runtimes: the empty handler is its default (`engine-runc`), and every
//! other runtime it found (`runc`, `crun`, `youki` on `PATH`) is a handler
//! of the same name ([`CriServer::runtime_handler`]); `Status` lists them.
//! `PodSandboxStats` sums CPU, memory and processes over the sandbox and
//! its running containers and lists the containers' stats (no network
//! usage yet).
//!
//! ## Streaming: Exec, Attach, PortForward
//! kubelet's URL flow: the RPC checks the request (a running container, a
//! ready sandbox, streams asked for, no stderr with a terminal) and
//! returns `http://<addr>/<exec|attach|portforward>/<token>` on the
//! streaming server ([`CriServer::with_streaming`]; `engine-cri
//! --streaming-address`, `127.0.0.1:0` by default). The token is good for
//! one connection within a minute. The client connects with WebSocket
//! and Kubernetes' channel protocol, `v5.channel.k8s.io` or
//! `v4.channel.k8s.io`: each binary message starts with its channel
//! (0 stdin, 1 stdout, 2 stderr, 3 error: a `metav1.Status` JSON at the
//! end, `Success` or `NonZeroExitCode` with the exit code as its cause;
//! 4 resize, `{"Width":..,"Height":..}`; with v5, `[255, 0]` closes
//! stdin). Port forwarding connects to `127.0.0.1:<port>` inside the
//! pod's network namespace; each port `i` has data channel `2i` and error
//! channel `2i+1`, and the server's first frame on each carries the port
//! (two bytes, little-endian). SPDY (`SPDY/3.1` upgrades, kubectl's
//! fallback) is not served: a request without one of the two WebSocket
//! subprotocols is answered 400.
//!
//! ## Not done yet (refused, never ignored)
//! Shared PID namespaces and host PID/IPC, pod sysctls, SELinux labels,
//! AppArmor profiles, ambient capabilities, devices, SCTP ports, cpuset
//! mems, hugepage limits, unified cgroup settings, CFS periods other than
//! the default 100 ms, token registry auth,
//! the systemd cgroup driver, SPDY streaming. These answer
//! `Unimplemented` (tonic's default): events, checkpoints, metrics.
//!
//! ## Logs
//! A container whose sandbox has a `log_directory` and that has a
//! `log_path` logs through the engine's `cri` log driver
//! ([`engine_core::logs::CRI`]): the shim writes
//! `<RFC 3339 time> <stdout|stderr> <P|F> <line>` lines to
//! `<log_directory>/<log_path>`, so logs keep flowing while the CRI server
//! is down or restarting. kubelet rotates these files (rename, then
//! `ReopenContainerLog`: the shim reopens the file at its path), so the
//! `cri` driver refuses `max-size`/`max-file` rotation of its own.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod service;
mod streaming;

pub use service::{CriServer, PAUSE_IMAGE};

/// The CRI v1 types, server traits and clients generated from `api.proto`.
#[allow(missing_docs, clippy::all, rustdoc::all)]
pub mod pb {
    tonic::include_proto!("runtime.v1");
}

/// The runtime name [`pb::VersionResponse`] reports.
pub const RUNTIME_NAME: &str = "engine";
/// The CRI version this server speaks.
pub const CRI_VERSION: &str = "v1";
