//! `engine-vm`: runc's command line over the VM runtime (see the crate docs),
//! and the per-container VM monitor and exec relay.

fn main() {
    engine_vm::cli::main()
}
