#!/usr/bin/env bash
# The dashboard's log queries on a shared Postgres store of N records (issue 16), before and after
# migration V7: EXPLAIN ANALYZE of every query the Logs page and a request's page send (as
# crates/tollgate-store/src/store.rs builds them), the cost of an insert (the shipper's, per row:
# what every index adds), and how long V7 itself takes on N rows.
#
#   bench/pg_log_plans.sh [N] [URL]       # default 1000000, postgres://postgres@127.0.0.1:5432/test
#
# Needs psql and a server whose user may CREATE DATABASE; the run creates tg_plans_<pid> and drops it
# at the end (also on failure). Only SQL: no tollgate build. Writes bench/out/pg_log_plans.txt.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MIGRATIONS="$BENCH_DIR/../crates/tollgate-store/migrations/postgres"
N="${1:-1000000}"
URL="${2:-${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}}"
DB="tg_plans_$$"
DB_URL="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit((p.scheme, p.netloc, "/" + sys.argv[2], p.query, "")))' "$URL" "$DB")"
OUT="$BENCH_DIR/out/pg_log_plans.txt"
mkdir -p "$BENCH_DIR/out"

psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" "$@"; }
psql -X -q -v ON_ERROR_STOP=1 -d "$URL" -c "CREATE DATABASE $DB"
trap 'psql -X -q -d "$URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT

# The schema as the build before V7 left it.
for v in 1 2 3 4 5 6; do
    psql_db -f "$MIGRATIONS"/V${v}__*.sql
done

# N records as the shipper stores them: the V1 columns and the record's JSON (a record's usual
# fields, about 1 KB), spread as bench/dashboard_pages.py --postgres spreads them.
ROWS_SQL="
SELECT f.request_id, 0, f.instance_id, f.request_id, f.session_id, f.start_time, f.model_group,
    'deepseek/deepseek-v3.2', f.status, f.key_alias, f.workflow, f.cost,
    json_build_object(
      'request_id', f.request_id, 'trace_id', f.request_id, 'session_id', f.session_id,
      'model_group', f.model_group, 'model', 'deepseek/deepseek-v3.2', 'provider', 'deepseek',
      'api_base', 'https://api.deepseek.com/v1', 'status', f.status, 'http_status', 200, 'stream', true,
      'start_time', f.start_time, 'end_time', f.start_time + interval '800 ms', 'ttft_ms', 312.5,
      'latency_ms', 800.25, 'upstream_ms', 799.9, 'overhead_ms', 0.35, 'prompt_tokens', f.prompt,
      'completion_tokens', f.completion, 'reasoning_tokens', 0, 'cached_tokens', 0,
      'cached_tokens_reported', true, 'cache_creation_tokens', 0, 'cost_usd', f.cost,
      'cost_input_usd', f.cost * 0.7, 'cost_cache_read_usd', 0, 'cost_cache_write_usd', 0,
      'cost_output_usd', f.cost * 0.3, 'cost_reasoning_usd', 0, 'unpriced', false, 'cache', f.cache,
      'user_agent', 'RooCode/3.30.1', 'key_alias', f.key_alias, 'config_version', 1,
      'prompt_sha256', md5(f.request_id) || md5(f.session_id), 'finish_reason', 'stop',
      'workflow', f.workflow, 'attempt', 0, 'source', 'tollgate', 'rollup', false,
      'instance_id', f.instance_id, 'key_hash', f.key_hash, 'user_id', f.user_id, 'team_id', f.team_id),
    f.key_hash, f.cache, f.user_id, f.team_id
FROM (
  SELECT i, 'bench-' || lpad(i::text, 8, '0') AS request_id, 'bench:' || (4000 + i % 3) AS instance_id,
         now() - random() * interval '30 days' AS start_time,
         (ARRAY['deepseek-v3.2', 'gemini-2.5-flash', 'minimax-m2.1', 'grok-4.1-fast'])[i % 4 + 1] AS model_group,
         CASE WHEN i % 50 = 0 THEN 'failure' ELSE 'success' END AS status,
         (ARRAY['off', 'miss', 'hit'])[i % 3 + 1] AS cache,
         CASE i % 20 WHEN 0 THEN NULL ELSE substr(md5((i % 20)::text), 1, 16) END AS key_hash,
         CASE i % 20 WHEN 0 THEN 'master_key' ELSE 'key-' || lpad((i % 20)::text, 2, '0') END AS key_alias,
         CASE WHEN i % 4 = 1 THEN 'user-' || (i % 200) END AS user_id,
         CASE WHEN i % 2 = 1 THEN 'team-' || (i % 10) END AS team_id,
         'session-' || (i / 25) AS session_id,
         CASE WHEN i % 100 = 7 THEN 'cf-x' END AS workflow,
         200 + i % 5000 AS prompt, 50 + i % 700 AS completion,
         ((200 + i % 5000) * 2.8e-7 + (50 + i % 700) * 4e-7)::float8 AS cost
  FROM generate_series(:first, :last) AS i
) f"
V6_COLUMNS="request_id, attempt, instance_id, trace_id, session_id, start_time, model_group, model, status, key_alias, workflow, cost_usd, json"
V7_COLUMNS="$V6_COLUMNS, key_hash, cache, user_id, team_id"

insert_sql() {  # columns: one INSERT of rows :first..:last (the V6 columns leave the last four out)
    local cols="$1" select="$ROWS_SQL"
    if [ "$cols" = "$V6_COLUMNS" ]; then
        select="SELECT request_id, attempt, instance_id, trace_id, session_id, start_time, model_group, model,
                       status, key_alias, workflow, cost_usd, json
                FROM ($ROWS_SQL) AS r(request_id, attempt, instance_id, trace_id, session_id, start_time,
                       model_group, model, status, key_alias, workflow, cost_usd, json, k, c, u, t)"
    fi
    echo "INSERT INTO tollgate_records ($cols) $select;"
}

load() {  # first last columns
    insert_sql "$3" | psql_db -v first="$1" -v last="$2"
}

# Microseconds per row inserted as the shipper inserts them: 25 batches of 2,000 rows, a
# transaction each, in one session (psql's \timing: server time and the round trip), at the
# table's size then. The rows are deleted again afterwards.
# With label "generation only", the rows are made and counted, not inserted: the part of the
# figures that is this script's, not the table's.
insert_cost() {  # label columns
    local start=$((N + 10000000)) script="\\timing on"$'\n'
    for b in $(seq 0 24); do
        script+="\\set first $((start + b * 2000))"$'\n'"\\set last $((start + b * 2000 + 1999))"$'\n'
        if [ "$1" = "generation only" ]; then
            script+="SELECT sum(length(j::text)) FROM ($ROWS_SQL) AS g(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, j, c14, c15, c16, c17);"$'\n'
        else
            script+="$(insert_sql "$2")"$'\n'
        fi
    done
    local ms
    ms="$(psql_db <<<"$script" | grep -o 'Time: [0-9.]*' | awk '{ s += $2 } END { printf "%.0f", s }')"
    echo "insert, $1: $(python3 -c "print(f'{$ms * 1000 / 50000:.1f}')") µs per row ($ms ms for 50,000 rows in 25 transactions of 2,000)"
    psql_db -c "DELETE FROM tollgate_records WHERE request_id >= 'bench-$(printf %08d "$start")'" >/dev/null
    psql_db -c "VACUUM tollgate_records" >/dev/null
}

explain_all() {  # label, then the spellings of the four filters that V7 moved out of the JSON
    local label="$1" kh="$2" ca="$3" us="$4" tm="$5"
    echo "=== $label"
    # Cursors: where the newest page, the 19th page and the first page of one user end.
    psql_db -t -A -F '|' -c "SELECT start_time, request_id, attempt FROM tollgate_records
        ORDER BY start_time DESC, request_id DESC, attempt DESC OFFSET 49 LIMIT 1" >"$WORK/c1"
    psql_db -t -A -F '|' -c "SELECT start_time, request_id, attempt FROM tollgate_records
        ORDER BY start_time DESC, request_id DESC, attempt DESC OFFSET 949 LIMIT 1" >"$WORK/c19"
    psql_db -t -A -F '|' -c "SELECT start_time, request_id, attempt FROM tollgate_records WHERE $us = 'user-41'
        ORDER BY start_time DESC, request_id DESC, attempt DESC OFFSET 49 LIMIT 1" >"$WORK/cu"
    cursor() { IFS='|' read -r t r a <"$WORK/$1"; echo "(start_time, request_id, attempt) < ('$t', '$r', $a)"; }
    local sel="SELECT id, json::text, instance_id FROM tollgate_records"
    local order="ORDER BY start_time DESC, request_id DESC, attempt DESC LIMIT 51"
    while IFS=';' read -r name where; do
        local sql="$sel ${where:+WHERE $where} $order"
        local plan ms
        plan="$(psql_db -t -A -c "EXPLAIN (ANALYZE, BUFFERS) $sql")"
        ms="$(grep -o 'Execution Time: [0-9.]*' <<<"$plan" | grep -o '[0-9.]*$')"
        printf '%-34s %10s ms   %s\n' "$name" "$ms" "$(grep -o -m1 -E '(Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)( Backward)? (using [a-z_0-9]+ )?on [a-z_]+' <<<"$plan" | head -1)"
        {
            echo "--- $label: $name"
            echo "$sql"
            echo "$plan"
        } >>"$OUT"
    done <<EOF
newest;
next page (cursor);$(cursor c1)
20th page (cursor);$(cursor c19)
one model;model_group = 'gemini-2.5-flash'
one key (alias);key_alias = 'key-05'
a virtual key's own view;$kh = '$(printf %s 5 | md5sum | cut -c1-16)'
one user;$us = 'user-41'
one user, next page;$us = 'user-41' AND $(cursor cu)
one team;$tm = 'team-3'
failures;status = 'failure'
cache hits;$ca = 'hit'
cache bypass (no record has it);$ca = 'bypass'
one session;session_id = 'session-12345'
one workflow;workflow = 'cf-x'
search, one query along time;strpos(request_id, 'bench-00000123') > 0
a request's page (exact id);request_id = 'bench-00000123'
a workflow run's steps (trace);trace_id = 'bench-00000123'
search, read by the matching ids;request_id = ANY(ARRAY['bench-00000123'])
EOF
    # What the store runs first for a search for part of an id (pg.rs `matching_ids`).
    local sql="SELECT request_id FROM tollgate_records WHERE strpos(request_id, '-00000123') > 0 ORDER BY request_id LIMIT 1001"
    local plan
    plan="$(psql_db -t -A -c "EXPLAIN (ANALYZE, BUFFERS) $sql")"
    printf '%-34s %10s ms   %s\n' "search, the matching ids first" "$(grep -o 'Execution Time: [0-9.]*' <<<"$plan" | grep -o '[0-9.]*$')" \
        "$(grep -o -m1 -E 'Index Only Scan using [a-z_]+ on [a-z_]+|Seq Scan on [a-z_]+' <<<"$plan")"
    printf -- '--- %s: search, the matching ids first\n%s\n%s\n' "$label" "$sql" "$plan" >>"$OUT"
}

WORK="$(mktemp -d)"
: >"$OUT"
{
    echo "bench/pg_log_plans.sh $N at $(git -C "$BENCH_DIR" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'); $(uptime)"
    t0=$(date +%s)
    for first in $(seq 0 200000 $((N - 1))); do
        last=$((first + 199999)); [ "$last" -ge "$N" ] && last=$((N - 1))
        load "$first" "$last" "$V6_COLUMNS"
    done
    psql_db -c "VACUUM ANALYZE tollgate_records"
    echo "loaded $N rows at V6 in $(( $(date +%s) - t0 )) s; $(psql_db -t -A -c "SELECT pg_size_pretty(pg_total_relation_size('tollgate_records'))") with indexes"
    insert_cost "generation only" "$V6_COLUMNS"
    insert_cost "V6 (JSON expression indexes)" "$V6_COLUMNS"
    explain_all "V6" "(json->>'key_hash')" "(json->>'cache')" "(json->>'user_id')" "(json->>'team_id')"
    t0=$(date +%s%N)
    psql_db -f "$MIGRATIONS"/V7__*.sql
    echo "V7 on $N rows: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    psql_db -c "VACUUM ANALYZE tollgate_records"
    echo "$(psql_db -t -A -c "SELECT pg_size_pretty(pg_total_relation_size('tollgate_records'))") with indexes after V7"
    insert_cost "V7 (plain columns, partial indexes)" "$V7_COLUMNS"
    explain_all "V7" key_hash cache user_id team_id
} | tee "$OUT.summary"
echo "plans: $OUT" >&2
