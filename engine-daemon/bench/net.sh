#!/usr/bin/env bash
# Networking side by side, in one run (issue 9): engined (--network-driver
# bridge: nftables DNAT, no proxy) vs dockerd 20.10 (iptables + docker-proxy)
# vs podman (CNI bridge + portmap, runc). Each engine in a network namespace of
# its own (loopback up); the host side of every connection is in that namespace.
#   1. `run -d -p 0:80 bb nc -ll -p 80 -e sh -c 'cat >/dev/null && echo ok'` to
#      the first connection the server answers on 127.0.0.1:<published port>
#      (median of RUNS; tcp.py)
#   2. 1 GiB from the host side through the published port on 127.0.0.1 to the
#      server's answer after reading it all (median of 3)
#   3. PSS of the engine's processes (all in its namespace: daemon, containerd,
#      shims, docker-proxy, conmon) per networked container: (with N - idle) / N
#
# Usage: engine-daemon/bench/net.sh [RUNS]   (as root; needs docker.io, podman,
# python3; BIN=target dir with engined, engine-shim, engine-runc, default
# target/release, built unless SKIP_BUILD=1; N_CONTAINERS (20); NO_PODMAN=1)
set -euo pipefail
RUNS=${1:-10}
N=${N_CONTAINERS:-20}
GIB=${BYTES:-1073741824}
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/../.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$WS/target}/release}
DOCKER=${DOCKER_CLI:-/usr/local/bin/docker}
for c in dockerd /usr/bin/python3 nsenter; do command -v $c >/dev/null || { echo "missing $c" >&2; exit 2; }; done
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$WS" && cargo build --release -p engine-daemon -p engine-runtime -p engine-shim --bins)
fi
source "$HERE/lib.sh"

make_rootfs_tar
NE=$(netns_new e); ND=$(netns_new d)
start_engined "$NE" --network-driver bridge
start_dockerd "$ND"
E="$DOCKER -H unix://$T/e-$NE.sock"; D="$DOCKER -H unix://$T/d-$ND.sock"
$E import "$T/rootfs.tar" bb:latest >/dev/null
$D import "$T/rootfs.tar" bb:latest >/dev/null
NAMES=(engined dockerd); NSS=("$NE" "$ND"); CLIS=("$E" "$D"); FLAGS=("" ""); SPECS=(0:80 0:80)
if [ -z "${NO_PODMAN:-}" ] && command -v podman >/dev/null; then
  NP=$(netns_new p)
  P=$(podman_cmd "$NP")
  $P import "$T/rootfs.tar" bb:latest >/dev/null 2>&1
  # podman refuses host port 0: `-p 80` asks it for a free one.
  NAMES+=(podman); NSS+=("$NP"); CLIS+=("$P"); FLAGS+=("$PODMAN_RUN_FLAGS"); SPECS+=(80)
fi

# 1. run to first answered connection, interleaved.
declare -A FIRST
for i in $(seq "$RUNS"); do
  for k in "${!NAMES[@]}"; do
    # shellcheck disable=SC2086
    read -r t cid < <(in_ns "${NSS[$k]}" env RUN_FLAGS="${FLAGS[$k]}" PORT_SPEC="${SPECS[$k]}" /usr/bin/python3 "$HERE/tcp.py" first ${CLIS[$k]})
    FIRST[$k]+="$t "
    ${CLIS[$k]} rm -f "$cid" >/dev/null 2>&1
  done
done

# 2. 1 GiB through the published port, 3 times each, interleaved.
declare -A TPUT CID
for k in "${!NAMES[@]}"; do
  # shellcheck disable=SC2086
  read -r _ CID[$k] < <(in_ns "${NSS[$k]}" env RUN_FLAGS="${FLAGS[$k]}" PORT_SPEC="${SPECS[$k]}" /usr/bin/python3 "$HERE/tcp.py" first ${CLIS[$k]})
done
for i in 1 2 3; do
  for k in "${!NAMES[@]}"; do
    port=$(${CLIS[$k]} port "${CID[$k]}" 80/tcp | head -1 | sed 's/.*://')
    TPUT[$k]+="$(in_ns "${NSS[$k]}" /usr/bin/python3 "$HERE/tcp.py" send "$port" "$GIB") "
  done
done
for k in "${!NAMES[@]}"; do ${CLIS[$k]} rm -f "${CID[$k]}" >/dev/null 2>&1; done

# 3. memory per networked container.
declare -A IDLE FULL
sleep 2
for k in "${!NAMES[@]}"; do IDLE[$k]=$(pss_in_ns_kb "${NSS[$k]}"); done
for k in "${!NAMES[@]}"; do
  for i in $(seq "$N"); do
    # shellcheck disable=SC2086
    ${CLIS[$k]} run -d -p "${SPECS[$k]}" ${FLAGS[$k]} bb nc -ll -p 80 -e cat >/dev/null
  done
done
sleep 2
for k in "${!NAMES[@]}"; do FULL[$k]=$(pss_in_ns_kb "${NSS[$k]}"); done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo "| | run -d -p 0:80 to first answered connection (median of $RUNS) | 1 GiB through the port, 127.0.0.1 (median of 3) | PSS idle | PSS per container ($N) |"
echo "|---|---|---|---|---|"
E_FIRST=$(med "${FIRST[0]}"); E_TPUT=$(med "${TPUT[0]}"); E_PER=$(((FULL[0] - IDLE[0]) / N))
for k in "${!NAMES[@]}"; do
  f=$(med "${FIRST[$k]}"); tp=$(med "${TPUT[$k]}"); per=$(((FULL[$k] - IDLE[$k]) / N))
  if [ "$k" = 0 ]; then r=""; else
    r=" (engined/${NAMES[$k]}: $(ratio "$E_FIRST" "$f")x time, $(ratio "$E_TPUT" "$tp")x throughput, $(ratio "$E_PER" "$per")x memory)"
  fi
  printf '| %s | %s ms | %s MiB/s | %s MiB | %s kB%s |\n' "${NAMES[$k]}" "$f" "$tp" \
    "$(awk -v k="${IDLE[$k]}" 'BEGIN{printf "%.1f", k/1024}')" "$per" "$r"
done
echo "raw: first ${FIRST[*]} | MiB/s ${TPUT[*]}" >&2
