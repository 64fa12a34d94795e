"""How fast the dashboard's pages answer on a big store (issue 16: every page under 300 ms with
1,000,000 records). Standard library only.

    python3 bench/dashboard_pages.py BIN [RECORDS] [REPEATS]     # e.g. target/release/tollgate 1000000 3

1. One real request through `tollgate serve` in front of `tollgate mock` gives a record written by
   the gateway itself; it is the template.
2. RECORDS copies of it, spread over the last 30 days (ids, times, tokens, cost, cache state, keys
   and models varied), go into the gateway's SQLite with the columns its writer fills.
3. The gateway starts again on that store; the master key signs in; each page is visited once
   (timed; a report-backed page may answer "being computed" and reload itself, so it is then
   polled until its report is there, which is timed too), then fetched REPEATS times, and the
   median and the slowest are printed as a Markdown table, with the gateway's peak RSS.
"""

import http.cookiejar
import json
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

KEY = "sk-bench-" + os.urandom(8).hex()
MODELS = ["deepseek-v3.2", "gemini-2.5-flash", "minimax-m2.1", "grok-4.1-fast"]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the gateway exited early ({proc.returncode})")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{url} not ready after {timeout} s")


def serve(binary: str, work: str, port: int) -> subprocess.Popen:
    log = open(os.path.join(work, f"serve-{port}.log"), "w")
    proc = subprocess.Popen(
        [binary, "serve", "--config", os.path.join(work, "config.yaml"), "--port", str(port),
         "--data-dir", os.path.join(work, "data"), "--no-watch"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TOLLGATE_MASTER_KEY": KEY},
    )
    wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def template_record(binary: str, work: str) -> dict:
    mock_port, port = free_port(), free_port()
    groups = "".join(
        f"  - model_name: {m}\n    litellm_params: {{model: deepseek/deepseek-v3.2, api_base: 'http://127.0.0.1:{mock_port}/v1', api_key: k}}\n"
        for m in MODELS
    )
    with open(os.path.join(work, "config.yaml"), "w") as f:
        f.write(f"model_list:\n{groups}general_settings:\n  master_key: os.environ/TOLLGATE_MASTER_KEY\n")
    mock = subprocess.Popen([binary, "mock", "--port", str(mock_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        gw = serve(binary, work, port)
        body = json.dumps({"model": MODELS[0], "messages": [{"role": "user", "content": "Fix the failing test in parser.rs"}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()
        stop(gw)
    finally:
        mock.terminate()
    db = sqlite3.connect(os.path.join(work, "data", "tollgate.sqlite"))
    (text,) = db.execute("SELECT json FROM records ORDER BY rowid DESC LIMIT 1").fetchone()
    db.close()
    return json.loads(text)


def fill(work: str, template: dict, n: int) -> float:
    """Inserts n records over the last 30 days; returns the seconds it took."""
    t0 = time.time()
    db = sqlite3.connect(os.path.join(work, "data", "tollgate.sqlite"))
    db.execute("PRAGMA synchronous = OFF")
    now = datetime.now(timezone.utc)
    rng = random.Random(7)
    keys = [None] + [f"{i:064x}" for i in range(1, 20)]
    batch = []
    for i in range(n):
        r = dict(template)
        start = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        r["request_id"] = f"bench-{i:08d}"
        r["trace_id"] = r["request_id"]
        r["start_time"] = start.isoformat().replace("+00:00", "Z")
        r["end_time"] = (start + timedelta(milliseconds=800)).isoformat().replace("+00:00", "Z")
        r["model_group"] = MODELS[i % len(MODELS)]
        r["prompt_tokens"] = 200 + i % 5000
        r["completion_tokens"] = 50 + i % 700
        r["cost_usd"] = (r["prompt_tokens"] * 2.8e-7 + r["completion_tokens"] * 4e-7)
        r["cache"] = ["off", "miss", "hit"][i % 3]
        r["key_hash"] = keys[i % len(keys)]
        r["status"] = "failure" if i % 50 == 0 else "success"
        batch.append((
            r["request_id"], r["trace_id"], start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), r["model_group"],
            r.get("model"), r["status"], r["cost_usd"], json.dumps(r), 0, None, r.get("session_id"),
            r.get("key_alias"), None, r["key_hash"], r["cache"], r.get("user_id"), r.get("team_id"),
        ))
        if len(batch) == 20000:
            insert(db, batch)
            batch.clear()
    insert(db, batch)
    db.close()
    return time.time() - t0


def insert(db: sqlite3.Connection, rows: list) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO records (request_id, trace_id, start_time, model_group, model, status, cost_usd, json,"
        " attempt, instance_id, session_id, key_alias, workflow, key_hash, cache, user_id, team_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.commit()


def signed_in_opener(base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(f"{base}/ui/signin").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"csrf": csrf, "key": KEY}).encode()
    opener.open(f"{base}/ui/signin", data=data).read()
    return opener


def fetch(opener: urllib.request.OpenerDirector, url: str) -> tuple:
    """One page: (milliseconds, its text)."""
    t = time.perf_counter()
    with opener.open(url, timeout=600) as resp:
        text = resp.read().decode()
        if resp.status != 200:
            sys.exit(f"{url}: HTTP {resp.status}")
    return (time.perf_counter() - t) * 1000, text


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    binary = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    work = tempfile.mkdtemp(prefix="tollgate-dash-")
    template = template_record(binary, work)
    took = fill(work, template, n)
    size_mb = os.path.getsize(os.path.join(work, "data", "tollgate.sqlite")) / 1e6
    print(f"{n:,} records inserted in {took:.0f} s; store {size_mb:,.0f} MB ({work})", file=sys.stderr)
    port = free_port()
    gw = serve(binary, work, port)
    base = f"http://127.0.0.1:{port}"
    try:
        opener = signed_in_opener(base)
        one_key = f"{1:064x}"
        pages = [
            ("overview, 1 h", "/ui/overview?range=1h"),
            ("overview, 24 h", "/ui/overview?range=24h"),
            ("overview, 7 d", "/ui/overview?range=7d"),
            ("overview, 30 d", "/ui/overview?range=30d"),
            ("logs, newest", "/ui/logs"),
            ("logs, one key", f"/ui/logs?key={one_key}"),
            ("logs, cache hits", "/ui/logs?cache=hit"),
            ("logs, failures", "/ui/logs?status=failure"),
            ("a request's page", "/ui/logs/bench-00000123"),
            ("models", "/ui/models"),
            ("keys", "/ui/keys"),
            ("report, 24 h", "/ui/report?range=24h"),
        ]
        print("| page | first visit ms | report ready after s | then: median ms | slowest ms |")
        print("|---|---:|---:|---:|---:|")
        for name, path in pages:
            # The first visit of a report-backed page may answer "being computed" (the page
            # reloads itself); it is timed, then polled until the report is there.
            first, html = fetch(opener, base + path)
            ready = "–"
            if 'data-building="true"' in html:
                t0 = time.perf_counter()
                while 'data-building="true"' in html:
                    time.sleep(0.1)
                    _, html = fetch(opener, base + path)
                ready = f"{time.perf_counter() - t0 + first / 1000:,.1f}"
            times = [fetch(opener, base + path)[0] for _ in range(repeats)]
            print(f"| {name} | {first:,.0f} | {ready} | {statistics.median(times):,.0f} | {max(times):,.0f} |", flush=True)
        print(f"\ngateway peak RSS (VmHWM): {peak_rss_mb(gw.pid):,.0f} MB", flush=True)
    finally:
        stop(gw)


if __name__ == "__main__":
    main()
