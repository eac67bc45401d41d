//! `engine-vm-agent`: the guest's init (PID 1 of the engine-vm initramfs;
//! it refuses to start anywhere else).
//!
//! Started as `engine-runc` (by itself, in the guest) it is this project's
//! OCI runtime command line, which builds the container.
//!
//! A plain `cargo build` links it dynamically, and the initramfs then carries
//! its shared libraries (found with `ldd`: libc, libseccomp, libgcc_s).

fn main() {
    engine_vm::agent::main()
}
