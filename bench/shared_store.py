"""The shared store's cost on the request path (issue 13): tollgate's added latency with Postgres on
vs SQLite only at 2,000 req/s, side by side in one run, plus the shipper's sustained records/s.

  1. `tollgate mock` (zero delay) is the upstream; a fresh Postgres database `tg_bench_<pid>` is
     created from TOLLGATE_TEST_POSTGRES_URL with psql and dropped at the end (also on failure).
  2. Rounds of three open-loop oha rows (plain ~1 KB chat, `-q RATE --latency-correction`), the same
     method and body as bench/harness.py:
         direct (oha straight to the mock, the baseline) -> tollgate SQLite only -> tollgate Postgres on
     repeated (default 3 rounds: D A B D A B D A B), so drift on the machine hits every row alike.
     Each tollgate row is a fresh `tollgate serve` with a fresh --data-dir (a temp dir), the same
     config and the default --workers; the Postgres row adds `--database-url .../tg_bench_<pid>`.
     added = tollgate's oha percentile minus the same round's direct percentile (p50, p99).
  3. After each Postgres row: waits until /health/readiness shows `store.postgres.backlog == 0` and
     `SELECT count(*) FROM tollgate_records` grew by at least the requests oha saw succeed; fails
     loudly (exit 1, FAILED in the report) if Postgres has fewer after 30 s.
  4. `cargo bench -p tollgate-store --bench shipping` (criterion): the shipper's sustained
     records/s from a SQLite outbox into Postgres; its `thrpt:` middle value is reported.
  5. A Markdown section on stdout and in OUT/shared_store.md; raw results in
     OUT/shared-store/results.json, server logs beside them.

Standard library only (plus bench/harness.py, imported for its oha runner, body, config and
sampling); started by bench/shared_store.sh.
"""

import argparse
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/test"
TARGET_P50_MS = 0.05
TARGET_SHIP = 20_000
DRAIN_LIMIT_S = 30.0
ROWS = ("direct", "sqlite", "postgres")
LABEL = {"direct": "direct to mock", "sqlite": "tollgate, SQLite only", "postgres": "tollgate, Postgres on"}


def log(msg):
    print(f"[shared-store {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Postgres


def psql(url, sql):
    r = subprocess.run(
        ["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, check=False, timeout=60,
    )
    if r.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def with_db(url, name):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(path="/" + name))


def masked(url):
    u = urllib.parse.urlsplit(url)
    if u.password:
        u = u._replace(netloc=u.netloc.replace(":" + u.password + "@", ":***@", 1))
    return urllib.parse.urlunsplit(u)


def pg_count(url):
    if psql(url, "SELECT to_regclass('tollgate_records') IS NOT NULL") != "t":
        return 0
    return int(psql(url, "SELECT count(*) FROM tollgate_records"))


def readiness(base, key):
    req = urllib.request.Request(f"{base}/health/readiness", headers={"authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def drain(base, key, url, before, expected, limit_s=DRAIN_LIMIT_S):
    """Polls until the gateway's Postgres backlog is 0 and tollgate_records holds at least
    `expected` rows more than `before`, or `limit_s` passes. Returns what it saw last."""
    t0 = time.monotonic()
    while True:
        count = pg_count(url)
        pg = (readiness(base, key).get("store") or {}).get("postgres") or {}
        waited = time.monotonic() - t0
        done = pg.get("backlog") == 0 and count - before >= expected
        if done or waited >= limit_s:
            return {"count": count, "added": count - before, "expected": expected, "backlog": pg.get("backlog"),
                    "shipped": pg.get("shipped"), "failures": pg.get("failures"), "connected": pg.get("connected"),
                    "last_error": pg.get("last_error"), "drain_s": waited, "ok": done}
        time.sleep(0.25)


# ---------------------------------------------------------------------------------------------
# CPU beside the servers': Postgres (when it runs here) and the whole machine


def postmaster():
    """The local Postgres server's root process (a `postgres` whose parent is not one), or None."""
    comm = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
                comm[int(d)] = (head.split("(", 1)[1], int(rest.split()[1]))
            except (OSError, IndexError, ValueError):
                pass
    roots = [p for p, (c, pp) in comm.items() if c == "postgres" and comm.get(pp, ("", 0))[0] != "postgres"]
    return min(roots) if roots else None


def machine_ticks():
    """(busy, total) jiffies over all cores from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


class Cpu:
    """Server CPU (H.Sampler: % of one core, process tree) plus the local Postgres's and the
    machine's busy share (% of all cores) over one row."""

    def __init__(self, name, pid):
        self.roots = {name: pid}
        self.name = name
        pm = postmaster()
        if pm:
            self.roots["postgres"] = pm

    def __enter__(self):
        self.s = H.Sampler(self.roots).__enter__()
        self.m0 = machine_ticks()
        return self

    def __exit__(self, *exc):
        m1 = machine_ticks()
        self.s.__exit__(*exc)
        self.server = self.s.cpu[self.name]
        self.rss_mb = self.s.peak[self.name] / 1e6
        self.postgres = self.s.cpu.get("postgres")
        self.machine = (m1[0] - self.m0[0]) / max(m1[1] - self.m0[1], 1) * 100.0
        return False

    def put(self, r):
        r.update(cpu=self.server, pg_cpu=self.postgres, machine_busy=self.machine)


# ---------------------------------------------------------------------------------------------
# rows


def sanity(base, body, key):
    status, _, resp = H.post(f"{base}/v1/chat/completions", body, key)
    if status != 200:
        raise RuntimeError(f"{base}: HTTP {status}: {resp[:300]!r}")


def direct_row(args, ctx):
    H.settle([ctx["mock"].pid])
    with Cpu("mock", ctx["mock"].pid) as c:
        r = H.run_oha(args.oha, f"{ctx['mock_base']}/v1/chat/completions", ctx["body_path"], ctx["key"],
                      args.seconds, args.rate, H.conns_for(args.rate))
    c.put(r)
    return r


def tollgate_row(args, ctx, kind, n):
    pg = kind == "postgres"
    port = H.free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix=f"tg-bench-{kind}-")
    cmd = [args.tollgate, "serve", "--config", ctx["cfg"], "--port", str(port), "--data-dir", data_dir, "--no-watch"]
    if pg:
        cmd += ["--database-url", ctx["db_url"]]
    tg = H.Server(f"tollgate-{kind}", cmd, log_path=os.path.join(ctx["out"], f"tollgate-{kind}-{n}.log"))
    try:
        H.wait_ready(f"{base}/health/liveliness", tg.proc, timeout=60)
        sanity(base, ctx["body"], ctx["key"])
        # The same warm-up for every fresh process (connections to the mock and to Postgres, page cache).
        w = H.run_oha(args.oha, f"{base}/v1/chat/completions", ctx["body_path"], ctx["key"], args.warmup, 300, 32)
        before = None
        if pg:
            # The warm-up's records must be in Postgres before the measured row starts.
            d = drain(base, ctx["key"], ctx["db_url"], ctx["pg_last"], 1 + w["ok"])
            if not d["ok"]:
                raise RuntimeError(f"warm-up records not in Postgres after {DRAIN_LIMIT_S:.0f} s: {d}")
            before = d["count"]
        H.settle([ctx["mock"].pid, tg.pid])
        with Cpu("tg", tg.pid) as c:
            r = H.run_oha(args.oha, f"{base}/v1/chat/completions", ctx["body_path"], ctx["key"],
                          args.seconds, args.rate, H.conns_for(args.rate))
        c.put(r)
        r["rss_mb"] = c.rss_mb
        if pg:
            d = drain(base, ctx["key"], ctx["db_url"], before, r["ok"])
            d["before"] = before
            r["pg"] = d
            ctx["pg_last"] = d["count"]
            line = (f"Postgres check: oha successful {r['ok']:,}, tollgate_records +{d['added']:,} "
                    f"(total {d['count']:,}), backlog {d['backlog']}, after {d['drain_s']:.1f} s")
            if d["ok"]:
                log(line)
            else:
                log("!" * 100)
                log("FAILED " + line + f": Postgres has FEWER records than successful requests after {DRAIN_LIMIT_S:.0f} s "
                    f"(shipper: connected {d['connected']}, failures {d['failures']}, last error {d['last_error']!r})")
                log("!" * 100)
        st = readiness(base, ctx["key"]).get("store") or {}
        r["store"] = {k: st.get(k) for k in ("records_written", "records_failed", "records_dropped", "error")}
        return r
    finally:
        tg.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# shipping bench (criterion)

UNITS = {"elem/s": 1.0, "Kelem/s": 1e3, "Melem/s": 1e6, "Gelem/s": 1e9}


def shipping_bench(args, out):
    env = dict(os.environ, TOLLGATE_TEST_POSTGRES_URL=args.pg_url)
    cmd = ["cargo", "bench", "-p", "tollgate-store", "--bench", "shipping"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=1800)
    text = r.stdout + "\n" + r.stderr
    with open(os.path.join(out, "shipping-bench.log"), "w") as f:
        f.write(text)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr[-2000:]}")
    m = re.search(r"thrpt:\s*\[\s*([\d.]+)\s+(\S+)\s+([\d.]+)\s+(\S+)\s+([\d.]+)\s+(\S+)\s*\]", text)
    if not m:
        raise RuntimeError(f"no thrpt: line in the output of {' '.join(cmd)} (see {out}/shipping-bench.log)")
    vals = [float(m.group(i)) * UNITS[m.group(i + 1)] for i in (1, 3, 5)]
    line = next(ln.strip() for ln in text.splitlines() if "thrpt:" in ln)
    return {"low": vals[0], "mid": vals[1], "high": vals[2], "line": line, "cmd": " ".join(cmd)}


# ---------------------------------------------------------------------------------------------
# Markdown


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def markdown(res):
    a = res["args"]
    fm, fa = H.fmt_ms, H.fmt_added
    o = ["## Shared store (Postgres)\n"]
    o.append(
        f"Machine: {res['nproc']} CPUs (`nproc`) × {res['cpu_model']}, commit `{res['commit']}`, {res['date']}; "
        f"Postgres {res['pg_version']} on the same machine over loopback (fsync {res['pg_fsync']}, "
        f"synchronous_commit {res['pg_sync']}); load average before: {res['load_before']}, after: {res['load_after']}. "
        "Load generator, mock, tollgate and Postgres share these cores.\n"
    )
    o.append("```sh")
    o.append("bench/shared_store.sh   # builds, then runs bench/shared_store.py; what it ran:")
    o.append(f"psql {masked(a['pg_url'])} -c 'CREATE DATABASE {res['db_name']}'   # DROP DATABASE … WITH (FORCE) at the end")
    o.append("tollgate mock --port MOCK")
    o.append("tollgate serve --config config.yaml --port PORT --data-dir $(mktemp -d) --no-watch"
             "                      # SQLite only (fresh process and data dir per row)")
    o.append(f"tollgate serve --config config.yaml --port PORT --data-dir $(mktemp -d) --no-watch --database-url {masked(res['db_url'])}"
             "   # Postgres on")
    o.append(f"oha http://127.0.0.1:PORT/v1/chat/completions -z {a['seconds']:g}s -q {a['rate']} --latency-correction "
             f"-c {res['conns']} -m POST -H 'content-type: application/json' -H 'authorization: Bearer KEY' "
             "-D body-plain-1k.json --no-tui --output-format json   # PORT = MOCK for the direct row")
    if res.get("shipping"):
        o.append(f"TOLLGATE_TEST_POSTGRES_URL={masked(a['pg_url'])} {res['shipping']['cmd']}")
    o.append("```\n")
    o.append(
        f"config.yaml (as bench/harness.py writes it): one model group `{H.MODEL}` on the mock, `general_settings.master_key`, "
        f"`global_max_parallel_requests: {H.CAP}`; `--workers` default (one per core). Body: plain (non-streamed) chat "
        f"request of {res['body_bytes']:,} bytes. Each tollgate row gets a {a['warmup']:g} s warm-up at 300 req/s first "
        "(for Postgres on, its records are shipped before the row starts). Rounds run direct → SQLite only → Postgres on, "
        f"{a['rounds']} times; **added** = tollgate's oha percentile minus the same round's direct percentile "
        "(latency to the end of the response, timed from each request's scheduled start).\n"
    )
    o.append("| row | round | achieved req/s | errors | p50 ms | p99 ms | added p50 ms | added p99 ms | server CPU % | Postgres CPU % | machine busy % |")
    o.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    pct = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
    for kind in ROWS:
        runs = [rd[kind] for rd in res["rounds"]]
        for i, r in enumerate(runs, 1):
            o.append(f"| {LABEL[kind]} | {i} | {r['achieved']:,.0f} | {r['errors']} | {fm(r['p50'])} | {fm(r['p99'])} | "
                     f"{fa(r.get('added_p50')) if kind != 'direct' else '–'} | {fa(r.get('added_p99')) if kind != 'direct' else '–'} | "
                     f"{pct(r['cpu'])} | {pct(r.get('pg_cpu'))} | {pct(r.get('machine_busy'))} |")
        m = res["median"][kind]
        o.append(f"| **{LABEL[kind]}** | **median** | | | **{fm(m['p50'])}** | **{fm(m['p99'])}** | "
                 f"**{fa(m['added_p50']) if kind != 'direct' else '–'}** | **{fa(m['added_p99']) if kind != 'direct' else '–'}** | | | |")
    o.append("")
    o.append("CPU over each row from /proc: *server* = the mock's for direct rows, tollgate's alone for the others, and "
             "*Postgres* = the local Postgres server and its backends, both in % of one core; *machine busy* = all "
             f"{res['nproc']} cores' non-idle time in % of their total (everything running, the load generator included).\n")
    d = res["diff"]
    o.append(
        f"**Postgres on − SQLite only, added p50 (medians): {fa(d['p50'])} ms** against the target of no worse than "
        f"+{TARGET_P50_MS} ms: **{'met' if d['met'] else 'not met'}**. Per round: "
        + ", ".join(f"{fa(x)}" for x in d["per_round_p50"])
        + f" ms (their median {fa(d['per_round_p50_median'])} ms). Added p99, the same difference: {fa(d['p99'])} ms.\n"
    )
    s = res.get("shipping")
    if s:
        o.append(
            f"**Shipping throughput** (criterion, `{s['cmd']}`: records committed to a fresh SQLite outbox, "
            f"timed until all are in Postgres): `{s['line']}` → **{s['mid']:,.0f} records/s** (middle value) against "
            f"the ≥ {TARGET_SHIP:,} target: **{'met' if s['mid'] >= TARGET_SHIP else 'not met'}**. While serving, shipping "
            f"is bounded by the request rate ({a['rate']:,} req/s); after each Postgres-on row the backlog was empty "
            "in the time shown below.\n"
        )
    o.append("**Record count** (Postgres on; after each row, `/health/readiness` `store.postgres.backlog` and "
             f"`SELECT count(*) FROM tollgate_records`, polled up to {DRAIN_LIMIT_S:.0f} s):\n")
    o.append("| round | oha successful | tollgate_records added | total in table | backlog | drained after | check |")
    o.append("|---:|---:|---:|---:|---:|---:|---|")
    for i, rd in enumerate(res["rounds"], 1):
        p = rd["postgres"]["pg"]
        o.append(f"| {i} | {rd['postgres']['ok']:,} | {p['added']:,} | {p['count']:,} | {p['backlog']} | {p['drain_s']:.1f} s | "
                 f"{'ok' if p['ok'] else '**FAILED: Postgres has fewer**'} |")
    o.append("")
    return "\n".join(o)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tollgate", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--out-dir", required=True, help="shared_store.md goes here; logs and results.json in OUT/shared-store")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "10")))
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds at 300 req/s before each tollgate row")
    ap.add_argument("--pg-url", default=os.environ.get("TOLLGATE_TEST_POSTGRES_URL") or DEFAULT_PG)
    ap.add_argument("--skip-shipping", action="store_true", help="leave out the criterion shipping bench")
    args = ap.parse_args()
    args.tollgate, args.oha = os.path.abspath(args.tollgate), os.path.abspath(args.oha)
    args.seconds = int(args.seconds) if args.seconds == int(args.seconds) else args.seconds
    out_md = os.path.join(os.path.abspath(args.out_dir), "shared_store.md")
    out = os.path.join(os.path.abspath(args.out_dir), "shared-store")
    os.makedirs(out, exist_ok=True)

    # SIGTERM as well as Ctrl-C unwinds through the finally below (servers stopped, database dropped).
    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass

    key = "sk-bench-" + secrets.token_hex(24)
    mock_port = H.free_port()
    cfg = os.path.join(out, "config.yaml")
    with open(cfg, "w") as f:
        f.write(
            f"model_list:\n  - model_name: {H.MODEL}\n    litellm_params:\n      model: deepseek/deepseek-v3.2\n"
            f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-upstream-not-used\n"
            f"general_settings:\n  master_key: {key}\n  global_max_parallel_requests: {H.CAP}\n"
        )
    body = H.make_body(1024, False)
    body_path = os.path.join(out, "body-plain-1k.json")
    with open(body_path, "wb") as f:
        f.write(body)

    db_name = f"tg_bench_{os.getpid()}"
    db_url = with_db(args.pg_url, db_name)
    ctx = {"out": out, "cfg": cfg, "key": key, "body": body, "body_path": body_path, "db_url": db_url,
           "mock_base": f"http://127.0.0.1:{mock_port}", "pg_last": 0}
    res = {
        "args": {"seconds": args.seconds, "rate": args.rate, "rounds": args.rounds, "warmup": args.warmup,
                 "pg_url": args.pg_url},
        "nproc": H.sh(["nproc"]), "cpu_model": cpu_model, "commit": H.machine_commit(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "db_name": db_name, "db_url": db_url, "conns": H.conns_for(args.rate), "body_bytes": len(body),
        "oha": H.sh([args.oha, "--version"]), "rounds": [],
    }
    failed = []
    created = False
    mock = None
    t_start = time.monotonic()
    try:
        res["pg_version"] = psql(args.pg_url, "SHOW server_version")
        res["pg_fsync"] = psql(args.pg_url, "SHOW fsync")
        res["pg_sync"] = psql(args.pg_url, "SHOW synchronous_commit")
        psql(args.pg_url, f"CREATE DATABASE {db_name}")
        created = True
        log(f"created database {db_name}")
        mock = H.Server("mock", [args.tollgate, "mock", "--port", str(mock_port)], log_path=os.path.join(out, "mock.log"))
        ctx["mock"] = mock
        H.wait_ready(f"{ctx['mock_base']}/mock/stats", mock.proc, timeout=30)
        sanity(ctx["mock_base"], body, key)
        H.run_oha(args.oha, f"{ctx['mock_base']}/v1/chat/completions", body_path, key, args.warmup, 300, 32)
        res["load_before"] = " ".join(open("/proc/loadavg").read().split()[:3])
        for i in range(1, args.rounds + 1):
            rd = {}
            for kind in ROWS:
                r = direct_row(args, ctx) if kind == "direct" else tollgate_row(args, ctx, kind, i)
                if kind != "direct":
                    for q in ("p50", "p99"):
                        if r.get(q) is not None and rd["direct"].get(q) is not None:
                            r[f"added_{q}"] = r[q] - rd["direct"][q]
                    if kind == "postgres" and not r["pg"]["ok"]:
                        failed.append(i)
                rd[kind] = r
                log(f"round {i} {kind}: achieved {r['achieved']:.0f}/s errors {r['errors']} p50 {H.fmt_ms(r['p50'])} "
                    f"p99 {H.fmt_ms(r['p99'])}"
                    + (f" added p50 {H.fmt_added(r.get('added_p50'))} p99 {H.fmt_added(r.get('added_p99'))}" if kind != "direct" else "")
                    + f" cpu {r['cpu']:.0f}% postgres cpu {r['pg_cpu'] or 0:.0f}% machine busy {r['machine_busy']:.0f}%")
            res["rounds"].append(rd)
        res["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
        res["load_s"] = time.monotonic() - t_start
        mock.stop()
        mock = None
        if not args.skip_shipping:
            log("criterion: cargo bench -p tollgate-store --bench shipping")
            res["shipping"] = shipping_bench(args, out)
            log(f"shipping: {res['shipping']['line']}")
    finally:
        if mock is not None:
            mock.stop()
        if created:
            try:
                psql(args.pg_url, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
                log(f"dropped database {db_name}")
            except Exception as e:  # noqa: BLE001 - report, do not hide the original error
                log(f"could not drop database {db_name}: {e}")

    res["median"] = {
        kind: {q: med([rd[kind].get(q) for rd in res["rounds"]]) for q in ("p50", "p99", "added_p50", "added_p99")}
        for kind in ROWS
    }
    mp, ms_ = res["median"]["postgres"], res["median"]["sqlite"]
    per_round = [rd["postgres"]["added_p50"] - rd["sqlite"]["added_p50"] for rd in res["rounds"]]
    res["diff"] = {
        "p50": mp["added_p50"] - ms_["added_p50"],
        "p99": mp["added_p99"] - ms_["added_p99"],
        "per_round_p50": per_round,
        "per_round_p50_median": statistics.median(per_round),
    }
    res["diff"]["met"] = res["diff"]["p50"] <= TARGET_P50_MS
    res["failed_rounds"] = failed
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = markdown(res)
    with open(out_md, "w") as f:
        f.write(md + "\n")
    print(md, flush=True)
    log(f"wrote {out_md} ({(time.monotonic() - t_start) / 60:.1f} min)")
    if failed:
        log(f"FAILED: Postgres had fewer records than oha's successful requests after {DRAIN_LIMIT_S:.0f} s in round(s) {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
