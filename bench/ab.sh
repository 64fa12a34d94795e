#!/usr/bin/env bash
# Two gateways side by side on one mock, alternating 5-second open-loop runs at 2,000 req/s (oha,
# 128 connections): direct, A, B per round, so a drift of the machine hits both alike. For changes
# whose effect is smaller than the spread between whole `bench/run.sh` runs.
#
#   bench/ab.sh BIN_A DATA_DIR_A BIN_B DATA_DIR_B
#   KIND=plain KB=1 ROUNDS=5 RATE=2000 SECS=5 bench/ab.sh …      # the defaults: stream, 16 KB, 4 rounds
#   RENICE_B=tollgate-record NICE=10 bench/ab.sh …               # B's threads whose name matches, reniced
#   BATCH_B=tollgate-record bench/ab.sh …                         # … or moved to SCHED_BATCH (chrt -b)
#   SLICE_B=tollgate-worker SLICE_US=100 bench/ab.sh …            # … or given a shorter EEVDF slice
#   ARGS_B="--workers 1" bench/ab.sh …                             # more `serve` arguments for B
#   BURST_B=1 bench/ab.sh …                                        # B first takes a closed-loop burst
#
# Prints p50 and p99 per run and both gateways' peak RSS (VmHWM).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$BENCH_DIR/.."
source "$BENCH_DIR/oha.sh"
source "$BENCH_DIR/setup.sh"
OUT="$BENCH_DIR/out/ab"; rm -rf "$OUT"; mkdir -p "$OUT"
bench_setup "$OUT" "${KIND:-stream}" "${KB:-16}"
A="$1"; ADIR="$2"; B="$3"; BDIR="$4"; ROUNDS="${ROUNDS:-4}"
PA=$(free_port); PB=$(free_port)
"$A" mock --port "$MOCK_PORT" >"$OUT/mock.log" 2>&1 & MP=$!
"$A" serve --config "$OUT/config.yaml" --port "$PA" --data-dir "$ADIR" --no-watch >"$OUT/a.log" 2>&1 & AP=$!
# shellcheck disable=SC2086 # ARGS_B is a list of words
"$B" serve --config "$OUT/config.yaml" --port "$PB" --data-dir "$BDIR" --no-watch ${ARGS_B:-} >"$OUT/b.log" 2>&1 & BP=$!
trap 'kill $MP $AP $BP 2>/dev/null' EXIT
for p in $PA $PB; do for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/health/liveliness" >/dev/null && break; sleep 0.1; done; done
if [ -n "${RENICE_B:-}" ]; then
  for t in $(ps -T -o spid=,comm= -p "$BP" | awk -v pat="$RENICE_B" '$2 ~ pat {print $1}'); do renice -n "${NICE:-10}" -p "$t" >/dev/null; done
  ps -T -o spid,comm,ni -p "$BP"
fi
if [ -n "${BATCH_B:-}" ]; then
  for t in $(ps -T -o spid=,comm= -p "$BP" | awk -v pat="$BATCH_B" '$2 ~ pat {print $1}'); do chrt -b -p 0 "$t"; done
  ps -T -o spid,comm,policy -p "$BP"
fi
if [ -n "${SLICE_B:-}" ]; then
  # shellcheck disable=SC2046 # one argument per thread id
  python3 "$BENCH_DIR/slice.py" "${SLICE_US:-100}" $(ps -T -o spid=,comm= -p "$BP" | awk -v pat="$SLICE_B" '$2 ~ pat {print $1}')
fi
run() {
  "$OHA" "http://127.0.0.1:$1/v1/chat/completions" -z "${SECS:-5}s" -c 128 -q "${RATE:-2000}" --latency-correction -m POST \
    -H 'content-type: application/json' -H "authorization: Bearer $KEY" -D "$OUT/body.json" --no-tui --output-format json > "$OUT/run.json"
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); p=j['latencyPercentiles']; print(sys.argv[2], 'p50=%.3f p99=%.3f' % (p['p50']*1000, p['p99']*1000), j.get('statusCodeDistribution'))" "$OUT/run.json" "$2"
}
for p in $PA $PB $MOCK_PORT; do run "$p" warm >/dev/null; done
if [ -n "${BURST_B:-}" ]; then
  # B first takes a 10-second closed-loop burst from 512 connections: the state a burst leaves.
  "$OHA" "http://127.0.0.1:$PB/v1/chat/completions" -z 10s -c 512 -m POST -H 'content-type: application/json' \
    -H "authorization: Bearer $KEY" -D "$OUT/body.json" --no-tui --output-format json >/dev/null
  echo "B after the burst: $(grep VmRSS /proc/$BP/status)"; sleep 2
fi
for i in $(seq "$ROUNDS"); do run "$MOCK_PORT" "$i direct"; run "$PA" "$i A"; run "$PB" "$i B"; sleep 1; done
echo "A $(grep VmHWM /proc/$AP/status)   B $(grep VmHWM /proc/$BP/status)"
# CPU seconds (user + system) over the whole script, per gateway and for its record writer thread.
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "$1"; }
for g in A:$AP B:$BP; do
  pid=${g#*:}; w=$(ps -T -o spid=,comm= -p "$pid" | awk '/tollgate-record/{print $1}')
  echo "${g%%:*} cpu $(cpu /proc/$pid/stat) s, record writer $(cpu /proc/$pid/task/$w/stat) s"
done
