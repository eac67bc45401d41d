#!/usr/bin/env bash
# Density benchmark: N sleeping busybox containers, started PAR at a time, then removed.
#
# Usage: bench/density.sh N [TARGET...]      (as root)
#   TARGET: engined (docker CLI against engined), facade (examples/density.rs: Engine::run),
#           dockerd (Debian's docker.io, in a network namespace of its own: nsenter --net, as
#           `ip netns exec` would hide the cgroup mounts behind a fresh /sys),
#           podman (--runtime runc). Default: engined facade.
# Env: PAR (default 4, as the issue measured), PROFILE (release|debug, default release),
#      ENGINED_ARGS (more engined flags, e.g. `--memory-reserve 2048` for a large N),
#      SKIP_BUILD=1, OUT (default /tmp/density-bench; a summary per target is kept there).
#
# Per target it reports: time to all N running, the start rate per tenth of N (does it slow down
# as N grows?), engine memory (PSS from /proc/<pid>/smaps_rollup of the daemon, the manager and
# every shim or conmon), machine memory (MemAvailable before and after), kernel objects per
# container (cgroup directories under the run's own cgroup parent, mounts under the run's roots),
# `docker ps` latency at N, removal time. Every container runs `--network none` (no bridge),
# each daemon has its own roots, socket and cgroup parent; everything is removed at the end.
set -euo pipefail
N=${1:?usage: bench/density.sh N [engined|facade|dockerd|podman ...]}
shift
TARGETS=${*:-engined facade}
[ "$N" -le 2000 ] || [ -n "${DENSITY_ALLOW_LARGE:-}" ] || { echo "N=$N: above 2000 needs DENSITY_ALLOW_LARGE=1" >&2; exit 2; }
PAR=${PAR:-4}
PROFILE=${PROFILE:-release}
HERE=$(cd "$(dirname "$0")" && pwd)
WS=$(cd "$HERE/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$WS/target}
BIN=$TARGET_DIR/$PROFILE
DOCKER=${DOCKER_CLI:-/usr/local/bin/docker}
OUT=${OUT:-/tmp/density-bench}
T=$(mktemp -d /tmp/dens.XXXXXX)
TAG=dens$$
mkdir -p "$OUT"

if [ -z "${SKIP_BUILD:-}" ]; then
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  (cd "$WS" && cargo build "${flag[@]}" -p engine-daemon -p engine-runtime -p engine-shim -p engine-lifecycle --bins \
    && cargo build "${flag[@]}" --example density)
fi

PIDS=(); NETNS=
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null; done
  # A run that stopped half-way: what is left of its containers (their shims outlive the daemon).
  local left; left=$(marked_pids; for p in /proc/[0-9]*; do grep -qs "/$TAG-" "$p/cgroup" && echo "${p#/proc/}"; done)
  if [ -n "$left" ]; then
    kill -9 $left 2>/dev/null
    for _ in $(seq 100); do
      busy=0; for p in $left; do kill -0 "$p" 2>/dev/null && busy=1; done
      [ "$busy" -eq 0 ] && break; sleep 0.1
    done
  fi
  [ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null
  grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  find /sys/fs/cgroup -depth -type d -path "*/$TAG*" -exec rmdir {} + 2>/dev/null
  rm -rf "$T" 2>/dev/null
}
trap cleanup EXIT

mem_avail() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }
pss_kb() { awk '/^Pss:/ {s+=$2} END {print s+0}' "$@" 2>/dev/null || true; }
# Processes whose environment carries this run's marker (shims inherit it from their launcher),
# or whose command line names this run's directory (containerd shims, conmon).
marked_pids() {
  local p
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case "$(cat "$d/comm" 2>/dev/null)" in
      engine-shim|containerd-shim*|conmon|containerd|dockerd|engined|density|podman) ;;
      *) continue ;;
    esac
    if grep -qz "^DENSITY_RUN=$T$" "$d/environ" 2>/dev/null || tr '\0' ' ' 2>/dev/null < "$d/cmdline" | grep -q "$T"; then
      echo "$p"
    fi
  done
}
engine_pss_report() { # prints "<total KiB> <process count> <per-comm breakdown>"
  local total=0 count=0 k c; declare -A by
  for p in $(marked_pids); do
    c=$(cat "/proc/$p/comm" 2>/dev/null) || continue; k=$(pss_kb "/proc/$p/smaps_rollup")
    total=$((total + k)); count=$((count + 1)); by[$c]=$(( ${by[$c]:-0} + k ))
  done
  local parts=""; for c in "${!by[@]}"; do parts="$parts $c=$(( ${by[$c]} / 1024 ))MiB"; done
  echo "$total $count$parts"
}
count_cgroups() { find /sys/fs/cgroup -type d -path "*$TAG*" 2>/dev/null | wc -l; }
count_mounts() { grep -c " $T" /proc/self/mountinfo || true; }
rates() { # stdin: ms since start of each start, one a line -> rate per tenth of N
  sort -n | awk -v n="$N" '
    { t[NR] = $1 }
    END {
      step = int(n / 10); if (step < 1) step = 1; prev = 0; out = ""
      for (i = step; i <= NR; i += step) {
        dt = (t[i] - prev) / 1000; prev = t[i]
        out = out sprintf("%s%.1f", out == "" ? "" : " ", dt > 0 ? step / dt : 0)
      }
      print out
    }'
}

busybox_tar() {
  [ -f "$T/rootfs.tar" ] && return
  mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev" "$T/rootfs/tmp"
  cp /bin/busybox "$T/rootfs/bin/"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$T/rootfs/bin/$a"; done
  echo "root:x:0:0:root:/root:/bin/sh" > "$T/rootfs/etc/passwd"
  tar -C "$T/rootfs" -cf "$T/rootfs.tar" .
}
wait_sock() { for _ in $(seq 300); do $DOCKER -H "unix://$1" version >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no daemon on $1" >&2; return 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# What is left of a target's containers after removal: cgroup directories below the run's cgroup
# parents, mounts under the run's roots, container or shim state directories under $1..., and
# processes (shims, conmon, or any process whose cgroup is under the run's parents).
leftovers() {
  local cg mnt st=0 procs=0 d p
  cg=$(find /sys/fs/cgroup -mindepth 2 -type d -path "*/$TAG-*/*" 2>/dev/null | wc -l)
  mnt=$(count_mounts)
  for d in "$@"; do
    for sub in containers shims; do
      [ -d "$d/$sub" ] && st=$((st + $(find "$d/$sub" -mindepth 1 -maxdepth 1 | wc -l)))
    done
  done
  # A shim exits by itself shortly after its container is deleted: give them 10 s.
  for _ in $(seq 50); do
    procs=0
    for p in $(marked_pids); do
      case "$(cat "/proc/$p/comm" 2>/dev/null)" in engine-shim|conmon|containerd-shim*) procs=$((procs + 1)) ;; esac
    done
    for p in /proc/[0-9]*; do grep -q "/$TAG-" "$p/cgroup" 2>/dev/null && procs=$((procs + 1)); done
    [ "$procs" -eq 0 ] && break
    sleep 0.2
  done
  echo "left after removal: $cg cgroup directories, $mnt mounts, $st state directories, $procs processes"
}

summary() { # name start_s rates pss_report ps_ms rm_s mem_before mem_after cgroups mounts [extra lines]
  local name=$1 start=$2 rate=$3 pss=$4 psms=$5 rms=$6 before=$7 after=$8 cg=$9 mnt=${10} extra=${11:-}
  local total=${pss%% *} rest=${pss#* }; local procs=${rest%% *} parts=${rest#* }
  {
    echo "## $name, N=$N, $PAR at a time ($(date -u +%FT%TZ), $PROFILE build)"
    echo "all running in ${start} s ($(awk -v n="$N" -v s="$start" 'BEGIN{printf "%.1f", n/s}')/s)"
    echo "start rate per tenth of N (containers/s): $rate"
    echo "engine PSS: $(awk -v k="$total" 'BEGIN{printf "%.0f", k/1024}') MiB in $procs processes ($parts ), $(awk -v k="$total" -v n="$N" 'BEGIN{printf "%.3f", k/1024/n}') MiB per container"
    echo "machine memory used: $(awk -v a="$before" -v b="$after" -v n="$N" 'BEGIN{printf "%.0f MiB, %.2f MiB per container", (a-b)/1024, (a-b)/1024/n}')"
    echo "kernel objects: $cg cgroup directories ($(awk -v c="$cg" -v n="$N" 'BEGIN{printf "%.1f", c/n}') per container), $mnt mounts ($(awk -v c="$mnt" -v n="$N" 'BEGIN{printf "%.1f", c/n}') per container)"
    echo "list at N: ${psms} ms"
    echo "removal of all: ${rms} s"
    [ -z "$extra" ] || printf '%s\n' "$extra"
  } | tee "$OUT/$name-$N.md"
}

# N containers through a docker-API daemon at $1 (docker CLI, PAR at a time).
docker_run_n() {
  local sock=$1 name=$2 d="$DOCKER -H unix://$1"
  $d import "$T/rootfs.tar" bb:latest >/dev/null
  local before; before=$(mem_avail)
  local t0; t0=$(now_ms)
  seq "$N" | xargs -P "$PAR" -I{} sh -c "$d run -d --network none --name $name-{} bb sleep 100000 >/dev/null && echo \$(( \$(date +%s%N) / 1000000 - $t0 ))" > "$T/$name.times"
  local t1; t1=$(now_ms)
  local running; running=$($d ps -q | wc -l)
  [ "$running" -eq "$N" ] || echo "warning: $running of $N running on $name" >&2
  sleep 2
  local after; after=$(mem_avail)
  local pss; pss=$(engine_pss_report)
  # `docker ps` three times: the first call, then two more; the median is reported.
  local p0 psall=() psms
  for _ in 1 2 3; do p0=$(now_ms); $d ps >/dev/null; psall+=($(( $(now_ms) - p0 ))); done
  psms="$(printf '%s\n' "${psall[@]}" | sort -n | sed -n 2p) (median of ${psall[*]})"
  local cg mnt; cg=$(count_cgroups); mnt=$(count_mounts)
  # A random sample of 20 containers must answer `docker exec`.
  local i ok=0 k=$(( N < 20 ? N : 20 ))
  for i in $(seq "$N" | shuf -n "$k"); do
    [ "$($d exec "$name-$i" echo ok 2>/dev/null)" = ok ] && ok=$((ok + 1))
  done
  local dpid fds thr; dpid=$(cat "$T/$name.pid" 2>/dev/null || true)
  fds=$(ls "/proc/$dpid/fd" 2>/dev/null | wc -l); thr=$(ls "/proc/$dpid/task" 2>/dev/null | wc -l)
  local extra="docker exec into a random $k: $ok answered
daemon at N: $fds open descriptors, $thr threads; pids in use on the machine: $(ls -d /proc/[0-9]* | wc -l) processes"
  local r0; r0=$(now_ms)
  $d ps -aq | xargs -P "$PAR" -n 50 $d rm -f >/dev/null
  local rms; rms=$(awk -v a="$r0" -v b="$(now_ms)" 'BEGIN{printf "%.1f", (b-a)/1000}')
  local left; left=$($d ps -aq | wc -l); [ "$left" -eq 0 ] || echo "warning: $left containers left on $name" >&2
  summary "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1000}')" "$(rates < "$T/$name.times")" \
    "$pss" "$psms" "$rms" "$before" "$after" "$cg" "$mnt" "$extra"
}

busybox_tar
for target in $TARGETS; do
  case $target in
  engined)
    DENSITY_RUN=$T ENGINE_BIN_DIR=$BIN "$BIN/engined" -H "unix://$T/e.sock" --data-root "$T/engine" \
      --exec-root "$T/engine-run" --cgroup-parent "/$TAG-engined" --log-level warn ${ENGINED_ARGS:-} \
      > "$T/engined.log" 2>&1 &
    PIDS+=($!); echo "${PIDS[-1]}" > "$T/engined.pid"; wait_sock "$T/e.sock"
    docker_run_n "$T/e.sock" engined
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
    # Once the daemon is gone (its shim fork server with it): what is left of the containers.
    leftovers "$T/engine" "$T/engine-run" | tee -a "$OUT/engined-$N.md"
    ;;
  facade)
    mkfifo "$T/ctl"
    before=$(mem_avail)
    DENSITY_RUN=$T ENGINE_BIN_DIR=$BIN ENGINE_ROOT=$T/facade ENGINE_CGROUP_PARENT=/$TAG-facade \
      "$TARGET_DIR/$PROFILE/examples/density" "$N" "$PAR" < "$T/ctl" > "$T/facade.out" 2> "$T/facade.err" &
    PIDS+=($!); exec 3> "$T/ctl"
    until grep -q '^ready' "$T/facade.out"; do
      kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$T/facade.err" >&2; exit 1; }
      sleep 0.5
    done
    sleep 2
    after=$(mem_avail); pss=$(engine_pss_report); cg=$(count_cgroups); mnt=$(count_mounts)
    echo >&3; exec 3>&-
    wait "${PIDS[-1]}" || { cat "$T/facade.err" >&2; exit 1; }
    start=$(awk '/^running/ {print $4}' "$T/facade.out")
    psms=$(awk '/^list/ {print $2}' "$T/facade.out")
    rms=$(awk '/^removed/ {print $4}' "$T/facade.out")
    summary facade "$start" "$(awk '/^started/ {print $2}' "$T/facade.out" | rates)" "$pss" "$psms" "$rms" \
      "$before" "$after" "$cg" "$mnt" "$(leftovers "$T/facade")"
    ;;
  dockerd)
    NETNS=$TAG; ip netns add "$NETNS"
    DENSITY_RUN=$T nsenter --net="/run/netns/$NETNS" dockerd --data-root "$T/docker" --exec-root "$T/docker-exec" \
      -H "unix://$T/d.sock" --pidfile "$T/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
      --cgroup-parent "/$TAG-dockerd" --log-level warn > "$T/dockerd.log" 2>&1 &
    PIDS+=($!); wait_sock "$T/d.sock"
    docker_run_n "$T/d.sock" dockerd
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
    leftovers "$T/docker" "$T/docker-exec" | tee -a "$OUT/dockerd-$N.md"
    ip netns del "$NETNS"; NETNS=
    ;;
  podman)
    P="podman --root $T/podman --runroot $T/podman-run --runtime runc --cgroup-manager cgroupfs --storage-driver overlay"
    $P import "$T/rootfs.tar" bb:latest >/dev/null 2>&1
    before=$(mem_avail); t0=$(now_ms)
    seq "$N" | DENSITY_RUN=$T xargs -P "$PAR" -I{} sh -c "$P run -d --cgroup-parent /$TAG-podman --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none --name podman-{} bb sleep 100000 >/dev/null && echo \$(( \$(date +%s%N) / 1000000 - $t0 ))" > "$T/podman.times"
    t1=$(now_ms); sleep 2
    after=$(mem_avail); pss=$(engine_pss_report); cg=$(count_cgroups); mnt=$(count_mounts)
    p0=$(now_ms); $P ps >/dev/null; psms=$(( $(now_ms) - p0 ))
    r0=$(now_ms); $P rm -af -t 0 >/dev/null 2>&1; rms=$(awk -v a="$r0" -v b="$(now_ms)" 'BEGIN{printf "%.1f", (b-a)/1000}')
    summary podman "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1000}')" "$(rates < "$T/podman.times")" \
      "$pss" "$psms" "$rms" "$before" "$after" "$cg" "$mnt"
    $P system reset -f >/dev/null 2>&1 || true
    ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
  esac
done
