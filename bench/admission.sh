#!/usr/bin/env bash
# Admission's cost end to end (issue 14's "Done when": admission adds ≤ 0.05 ms p50 with in-process
# counters and ≤ 0.3 ms p50 with Redis at 1,000 req/s). See bench/admission.py. Prints a Markdown
# section, writes bench/out/admission.md, copies it to bench/admission_results.md and splices it
# into BENCHMARKS.md.
#
#   bench/admission.sh                     # 3 rounds of the four rows below, 10 s each (~4 min once built)
#   BENCH_SECONDS=5 bench/admission.sh     # shorter rows
#   bench/admission.sh --rounds 5          # more rounds (see bench/admission.py --help)
#
# Rows, in this order every round so drift hits them alike; each an open-loop oha run at 1,000 req/s
# of plain ~1 KB chat requests against `tollgate mock`:
#   direct                    oha straight to the mock (the baseline)
#   master key                tollgate, master key: no admission work beyond the key compare
#   virtual key, in-process   tollgate, a key from /key/generate with max_budget, budget_duration,
#                             rpm_limit, tpm_limit, max_parallel_requests (all too large to refuse) in a
#                             team from /team/new with its own budget: key auth (SHA-256 + 1 s cache),
#                             its team, rate limits counted in this process, the budget hold on key and
#                             team (one SQLite transaction), spend settled at the end
#   virtual key, Redis        the same with router_settings.redis_url (TOLLGATE_TEST_REDIS_URL) and a
#                             tollgate_settings.rate_limit_prefix unique to the run
# Each tollgate row is a fresh `tollgate serve` and data dir, warmed up 3 s at 300 req/s. The oha
# command of every row (PORT = the mock's for direct; KEY = the master or the virtual key):
#   oha http://127.0.0.1:PORT/v1/chat/completions -z 10s -q 1000 --latency-correction -c 64 -m POST \
#       -H 'content-type: application/json' -H 'authorization: Bearer KEY' -D body-plain-1k.json \
#       --no-tui --output-format json
# admission = a virtual-key row's p50 (p99) minus the master-key row's.
#
# Needs Redis: TOLLGATE_TEST_REDIS_URL (default redis://127.0.0.1:6379/); the run's keys are deleted
# at the end (also on failure). It waits up to BENCH_LOAD_WAIT s (default 600) for the 1-minute load
# average to fall under BENCH_MAX_LOAD (default 1.0) before measuring, and reports the load.
# Exits 1 when a row saw a non-2xx answer or a check failed (missing target figures are reported,
# not failed: they are what the run is for).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"

export TOLLGATE_TEST_REDIS_URL="${TOLLGATE_TEST_REDIS_URL:-redis://127.0.0.1:6379/}"

source "$BENCH_DIR/oha.sh"
cargo build --release -p tollgate

PY=python3
if [ -x "$BENCH_DIR/.venv/bin/python" ]; then
    PY="$BENCH_DIR/.venv/bin/python"
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

# A failed check must still leave its report to read, and must still fail the script.
status=0
"$PY" "$BENCH_DIR/admission.py" \
    --tollgate "$TARGET_DIR/release/tollgate" \
    --oha "$OHA" \
    --out-dir "$BENCH_DIR/out" \
    --seconds "${BENCH_SECONDS:-10}" \
    "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "bench/admission.py failed (exit $status): BENCHMARKS.md and bench/admission_results.md left as they were" >&2
    exit "$status"
fi

# Kept with the repository (bench/run.sh appends it to BENCHMARKS.md too) and spliced into
# BENCHMARKS.md now, replacing the previous run's section.
cp "$BENCH_DIR/out/admission.md" "$BENCH_DIR/admission_results.md"
"$PY" - "$ROOT/BENCHMARKS.md" "$BENCH_DIR/admission_results.md" <<'PY'
import sys
md_path, section_path = sys.argv[1], sys.argv[2]
text = open(md_path).read()
section = open(section_path).read().rstrip() + "\n\n"
start = text.find("## Admission (virtual keys, budgets, rate limits)")
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
echo "BENCHMARKS.md: section 'Admission (virtual keys, budgets, rate limits)' updated" >&2
