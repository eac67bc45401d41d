#!/usr/bin/env bash
# The main job: start a container end to end on a fresh machine (run as root).
# Makes a busybox-static image, then runs a container from it through the
# embedded Engine (image store -> lifecycle manager -> shim -> engine-runc),
# the example's one binary serving as its own shim and engine-runc.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo run --features single-binary --example quickstart
