#!/usr/bin/env bash
# Times `netlab up` and `netlab down` of a scenario N times and prints the medians.
# Targets: up of the two-VM scenario <= 5 s, down <= 2 s. Needs root and the lab packages
# (sudo scripts/setup.sh). Not a timed test: run it by hand or in a benchmark job.
#
# Usage: sudo scripts/bench/netlab_updown.sh [N] [SCENARIO]
#   N         runs (default 5)
#   SCENARIO  scenario file (default demo/use_case_a/scenario.toml)
# Environment: NETLAB (the binary; default: build it with cargo and use target/debug/netlab).
set -euo pipefail

cd "$(dirname "$0")/../.."
N="${1:-5}"
SCENARIO="${2:-demo/use_case_a/scenario.toml}"

if [ "$(id -u)" -ne 0 ]; then
  echo "netlab_updown: needs root (network namespaces); run it with sudo" >&2
  exit 2
fi
if [ -z "${NETLAB:-}" ]; then
  cargo build -q -p netlab >&2
  NETLAB="${CARGO_TARGET_DIR:-target}/debug/netlab"
fi

state="$(mktemp -d)"
prefix="bench$$"
prefix="${prefix:0:8}"
cleanup() {
  NETLAB_STATE_DIR="$state" "$NETLAB" down --prefix "$prefix" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

ups=()
downs=()
for i in $(seq 1 "$N"); do
  t0=$(date +%s.%N)
  NETLAB_STATE_DIR="$state" "$NETLAB" up "$SCENARIO" --prefix "$prefix" >/dev/null 2>&1
  t1=$(date +%s.%N)
  NETLAB_STATE_DIR="$state" "$NETLAB" down --prefix "$prefix" >/dev/null 2>&1
  t2=$(date +%s.%N)
  ups+=("$(awk "BEGIN {print $t1 - $t0}")")
  downs+=("$(awk "BEGIN {print $t2 - $t1}")")
  printf 'run %d: up %.3f s, down %.3f s\n' "$i" "${ups[-1]}" "${downs[-1]}" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
up_med=$(median "${ups[@]}")
down_med=$(median "${downs[@]}")
printf 'netlab up   median %.3f s over %d runs (target <= 5 s)\n' "$up_med" "$N"
printf 'netlab down median %.3f s over %d runs (target <= 2 s)\n' "$down_med" "$N"
