"""The per-model summary of a LiteLLM StandardLoggingPayload JSONL file, computed by DuckDB.

What `tollgate report` is timed against: requests, tokens and cost per model_group, read with
DuckDB's read_json. Columns are named explicitly, which is DuckDB's fastest path (it skips the
schema sniffing of ~50 KB nested objects). Prints the rows as JSON and the query time.

    python duckdb_summary.py FILE [--threads N]
"""

import argparse
import json
import sys
import time

import duckdb

QUERY = """
SELECT model_group,
       count(*)                         AS requests,
       count(DISTINCT litellm_call_id)  AS unique_calls,
       sum(prompt_tokens)               AS prompt_tokens,
       sum(completion_tokens)           AS completion_tokens,
       sum(total_tokens)                AS total_tokens,
       sum(response_cost)               AS cost_usd
FROM read_json(?, format = 'newline_delimited', maximum_object_size = 67108864,
               columns = {model_group: 'VARCHAR', litellm_call_id: 'VARCHAR', prompt_tokens: 'BIGINT',
                          completion_tokens: 'BIGINT', total_tokens: 'BIGINT', response_cost: 'DOUBLE'})
GROUP BY model_group
ORDER BY model_group
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: DuckDB's default, all cores)")
    args = ap.parse_args()
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    t = time.perf_counter()
    rows = con.execute(QUERY, [args.file]).fetchall()
    query_s = time.perf_counter() - t
    cols = ["model_group", "requests", "unique_calls", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"]
    print(json.dumps({"query_s": query_s, "duckdb": duckdb.__version__, "rows": [dict(zip(cols, r)) for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
