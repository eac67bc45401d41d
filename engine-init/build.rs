//! Builds the static executables this crate embeds: `bin/init.rs` (and, with
//! the `probe` feature, `bin/secprobe.rs`). They use std only and are linked
//! statically against glibc (`crt-static`) with the same rustc, so they run in
//! any image whatever libc (if any) it has.

use std::path::Path;
use std::process::Command;

fn build(src: &str, out_name: &str) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join(out_name);
    println!("cargo:rerun-if-changed={src}");
    let res = Command::new(&rustc)
        .args(["--edition", "2021", "--crate-type", "bin", "--target", &target])
        .args(["-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols", "-C", "target-feature=+crt-static"])
        .arg(src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("running {rustc}: {e}"));
    if !res.status.success() {
        panic!(
            "building the static {out_name} from {src} failed (a static libc, e.g. glibc's libc.a, is needed):\n{}",
            String::from_utf8_lossy(&res.stderr)
        );
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    build("bin/init.rs", "engine-init");
    if std::env::var_os("CARGO_FEATURE_PROBE").is_some() {
        build("bin/secprobe.rs", "secprobe");
    }
}
