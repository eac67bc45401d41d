#!/usr/bin/env bash
# Volumes and log drivers side by side, in one run (issue 12): engined vs
# dockerd 20.10 (each in a network namespace of its own, --network none).
#   1. `docker run --rm -v vol:/data bb true` (the named volume made by the
#      first run) beside `docker run --rm bb true`, medians of RUNS
#   2. log throughput per log driver (json-file, local): a container prints
#      LINES lines (`seq`); lines/s from `docker run -d` to `docker logs`
#      returning every one of them, median of 3
#
# Usage: engine-daemon/bench/volumes-logs.sh [RUNS]   (as root; needs docker.io;
# BIN=target dir with engined, engine-shim, engine-runc, default target/release,
# built unless SKIP_BUILD=1; LINES (200000))
set -euo pipefail
RUNS=${1:-10}
LINES=${LINES:-200000}
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/../.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$WS/target}/release}
DOCKER=${DOCKER_CLI:-/usr/local/bin/docker}
command -v dockerd >/dev/null || { echo "missing dockerd (apt-get install docker.io)" >&2; exit 2; }
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$WS" && cargo build --release -p engine-daemon -p engine-runtime -p engine-shim --bins)
fi
source "$HERE/lib.sh"

make_rootfs_tar
NE=$(netns_new e); ND=$(netns_new d)
start_engined "$NE"
start_dockerd "$ND" --bridge=none --iptables=false --ip6tables=false
E="$DOCKER -H unix://$T/e-$NE.sock"; D="$DOCKER -H unix://$T/d-$ND.sock"
NAMES=(engined dockerd); CLIS=("$E" "$D")
for k in 0 1; do ${CLIS[$k]} import "$T/rootfs.tar" bb:latest >/dev/null; done

ms() { local s; s=$(ms_now); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; echo $(($(ms_now) - s)); }
declare -A VOL PLAIN
for k in 0 1; do ${CLIS[$k]} run --rm --network none -v benchvol:/data bb true >/dev/null; done
for i in $(seq "$RUNS"); do
  for k in 0 1; do
    VOL[$k]+="$(ms ${CLIS[$k]} run --rm --network none -v benchvol:/data bb true) "
    PLAIN[$k]+="$(ms ${CLIS[$k]} run --rm --network none bb true) "
  done
done

# lines/s: run -d, wait, then docker logs until every line is there.
logs_rate() { # cli driver
  local cli=$1 drv=$2 s cid n
  s=$(date +%s%N)
  cid=$($cli run -d --network none --log-driver "$drv" bb seq "$LINES")
  $cli wait "$cid" >/dev/null
  for _ in $(seq 600); do
    n=$($cli logs "$cid" 2>/dev/null | wc -l)
    [ "$n" -ge "$LINES" ] && break
    sleep 0.05
  done
  [ "$n" = "$LINES" ] || { echo "$drv: docker logs gave $n of $LINES lines" >&2; exit 1; }
  local e; e=$(date +%s%N)
  $cli rm -f "$cid" >/dev/null
  awk -v n="$LINES" -v ns=$((e - s)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }'
}
declare -A RATE
for drv in json-file local; do
  for i in 1 2 3; do
    for k in 0 1; do RATE[$k$drv]+="$(logs_rate "${CLIS[$k]}" "$drv") "; done
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo "| | run --rm -v vol:/data bb true (median of $RUNS) | run --rm bb true | json-file lines/s ($LINES lines, median of 3) | local lines/s |"
echo "|---|---|---|---|---|"
for k in 0 1; do
  printf '| %s | %s ms | %s ms | %s | %s |\n' "${NAMES[$k]}" "$(med "${VOL[$k]}")" "$(med "${PLAIN[$k]}")" \
    "$(med "${RATE[${k}json-file]}")" "$(med "${RATE[${k}local]}")"
done
printf '| engined/dockerd | %s | %s | %s | %s |\n' \
  "$(ratio "$(med "${VOL[0]}")" "$(med "${VOL[1]}")")x" "$(ratio "$(med "${PLAIN[0]}")" "$(med "${PLAIN[1]}")")x" \
  "$(ratio "$(med "${RATE[0json-file]}")" "$(med "${RATE[1json-file]}")")x" \
  "$(ratio "$(med "${RATE[0local]}")" "$(med "${RATE[1local]}")")x"
echo "raw: vol ${VOL[*]} | plain ${PLAIN[*]} | rates ${RATE[*]}" >&2
