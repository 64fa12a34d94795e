#!/usr/bin/env bash
# tollgate vs LiteLLM, side by side, in one run on this machine. Writes ../BENCHMARKS.md.
#
#   bench/run.sh                 # full run (~15 min on a fresh 2-core machine, most of it builds)
#   BENCH_SECONDS=8 bench/run.sh # longer measurement per rate (default 5 s)
#   BENCH_QUICK=1 bench/run.sh   # smoke run: 2 rates, 1 body size, 2 s each, small report file
#   bench/run.sh --report-only   # only `tollgate report` vs DuckDB (plain and gzip, ~1 min once the
#                                # file exists); rewrites only that section and its Targets row
#
# Everything it installs stays under bench/ (gitignored): oha in bench/.tools, LiteLLM and DuckDB
# in bench/.venv, generated bodies, logs and the 300 MB LiteLLM log in bench/out.
# Only loopback is used; LiteLLM is told not to fetch its price map or send telemetry.
# With nginx installed (Debian: apt-get install nginx-light) a bare nginx proxy runs beside the
# latency floors' pairs, as the machine's own floor; without it those rows just lack that figure.
set -euo pipefail

LITELLM_VERSION=1.108.7
DUCKDB_VERSION=1.5.6

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PY="$BENCH_DIR/.venv/bin/python"

if [ "${1:-}" = "--report-only" ]; then
    shift
    # DuckDB alone is enough (LiteLLM is only needed for the load runs).
    if ! { [ -x "$PY" ] && "$PY" -c "import importlib.metadata as m; assert m.version('duckdb')=='$DUCKDB_VERSION'" 2>/dev/null; }; then
        log "installing duckdb==$DUCKDB_VERSION into bench/.venv"
        python3 -m venv "$BENCH_DIR/.venv"
        "$PY" -m pip install -q "duckdb==$DUCKDB_VERSION"
    fi
    log "building tollgate (release)"
    cargo build --release -p tollgate
    TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
    exec "$PY" "$BENCH_DIR/harness.py" --report-only \
        --tollgate "$TARGET_DIR/release/tollgate" \
        --python "$PY" \
        --out-dir "$BENCH_DIR/out" \
        --markdown "$ROOT/BENCHMARKS.md" \
        --versions "duckdb=$DUCKDB_VERSION" \
        "$@"
fi

# 1. oha, pinned (bench/oha.sh).
source "$BENCH_DIR/oha.sh"

# 2. LiteLLM (proxy extras) and DuckDB, pinned, in their own venv.
if ! { [ -x "$PY" ] && "$PY" -c "import importlib.metadata as m; assert m.version('litellm')=='$LITELLM_VERSION' and m.version('duckdb')=='$DUCKDB_VERSION'" 2>/dev/null; }; then
    log "installing litellm[proxy]==$LITELLM_VERSION and duckdb==$DUCKDB_VERSION into bench/.venv"
    python3 -m venv "$BENCH_DIR/.venv"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q "litellm[proxy]==$LITELLM_VERSION" "duckdb==$DUCKDB_VERSION"
fi

command -v nginx >/dev/null || log "nginx not installed: the floors are measured without a bare proxy beside them"

# 3. tollgate, release build.
log "building tollgate (release)"
cargo build --release -p tollgate
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

# 4. Measure and write BENCHMARKS.md. The harness uses the standard library only.
log "running the harness"
exec "$PY" "$BENCH_DIR/harness.py" \
    --tollgate "$TARGET_DIR/release/tollgate" \
    --oha "$OHA" \
    --litellm "$BENCH_DIR/.venv/bin/litellm" \
    --python "$PY" \
    --out-dir "$BENCH_DIR/out" \
    --markdown "$ROOT/BENCHMARKS.md" \
    --versions "oha=$OHA_VERSION,litellm=$LITELLM_VERSION,duckdb=$DUCKDB_VERSION" \
    "$@"
