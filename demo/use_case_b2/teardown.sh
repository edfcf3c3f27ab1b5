#!/usr/bin/env bash
# Scenario B2 — teardown: PMTU black hole
# Uses only `az` (OS-level parts through `az vm run-command invoke`), so the same script
# works against Azure and against the lab (`eval "$(netlab env)"` puts netlab's `az` first on
# PATH). Settings come from demo/config.env (keys of demo/sample_config.env), or from the
# file named by $CONFIG (the lab: CONFIG="$NETLAB_CONFIG").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cfg="${CONFIG:-$here/../config.env}"
if [ ! -f "$cfg" ]; then
  echo "teardown: $cfg is missing: copy demo/sample_config.env to demo/config.env and fill it in (lab: CONFIG=\"\$NETLAB_CONFIG\")" >&2
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
# Back to Azure's default MTU on both VMs; remove the ICMP drop.
runvm "$SOURCE_VM_NAME" "iptables -D INPUT -p icmp --icmp-type fragmentation-needed -m comment --comment demo-b2-pmtu -j DROP; ip link set dev eth0 mtu 1500"
runvm "$DEST_VM_NAME" "ip link set dev eth0 mtu 1500"
