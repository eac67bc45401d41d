# Shared by the daemon benchmarks (sourced, not run). Each engine gets its own
# roots under $T and its own network namespace (loopback up): dockerd is never
# started in the host's namespace (it would rewrite the host's FORWARD policy
# and add docker0), and engined and podman run the same way for a fair
# comparison. Everything started is stopped by pid, and the namespaces, mounts
# and roots are removed on exit.
#
# Needs: BIN (target dir with engined, engine-shim, engine-runc), DOCKER (CLI).

T=$(mktemp -d /tmp/ebn.XXXXXX)
PIDS=()
SOCKS=()

# A network namespace of ours (named eb<pid>-$1) with loopback up; its name is
# printed (callers use it in a command substitution: cleanup finds it by name).
netns_new() {
  local ns="eb$$-$1"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  echo "$ns"
}

# Run a command in a namespace of ours (network only: mounts stay shared).
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }

wait_sock() {
  for _ in $(seq 300); do $DOCKER -H "unix://$1" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "no daemon on $1 (logs in $T)" >&2; return 1
}

# engined in namespace $1 with its roots under $T/e-$1; extra flags after.
start_engined() {
  local ns=$1; shift
  nsenter --net="/run/netns/$ns" env ENGINE_BIN_DIR="$BIN" "$BIN/engined" -H "unix://$T/e-$ns.sock" --data-root "$T/e-$ns" \
    --exec-root "$T/e-$ns-run" --log-level warn "$@" >"$T/engined-$ns.log" 2>&1 &
  PIDS+=($!); SOCKS+=("$T/e-$ns.sock")
  wait_sock "$T/e-$ns.sock"
}

# dockerd (and the containerd it starts) in namespace $1; extra flags after.
start_dockerd() {
  local ns=$1; shift
  nsenter --net="/run/netns/$ns" dockerd -H "unix://$T/d-$ns.sock" --data-root "$T/d-$ns" --exec-root "$T/d-$ns-run" \
    --pidfile "$T/d-$ns.pid" --log-level warn "$@" >"$T/dockerd-$ns.log" 2>&1 &
  PIDS+=($!); SOCKS+=("$T/d-$ns.sock")
  wait_sock "$T/d-$ns.sock"
}

# podman with its own roots, runc (crun refuses hybrid cgroup hosts), limits
# this sandbox allows; in namespace $1 when given.
podman_cmd() {
  local pre=""
  [ -n "${1:-}" ] && pre="nsenter --net=/run/netns/$1 "
  echo "${pre}podman --root $T/podman --runroot $T/podman-run --storage-driver overlay --runtime runc"
}
PODMAN_RUN_FLAGS="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"

# A busybox root filesystem (applets as links) as a tar: $T/rootfs.tar.
make_rootfs_tar() {
  local r=$T/rootfs
  mkdir -p "$r/bin" "$r/etc" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/data"
  cp /bin/busybox "$r/bin/"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"; done
  echo "root:x:0:0:root:/root:/bin/sh" >"$r/etc/passwd"
  tar -C "$r" -cf "$T/rootfs.tar" .
}

ms_now() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# PSS (kB) of one engine's processes: every process in its network namespace
# $1 (the daemon, containerd, shims, docker-proxy, conmon; not the containers,
# which have namespaces of their own).
pss_in_ns_kb() {
  local want total=0 d kb
  want="net:[$(stat -L -c %i "/run/netns/$1")]"
  for d in /proc/[0-9]*; do
    [ "$(readlink "$d/ns/net" 2>/dev/null)" = "$want" ] || continue
    kb=$(awk '/^Pss:/ {print $2}' "$d/smaps_rollup" 2>/dev/null)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

cleanup() {
  set +e
  for s in "${SOCKS[@]}"; do
    [ -S "$s" ] || continue
    ids=$($DOCKER -H "unix://$s" ps -aq 2>/dev/null)
    [ -n "$ids" ] && $DOCKER -H "unix://$s" rm -f $ids >/dev/null 2>&1
  done
  if [ -d "$T/podman" ]; then
    local P; P=$(podman_cmd "$(ip netns list | awk '{print $1}' | grep -x "eb$$-p")")
    $P rm -af -t 0 >/dev/null 2>&1
    $P system reset -f >/dev/null 2>&1
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^eb$$-"); do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$T" 2>/dev/null
}
trap cleanup EXIT
