#!/usr/bin/env bash
# The test command: installs what the tests need, builds every binary the
# end-to-end tests drive (engine-runc, engine-shim, engine-lifecycled, engined, engine),
# then runs the whole workspace's tests with real containers. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --workspace --bins
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"
