#!/usr/bin/env bash
# CPU time per request of each of the gateway's threads (and the mock's), from the scheduler's own
# clock (/proc/PID/task/TID/schedstat: nanoseconds on a CPU, and how many times the thread was put
# on one). Exact where /proc/PID/stat's 10 ms ticks are not: at low rates a thread woken from idle
# is charged whole ticks or none. One warm-up run of 3 s, then one measured run, open loop.
#
#   bench/threads.sh GATEWAY_BIN [stream|plain] [SIZE_KB] [RATE] [SECONDS]   # default: plain 1 100 10
#
# Prints per thread name (threads of one name summed): microseconds on a CPU and times scheduled,
# per request; then oha's p50 and p99.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$BENCH_DIR/.."
BIN="$1"; KIND="${2:-plain}"; SIZE_KB="${3:-1}"; RATE="${4:-100}"; SECS="${5:-10}"
source "$BENCH_DIR/oha.sh"
source "$BENCH_DIR/setup.sh"
OUT="$BENCH_DIR/out/threads"; rm -rf "$OUT"; mkdir -p "$OUT"
bench_setup "$OUT" "$KIND" "$SIZE_KB"
bench_start "$BIN" "$BIN" "$OUT"
load() {
  "$OHA" "http://127.0.0.1:$TG_PORT/v1/chat/completions" -z "$1s" -c 128 -q "$RATE" --latency-correction -m POST \
    -H 'content-type: application/json' -H "authorization: Bearer $KEY" -D "$OUT/body.json" --no-tui --output-format json
}
# name on-cpu-ns times-scheduled, one line per thread name.
snap() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(tr ' ' _ < "$t/comm")" "$(awk '{print $1, $3}' "$t/schedstat")"
  done | awk '{ns[$1] += $2; n[$1] += $3} END {for (k in ns) print k, ns[k], n[k]}' | sort
}
load 3 >/dev/null
snap $TP > "$OUT/g0"; snap $MP > "$OUT/m0"
load "$SECS" > "$OUT/run.json"
snap $TP > "$OUT/g1"; snap $MP > "$OUT/m1"
N=$(python3 -c "import json,sys; print(max(sum(json.load(open(sys.argv[1]))['statusCodeDistribution'].values()), 1))" "$OUT/run.json")
per_request() { join "$1" "$2" | awk -v n="$N" '{d = ($4 - $2) / 1e3 / n; if (d > 0.05) printf "  %-18s %8.1f us %6.2f times\n", $1, d, ($5 - $3) / n}'; }
echo "gateway, per request ($N requests, $KIND $SIZE_KB KB at $RATE req/s):"; per_request "$OUT/g0" "$OUT/g1"
echo "mock:"; per_request "$OUT/m0" "$OUT/m1"
python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['latencyPercentiles']; print('p50 %.3f ms, p99 %.3f ms' % (p['p50']*1000, p['p99']*1000))" "$OUT/run.json"
