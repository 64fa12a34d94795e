#!/usr/bin/env bash
# Where the machine's CPU goes per request at one rate: the load generator (oha), the mock and the
# gateway, each run straight to the mock and then through the gateway (alternating, 5 s each, open
# loop, 128 connections). All three share this machine's cores, so a change to the mock's cost
# changes how crowded the gateway's cores are.
#
#   bench/cpu_split.sh MOCK_BIN GATEWAY_BIN [stream|plain] [SIZE_KB] [RATE] [ROUNDS]   # default: stream 16 2000 3
#
# Prints per run: p50 and p99 in ms, and CPU microseconds per request (user + system) of each process.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$BENCH_DIR/.."
MOCK_BIN="$1"; GW_BIN="$2"; KIND="${3:-stream}"; SIZE_KB="${4:-16}"; RATE="${5:-2000}"; ROUNDS="${6:-3}"
source "$BENCH_DIR/oha.sh"
source "$BENCH_DIR/setup.sh"
OUT="$BENCH_DIR/out/cpu_split"; rm -rf "$OUT"; mkdir -p "$OUT"
bench_setup "$OUT" "$KIND" "$SIZE_KB"
bench_start "$MOCK_BIN" "$GW_BIN" "$OUT"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for i in $(seq "$ROUNDS"); do
  for t in "direct:$MOCK_PORT" "tollgate:$TG_PORT"; do
    m0=$(ticks $MP); g0=$(ticks $TP)
    /usr/bin/time -f "%U %S" -o "$OUT/oha.time" "$OHA" "http://127.0.0.1:${t##*:}/v1/chat/completions" -z 5s -c 128 -q "$RATE" \
      --latency-correction -m POST -H 'content-type: application/json' -H "authorization: Bearer $KEY" -D "$OUT/body.json" \
      --no-tui --output-format json > "$OUT/run.json"
    m1=$(ticks $MP); g1=$(ticks $TP)
    python3 - "$OUT/run.json" "$OUT/oha.time" "$i ${t%%:*}" "$((m1 - m0))" "$((g1 - g0))" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); p = j["latencyPercentiles"]; n = max(sum(j["statusCodeDistribution"].values()), 1)
user, system = map(float, open(sys.argv[2]).read().split())
tick_us = 1e6 / 100  # /proc/PID/stat counts clock ticks of 10 ms
print(sys.argv[3], "p50=%.3f p99=%.3f" % (p["p50"] * 1000, p["p99"] * 1000),
      "cpu us/req: oha=%.0f mock=%.0f gateway=%.0f" % ((user + system) * 1e6 / n, int(sys.argv[4]) * tick_us / n, int(sys.argv[5]) * tick_us / n),
      j.get("statusCodeDistribution"))
PY
    sleep 1
  done
done
