#!/usr/bin/env bash
# The main job: a lab investigation end to end with ghost-agent.
#
#   sudo scripts/demo.sh        # scenario K, "Bandwidth Thief" (the default)
#   sudo scripts/demo.sh j      # any scenario with expected causes: g h i j k l (and the others)
#
# Installs the system packages the lab needs, builds the workspace's binaries, then runs
#   ghost-agent investigate --lab demo/use_case_<id>
# which brings up the two-VM lab, injects the scenario's faults, investigates the scenario's
# reported symptom with the deterministic playbook (measure, control plane, the OS layer of
# both VMs, capture only if needed), prints the root-cause report and removes the lab (also
# on failure). Risky commands are decided by demo/approve_policy_investigation.toml:
# measurements and captures approved, every change denied. The session (state, audit log,
# reports) stays under ./audit/<session id>/.
#
# Env: CARGO_PROFILE=debug  build without optimisations (faster to build)
#      DEMO_JSON=1          print the JSON report instead of the Markdown one
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the lab builds network namespaces and needs root: run sudo scripts/demo.sh" >&2
  exit 2
fi
ID=$(printf '%s' "${1:-k}" | tr '[:upper:]' '[:lower:]')
DIR=demo/use_case_$ID
if [ ! -f "$DIR/scenario.toml" ]; then
  echo "demo: no scenario $DIR/scenario.toml (try one of: $(ls demo | sed -n 's/^use_case_//p' | tr '\n' ' '))" >&2
  exit 2
fi

bash scripts/setup.sh

PROFILE=${CARGO_PROFILE:-release}
echo "demo: building ghost-agent and netlab ($PROFILE)…" >&2
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p ghost-agent -p netlab
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
else
  cargo build -q -p ghost-agent -p netlab
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
fi

echo "demo: scenario $(echo "$ID" | tr '[:lower:]' '[:upper:]'): $(sed -n 's/^title = "\(.*\)"/\1/p' "$DIR/scenario.toml")" >&2
ARGS=(investigate --lab "$DIR" --approve-policy demo/approve_policy_investigation.toml --audit-dir "$ROOT/audit")
if [ "${DEMO_JSON:-0}" = 1 ]; then
  ARGS+=(--json)
fi
set +e
NETLAB_BIN="$BIN/netlab" "$BIN/ghost-agent" "${ARGS[@]}"
rc=$?
set -e
case $rc in
  0) echo "demo: the path was found healthy" >&2 ;;
  1) echo "demo: root cause(s) found (exit 1 is ghost-agent's 'finding' code)" >&2; rc=0 ;;
  *) echo "demo: ghost-agent exited $rc" >&2 ;;
esac
exit $rc
