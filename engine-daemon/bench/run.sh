#!/usr/bin/env bash
# Side-by-side benchmark, in one run:
#   docker -H unix://<engined> run --rm bb /bin/true
#   vs the same against Debian's dockerd (own roots, --bridge=none --iptables=false, --network none)
#   vs podman run --rm --network none
# plus resident memory of engined (idle, and with 50 containers) vs dockerd + containerd.
#
# Usage: engine-daemon/bench/run.sh [RUNS]     (as root; needs docker.io, podman, hyperfine, jq)
# podman runs with lowered nofile/nproc limits: its defaults exceed this sandbox's hard limits.
# Output: a table of medians on stdout; raw hyperfine JSON under $OUT (default /tmp/engined-bench).
set -euo pipefail
RUNS=${1:-20}
N=${N_CONTAINERS:-50}
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$WS/target}
BIN=$TARGET/release
DOCKER=${DOCKER_CLI:-/usr/local/bin/docker}
OUT=${OUT:-/tmp/engined-bench}
T=$(mktemp -d /tmp/eb.XXXXXX)
mkdir -p "$OUT"

need() { command -v "$1" >/dev/null || { echo "missing $1 ($2)" >&2; exit 2; }; }
need hyperfine "apt-get install hyperfine"
need dockerd "apt-get install docker.io"
need podman "apt-get install podman"
need jq "apt-get install jq"

if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$WS" && cargo build --release -p engine-daemon -p engine-runtime -p engine-shim -p engine-lifecycle --bins)
fi

ENGINED_PID=; DOCKERD_PID=; REMOTE_PID=; LC_PID=
cleanup() {
  set +e
  for s in "$T/e.sock" "$T/d.sock"; do
    [ -S "$s" ] && ids=$($DOCKER -H unix://$s ps -aq 2>/dev/null) && [ -n "$ids" ] && $DOCKER -H unix://$s rm -f $ids >/dev/null 2>&1
  done
  podman --root "$T/podman" --runroot "$T/podman-run" rm -af >/dev/null 2>&1
  [ -S "$T/r.sock" ] && ids=$($DOCKER -H unix://$T/r.sock ps -aq 2>/dev/null) && [ -n "$ids" ] && $DOCKER -H unix://$T/r.sock rm -f $ids >/dev/null 2>&1
  [ -n "$ENGINED_PID" ] && kill "$ENGINED_PID" 2>/dev/null
  [ -n "$REMOTE_PID" ] && kill "$REMOTE_PID" 2>/dev/null
  [ -n "$LC_PID" ] && kill "$LC_PID" 2>/dev/null
  [ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null
  sleep 2
  [ -n "$DOCKERD_PID" ] && kill -9 "$DOCKERD_PID" 2>/dev/null
  podman --root "$T/podman" --runroot "$T/podman-run" system reset -f >/dev/null 2>&1
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$T" 2>/dev/null
}
trap cleanup EXIT

# A busybox root filesystem tar, imported into all three as bb:latest.
mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev" "$T/rootfs/tmp"
cp /bin/busybox "$T/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$T/rootfs/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" > "$T/rootfs/etc/passwd"
tar -C "$T/rootfs" -cf "$T/rootfs.tar" .

wait_sock() { for _ in $(seq 200); do $DOCKER -H "unix://$1" version >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no daemon on $1" >&2; return 1; }
rss_kb() { # zombies have no VmRSS line
  local v; v=$(awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null); echo "${v:-0}"; }
rss_tree_kb() { # RSS of processes whose comm matches $1 (sum)
  local total=0; for p in $(pgrep -x "$1" || true); do total=$((total + $(rss_kb "$p"))); done; echo $total; }

ENGINE_BIN_DIR=$BIN "$BIN/engined" -H "unix://$T/e.sock" --data-root "$T/engine" --exec-root "$T/engine-run" \
  --log-level warn > "$T/engined.log" 2>&1 &
ENGINED_PID=$!
dockerd --data-root "$T/docker" --exec-root "$T/docker-exec" -H "unix://$T/d.sock" --pidfile "$T/docker.pid" \
  --bridge=none --iptables=false --ip6tables=false --log-level warn > "$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
wait_sock "$T/e.sock"; wait_sock "$T/d.sock"
E="$DOCKER -H unix://$T/e.sock"; D="$DOCKER -H unix://$T/d.sock"
P="podman --root $T/podman --runroot $T/podman-run --storage-driver overlay"
$E import "$T/rootfs.tar" bb:latest >/dev/null
$D import "$T/rootfs.tar" bb:latest >/dev/null
$P import "$T/rootfs.tar" bb:latest >/dev/null 2>&1
sleep 2
ENGINED_IDLE=$(rss_kb $ENGINED_PID)
DOCKERD_IDLE=$(rss_kb $DOCKERD_PID)
CONTAINERD_IDLE=$(rss_tree_kb containerd)

hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/run.json" \
  -n engined "$E run --rm --network none bb /bin/true" \
  -n dockerd "$D run --rm --network none bb /bin/true" \
  -n podman "$P run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none bb /bin/true" \
  -n "cli-only (docker version vs engined)" "$E version" >&2

median() { jq -r --arg n "$1" '.results[] | select(.command==$n) | .median * 1000' "$OUT/run.json"; }
ME=$(median engined); MD=$(median dockerd); MP=$(median podman); MV=$(median "cli-only (docker version vs engined)")

# 50 long-running containers on each daemon.
for i in $(seq "$N"); do $E run -d --network none bb sleep 1000 >/dev/null; done
for i in $(seq "$N"); do $D run -d --network none bb sleep 1000 >/dev/null; done
sleep 2
ENGINED_50=$(rss_kb $ENGINED_PID)
SHIMS_50=$(rss_tree_kb engine-shim)
DOCKERD_50=$(rss_kb $DOCKERD_PID)
CONTAINERD_50=$(rss_tree_kb containerd)
# containerd-shim-runc-v2's comm is cut to 15 characters: containerd-shim.
DSHIMS_50=$(rss_tree_kb containerd-shim)

# The same with the manager in its own process: engined --lifecycle + engine-lifecycled.
REMOTE_LINE=
if [ -x "$BIN/engine-lifecycled" ]; then
  $E rm -f $($E ps -aq) >/dev/null 2>&1 || true
  ENGINE_BIN_DIR=$BIN "$BIN/engine-lifecycled" --root "$T/lc" --images "$T/remote/images" --socket "$T/lc.sock" \
    --log-level warn > "$T/lc.log" 2>&1 &
  LC_PID=$!
  for _ in $(seq 100); do [ -S "$T/lc.sock" ] && break; sleep 0.1; done
  ENGINE_BIN_DIR=$BIN "$BIN/engined" -H "unix://$T/r.sock" --data-root "$T/remote" --exec-root "$T/remote-run" \
    --lifecycle "unix://$T/lc.sock" --log-level warn > "$T/remote.log" 2>&1 &
  REMOTE_PID=$!
  wait_sock "$T/r.sock"
  R="$DOCKER -H unix://$T/r.sock"
  $R import "$T/rootfs.tar" bb:latest >/dev/null
  sleep 2
  R_IDLE=$(( $(rss_kb $REMOTE_PID) + $(rss_kb $LC_PID) ))
  for i in $(seq "$N"); do $R run -d --network none bb sleep 1000 >/dev/null; done
  sleep 2
  R_50=$(( $(rss_kb $REMOTE_PID) + $(rss_kb $LC_PID) ))
  REMOTE_LINE=yes
fi

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
{
  echo "## docker run --rm bb /bin/true (median of $RUNS, ms)"
  printf "| engined | dockerd 20.10 | podman | engined/dockerd | docker version alone |\n|---|---|---|---|---|\n"
  printf "| %.1f | %.1f | %.1f | %.3f (target <= 0.2) | %.1f |\n" "$ME" "$MD" "$MP" "$(awk -v a="$ME" -v b="$MD" 'BEGIN{print a/b}')" "$MV"
  echo
  echo "## resident memory (MiB)"
  echo "| | idle | with $N containers | per-container shims (sum, $N) |"
  echo "|---|---|---|---|"
  echo "| engined (manager in-process) | $(mib $ENGINED_IDLE) | $(mib $ENGINED_50) | engine-shim: $(mib $SHIMS_50) |"
  [ -n "$REMOTE_LINE" ] && echo "| engined --lifecycle + engine-lifecycled | $(mib $R_IDLE) | $(mib $R_50) | (same shims) |"
  echo "| dockerd + containerd | $(mib $DOCKERD_IDLE) + $(mib $CONTAINERD_IDLE) | $(mib $DOCKERD_50) + $(mib $CONTAINERD_50) | containerd-shim: $(mib $DSHIMS_50) |"
} | tee "$OUT/summary.md"
