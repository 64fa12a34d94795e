#!/usr/bin/env bash
# A response-cache hit's latency at fixed rates (issue 5), next to the direct-to-upstream baseline.
# The same ~1 KB body every time, so every request after the first is a hit.
# Needs what bench/run.sh installs and builds (oha, the release binary, bench/out/body-plain-1k.json):
#   bench/run.sh && bench/cache_hit.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OHA=$ROOT/bench/.tools/bin/oha; TG=$ROOT/target/release/tollgate
WORK="$ROOT/bench/out/cache-hit"; mkdir -p "$WORK"; cd "$WORK"
KEY=sk-bench-cache-0123456789abcdef0123
$TG mock --port 18901 >/dev/null 2>&1 & MOCK=$!
cat > config.yaml <<YAML
model_list:
  - model_name: deepseek-v3.2
    litellm_params: {model: deepseek/deepseek-v3.2, api_base: "http://127.0.0.1:18901/v1", api_key: k}
litellm_settings:
  cache: true
  cache_params: {type: local}
general_settings:
  master_key: $KEY
YAML
rm -rf data; $TG serve --config config.yaml --port 18902 --data-dir data --log-jsonl data/r.jsonl --no-watch >serve.log 2>&1 & GW=$!
sleep 1.5
BODY=$ROOT/bench/out/body-plain-1k.json
curl -s -o /dev/null -H "Authorization: Bearer $KEY" -H 'content-type: application/json' --data @$BODY http://127.0.0.1:18902/v1/chat/completions
curl -s -D - -o /dev/null -H "Authorization: Bearer $KEY" -H 'content-type: application/json' --data @$BODY http://127.0.0.1:18902/v1/chat/completions | grep -i x-tollgate-cache
for rate in 100 1000 2000; do
  for target in "direct http://127.0.0.1:18901/v1/chat/completions" "cache-hit http://127.0.0.1:18902/v1/chat/completions"; do
    set -- $target
    $OHA -z 5s -q $rate --latency-correction -c 64 --no-tui --output-format json -m POST -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -D $BODY "$2" > $1-$rate.json
    python3 - "$1" "$rate" <<PY
import json,sys
d=json.load(open(f"{sys.argv[1]}-{sys.argv[2]}.json"))
p=d["latencyPercentiles"]; s=d["summary"]
print(f"{sys.argv[1]:9} rate {sys.argv[2]:>5}: achieved {s['requestsPerSec']:.0f}/s p50 {p['p50']*1000:.3f} ms p99 {p['p99']*1000:.3f} ms success {s['successRate']}")
PY
  done
done
kill $GW $MOCK; wait 2>/dev/null || true
