//! engine-runc: a runc-compatible command line (being built).
fn main() {}
