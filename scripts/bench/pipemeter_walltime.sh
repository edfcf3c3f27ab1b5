#!/usr/bin/env bash
# pipe-meter wall-time benchmark (issue 6): a run must take at most
#   (iterations + warm-up) x (iperf2 duration + qperf duration) + 10%.
# Builds a clean netlab lab (root), runs pipe-meter over SSH, and reports the wall time,
# the budget and their ratio, next to the same iperf2/qperf runs executed directly in the
# namespaces (the reference: the tools themselves, no SSH, no gate).
#
# Usage: sudo scripts/bench/pipemeter_walltime.sh [DURATION] [ITERATIONS] [WARMUP] [QPERF_DURATION]
# Needs: root, netlab and pipe-meter built (cargo build -p netlab -p pipe-meter), iperf, qperf.
set -euo pipefail
DURATION=${1:-5}
ITERATIONS=${2:-3}
WARMUP=${3:-1}
QDUR=${4:-2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NETLAB=${NETLAB_BIN:-$TARGET/debug/netlab}
PM=${PIPE_METER_BIN:-$TARGET/debug/pipe-meter}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 0; }
[ -x "$NETLAB" ] && [ -x "$PM" ] || { echo "SKIP: build first: cargo build -p netlab -p pipe-meter"; exit 0; }

WORK=$(mktemp -d /tmp/pmbench.XXXXXX)
ID="pb$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export NETLAB_STATE_DIR="$WORK/state"
mkdir -p "$NETLAB_STATE_DIR"
cleanup() { "$NETLAB" down --prefix "$ID" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

cat > "$WORK/scenario.toml" <<TOML
name = "pipemeter_bench"
base = "$ROOT/demo/base_topology.toml"

[[topology.vms]]
name = "dest-vm"
subnet = "default"
private_ip = "198.18.1.5"
nsg = "dest-vm-nsg"
services = []
TOML
"$NETLAB" -q up "$WORK/scenario.toml" --prefix "$ID" >/dev/null
"$NETLAB" env --prefix "$ID" --config | grep -v -e '^LOCATION=' -e '^NETLAB_' > "$WORK/config.env"

t0=$(date +%s.%N)
set +e
"$PM" --config "$WORK/config.env" --audit-dir "$WORK/audit" --approve all-risky --json \
  --duration "$DURATION" --qperf-duration "$QDUR" --iterations "$ITERATIONS" --warmup "$WARMUP" --streams 4 \
  > "$WORK/result.json"
rc=$?
set -e
t1=$(date +%s.%N)

# Reference: the same runs directly in the namespaces.
SRC="nl$ID-source-vm"; DST="nl$ID-dest-vm"
ip netns exec "$DST" iperf -s -p 5001 >/dev/null 2>&1 & SPID=$!
ip netns exec "$DST" qperf -lp 19765 >/dev/null 2>&1 & QPID=$!
sleep 0.3
r0=$(date +%s.%N)
for _ in $(seq 1 $((ITERATIONS + WARMUP))); do
  ip netns exec "$SRC" qperf 198.18.1.5 -lp 19765 -ip 19766 -t "$QDUR" tcp_lat >/dev/null
  ip netns exec "$SRC" iperf -c 198.18.1.5 -p 5001 -t "$DURATION" -P 4 >/dev/null
done
r1=$(date +%s.%N)
kill "$SPID" "$QPID"; wait "$SPID" "$QPID" 2>/dev/null || true

awk -v pm="$(echo "$t1 - $t0" | bc)" -v ref="$(echo "$r1 - $r0" | bc)" \
    -v n="$((ITERATIONS + WARMUP))" -v d="$DURATION" -v q="$QDUR" -v rc="$rc" 'BEGIN {
  budget = n * (d + q) * 1.10;
  printf "pipe-meter exit %d\n", rc;
  printf "pipe-meter wall time   %8.2f s\n", pm;
  printf "tools directly         %8.2f s  (pipe-meter / direct = %.3f)\n", ref, pm / ref;
  printf "budget (N x durations + 10%%) %6.2f s  (pipe-meter / budget = %.3f) %s\n", budget, pm / budget, (pm <= budget ? "PASS" : "OVER");
}'
