//! Fuzzing (bolero) of layer unpacking: [`unpack_layer`] on arbitrary bytes
//! (raw, or a hostile archive built from them: `..`, absolute names and
//! links, symlinked parents, hard links out, long names through GNU and PAX
//! headers, whiteouts, devices, truncation) into a temp dir must never panic
//! and never write beside the directory. In `cargo test` it runs random
//! inputs for a few seconds; under `cargo bolero test fuzz_unpack_layer`
//! it runs as a coverage-guided fuzzer.

use engine_image::unpack::{unpack_layer, UnpackOptions};
use std::time::Duration;

#[path = "support/hostile_tar.rs"]
mod hostile_tar;
use hostile_tar::*;

/// Returns whether anything was written into the root.
fn check(base: &std::path::Path, input: &[u8]) -> bool {
    let case = Case::new(base);
    let data = match input.split_first() {
        Some((0, raw)) => raw.to_vec(),
        _ => hostile_tar(&mut Cursor(input), &case.outside()),
    };
    if let Err(e) = unpack_layer(&data[..], &case.root(), &UnpackOptions::default()) {
        assert!(!e.to_string().is_empty());
    }
    case.assert_nothing_outside(input);
    !tree(&case.root()).is_empty()
}

#[test]
fn fuzz_unpack_layer() {
    let base = tempfile::Builder::new().prefix("fuzz-unpack-").tempdir().unwrap();
    let (runs, written) = (std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0));
    bolero::check!().with_test_time(Duration::from_secs(4)).with_max_len(1024).for_each(|input: &[u8]| {
        runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if check(base.path(), input) {
            written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let (runs, written) = (runs.into_inner(), written.into_inner());
    assert!(runs > 50 && written > runs / 10, "the fuzzer hardly ran: {written} of {runs} inputs wrote anything");
}
