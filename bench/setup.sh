# Sourced by bench/profile.sh and bench/instructions.sh: the upstream config and request body
# they share with bench/run.sh's harness (one model group on `tollgate mock`, a master key; a
# system prompt padded to the size asked for plus one user turn).
#
#   bench_setup OUT KIND SIZE_KB   # sets MOCK_PORT TG_PORT KEY; writes OUT/config.yaml, OUT/body.json

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
