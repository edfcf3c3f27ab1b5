#!/usr/bin/env bash
# Scenario O — setup: Docker Coup
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
# Docker's chains added on the destination; take the baseline before
runvm "$DEST_VM_NAME" "iptables -N DOCKER; iptables -N DOCKER-USER; iptables -N DOCKER-ISOLATION-STAGE-1; iptables -N DOCKER-ISOLATION-STAGE-2; iptables -A DOCKER-USER -j RETURN; iptables -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2; iptables -A DOCKER-ISOLATION-STAGE-1 -j RETURN; iptables -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP; iptables -A DOCKER-ISOLATION-STAGE-2 -j RETURN; iptables -A FORWARD -j DOCKER-USER; iptables -A FORWARD -j DOCKER-ISOLATION-STAGE-1; iptables -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT; iptables -A FORWARD -o docker0 -j DOCKER; iptables -t nat -N DOCKER; iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER; iptables -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER; iptables -t nat -A POSTROUTING -s 198.18.200.0/24 ! -o docker0 -j MASQUERADE"
