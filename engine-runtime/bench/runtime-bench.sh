#!/usr/bin/env bash
# Runtime benchmark: engine-runc, runc and crun side by side on one busybox
# bundle, interleaved, N iterations each (default 30); medians and ratios for
# `run` of /bin/true and for each phase (create, start, delete), plus the floor
# `unshare --fork --pid --mount --uts --ipc --net chroot <rootfs> /bin/true`.
#
#   sudo engine-runtime/bench/runtime-bench.sh [N]
#
# Needs root, busybox-static, runc and crun (apt-get install busybox-static runc crun).
# crun 1.8 refuses a hybrid cgroup host whose hugetlb controller is not mounted
# as v1; this script mounts it there when it is missing (and says so), and
# unmounts it again when the bench ends, leaving the host's cgroups as found.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-${BENCH_N:-30}}"

if [ "$(id -u)" != 0 ]; then echo "run as root" >&2; exit 2; fi

fstype=$(stat -f -c %T /sys/fs/cgroup)
if [ "$fstype" = tmpfs ] && ! awk '{for (i = 1; i <= NF; i++) if ($i == "-" && $(i+1) == "cgroup" && $(i+3) ~ /(^|,)hugetlb(,|$)/) f = 1} END {exit !f}' /proc/self/mountinfo; then
  if grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.subtree_control 2>/dev/null; then
    echo "note: hugetlb is enabled in the unified hierarchy; cannot mount it as v1 (crun may refuse to run)" >&2
  else
    made_dir=0
    [ -d /sys/fs/cgroup/hugetlb ] || { mkdir /sys/fs/cgroup/hugetlb; made_dir=1; }
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
    echo "mounted the hugetlb controller as cgroup v1 at /sys/fs/cgroup/hugetlb (crun needs it on this hybrid host)"
    undo_hugetlb() {
      umount /sys/fs/cgroup/hugetlb && echo "unmounted /sys/fs/cgroup/hugetlb again" \
        || echo "note: could not unmount /sys/fs/cgroup/hugetlb (cgroups left under it?)" >&2
      if [ "$made_dir" = 1 ]; then rmdir /sys/fs/cgroup/hugetlb 2>/dev/null || true; fi
    }
    trap undo_hugetlb EXIT
  fi
fi

# Release build of engine-runc and the harness; the harness runs once.
cargo bench -p engine-runtime --bench runtime -- "$N"
