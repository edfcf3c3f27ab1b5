#!/usr/bin/env bash
# Installs azure-cli from PyPI into a cached virtualenv, for the cloud-provider contract test
# (tests/az_contract.rs checks every argv the provider builds against the real CLI's
# argument parser; it never logs in and never contacts Azure).
#
#   scripts/azcli-venv.sh            # creates ${AZCLI_VENV:-$HOME/.cache/ghost-azcli}
#   AZCLI_VENV=/path scripts/azcli-venv.sh
#
# Idempotent: an existing venv whose az answers `az version` is left alone. The install is
# large (about 700 MB); the Debian azure-cli package is not used (its network module is
# broken on this system).
set -euo pipefail

venv="${AZCLI_VENV:-$HOME/.cache/ghost-azcli}"
cfg="$(mktemp -d)"
trap 'rm -rf "$cfg"' EXIT

if [ -x "$venv/bin/az" ] && AZURE_CONFIG_DIR="$cfg" "$venv/bin/az" version --output none >/dev/null 2>&1; then
    echo "azure-cli already installed in $venv"
    exit 0
fi

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "python3 with the venv module is needed: apt-get install -y python3-venv" >&2
    exit 2
fi

mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet azure-cli
AZURE_CONFIG_DIR="$cfg" "$venv/bin/az" version --output none
echo "azure-cli installed in $venv (point AZCLI_VENV there for the contract test)"
