#!/usr/bin/env bash
# The vm runtime beside engine-runc, through the docker CLI against one engined:
#  - run to first output: `docker run --rm bb echo hi`, from the command's start to the first line
#    on its stdout, and to its exit; medians of RUNS runs per runtime;
#  - memory per running container: K containers `sleep` in each runtime; PSS (smaps_rollup) of
#    each container's processes (vm: its monitor and QEMU; engine-runc: the container's process),
#    and of its shim; medians;
#  - with CONC=n: n vm containers started at once, time until every one has printed its line.
#
# Usage: engine-vm/bench/vm.sh            (as root, after `cargo build --workspace --bins`)
# Env: RUNS (default 5), K (default 3), CONC (default 0: skipped), PROFILE (debug|release, default
#      debug), SKIP_BUILD=1.
set -euo pipefail
RUNS=${RUNS:-5}
K=${K:-3}
CONC=${CONC:-0}
PROFILE=${PROFILE:-debug}
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/../.." && pwd)
BIN=${CARGO_TARGET_DIR:-$WS/target}/$PROFILE
DOCKER=${DOCKER_CLI:-/usr/local/bin/docker}
T=$(mktemp -d /tmp/vmbench.XXXXXX)
ENGINED=

if [ -z "${SKIP_BUILD:-}" ]; then
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  (cd "$WS" && cargo build "${flag[@]}" -p engine-daemon -p engine-runtime -p engine-shim -p engine-vm --bins)
fi

cleanup() {
  set +e
  [ -n "$ENGINED" ] && $D ps -aq 2>/dev/null | xargs -r $D rm -f >/dev/null 2>&1
  [ -n "$ENGINED" ] && kill "$ENGINED" 2>/dev/null && wait "$ENGINED" 2>/dev/null
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$T"
  # The containers' cgroup parent, in every hierarchy (v1 and v2).
  for d in /sys/fs/cgroup/*/"vmbench$$" /sys/fs/cgroup/"vmbench$$"; do [ -d "$d" ] && rmdir "$d"; done
}
trap cleanup EXIT

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/tmp"
cp /bin/busybox "$T/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$T/rootfs/bin/$a"; done
tar -C "$T/rootfs" -cf "$T/rootfs.tar" .

ENGINE_BIN_DIR=$BIN "$BIN/engined" -H "unix://$T/e.sock" --data-root "$T/engine" --exec-root "$T/run" \
  --cgroup-parent "/vmbench$$" --log-level warn > "$T/engined.log" 2>&1 &
ENGINED=$!
D="$DOCKER -H unix://$T/e.sock"
for _ in $(seq 300); do [ -S "$T/e.sock" ] && $D version >/dev/null 2>&1 && break; sleep 0.1; done
$D import "$T/rootfs.tar" bb:latest >/dev/null
# The first vm container extracts the kernel and builds the initramfs (cached): not measured.
$D run --rm --network none --runtime vm bb true

echo "# vm runtime vs engine-runc ($(nproc) cpus, load $(cut -d' ' -f1 /proc/loadavg), accel: $( (grep -qE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]) && echo kvm || echo tcg))"
for rt in engine-runc vm; do
  : > "$T/first.$rt"; : > "$T/exit.$rt"
  for _ in $(seq "$RUNS"); do
    t0=$(now_ns)
    {
      read -r line
      t1=$(now_ns)
      cat >/dev/null
    } < <($D run --rm --network none --runtime "$rt" bb echo hi)
    t2=$(now_ns)
    [ "$line" = hi ] || { echo "unexpected output $line from $rt" >&2; exit 1; }
    echo $(( (t1 - t0) / 1000000 )) >> "$T/first.$rt"
    echo $(( (t2 - t0) / 1000000 )) >> "$T/exit.$rt"
  done
  echo "$rt: run to first output median $(median < "$T/first.$rt") ms, to exit $(median < "$T/exit.$rt") ms ($RUNS runs: $(tr '\n' ' ' < "$T/first.$rt")ms)"
done

for rt in engine-runc vm; do
  : > "$T/pss.$rt"; : > "$T/shim.$rt"
  ids=()
  for i in $(seq "$K"); do ids+=("$($D run -d --network none --runtime "$rt" --name "$rt-$i" bb sh -c 'echo up; exec sleep 100000')"); done
  for id in "${ids[@]}"; do
    for _ in $(seq 1200); do $D logs "$id" 2>/dev/null | grep -q up && break; sleep 0.1; done
  done
  sleep 2
  for id in "${ids[@]}"; do
    pid=$($D inspect -f '{{.State.Pid}}' "$id")
    shim=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status")
    total=$(pss_kib "$pid")
    for c in $(cat "/proc/$pid/task/"*/children 2>/dev/null); do total=$(( total + $(pss_kib "$c") )); done
    awk -v k="$total" 'BEGIN {printf "%.1f\n", k / 1024}' >> "$T/pss.$rt"
    awk -v k="$(pss_kib "$shim")" 'BEGIN {printf "%.1f\n", k / 1024}' >> "$T/shim.$rt"
  done
  echo "$rt: PSS per running container median $(median < "$T/pss.$rt") MiB (container processes; vm: monitor + QEMU), shim $(median < "$T/shim.$rt") MiB ($K containers)"
  $D rm -f "${ids[@]}" >/dev/null
done

if [ "$CONC" -gt 0 ]; then
  t0=$(now_ns)
  seq "$CONC" | xargs -P "$CONC" -I{} $D run -d --network none --runtime vm --name "conc-{}" bb sh -c 'echo up; exec sleep 100000' >/dev/null
  for i in $(seq "$CONC"); do
    for _ in $(seq 3000); do $D logs "conc-$i" 2>/dev/null | grep -q up && break; sleep 0.1; done
  done
  t1=$(now_ns)
  up=0; for i in $(seq "$CONC"); do $D logs "conc-$i" 2>/dev/null | grep -q up && up=$((up + 1)); done
  echo "vm: $CONC containers started at once: $up printed their line within $(( (t1 - t0) / 1000000 )) ms"
  $D ps -aq | xargs -r $D rm -f >/dev/null
fi
