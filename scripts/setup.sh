#!/usr/bin/env bash
# Idempotent setup for `npm run lab` and `npm test` on Debian 12 with Node 20, as root:
# Debian packages, npm dependencies, the TypeScript build and the BPF objects. Each step is
# skipped when already satisfied, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(clang llvm libbpf-dev libbpf1 bpftool iproute2 nftables etcd-server etcd-client bird2
      tcpdump iperf3 iputils-ping gobgpd exabgp make procps psmisc kmod
      # Workloads for the CNI plugin and endpoint datapath tests: container runtimes, the
      # reference CNI plugins, a static shell to run inside namespaces, systemd-nspawn.
      podman containerd containernetworking-plugins busybox-static systemd-container
      # Neighbour probes, a second BGP implementation (FRR) to interoperate with, iptables for
      # what runtimes set up; dpkg-dev and lintian to build and check nrd's Debian package.
      arping frr iptables dpkg-dev lintian)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No package may start its daemon while installing (frr's zebra, containerd, bird, etcd would
  # run in the root namespace): a policy-rc.d that refuses every start (exit 101, see
  # invoke-rc.d(8)), which deb-systemd-invoke honours too. One already in place is left alone.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by nrd scripts/setup.sh for the time of apt-get install\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Installed Debian daemons must not run in the root namespace on their own, now or after a reboot:
# tests start their own in namespaces. Only where systemd runs the machine; elsewhere nothing
# starts them (policy-rc.d above).
if [ -d /run/systemd/system ]; then
  for unit in bird etcd gobgpd exabgp frr containerd podman.socket podman.service podman-restart.service \
              podman-auto-update.timer podman-clean-transient.service; do
    if systemctl is-active --quiet "$unit" 2>/dev/null || systemctl is-enabled --quiet "$unit" 2>/dev/null; then
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi

# Name nrd's route protocol (220) for iproute2 (`ip route show proto nrd`); a name table only.
if ! cmp -s systemd/rt_protos.d/nrd.conf /etc/iproute2/rt_protos.d/nrd.conf; then
  mkdir -p /etc/iproute2/rt_protos.d
  cp systemd/rt_protos.d/nrd.conf /etc/iproute2/rt_protos.d/nrd.conf
fi

# npm dependencies, pinned by the lockfile; reinstalled only when the lockfile changed.
stamp=node_modules/.nrd-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# TypeScript build (incremental) and BPF objects (make tracks what changed).
npx tsc -p tsconfig.json
make -s -C bpf
