#!/usr/bin/env bash
# Resident memory per running container: engine-shim vs conmon vs
# containerd-shim-runc-v2, N sleeping busybox containers each (runc for all),
# RSS and PSS from /proc/<pid>/smaps_rollup (medians), plus the time from
# launch to a running container. Run as root from the workspace root:
#   engine-shim/bench/memory.sh [N]          (default N=20)
# Env: RUNTIME=/path/to/runtime for engine-shim (default runc; e.g. target/release/engine-runc)
#      PROFILE=release|shim (default release: the build engined and the facade launch, as
#        `cargo build --release` makes it)
#      SHIM_BIN_DIR=<dir holding another engine-shim build to measure> (default: this build's)
#      MODE=connected|idle (default connected: each shim has a client waiting for its init, as the
#        lifecycle manager has for every running container: an exit watch, no gRPC connection)
set -euo pipefail
N=${1:-20}
cd "$(dirname "$0")/../.."
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
RUNC=$(command -v runc)
RUNTIME=${RUNTIME:-$RUNC}
WORK=$(mktemp -d /tmp/shim-memory-bench.XXXXXX)
CTRD_PID=""

cleanup() {
  set +e
  if [ -n "$CTRD_PID" ]; then
    for i in $(seq 1 "$N"); do
      ctr -a "$WORK/ctrd/ctrd.sock" -n shimbench t kill -s 9 "c$i" >/dev/null 2>&1
    done
    sleep 1
    for i in $(seq 1 "$N"); do
      ctr -a "$WORK/ctrd/ctrd.sock" -n shimbench t rm "c$i" >/dev/null 2>&1
      ctr -a "$WORK/ctrd/ctrd.sock" -n shimbench c rm "c$i" >/dev/null 2>&1
    done
    kill "$CTRD_PID" 2>/dev/null; wait "$CTRD_PID" 2>/dev/null
  fi
  for i in $(seq 1 "$N"); do
    "$RUNC" --root "$WORK/conmon/runc" kill "cm-$$-$i" 9 >/dev/null 2>&1
  done
  sleep 0.5
  for i in $(seq 1 "$N"); do
    "$RUNC" --root "$WORK/conmon/runc" delete --force "cm-$$-$i" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# median of numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {m=0} else if (NR%2) {m=a[(NR+1)/2]} else {m=(a[NR/2]+a[NR/2+1])/2}; printf "%.1f\n", m}'; }
field() { awk -v f="$2:" '$1==f {print $2}' "/proc/$1/smaps_rollup"; }
now_ms() { date +%s%N | awk '{printf "%.1f", $1/1000000}'; }

make_rootfs() {
  mkdir -p "$1/bin" "$1/proc" "$1/dev" "$1/sys" "$1/tmp" "$1/etc"
  cp /bin/busybox "$1/bin/busybox"
  ln -sf busybox "$1/bin/sleep"; ln -sf busybox "$1/bin/sh"
}

# The shim as deployed: the release profile (PROFILE=shim measures the size-oriented
# `shim` profile of the root Cargo.toml instead).
PROFILE=${PROFILE:-release}
MODE=${MODE:-connected}
PROFILE_ARGS=(--profile "$PROFILE")
echo "building engine-shim (profile $PROFILE)..." >&2
cargo build -q "${PROFILE_ARGS[@]}" -p engine-shim --bin engine-shim --example shimbench >&2

# 1. engine-shim
ENGINE_BIN_DIR="${SHIM_BIN_DIR:-$TARGET/$PROFILE}" "$TARGET/$PROFILE/examples/shimbench" "$N" "$RUNTIME" "$WORK/ours" "$MODE" > "$WORK/ours.txt"
get() { awk -F= -v k="$2" '$1==k {print $2}' "$1"; }

# 2. conmon, driven the way podman drives it (runc, k8s-file log, exit dir)
mkdir -p "$WORK/conmon/exits" "$WORK/conmon/sock" "$WORK/conmon/runc"
make_rootfs "$WORK/conmon/rootfs"
: > "$WORK/conmon/launch_ms"
for i in $(seq 1 "$N"); do
  b="$WORK/conmon/b$i"; mkdir -p "$b"
  (cd "$b" && "$RUNC" spec)
  jq --arg r "$WORK/conmon/rootfs" '.process.terminal=false | .process.args=["sleep","100000"] | .root.path=$r | .root.readonly=true | .linux.namespaces |= map(select(.type!="network"))' "$b/config.json" > "$b/c.json" && mv "$b/c.json" "$b/config.json"
  id="cm-$$-$i"
  t0=$(now_ms)
  conmon --api-version 1 -c "$id" -u "$id" -n "$id" -r "$RUNC" --runtime-arg --root --runtime-arg "$WORK/conmon/runc" \
    -b "$b" -p "$b/pid" -P "$b/conmon.pid" -l "k8s-file:$b/ctr.log" --exit-dir "$WORK/conmon/exits" \
    --socket-dir-path "$WORK/conmon/sock" --log-level error
  until [ -s "$b/pid" ]; do sleep 0.002; done
  "$RUNC" --root "$WORK/conmon/runc" start "$id"
  t1=$(now_ms)
  echo "$t0 $t1" | awk '{print $2-$1}' >> "$WORK/conmon/launch_ms"
done
sleep 2
: > "$WORK/conmon/rss"; : > "$WORK/conmon/pss"; : > "$WORK/conmon/anon"
for i in $(seq 1 "$N"); do
  p=$(cat "$WORK/conmon/b$i/conmon.pid")
  field "$p" Rss >> "$WORK/conmon/rss"; field "$p" Pss >> "$WORK/conmon/pss"; field "$p" Private_Dirty >> "$WORK/conmon/anon"
done

# 3. containerd-shim-runc-v2, through a containerd started here with its own root, state and socket
mkdir -p "$WORK/ctrd"
printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' > "$WORK/ctrd/config.toml"
containerd --config "$WORK/ctrd/config.toml" --root "$WORK/ctrd/root" --state "$WORK/ctrd/state" \
  --address "$WORK/ctrd/ctrd.sock" > "$WORK/ctrd/containerd.log" 2>&1 &
CTRD_PID=$!
until ctr -a "$WORK/ctrd/ctrd.sock" version >/dev/null 2>&1; do sleep 0.1; done
: > "$WORK/ctrd/launch_ms"
for i in $(seq 1 "$N"); do
  make_rootfs "$WORK/ctrd/rootfs$i"
  t0=$(now_ms)
  ctr -a "$WORK/ctrd/ctrd.sock" -n shimbench run -d --rootfs "$WORK/ctrd/rootfs$i" "c$i" /bin/sleep 100000
  t1=$(now_ms)
  echo "$t0 $t1" | awk '{print $2-$1}' >> "$WORK/ctrd/launch_ms"
done
sleep 2
: > "$WORK/ctrd/rss"; : > "$WORK/ctrd/pss"; : > "$WORK/ctrd/anon"
for p in $(pgrep -f "containerd-shim-runc-v2 -namespace shimbench .*-address $WORK/ctrd/ctrd.sock"); do
  field "$p" Rss >> "$WORK/ctrd/rss"; field "$p" Pss >> "$WORK/ctrd/pss"; field "$p" Private_Dirty >> "$WORK/ctrd/anon"
done
n_ctrd=$(wc -l < "$WORK/ctrd/rss")

kib_to_mib() { awk '{printf "%.2f", $1/1024}'; }
printf '\n%d sleeping containers each, runc; medians per container (one shim/monitor process each)\n' "$N"
printf 'private = Private_Dirty (memory only this process holds)\n\n'
printf 'engine-shim: %s (client connection and a Wait call open: %s)\n\n' "$MODE" "$([ "$MODE" = connected ] && echo yes || echo no)"
printf '%-28s %8s %8s %12s %16s\n' "shim" "RSS MiB" "PSS MiB" "private MiB" "launch->running"
printf '%-28s %8s %8s %12s %13s ms\n' "engine-shim ($(get "$WORK/ours.txt" runtime), $PROFILE)" \
  "$(get "$WORK/ours.txt" rss_kib_median | kib_to_mib)" "$(get "$WORK/ours.txt" pss_kib_median | kib_to_mib)" \
  "$(get "$WORK/ours.txt" private_kib_median | kib_to_mib)" "$(get "$WORK/ours.txt" launch_to_running_ms_median)"
printf '%-28s %8s %8s %12s %13s ms\n' "conmon $(conmon --version | awk 'NR==1{print $3}')" \
  "$(median < "$WORK/conmon/rss" | kib_to_mib)" "$(median < "$WORK/conmon/pss" | kib_to_mib)" \
  "$(median < "$WORK/conmon/anon" | kib_to_mib)" "$(median < "$WORK/conmon/launch_ms")"
printf '%-28s %8s %8s %12s %13s ms   (%d shims)\n' "containerd-shim-runc-v2" \
  "$(median < "$WORK/ctrd/rss" | kib_to_mib)" "$(median < "$WORK/ctrd/pss" | kib_to_mib)" \
  "$(median < "$WORK/ctrd/anon" | kib_to_mib)" "$(median < "$WORK/ctrd/launch_ms")" "$n_ctrd"
