fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("PROTOC", protoc) };
    // The published CRI v1 definitions (k8s.io/cri-api pkg/apis/runtime/v1/api.proto).
    tonic_prost_build::configure().generate_default_stubs(true).compile_protos(&["proto/api.proto"], &["proto"])?;
    Ok(())
}
