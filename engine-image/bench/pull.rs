//! Pull + unpack benchmark against a loopback `docker-registry`:
//! this store vs `skopeo copy` + `umoci unpack`, and `podman pull`.
//!
//! Run: `cargo bench -p engine-image --bench pull` (as root; needs
//! docker-registry, skopeo, umoci, podman). `BENCH_RUNS` sets the runs per
//! tool (default 5). Each pull runs in a fresh child process so its wall
//! time and peak RSS (from `wait4`) are its own.

use engine_core::ImageStore;
use engine_image::build::ImageOptions;
use engine_image::unpack::Compression;
use engine_image::Store;
use rand::RngCore;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn child_pull(root: &str, reference: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(root).unwrap();
        store.pull(reference, None, None).await.unwrap();
    });
}

/// Run a command; returns (wall time, peak RSS in KiB). The peak RSS comes
/// from GNU time's `%M` (its child is forked from a small process, so the
/// figure is the command's own, not inherited from this one).
fn measure(cmd: &mut Command) -> (Duration, u64) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M").arg("-o").arg(out.path()).arg(cmd.get_program()).args(cmd.get_args());
    let start = Instant::now();
    let res = timed.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).output().expect("spawn");
    let el = start.elapsed();
    if !res.status.success() {
        panic!("{cmd:?} failed ({}): {}", res.status, String::from_utf8_lossy(&res.stderr));
    }
    let rss = std::fs::read_to_string(out.path()).unwrap().trim().lines().last().unwrap_or("0").parse().unwrap_or(0);
    (el, rss)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn random_file(p: &Path, size: usize) {
    use std::io::Write;
    let mut f = std::fs::File::create(p).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len());
        rand::rng().fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

fn text_file(p: &Path, size: usize, seed: usize) {
    let mut s = String::with_capacity(size + 100);
    let mut i = seed;
    while s.len() < size {
        s.push_str(&format!("line {i}: the quick brown fox jumps over the lazy dog {} \n", i % 97));
        i += 1;
    }
    std::fs::write(p, s).unwrap();
}

/// About 100 MB in 4 layers: random (incompressible) and text files, big and small.
fn make_layers(base: &Path) -> Vec<PathBuf> {
    let mb = 1 << 20;
    let l: Vec<PathBuf> = (1..=4).map(|i| base.join(format!("l{i}"))).collect();
    for d in &l {
        std::fs::create_dir_all(d).unwrap();
    }
    for i in 0..3 {
        random_file(&l[0].join(format!("rand{i}.bin")), 10 * mb);
    }
    std::fs::create_dir_all(l[1].join("text")).unwrap();
    for i in 0..500 {
        text_file(&l[1].join(format!("text/{i}.txt")), 50 * 1024, i * 1000);
    }
    std::fs::create_dir_all(l[2].join("small")).unwrap();
    for i in 0..1000 {
        random_file(&l[2].join(format!("small/{i}.bin")), 10 * 1024);
    }
    text_file(&l[2].join("big.txt"), 15 * mb, 7);
    random_file(&l[3].join("blob.bin"), 20 * mb);
    l
}

fn du(p: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("0").parse().unwrap_or(0)
}

struct Registry(std::process::Child);
impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 4 && args[1] == "--child-pull" {
        child_pull(&args[2], &args[3]);
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let work = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let w = work.path();
    // registry
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        w.join("registry").display()
    );
    std::fs::write(w.join("config.yml"), cfg).unwrap();
    let _reg = Registry(
        Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(w.join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let host = format!("127.0.0.1:{port}");
    let multi = format!("{host}/bench/multi:1");
    let big = format!("{host}/bench/big:1");
    let tiny = format!("{host}/bench/small:1");
    // images
    let layers = make_layers(&w.join("src"));
    let bigdir = w.join("src/big");
    std::fs::create_dir_all(&bigdir).unwrap();
    random_file(&bigdir.join("huge.bin"), 200 << 20);
    let tinydir = w.join("src/tiny");
    std::fs::create_dir_all(&tinydir).unwrap();
    random_file(&tinydir.join("r.bin"), 20 << 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (multi_bytes, big_bytes) = rt.block_on(async {
        let s = Store::open(w.join("source-store")).unwrap();
        let opts = ImageOptions::default().compression(Compression::Gzip);
        let refs: Vec<&Path> = layers.iter().map(|p| p.as_path()).collect();
        s.import_dirs_with(&refs, &multi, &opts).await.unwrap();
        s.import_dirs_with(&[&bigdir], &big, &opts).await.unwrap();
        s.import_dirs_with(&[&tinydir], &tiny, &opts).await.unwrap();
        for r in [&multi, &big, &tiny] {
            s.push(r, None, None).await.unwrap();
        }
        let m = s.record(&multi).await.unwrap().layers.iter().map(|l| l.size).sum::<u64>();
        let b = s.record(&big).await.unwrap().layers.iter().map(|l| l.size).sum::<u64>();
        (m, b)
    });
    drop(rt);
    let unpacked: u64 = layers.iter().map(|l| du(l)).sum();
    println!(
        "image {multi}: 4 layers, {:.1} MB unpacked, {:.1} MB compressed (gzip); big image: 1 layer, 200 MB random, {:.1} MB compressed",
        unpacked as f64 / 1e6,
        multi_bytes as f64 / 1e6,
        big_bytes as f64 / 1e6
    );
    let exe = std::env::current_exe().unwrap();
    let mut ours = Vec::new();
    let mut ours_rss = Vec::new();
    let mut sk = Vec::new();
    let mut sk_rss = Vec::new();
    let mut pm = Vec::new();
    let mut pm_rss = Vec::new();
    let mut podman_ok = true;
    for i in 0..runs {
        // this store
        let root = w.join(format!("ours-{i}"));
        let (t, rss) = measure(Command::new(&exe).arg("--child-pull").arg(&root).arg(&multi));
        ours.push(t.as_secs_f64());
        ours_rss.push(rss as f64);
        let _ = std::fs::remove_dir_all(&root);
        // skopeo + umoci
        let oci = w.join(format!("oci-{i}"));
        let bundle = w.join(format!("bundle-{i}"));
        let (t1, r1) = measure(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{multi}"),
            &format!("oci:{}:img", oci.display()),
        ]));
        let (t2, r2) = measure(Command::new("umoci").args([
            "unpack",
            "--image",
            &format!("{}:img", oci.display()),
            &bundle.display().to_string(),
        ]));
        sk.push((t1 + t2).as_secs_f64());
        sk_rss.push(r1.max(r2) as f64);
        let _ = std::fs::remove_dir_all(&oci);
        let _ = std::fs::remove_dir_all(&bundle);
        // podman
        if podman_ok {
            let proot = w.join(format!("podman-{i}"));
            let prun = w.join(format!("podman-run-{i}"));
            let mut c = Command::new("podman");
            c.arg("--root").arg(&proot).arg("--runroot").arg(&prun).args([
                "--storage-driver",
                "overlay",
                "pull",
                "--quiet",
                "--tls-verify=false",
                &multi,
            ]);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| measure(&mut c))) {
                Ok((t, rss)) => {
                    pm.push(t.as_secs_f64());
                    pm_rss.push(rss as f64);
                }
                Err(_) => {
                    podman_ok = false;
                    eprintln!("podman pull failed; left out");
                }
            }
            let _ = Command::new("podman")
                .arg("--root")
                .arg(&proot)
                .arg("--runroot")
                .arg(&prun)
                .args(["system", "reset", "--force"])
                .output();
            let _ = Command::new("umount").arg("-R").arg(&proot).output();
            let _ = std::fs::remove_dir_all(&proot);
            let _ = std::fs::remove_dir_all(&prun);
        }
    }
    let mo = median(&mut ours);
    let ms = median(&mut sk);
    println!("\npull + unpack of ~100 MB, 4 layers, {runs} runs each (median wall time, median peak RSS):");
    println!("  engine-image          {mo:7.3} s   {:7.1} MiB", median(&mut ours_rss) / 1024.0);
    println!(
        "  skopeo copy + umoci   {ms:7.3} s   {:7.1} MiB   (ratio engine-image/skopeo+umoci = {:.2})",
        median(&mut sk_rss) / 1024.0,
        mo / ms
    );
    if !pm.is_empty() {
        let mp = median(&mut pm);
        println!(
            "  podman pull           {mp:7.3} s   {:7.1} MiB   (ratio engine-image/podman = {:.2})",
            median(&mut pm_rss) / 1024.0,
            mo / mp
        );
    }
    // peak memory against layer size
    let mut rss_tiny = Vec::new();
    let mut rss_big = Vec::new();
    for i in 0..3 {
        let root = w.join(format!("rss-t-{i}"));
        rss_tiny.push(measure(Command::new(&exe).arg("--child-pull").arg(&root).arg(&tiny)).1 as f64);
        let _ = std::fs::remove_dir_all(&root);
        let root = w.join(format!("rss-b-{i}"));
        rss_big.push(measure(Command::new(&exe).arg("--child-pull").arg(&root).arg(&big)).1 as f64);
        let _ = std::fs::remove_dir_all(&root);
    }
    println!(
        "\npeak RSS of engine-image pulling one 20 MB layer: {:.1} MiB; one 200 MB layer: {:.1} MiB; 4 layers / 100 MB in parallel: {:.1} MiB",
        median(&mut rss_tiny) / 1024.0,
        median(&mut rss_big) / 1024.0,
        median(&mut ours_rss) / 1024.0
    );
}
