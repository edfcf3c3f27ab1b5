#!/usr/bin/env bash
# Installs the system packages the lab and the tests need (see docs/netlab.md).
# Idempotent: does nothing when everything is present; runs `apt-get update` once
# before installing anything that is missing.
set -euo pipefail

# Debian package -> a command it provides (used only to report what is there).
PACKAGES=(
  iproute2 iptables nftables tcpdump tshark iperf qperf
  openssh-server openssh-client jq procps psmisc curl iputils-ping netcat-openbsd time
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all system packages present (${PACKAGES[*]})" >&2
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: installing them needs root; run: sudo scripts/setup.sh" >&2
  exit 2
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: missing packages: ${missing[*]}, and this system has no apt-get;" \
       "install them with your package manager" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer it up front.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
echo "setup: installing ${missing[*]}" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: installed ${missing[*]}" >&2
