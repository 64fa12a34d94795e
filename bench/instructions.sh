#!/usr/bin/env bash
# Instructions the gateway executes per request (user space), counted by callgrind: repeatable
# whatever else the machine is doing, so it measures a change to the request path even where
# timings are noise (a shared 2-core machine; this VM exposes no hardware counters to perf).
#
#   bench/instructions.sh [BIN] [plain|stream] [SIZE_KB] [REQUESTS]   # default: release build, plain 1 2000
#
# Prints instructions per request (total, and the top functions by inclusive share).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"
BIN="${1:-}"; KIND="${2:-plain}"; SIZE_KB="${3:-1}"; N="${4:-2000}"
source "$BENCH_DIR/oha.sh"
if [ -z "$BIN" ]; then
    cargo build --release -p tollgate >&2
    BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/tollgate"
fi
OUT="$BENCH_DIR/out/instructions"; rm -rf "$OUT"; mkdir -p "$OUT"
source "$BENCH_DIR/setup.sh"
bench_setup "$OUT" "$KIND" "$SIZE_KB"
"$BIN" mock --port "$MOCK_PORT" >"$OUT/mock.log" 2>&1 & MOCK=$!
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
    "$BIN" serve --config "$OUT/config.yaml" --port "$TG_PORT" --data-dir "$OUT/data" --log-jsonl "$OUT/records.jsonl" --no-watch \
    >"$OUT/tollgate.log" 2>&1 & TG=$!
trap 'kill $MOCK $TG 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$TG_PORT/health/liveliness" >/dev/null && break; sleep 0.1; done
hit() { "$OHA" "http://127.0.0.1:$TG_PORT/v1/chat/completions" -n "$1" -c 4 -m POST -H "content-type: application/json" -H "authorization: Bearer $KEY" -D "$OUT/body.json" --no-tui --output-format json > "$OUT/oha-$1.json"; }
hit 200                       # warm-up: pools, SQLite pages, lazy statics
sleep 1
callgrind_control -z "$TG" >/dev/null
hit "$N"
sleep 1                       # the writer's last batch
callgrind_control -d "$TG" >/dev/null
sleep 1
DUMP=$(ls "$OUT"/callgrind.out.*.1)
python3 - "$DUMP" "$N" "$OUT/oha-$N.json" <<'PY'
import json, sys, re
dump, n = sys.argv[1], int(sys.argv[2])
ok = json.load(open(sys.argv[3])).get("statusCodeDistribution", {}).get("200", 0)
total = 0
for line in open(dump):
    if line.startswith("summary:") or line.startswith("totals:"):
        total = int(line.split()[1])
print(f"{total / n / 1000:.1f}k instructions per request ({n} requests, {ok} answered 200; user space, callgrind)")
PY
callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null | grep -E "^ *[0-9,]+ \(" | head -40 > "$OUT/top.txt" || true
echo "top functions (inclusive): $OUT/top.txt"
