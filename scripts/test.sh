#!/usr/bin/env bash
# The one test command: every Rust test (unit, integration, benches in test mode) and the
# end-to-end suite that drives tollgate with the official `openai` Python SDK.
#
# Tests that need Redis, Postgres, redis-server or the shared corpus are listed as ignored, with
# the reason, when those are missing (a laptop without the services; see crates/tollgate-testenv).
# .ci/run sets TOLLGATE_CI=1 and the service URLs, so in CI a missing dependency fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
cargo build -p tollgate
TOLLGATE_BIN="$PWD/target/debug/tollgate" bash tests/e2e/run.sh
