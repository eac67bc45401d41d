//! Compiles `proto/shim.proto` with the vendored `protoc`, so no system protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/shim.proto");
    // The shim runs once per container: link it as a fixed-address
    // executable so its read-only data needs no load-time relocation and
    // stays shared, clean page cache instead of private dirty memory in
    // every shim.
    println!("cargo:rustc-link-arg-bin=engine-shim=-no-pie");
    tonic_prost_build::configure().compile_protos(&["proto/shim.proto"], &["proto"])?;
    Ok(())
}
