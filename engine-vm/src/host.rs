//! The host's side of booting: finding QEMU and a kernel, extracting the
//! uncompressed kernel, building (once) the initramfs, choosing the accelerator.

use engine_core::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The QEMU binary's name.
pub const QEMU: &str = "qemu-system-x86_64";

/// The kernel modules the guest needs (loaded with their dependencies, in
/// order): 9p over virtio for the root, virtio-mmio devices, virtio-serial,
/// the balloon (free page reporting gives the guest's free memory back) and
/// virtio-net (with failover and net_failover) for a container on a network.
const MODULES: &[&str] = &["virtio_mmio", "9pnet_virtio", "9p", "virtio_console", "virtio_balloon", "virtio_net"];

/// What a VM boots: the kernel, the initramfs and how to run QEMU.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BootFiles {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The uncompressed kernel (an ELF with a PVH entry point).
    pub kernel: PathBuf,
    /// The kernel's release (`6.1.0-57-amd64`).
    pub release: String,
    /// The initramfs (newc cpio) holding the agent and the modules.
    pub initramfs: PathBuf,
    /// `kvm` or `tcg`.
    pub accel: String,
}

/// Where the files come from (defaults: the host's, found on `PATH` and in
/// `/boot`, `/lib/modules`).
#[derive(Clone, Debug)]
pub struct Sources {
    /// The QEMU binary (`None`: `qemu-system-x86_64` on `PATH`).
    pub qemu: Option<PathBuf>,
    /// The kernel image (`None`: the newest `/boot/vmlinuz-*`).
    pub kernel: Option<PathBuf>,
    /// The agent binary.
    pub agent: PathBuf,
    /// Cache directory for the extracted kernel and the initramfs.
    pub cache: PathBuf,
}

/// Find QEMU and the kernel, and make (or reuse) the kernel and initramfs in
/// the cache. Each missing piece is named with the Debian package providing it.
pub fn prepare(src: &Sources) -> Result<BootFiles> {
    let qemu = match &src.qemu {
        Some(p) => p.clone(),
        None => engine_core::binary::find_in_path(QEMU).ok_or_else(|| {
            Error::unavailable("vm runtime", format!("{QEMU} not found on PATH (Debian package qemu-system-x86)"))
        })?,
    };
    if !engine_core::binary::is_executable(&qemu) {
        return Err(Error::unavailable("vm runtime", format!("{} is not an executable file", qemu.display())));
    }
    let vmlinuz = match &src.kernel {
        Some(k) => k.clone(),
        None => newest_kernel(Path::new("/boot"))?,
    };
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .map(str::to_string)
        .ok_or_else(|| Error::invalid("vm kernel", format!("{}: not named vmlinuz-<release>", vmlinuz.display())))?;
    let modules = Path::new("/lib/modules").join(&release);
    if !modules.join("modules.dep").is_file() {
        return Err(Error::unavailable(
            "vm runtime",
            format!(
                "{}/modules.dep not found: the kernel's modules are missing (Debian package linux-image-{release})",
                modules.display()
            ),
        ));
    }
    if !src.agent.is_file() {
        return Err(Error::unavailable(
            "vm runtime",
            format!("the guest agent {} not found (build the engine-vm-agent binary)", src.agent.display()),
        ));
    }
    std::fs::create_dir_all(&src.cache).map_err(|e| Error::io(format!("creating {}", src.cache.display()), e))?;
    let kernel = src.cache.join(format!("vmlinux-{release}"));
    if !kernel.is_file() {
        let elf = extract_vmlinux(&vmlinuz)?;
        write_atomic(&kernel, &elf)?;
    }
    let agent = std::fs::read(&src.agent).map_err(|e| Error::io(format!("reading {}", src.agent.display()), e))?;
    let hash = hex::encode(&Sha256::digest(&agent)[..8]);
    let initramfs = src.cache.join(format!("initramfs-{release}-{hash}.cpio"));
    if !initramfs.is_file() {
        let cpio = build_initramfs(&src.agent, &agent, &modules)?;
        write_atomic(&initramfs, &cpio)?;
    }
    Ok(BootFiles { qemu, kernel, release, initramfs, accel: probe_accel() })
}

/// The newest `vmlinuz-*` in `dir`.
fn newest_kernel(dir: &Path) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found.pop().ok_or_else(|| {
        Error::unavailable(
            "vm runtime",
            format!("no kernel: {}/vmlinuz-* not found (Debian package linux-image-amd64)", dir.display()),
        )
    })
}

/// KVM when `/dev/kvm` opens and the CPU has hardware virtualisation
/// (vmx/svm); QEMU's emulation (TCG) otherwise. `ENGINE_VM_ACCEL` overrides.
pub fn probe_accel() -> String {
    if let Ok(a) = std::env::var("ENGINE_VM_ACCEL") {
        return a;
    }
    let kvm = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    let hw = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "vmx" || f == "svm")))
        .unwrap_or(false);
    if kvm && hw { "kvm" } else { "tcg" }.to_string()
}

/// The ELF kernel inside a `vmlinuz` (the xz payload Debian's kernels use).
fn extract_vmlinux(vmlinuz: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(vmlinuz).map_err(|e| Error::io(format!("reading {}", vmlinuz.display()), e))?;
    const XZ: &[u8] = b"\xfd7zXZ\x00";
    let start = data.windows(XZ.len()).position(|w| w == XZ).ok_or_else(|| {
        Error::unavailable(
            "vm runtime",
            format!("{}: no xz payload (only xz-compressed kernels are supported)", vmlinuz.display()),
        )
    })?;
    let mut child = std::process::Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::unavailable("vm runtime", format!("cannot run xz (Debian package xz-utils): {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let payload = data[start..].to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&payload));
    let out = child.wait_with_output().map_err(|e| Error::io("running xz", e))?;
    let _ = writer.join();
    if !out.stdout.starts_with(b"\x7fELF") {
        return Err(Error::unavailable(
            "vm runtime",
            format!("{}: the xz payload is not an ELF kernel", vmlinuz.display()),
        ));
    }
    Ok(out.stdout)
}

/// `modules` in load order (each after its dependencies), from `modules.dep`,
/// skipping built-in ones.
fn module_order(dir: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>> {
    let dep = std::fs::read_to_string(dir.join("modules.dep"))
        .map_err(|e| Error::io(format!("reading {}/modules.dep", dir.display()), e))?;
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let name_of = |p: &str| {
        Path::new(p)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .split('.')
            .next()
            .unwrap_or("")
            .replace('-', "_")
    };
    let mut table = std::collections::HashMap::new();
    for line in dep.lines() {
        if let Some((m, deps)) = line.split_once(':') {
            table.insert(name_of(m), (m.to_string(), deps.split_whitespace().map(str::to_string).collect::<Vec<_>>()));
        }
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        name: &str,
        table: &std::collections::HashMap<String, (String, Vec<String>)>,
        name_of: &dyn Fn(&str) -> String,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) -> bool {
        if !seen.insert(name.to_string()) {
            return true;
        }
        let Some((path, deps)) = table.get(name) else { return false };
        for d in deps.iter().rev() {
            visit(&name_of(d), table, name_of, seen, out);
        }
        out.push(path.clone());
        true
    }
    for w in wanted {
        let found = visit(w, &table, &name_of, &mut seen, &mut out);
        if !found && !builtin.lines().any(|l| name_of(l) == *w) {
            return Err(Error::unavailable(
                "vm runtime",
                format!("kernel module {w} not found in {} (the guest needs it)", dir.display()),
            ));
        }
    }
    Ok(out.into_iter().map(|m| dir.join(m)).collect())
}

/// The initramfs: `/init` (the agent), its shared libraries if it is not
/// static, `/lib/modules/NN-name.ko` in load order, mount points, `/dev/console`.
fn build_initramfs(agent_path: &Path, agent: &[u8], modules: &Path) -> Result<Vec<u8>> {
    let mut c = Cpio::default();
    for d in ["dev", "proc", "sys", "rootfs", "mnt", "lib", "lib/modules", "lib64", "usr", "usr/lib", "tmp"] {
        c.dir(d);
    }
    c.node("dev/console", 0o020600, (5, 1));
    c.file("init", 0o755, agent);
    for lib in shared_libraries(agent_path)? {
        let data = std::fs::read(&lib).map_err(|e| Error::io(format!("reading {}", lib.display()), e))?;
        let rel = lib.to_string_lossy().trim_start_matches('/').to_string();
        let mut parent = PathBuf::new();
        for comp in Path::new(&rel).parent().into_iter().flat_map(|p| p.components()) {
            parent.push(comp);
            c.dir(&parent.to_string_lossy());
        }
        c.file(&rel, 0o755, &data);
    }
    for (i, m) in module_order(modules, MODULES)?.iter().enumerate() {
        let data = std::fs::read(m).map_err(|e| Error::io(format!("reading {}", m.display()), e))?;
        let name = m.file_name().and_then(|n| n.to_str()).unwrap_or("m.ko");
        c.file(&format!("lib/modules/{i:02}-{name}"), 0o644, &data);
    }
    Ok(c.finish())
}

/// The shared libraries a dynamically linked binary needs (none when static).
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| Error::unavailable("vm runtime", format!("cannot run ldd (Debian package libc-bin): {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Write `data` to `path` atomically (temp, fsync, rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// A newc cpio archive.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, dev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let header = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            dev.0,
            dev.1,
            name.len() + 1,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        if self.dirs.insert(name.to_string()) {
            self.entry(name, 0o040755, (0, 0), &[]);
        }
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }

    fn node(&mut self, name: &str, mode: u32, dev: (u32, u32)) {
        self.entry(name, mode, dev, &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_come_after_their_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.dep"),
            "kernel/a/9p.ko: kernel/n/9pnet.ko kernel/f/fscache.ko kernel/n/netfs.ko\nkernel/n/9pnet.ko:\nkernel/f/fscache.ko: kernel/n/netfs.ko\nkernel/n/netfs.ko:\n",
        )
        .unwrap();
        let order = module_order(dir.path(), &["9p"]).unwrap();
        let names: Vec<_> = order.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["netfs.ko", "fscache.ko", "9pnet.ko", "9p.ko"]);
        let err = module_order(dir.path(), &["virtio_nope"]).unwrap_err();
        assert!(err.to_string().contains("virtio_nope"), "{err}");
    }

    #[test]
    fn cpio_entries_are_aligned() {
        let mut c = Cpio::default();
        c.dir("dev");
        c.file("init", 0o755, b"abc");
        let out = c.finish();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
    }
}
