//! `engine-vm-agent`: the guest's init (PID 1 of the engine-vm initramfs;
//! it refuses to start anywhere else).
//!
//! A plain `cargo build` links it dynamically, and the initramfs then carries
//! its shared libraries (found with `ldd`). For shipping, build it static:
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release
//! --target x86_64-unknown-linux-gnu -p engine-vm --bin engine-vm-agent`
//! (then the initramfs holds the one file).

fn main() {
    engine_vm::agent::main()
}
