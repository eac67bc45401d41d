//! Shared test helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A description of every entry in a tree: type, mode, owner, content hash
/// or link target or device, keyed by relative path.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link->{}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            format!("file:{}:{}", data.len(), engine_image::digest::sha256(&data))
        } else if ft.is_char_device() {
            format!("chr:{}", m.rdev())
        } else if ft.is_block_device() {
            format!("blk:{}", m.rdev())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let mode = if ft.is_symlink() { 0 } else { m.mode() & 0o7777 };
        out.insert(rel, format!("{what} mode={mode:o} uid={} gid={}", m.uid(), m.gid()));
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// A fresh busybox rootfs in a temp dir.
pub fn busybox_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    engine_image::build::busybox_rootfs(d.path()).unwrap();
    d
}

/// Unmounts a path on drop (tests clean up even when they fail).
pub struct Unmount(pub PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().to_string_lossy().as_bytes()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let s = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = p.to_string_lossy();
    s.lines().any(|l| l.split(' ').nth(4) == Some(&want))
}

/// A `docker-registry` (Debian's distribution 2.8) on a free loopback port
/// with a temp storage dir; killed on drop.
pub struct Registry {
    pub child: std::process::Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

pub enum RegAuth {
    None,
    Htpasswd { user: String, password: String },
    Token { realm: String, cert: PathBuf },
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Registry {
    pub async fn start(auth: RegAuth) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth_cfg = match &auth {
            RegAuth::None => String::new(),
            RegAuth::Htpasswd { user, password } => {
                let out = std::process::Command::new("htpasswd").args(["-Bbn", user, password]).output().unwrap();
                assert!(out.status.success());
                std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
                format!("auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n", dir.path().join("htpasswd").display())
            }
            RegAuth::Token { realm, cert } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                cert.display()
            ),
        };
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n{auth_cfg}",
            dir.path().join("data").display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("/usr/bin/docker-registry");
        // SAFETY: prctl is async-signal-safe; the registry dies with this test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .arg("serve")
            .arg(&cfg_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("start docker-registry");
        let reg = Registry { child, port, dir };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/v2/")).send().await {
                if r.status().as_u16() == 200 || r.status().as_u16() == 401 {
                    return reg;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "registry did not start: {}",
            std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
        );
    }
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    /// The on-disk file of a blob in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = &digest[7..];
        self.dir.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files of a test image with varied modes, owners, links.
pub fn fancy_layer(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("opt/app/sub")).unwrap();
    std::fs::write(dir.join("opt/app/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(dir.join("opt/app/run.sh"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(dir.join("opt/app/sub/data"), vec![7u8; 100_000]).unwrap();
    std::os::unix::fs::chown(dir.join("opt/app/sub/data"), Some(1000), Some(1001)).unwrap();
    std::fs::set_permissions(dir.join("opt/app/sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("/opt/app/run.sh", dir.join("opt/app/abs-link")).unwrap();
    std::os::unix::fs::symlink("sub/data", dir.join("opt/app/rel-link")).unwrap();
    std::fs::hard_link(dir.join("opt/app/sub/data"), dir.join("opt/app/hard")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("opt/app/fifo").to_string_lossy().as_bytes()).unwrap();
    unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) };
}
