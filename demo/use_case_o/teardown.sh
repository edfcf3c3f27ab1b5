#!/usr/bin/env bash
# Scenario O — teardown: Docker Coup
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
# Docker's chains added on the destination; take the baseline before
runvm "$DEST_VM_NAME" "iptables -D FORWARD -j DOCKER-USER; iptables -D FORWARD -j DOCKER-ISOLATION-STAGE-1; iptables -D FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT; iptables -D FORWARD -o docker0 -j DOCKER; iptables -F DOCKER-USER; iptables -F DOCKER-ISOLATION-STAGE-1; iptables -F DOCKER-ISOLATION-STAGE-2; iptables -F DOCKER; iptables -X DOCKER-USER; iptables -X DOCKER-ISOLATION-STAGE-1; iptables -X DOCKER-ISOLATION-STAGE-2; iptables -X DOCKER; iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j DOCKER; iptables -t nat -D OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER; iptables -t nat -D POSTROUTING -s 198.18.200.0/24 ! -o docker0 -j MASQUERADE; iptables -t nat -F DOCKER; iptables -t nat -X DOCKER"
