#!/usr/bin/env bash
# The shared store's cost on the request path (issue 13): tollgate's added latency with Postgres on
# vs SQLite only at 2,000 req/s, side by side in one run, and the shipper's sustained records/s
# (criterion). See bench/shared_store.py. Prints a Markdown section and writes bench/out/shared_store.md.
#
#   bench/shared_store.sh                     # 3 rounds of direct → SQLite only → Postgres on, 10 s each,
#                                             # then the criterion shipping bench (~4 min once built)
#   BENCH_SECONDS=5 bench/shared_store.sh     # shorter rows
#   bench/shared_store.sh --rounds 5          # more rounds (see bench/shared_store.py --help)
#
# Needs Postgres and psql: TOLLGATE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
# names a database whose user may CREATE DATABASE; the run creates tg_bench_<pid> beside it and drops it
# at the end (also on failure). Keep the machine otherwise idle while it measures.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"

export TOLLGATE_TEST_POSTGRES_URL="${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if ! command -v psql >/dev/null; then
    echo "psql not found: install the PostgreSQL client (e.g. apt-get install postgresql-client)" >&2
    exit 1
fi

source "$BENCH_DIR/oha.sh"
cargo build --release -p tollgate
# Built now, so the measurement part does not compile.
cargo bench --no-run -p tollgate-store --bench shipping

PY=python3
if [ -x "$BENCH_DIR/.venv/bin/python" ]; then
    PY="$BENCH_DIR/.venv/bin/python"
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

"$PY" "$BENCH_DIR/shared_store.py" \
    --tollgate "$TARGET_DIR/release/tollgate" \
    --oha "$OHA" \
    --out-dir "$BENCH_DIR/out" \
    --seconds "${BENCH_SECONDS:-10}" \
    "$@"

# Kept with the repository (bench/run.sh appends it to BENCHMARKS.md too) and spliced into
# BENCHMARKS.md now, replacing the previous run's section.
cp "$BENCH_DIR/out/shared_store.md" "$BENCH_DIR/shared_store_results.md"
"$PY" - "$ROOT/BENCHMARKS.md" "$BENCH_DIR/shared_store_results.md" <<'PY'
import sys
md_path, section_path = sys.argv[1], sys.argv[2]
text = open(md_path).read()
section = open(section_path).read().rstrip() + "\n\n"
start = text.find("## Shared store (Postgres)")
if start >= 0:
    end = text.find("\n## ", start + 1)
    end = len(text) if end < 0 else end + 1
    text = text[:start] + section + text[end:]
else:
    at = text.find("## Notes (hand-written")
    at = len(text) if at < 0 else at
    text = text[:at] + section + text[at:]
open(md_path, "w").write(text)
PY
echo "BENCHMARKS.md: section 'Shared store (Postgres)' updated" >&2
