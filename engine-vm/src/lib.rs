//! A VM-isolated runtime: each container in its own QEMU micro-VM, behind the
//! same create-flow as `engine-runc` (Kata Containers' design in miniature).
//!
//! ## How a container runs
//!
//! - `create` finds QEMU and the host's kernel, extracts the uncompressed
//!   kernel (the ELF inside `/boot/vmlinuz-*`'s xz payload: PVH direct boot,
//!   no firmware, no decompression in the guest) and builds the initramfs
//!   once (the agent `engine-vm-agent` as `/init`, the 9p/virtio modules in
//!   dependency order), both cached under the runtime's state root keyed by
//!   kernel release and agent hash. It then starts the container's **VM
//!   monitor** (`engine-vm monitor`): the process the shim sees as the
//!   container's init. The monitor starts QEMU (`-M microvm`, KVM when the
//!   host has it, TCG otherwise), waits for the agent's hello and for the
//!   container to be created in the guest (`engine-runc create` there, on
//!   the spec rewritten for the guest), and only then does `create` return.
//! - `start` asks the monitor to start the process (`engine-runc start` in
//!   the guest).
//! - The monitor relays stdin, stdout and stderr between its own stdio (the
//!   shim's pipes, or a pty whose master went to the console socket) and the
//!   agent, forwards signals (`kill`, or signals sent to the monitor itself),
//!   and exits with the process's exit code (`128 + n` for signal `n`), so
//!   the shim's exit reporting, logs and restart logic are unchanged.
//! - `exec` starts an **exec relay** (`engine-vm exec-relay`), the exec'd
//!   process's stand-in on the host, which talks to the monitor.
//! - Memory limit → the container's cgroup in the guest, and the VM's `-m`
//!   (the limit plus [`GUEST_OVERHEAD_MIB`]); CPU quota or cpuset → `-smp`
//!   (and the guest's cgroup); pids limit → the guest's cgroup.
//!
//! ## Time in the guest, and the boot's bounds
//!
//! Under TCG (no usable KVM) QEMU runs with `-icount shift=auto`: the
//! guest's clocks (its TSC, at 1 GHz, and the local APIC timer) follow the
//! instructions it executes, so time the host's scheduler keeps QEMU off a
//! CPU does not pass inside the guest. With the host's clock instead, a
//! vCPU thread descheduled for ~100 ms at the wrong moment of the kernel's
//! local APIC timer calibration (a busy loop timed by the TSC; a microvm
//! has no other timer) made the kernel find the timer "too slow", disable
//! it and hang at its first sleep: the boots that never said hello on a
//! loaded host.
//!
//! The monitor bounds a boot (QEMU's start to the container created in the
//! guest) by the time QEMU ran or did not want to run,
//! [`monitor::BOOT_TIMEOUT`] (time spent waiting for a host CPU, read from
//! its threads' scheduler statistics, does not count), and by
//! [`monitor::BOOT_LIMIT`] in all: a boot slowed down by a loaded host goes
//! on, one that makes no progress fails with an error naming what it was
//! waiting for and quoting the guest's console. The console (the kernel's
//! warnings, the agent's boot steps with the guest's uptime) is kept in the
//! state dir as `console.log`, at most 2 × [`monitor::CONSOLE_MAX`] bytes.
//!
//! ## Why 9p for the root, not a block device
//!
//! The bundle's rootfs is an overlay mount the lifecycle manager already made
//! (image layers + a writable layer). Sharing that directory by virtio-9p
//! keeps the snapshotter, `docker cp`, `docker diff` and the writable layer's
//! lifetime exactly as with `engine-runc`; a block device would need an image
//! file made (and copied back) per container, or a device-mapper snapshotter.
//! Virtio-fs (faster) needs `virtiofsd`, which this platform does not ship.
//! The guest writes through the share with the host's own permission checks
//! (`security_model=passthrough`), so a container writes only inside its
//! rootfs and the bind mounts it was given: each bind's source is shared by
//! its own 9p tag (read-only ones with `readonly=on`), a file through a
//! directory holding only that file, never its siblings.
//!
//! ## Registration
//!
//! The `engine-vm` binary speaks runc's command line over [`VmRuntime`];
//! `engine_lifecycle::ManagerConfig::new` registers it as the runtime `vm`
//! when it finds the binary, so `ContainerBuilder::runtime("vm")`,
//! `docker run --runtime vm` and `engine-lifecycled` all reach it, and the
//! shim drives it as any OCI runtime binary.
//!
//! ```no_run
//! use engine_core::Runtime;
//! # async fn demo() -> engine_core::Result<()> {
//! let rt = engine_vm::VmRuntime::new("/run/engine-vm");
//! let id = engine_core::ContainerId::new("sandboxed")?;
//! let pid = rt.create(&id, std::path::Path::new("/bundles/sandboxed"), Default::default()).await?;
//! rt.start(&id).await?;
//! # let _ = pid; Ok(()) }
//! ```
//!
//! `pause` stops the whole VM (SIGSTOP to QEMU), `resume` lets it run on;
//! `stats` reports the VM as the host sees it (QEMU's CPU time and resident
//! memory, the VM's memory as the limit).
//!
//! Inside the guest the agent builds the container with this project's own
//! Linux runtime (`engine-runtime`, linked into the agent and run as
//! `engine-runc` from the agent's binary): the spec's namespaces, its cgroup
//! (memory and pids limits enforced by the guest's kernel), capabilities,
//! seccomp filter, no_new_privs, masked and read-only paths, exactly as
//! `engine-runc` applies them on the host. The agent is the guest's PID 1:
//! it reaps every orphan and reports the container process's own status.
//!
//! ## Networks
//!
//! A container on the default bridge or a user-defined network gets its
//! network namespace and veth from the lifecycle manager and the network
//! driver, as with `engine-runc`; its VM takes the interfaces over (a tap
//! per interface joined to it by `tc` mirred redirects, a virtio-net device
//! with the interface's MAC, the same address, MTU and routes in the guest:
//! see [`net`]). With `--network none` the container has loopback only. The
//! host's network (`--network host`) and another container's
//! (`--network container:<id>`) are refused: a VM has its own kernel.
//!
//! Left: a spare booted VM kept ready (measured in the repository README:
//! it could serve only containers of its own shape, as microvm's devices
//! cannot be hot-plugged).
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod agent;
pub mod cli;
pub mod host;
pub mod monitor;
pub mod net;
pub mod proto;

use async_trait::async_trait;
use engine_core::{
    ContainerId, ContainerStatus, CreateOptions, Error, ExecOptions, Pid, Result, Runtime, RuntimeState, Signal, Stats,
};
use monitor::{files, Plan, Share};
use proto::{ContainerSpec, ProcessSpec, Reply, Request};
use std::io::{BufRead, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// The smallest memory limit accepted, in bytes (Docker's own minimum).
pub const MIN_MEMORY_LIMIT: u64 = 6 << 20;
/// What a VM gets beyond its container's memory limit, in MiB (the guest
/// kernel's reservations, the agent, the page cache of the 9p root).
pub const GUEST_OVERHEAD_MIB: u64 = 160;
/// The VM memory when the container sets no limit, in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 256;
/// The runtime's name in the lifecycle manager's table.
pub const RUNTIME_NAME: &str = "vm";

/// The VM runtime. State lives under `root/<id>`, the boot cache under `root/.cache`.
#[derive(Clone, Debug)]
pub struct VmRuntime {
    root: PathBuf,
    binary: PathBuf,
    agent: PathBuf,
    kernel: Option<PathBuf>,
    qemu: Option<PathBuf>,
    boot_timeout: Option<std::time::Duration>,
}

impl VmRuntime {
    /// A runtime keeping its state under `root`; the `engine-vm` and
    /// `engine-vm-agent` binaries are found as this project's binaries are.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let find = |n: &str| engine_core::binary::find_engine_binary(n).unwrap_or_else(|| PathBuf::from(n));
        VmRuntime {
            root: root.into(),
            binary: find("engine-vm"),
            agent: find("engine-vm-agent"),
            kernel: None,
            qemu: None,
            boot_timeout: None,
        }
    }

    /// The `engine-vm` binary (runs the monitors and exec relays).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = path.into();
        self
    }

    /// The guest agent binary.
    pub fn agent(mut self, path: impl Into<PathBuf>) -> Self {
        self.agent = path.into();
        self
    }

    /// The kernel image (`vmlinuz-<release>`; default: the newest in `/boot`).
    pub fn kernel(mut self, path: impl Into<PathBuf>) -> Self {
        self.kernel = Some(path.into());
        self
    }

    /// The QEMU binary (default: `qemu-system-x86_64` on `PATH`).
    pub fn qemu(mut self, path: impl Into<PathBuf>) -> Self {
        self.qemu = Some(path.into());
        self
    }

    /// The bound on a boot's running time (the time its QEMU had a CPU or
    /// did not want one; default [`monitor::BOOT_TIMEOUT`]).
    pub fn boot_timeout(mut self, bound: std::time::Duration) -> Self {
        self.boot_timeout = Some(bound);
        self
    }

    fn dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Find QEMU and the kernel, extract and cache the kernel and initramfs.
    pub async fn prepare(&self) -> Result<host::BootFiles> {
        let src = host::Sources {
            qemu: self.qemu.clone(),
            kernel: self.kernel.clone(),
            agent: self.agent.clone(),
            cache: self.root.join(".cache"),
        };
        tokio::task::spawn_blocking(move || host::prepare(&src))
            .await
            .map_err(|e| Error::Other(format!("prepare task: {e}")))?
    }

    fn read_state(&self, id: &ContainerId) -> Result<StateFile> {
        let p = self.dir(id).join("state.json");
        let data = std::fs::read(&p).map_err(|_| Error::not_found("container", id.as_str()))?;
        serde_json::from_slice(&data).map_err(|e| Error::Other(format!("{}: {e}", p.display())))
    }

    async fn request(&self, id: &ContainerId, req: &Request) -> Result<()> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let dir = std::fs::File::open(self.dir(id)).map_err(|_| Error::not_found("container", id.as_str()))?;
        let mut s = tokio::net::UnixStream::connect(monitor::short_path(&dir, files::CONTROL))
            .await
            .map_err(|e| Error::unavailable(format!("container {id}"), format!("its VM monitor: {e}")))?;
        let mut line = serde_json::to_string(req).map_err(|e| Error::Other(e.to_string()))?;
        line.push('\n');
        s.write_all(line.as_bytes()).await.map_err(|e| Error::io("writing to the VM monitor", e))?;
        let mut r = tokio::io::BufReader::new(s);
        let mut answer = String::new();
        tokio::time::timeout(std::time::Duration::from_secs(60), r.read_line(&mut answer))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("VM monitor of {id}"),
                after: std::time::Duration::from_secs(60),
            })?
            .map_err(|e| Error::io("reading the VM monitor's reply", e))?;
        let reply: Reply = serde_json::from_str(&answer).map_err(|e| Error::Runtime {
            runtime: RUNTIME_NAME.into(),
            message: format!("monitor reply {answer:?}: {e}"),
        })?;
        match reply.error {
            Some(e) => Err(Error::Runtime { runtime: RUNTIME_NAME.into(), message: format!("{id}: {e}") }),
            None => Ok(()),
        }
    }

    /// A running container's QEMU pid and its pause marker.
    fn vm(&self, id: &ContainerId) -> Result<(i32, PathBuf)> {
        let s = self.read_state(id)?;
        if !Self::alive(s.pid) {
            return Err(Error::conflict("container", id.as_str(), "container not running"));
        }
        let dir = self.dir(id);
        let qemu = std::fs::read_to_string(dir.join(files::QEMU_PID))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::Other(format!("container {id}: no QEMU pid recorded")))?;
        Ok((qemu, dir.join(files::PAUSED)))
    }

    fn alive(pid: Pid) -> bool {
        // A zombie (exited, not yet reaped by the shim) counts as stopped.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
            .unwrap_or(false)
    }
}

/// A container's record on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct StateFile {
    pid: Pid,
    bundle: PathBuf,
    annotations: std::collections::HashMap<String, String>,
    /// The spec's hooks, run on the host (poststop at delete).
    #[serde(default)]
    hooks: Option<oci_spec::runtime::Hooks>,
}

impl StateFile {
    /// Run the hooks of `kind` on the host with the container's state JSON.
    async fn run_hooks(&self, id: &ContainerId, kind: &'static str, status: ContainerStatus) -> Result<()> {
        let hooks = match kind {
            #[allow(deprecated)]
            "prestart" => self.hooks.as_ref().and_then(|h| h.prestart().clone()),
            "createRuntime" => self.hooks.as_ref().and_then(|h| h.create_runtime().clone()),
            "poststart" => self.hooks.as_ref().and_then(|h| h.poststart().clone()),
            _ => self.hooks.as_ref().and_then(|h| h.poststop().clone()),
        };
        let Some(hooks) = hooks.filter(|h| !h.is_empty()) else { return Ok(()) };
        let state = RuntimeState::new(id.to_string(), status, self.pid, self.bundle.clone())
            .annotations(self.annotations.clone());
        let json = serde_json::to_string(&state).map_err(|e| Error::Other(e.to_string()))?;
        tokio::task::spawn_blocking(move || engine_runtime::linux::hooks::run(kind, Some(&hooks), &json))
            .await
            .map_err(|e| Error::Other(format!("hook task: {e}")))?
    }
}

/// Spawn `binary args` with `stdio`, a ready pipe on fd 3; wait for its
/// first line (`ok` or `error: ...`). Returns the child's pid.
async fn spawn_with_ready(
    binary: &Path,
    args: &[&std::ffi::OsStr],
    stdio: engine_core::StdioSpec,
    env: Option<(&str, &Path)>,
) -> Result<Pid> {
    let (r, w) = nix::unistd::pipe().map_err(|e| Error::io("pipe", e.into()))?;
    let mut cmd = std::process::Command::new(binary);
    cmd.args(args);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let null = || std::process::Stdio::null();
    cmd.stdin(stdio.stdin.map(std::process::Stdio::from).unwrap_or_else(null));
    cmd.stdout(stdio.stdout.map(std::process::Stdio::from).unwrap_or_else(null));
    cmd.stderr(stdio.stderr.map(std::process::Stdio::from).unwrap_or_else(null));
    let wfd = w.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; it puts the ready pipe's write end on fd 3 (without CLOEXEC).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child =
        cmd.spawn().map_err(|e| Error::unavailable("vm runtime", format!("cannot run {}: {e}", binary.display())))?;
    drop(cmd);
    drop(w);
    let pid = child.id() as Pid;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(std::fs::File::from(r)).read_line(&mut line);
        line
    })
    .await
    .map_err(|e| Error::Other(format!("ready task: {e}")))?;
    match line.trim() {
        "ok" => {
            // Not ours to reap: the shim (child subreaper) adopts it once our caller exits,
            // or reaps it when our caller is the shim itself.
            std::mem::forget(child);
            Ok(pid)
        }
        other => {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
            let msg = other.strip_prefix("error: ").unwrap_or(other);
            let msg = if msg.is_empty() { "exited before it was ready" } else { msg };
            Err(Error::Runtime { runtime: RUNTIME_NAME.into(), message: msg.to_string() })
        }
    }
}

/// The monitor's plan from a bundle's `config.json`.
pub fn plan_from_spec(id: &str, bundle: &Path, spec: &oci_spec::runtime::Spec, boot: host::BootFiles) -> Result<Plan> {
    let p = spec.process().as_ref().ok_or_else(|| Error::invalid("config.json", "no process"))?;
    let user = p.user();
    let process = ProcessSpec {
        args: p.args().clone().unwrap_or_default(),
        env: p.env().clone().unwrap_or_default(),
        cwd: p.cwd().to_string_lossy().into_owned(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        terminal: p.terminal().unwrap_or(false),
        oci: None,
    };
    if process.args.is_empty() {
        return Err(Error::invalid("config.json", "process.args is empty"));
    }
    let root = spec.root().as_ref().ok_or_else(|| Error::invalid("config.json", "no root"))?;
    let rootfs = if root.path().is_absolute() { root.path().clone() } else { bundle.join(root.path()) };
    if !rootfs.is_dir() {
        return Err(Error::invalid("config.json", format!("root {} is not a directory", rootfs.display())));
    }
    let mut shares: Vec<Share> = Vec::new();
    let mut guest_mounts = Vec::new();
    let mut binds = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let options = m.options().clone().unwrap_or_default();
        let fstype = m.typ().clone().unwrap_or_default();
        let is_bind = fstype == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        let destination = m.destination().to_string_lossy().into_owned();
        if !is_bind {
            guest_mounts.push(m.clone());
            continue;
        }
        let src = m
            .source()
            .clone()
            .ok_or_else(|| Error::invalid("mount", format!("bind mount on {destination} has no source")))?;
        let meta = std::fs::metadata(&src).map_err(|e| Error::io(format!("bind mount source {}", src.display()), e))?;
        let share = Share {
            tag: format!("share{}", shares.len()),
            source: src.clone(),
            file: !meta.is_dir(),
            readonly: options.iter().any(|o| o == "ro"),
        };
        let tag = match shares.iter().find(|s| s.source == share.source && s.readonly == share.readonly) {
            Some(s) => s.tag.clone(),
            None => {
                shares.push(share.clone());
                share.tag
            }
        };
        let source = match meta.is_dir() {
            false => format!("/mnt/{tag}/{}", src.file_name().unwrap_or_default().to_string_lossy()),
            true => format!("/mnt/{tag}"),
        };
        let mut gm = m.clone();
        gm.set_source(Some(PathBuf::from(source)));
        guest_mounts.push(gm);
        binds.push((destination, src, options.iter().any(|o| o == "ro")));
    }
    // Hooks that run in the container's namespaces would need the host's
    // binaries inside the VM: refused. The runtime-namespace ones
    // (prestart, createRuntime, poststart, poststop) run on the host.
    if let Some(h) = spec.hooks() {
        if h.create_container().as_ref().is_some_and(|v| !v.is_empty())
            || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
        {
            return Err(Error::invalid(
                "hooks",
                "the vm runtime cannot run createContainer or startContainer hooks (host binaries) inside the container's VM",
            ));
        }
    }
    // Namespaces to join (another container's network, pid or ipc
    // namespace) are the host's: a VM cannot enter them. The one exception
    // is the network namespace the manager made for this very container
    // (its file is named after the container): the VM takes over its
    // interfaces (see [`net`]) and the container uses the guest's network.
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    let mut netns = None;
    for ns in &namespaces {
        let Some(path) = ns.path() else { continue };
        if ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network && path.file_name() == Some(id.as_ref()) {
            netns = Some(path.clone());
            continue;
        }
        return Err(Error::invalid(
            "namespaces",
            format!(
                "the vm runtime cannot join the host's {:?} namespace {} (the container runs in its own VM: it can have its own network on a bridge, not another container's)",
                ns.typ(),
                path.display()
            ),
        ));
    }
    if !namespaces.iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network) {
        return Err(Error::invalid(
            "network mode",
            "the vm runtime cannot share the host's network (--network host): the container runs in its own VM with its own kernel; use a bridge network or none",
        ));
    }
    let resources = spec.linux().as_ref().and_then(|l| l.resources().clone());
    // The limit is the container's cgroup inside the guest; the VM gets that
    // much plus room for the guest kernel and the agent.
    let limit = resources.as_ref().and_then(|r| r.memory().as_ref()).and_then(|m| m.limit()).filter(|l| *l > 0);
    let memory_mib = match limit {
        Some(limit) => {
            if (limit as u64) < MIN_MEMORY_LIMIT {
                return Err(Error::invalid(
                    "memory limit",
                    format!("{limit} bytes is below the minimum of {MIN_MEMORY_LIMIT} bytes (6 MiB)"),
                ));
            }
            (limit as u64).div_ceil(1 << 20) + GUEST_OVERHEAD_MIB
        }
        None => DEFAULT_MEMORY_MIB,
    };
    let host_cpus = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let cpu = resources.as_ref().and_then(|r| r.cpu().clone());
    let mut cpus = 1u32;
    if let Some(c) = &cpu {
        if let (Some(q), Some(p)) = (c.quota().filter(|q| *q > 0), c.period().filter(|p| *p > 0)) {
            cpus = (q as u64).div_ceil(p).max(1) as u32;
        } else if let Some(set) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            cpus = cpuset_count(set).ok_or_else(|| Error::invalid("cpuset", format!("{set:?} is not a cpu list")))?;
        }
    }
    let cpus = cpus.min(host_cpus).max(1);
    // The guest's copy of the spec: the root is the 9p share, bind sources
    // are the shares' mounts; everything else (namespaces, cgroups, mounts,
    // capabilities, seccomp, masked paths) the guest's runtime applies as is.
    let mut guest = spec.clone();
    let mut groot = root.clone();
    groot.set_path(PathBuf::from(agent::GUEST_ROOTFS));
    guest.set_root(Some(groot));
    guest.set_mounts(Some(guest_mounts));
    guest.set_hooks(None);
    if netns.is_some() {
        // The guest's own network is the container's.
        if let Some(linux) = guest.linux_mut() {
            let kept: Vec<_> = namespaces
                .iter()
                .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network)
                .cloned()
                .collect();
            linux.set_namespaces(Some(kept));
        }
    }
    let oci = serde_json::to_value(&guest).map_err(|e| Error::Other(format!("encoding the guest's spec: {e}")))?;
    Ok(Plan {
        id: id.to_string(),
        boot,
        memory_mib,
        memory_limit: limit.map(|l| l as u64),
        cpus,
        rootfs,
        shares,
        container: ContainerSpec { shares: Vec::new(), oci, network: Default::default() },
        process,
        console_socket: None,
        binds,
        netns,
        boot_timeout_ms: None,
    })
}

/// How many CPUs a cpuset list (`0-2,5`) names.
fn cpuset_count(set: &str) -> Option<u32> {
    let mut n = 0;
    for part in set.split(',') {
        match part.split_once('-') {
            Some((a, b)) => n += b.trim().parse::<u32>().ok()?.checked_sub(a.trim().parse::<u32>().ok()?)? + 1,
            None => {
                part.trim().parse::<u32>().ok()?;
                n += 1
            }
        }
    }
    Some(n)
}

#[async_trait]
impl Runtime for VmRuntime {
    fn name(&self) -> &str {
        RUNTIME_NAME
    }

    async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Pid> {
        let dir = self.dir(id);
        if dir.join("state.json").exists() {
            return Err(Error::conflict("container", id.as_str(), "already exists"));
        }
        let config = bundle.join("config.json");
        let data = std::fs::read(&config).map_err(|e| Error::io(format!("reading {}", config.display()), e))?;
        let spec: oci_spec::runtime::Spec =
            serde_json::from_slice(&data).map_err(|e| Error::invalid(config.display().to_string(), e.to_string()))?;
        let boot = self.prepare().await?;
        let mut plan = plan_from_spec(id.as_str(), bundle, &spec, boot)?;
        plan.container.shares = plan.shares.iter().map(|s| s.tag.clone()).collect();
        plan.console_socket = opts.stdio.console_socket.clone();
        plan.boot_timeout_ms = self.boot_timeout.map(|b| b.as_millis() as u64);
        if plan.process.terminal && plan.console_socket.is_none() {
            return Err(Error::invalid("process.terminal", "a terminal needs a console socket"));
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let cleanup = |e: Error| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        let json = serde_json::to_vec_pretty(&plan).map_err(|e| Error::Other(e.to_string()))?;
        host::write_atomic(&dir.join(files::PLAN), &json).map_err(cleanup)?;
        let args: [&std::ffi::OsStr; 2] = ["monitor".as_ref(), dir.as_os_str()];
        let pid = spawn_with_ready(&self.binary, &args, opts.stdio, None).await.map_err(cleanup)?;
        let annotations = spec.annotations().clone().unwrap_or_default();
        let state = StateFile { pid, bundle: bundle.to_path_buf(), annotations, hooks: spec.hooks().clone() };
        let mut r = serde_json::to_vec(&state)
            .map_err(|e| Error::Other(e.to_string()))
            .and_then(|d| host::write_atomic(&dir.join("state.json"), &d));
        if let Some(pf) = &opts.pid_file {
            r = r.and(host::write_atomic(pf, pid.to_string().as_bytes()));
        }
        if r.is_ok() {
            r = state.run_hooks(id, "prestart", ContainerStatus::Created).await;
        }
        if r.is_ok() {
            r = state.run_hooks(id, "createRuntime", ContainerStatus::Created).await;
        }
        if let Err(e) = r {
            // SAFETY: kill(2) of the monitor we just started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(cleanup(e));
        }
        Ok(pid)
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let s = self.read_state(id)?;
        self.request(id, &Request::Start).await?;
        // As runc: a failing poststart hook is logged, the container runs on.
        if let Err(e) = s.run_hooks(id, "poststart", ContainerStatus::Running).await {
            tracing::warn!(%id, "poststart hook: {e}");
        }
        Ok(())
    }

    async fn state(&self, id: &ContainerId) -> Result<RuntimeState> {
        let s = self.read_state(id)?;
        let dir = self.dir(id);
        let status = if !Self::alive(s.pid) {
            ContainerStatus::Stopped
        } else if dir.join(files::PAUSED).exists() {
            ContainerStatus::Paused
        } else if dir.join(files::RUNNING).exists() {
            ContainerStatus::Running
        } else {
            ContainerStatus::Created
        };
        Ok(RuntimeState::new(id.to_string(), status, s.pid, s.bundle).annotations(s.annotations))
    }

    async fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<()> {
        let s = self.read_state(id)?;
        if !Self::alive(s.pid) {
            return Err(Error::conflict("container", id.as_str(), "container not running"));
        }
        if signal.number() == libc::SIGKILL && self.dir(id).join(files::PAUSED).exists() {
            // A frozen VM cannot act on the signal: let it run to die.
            self.resume(id).await?;
        }
        match self.request(id, &Request::Kill { signal: signal.number(), all }).await {
            Ok(()) => Ok(()),
            Err(_) if signal.number() == libc::SIGKILL => {
                // The monitor does not answer: SIGKILL it (QEMU dies with it).
                // SAFETY: kill(2) of the container's monitor.
                unsafe { libc::kill(s.pid, libc::SIGKILL) };
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        let s = self.read_state(id)?;
        if Self::alive(s.pid) {
            if !force {
                return Err(Error::conflict("container", id.as_str(), "cannot delete a running container"));
            }
            // SAFETY: kill(2) of the container's monitor; QEMU dies with it (PDEATHSIG).
            unsafe { libc::kill(s.pid, libc::SIGKILL) };
        }
        let dir = self.dir(id);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
        // As runc: poststop hooks run once the container is gone; a failure is logged.
        if let Err(e) = s.run_hooks(id, "poststop", ContainerStatus::Stopped).await {
            tracing::warn!(%id, "poststop hook: {e}");
        }
        Ok(())
    }

    async fn exec(&self, id: &ContainerId, process: &oci_spec::runtime::Process, opts: ExecOptions) -> Result<Pid> {
        let s = self.read_state(id)?;
        if !Self::alive(s.pid) {
            return Err(Error::conflict("container", id.as_str(), "container not running"));
        }
        let user = process.user();
        let spec = ProcessSpec {
            args: process.args().clone().unwrap_or_default(),
            env: process.env().clone().unwrap_or_default(),
            cwd: process.cwd().to_string_lossy().into_owned(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            terminal: process.terminal().unwrap_or(false),
            oci: Some(
                serde_json::to_value(process).map_err(|e| Error::Other(format!("encoding the exec's process: {e}")))?,
            ),
        };
        if spec.args.is_empty() {
            return Err(Error::invalid("exec process", "args is empty"));
        }
        let dir = self.dir(id);
        let tmp = tempfile_in(&dir, "exec", &serde_json::to_vec(&spec).map_err(|e| Error::Other(e.to_string()))?)?;
        let console = opts.stdio.console_socket.clone();
        let args: [&std::ffi::OsStr; 3] = ["exec-relay".as_ref(), dir.as_os_str(), tmp.as_os_str()];
        let env = console.as_deref().map(|c| ("ENGINE_VM_CONSOLE_SOCKET", c));
        let r = spawn_with_ready(&self.binary, &args, opts.stdio, env).await;
        let _ = std::fs::remove_file(&tmp);
        let pid = r?;
        if let Some(pf) = &opts.pid_file {
            host::write_atomic(pf, pid.to_string().as_bytes())?;
        }
        Ok(pid)
    }

    /// Stops the whole VM (QEMU gets SIGSTOP): every process in it is frozen.
    async fn pause(&self, id: &ContainerId) -> Result<()> {
        let (qemu, paused) = self.vm(id)?;
        if paused.exists() {
            return Err(Error::conflict("container", id.as_str(), "already paused"));
        }
        host::write_atomic(&paused, b"")?;
        // SAFETY: kill(2) of the container's QEMU.
        unsafe { libc::kill(qemu, libc::SIGSTOP) };
        Ok(())
    }

    /// Lets a paused VM run on (SIGCONT to QEMU).
    async fn resume(&self, id: &ContainerId) -> Result<()> {
        let (qemu, paused) = self.vm(id)?;
        if !paused.exists() {
            return Err(Error::conflict("container", id.as_str(), "not paused"));
        }
        // SAFETY: kill(2) of the container's QEMU.
        unsafe { libc::kill(qemu, libc::SIGCONT) };
        std::fs::remove_file(&paused).map_err(|e| Error::io(format!("removing {}", paused.display()), e))
    }

    /// The VM as the host sees it: QEMU's CPU time and resident memory
    /// (what the container costs the host), the VM's memory as the limit.
    async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        let (qemu, _) = self.vm(id)?;
        let stat = std::fs::read_to_string(format!("/proc/{qemu}/stat"))
            .map_err(|e| Error::io(format!("reading QEMU's stats of {id}"), e))?;
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        // SAFETY: sysconf with a valid name.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).map(|t| t * 1_000_000_000 / hz);
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
        let (user, system) = (ticks(11), ticks(12));
        let status = std::fs::read_to_string(format!("/proc/{qemu}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .map(|k| k * 1024)
        };
        let plan: Option<Plan> =
            std::fs::read(self.dir(id).join(files::PLAN)).ok().and_then(|d| serde_json::from_slice(&d).ok());
        Ok(Stats::default()
            .cpu_usage_ns(user.zip(system).map(|(u, s)| u + s))
            .cpu_user_ns(user)
            .cpu_system_ns(system)
            .memory_usage(kib("VmRSS:"))
            .memory_max_usage(kib("VmHWM:"))
            .memory_limit(plan.map(|p| p.memory_limit.unwrap_or(p.memory_mib << 20))))
    }

    async fn ps(&self, id: &ContainerId) -> Result<Vec<Pid>> {
        let s = self.read_state(id)?;
        Ok(if Self::alive(s.pid) { vec![s.pid] } else { Vec::new() })
    }
}

/// Write `data` to a new file in `dir` named after `prefix` and this process.
fn tempfile_in(dir: &Path, prefix: &str, data: &[u8]) -> Result<PathBuf> {
    let mut buf = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    let p = dir.join(format!(".{prefix}-{}-{}.json", std::process::id(), hex::encode(buf)));
    host::write_atomic(&p, data)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpusets_are_counted() {
        assert_eq!(cpuset_count("0-2,5"), Some(4));
        assert_eq!(cpuset_count("3"), Some(1));
        assert_eq!(cpuset_count("x"), None);
    }
}
