#!/usr/bin/env bash
# Big images: `docker import` of a Debian root filesystem tar (about 450 MB), `docker save` of the
# imported image and `docker load` of the saved tar, through engined and through dockerd (Debian's
# docker.io), alternately, ROUNDS times; prints each step's time, the medians, and each daemon's
# peak resident memory (VmHWM, reset before every step through /proc/<pid>/clear_refs) during it:
# a daemon that held the whole tar would show it there.
#
# Usage: bench/big-image.sh            (as root; one command: builds what it needs)
# Env: ROUNDS (default 3), SKIP_BUILD=1 (reuse the release build), TAR (default
#      /var/cache/engine-bench/debian.tar: made once with mmdebstrap, kept outside the repository),
#      OUT (default /tmp/big-image-bench: the summary is kept there).
# Each daemon has its own roots and socket; dockerd runs with --bridge=none --iptables=false in a
# network namespace of its own (nsenter --net, as bench/density.sh does). dockerd's peak is dockerd's
# own (the containerd it starts does not take part in import, save or load with the overlay2
# graph driver). Everything started is stopped and removed at the end.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$WS/target}/release
DOCKER=${DOCKER_CLI:-/usr/local/bin/docker}
TAR=${TAR:-/var/cache/engine-bench/debian.tar}
OUT=${OUT:-/tmp/big-image-bench}
mkdir -p "$OUT"

if [ ! -s "$TAR" ]; then
  command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap
  mkdir -p "$(dirname "$TAR")"
  # minbase is about 130 MB; these bring it to about 450 MB.
  mmdebstrap --variant=minbase --format=tar --include=python3,git,gcc,make,curl bookworm "$TAR.part"
  mv "$TAR.part" "$TAR"
fi
[ -n "${SKIP_BUILD:-}" ] || (cd "$WS" && cargo build --release -p engine-daemon -p engine-runtime -p engine-shim -p engine-lifecycle --bins)

T=$(mktemp -d /tmp/bigimg.XXXXXX)
NETNS=bigimg$$
declare -A PID
cleanup() {
  set +e
  for d in "${!PID[@]}"; do kill "${PID[$d]}" 2>/dev/null; done
  for d in "${!PID[@]}"; do
    for _ in $(seq 200); do kill -0 "${PID[$d]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${PID[$d]}" 2>/dev/null
  done
  ip netns del "$NETNS" 2>/dev/null
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

wait_sock() { # socket, pid
  for _ in $(seq 600); do
    $DOCKER -H "unix://$1" version >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "daemon on $1 did not come up" >&2; tail -20 "$T"/*.log >&2; exit 1
}

ENGINE_BIN_DIR=$BIN "$BIN/engined" -H "unix://$T/engined.sock" --data-root "$T/engine" --exec-root "$T/engine-run" \
  --log-level warn > "$T/engined.log" 2>&1 &
PID[engined]=$!
ip netns add "$NETNS"
nsenter --net="/run/netns/$NETNS" dockerd --data-root "$T/docker" --exec-root "$T/docker-run" -H "unix://$T/dockerd.sock" \
  --pidfile "$T/docker.pid" --bridge=none --iptables=false --ip6tables=false --log-level warn > "$T/dockerd.log" 2>&1 &
PID[dockerd]=$!
wait_sock "$T/engined.sock" "${PID[engined]}"
wait_sock "$T/dockerd.sock" "${PID[dockerd]}"

now() { date +%s%N; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# One timed step: daemon, name, docker arguments... Appends "daemon step seconds peak_kib" to the results.
step() {
  local d=$1 name=$2; shift 2
  local pid=${PID[$d]} t0 t1
  echo 5 > "/proc/$pid/clear_refs"
  t0=$(now)
  $DOCKER -H "unix://$T/$d.sock" "$@" >/dev/null
  t1=$(now)
  printf '%s %s %.2f %s\n' "$d" "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)/1e9}')" "$(hwm_kb "$pid")" \
    | tee -a "$T/results"
}
round() { # daemon, round
  local d=$1 r=$2
  step "$d" import import "$TAR" "big:$r"
  step "$d" save save -o "$T/$d-saved.tar" "big:$r"
  $DOCKER -H "unix://$T/$d.sock" rmi "big:$r" >/dev/null
  step "$d" load load -i "$T/$d-saved.tar"
  $DOCKER -H "unix://$T/$d.sock" rmi "big:$r" >/dev/null
  rm -f "$T/$d-saved.tar"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "tar: $TAR, $(( $(stat -c %s "$TAR") / 1000000 )) MB; idle RSS: engined $(( $(rss_kb "${PID[engined]}") / 1024 )) MiB, dockerd $(( $(rss_kb "${PID[dockerd]}") / 1024 )) MiB; load average $load0"
for r in $(seq "$ROUNDS"); do
  # Alternate which daemon goes first, so neither always meets a warmer page cache.
  if (( r % 2 )); then order="engined dockerd"; else order="dockerd engined"; fi
  for d in $order; do round "$d" "$r"; done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
{
  echo "# bench/big-image.sh, $(date -u +%Y-%m-%d\ %H:%M) UTC, $ROUNDS rounds, tar $(( $(stat -c %s "$TAR") / 1000000 )) MB, load average $load0 before, $load1 after"
  printf '%-8s %-8s %10s %10s %14s\n' step daemon 'median s' 'all s' 'peak RSS MiB'
  for s in import save load; do
    for d in engined dockerd; do
      times=$(awk -v d="$d" -v s="$s" '$1==d && $2==s {print $3}' "$T/results")
      peak=$(awk -v d="$d" -v s="$s" '$1==d && $2==s && $4>m {m=$4} END {printf "%.0f", m/1024}' "$T/results")
      printf '%-8s %-8s %10s %10s %14s\n' "$s" "$d" "$(echo "$times" | median)" "$(echo "$times" | paste -sd/)" "$peak"
    done
  done
} | tee "$OUT/summary.txt"
