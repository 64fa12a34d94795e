#!/usr/bin/env bash
# The physical floor: what a bare nginx reverse proxy adds on this machine, beside tollgate, against the
# same `tollgate mock` upstream, at 2,000 req/s (oha, open loop, 128 connections, 5 s per run), for 16 KB
# streams and 1 KB plain requests. nginx streams without buffering (proxy_buffering off) and keeps
# upstream connections alive, the way a gateway must.
#
#   bench/nginx_floor.sh [ROUNDS]      # needs nginx (Debian: apt-get install nginx-light) and a release build
#
# Prints one line per run: round, body, target, p50 and p99 in ms, CPU per request (the mock's for direct,
# the proxy's own otherwise), status codes. "Added" = target - direct.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"
ROUNDS="${1:-5}"
command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }
source "$BENCH_DIR/oha.sh"
source "$BENCH_DIR/setup.sh"
OUT="$BENCH_DIR/out/nginx"; rm -rf "$OUT"; mkdir -p "$OUT"
TG="${CARGO_TARGET_DIR:-$ROOT/target}/release/tollgate"; [ -x "$TG" ] || cargo build --release -p tollgate
bench_setup "$OUT" stream 16; cp "$OUT/body.json" "$OUT/stream16.json"
bench_setup "$OUT" plain 1;   cp "$OUT/body.json" "$OUT/plain1.json"
NG_PORT=$(free_port)
cat > "$OUT/nginx.conf" <<NG
worker_processes 2;
pid $OUT/nginx.pid;
error_log $OUT/nginx_error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NG_PORT;
    client_body_buffer_size 64k;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NG
"$TG" mock --port "$MOCK_PORT" >"$OUT/mock.log" 2>&1 & MP=$!
"$TG" serve --config "$OUT/config.yaml" --port "$TG_PORT" --data-dir "$OUT/data" >"$OUT/tollgate.log" 2>&1 & TP=$!
nginx -c "$OUT/nginx.conf"
trap 'kill $MP $TP 2>/dev/null; nginx -c "$OUT/nginx.conf" -s stop 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TG_PORT/health/liveliness" >/dev/null && break; sleep 0.1; done
# CPU seconds (user + system) of a target's processes: the mock's for direct, else the proxy's own.
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
NGINX_PIDS="$(cat "$OUT/nginx.pid") $(pgrep -P "$(cat "$OUT/nginx.pid")" | tr '\n' ' ')"
for i in $(seq "$ROUNDS"); do
  for body in stream16 plain1; do
    for t in "direct:$MOCK_PORT" "nginx:$NG_PORT" "tollgate:$TG_PORT"; do
      case "${t%%:*}" in direct) pids="$MP" ;; nginx) pids="$NGINX_PIDS" ;; *) pids="$TP" ;; esac
      # shellcheck disable=SC2086 # one argument per pid
      c0=$(ticks $pids)
      "$OHA" "http://127.0.0.1:${t##*:}/v1/chat/completions" -z 5s -c 128 -q 2000 --latency-correction -m POST \
        -H 'content-type: application/json' -H "authorization: Bearer $KEY" -D "$OUT/$body.json" \
        --no-tui --output-format json > "$OUT/run.json"
      # shellcheck disable=SC2086 # one argument per pid
      c1=$(ticks $pids)
      python3 -c "import json,sys; j=json.load(open(sys.argv[1])); p=j['latencyPercentiles']; n=sum(j['statusCodeDistribution'].values()); print(sys.argv[2], 'p50=%.3f p99=%.3f cpu=%.0fus/req' % (p['p50']*1000, p['p99']*1000, int(sys.argv[3]) * 1e6 / 100 / max(n, 1)), j.get('statusCodeDistribution'))" \
        "$OUT/run.json" "$i $body ${t%%:*}" "$((c1 - c0))"
      sleep 1
    done
  done
done
