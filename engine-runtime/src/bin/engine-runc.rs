//! `engine-runc`: the runc-compatible command line of [`engine_runtime::cli`].

fn main() {
    engine_runtime::cli::main()
}
