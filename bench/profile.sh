#!/usr/bin/env bash
# Where the gateway's CPU goes under load: `perf record` on tollgate while oha drives it at
# saturation (closed loop, 64 connections) against `tollgate mock`, same config as bench/run.sh.
#
#   bench/profile.sh [plain|stream] [SIZE_KB] [SECONDS]   # default: plain 1 5
#
# Prints the top functions by self time and by inclusive time (children), and leaves
# perf.data in bench/out/profile/. Needs `perf` (linux-perf); oha comes from bench/oha.sh.
set -euo pipefail
KIND="${1:-plain}"; SIZE_KB="${2:-1}"; SECONDS_="${3:-5}"
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"
source "$BENCH_DIR/oha.sh"
cargo build --release -p tollgate >&2
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/tollgate"
OUT="$BENCH_DIR/out/profile"; rm -rf "$OUT"; mkdir -p "$OUT"
source "$BENCH_DIR/setup.sh"
bench_setup "$OUT" "$KIND" "$SIZE_KB"
"$BIN" mock --port "$MOCK_PORT" >"$OUT/mock.log" 2>&1 & MOCK=$!
"$BIN" serve --config "$OUT/config.yaml" --port "$TG_PORT" --data-dir "$OUT/data" --log-jsonl "$OUT/records.jsonl" --no-watch >"$OUT/tollgate.log" 2>&1 & TG=$!
trap 'kill $MOCK $TG 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TG_PORT/health/liveliness" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$TG_PORT/v1/chat/completions"
oha_run() { "$OHA" "$URL" -z "$1" -c 64 -m POST -H "content-type: application/json" -H "authorization: Bearer $KEY" -D "$OUT/body.json" --no-tui --output-format json "${@:2}"; }
oha_run 2s >/dev/null   # warm-up: connection pools, SQLite pages
perf record -F 999 -g --call-graph dwarf,16384 -p "$TG" -o "$OUT/perf.data" -- sleep "$SECONDS_" 2>"$OUT/perf.log" &
PERF=$!
oha_run "${SECONDS_}s" > "$OUT/oha.json"
wait $PERF || true
python3 -c "import json; j=json.load(open('$OUT/oha.json')); print(f\"achieved {j['summary']['requestsPerSec']:.0f} req/s under perf (sampling slows it)\")"
echo "== self time (top 40)"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40
echo "== inclusive time (top 60)"
perf report -i "$OUT/perf.data" --children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -60
