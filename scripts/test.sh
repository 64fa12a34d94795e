#!/usr/bin/env bash
# The one test command: every Rust test (unit, integration, benches in test mode) and the
# end-to-end suite that drives tollgate with the official `openai` Python SDK.
#
# Tests that need Redis or Postgres read TOLLGATE_TEST_REDIS_URL / TOLLGATE_TEST_POSTGRES_URL and
# skip with a printed reason when they are unset (a laptop without the services); .ci/run sets them.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
cargo build -p tollgate
TOLLGATE_BIN="$PWD/target/debug/tollgate" bash tests/e2e/run.sh
