"""Writes a large LiteLLM StandardLoggingPayload JSONL file for the report benchmark.

The records are the shared corpus's real LiteLLM 1.108.7 payloads (corpus/litellm/*/standard_logging.jsonl),
replicated until the file reaches the requested size. Each copy gets a fresh litellm_call_id,
response id, trace/session id and timestamps shifted by a whole corpus span, so no two lines are
the same request and sessions do not merge across copies.

    python gen_litellm_log.py --corpus /work/shared/corpus/litellm --mb 300 --out out/litellm-300mb.jsonl
"""

import argparse
import glob
import json
import os
import sys
import uuid


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True, help="folder holding */standard_logging.jsonl")
    ap.add_argument("--mb", type=float, default=300.0, help="target size in MB (10^6 bytes)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    templates = []
    for path in sorted(glob.glob(os.path.join(args.corpus, "*", "standard_logging.jsonl"))):
        with open(path, encoding="utf-8") as f:
            templates.extend(json.loads(line) for line in f if line.strip())
    if not templates:
        print(f"no standard_logging.jsonl under {args.corpus}", file=sys.stderr)
        return 2
    t0 = min(t["startTime"] for t in templates)
    span = max(t["endTime"] for t in templates) - t0 + 60.0

    target = int(args.mb * 1_000_000)
    written = 0
    lines = 0
    copy = 0
    ns = uuid.UUID("6f1d3c8e-0000-4000-8000-000000000000")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        while written < target:
            shift = copy * span
            for t in templates:
                rec = json.loads(json.dumps(t))  # deep copy
                call_id = str(uuid.uuid4())
                rec["litellm_call_id"] = call_id
                new_id = f"chatcmpl-{uuid.uuid4()}"
                rec["id"] = new_id
                if isinstance(rec.get("response"), dict) and "id" in rec["response"]:
                    rec["response"]["id"] = new_id
                # Same session within a copy, a different one across copies.
                old_trace = rec.get("trace_id") or ""
                new_trace = str(uuid.uuid5(ns, f"{old_trace}/{copy}"))
                rec["trace_id"] = new_trace
                md = rec.get("metadata") or {}
                rm = md.get("requester_metadata") or {}
                for k in ("session_id", "trace_id"):
                    if rm.get(k) == old_trace:
                        rm[k] = new_trace
                for hdrs in ((rm.get("headers") or {}), (md.get("requester_custom_headers") or {})):
                    if hdrs.get("x-session-id") == old_trace:
                        hdrs["x-session-id"] = new_trace
                if rec.get("session_id") == old_trace and old_trace:
                    rec["session_id"] = new_trace
                for k in ("startTime", "endTime", "completionStartTime"):
                    if isinstance(rec.get(k), (int, float)):
                        rec[k] = rec[k] + shift
                line = json.dumps(rec, separators=(", ", ": "))
                out.write(line)
                out.write("\n")
                written += len(line.encode("utf-8")) + 1
                lines += 1
                if written >= target:
                    break
            copy += 1
    print(json.dumps({"path": args.out, "bytes": written, "lines": lines, "copies": copy, "templates": len(templates)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
