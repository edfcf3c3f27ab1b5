#!/usr/bin/env bash
# Scenario B2 — setup: PMTU black hole
# Uses only `az` (OS-level parts through `az vm run-command invoke`), so the same script
# works against Azure and against the lab (`eval "$(netlab env)"` puts netlab's `az` first on
# PATH). Settings come from demo/config.env (keys of demo/sample_config.env), or from the
# file named by $CONFIG (the lab: CONFIG="$NETLAB_CONFIG").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cfg="${CONFIG:-$here/../config.env}"
if [ ! -f "$cfg" ]; then
  echo "setup: $cfg is missing: copy demo/sample_config.env to demo/config.env and fill it in (lab: CONFIG=\"\$NETLAB_CONFIG\")" >&2
  exit 2
fi
set -a
# shellcheck disable=SC1090
. "$cfg"
set +a
AZ="${AZ_PATH:-az}"
RG="$RESOURCE_GROUP"
# Runs a shell script in a VM through the agent (root), prints its output envelope's message.
runvm() { "$AZ" vm run-command invoke -g "$RG" -n "$1" --command-id RunShellScript --scripts "$2" --query 'value[0].message' -o tsv; }
# Jumbo frames on both VMs' eth0 (Azure's path MTU stays at its own value, so large segments
# cannot pass), and the source drops the ICMP fragmentation-needed that would let PMTU
# discovery recover. In the lab, `netlab inject demo/use_case_b2/scenario.toml` also raises
# the fabric side of source-vm's link, so the fabric answers with fragmentation-needed as an
# Azure host would; az has no control for that part.
runvm "$SOURCE_VM_NAME" "ip link set dev eth0 mtu 9000; iptables -A INPUT -p icmp --icmp-type fragmentation-needed -m comment --comment demo-b2-pmtu -j DROP"
runvm "$DEST_VM_NAME" "ip link set dev eth0 mtu 9000"
