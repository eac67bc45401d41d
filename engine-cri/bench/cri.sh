#!/usr/bin/env bash
# Pod start through engine-cri beside the same operations through engined (as root):
# sandbox + container to running, 10 one after another (median) and 30 at once (median, wall),
# and the ratios. Both servers run with their own roots, sockets and cgroup parents and no pod
# network (loopback-only namespaces), so the comparison is the engine's path, not CNI.
# containerd's CRI plugin is not compared: it cannot start a sandbox on this machine (no
# CAP_SYS_RESOURCE for the OOM score it sets; see the crate docs on restrict_oom_score_adj).
# Usage: engine-cri/bench/cri.sh   Env: PROFILE (release|debug, default release), SKIP_BUILD=1,
#        SEQ (default 10), PAR (default 30). Needs python3-grpcio, python3-grpc-tools.
set -euo pipefail
PROFILE=${PROFILE:-release}
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/../.." && pwd)
BIN=${CARGO_TARGET_DIR:-$WS/target}/$PROFILE
DOCKER=${DOCKER_CLI:-/usr/local/bin/docker}
T=$(mktemp -d /tmp/cribench.XXXXXX)
TAG=cribench$$
if [ -z "${SKIP_BUILD:-}" ]; then
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  (cd "$WS" && cargo build "${flag[@]}" -p engine-cri -p engine-daemon -p engine-runtime -p engine-shim --bins)
fi
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null; done
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  find /sys/fs/cgroup -depth -type d -name "$TAG*" -exec rmdir {} + 2>/dev/null
  rm -rf "$T" 2>/dev/null
}
trap cleanup EXIT

ENGINE_BIN_DIR=$BIN "$BIN/engine-cri" --listen "$T/cri.sock" --root "$T/cri" --cgroup-parent "/$TAG-cri" \
  --network-driver none --log-level warn > "$T/cri.log" 2>&1 &
PIDS+=($!)
ENGINE_BIN_DIR=$BIN "$BIN/engined" -H "unix://$T/e.sock" --data-root "$T/engine" --exec-root "$T/engine-run" \
  --cgroup-parent "/$TAG-engined" --log-level warn > "$T/engined.log" 2>&1 &
PIDS+=($!)
for s in "$T/cri.sock" "$T/e.sock"; do
  for _ in $(seq 300); do [ -S "$s" ] && break; sleep 0.1; done
  [ -S "$s" ] || { echo "no server on $s" >&2; cat "$T"/*.log >&2; exit 1; }
done
# engined's busybox image, as the pause image engine-cri builds for itself.
mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev" "$T/rootfs/tmp"
cp /bin/busybox "$T/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$T/rootfs/bin/$a"; done
tar -C "$T/rootfs" -cf "$T/rootfs.tar" .
for _ in $(seq 300); do $DOCKER -H "unix://$T/e.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
$DOCKER -H "unix://$T/e.sock" import "$T/rootfs.tar" bb:latest >/dev/null
mkdir -p "$T/stubs"
/usr/bin/python3 -m grpc_tools.protoc -I "$WS/engine-cri/proto" --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
  "$WS/engine-cri/proto/api.proto"
echo "## engine-cri vs engined, pod start ($(date -u +%FT%TZ), $PROFILE build, $(nproc) cores)"
/usr/bin/python3 "$HERE/cri_bench.py" --cri "$T/cri.sock" --engined "$T/e.sock" --stubs "$T/stubs" --image bb:latest \
  --seq "${SEQ:-10}" --par "${PAR:-30}"
