//! Test harness: an `engined` on a temp data root, the real docker CLI
//! against it, a busybox image archive, a loopback registry, raw HTTP.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The real docker CLI: `$DOCKER_CLI`, else /usr/local/bin/docker (28.2.2 on these
/// machines), else Debian docker.io's /usr/bin/docker.
pub fn docker_cli() -> String {
    if let Ok(p) = std::env::var("DOCKER_CLI") {
        return p;
    }
    ["/usr/local/bin/docker", "/usr/bin/docker"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/usr/local/bin/docker".into())
}

/// Where the workspace's binaries are: `$ENGINE_BIN_DIR`, else target/debug.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(|p| p.parent()).expect("target dir").to_path_buf()
}

pub fn engine_bin() -> PathBuf {
    bin_dir().join("engine")
}

/// An engined with its own data root, exec root and socket; on drop, every
/// container is removed, engined is stopped, and leftover mounts are lazily unmounted.
pub struct Engined {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    /// engine-lifecycled's own extra arguments.
    lc_extra: Vec<String>,
    lifecycled: Option<Child>,
    /// The network namespace engined's bridge driver treats as the host's
    /// (`--network-host-netns`): the machine's own stays untouched.
    pub host_netns: Option<engine_network::NetnsFile>,
}

impl Engined {
    pub fn start() -> Engined {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Engined {
        let dir = tempfile::Builder::new().prefix("e").rand_bytes(5).tempdir_in("/tmp").expect("tempdir");
        let sock = dir.path().join("run/engined.sock");
        std::fs::create_dir_all(dir.path().join("docker-config")).unwrap();
        let mut e = Engined {
            dir,
            sock,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            lc_extra: Vec::new(),
            lifecycled: None,
            host_netns: None,
        };
        e.spawn();
        e
    }

    /// engined with bridge networking whose host side is a network
    /// namespace of the test's own (loopback up): bridges, rules, sysctls
    /// and published ports live there, and go with it.
    pub fn start_networked() -> Engined {
        Self::start_networked_with(&[])
    }

    /// [`Engined::start_networked`] with more engined arguments.
    pub fn start_networked_with(more: &[&str]) -> Engined {
        let dir = tempfile::Builder::new().prefix("e").rand_bytes(5).tempdir_in("/tmp").expect("tempdir");
        let sock = dir.path().join("run/engined.sock");
        std::fs::create_dir_all(dir.path().join("docker-config")).unwrap();
        let ns_path = dir.path().join("hostns");
        let ns = block_on(engine_network::NetnsFile::create(&ns_path)).expect("test host netns");
        let mut extra = vec![
            "--network-driver".into(),
            "bridge".into(),
            "--network-host-netns".into(),
            ns_path.display().to_string(),
        ];
        extra.extend(more.iter().map(|s| s.to_string()));
        let mut e =
            Engined { dir, sock, child: None, extra, lc_extra: Vec::new(), lifecycled: None, host_netns: Some(ns) };
        e.spawn();
        e
    }

    /// engined with CNI networking (`--network-driver cni`): Debian's
    /// plugins from /usr/lib/cni for the conflists of `<dir>/net.d`
    /// (`write` puts the test's there first), run in a host namespace of
    /// the test's own: bridges, veths and the plugins' iptables rules live
    /// there and go with it.
    pub fn start_cni(write: impl FnOnce(&Path)) -> Engined {
        let dir = tempfile::Builder::new().prefix("e").rand_bytes(5).tempdir_in("/tmp").expect("tempdir");
        let sock = dir.path().join("run/engined.sock");
        std::fs::create_dir_all(dir.path().join("docker-config")).unwrap();
        let conf = dir.path().join("net.d");
        std::fs::create_dir_all(&conf).unwrap();
        write(dir.path());
        let ns_path = dir.path().join("hostns");
        let ns = block_on(engine_network::NetnsFile::create(&ns_path)).expect("test host netns");
        let extra = vec![
            "--network-driver".into(),
            "cni".into(),
            "--cni-conf-dir".into(),
            conf.display().to_string(),
            "--cni-bin-dir".into(),
            "/usr/lib/cni".into(),
            "--network-host-netns".into(),
            ns_path.display().to_string(),
        ];
        let mut e =
            Engined { dir, sock, child: None, extra, lc_extra: Vec::new(), lifecycled: None, host_netns: Some(ns) };
        e.spawn();
        e
    }

    /// Run `f` on a thread inside the test's host namespace (where
    /// published ports are).
    pub fn in_host_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = self.host_netns.as_ref().expect("a networked engined").open().unwrap();
        block_on(ns.run(move || Ok(f()))).unwrap()
    }

    /// engined using a separate engine-lifecycled (`--lifecycle`).
    pub fn start_remote() -> Engined {
        let dir = tempfile::Builder::new().prefix("e").rand_bytes(5).tempdir_in("/tmp").expect("tempdir");
        let sock = dir.path().join("run/engined.sock");
        std::fs::create_dir_all(dir.path().join("docker-config")).unwrap();
        let lc_sock = dir.path().join("lc.sock");
        let mut e = Engined {
            dir,
            sock,
            child: None,
            extra: vec!["--lifecycle".into(), format!("unix://{}", lc_sock.display())],
            lc_extra: Vec::new(),
            lifecycled: None,
            host_netns: None,
        };
        e.spawn_lifecycled();
        e.spawn();
        e
    }

    /// engined using a separate engine-lifecycled whose bridge driver's
    /// host side is a network namespace of the test's own (as
    /// [`Engined::start_networked`]): networks and ports go through the
    /// lifecycle service.
    pub fn start_remote_networked() -> Engined {
        Self::start_remote_networked_with(&[])
    }

    /// [`Engined::start_remote_networked`] with more engine-lifecycled arguments.
    pub fn start_remote_networked_with(lc_more: &[&str]) -> Engined {
        let dir = tempfile::Builder::new().prefix("e").rand_bytes(5).tempdir_in("/tmp").expect("tempdir");
        let sock = dir.path().join("run/engined.sock");
        std::fs::create_dir_all(dir.path().join("docker-config")).unwrap();
        let lc_sock = dir.path().join("lc.sock");
        let ns_path = dir.path().join("hostns");
        let ns = block_on(engine_network::NetnsFile::create(&ns_path)).expect("test host netns");
        let mut e = Engined {
            dir,
            sock,
            child: None,
            extra: vec![
                "--lifecycle".into(),
                format!("unix://{}", lc_sock.display()),
                "--network-driver".into(),
                "bridge".into(),
            ],
            lc_extra: [
                "--network-driver".into(),
                "bridge".into(),
                "--network-host-netns".into(),
                ns_path.display().to_string(),
            ]
            .into_iter()
            .chain(lc_more.iter().map(|s| s.to_string()))
            .collect(),
            lifecycled: None,
            host_netns: Some(ns),
        };
        e.spawn_lifecycled();
        e.spawn();
        e
    }

    pub fn lifecycled_pid(&self) -> u32 {
        self.lifecycled.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn spawn_lifecycled(&mut self) {
        let lc_sock = self.dir.path().join("lc.sock");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("lifecycled.log")).unwrap();
        let child = Command::new(bin_dir().join("engine-lifecycled"))
            .arg("--root")
            .arg(self.dir.path().join("lc"))
            .arg("--images")
            .arg(self.data_root().join("images"))
            .arg("--socket")
            .arg(&lc_sock)
            .args(&self.lc_extra)
            .env("ENGINE_BIN_DIR", bin_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn engine-lifecycled");
        self.lifecycled = Some(child);
        assert!(
            eventually(20, || UnixStream::connect(&lc_sock).is_ok()),
            "engine-lifecycled did not listen: {}",
            std::fs::read_to_string(self.dir.path().join("lifecycled.log")).unwrap_or_default()
        );
    }

    /// SIGKILL engine-lifecycled.
    pub fn kill9_lifecycled(&mut self) {
        if let Some(mut c) = self.lifecycled.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Link names (sorted, without `@peer`) in the test's own host network
    /// namespace (started with one: bridges, the host ends of veths).
    pub fn host_links(&self) -> Vec<String> {
        let ns = self.host_netns.as_ref().expect("engined started with a host netns").path().display().to_string();
        let o = Command::new("nsenter").arg(format!("--net={ns}")).args(["ip", "-o", "link", "show"]).output().unwrap();
        assert!(o.status.success(), "ip link show: {}", String::from_utf8_lossy(&o.stderr));
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn spawn(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("engined.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_engined"))
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.dir.path().join("run"))
            .arg("--log-level")
            .arg("debug")
            .args(&self.extra)
            .env("ENGINE_BIN_DIR", bin_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn engined");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("engined exited early ({st}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "engined did not listen within 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL engined (containers keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("engined.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// The real docker CLI against this engined (60 s limit).
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_in(args, None)
    }

    pub fn docker_in(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_with(&docker_cli(), &self.host(), self.dir.path(), args, stdin)
    }

    /// The `engine` CLI against this engined.
    pub fn engine(&self, args: &[&str]) -> Output {
        run_with(engine_bin().to_str().unwrap(), &self.host(), self.dir.path(), args, None)
    }

    pub fn engine_in(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_with(engine_bin().to_str().unwrap(), &self.host(), self.dir.path(), args, stdin)
    }

    /// docker, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed: {}\n--- engined log tail:\n{}",
            show(&o),
            tail(&self.log())
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Load a busybox image tagged `bb:latest` through `docker load -i`.
    pub fn load_busybox(&self) -> String {
        let tar = busybox_archive(self.dir.path(), "bb:latest");
        self.ok(&["load", "-i", tar.to_str().unwrap()])
    }

    /// Raw HTTP/1.1 on the socket: (status, body).
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        raw_http(&self.sock, method, path, body)
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_with(bin: &str, host: &str, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new("timeout");
    c.args(["-k", "5", "90", bin, "-H", host])
        .args(args)
        .env("DOCKER_CONFIG", dir.join("docker-config"))
        .env_remove("DOCKER_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = c.spawn().expect("spawn cli");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(input).unwrap();
        drop(w);
    }
    child.wait_with_output().expect("cli output")
}

impl Drop for Engined {
    fn drop(&mut self) {
        if self.extra.iter().any(|a| a == "--lifecycle") && self.lifecycled.is_none() {
            self.spawn_lifecycled();
        }
        if self.child.is_none() && UnixStream::connect(&self.sock).is_err() {
            self.spawn();
        }
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(c) = &self.child {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut c) = self.lifecycled.take() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            if !eventually(5, || matches!(c.try_wait(), Ok(Some(_)))) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        // The test's host namespace goes, and every link and rule in it.
        drop(self.host_netns.take());
        // Anything still mounted under the temp dir (a failed test) is detached.
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
    }
}

/// A docker-archive of a busybox image, made from Debian's busybox-static.
pub fn busybox_archive(dir: &Path, tag: &str) -> PathBuf {
    let rootfs = dir.join(format!("rootfs-{}", tag.replace([':', '/'], "_")));
    let tar = dir.join(format!("{}.tar", tag.replace([':', '/'], "_")));
    if !tar.exists() {
        engine_image::build::busybox_rootfs(&rootfs).expect("busybox rootfs");
        engine_image::build::image_from_dir(&rootfs, tag, &tar, &Default::default()).expect("docker archive");
    }
    tar
}

/// A plain root filesystem tar (for `docker import`).
pub fn busybox_rootfs_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs-plain");
    engine_image::build::busybox_rootfs(&rootfs).expect("busybox rootfs");
    let tar = dir.join("rootfs-plain.tar");
    let st = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".").status().unwrap();
    assert!(st.success());
    tar
}

pub fn raw_http(sock: &Path, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, dechunk(&body))
}

fn dechunk(b: &str) -> String {
    // Best effort: a chunked body's size lines are hex numbers on their own lines.
    if b.lines()
        .next()
        .is_some_and(|l| !l.is_empty() && l.trim().chars().all(|c| c.is_ascii_hexdigit()) && !b.starts_with('{'))
    {
        let mut out = String::new();
        let mut rest = b;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        b.to_string()
    }
}

/// A Debian docker-registry on 127.0.0.1:<free port>, storage in a temp dir.
pub struct Registry {
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_auth(None)
    }

    /// With `Some((user, password))`, the registry demands basic auth (htpasswd).
    pub fn start_auth(creds: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut auth = String::new();
        if let Some((u, p)) = creds {
            let o = Command::new("htpasswd").args(["-Bbn", u, p]).output().expect("htpasswd (apache2-utils)");
            assert!(o.status.success());
            let f = dir.path().join("htpasswd");
            std::fs::write(&f, &o.stdout).unwrap();
            auth = format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", f.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth}",
                dir.path().join("data").display()
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

/// Is process `pid` alive (not a zombie)?
pub fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with(['Z', 'X'])))
        .unwrap_or(false)
}

/// Run engined in the foreground with its own roots and socket under
/// `dir` plus `extra` flags, to its exit (for flags it must refuse).
pub fn engined_output(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engined"))
        .args(["-H", &format!("unix://{}", dir.join("refused.sock").display())])
        .args(["--data-root", dir.join("refused-data").to_str().unwrap()])
        .args(["--exec-root", dir.join("refused-run").to_str().unwrap()])
        .args(extra)
        .env("ENGINE_BIN_DIR", bin_dir())
        .output()
        .expect("run engined")
}

/// Run a future to completion on a small runtime of its own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Poll `f` until it returns true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A command run under `script` (so it has a terminal), driven step by step:
/// wait until its output shows something, then type. Typing only after the
/// program has shown its prompt means the CLI has its terminal in raw mode
/// and is attached (typed before that, ctrl-q would be eaten by the tty's
/// flow control and lines echoed twice).
pub struct TtySession {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    out: Vec<u8>,
    seen: usize,
}

impl TtySession {
    /// Start `cmd` (a shell command line) under `script`, with `e`'s docker config.
    pub fn start(cmd: &str, e: &Engined) -> TtySession {
        let mut child = Command::new("timeout")
            .args(["60", "script", "-qec", cmd, "/dev/null"])
            .env("DOCKER_CONFIG", e.dir.path().join("docker-config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        TtySession { stdin: child.stdin.take(), child, rx, out: Vec::new(), seen: 0 }
    }

    /// Wait (up to 60 s) until the output after the previous match contains `text`.
    pub fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(i) = find(&self.out[self.seen..], text.as_bytes()) {
                self.seen += i + text.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(b) => self.out.extend_from_slice(&b),
                Err(_) => panic!("no {text:?} in the output: {:?}", String::from_utf8_lossy(&self.out)),
            }
        }
    }

    /// Type `input`.
    pub fn send(&mut self, input: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Wait for the command to exit: (exit code, all it printed).
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        drop(self.stdin.take());
        while let Ok(b) = self.rx.recv_timeout(Duration::from_secs(5)) {
            self.out.extend_from_slice(&b);
        }
        (status.code(), String::from_utf8_lossy(&self.out).into_owned())
    }
}

impl Drop for TtySession {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Run `cmd` under a terminal: wait for the shell's prompt, type `input`,
/// wait for the exit: (exit code, output).
pub fn interactive_tty(cmd: &str, e: &Engined, input: &str) -> (Option<i32>, String) {
    let mut s = TtySession::start(cmd, e);
    s.expect("# ");
    s.send(input);
    s.finish()
}

mod leftovers;
#[allow(unused_imports)]
pub use leftovers::{remove_cgroup_parent, rss_kib, Leftovers};
