//! `docker import`, `save` and `load` stream: engined reads an upload once
//! into its content store and snapshots (one copy of each layer blob, no
//! staging file), never holds a whole archive in memory, and an upload cut
//! off half-way (a truncated body, a client that goes away) leaves no blob,
//! temporary file, snapshot or image behind.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files of engined's image store and temp dirs, by name.
#[derive(Debug, PartialEq, Eq)]
struct StoreFiles {
    blobs: BTreeSet<String>,
    snapshots: BTreeSet<String>,
    temp: BTreeSet<String>,
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn store_files(e: &Engined) -> StoreFiles {
    let images = e.data_root().join("images");
    let mut temp = names(&images.join("tmp"));
    temp.extend(names(&e.data_root().join("tmp")).into_iter().map(|n| format!("daemon tmp/{n}")));
    StoreFiles { blobs: names(&images.join("blobs/sha256")), snapshots: names(&images.join("snapshots")), temp }
}

/// A busybox root filesystem with `mib` MiB of random data in one file, as a plain tar.
fn rootfs_tar(dir: &Path, mib: usize) -> PathBuf {
    let root = dir.join(format!("rootfs-{mib}"));
    engine_image::build::busybox_rootfs(&root).expect("busybox rootfs");
    let mut data = Vec::with_capacity(mib << 20);
    std::fs::File::open("/dev/urandom").unwrap().take((mib as u64) << 20).read_to_end(&mut data).unwrap();
    std::fs::write(root.join("data.bin"), &data).unwrap();
    let tar = dir.join(format!("rootfs-{mib}.tar"));
    let st = std::process::Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status().unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(&root).unwrap();
    tar
}

/// How an upload is cut off half-way.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// The body ends early (the client half-closes and waits for the answer).
    Truncated,
    /// The client closes its connection without a word.
    Disconnect,
}

fn upload_half(sock: &Path, path: &str, body: &[u8], cut: Cut) {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: engine\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    match cut {
        Cut::Truncated => {
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut resp = Vec::new();
            let _ = s.read_to_end(&mut resp);
            let resp = String::from_utf8_lossy(&resp);
            assert!(!resp.contains("HTTP/1.1 200"), "a cut-off upload was accepted: {resp}");
        }
        Cut::Disconnect => drop(s),
    }
}

#[test]
fn cut_off_imports_and_loads_leave_nothing() {
    let e = Engined::start();
    e.load_busybox();
    let tar = rootfs_tar(e.dir.path(), 8);
    // A docker archive with a big layer, for the loads.
    e.ok(&["import", tar.to_str().unwrap(), "full:1"]);
    let saved = e.dir.path().join("saved.tar");
    e.ok(&["save", "-o", saved.to_str().unwrap(), "full:1"]);
    e.ok(&["rmi", "full:1"]);
    let before = store_files(&e);
    assert!(before.temp.is_empty(), "{before:?}");
    let rootfs = std::fs::read(&tar).unwrap();
    let archive = std::fs::read(&saved).unwrap();
    for (what, path, body) in [
        ("import", "/v1.41/images/create?fromSrc=-&repo=cut&tag=1", &rootfs),
        ("load", "/v1.41/images/load?quiet=1", &archive),
    ] {
        for cut in [Cut::Truncated, Cut::Disconnect] {
            upload_half(&e.sock, path, body, cut);
            let mut now = store_files(&e);
            let clean = eventually(30, || {
                now = store_files(&e);
                now == before
            });
            assert!(clean, "{what} cut off ({cut:?}) left files: before {before:?}\nafter {now:?}\n{}", e.log());
        }
    }
    let images = e.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "bb:latest");
    // Whole uploads still work and the result runs.
    e.ok(&["import", tar.to_str().unwrap(), "full:2"]);
    let wc = e.ok(&["run", "--rm", "full:2", "/bin/busybox", "wc", "-c", "/data.bin"]);
    assert_eq!(wc.split_whitespace().next(), Some(&*(8 << 20).to_string()), "{wc}");
    e.ok(&["rmi", "full:2"]);
    assert_eq!(e.ok(&["load", "-i", saved.to_str().unwrap()]).trim(), "Loaded image: full:1");
}

/// VmRSS before `f` and VmHWM during it (reset through clear_refs), in KiB.
fn peak_during(pid: u32, f: impl FnOnce()) -> (u64, u64) {
    let field = |name: &str| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = s.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = field("VmRSS:");
    f();
    (before, field("VmHWM:"))
}

#[test]
fn import_save_load_stream_once_in_bounded_memory() {
    const MIB: usize = 96;
    let e = Engined::start();
    let tar = rootfs_tar(e.dir.path(), MIB);
    let tar_len = std::fs::metadata(&tar).unwrap().len();
    let empty = store_files(&e);
    let mut id = String::new();
    let (rss, peak) = peak_during(e.pid(), || id = e.ok(&["import", tar.to_str().unwrap(), "big:1"]));
    // Buffers of a few MiB, never the 96 MiB tar.
    assert!(peak < rss + 40 * 1024, "import: RSS {rss} KiB before, peak {peak} KiB for a {tar_len}-byte tar");
    // One copy of the layer: the layer blob, the config and the manifest; one snapshot; no temp file.
    let after = store_files(&e);
    assert_eq!(after.blobs.len(), empty.blobs.len() + 3, "{after:?}");
    assert_eq!(after.snapshots.len(), empty.snapshots.len() + 1, "{after:?}");
    assert!(after.temp.is_empty(), "{after:?}");
    let blob_dir = e.data_root().join("images/blobs/sha256");
    let sizes: Vec<u64> = after.blobs.iter().map(|b| std::fs::metadata(blob_dir.join(b)).unwrap().len()).collect();
    assert!(sizes.contains(&tar_len), "no blob holds the {tar_len}-byte upload: {sizes:?}");

    let saved = e.dir.path().join("saved.tar");
    let (rss, peak) = peak_during(e.pid(), || {
        e.ok(&["save", "-o", saved.to_str().unwrap(), "big:1"]);
    });
    assert!(peak < rss + 40 * 1024, "save: RSS {rss} KiB before, peak {peak} KiB");
    assert!(std::fs::metadata(&saved).unwrap().len() > tar_len);
    assert!(store_files(&e).temp.is_empty(), "save left a temp file");
    e.ok(&["rmi", "big:1"]);
    assert_eq!(store_files(&e), empty);

    let (rss, peak) = peak_during(e.pid(), || {
        assert_eq!(e.ok(&["load", "-i", saved.to_str().unwrap()]).trim(), "Loaded image: big:1");
    });
    assert!(peak < rss + 40 * 1024, "load: RSS {rss} KiB before, peak {peak} KiB");
    // The same image back, stored once again: no leftover of the load's reading.
    assert_eq!(e.ok(&["images", "--quiet", "--no-trunc", "big:1"]).trim(), id.trim());
    assert_eq!(store_files(&e), after);
    let wc = e.ok(&["run", "--rm", "big:1", "/bin/busybox", "wc", "-c", "/data.bin"]);
    assert_eq!(wc.split_whitespace().next(), Some(&*(MIB << 20).to_string()), "{wc}");
}
