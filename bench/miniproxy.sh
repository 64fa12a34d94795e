#!/usr/bin/env bash
# A yardstick for tollgate's added latency: the least a Rust proxy on tokio and hyper does per
# request (bench/miniproxy: read the body, send it on, relay the answer as it comes; no parsing, no
# records), with hyper-util's client and with reqwest's, beside tollgate, against the same
# `tollgate mock`, alternating 5-second open-loop runs (oha, 128 connections).
#
#   bench/miniproxy.sh [ROUNDS]          # RATE=100 KIND=plain KB=1 by default; RATE=2000 KIND=stream KB=16 …
#
# Prints per run: round, target, p50 and p99 in ms, CPU per request (the mock's for direct, the
# proxy's own otherwise). "Added" = target - direct of the same round.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"
ROUNDS="${1:-4}"; RATE="${RATE:-100}"
source "$BENCH_DIR/oha.sh"
source "$BENCH_DIR/setup.sh"
OUT="$BENCH_DIR/out/miniproxy"; rm -rf "$OUT"; mkdir -p "$OUT"
TG="${CARGO_TARGET_DIR:-$ROOT/target}/release/tollgate"; [ -x "$TG" ] || cargo build --release -p tollgate
MINI_TARGET="$BENCH_DIR/.tools/miniproxy-target"
cargo build --release --locked --quiet --manifest-path "$BENCH_DIR/miniproxy/Cargo.toml" --target-dir "$MINI_TARGET"
MINI="$MINI_TARGET/release/miniproxy"
bench_setup "$OUT" "${KIND:-plain}" "${KB:-1}"
HY_PORT=$(free_port); RQ_PORT=$(free_port)
"$TG" mock --port "$MOCK_PORT" >"$OUT/mock.log" 2>&1 & MP=$!
"$TG" serve --config "$OUT/config.yaml" --port "$TG_PORT" --data-dir "$OUT/data" --no-watch >"$OUT/tollgate.log" 2>&1 & TP=$!
"$MINI" "$HY_PORT" "http://127.0.0.1:$MOCK_PORT/v1" hyper >"$OUT/hyper.log" 2>&1 & HP=$!
"$MINI" "$RQ_PORT" "http://127.0.0.1:$MOCK_PORT/v1" reqwest >"$OUT/reqwest.log" 2>&1 & RP=$!
trap 'kill $MP $TP $HP $RP 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TG_PORT/health/liveliness" >/dev/null && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {
  "$OHA" "http://127.0.0.1:$1/v1/chat/completions" -z 5s -c 128 -q "$RATE" --latency-correction -m POST \
    -H 'content-type: application/json' -H "authorization: Bearer $KEY" -D "$OUT/body.json" --no-tui --output-format json
}
for p in $MOCK_PORT $HY_PORT $RQ_PORT $TG_PORT; do run "$p" >/dev/null; done   # warm-up
for i in $(seq "$ROUNDS"); do
  for t in "direct:$MOCK_PORT:$MP" "hyper-client:$HY_PORT:$HP" "reqwest:$RQ_PORT:$RP" "tollgate:$TG_PORT:$TP"; do
    IFS=: read -r name port pid <<<"$t"
    c0=$(ticks "$pid"); run "$port" > "$OUT/run.json"; c1=$(ticks "$pid")
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); p=j['latencyPercentiles']; n=max(sum(j['statusCodeDistribution'].values()),1); print(sys.argv[2], 'p50=%.3f p99=%.3f cpu=%.0fus/req' % (p['p50']*1000, p['p99']*1000, int(sys.argv[3]) * 1e4 / n), j.get('statusCodeDistribution'))" \
      "$OUT/run.json" "$i $name" "$((c1 - c0))"
    sleep 1
  done
done
