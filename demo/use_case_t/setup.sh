#!/usr/bin/env bash
# Scenario T — setup: Phantom Firewall (two phases)
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
# default route to a dead appliance plus a source OUTPUT DROP of TCP 80 (phase 2: remove the route only)
NVA_IP="${NVA_IP:-${DEST_VM_PRIVATE_IP%.*}.100}"  # an address of the subnet where nothing runs
"$AZ" network route-table create -g "$RG" -n rt-default -o none
"$AZ" network route-table route create -g "$RG" --route-table-name rt-default -n default-via-nva \
  --address-prefix "0.0.0.0/0" --next-hop-type VirtualAppliance --next-hop-ip-address "$NVA_IP" -o none
"$AZ" network vnet subnet update -g "$RG" --vnet-name "$VNET_NAME" -n "$SUBNET_NAME" --route-table rt-default -o none
runvm "$SOURCE_VM_NAME" "iptables -A OUTPUT -p tcp --dport 80 -j DROP"
