#!/usr/bin/env bash
# Side-by-side image builds of one Dockerfile and context, in one run:
#   DOCKER_BUILDKIT=0 docker build against engined (the classic builder's API, engine-build)
#   vs podman build (buildah), own --root/--runroot
#   vs Debian's dockerd classic builder, when dockerd is installed (own roots, no bridge,
#   in a network namespace of its own)
# each uncached (--no-cache) and cached (nothing changed), medians of RUNS.
#
# Usage: engine-build/bench/build.sh [RUNS]   (as root; needs podman; BIN=target dir with engined,
# engine-shim, engine-runc; default target/release, built unless SKIP_BUILD=1)
# podman builds with runc (its crun refuses hybrid cgroup hosts) and lowered nofile/nproc limits
# (its defaults exceed this sandbox's hard limits).
set -euo pipefail
RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/../.." && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$WS/target}/release}
DOCKER=${DOCKER_CLI:-/usr/local/bin/docker}
command -v podman >/dev/null || { echo "missing podman (apt-get install podman)" >&2; exit 2; }
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$WS" && cargo build --release -p engine-daemon -p engine-runtime -p engine-shim --bins)
fi
# Roots, network namespaces (dockerd never in the host's), cleanup on exit.
source "$WS/engine-daemon/bench/lib.sh"

# A busybox root filesystem (applets installed as links), imported everywhere as bb:latest.
R=$T/rootfs
install -D /bin/busybox "$R/bin/busybox"
(cd "$R/bin" && for a in $(./busybox --list); do [ -e "$a" ] || ln -s busybox "$a"; done)
printf 'root:x:0:0:root:/root:/bin/sh\n' | install -D /dev/stdin "$R/etc/passwd"
tar -C "$R" -cf "$T/rootfs.tar" .

# The context: 20 files of 100 kB, a Dockerfile of 6 steps (2 RUN, 1 COPY).
mkdir -p "$T/ctx/data"
for i in $(seq 20); do head -c 100000 /dev/urandom > "$T/ctx/data/f$i"; done
cat > "$T/ctx/Dockerfile" <<'DF'
FROM bb:latest
COPY data /data
RUN cat /data/* > /all && echo done
ENV A=1
RUN echo $A > /a
CMD ["cat", "/a"]
DF

NE=$(netns_new e)
start_engined "$NE"
$DOCKER -H "unix://$T/e-$NE.sock" import "$T/rootfs.tar" bb:latest >/dev/null
P=$(podman_cmd)
$P import "$T/rootfs.tar" bb:latest >/dev/null 2>&1
DOCKERD=
if command -v dockerd >/dev/null; then
  ND=$(netns_new d)
  start_dockerd "$ND" --bridge=none --iptables=false --ip6tables=false
  $DOCKER -H "unix://$T/d-$ND.sock" import "$T/rootfs.tar" bb:latest >/dev/null
  DOCKERD=yes
fi

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
bench() { # name, then the build command without --no-cache
  local name=$1; shift
  "$@" >/dev/null 2>&1
  local un ca
  un=$(for _ in $(seq "$RUNS"); do ms "$@" --no-cache; done | median)
  ca=$(for _ in $(seq "$RUNS"); do ms "$@"; done | median)
  printf '| %s | %s ms | %s ms |\n' "$name" "$un" "$ca"
}
echo "| builder | uncached (median of $RUNS) | cached |"
echo "|---|---|---|"
bench "engined (docker build, classic API)" env DOCKER_BUILDKIT=0 $DOCKER -H "unix://$T/e-$NE.sock" build --network none -t b "$T/ctx"
bench "podman build (buildah, runc)" $P build --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --network none -t b "$T/ctx"
if [ -n "$DOCKERD" ]; then
  bench "dockerd classic builder" env DOCKER_BUILDKIT=0 $DOCKER -H "unix://$T/d-$ND.sock" build --network none -t b "$T/ctx"
fi
