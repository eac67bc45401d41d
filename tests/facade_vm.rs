//! The facade's scenarios (tests/scenarios, the same bodies tests/facade.rs
//! runs on `engine-runc`) on the `vm` runtime: each container in its own
//! QEMU micro-VM (crate `engine-vm`; TCG emulation where the host has no
//! KVM, so each boot takes seconds). The create-flow is the same: only the
//! runtime's name differs.
//!
//! Not here, and why: the owner-process binding and the facade over
//! engine-lifecycled test the manager's side, not the runtime's; image
//! builds on `vm` are `build_and_commit_with_vm` in tests/facade_build.rs.

mod common;
#[macro_use]
mod scenarios;

scenario_tests!("vm");
