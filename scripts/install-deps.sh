#!/usr/bin/env bash
# Installs what the engine's tests and demo need on a fresh Debian machine (run as root).
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
pkgs=(
  busybox-static    # the rootfs of every test container and the demo image
  jq                # scripts read runtime state JSON
  runc crun         # peer runtimes: OciRuntime and the shim are tested against runc too
  qemu-system-x86 linux-image-amd64 xz-utils  # the vm runtime (engine-vm): QEMU, the guest's kernel and modules, its xz payload
  podman conmon containerd  # interop: podman/conmon and containerd's runc shim drive engine-runc
  docker-registry   # a real registry server, started on loopback by the image tests
  apache2-utils     # htpasswd, for the registry's basic-auth tests
  openssl           # certificates for the registry's token-auth tests
  skopeo            # interop: the image store reads what skopeo writes and the reverse
  libseccomp-dev pkg-config   # seccomp filters are compiled with libseccomp
  iproute2 util-linux procps  # ip netns, unshare/nsenter, ps
  nftables          # the bridge network driver installs its rules with `nft -f -`
  python3           # the plugin tests run Docker plugins written in Python (engine-plugin/tests/fixtures)
  containernetworking-plugins iptables  # the CNI driver runs Debian's plugins (/usr/lib/cni); portmap and firewall use iptables
  python3-grpcio python3-grpc-tools python3-websocket  # engine-cri: a second CRI client in Python (stubs generated from api.proto at test time)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The docker CLI drives engined in the daemon's tests; these machines ship one in /usr/local/bin.
if ! command -v docker >/dev/null; then
  apt-get install -y -qq --no-install-recommends docker-cli 2>/dev/null || apt-get install -y -qq --no-install-recommends docker.io
fi
