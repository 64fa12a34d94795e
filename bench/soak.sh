#!/usr/bin/env bash
# Soak test (not in CI): mixed plain, streamed, failing and cancelled traffic at a fixed rate for
# ten minutes against a release build; prints RSS over time, gateway-made 5xx (must be 0),
# records vs requests (must be equal) and p99 per class. See bench/soak.py.
#
#   bench/soak.sh                                  # 600 s at 1000 req/s
#   SOAK_SECONDS=30 SOAK_RATE=200 bench/soak.sh    # a short smoke run
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"
source "$BENCH_DIR/oha.sh"
cargo build --release -p tollgate
exec python3 "$BENCH_DIR/soak.py" --tollgate "$ROOT/target/release/tollgate" --oha "$OHA" \
    --seconds "${SOAK_SECONDS:-600}" --rate "${SOAK_RATE:-1000}" --out-dir "$BENCH_DIR/out/soak"
