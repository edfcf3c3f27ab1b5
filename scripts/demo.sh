#!/usr/bin/env bash
# The main job: a lab investigation end to end, scenario J "Shadow Firewall".
#
# Symptom as reported: "iperf to 5001 refused or hangs; NSG allows 5001; OS hardening ran
# last night". The script builds the lab, injects the scenario's faults, and investigates
# with the workspace's tools the way an engineer would: every command on a VM passes the
# safety-shell gate (read-only commands run on their own; the captures and the latency
# measurement are approved by demo/approve_policy_demo.toml and audited), the capture is
# analysed by pcap-forensics, the OS firewall is snapshotted and queried by
# netfilter-inspector. The conclusions printed at the end are read from the tools' JSON
# output, not written into this script. The lab is removed on exit, also on failure.
#
# Usage: sudo scripts/demo.sh            (needs root: network namespaces)
# Env:   DEMO_KEEP=1  keep the lab up at the end (remove it with `netlab down --prefix ID`)
#        CARGO_PROFILE=debug  build without optimisations (faster to build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the lab builds network namespaces and needs root: run sudo scripts/demo.sh" >&2
  exit 2
fi

bash scripts/setup.sh

PROFILE=${CARGO_PROFILE:-release}
echo "demo: building the tools ($PROFILE)…" >&2
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p netlab -p safety-shell -p pcap-forensics -p netfilter-inspector
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
else
  cargo build -q -p netlab -p safety-shell -p pcap-forensics -p netfilter-inspector
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
fi
NETLAB=$BIN/netlab
GATE=$BIN/safety-shell
PCAP=$BIN/pcap-forensics
NFI=$BIN/netfilter-inspector

RUN="demo$(printf '%04x' $((RANDOM % 65536)))"
OUT=$ROOT/audit/$RUN
mkdir -p "$OUT"
SESSION="ghost_$(date -u +%Y%m%dT%H%M%SZ)"
SRC_NS="nl${RUN}-source-vm"
DST_NS="nl${RUN}-dest-vm"
DEST_IP=198.18.1.5
POLICY=$ROOT/demo/approve_policy_demo.toml

cleanup() {
  if [ "${DEMO_KEEP:-0}" = 1 ]; then
    echo "demo: lab kept: sudo $NETLAB down --prefix $RUN" >&2
  else
    "$NETLAB" down --prefix "$RUN" >&2 || true
  fi
}
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }
# gate TARGET_NS REASON COMMAND: run one command on a VM through the gate, audited.
gate() {
  local ns=$1 reason=$2 cmd=$3
  "$GATE" exec --target "netns:$ns" --session "$SESSION" --audit-dir "$OUT" \
    --output-dir "$OUT" --approve-policy "$POLICY" --timeout 30 --reason "$reason" -- "$cmd"
}

step "Lab: scenario J (two VMs, NIC NSGs allowing SSH, ICMP, 5001, 19765)"
"$NETLAB" up demo/use_case_j/scenario.toml --prefix "$RUN" >&2
"$NETLAB" inject --prefix "$RUN" demo/use_case_j/scenario.toml >&2
echo "symptom: $(grep -m1 '^reported' demo/use_case_j/scenario.toml | cut -d'"' -f2)"

step "1. Reproduce from source-vm (read-only probes run without asking)"
set +e
gate "$SRC_NS" "is dest reachable at all?" "ping -c 2 -W 1 $DEST_IP" >/dev/null
ping_rc=$?
gate "$SRC_NS" "is the iperf port open?" "nc -z -w 3 $DEST_IP 5001"
iperf_rc=$?
gate "$SRC_NS" "is another port on dest open?" "nc -z -w 3 $DEST_IP 19765"
qperf_rc=$?
set -e
echo "ping dest: $([ $ping_rc -eq 0 ] && echo ok || echo FAILED)," \
  "tcp/5001: $([ $iperf_rc -eq 0 ] && echo open || echo 'no connection')," \
  "tcp/19765: $([ $qperf_rc -eq 0 ] && echo open || echo 'no connection')"

step "2. Wire evidence: capture tcp/5001 on dest-vm while source-vm retries"
gate "$DST_NS" "capture the failing flow on the server side" \
  "tcpdump -i eth0 -n -U -c 4 -w $OUT/dest_5001.pcap tcp port 5001" >/dev/null 2>&1 &
cap_pid=$!
sleep 1
set +e
for _ in 1 2; do gate "$SRC_NS" "generate SYNs to 5001" "nc -z -w 3 $DEST_IP 5001"; done
set -e
wait "$cap_pid" || true
set +e
"$PCAP" analyze "$OUT/dest_5001.pcap" --json --semantic-dir "$OUT" --report-dir "$OUT" \
  > "$OUT/pcap_result.json"
set -e
jq -r '.findings[]? | "  \(.id) [\(.severity)] \(.title)"' "$OUT/pcap_result.json"

step "3. OS layer of dest-vm: firewall snapshot and 'would tcp/5001 in pass?'"
set +e
"$NFI" check --provider netns --netns "$DST_NS" --port 5001 --proto tcp --direction in \
  --audit-dir "$OUT" --json > "$OUT/fw_check_dest.json"
set -e
jq -r '"  verdict: \(.verdict)  deciding rule: \(.deciding_rule.table // "-")/\(.deciding_rule.chain // "-") #\(.deciding_rule.position // "-"): \(.deciding_rule.rule // "")"' \
  "$OUT/fw_check_dest.json"

step "4. Latency from source-vm (qperf, approved by the demo policy) and its traffic control"
set +e
gate "$SRC_NS" "measure TCP latency to dest" "qperf -t 3 $DEST_IP tcp_lat" > "$OUT/qperf.txt"
set -e
cat "$OUT/qperf.txt"
gate "$SRC_NS" "look for shaping or packet diversion on the source" \
  "iptables -t mangle -S POSTROUTING" | tee "$OUT/source_mangle.txt"

step "5. The audit trail"
"$GATE" audit verify "$OUT/${SESSION}_audit.jsonl"
"$GATE" audit show "$OUT/${SESSION}_audit.jsonl" --width 100

step "Conclusions (read from the tools' output)"
verdict=$(jq -r '.verdict' "$OUT/fw_check_dest.json")
rule=$(jq -r '.deciding_rule | "\(.table)/\(.chain) position \(.position): \(.rule)"' "$OUT/fw_check_dest.json")
unanswered=$(jq -r '[.findings[]? | select(.rule == "xproto.filtered_port" or .rule == "tcp.handshake_incomplete")] | length' "$OUT/pcap_result.json")
latency=$(awk '/latency/ {print $3, $4}' "$OUT/qperf.txt")
if [ "$verdict" = DROP ] || [ "$verdict" = REJECT ]; then
  echo "PRIMARY: dest-vm's OS firewall decides $verdict for tcp/5001 inbound: $rule"
  echo "         (wire: $unanswered finding(s) of SYNs without an answer on dest-vm's interface)"
else
  echo "no OS-firewall cause found on dest-vm (verdict: $verdict)"
fi
if grep -q NFQUEUE "$OUT/source_mangle.txt"; then
  echo "SECONDARY: source-vm diverts its egress to a userspace delay queue (NFQUEUE);" \
    "qperf tcp_lat (half the round trip) = $latency"
fi
echo
echo "artifacts and audit log: $OUT"
