#!/usr/bin/env bash
# Benchmark pcap-forensics against tshark field extraction on the same file, same run.
#
#   scripts/bench/pcap_bench.sh [--size MB] [--workdir DIR] [--keep] [--no-build]
#
# Generates a capture of SIZE MB (default 1100, i.e. >= 1 GB) with a realistic mix (TCP bulk
# and request/response with loss, DNS, ICMP, ARP) using the crate's pcap writer
# (`cargo run --release --example gen_capture`), then, pinned to one core:
#   1. the release analyser (`pcap-forensics analyze --json`) under /usr/bin/time -v,
#   2. tshark extracting the fields the analyser needs (-T fields ...),
# and prints packets/s, the speed ratio versus tshark and peak memory. Targets:
# >= 1,000,000 packets/s, >= 20x faster than tshark, peak RSS < 200 MB. Exit 1 if a
# target is missed, 3 if a tool is missing.
set -euo pipefail

SIZE=1100
WORK=""
KEEP=0
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --workdir) WORK=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
for t in tshark /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t: run sudo scripts/setup.sh (and apt-get install time)" >&2; exit 3; }
done
PIN=()
command -v taskset >/dev/null && PIN=(taskset -c 0)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pcap-bench.XXXXXX")}
mkdir -p "$WORK"
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$BUILD" = 1 ]; then
  ( cd "$ROOT" && cargo build --release -q -p pcap-forensics --bin pcap-forensics --example gen_capture )
fi
BIN="$CARGO_TARGET_DIR/release/pcap-forensics"
GEN="$CARGO_TARGET_DIR/release/examples/gen_capture"
CAP="$WORK/bench.pcap"
"$GEN" "$CAP" "$SIZE"
BYTES=$(stat -c %s "$CAP")

secs() { # "Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.34" -> seconds
  awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$1"
}
rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$1"; }

# Warm the page cache so both tools read from memory.
cat "$CAP" > /dev/null

set +e
/usr/bin/time -v "${PIN[@]}" "$BIN" analyze "$CAP" --json -q --semantic-dir "$WORK/out" --report-dir "$WORK/out" > "$WORK/semantic.json" 2> "$WORK/ours.time"
rc=$?
set -e
if [ "$rc" -gt 1 ]; then echo "analyser failed (exit $rc):" >&2; cat "$WORK/ours.time" >&2; exit 3; fi
PKTS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["capture_summary"]["total_packets"])' "$WORK/semantic.json")
OURS=$(secs "$WORK/ours.time"); OURS_RSS=$(rss_mb "$WORK/ours.time")

/usr/bin/time -v "${PIN[@]}" tshark -n -r "$CAP" -T fields \
  -e frame.number -e frame.time_epoch -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst \
  -e tcp.srcport -e tcp.dstport -e tcp.flags -e tcp.seq -e tcp.ack -e tcp.len -e tcp.window_size_value \
  -e udp.srcport -e udp.dstport -e dns.id -e dns.flags.rcode -e icmp.type -e icmp.code -e arp.opcode \
  > /dev/null 2> "$WORK/tshark.time"
THEIRS=$(secs "$WORK/tshark.time"); THEIRS_RSS=$(rss_mb "$WORK/tshark.time")

python3 - "$BYTES" "$PKTS" "$OURS" "$THEIRS" "$OURS_RSS" "$THEIRS_RSS" <<'PY'
import sys
b, p, ours, theirs, rss, trss = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
ours = max(ours, 0.01); theirs = max(theirs, 0.01)
pps = p / ours
ratio = theirs / ours
print(f"capture:        {b/1e9:.3f} GB, {p} packets")
print(f"pcap-forensics: {ours:.2f} s, {pps:,.0f} packets/s, {b/ours/1e6:,.0f} MB/s, peak RSS {rss:.1f} MB")
print(f"tshark fields:  {theirs:.2f} s, {p/theirs:,.0f} packets/s, peak RSS {trss:.1f} MB")
print(f"speed ratio:    {ratio:.1f}x faster than tshark")
ok = True
for name, good in [("packets/s >= 1,000,000", pps >= 1e6), ("ratio >= 20x", ratio >= 20), ("peak RSS < 200 MB", rss < 200)]:
    print(f"  {'PASS' if good else 'FAIL'}  {name}")
    ok &= good
if b < 1e9:
    print(f"  note  capture is {b/1e9:.3f} GB (< 1 GB): a smoke run, not the acceptance benchmark")
sys.exit(0 if ok else 1)
PY
