# Sourced by the bench scripts (profile.sh, instructions.sh, threads.sh, …): the upstream config
# and request body they share with bench/run.sh's harness (one model group on `tollgate mock`, a
# master key; a system prompt padded to the size asked for plus one user turn).
#
#   bench_setup OUT KIND SIZE_KB       # sets MOCK_PORT TG_PORT KEY; writes OUT/config.yaml, OUT/body.json
#   bench_start MOCK_BIN GW_BIN OUT    # starts both on those ports; sets MP TP

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bench_setup() {
    local out="$1" kind="$2" size_kb="$3"
    MOCK_PORT=$(free_port); TG_PORT=$(free_port); KEY="sk-bench-$(date +%s%N)"
    printf 'model_list:\n  - model_name: deepseek-v3.2\n    litellm_params:\n      model: deepseek/deepseek-v3.2\n      api_base: http://127.0.0.1:%s/v1\n      api_key: sk-upstream-not-used\ngeneral_settings:\n  master_key: %s\n' \
        "$MOCK_PORT" "$KEY" > "$out/config.yaml"
    python3 - "$out/body.json" "$kind" "$size_kb" <<'PY'
import json, sys
path, kind, kb = sys.argv[1], sys.argv[2], int(sys.argv[3])
filler = ("You are a careful coding assistant. " * 1000)[: max(kb * 1024 - 300, 10)]
body = {"model": "deepseek-v3.2", "messages": [{"role": "system", "content": filler}, {"role": "user", "content": "Write a haiku about gateways."}]}
if kind == "stream":
    body.update(stream=True, stream_options={"include_usage": True})
open(path, "w").write(json.dumps(body))
PY
}

# Starts MOCK_BIN's mock and GW_BIN's gateway on the ports bench_setup chose (logs and the
# gateway's data under OUT), waits until the gateway answers, and stops both when the script
# exits. Sets MP and TP, their process ids.
#
#   bench_start MOCK_BIN GW_BIN OUT
bench_start() {
    local mock_bin="$1" gw_bin="$2" out="$3"
    "$mock_bin" mock --port "$MOCK_PORT" >"$out/mock.log" 2>&1 & MP=$!
    "$gw_bin" serve --config "$out/config.yaml" --port "$TG_PORT" --data-dir "$out/data" --no-watch >"$out/tollgate.log" 2>&1 & TP=$!
    trap 'kill $MP $TP 2>/dev/null' EXIT
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$TG_PORT/health/liveliness" >/dev/null && break; sleep 0.1; done
}
