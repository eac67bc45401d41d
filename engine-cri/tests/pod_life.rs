//! A CRI client (tonic, from the same `api.proto`) drives a real
//! `engine-cri` binary on its own socket, root and cgroup parent: a pod's
//! life with real containers, bad input, and a SIGKILLed server.

#[path = "../../engine-daemon/tests/common/leftovers.rs"]
#[allow(dead_code)]
mod leftovers;

use engine_core::ImageStore;
use engine_cri::pb;
use engine_cri::pb::image_service_client::ImageServiceClient;
use engine_cri::pb::runtime_service_client::RuntimeServiceClient;
use leftovers::{remove_cgroup_parent, Leftovers};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// An `engine-cri` with its own root, socket and cgroup parent.
struct Cri {
    dir: tempfile::TempDir,
    child: Option<Child>,
    cgroup_parent: String,
    /// With pod networking: the namespace the CNI plugins treat as the
    /// host's (bridge, host ports), the test's own.
    host_netns: Option<engine_network::NetnsFile>,
    flags: Vec<String>,
}

impl Cri {
    /// With `networked`, pods get CNI networking (Debian's plugins, the
    /// conflist the driver writes) in a host namespace of the test's own;
    /// else `--network-driver none`.
    async fn start(networked: bool) -> Cri {
        let dir = tempfile::Builder::new().prefix("cri").rand_bytes(6).tempdir_in("/tmp").unwrap();
        let name = dir.path().file_name().unwrap().to_string_lossy().into_owned();
        let mut flags: Vec<String> = vec!["--network-driver".into(), "none".into()];
        let mut host_netns = None;
        if networked {
            let ns_path = dir.path().join("hostns");
            host_netns = Some(engine_network::NetnsFile::create(&ns_path).await.expect("test host netns"));
            flags = ["--network-driver", "cni", "--cni-bin-dir", "/usr/lib/cni"].map(String::from).to_vec();
            flags.extend(["--cni-conf-dir".into(), dir.path().join("net.d").display().to_string()]);
            flags.extend(["--network-host-netns".into(), ns_path.display().to_string()]);
        }
        let mut c = Cri { dir, child: None, cgroup_parent: format!("/engine-test-{name}"), host_netns, flags };
        c.spawn();
        c
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("cri.sock")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("cri.log")).unwrap();
        let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_engine-cri")).parent().unwrap().to_path_buf();
        let child = Command::new(env!("CARGO_BIN_EXE_engine-cri"))
            .arg("--listen")
            .arg(self.sock())
            .arg("--root")
            .arg(self.root())
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .args(["--log-level", "debug"])
            .args(&self.flags)
            .env("ENGINE_BIN_DIR", bin_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn engine-cri");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(self.sock()).is_err() {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("engine-cri exited early ({st}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "engine-cri did not listen within 30 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cri.log")).unwrap_or_default()
    }

    async fn channel(&self) -> Channel {
        let sock = self.sock();
        tonic::transport::Endpoint::from_static("http://[::]:50051")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let sock = sock.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(sock).await?))
                }
            }))
            .await
            .expect("connect to engine-cri")
    }

    async fn clients(&self) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
        let ch = self.channel().await;
        (RuntimeServiceClient::new(ch.clone()), ImageServiceClient::new(ch))
    }

    /// Stop and remove every pod, through the server.
    fn remove_all_pods(&self) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(self.remove_all_pods_async());
    }

    async fn remove_all_pods_async(&self) {
        let (mut rs, _) = self.clients().await;
        if let Ok(l) = rs.list_pod_sandbox(pb::ListPodSandboxRequest::default()).await {
            for p in l.into_inner().items {
                let _ = rs.stop_pod_sandbox(pb::StopPodSandboxRequest { pod_sandbox_id: p.id.clone() }).await;
                let _ = rs.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: p.id }).await;
            }
        }
    }

    fn leftovers(&self) -> Leftovers {
        Leftovers::count(&self.root(), &self.cgroup_parent, &[self.pid()])
    }

    /// The count once it is back to `before` (at most 20 s): a removed
    /// container's shim exits by itself just after its delete, so a count
    /// taken at once may still see it.
    fn settled(&self, before: &Leftovers) -> Leftovers {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.leftovers();
            let back = (now.mounts, now.cgroups, now.container_dirs)
                == (before.mounts, before.cgroups, before.container_dirs)
                && now.holders.iter().all(|p| before.holders.contains(p));
            if back || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Assert that the count is back to `before` (see [`Cri::settled`]):
    /// no mount, cgroup, container directory or process left behind.
    fn assert_settled(&self, before: &Leftovers) {
        let after = self.settled(before);
        assert_eq!(
            (after.mounts, after.cgroups, after.container_dirs),
            (before.mounts, before.cgroups, before.container_dirs)
        );
        assert!(
            after.holders.iter().all(|p| before.holders.contains(p)),
            "processes still holding files under the root: {after:?} vs {before:?}"
        );
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
        // Whatever a failed test left: every pod goes, through the server.
        // (On a thread of its own: drop may run inside the test's runtime.)
        let this = &*self;
        std::thread::scope(|s| s.spawn(|| this.remove_all_pods()).join().ok());
        if let Some(c) = &self.child {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let root = self.dir.path().to_string_lossy().into_owned();
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut mounts: Vec<String> = mi
                .lines()
                .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
                .filter(|m| m.starts_with(&root))
                .collect();
            mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in mounts {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        remove_cgroup_parent(&self.cgroup_parent);
        // The test's host namespace goes, and every link and rule in it.
        drop(self.host_netns.take());
    }
}

/// Debian's docker-registry on 127.0.0.1:<free port>, storage in a temp dir.
struct Registry {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        Registry::start_with(None)
    }

    /// With `auth` (user, password), the registry asks for basic auth (htpasswd).
    fn start_with(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        let data = dir.path().join("data");
        let auth_cfg = match auth {
            None => String::new(),
            Some((user, password)) => {
                let out = Command::new("htpasswd").args(["-Bbn", user, password]).output().unwrap();
                assert!(out.status.success());
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).unwrap();
                format!("auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n", file.display())
            }
        };
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth_cfg}",
                data.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "registry did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { addr, child, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Push a busybox image (Debian's busybox-static) to `reg` as `name`, from
/// a store of the test's own.
async fn push_busybox(reg: &Registry, dir: &Path, name: &str) -> String {
    push_busybox_as(reg, dir, name, None).await
}

/// [`push_busybox`] with registry credentials.
async fn push_busybox_as(reg: &Registry, dir: &Path, name: &str, auth: Option<(&str, &str)>) -> String {
    let auth =
        auth.map(|(u, p)| engine_core::RegistryAuth::default().username(Some(u.into())).password(Some(p.into())));
    let reference = format!("{}/{name}", reg.addr);
    let rootfs = dir.join("bb-rootfs");
    let tar = dir.join("bb.tar");
    engine_image::build::busybox_rootfs(&rootfs).unwrap();
    engine_image::build::image_from_dir(&rootfs, &reference, &tar, &Default::default()).unwrap();
    let store = engine_image::Store::open(dir.join("store")).unwrap();
    store.import(&tar, engine_core::ArchiveFormat::DockerArchive, None, None).await.unwrap();
    store.push(&reference, auth.as_ref(), None).await.unwrap();
    reference
}

fn pod_config(name: &str, log_dir: &Path) -> pb::PodSandboxConfig {
    pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "web".into(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        dns_config: Some(pb::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        ..Default::default()
    }
}

fn container_config(name: &str, image: &str, script: &str) -> pb::ContainerConfig {
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(pb::ImageSpec { image: image.into(), ..Default::default() }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([("role".to_string(), name.to_string())]),
        ..Default::default()
    }
}

/// Run a pod sandbox with `cfg` and RuntimeClass handler `handler`; its id.
async fn run_pod(rs: &mut RuntimeServiceClient<Channel>, cfg: &pb::PodSandboxConfig, handler: &str) -> String {
    rs.run_pod_sandbox(pb::RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: handler.into() })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id
}

/// The request that creates a container configured `cfg` in pod `pod` (configured `pod_cfg`).
fn create_req(pod: &str, pod_cfg: &pb::PodSandboxConfig, cfg: pb::ContainerConfig) -> pb::CreateContainerRequest {
    pb::CreateContainerRequest { pod_sandbox_id: pod.into(), config: Some(cfg), sandbox_config: Some(pod_cfg.clone()) }
}

/// Create a container configured `cfg` in pod `pod` (configured `pod_cfg`); its id.
async fn create(
    rs: &mut RuntimeServiceClient<Channel>,
    pod: &str,
    pod_cfg: &pb::PodSandboxConfig,
    cfg: pb::ContainerConfig,
) -> String {
    rs.create_container(create_req(pod, pod_cfg, cfg)).await.unwrap().into_inner().container_id
}

/// ExecSync `cmd` in container `id` (10 s timeout).
async fn exec_sync(rs: &mut RuntimeServiceClient<Channel>, id: &str, cmd: &[&str]) -> pb::ExecSyncResponse {
    let cmd = cmd.iter().map(|s| s.to_string()).collect();
    rs.exec_sync(pb::ExecSyncRequest { container_id: id.into(), cmd, timeout: 10 }).await.unwrap().into_inner()
}

/// The status of pod sandbox `id`.
async fn pod_status(rs: &mut RuntimeServiceClient<Channel>, id: &str) -> pb::PodSandboxStatus {
    rs.pod_sandbox_status(pb::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
}

async fn status(rs: &mut RuntimeServiceClient<Channel>, id: &str) -> pb::ContainerStatus {
    rs.container_status(pb::ContainerStatusRequest { container_id: id.into(), verbose: false })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
}

/// Poll the container's status until `f` holds, for at most `secs`.
async fn until(rs: &mut RuntimeServiceClient<Channel>, id: &str, secs: u64, f: impl Fn(&pb::ContainerStatus) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(rs, id).await;
        if f(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "container {id} did not reach the state in {secs} s: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CRI log lines of a file: (stream, tag, text); panics on a line
/// that is not `<RFC 3339 time> <stdout|stderr> <P|F> <text>`.
fn cri_log(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let (t, s, tag, rest) =
                (it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap_or(""));
            assert!(humantime::parse_rfc3339(t).is_ok() && t.ends_with('Z'), "bad time in {l:?}");
            assert!(s == "stdout" || s == "stderr", "bad stream in {l:?}");
            assert!(tag == "F" || tag == "P", "bad tag in {l:?}");
            (s.to_string(), tag.to_string(), rest.to_string())
        })
        .collect()
}

fn has(lines: &[(String, String, String)], stream: &str, text: &str) -> bool {
    lines.iter().any(|(s, t, l)| s == stream && t == "F" && l == text)
}

/// Wait (at most 10 s) until the CRI log at `path` has the stdout line `text`.
async fn until_logged(path: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has(&cri_log(path), "stdout", text) {
        assert!(Instant::now() < deadline, "{:?}", cri_log(path));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_life_through_cri_and_a_sigkilled_server() {
    let mut cri = Cri::start(true).await;
    let (mut rs, mut is) = cri.clients().await;

    let v = rs.version(pb::VersionRequest { version: "v1".into() }).await.unwrap().into_inner();
    assert_eq!((v.runtime_name.as_str(), v.runtime_api_version.as_str()), ("engine", "v1"));
    let st = rs.status(pb::StatusRequest { verbose: false }).await.unwrap().into_inner().status.unwrap();
    for want in ["RuntimeReady", "NetworkReady"] {
        assert!(st.conditions.iter().any(|c| c.r#type == want && c.status), "{want} in {st:?}");
    }

    // Pull from a loopback registry.
    let reg = Registry::start();
    let image = push_busybox(&reg, cri.dir.path(), "cri/busybox:1").await;
    let pulled = is
        .pull_image(pb::PullImageRequest {
            image: Some(pb::ImageSpec { image: image.clone(), ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .image_ref;
    assert!(pulled.starts_with("sha256:"), "{pulled}");
    let img = is
        .image_status(pb::ImageStatusRequest {
            image: Some(pb::ImageSpec { image: image.clone(), ..Default::default() }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .expect("pulled image listed");
    assert_eq!(img.id, pulled);
    assert!(img.repo_tags.contains(&image), "{img:?}");
    let all = is.list_images(pb::ListImagesRequest::default()).await.unwrap().into_inner().images;
    assert!(all.iter().any(|i| i.id == pulled));
    let fs = is.image_fs_info(pb::ImageFsInfoRequest {}).await.unwrap().into_inner();
    assert!(fs.image_filesystems[0].used_bytes.as_ref().unwrap().value > 0);

    let before = cri.leftovers();

    // A pod with two containers sharing its network namespace.
    let logs = cri.root().join("pods/web");
    let mut pod_cfg = pod_config("web", &logs);
    // Port 18080 of the test's host namespace (its own: the port is free) to the pod's 8080.
    pod_cfg.port_mappings =
        vec![pb::PortMapping { protocol: 0, container_port: 8080, host_port: 18080, host_ip: String::new() }];
    let pod = run_pod(&mut rs, &pod_cfg, "").await;
    // Resources as kubelet sends them for a guaranteed pod: the OOM score
    // adjustment it asks (-997) is below the server's own, so it is
    // clamped to that (restrict_oom_score_adj).
    let mut server_cfg = container_config(
        "server",
        &image,
        "echo listening; echo pong | nc -l -p 8080; echo served; echo via-hostport | nc -l -p 8080; echo served-twice; trap 'echo after-restart' USR1; while sleep 0.2; do :; done",
    );
    server_cfg.linux = Some(pb::LinuxContainerConfig {
        resources: Some(pb::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_shares: 512,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            oom_score_adj: -997,
            hugepage_limits: vec![pb::HugepageLimit { page_size: "2MB".into(), limit: 0 }],
            ..Default::default()
        }),
        // A security context: a user, one capability, no_new_privs, the runtime's seccomp profile.
        security_context: Some(pb::LinuxContainerSecurityContext {
            run_as_user: Some(pb::Int64Value { value: 1000 }),
            run_as_group: Some(pb::Int64Value { value: 1000 }),
            capabilities: Some(pb::Capability {
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                drop_capabilities: vec!["ALL".into()],
                ..Default::default()
            }),
            no_new_privs: true,
            seccomp: Some(pb::SecurityProfile { profile_type: 0, localhost_ref: String::new() }),
            masked_paths: vec!["/proc/kcore".into()],
            readonly_paths: vec!["/proc/sys".into()],
            ..Default::default()
        }),
    });
    let server = create(&mut rs, &pod, &pod_cfg, server_cfg).await;
    rs.start_container(pb::StartContainerRequest { container_id: server.clone() }).await.unwrap();
    // The client waits (bounded) for the server's port, then talks on localhost.
    let client_cfg = container_config(
        "client",
        &image,
        "i=0; until echo ping | nc 127.0.0.1 8080; do i=$((i+1)); [ $i -gt 200 ] && exit 7; sleep 0.05; done; echo client-done >&2",
    );
    let client = create(&mut rs, &pod, &pod_cfg, client_cfg).await;
    assert_eq!(status(&mut rs, &client).await.state, pb::ContainerState::ContainerCreated as i32);
    rs.start_container(pb::StartContainerRequest { container_id: client.clone() }).await.unwrap();
    until(&mut rs, &client, 30, |s| s.state == pb::ContainerState::ContainerExited as i32).await;
    let cs = status(&mut rs, &client).await;
    assert_eq!((cs.exit_code, cs.reason.as_str()), (0, "Completed"), "{cs:?}\n{}", cri.log());
    assert_eq!(cs.log_path, logs.join("client/0.log").to_string_lossy());
    assert_eq!(status(&mut rs, &server).await.state, pb::ContainerState::ContainerRunning as i32);

    // Logs on disk in the CRI format, at the path kubelet gave.
    let client_log = cri_log(&logs.join("client/0.log"));
    assert!(has(&client_log, "stdout", "pong") && has(&client_log, "stderr", "client-done"), "{client_log:?}");
    let server_log_path = logs.join("server/0.log");
    until_logged(&server_log_path, "served").await;
    let server_log = cri_log(&server_log_path);
    assert!(has(&server_log, "stdout", "listening"), "{server_log:?}");

    // The pod has an address on the CNI network, and its host port answers.
    let ps = pod_status(&mut rs, &pod).await;
    let ip: std::net::Ipv4Addr = ps.network.as_ref().unwrap().ip.parse().expect("a pod IP");
    assert!(ip.octets()[0] == 10, "{ip}");
    let ns = cri.host_netns.as_ref().unwrap().open().unwrap();
    let page = ns
        .run(|| {
            use std::io::Read;
            // The server listens again once the client is served; wait (bounded) for that.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let mut s = String::new();
                if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", 18080)) {
                    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let _ = c.read_to_string(&mut s);
                }
                if s.contains("via-hostport") || Instant::now() > deadline {
                    return Ok(s);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap();
    assert_eq!(page, "via-hostport\n");

    // ExecSync: output, exit code, the pod's hostname and DNS config.
    let ex = exec_sync(&mut rs, &server, &["sh", "-c", "hostname; cat /etc/resolv.conf; echo oops >&2; exit 3"]).await;
    let out = String::from_utf8_lossy(&ex.stdout);
    assert_eq!(ex.exit_code, 3);
    assert_eq!(String::from_utf8_lossy(&ex.stderr), "oops\n");
    assert!(out.starts_with("web\n"), "{out}");
    assert!(out.contains("nameserver 10.96.0.10"), "{out}");
    assert!(out.contains("search default.svc.cluster.local"), "{out}");
    assert!(out.contains("options ndots:5"), "{out}");

    // The security context applied (a non-root user: the one capability bounds it).
    let ex = exec_sync(
        &mut rs,
        &server,
        &["sh", "-c", "id -u; id -g; grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/1/status"],
    )
    .await;
    let out = String::from_utf8_lossy(&ex.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        out,
        "1000 1000 CapBnd: 0000000000000400 NoNewPrivs: 1 Seccomp: 2",
        "{}",
        String::from_utf8_lossy(&ex.stderr)
    );

    // Resources applied (the container's cgroup, v1 or v2); the OOM score
    // adjustment is the server's own.
    let ex = exec_sync(&mut rs, &server, &["cat", "/proc/1/oom_score_adj"]).await;
    let own = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    assert_eq!(String::from_utf8_lossy(&ex.stdout), own);
    let cg = |v1: &str, file: &str| {
        let rel = format!("{}/{server}", cri.cgroup_parent.trim_start_matches('/'));
        std::fs::read_to_string(format!("/sys/fs/cgroup/{v1}/{rel}/{file}"))
            .unwrap_or_else(|e| panic!("{v1}/{rel}/{file}: {e}"))
            .trim()
            .to_string()
    };
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(cg("", "memory.max"), (64u64 << 20).to_string());
        assert_eq!(cg("", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(cg("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cg("cpu", "cpu.shares"), "512");
    }

    // Stats: CPU and memory of the running server, attributes of the exited client.
    let st = rs
        .container_stats(pb::ContainerStatsRequest { container_id: server.clone() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(st.attributes.as_ref().unwrap().metadata.as_ref().unwrap().name, "server");
    assert!(st.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);
    let mem = st.memory.unwrap();
    assert!(mem.working_set_bytes.unwrap().value > 0);
    assert!(mem.available_bytes.unwrap().value < 64 << 20);
    let all = rs
        .list_container_stats(pb::ListContainerStatsRequest {
            filter: Some(pb::ContainerStatsFilter { pod_sandbox_id: pod.clone(), ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    let mut ids: Vec<_> = all.iter().map(|s| s.attributes.as_ref().unwrap().id.clone()).collect();
    ids.sort();
    let mut want = vec![server.clone(), client.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(all.iter().any(|s| s.attributes.as_ref().unwrap().id == client && s.cpu.is_none()));

    // Lists and filters.
    let pods = rs.list_pod_sandbox(pb::ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert_eq!(pods.len(), 1);
    assert_eq!((pods[0].id.as_str(), pods[0].state), (pod.as_str(), pb::PodSandboxState::SandboxReady as i32));
    assert_eq!(pods[0].metadata.as_ref().unwrap().name, "web");
    let by_label = rs
        .list_containers(pb::ListContainersRequest {
            filter: Some(pb::ContainerFilter {
                label_selector: HashMap::from([("role".to_string(), "server".to_string())]),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(by_label.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [server.as_str()]);

    // SIGKILL the server while the pod runs; a new one sees it all.
    cri.kill9();
    cri.spawn();
    let (mut rs, _) = cri.clients().await;
    let pods = rs.list_pod_sandbox(pb::ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert_eq!(pods.len(), 1);
    assert_eq!((pods[0].id.as_str(), pods[0].state), (pod.as_str(), pb::PodSandboxState::SandboxReady as i32));
    let mut cs = rs.list_containers(pb::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    cs.sort_by_key(|c| c.metadata.as_ref().unwrap().name.clone());
    let got: Vec<_> = cs.iter().map(|c| (c.id.as_str(), c.pod_sandbox_id.as_str(), c.state)).collect();
    assert_eq!(
        got,
        [
            (client.as_str(), pod.as_str(), pb::ContainerState::ContainerExited as i32),
            (server.as_str(), pod.as_str(), pb::ContainerState::ContainerRunning as i32),
        ]
    );
    // The shim kept logging: signal the server's script (it traps USR1)
    // with an exec through the new server; what it prints lands in its log.
    let ex = exec_sync(&mut rs, &server, &["sh", "-c", "kill -USR1 1"]).await;
    assert_eq!(ex.exit_code, 0, "{}", String::from_utf8_lossy(&ex.stderr));
    until_logged(&server_log_path, "after-restart").await;
    let log = cri_log(&server_log_path);
    assert!(has(&log, "stdout", "served-twice"), "{log:?}");

    // Stop: every container exits, the sandbox is not ready; nothing new
    // can be made in it.
    rs.stop_pod_sandbox(pb::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    assert_eq!(status(&mut rs, &server).await.state, pb::ContainerState::ContainerExited as i32);
    let p = pod_status(&mut rs, &pod).await;
    assert_eq!(p.state, pb::PodSandboxState::SandboxNotready as i32);
    let e =
        rs.create_container(create_req(&pod, &pod_cfg, container_config("late", &image, "true"))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    // Stop again is fine (kubelet repeats it).
    rs.stop_pod_sandbox(pb::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();

    rs.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    assert!(rs.list_pod_sandbox(pb::ListPodSandboxRequest::default()).await.unwrap().into_inner().items.is_empty());
    assert!(rs.list_containers(pb::ListContainersRequest::default()).await.unwrap().into_inner().containers.is_empty());
    cri.assert_settled(&before);
    // The pod's veth is gone from the (test's) host namespace.
    let ns = cri.host_netns.as_ref().unwrap().path().display().to_string();
    let links = Command::new("nsenter").arg(format!("--net={ns}")).args(["ip", "-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("veth"), "{links}");
    // The logs are kubelet's: they stay.
    assert!(has(&cri_log(&logs.join("client/0.log")), "stdout", "pong"));

    // Remove the image; a second removal is not an error.
    for _ in 0..2 {
        is.remove_image(pb::RemoveImageRequest {
            image: Some(pb::ImageSpec { image: image.clone(), ..Default::default() }),
        })
        .await
        .unwrap();
    }
    let gone = is
        .image_status(pb::ImageStatusRequest {
            image: Some(pb::ImageSpec { image, ..Default::default() }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.image.is_none());
}

/// The code and message of a refused call.
fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> (tonic::Code, String) {
    match r {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => (e.code(), e.message().to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_codes_kubelet_expects_and_leaves_nothing() {
    let cri = Cri::start(false).await;
    let (mut rs, mut is) = cri.clients().await;
    let before = cri.leftovers();
    let logs = cri.root().join("pods/bad");
    let unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_string();

    // Unknown ids.
    let (c, _) = code(
        rs.pod_sandbox_status(pb::PodSandboxStatusRequest { pod_sandbox_id: unknown.clone(), verbose: false }).await,
    );
    assert_eq!(c, tonic::Code::NotFound);
    let (c, _) =
        code(rs.container_status(pb::ContainerStatusRequest { container_id: unknown.clone(), verbose: false }).await);
    assert_eq!(c, tonic::Code::NotFound);
    let (c, _) = code(rs.start_container(pb::StartContainerRequest { container_id: unknown.clone() }).await);
    assert_eq!(c, tonic::Code::NotFound);
    let (c, _) = code(
        rs.exec_sync(pb::ExecSyncRequest { container_id: unknown.clone(), cmd: vec!["true".into()], timeout: 0 }).await,
    );
    assert_eq!(c, tonic::Code::NotFound);
    let (c, _) = code(
        rs.create_container(pb::CreateContainerRequest {
            pod_sandbox_id: unknown.clone(),
            config: Some(container_config("x", engine_cri::PAUSE_IMAGE, "true")),
            sandbox_config: None,
        })
        .await,
    );
    assert_eq!(c, tonic::Code::NotFound);

    // Invalid sandbox configs: no metadata, a port mapping without pod networking, a bad DNS server.
    let mut no_md = pod_config("bad", &logs);
    no_md.metadata = None;
    let mut ports = pod_config("bad", &logs);
    ports.port_mappings =
        vec![pb::PortMapping { protocol: 0, container_port: 80, host_port: 8080, host_ip: String::new() }];
    let mut dns = pod_config("bad", &logs);
    dns.dns_config.as_mut().unwrap().servers = vec!["not-an-ip".into()];
    for (cfg, needle) in [(no_md, "metadata"), (ports, "port_mappings"), (dns, "dns_config.servers")] {
        let (c, msg) = code(
            rs.run_pod_sandbox(pb::RunPodSandboxRequest { config: Some(cfg), runtime_handler: String::new() }).await,
        );
        assert_eq!(c, tonic::Code::InvalidArgument, "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }

    // In a good pod: a missing image, a privileged container, a bad env name.
    let pod_cfg = pod_config("good", &logs);
    let pod = run_pod(&mut rs, &pod_cfg, "").await;
    let (c, msg) =
        code(rs.create_container(create_req(&pod, &pod_cfg, container_config("x", "no/such-image:1", "true"))).await);
    assert_eq!(c, tonic::Code::NotFound, "{msg}");
    let mut seccomp = container_config("x", engine_cri::PAUSE_IMAGE, "true");
    seccomp.linux = Some(pb::LinuxContainerConfig {
        security_context: Some(pb::LinuxContainerSecurityContext {
            seccomp: Some(pb::SecurityProfile { profile_type: 2, localhost_ref: "/no/such/profile.json".into() }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut bad_env = container_config("x", engine_cri::PAUSE_IMAGE, "true");
    bad_env.envs = vec![pb::KeyValue { key: "A=B".into(), value: "c".into() }];
    let mut unified = container_config("x", engine_cri::PAUSE_IMAGE, "true");
    unified.linux = Some(pb::LinuxContainerConfig {
        resources: Some(pb::LinuxContainerResources {
            unified: HashMap::from([("memory.high".to_string(), "1000000".to_string())]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut oom = container_config("x", engine_cri::PAUSE_IMAGE, "true");
    oom.linux = Some(pb::LinuxContainerConfig {
        resources: Some(pb::LinuxContainerResources { oom_score_adj: 5000, ..Default::default() }),
        ..Default::default()
    });
    // Invalid security contexts: what kubelet may send that the engine cannot honour.
    let with_sc = |sc: pb::LinuxContainerSecurityContext| {
        let mut c = container_config("x", engine_cri::PAUSE_IMAGE, "true");
        c.linux = Some(pb::LinuxContainerConfig { security_context: Some(sc), ..Default::default() });
        c
    };
    let negative_user = with_sc(pb::LinuxContainerSecurityContext {
        run_as_user: Some(pb::Int64Value { value: -1 }),
        ..Default::default()
    });
    let group_alone = with_sc(pb::LinuxContainerSecurityContext {
        run_as_group: Some(pb::Int64Value { value: 10 }),
        ..Default::default()
    });
    let selinux = with_sc(pb::LinuxContainerSecurityContext {
        selinux_options: Some(pb::SeLinuxOption { r#type: "spc_t".into(), ..Default::default() }),
        ..Default::default()
    });
    let ambient = with_sc(pb::LinuxContainerSecurityContext {
        capabilities: Some(pb::Capability { add_ambient_capabilities: vec!["NET_RAW".into()], ..Default::default() }),
        ..Default::default()
    });
    for (cfg, needle) in [
        (negative_user, "security_context.run_as_user"),
        (group_alone, "security_context.run_as_group"),
        (selinux, "security_context.selinux_options"),
        (ambient, "add_ambient_capabilities"),
        (seccomp, "security_context.seccomp"),
        (bad_env, "envs"),
        (unified, "resources.unified"),
        (oom, "resources.oom_score_adj"),
    ] {
        let (c, msg) = code(rs.create_container(create_req(&pod, &pod_cfg, cfg)).await);
        assert_eq!(c, tonic::Code::InvalidArgument, "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
    // Only the sandbox exists; no container was half-made.
    assert!(rs.list_containers(pb::ListContainersRequest::default()).await.unwrap().into_inner().containers.is_empty());
    // A missing image pulls as NotFound-ish error, never success.
    let e = is
        .pull_image(pb::PullImageRequest {
            image: Some(pb::ImageSpec { image: "127.0.0.1:1/none:1".into(), ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_ne!(e.code(), tonic::Code::Ok);

    rs.stop_pod_sandbox(pb::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    rs.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    // Removing what is gone is not an error (kubelet retries).
    rs.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
    rs.remove_container(pb::RemoveContainerRequest { container_id: unknown }).await.unwrap();
    cri.assert_settled(&before);
}

/// Sandbox + container from nothing to running: 10 pods one after another,
/// then 10 at once (pause image and busybox already there). Prints
/// medians; run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn measure_pod_start() {
    let cri = Cri::start(true).await;
    let logs = cri.root().join("pods/bench");
    async fn one(cri: &Cri, logs: &Path, n: usize) -> Duration {
        let (mut rs, _) = cri.clients().await;
        let t = Instant::now();
        let cfg = pod_config(&format!("bench{n}"), logs);
        let pod = run_pod(&mut rs, &cfg, "").await;
        let c = create(&mut rs, &pod, &cfg, container_config("app", engine_cri::PAUSE_IMAGE, "exec sleep 1000")).await;
        rs.start_container(pb::StartContainerRequest { container_id: c }).await.unwrap();
        t.elapsed()
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut seq = Vec::new();
    for n in 0..10 {
        seq.push(one(&cri, &logs, n).await);
    }
    cri.remove_all_pods_async().await;
    let t = Instant::now();
    let par = futures::future::join_all((100..110).map(|n| one(&cri, &logs, n))).await;
    let wall = t.elapsed();
    println!(
        "pod start (sandbox+container to running): sequential median {:?}; 10 concurrent: median {:?}, all in {:?}",
        median(seq),
        median(par),
        wall
    );
}

/// Read a file of the container's cgroup (v2, or the v1 controller `v1`)
/// under `parent`.
fn cgroup_file(parent: &str, id: &str, v1: &str, file: &str) -> String {
    let rel = format!("{}/{id}", parent.trim_start_matches('/'));
    let path = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        format!("/sys/fs/cgroup/{rel}/{file}")
    } else {
        format!("/sys/fs/cgroup/{v1}/{rel}/{file}")
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().to_string()
}

fn pull_req(image: &str, auth: Option<pb::AuthConfig>) -> pb::PullImageRequest {
    pb::PullImageRequest {
        image: Some(pb::ImageSpec { image: image.into(), ..Default::default() }),
        auth,
        sandbox_config: None,
    }
}

/// Pull with registry credentials, the `runc` RuntimeClass handler, the
/// pod's cgroup parent as kubelet's cgroupfs driver sends it, resources
/// updated on a running container, its log reopened after a rename, pod
/// stats; and the refusals around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_pull_runc_handler_cgroup_parent_update_reopen_and_pod_stats() {
    let cri = Cri::start(false).await;
    let (mut rs, mut is) = cri.clients().await;
    // Status lists the default handler and runc (on PATH here).
    let st = rs.status(pb::StatusRequest { verbose: false }).await.unwrap().into_inner();
    let names: Vec<_> = st.runtime_handlers.iter().map(|h| h.name.as_str()).collect();
    assert!(names.contains(&"") && names.contains(&"runc"), "{names:?}");
    // With `--network-driver none` the runtime is ready, pod networking is not.
    let conditions = &st.status.as_ref().unwrap().conditions;
    let cond = |t: &str| conditions.iter().find(|c| c.r#type == t).unwrap_or_else(|| panic!("{t} in {st:?}"));
    assert!(cond("RuntimeReady").status, "{st:?}");
    let net = cond("NetworkReady");
    assert!(!net.status && net.reason == "NetworkPluginNotReady", "{net:?}");
    assert!(net.message.contains("--network-driver none"), "{net:?}");

    // A registry that wants basic auth: refused without, pulled with
    // username/password and with the `auth` (base64 user:password) form.
    let reg = Registry::start_with(Some(("kube", "s3cret")));
    let image = push_busybox_as(&reg, cri.dir.path(), "cri/private:1", Some(("kube", "s3cret"))).await;
    let e = is.pull_image(pull_req(&image, None)).await.unwrap_err();
    assert_ne!(e.code(), tonic::Code::Ok);
    let wrong = pb::AuthConfig { username: "kube".into(), password: "wrong".into(), ..Default::default() };
    is.pull_image(pull_req(&image, Some(wrong))).await.unwrap_err();
    let good = pb::AuthConfig { username: "kube".into(), password: "s3cret".into(), ..Default::default() };
    let pulled = is.pull_image(pull_req(&image, Some(good))).await.unwrap().into_inner().image_ref;
    assert!(pulled.starts_with("sha256:"), "{pulled}");
    is.remove_image(pb::RemoveImageRequest {
        image: Some(pb::ImageSpec { image: image.clone(), ..Default::default() }),
    })
    .await
    .unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("kube:s3cret");
    let again = is
        .pull_image(pull_req(&image, Some(pb::AuthConfig { auth, ..Default::default() })))
        .await
        .unwrap()
        .into_inner()
        .image_ref;
    assert_eq!(again, pulled);

    let before = cri.leftovers();
    let logs = cri.root().join("pods/rc");
    // kubelet's pod cgroup (cgroupfs driver), under the test's parent.
    let pod_cgroup = format!("{}/kubepods/burstable/pod-uid-rc", cri.cgroup_parent);
    let mut pod_cfg = pod_config("rc", &logs);
    pod_cfg.linux = Some(pb::LinuxPodSandboxConfig { cgroup_parent: pod_cgroup.clone(), ..Default::default() });

    // Refused: an unknown handler, a systemd-driver slice name.
    let (c, msg) = code(
        rs.run_pod_sandbox(pb::RunPodSandboxRequest { config: Some(pod_cfg.clone()), runtime_handler: "kata".into() })
            .await,
    );
    assert_eq!(c, tonic::Code::InvalidArgument, "{msg}");
    assert!(msg.contains("runtime_handler") && msg.contains("kata"), "{msg}");
    let mut slice = pod_cfg.clone();
    slice.linux.as_mut().unwrap().cgroup_parent = "kubepods-burstable-podrc.slice".into();
    let (c, msg) = code(
        rs.run_pod_sandbox(pb::RunPodSandboxRequest { config: Some(slice), runtime_handler: String::new() }).await,
    );
    assert_eq!(c, tonic::Code::InvalidArgument, "{msg}");
    assert!(msg.contains("cgroup_parent"), "{msg}");

    let pod = run_pod(&mut rs, &pod_cfg, "runc").await;
    let ps = pod_status(&mut rs, &pod).await;
    assert_eq!(ps.runtime_handler, "runc");
    let mut cfg = container_config("ticker", &image, "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.05; done");
    cfg.linux = Some(pb::LinuxContainerConfig {
        resources: Some(pb::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            ..Default::default()
        }),
        ..Default::default()
    });
    let ticker = create(&mut rs, &pod, &pod_cfg, cfg).await;
    rs.start_container(pb::StartContainerRequest { container_id: ticker.clone() }).await.unwrap();
    until(&mut rs, &ticker, 30, |s| s.state == pb::ContainerState::ContainerRunning as i32).await;
    // runc runs it (its state is under the manager's runc root), in the pod's cgroup.
    assert!(cri.root().join("runtime/runc").join(&ticker).join("state.json").exists(), "{}", cri.log());
    assert!(cri.root().join("runtime/runc").join(&pod).join("state.json").exists());
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (mem_file, mem_ctl) = if v2 { ("memory.max", "memory") } else { ("memory.limit_in_bytes", "memory") };
    assert_eq!(cgroup_file(&pod_cgroup, &ticker, mem_ctl, mem_file), (64u64 << 20).to_string());

    // Update the running container's resources.
    rs.update_container_resources(pb::UpdateContainerResourcesRequest {
        container_id: ticker.clone(),
        linux: Some(pb::LinuxContainerResources {
            memory_limit_in_bytes: 96 << 20,
            cpu_quota: 20_000,
            cpu_period: 100_000,
            cpu_shares: 256,
            cpuset_cpus: "0".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(cgroup_file(&pod_cgroup, &ticker, mem_ctl, mem_file), (96u64 << 20).to_string());
    if v2 {
        assert_eq!(cgroup_file(&pod_cgroup, &ticker, "", "cpu.max"), "20000 100000");
        assert_eq!(cgroup_file(&pod_cgroup, &ticker, "", "cpuset.cpus"), "0");
    } else {
        assert_eq!(cgroup_file(&pod_cgroup, &ticker, "cpu", "cpu.cfs_quota_us"), "20000");
        assert_eq!(cgroup_file(&pod_cgroup, &ticker, "cpu", "cpu.shares"), "256");
        assert_eq!(cgroup_file(&pod_cgroup, &ticker, "cpuset", "cpuset.cpus"), "0");
    }
    // What the engine cannot apply is refused.
    let (c, msg) = code(
        rs.update_container_resources(pb::UpdateContainerResourcesRequest {
            container_id: ticker.clone(),
            linux: Some(pb::LinuxContainerResources { cpuset_mems: "0".into(), ..Default::default() }),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(c, tonic::Code::InvalidArgument, "{msg}");
    let (c, msg) = code(
        rs.update_container_resources(pb::UpdateContainerResourcesRequest {
            container_id: ticker.clone(),
            linux: Some(pb::LinuxContainerResources { cpu_quota: 5_000, cpu_period: 10_000, ..Default::default() }),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(c, tonic::Code::InvalidArgument, "{msg}");
    assert!(msg.contains("cpu_period"), "{msg}");
    let (c, _) = code(
        rs.update_container_resources(pb::UpdateContainerResourcesRequest {
            container_id: "0123456789abcdef0123456789abcdef".into(),
            linux: Some(Default::default()),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(c, tonic::Code::NotFound);

    // kubelet's rotation: rename the live file, ask for a reopen; new lines
    // go to a new file at the same path, the renamed one stops growing.
    let live = logs.join("ticker/0.log");
    let rotated = logs.join("ticker/0.log.20260101-000000");
    let deadline = Instant::now() + Duration::from_secs(10);
    while cri_log(&live).len() < 3 {
        assert!(Instant::now() < deadline, "no ticks: {}", cri.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::rename(&live, &rotated).unwrap();
    rs.reopen_container_log(pb::ReopenContainerLogRequest { container_id: ticker.clone() }).await.unwrap();
    let old = cri_log(&rotated);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !live.exists() || cri_log(&live).len() < 3 {
        assert!(Instant::now() < deadline, "nothing in the reopened log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cri_log(&rotated), old, "the renamed file grew after the reopen");
    // The ticks carry on where they stopped: the new file starts with the next one.
    let last: u64 = old.last().unwrap().2.trim_start_matches("tick").parse().unwrap();
    assert_eq!(cri_log(&live)[0].2, format!("tick{}", last + 1));

    // Pod stats: the pod's container, CPU, memory and processes.
    let ps = rs
        .pod_sandbox_stats(pb::PodSandboxStatsRequest { pod_sandbox_id: pod.clone() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(ps.attributes.as_ref().unwrap().id, pod);
    let linux = ps.linux.unwrap();
    assert_eq!(
        linux.containers.iter().map(|c| c.attributes.as_ref().unwrap().id.as_str()).collect::<Vec<_>>(),
        [ticker.as_str()]
    );
    assert!(linux.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);
    assert!(linux.memory.unwrap().working_set_bytes.unwrap().value > 0);
    // The sandbox's init and sleep, the ticker's shell (and its sleep, at times).
    assert!(linux.process.unwrap().process_count.unwrap().value >= 2);
    let listed = rs
        .list_pod_sandbox_stats(pb::ListPodSandboxStatsRequest {
            filter: Some(pb::PodSandboxStatsFilter {
                label_selector: HashMap::from([("app".to_string(), "rc".to_string())]),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    let (c, _) = code(rs.pod_sandbox_stats(pb::PodSandboxStatsRequest { pod_sandbox_id: "ffff0000".into() }).await);
    assert_eq!(c, tonic::Code::NotFound);

    // A stopped container's log cannot be reopened.
    rs.stop_container(pb::StopContainerRequest { container_id: ticker.clone(), timeout: 0 }).await.unwrap();
    let (c, msg) = code(rs.reopen_container_log(pb::ReopenContainerLogRequest { container_id: ticker.clone() }).await);
    assert_eq!(c, tonic::Code::FailedPrecondition, "{msg}");

    rs.stop_pod_sandbox(pb::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    rs.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
    // The pod cgroup is kubelet's to remove; once it did, nothing is left.
    let pod_dir = |ctl: &str| {
        if v2 {
            format!("/sys/fs/cgroup{pod_cgroup}")
        } else {
            format!("/sys/fs/cgroup/{ctl}{pod_cgroup}")
        }
    };
    assert!(Path::new(&pod_dir("memory")).is_dir());
    remove_cgroup_parent(&format!("{}/kubepods", cri.cgroup_parent));
    cri.assert_settled(&before);
}

type ClientWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connect to a streaming URL with WebSocket, offering `proto`.
async fn ws_connect(url: &str, proto: &str) -> Result<ClientWs, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.replacen("http://", "ws://", 1).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", proto.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

fn ws_frame(channel: u8, data: &[u8]) -> tokio_tungstenite::tungstenite::Message {
    let mut v = vec![channel];
    v.extend_from_slice(data);
    tokio_tungstenite::tungstenite::Message::Binary(v.into())
}

/// Everything the server sends, by channel, until it closes (bounded).
async fn ws_drain(ws: &mut ClientWs) -> HashMap<u8, Vec<u8>> {
    use futures::StreamExt;
    let mut got: HashMap<u8, Vec<u8>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match m.unwrap() {
            tokio_tungstenite::tungstenite::Message::Binary(b) if !b.is_empty() => {
                got.entry(b[0]).or_default().extend_from_slice(&b[1..]);
            }
            tokio_tungstenite::tungstenite::Message::Close(_) => break,
            _ => {}
        }
    }
    got
}

fn text(got: &HashMap<u8, Vec<u8>>, ch: u8) -> String {
    String::from_utf8_lossy(got.get(&ch).map(|v| v.as_slice()).unwrap_or_default()).into_owned()
}

/// Exec (with and without a terminal, with stdin), attach and port forward
/// through the streaming URLs, over WebSocket with Kubernetes' channel
/// protocol; exit codes on the error channel; one-time tokens; refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_attach_and_port_forward_through_the_streaming_server() {
    use futures::SinkExt;
    let cri = Cri::start(false).await;
    let (mut rs, _) = cri.clients().await;
    let before = cri.leftovers();
    let logs = cri.root().join("pods/st");
    let pod_cfg = pod_config("st", &logs);
    let pod = run_pod(&mut rs, &pod_cfg, "").await;
    let image = engine_cri::PAUSE_IMAGE;
    // A server on the pod's port 8080 that greets and records what it is sent.
    let srv_cfg = container_config("srv", image, "echo hello-pf | nc -l -p 8080 > /tmp/got; sleep 1000");
    let mut talk_cfg = container_config("talk", image, "read x; echo attached-$x; echo bye >&2");
    talk_cfg.stdin = true;
    let mut ids = Vec::new();
    for cfg in [srv_cfg, talk_cfg] {
        let id = create(&mut rs, &pod, &pod_cfg, cfg).await;
        rs.start_container(pb::StartContainerRequest { container_id: id.clone() }).await.unwrap();
        ids.push(id);
    }
    let (srv, talk) = (ids[0].clone(), ids[1].clone());

    // Exec without a terminal: stdin in, stdout and stderr apart, exit 5.
    let url = rs
        .exec(pb::ExecRequest {
            container_id: srv.clone(),
            cmd: vec!["sh".into(), "-c".into(), "read x; echo got-$x; echo err >&2; exit 5".into()],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let mut ws = ws_connect(&url, "v5.channel.k8s.io").await.unwrap();
    ws.send(ws_frame(0, b"hello\n")).await.unwrap();
    // v5: stdin ends.
    ws.send(ws_frame(255, &[0])).await.unwrap();
    let got = ws_drain(&mut ws).await;
    assert_eq!((text(&got, 1).as_str(), text(&got, 2).as_str()), ("got-hello\n", "err\n"), "{got:?}");
    let st: serde_json::Value = serde_json::from_slice(&got[&3]).unwrap();
    assert_eq!(st["status"], "Failure", "{st}");
    assert_eq!(st["reason"], "NonZeroExitCode", "{st}");
    assert_eq!(st["details"]["causes"][0]["message"], "5", "{st}");
    // The token was for one session.
    let e = ws_connect(&url, "v5.channel.k8s.io").await.unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");

    // Exec with a terminal (v4): a resize, then input; the size and the
    // terminal are the process's; exit 0 is Success.
    let tty_exec = pb::ExecRequest {
        container_id: srv.clone(),
        cmd: vec!["sh".into(), "-c".into(), "read x; stty size; tty >/dev/null && echo tty-$x".into()],
        tty: true,
        stdin: true,
        stdout: true,
        stderr: false,
    };
    let url = rs.exec(tty_exec.clone()).await.unwrap().into_inner().url;
    // SPDY (or nothing) is refused: WebSocket with the channel protocol only.
    let e = ws_connect(&url, "SPDY/3.1").await.unwrap_err();
    assert!(e.to_string().contains("400"), "{e}");
    let url = rs.exec(tty_exec).await.unwrap().into_inner().url;
    let mut ws = ws_connect(&url, "v4.channel.k8s.io").await.unwrap();
    ws.send(ws_frame(4, br#"{"Width":100,"Height":40}"#)).await.unwrap();
    ws.send(ws_frame(0, b"go\r")).await.unwrap();
    let got = ws_drain(&mut ws).await;
    let out = text(&got, 1);
    assert!(out.contains("40 100\r\n") && out.contains("tty-go\r\n"), "{out:?}");
    assert!(!got.contains_key(&2));
    let st: serde_json::Value = serde_json::from_slice(&got[&3]).unwrap();
    assert_eq!(st["status"], "Success", "{st}");

    // Attach to a container's stdio: its stdin, its output.
    let url = rs
        .attach(pb::AttachRequest { container_id: talk.clone(), stdin: true, tty: false, stdout: true, stderr: true })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut ws = ws_connect(&url, "v5.channel.k8s.io").await.unwrap();
    ws.send(ws_frame(0, b"there\n")).await.unwrap();
    let got = ws_drain(&mut ws).await;
    assert_eq!((text(&got, 1).as_str(), text(&got, 2).as_str()), ("attached-there\n", "bye\n"), "{got:?}");
    until(&mut rs, &talk, 30, |s| s.state == pb::ContainerState::ContainerExited as i32).await;

    // Port forward to the pod's 8080, once the server listens.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ex = exec_sync(&mut rs, &srv, &["netstat", "-ltn"]).await;
        if String::from_utf8_lossy(&ex.stdout).contains(":8080") {
            break;
        }
        assert!(Instant::now() < deadline, "nothing listens on 8080");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = rs
        .port_forward(pb::PortForwardRequest { pod_sandbox_id: pod.clone(), port: vec![8080] })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut ws = ws_connect(&url, "v4.channel.k8s.io").await.unwrap();
    {
        use futures::StreamExt;
        // The first frame of each channel (data 0, error 1) is the port, little-endian.
        let mut firsts = Vec::new();
        while firsts.len() < 2 {
            if let tokio_tungstenite::tungstenite::Message::Binary(b) = ws.next().await.unwrap().unwrap() {
                firsts.push(b.to_vec());
            }
        }
        assert_eq!(firsts, [vec![0u8, 0x90, 0x1f], vec![1u8, 0x90, 0x1f]]);
        ws.send(ws_frame(0, b"ping-from-client\n")).await.unwrap();
        let mut data = Vec::new();
        while !data.ends_with(b"hello-pf\n") {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap() {
                tokio_tungstenite::tungstenite::Message::Binary(b) => {
                    assert_eq!(b[0], 0, "{b:?}");
                    data.extend_from_slice(&b[1..]);
                }
                m => panic!("{m:?}"),
            }
        }
        ws.close(None).await.unwrap();
    }
    // The pod's server got what was sent through the forward.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ex = exec_sync(&mut rs, &srv, &["cat", "/tmp/got"]).await;
        if ex.stdout == b"ping-from-client\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", String::from_utf8_lossy(&ex.stdout));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Refusals: unknown container, tty with stderr, an exited container, port 0.
    let (c, _) = code(
        rs.exec(pb::ExecRequest {
            container_id: "feedface".into(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(c, tonic::Code::NotFound);
    let (c, msg) = code(
        rs.exec(pb::ExecRequest {
            container_id: srv.clone(),
            cmd: vec!["true".into()],
            tty: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(c, tonic::Code::InvalidArgument, "{msg}");
    let (c, _) = code(
        rs.exec(pb::ExecRequest {
            container_id: talk.clone(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(c, tonic::Code::FailedPrecondition);
    let (c, _) = code(rs.port_forward(pb::PortForwardRequest { pod_sandbox_id: pod.clone(), port: vec![0] }).await);
    assert_eq!(c, tonic::Code::InvalidArgument);

    rs.stop_pod_sandbox(pb::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    rs.remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
    cri.assert_settled(&before);
}

/// The second, independent client: `tests/cri_client.py`, Python's gRPC
/// with stubs generated now from the vendored `api.proto` (Debian's
/// python3-grpc-tools), and websocket-client for the streaming URL. It
/// walks a pod as kubelet does (pull with auth, port mappings and DNS
/// config, a security context, a tty exec through the streaming URL, logs
/// reopened after rotation); this test gives it a server, a registry with
/// auth, and checks that nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_walks_a_pod() {
    let cri = Cri::start(true).await;
    let reg = Registry::start_with(Some(("kube", "py-s3cret")));
    let image = push_busybox_as(&reg, cri.dir.path(), "cri/py:1", Some(("kube", "py-s3cret"))).await;
    let stubs = cri.dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let proto_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let out = Command::new("/usr/bin/python3")
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&proto_dir)
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .arg(proto_dir.join("api.proto"))
        .output()
        .unwrap();
    assert!(out.status.success(), "grpc_tools.protoc: {}", String::from_utf8_lossy(&out.stderr));
    let before = cri.leftovers();
    // A free port of the test's host namespace (its own: nothing else binds there).
    let host_port = 18081;
    let logs = cri.root().join("pods/py");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri_client.py");
    let (sock, hostns) = (cri.sock(), cri.host_netns.as_ref().unwrap().path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/python3")
            .arg(script)
            .arg("--socket")
            .arg(sock)
            .arg("--stubs")
            .arg(stubs)
            .args(["--image", &image, "--user", "kube", "--password", "py-s3cret"])
            .arg("--log-dir")
            .arg(logs)
            .arg("--host-netns")
            .arg(hostns)
            .args(["--host-port", &host_port.to_string()])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("walk complete"), "{stdout}\n{stderr}\n{}", cri.log());
    cri.assert_settled(&before);
}
