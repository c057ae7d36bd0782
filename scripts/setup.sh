#!/usr/bin/env bash
# Idempotent setup for `npm run lab` and `npm test` on Debian 12 with Node 20, as root:
# Debian packages, npm dependencies, the TypeScript build and the BPF objects. Each step is
# skipped when already satisfied, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(clang llvm libbpf-dev libbpf1 bpftool iproute2 nftables etcd-server etcd-client bird2
      tcpdump iperf3 iputils-ping gobgpd exabgp make procps psmisc kmod)

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
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Installed Debian daemons must not run in the root namespace on their own: tests start their own.
for svc in bird etcd gobgpd exabgp; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" >/dev/null 2>&1 || true
    systemctl disable "$svc" >/dev/null 2>&1 || true
  fi
done

# Name nrd's route protocol (196) for iproute2 (`ip route show proto nrd`); a name table only.
if [ ! -f /etc/iproute2/rt_protos.d/nrd.conf ]; then
  mkdir -p /etc/iproute2/rt_protos.d
  echo "196 nrd" > /etc/iproute2/rt_protos.d/nrd.conf
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
