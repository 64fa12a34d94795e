#!/usr/bin/env bash
# Makes a LiteLLM log fixture with the real LiteLLM proxy: LiteLLM (PyPI, pinned) in front of `tollgate mock`,
# driven by drive.py with the official openai client, logging every request's StandardLoggingPayload through
# payload_logger.py. Nothing here is hand-written log text: the lines are LiteLLM's own.
#
#   tests/litellm-fixtures/gen.sh CONFIG OUT.jsonl MODEL[:N]...
#   e.g. tests/litellm-fixtures/gen.sh tests/litellm-fixtures/openrouter_free.yaml \
#          crates/tollgate-report/tests/fixtures/litellm_openrouter_free.jsonl llama-free:12 deepseek-v3.2:12
#
# Needs: python3, network access to PyPI the first time (LiteLLM goes into tests/litellm-fixtures/.venv,
# gitignored), and a built tollgate (target/release or target/debug; built if missing).
set -euo pipefail
LITELLM_VERSION=1.108.7
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONFIG="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; OUT="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2

VENV="$HERE/.venv"
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('litellm')=='$LITELLM_VERSION'" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
fi
TG="$ROOT/target/release/tollgate"; [ -x "$TG" ] || TG="$ROOT/target/debug/tollgate"
[ -x "$TG" ] || { cargo build -p tollgate --manifest-path "$ROOT/Cargo.toml"; TG="$ROOT/target/debug/tollgate"; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK="$(mktemp -d)"; MOCK_PORT=$(port); PROXY_PORT=$(port); KEY="sk-fixture-$(date +%s)"
trap 'kill $MOCK_PID $PROXY_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
# The config names the mock as MOCK_BASE; LiteLLM's own os.environ/ syntax fills it in.
cp "$CONFIG" "$WORK/config.yaml"; cp "$HERE/payload_logger.py" "$WORK/"
"$TG" mock --port "$MOCK_PORT" > "$WORK/mock.log" 2>&1 & MOCK_PID=$!
rm -f "$OUT"
( cd "$WORK" && MOCK_BASE="http://127.0.0.1:$MOCK_PORT/v1" FIXTURE_MASTER_KEY="$KEY" PAYLOAD_OUT="$OUT" \
    LITELLM_LOCAL_MODEL_COST_MAP=True NO_DOCS=True exec "$VENV/bin/litellm" --config config.yaml --host 127.0.0.1 \
    --port "$PROXY_PORT" > "$WORK/proxy.log" 2>&1 ) & PROXY_PID=$!
for _ in $(seq 1 120); do curl -sf "127.0.0.1:$PROXY_PORT/health/liveliness" >/dev/null && break; sleep 1; done
"$VENV/bin/python" "$HERE/drive.py" "http://127.0.0.1:$PROXY_PORT" "$KEY" "$@"
sleep 2  # LiteLLM writes its logging callbacks after the response
wc -l "$OUT"
