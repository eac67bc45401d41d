//! Fuzzing (bolero) of the copy path's extraction:
//! [`ContainerRoot::extract_tar`] on arbitrary bytes (raw, or a hostile
//! archive built from them: `..`, absolute names and links, symlinked
//! parents, hard links out, long names through GNU and PAX headers, devices,
//! truncation) must never panic and never write outside the root. In
//! `cargo test` it runs random inputs for a few seconds; under
//! `cargo bolero test fuzz_extract_tar` it runs as a coverage-guided fuzzer.

use engine_archive::{ContainerRoot, ExtractOptions};
use std::time::Duration;

#[path = "../../engine-image/tests/support/hostile_tar.rs"]
mod hostile_tar;
use hostile_tar::*;

/// Returns whether anything was written into the root.
fn check(base: &std::path::Path, input: &[u8]) -> bool {
    let case = Case::new(base);
    let (raw, mut c) = match input.split_first() {
        Some((0, raw)) => (Some(raw), Cursor(&[])),
        _ => (None, Cursor(input)),
    };
    let opts = ExtractOptions::default()
        .copy_uid_gid(c.byte().is_multiple_of(2))
        .no_overwrite_dir_non_dir(c.byte().is_multiple_of(2));
    let dest = ["/", "/d", "/l", "..", "/a/.."][c.below(5)];
    let data = match raw {
        Some(raw) => raw.to_vec(),
        None => hostile_tar(&mut c, &case.outside()),
    };
    let root = ContainerRoot::open_dir(&case.root()).unwrap();
    if let Err(e) = root.extract_tar(dest, &data[..], &opts) {
        assert!(!e.to_string().is_empty());
    }
    case.assert_nothing_outside(input);
    !tree(&case.root()).is_empty()
}

#[test]
fn fuzz_extract_tar() {
    let base = tempfile::Builder::new().prefix("fuzz-extract-").tempdir().unwrap();
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
