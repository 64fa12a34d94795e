"""Admission's cost end to end (issue 14): what a virtual key with budgets and rate limits adds to a
request through tollgate at 1,000 req/s, against the master key, with the limits counted in this
process and in Redis.

  1. `tollgate mock` (zero delay) is the upstream. Rows, each an open-loop oha run of plain ~1 KB
     chat requests (`-q RATE --latency-correction`, the method and body of bench/harness.py):
       direct    oha straight to the mock: the baseline.
       master    tollgate with the master key: no admission work beyond the key compare.
       vk_local  tollgate with a virtual key from `/key/generate` that has max_budget (large),
                 budget_duration, rpm_limit, tpm_limit and max_parallel_requests (large enough
                 never to refuse), in a team (`/team/new`, `team_id` on the key) with its own
                 max_budget and budget_duration: every request authenticates the key (SHA-256,
                 the 1 s key cache, its owners), takes its rate limits (counted in this process),
                 holds its estimated cost on two scopes (key and team: one transaction of
                 conditional UPDATEs in the SQLite key store) and settles the real cost when it ends.
       vk_redis  the same with the rate limits counted in Redis: `router_settings.redis_url` set
                 to the real Redis at TOLLGATE_TEST_REDIS_URL (default redis://127.0.0.1:6379/)
                 and a `tollgate_settings.rate_limit_prefix` unique to this run.
     Interleaved in rounds (default 3: D M L R D M L R D M L R) so drift on the machine hits every
     row alike. Each tollgate row is a fresh `tollgate serve` with a fresh --data-dir (the team and
     key are made anew in it), a sanity request and a 3 s warm-up at 300 req/s with the row's key.
  2. admission = the row's oha percentile minus the same percentile of the master-key row (p50 and
     p99), from the medians over rounds and per round; targets (issue 14): ≤ 0.05 ms p50 in
     process, ≤ 0.3 ms p50 with Redis. added = a tollgate row's percentile minus the same
     round's direct one.
  3. Checks, each failing the run loudly (exit 1, FAILED in the report): every row has 0 non-2xx
     answers and 0 transport errors (a refused request would make the numbers meaningless); a
     virtual-key row's sanity answer carries the key's `x-ratelimit-key-*` headers and readiness
     says where limits were counted (`local`, or `redis` with 0 requests counted locally); the
     Redis row left its counters under the prefix; after the gateway stops (spend written at
     shutdown), the key's and the team's spend in SQLite equal the sum of the records' costs and
     nothing is left reserved (every hold was settled).
  4. A Markdown section on stdout and in OUT/admission.md; raw results in
     OUT/admission/results.json, configs, bodies and server logs beside them. The run's Redis keys
     (under its prefix) are deleted at the end, also on failure.

Before starting it waits (up to --load-wait s) for the 1-minute load average to fall under
--max-load, since other builds on a 2-core machine show up in every percentile; the load at the
start of each row is in the report.

Standard library only (plus bench/harness.py, imported for its oha runner, body, config and
sampling; Redis is spoken to over a socket in RESP); started by bench/admission.sh.
"""

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DEFAULT_REDIS = "redis://127.0.0.1:6379/"
ROWS = ("direct", "master", "vk_local", "vk_redis")
LABEL = {
    "direct": "direct to mock",
    "master": "master key",
    "vk_local": "virtual key, in-process",
    "vk_redis": "virtual key, Redis",
}
# Issue 14's "Done when": admission adds at most this much p50 (ms).
TARGET_P50_MS = {"vk_local": 0.05, "vk_redis": 0.3}
# Budgets and limits far above what a run can use (13 s at 1,000 req/s is ~13,000 requests of ~300
# tokens and ~$0.0002 each), so no request is refused and every one takes the full admit path.
BUDGET_USD = 1_000_000
BUDGET_DURATION = "30d"
RPM = 1_000_000
TPM = 100_000_000
PARALLEL = 1_000
TEAM = "bench-team"
ALIAS = "bench-key"


def log(msg):
    print(f"[admission {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def wait_for_quiet(max_load, limit_s):
    """Waits until the 1-minute load average is under `max_load`, at most `limit_s`. Returns
    (load average then, seconds waited, whether it got there)."""
    t0 = time.monotonic()
    while True:
        la = loadavg()
        if float(la.split()[0]) < max_load:
            return la, time.monotonic() - t0, True
        if time.monotonic() - t0 >= limit_s:
            return la, time.monotonic() - t0, False
        log(f"load average {la}: waiting for the 1-minute figure to fall under {max_load} "
            f"({time.monotonic() - t0:.0f}/{limit_s:.0f} s)")
        time.sleep(15)


# ---------------------------------------------------------------------------------------------
# Redis, in RESP over a socket (enough for PING, INFO, EXISTS, SCAN and DEL)


class Redis:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "redis":
            raise RuntimeError(f"{masked(url)}: only redis:// URLs are supported here")
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=10)
        self.f = self.sock.makefile("rb")
        if u.password:
            user = [urllib.parse.unquote(u.username)] if u.username else []
            self.cmd("AUTH", *user, urllib.parse.unquote(u.password))
        db = u.path.strip("/")
        if db:
            self.cmd("SELECT", db)

    def cmd(self, *args):
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("Redis closed the connection")
        t, rest = line[:1], line[1:].rstrip(b"\r\n")
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(f"Redis: {rest.decode()}")
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError(f"Redis: unexpected reply {line!r}")

    def keys_under(self, prefix):
        found, cursor = [], "0"
        while True:
            cursor, batch = self.cmd("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", 1000)
            found.extend(batch)
            if cursor == "0":
                return found

    def close(self):
        self.sock.close()


def masked(url):
    u = urllib.parse.urlsplit(url)
    if u.password:
        u = u._replace(netloc=u.netloc.replace(":" + u.password + "@", ":***@", 1))
    return urllib.parse.urlunsplit(u)


# ---------------------------------------------------------------------------------------------
# CPU: the server's (H.Sampler, % of one core) and the whole machine's busy share


def machine_ticks():
    """(busy, total) jiffies over all cores from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


class Cpu:
    def __init__(self, name, pid):
        self.name, self.roots = name, {name: pid}

    def __enter__(self):
        self.s = H.Sampler(self.roots).__enter__()
        self.m0 = machine_ticks()
        return self

    def __exit__(self, *exc):
        m1 = machine_ticks()
        self.s.__exit__(*exc)
        self.server = self.s.cpu[self.name]
        self.rss_mb = self.s.peak[self.name] / 1e6
        self.machine = (m1[0] - self.m0[0]) / max(m1[1] - self.m0[1], 1) * 100.0
        return False


# ---------------------------------------------------------------------------------------------
# the management API


def api(base, master, path, doc):
    req = urllib.request.Request(
        f"{base}{path}", data=json.dumps(doc).encode(), method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {master}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"POST {path}: HTTP {e.code}: {e.read()[:500]!r}") from None


def make_key(base, master):
    """The team and the virtual key of a virtual-key row: (raw key, token)."""
    api(base, master, "/team/new", {"team_id": TEAM, "max_budget": BUDGET_USD, "budget_duration": BUDGET_DURATION})
    k = api(base, master, "/key/generate", {
        "key_alias": ALIAS, "team_id": TEAM, "max_budget": BUDGET_USD, "budget_duration": BUDGET_DURATION,
        "rpm_limit": RPM, "tpm_limit": TPM, "max_parallel_requests": PARALLEL,
    })
    token = k.get("token")
    if not (k.get("key") and token):
        raise RuntimeError(f"/key/generate answered without key or token: {k}")
    return k["key"], token


def readiness(base, key):
    req = urllib.request.Request(f"{base}/health/readiness", headers={"authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def ledger(data_dir, token):
    """What the SQLite store holds once the gateway has stopped: the key's and the team's spend and
    reserved, and the records' count and summed cost."""
    db = sqlite3.connect(os.path.join(data_dir, "tollgate.sqlite"))
    try:
        key = db.execute("SELECT spend, reserved FROM tollgate_keys WHERE token = ?", (token,)).fetchone()
        team = db.execute("SELECT spend, reserved FROM tollgate_spend WHERE scope = 'team' AND id = ?", (TEAM,)).fetchone()
        n, cost = db.execute("SELECT count(*), coalesce(sum(cost_usd), 0) FROM records").fetchone()
    finally:
        db.close()
    key, team = key or (0.0, 0.0), team or (0.0, 0.0)
    return {"key_spend": key[0], "key_reserved": key[1], "team_spend": team[0], "team_reserved": team[1],
            "records": n, "records_cost": cost}


# ---------------------------------------------------------------------------------------------
# rows


def sanity(base, body, key, want_limit_headers):
    try:
        status, headers, resp = H.post(f"{base}/v1/chat/completions", body, key)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{base}: HTTP {e.code}: {e.read()[:300]!r}") from None
    if status != 200:
        raise RuntimeError(f"{base}: HTTP {status}: {resp[:300]!r}")
    if want_limit_headers:
        lower = {k.lower(): v for k, v in headers.items()}
        if "x-ratelimit-key-remaining-requests" not in lower or "x-litellm-key-max-budget" not in lower:
            raise RuntimeError(f"{base}: a virtual key's answer lacks its rate-limit or budget headers: {sorted(lower)}")


def direct_row(args, ctx):
    H.settle([ctx["mock"].pid])
    load = loadavg()
    with Cpu("mock", ctx["mock"].pid) as c:
        r = H.run_oha(args.oha, f"{ctx['mock_base']}/v1/chat/completions", ctx["body_path"], ctx["master"],
                      args.seconds, args.rate, H.conns_for(args.rate))
    r.update(cpu=c.server, machine_busy=c.machine, load=load)
    return r


def tollgate_row(args, ctx, kind, n):
    port = H.free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix=f"tg-bench-{kind}-")
    cfg = ctx["cfg_redis"] if kind == "vk_redis" else ctx["cfg"]
    cmd = [args.tollgate, "serve", "--config", cfg, "--port", str(port), "--data-dir", data_dir, "--no-watch"]
    tg = H.Server(f"tollgate-{kind}", cmd, log_path=os.path.join(ctx["out"], f"tollgate-{kind}-{n}.log"))
    checks = []
    try:
        H.wait_ready(f"{base}/health/liveliness", tg.proc, timeout=60)
        vk = kind != "master"
        key, token = make_key(base, ctx["master"]) if vk else (ctx["master"], None)
        sanity(base, ctx["body"], key, vk)
        # The same warm-up for every fresh process, with the row's key (connections to the mock
        # and to Redis, the key cache, SQLite pages).
        H.run_oha(args.oha, f"{base}/v1/chat/completions", ctx["body_path"], key, args.warmup, 300, 32)
        H.settle([ctx["mock"].pid, tg.pid])
        load = loadavg()
        with Cpu("tg", tg.pid) as c:
            r = H.run_oha(args.oha, f"{base}/v1/chat/completions", ctx["body_path"], key,
                          args.seconds, args.rate, H.conns_for(args.rate))
        r.update(cpu=c.server, machine_busy=c.machine, rss_mb=c.rss_mb, load=load)
        ready = readiness(base, ctx["master"])
        r["rate_limits"] = ready.get("rate_limits")
        r["rate_limits_redis"] = ready.get("rate_limits_redis")
        if vk:
            want = "redis" if kind == "vk_redis" else "local"
            checks.append((f"limits counted in {want}", r["rate_limits"] == want, f"readiness rate_limits: {r['rate_limits']}"))
        if kind == "vk_redis":
            rr = r["rate_limits_redis"] or {}
            checks.append(("0 requests counted locally", rr.get("counted_locally") == 0 and rr.get("state") == "closed",
                           f"circuit {rr.get('state')}, counted locally {rr.get('counted_locally')}, "
                           f"last error {rr.get('last_error')!r}"))
            redis = Redis(args.redis_url)
            try:
                present = redis.cmd("EXISTS", f"{ctx['prefix']}:key:{token}:rpm", f"{ctx['prefix']}:key:{token}:tpm")
            finally:
                redis.close()
            checks.append(("the key's rpm and tpm counters in Redis", present == 2,
                           f"{present} of 2 under {ctx['prefix']}:key:<token>"))
    finally:
        tg.stop()
    try:
        if kind != "master":
            # Stopped, so the spend gathered in memory has been written (at shutdown).
            led = ledger(data_dir, token)
            r["ledger"] = led
            tol = 1e-9 + 1e-6 * led["records_cost"]
            checks.append(("spend settled on key and team (= the records' cost), nothing left reserved",
                           led["records_cost"] > 0
                           and abs(led["key_spend"] - led["records_cost"]) <= tol
                           and abs(led["team_spend"] - led["records_cost"]) <= tol
                           and abs(led["key_reserved"]) <= tol and abs(led["team_reserved"]) <= tol,
                           f"{led['records']:,} records costing ${led['records_cost']:.6f}; key spend ${led['key_spend']:.6f} "
                           f"reserved ${led['key_reserved']:.9f}; team spend ${led['team_spend']:.6f} "
                           f"reserved ${led['team_reserved']:.9f}"))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    r["checks"] = [{"what": w, "ok": bool(ok), "seen": seen} for w, ok, seen in checks]
    return r


# ---------------------------------------------------------------------------------------------
# Markdown


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def markdown(res):
    a = res["args"]
    fm, fa = H.fmt_ms, H.fmt_added
    o = ["## Admission (virtual keys, budgets, rate limits)\n"]
    o.append(
        f"Machine: {res['nproc']} CPUs (`nproc`) × {res['cpu_model']}, commit `{res['commit']}`, {res['date']}; "
        f"Redis {res['redis_version']} on the same machine over loopback; load average when the run started: "
        f"{res['load_before']} (after waiting {res['load_wait_s']:.0f} s for the 1-minute figure to fall under "
        f"{a['max_load']:g}{'' if res['load_quiet'] else ': it did not, so the run went ahead'}), after: {res['load_after']}. "
        "Load generator, mock, tollgate and Redis share these cores.\n"
    )
    o.append("```sh")
    o.append("bench/admission.sh   # builds, then runs bench/admission.py; what it ran:")
    o.append("tollgate mock --port MOCK")
    o.append("tollgate serve --config config.yaml --port PORT --data-dir $(mktemp -d) --no-watch         # master key and virtual key, in-process")
    o.append("tollgate serve --config config-redis.yaml --port PORT --data-dir $(mktemp -d) --no-watch   # virtual key, Redis")
    o.append(f"curl $TG/team/new -d '{{\"team_id\": \"{TEAM}\", \"max_budget\": {BUDGET_USD}, \"budget_duration\": \"{BUDGET_DURATION}\"}}'   # virtual-key rows, as the master key")
    o.append(f"curl $TG/key/generate -d '{{\"key_alias\": \"{ALIAS}\", \"team_id\": \"{TEAM}\", \"max_budget\": {BUDGET_USD}, "
             f"\"budget_duration\": \"{BUDGET_DURATION}\", \"rpm_limit\": {RPM}, \"tpm_limit\": {TPM}, \"max_parallel_requests\": {PARALLEL}}}'")
    o.append(f"oha http://127.0.0.1:PORT/v1/chat/completions -z {a['seconds']:g}s -q {a['rate']} --latency-correction "
             f"-c {res['conns']} -m POST -H 'content-type: application/json' -H 'authorization: Bearer KEY' "
             "-D body-plain-1k.json --no-tui --output-format json   # PORT = MOCK for the direct row; KEY = master or virtual key")
    o.append("```\n")
    o.append(
        f"config.yaml (as bench/harness.py writes it): one model group `{H.MODEL}` on the mock, `general_settings.master_key`, "
        f"`global_max_parallel_requests: {H.CAP}`; config-redis.yaml adds `router_settings.redis_url: {masked(a['redis_url'])}` "
        f"and `tollgate_settings.rate_limit_prefix: {res['prefix']}` (this run's; its keys are deleted at the end). "
        f"`--workers` default (one per core). Body: plain (non-streamed) chat request of {res['body_bytes']:,} bytes. "
        "Each tollgate row is a fresh process and data dir (team and key made anew), one sanity request and a "
        f"{a['warmup']:g} s warm-up at 300 req/s with the row's key. Rounds run direct → master key → virtual key in "
        f"process → virtual key with Redis, {a['rounds']} times. The virtual key: budget and limits far above what a run uses, so "
        "every request authenticates it (SHA-256, 1 s key cache, its team), takes its rpm/tpm/parallel limits, holds its "
        "estimated cost on the key and the team (one transaction in the SQLite key store) and settles its cost at the end. "
        "Latency is oha's, to the end of the response, timed from each request's scheduled start; "
        "**admission** = the row's percentile minus the master-key row's, **added** = minus the same round's direct row's.\n"
    )
    o.append("| row | round | load avg (1 min) | achieved req/s | 2xx | non-2xx / errors | p50 ms | p99 ms | added p50 ms | "
             "admission p50 ms | admission p99 ms | server CPU % | machine busy % |")
    o.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    pct = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
    for kind in ROWS:
        for i, rd in enumerate(res["rounds"], 1):
            r = rd[kind]
            tg = kind != "direct"
            vk = kind.startswith("vk")
            o.append(f"| {LABEL[kind]} | {i} | {r['load'].split()[0]} | {r['achieved']:,.0f} | {r['ok']:,} | {r['errors']} | "
                     f"{fm(r['p50'])} | {fm(r['p99'])} | {fa(r.get('added_p50')) if tg else '–'} | "
                     f"{fa(r.get('adm_p50')) if vk else '–'} | {fa(r.get('adm_p99')) if vk else '–'} | "
                     f"{pct(r['cpu'])} | {pct(r['machine_busy'])} |")
        m = res["median"][kind]
        tg = kind != "direct"
        vk = kind.startswith("vk")
        o.append(f"| **{LABEL[kind]}** | **median** | | | | | **{fm(m['p50'])}** | **{fm(m['p99'])}** | "
                 f"{'**' + fa(m['added_p50']) + '**' if tg else '–'} | "
                 f"{'**' + fa(res['admission'][kind]['p50']) + '**' if vk else '–'} | "
                 f"{'**' + fa(res['admission'][kind]['p99']) + '**' if vk else '–'} | | |")
    o.append("")
    o.append("*2xx* = answers oha counted 200; *non-2xx / errors* = every other status plus transport errors (requests still "
             "in flight at the end of the row are not counted). CPU over each row from /proc: *server* = the mock's for "
             "direct rows, tollgate's for the others, in % of one core; *machine busy* = all "
             f"{res['nproc']} cores' non-idle time in % of their total (the load generator included). Row medians are "
             "each column's median over the rounds; admission in the median row is median(row) − median(master key).\n")
    for kind in ("vk_local", "vk_redis"):
        adm = res["admission"][kind]
        o.append(
            f"**Admission, {LABEL[kind]}: {fa(adm['p50'])} ms p50** against the target of ≤ {TARGET_P50_MS[kind]} ms: "
            f"**{'met' if adm['met'] else 'not met'}**. Per round: " + ", ".join(fa(x) for x in adm["per_round_p50"])
            + f" ms (their median {fa(adm['per_round_p50_median'])} ms). p99, the same difference: {fa(adm['p99'])} ms "
            f"(per round " + ", ".join(fa(x) for x in adm["per_round_p99"]) + " ms).\n"
        )
    o.append("**Checks** (each fails the run when it does not hold):\n")
    o.append("| row | round | check | held? | seen |")
    o.append("|---|---:|---|---|---|")
    for i, rd in enumerate(res["rounds"], 1):
        for kind in ROWS:
            r = rd[kind]
            o.append(f"| {LABEL[kind]} | {i} | 0 non-2xx answers and transport errors | {'yes' if r['errors'] == 0 else '**FAILED**'} | "
                     f"{r['ok']:,} × 200" + (f"; {r['error_kinds']}" if r['errors'] else "") + " |")
            for c in r.get("checks", []):
                o.append(f"| {LABEL[kind]} | {i} | {c['what']} | {'yes' if c['ok'] else '**FAILED**'} | {c['seen']} |")
    o.append("")
    return "\n".join(o)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tollgate", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--out-dir", required=True, help="admission.md goes here; logs and results.json in OUT/admission")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "10")))
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds at 300 req/s before each tollgate row")
    ap.add_argument("--redis-url", default=os.environ.get("TOLLGATE_TEST_REDIS_URL") or DEFAULT_REDIS)
    ap.add_argument("--max-load", type=float, default=float(os.environ.get("BENCH_MAX_LOAD", "1.0")),
                    help="wait for the 1-minute load average to fall under this before measuring")
    ap.add_argument("--load-wait", type=float, default=float(os.environ.get("BENCH_LOAD_WAIT", "600")),
                    help="seconds to wait for that at most (then it measures anyway and says so)")
    args = ap.parse_args()
    args.tollgate, args.oha = os.path.abspath(args.tollgate), os.path.abspath(args.oha)
    args.seconds = int(args.seconds) if args.seconds == int(args.seconds) else args.seconds
    out_md = os.path.join(os.path.abspath(args.out_dir), "admission.md")
    out = os.path.join(os.path.abspath(args.out_dir), "admission")
    os.makedirs(out, exist_ok=True)

    # SIGTERM as well as Ctrl-C unwinds through the finally below (servers stopped, Redis keys deleted).
    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass

    # Redis first: a run that cannot reach it should stop before measuring anything.
    redis = Redis(args.redis_url)
    if redis.cmd("PING") != "PONG":
        raise RuntimeError(f"{masked(args.redis_url)}: no PONG")
    info = redis.cmd("INFO", "server")
    redis.close()
    redis_version = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("redis_version:")), "?")

    master = "sk-bench-" + secrets.token_hex(24)
    prefix = f"tollgate-bench-admission-{os.getpid()}-{secrets.token_hex(3)}"
    mock_port = H.free_port()
    base_cfg = (
        f"model_list:\n  - model_name: {H.MODEL}\n    litellm_params:\n      model: deepseek/deepseek-v3.2\n"
        f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-upstream-not-used\n"
        f"general_settings:\n  master_key: {master}\n  global_max_parallel_requests: {H.CAP}\n"
    )
    cfg, cfg_redis = os.path.join(out, "config.yaml"), os.path.join(out, "config-redis.yaml")
    with open(cfg, "w") as f:
        f.write(base_cfg)
    with open(cfg_redis, "w") as f:
        f.write(base_cfg + f"router_settings:\n  redis_url: {args.redis_url}\ntollgate_settings:\n  rate_limit_prefix: {prefix}\n")
    body = H.make_body(1024, False)
    body_path = os.path.join(out, "body-plain-1k.json")
    with open(body_path, "wb") as f:
        f.write(body)

    ctx = {"out": out, "cfg": cfg, "cfg_redis": cfg_redis, "master": master, "body": body, "body_path": body_path,
           "mock_base": f"http://127.0.0.1:{mock_port}", "prefix": prefix}
    res = {
        "args": {"seconds": args.seconds, "rate": args.rate, "rounds": args.rounds, "warmup": args.warmup,
                 "redis_url": masked(args.redis_url), "max_load": args.max_load},
        "nproc": H.sh(["nproc"]), "cpu_model": cpu_model, "commit": H.machine_commit(),
        "redis_version": redis_version, "prefix": prefix, "conns": H.conns_for(args.rate), "body_bytes": len(body),
        "oha": H.sh([args.oha, "--version"]), "rounds": [],
    }
    mock = None
    t_start = time.monotonic()
    try:
        res["load_before"], res["load_wait_s"], res["load_quiet"] = wait_for_quiet(args.max_load, args.load_wait)
        if not res["load_quiet"]:
            log(f"WARNING: load average still {res['load_before']} after {args.load_wait:.0f} s; measuring anyway (the report says so)")
        res["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        mock = H.Server("mock", [args.tollgate, "mock", "--port", str(mock_port)], log_path=os.path.join(out, "mock.log"))
        ctx["mock"] = mock
        H.wait_ready(f"{ctx['mock_base']}/mock/stats", mock.proc, timeout=30)
        sanity(ctx["mock_base"], body, master, False)
        H.run_oha(args.oha, f"{ctx['mock_base']}/v1/chat/completions", body_path, master, args.warmup, 300, 32)
        for i in range(1, args.rounds + 1):
            rd = {}
            for kind in ROWS:
                r = direct_row(args, ctx) if kind == "direct" else tollgate_row(args, ctx, kind, i)
                for q in ("p50", "p99"):
                    if kind != "direct" and r.get(q) is not None and rd["direct"].get(q) is not None:
                        r[f"added_{q}"] = r[q] - rd["direct"][q]
                    if kind.startswith("vk") and r.get(q) is not None and rd["master"].get(q) is not None:
                        r[f"adm_{q}"] = r[q] - rd["master"][q]
                rd[kind] = r
                bad = [c["what"] for c in r.get("checks", []) if not c["ok"]]
                log(f"round {i} {kind}: load {r['load']} achieved {r['achieved']:.0f}/s ok {r['ok']} errors {r['errors']} "
                    f"p50 {H.fmt_ms(r['p50'])} p99 {H.fmt_ms(r['p99'])}"
                    + (f" admission p50 {H.fmt_added(r.get('adm_p50'))} p99 {H.fmt_added(r.get('adm_p99'))}" if kind.startswith("vk") else "")
                    + f" cpu {r['cpu']:.0f}% machine busy {r['machine_busy']:.0f}%"
                    + (f" FAILED CHECKS: {bad}" if bad else ""))
            res["rounds"].append(rd)
        res["load_after"] = loadavg()
    finally:
        if mock is not None:
            mock.stop()
        try:
            redis = Redis(args.redis_url)
            left = redis.keys_under(prefix)
            for i in range(0, len(left), 500):
                redis.cmd("DEL", *left[i:i + 500])
            redis.close()
            log(f"deleted {len(left)} Redis key(s) under {prefix}")
        except Exception as e:  # noqa: BLE001 - report, do not hide the original error
            log(f"could not delete the Redis keys under {prefix}: {e}")

    res["median"] = {
        kind: {q: med([rd[kind].get(q) for rd in res["rounds"]]) for q in ("p50", "p99", "added_p50", "added_p99")}
        for kind in ROWS
    }
    res["admission"] = {}
    for kind in ("vk_local", "vk_redis"):
        m, mm = res["median"][kind], res["median"]["master"]
        per50 = [rd[kind]["adm_p50"] for rd in res["rounds"]]
        per99 = [rd[kind]["adm_p99"] for rd in res["rounds"]]
        res["admission"][kind] = {
            "p50": m["p50"] - mm["p50"], "p99": m["p99"] - mm["p99"],
            "per_round_p50": per50, "per_round_p99": per99, "per_round_p50_median": statistics.median(per50),
            "target_p50": TARGET_P50_MS[kind],
        }
        res["admission"][kind]["met"] = res["admission"][kind]["p50"] <= TARGET_P50_MS[kind]
    failed = []
    for i, rd in enumerate(res["rounds"], 1):
        for kind in ROWS:
            r = rd[kind]
            if r["errors"]:
                failed.append(f"round {i} {kind}: {r['errors']} non-2xx answers or errors {r['error_kinds']}")
            failed += [f"round {i} {kind}: {c['what']} ({c['seen']})" for c in r.get("checks", []) if not c["ok"]]
    res["failed"] = failed
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = markdown(res)
    with open(out_md, "w") as f:
        f.write(md + "\n")
    print(md, flush=True)
    log(f"wrote {out_md} ({(time.monotonic() - t_start) / 60:.1f} min)")
    for kind in ("vk_local", "vk_redis"):
        a = res["admission"][kind]
        log(f"admission {LABEL[kind]}: p50 {H.fmt_added(a['p50'])} ms (target ≤ {a['target_p50']} ms: "
            f"{'met' if a['met'] else 'NOT MET'}), p99 {H.fmt_added(a['p99'])} ms")
    if failed:
        log("!" * 100)
        for line in failed:
            log("FAILED " + line)
        log("!" * 100)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
