//! `engine-vm-agent`: the guest's init (PID 1 of the initramfs). Build it
//! static for shipping (`RUSTFLAGS="-C target-feature=+crt-static"`); a
//! dynamically linked build works too (the initramfs then carries its libraries).

fn main() {
    engine_vm::agent::main()
}
