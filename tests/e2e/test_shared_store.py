"""Postgres as the shared store (issue 13): gateways commit every record to their local SQLite and
ship it to one Postgres table; an outage costs no request and no record; a gateway refuses to
start where going on would lose or misread records.

Needs a Postgres the tests may create roles and databases in: TOLLGATE_TEST_POSTGRES_URL (an
admin URL), or TOLLGATE_CI set for postgres://postgres@127.0.0.1:5432/test. Each test gets its own
role and database; the gateways log in as that role (trust auth), and the test takes Postgres
away from them by forbidding the role to log in."""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

import httpx
import openai
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import GROUPS, LITELLM_CONFIG, MASTER_KEY, Gateway, base_env, free_port, run_tollgate

DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/test"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
MODELS = list(GROUPS)
# Postgres comes back, then the shipper's backoff (at most a few seconds) and the drain.
DRAIN_TIMEOUT_S = 30.0
# A gateway that should refuse to start gets this long to do so.
REFUSE_TIMEOUT_S = 15.0


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get("TOLLGATE_TEST_POSTGRES_URL")
    if not url:
        if not os.environ.get("TOLLGATE_CI"):
            pytest.skip(
                "no Postgres for the shared-store tests: set TOLLGATE_TEST_POSTGRES_URL to a URL of a role "
                f"that may CREATE ROLE and CREATE DATABASE (e.g. {DEFAULT_ADMIN_URL}), or TOLLGATE_CI=1 for that default"
            )
        url = DEFAULT_ADMIN_URL
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        # Asked for explicitly (or in CI): a missing Postgres is a failure, not a skip.
        pytest.fail(f"cannot reach the test Postgres {url}: {e}", pytrace=False)
    return url


class SharedDb:
    """A role and a database it owns, created for one test; the admin connection controls both."""

    def __init__(self, admin_url: str):
        self.role = self.name = f"tg_e2e_{secrets.token_hex(5)}"
        self._admin_url = admin_url
        self._db_admin = make_conninfo(admin_url, dbname=self.name)
        params = conninfo_to_dict(admin_url)
        host = params.get("host") or "127.0.0.1"
        port = params.get("port") or "5432"
        # What the gateways use: the test's role, no password (trust auth).
        self.url = f"postgres://{self.role}@{host}:{port}/{self.name}"

    def admin(self, statement: sql.Composable, params: Optional[tuple] = None) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            conn.execute(statement, params)

    def query(self, statement: str, params: Optional[tuple] = None) -> List[tuple]:
        """In the test's database, as the admin (works while the role is blocked)."""
        with psycopg.connect(self._db_admin, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def create(self) -> None:
        role = sql.Identifier(self.role)
        self.admin(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        self.admin(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.name), role))

    def block(self) -> None:
        """Postgres goes away for the gateways: no new logins, and the open sessions are ended."""
        self.admin(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(self.role)))
        self.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (self.role,))

    def unblock(self) -> None:
        self.admin(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(self.role)))

    def drop(self) -> None:
        self.admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        self.admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.role)))


@pytest.fixture
def shared_db(pg_admin_url):
    db = SharedDb(pg_admin_url)
    db.create()
    yield db
    db.drop()


def pg_args(db: SharedDb, instance_id: str) -> List[str]:
    return ["--database-url", db.url, "--instance-id", instance_id]


def readiness(gw: Gateway) -> Dict[str, Any]:
    r = httpx.get(f"{gw.url}/health/readiness", headers=AUTH, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def shipping(r: Dict[str, Any]) -> Dict[str, Any]:
    pg = r["store"].get("postgres")
    assert pg is not None, f"readiness shows no shared store: {json.dumps(r['store'], indent=1)}"
    return pg


def metric(gw: Gateway, name: str) -> float:
    text = httpx.get(f"{gw.url}/metrics", headers=AUTH, timeout=5).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics:\n{text}"
    return float(m.group(1))


def poll(what: str, probe: Callable[[], Tuple[bool, Any]], timeout: float, interval: float = 0.1) -> Any:
    """Calls probe until it says done; fails with what it last saw."""
    deadline = time.monotonic() + timeout
    while True:
        done, seen = probe()
        if done:
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s; last seen:\n{json.dumps(seen, indent=1, default=str)}")
        time.sleep(interval)


def drained(gw: Gateway) -> Tuple[bool, Any]:
    r = readiness(gw)
    pg = shipping(r)
    return r["status"] == "healthy" and pg["backlog"] == 0 and pg["connected"] is True, r


def assert_degraded_by_backlog(r: Dict[str, Any], url: str) -> None:
    """Readiness while Postgres is away: degraded, saying why and how many records wait."""
    pg = shipping(r)
    assert r["status"] == "degraded" and pg["backlog"] > 0, r
    assert pg["connected"] is False, r
    assert pg["last_error"], r
    error = r["store"]["error"] or ""
    assert url in error and re.search(rf"\b{pg['backlog']}\b", error), r


def chat(client: openai.OpenAI, i: int, model: str, stream: bool) -> str:
    """One chat completion, plain or streamed, read to the end; its x-tollgate-request-id."""
    messages = [{"role": "user", "content": f"Shared store request {i} [{uuid.uuid4()}]"}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, stream=stream)
    request_id = raw.headers["x-tollgate-request-id"]
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content
    assert text, f"empty answer to request {i} ({request_id})"
    return request_id


class Load:
    """Threads that send chat completions, alternating between gateways, for tickets put in a
    queue: the test decides how many go out in each phase."""

    def __init__(self, gateways: Dict[str, Gateway], threads: int = 8):
        self.clients = {name: gw.client() for name, gw in gateways.items()}
        self.names = list(gateways)
        self.tickets: "queue.Queue[Optional[int]]" = queue.Queue()
        self.next = 0
        self.served: Dict[str, str] = {}  # request id -> the gateway that answered
        self.errors: List[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            i = self.tickets.get()
            try:
                if i is None:
                    return
                name = self.names[i % len(self.names)]
                model = MODELS[(i // 4) % len(MODELS)]
                stream = (i // 2) % 2 == 1
                try:
                    rid = chat(self.clients[name], i, model, stream)
                except Exception as e:  # noqa: BLE001 - every failure is a finding
                    with self._lock:
                        self.errors.append(f"request {i} to {name} ({model}, stream={stream}): {e!r}")
                    continue
                with self._lock:
                    if rid in self.served:
                        self.errors.append(f"request id {rid} answered twice")
                    self.served[rid] = name
            finally:
                self.tickets.task_done()

    def submit(self, n: int) -> None:
        for _ in range(n):
            self.tickets.put(self.next)
            self.next += 1

    def in_flight(self) -> int:
        return self.tickets.unfinished_tasks

    def wait(self) -> None:
        self.tickets.join()

    def close(self) -> None:
        for _ in self._threads:
            self.tickets.put(None)
        for t in self._threads:
            t.join(timeout=60)


def test_two_instances_one_database_under_load_and_an_outage(shared_db, start_gateway, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(LITELLM_CONFIG)
    gws = {
        name: start_gateway(name, config_path=config, extra_args=pg_args(shared_db, name))
        for name in ("gw-a", "gw-b")
    }
    for name, gw in gws.items():
        r = readiness(gw)
        url = shipping(r)["url"]
        assert r["store"]["instance_id"] == name, r
        assert url.startswith(f"postgres://{shared_db.role}@") and url.endswith(f"/{shared_db.name}"), url
        assert f"store: postgres {url}" in gw.stderr(), gw.stderr()

    load = Load(gws)
    seen: Dict[str, Dict[str, Any]] = {}  # gateway -> its readiness when degraded with a backlog
    last: Dict[str, Dict[str, Any]] = {}
    try:
        load.submit(100)
        load.wait()

        # Postgres goes away mid-traffic; requests keep coming.
        shared_db.block()
        outage_start = load.next
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if load.next - outage_start < 150 and load.in_flight() < 8:
                load.submit(8 - load.in_flight())
            for name, gw in gws.items():
                r = last[name] = readiness(gw)
                if name not in seen and r["status"] == "degraded" and (r["store"].get("postgres") or {}).get("backlog", 0) > 0:
                    seen[name] = r
            if len(seen) == len(gws) and load.next - outage_start >= 60:
                break
            time.sleep(0.02)
        load.wait()
        sent_in_outage = load.next - outage_start
        shared_db.unblock()

        load.submit(max(300 - load.next, 60))
        load.wait()
    finally:
        load.close()
        shared_db.unblock()

    missing = {n: last.get(n, {}).get("store") for n in gws if n not in seen}
    assert not missing, f"never degraded with a backlog while Postgres was away:\n{json.dumps(missing, indent=1)}"
    for r in seen.values():
        assert_degraded_by_backlog(r, shipping(r)["url"])
    assert load.errors == [], "\n".join(load.errors[:20])
    assert sent_in_outage >= 60
    accepted = load.served
    assert len(accepted) == load.next

    for name, gw in gws.items():
        poll(f"{name} healthy with an empty backlog", lambda: drained(gw), DRAIN_TIMEOUT_S)

    rows = shared_db.query("SELECT request_id, instance_id, count(*) FROM tollgate_records GROUP BY 1, 2")
    twice = [row for row in rows if row[2] != 1]
    assert not twice, f"rows stored more than once: {twice[:10]}"
    stored = {rid: instance for rid, instance, _ in rows}
    assert len(stored) == len(rows), "a request id under two instance ids"
    assert set(stored) - set(accepted) == set(), "rows for requests nobody sent"
    assert set(accepted) - set(stored) == set(), f"{len(set(accepted) - set(stored))} accepted requests missing"
    wrong = {rid: (stored[rid], gw) for rid, gw in accepted.items() if stored[rid] != gw}
    assert not wrong, f"rows with the wrong instance id: {list(wrong.items())[:10]}"
    (total,) = shared_db.query("SELECT count(*) FROM tollgate_records")[0]
    assert total == len(accepted)

    per_gateway = Counter(accepted.values())
    for name, gw in gws.items():
        assert metric(gw, "tollgate_store_shared_shipped_total") >= per_gateway[name]
        assert metric(gw, "tollgate_store_shared_backlog_records") == 0

    for name, gw in gws.items():
        code = gw.stop()
        assert code == 0, f"{name} exited with {code} on SIGTERM:\n{gw.stderr()}"
        # Committed locally first: each instance's SQLite has exactly what it answered.
        with sqlite3.connect(f"file:{gw.data_dir / 'tollgate.sqlite'}?mode=ro", uri=True) as db:
            local = {rid for (rid,) in db.execute("SELECT request_id FROM records")}
        assert local == {rid for rid, n in accepted.items() if n == name}


def test_startup_with_postgres_down_serves_and_drains_later(shared_db, start_gateway):
    shared_db.block()
    gw = start_gateway("late", extra_args=pg_args(shared_db, "gw-late"))
    url = shipping(readiness(gw))["url"]
    assert f"store: postgres {url}" in gw.stderr(), gw.stderr()

    client = gw.client()
    ids = [chat(client, i, MODELS[i % len(MODELS)], stream=i % 2 == 1) for i in range(10)]

    def all_waiting():
        r = readiness(gw)
        return r["status"] == "degraded" and shipping(r)["backlog"] == len(ids), r

    r = poll("readiness degraded with every record in the backlog", all_waiting, 15)
    assert_degraded_by_backlog(r, url)
    (table,) = shared_db.query("SELECT to_regclass('tollgate_records')")[0]
    if table is not None:
        assert shared_db.query("SELECT count(*) FROM tollgate_records") == [(0,)]

    shared_db.unblock()
    poll("healthy with an empty backlog once Postgres is back", lambda: drained(gw), DRAIN_TIMEOUT_S)
    rows = shared_db.query("SELECT request_id, instance_id FROM tollgate_records")
    assert sorted(rows) == sorted((rid, "gw-late") for rid in ids)
    assert shipping(readiness(gw))["shipped"] >= len(ids)
    assert gw.stop() == 0, gw.stderr()


def serve_until_exit(args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
    """`tollgate serve` that is expected to refuse to start."""
    try:
        return run_tollgate(["serve", *args], env, timeout=REFUSE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"tollgate serve was still running after {REFUSE_TIMEOUT_S} s (it should refuse to start):\n{e.stderr}")


@pytest.mark.parametrize("source", ["flag", "config", "env"])
def test_require_database_refuses_to_start_without_it(tmp_path, mock, source):
    url = "postgres://tg:s3cretpw@127.0.0.1:1/none"
    config_text = LITELLM_CONFIG + "\ntollgate_settings:\n  require_database: true\n"
    env = base_env(mock.api_base)
    args: List[str] = []
    if source == "flag":
        args = ["--database-url", url]
    elif source == "config":
        key_line = "  master_key: os.environ/LITELLM_MASTER_KEY\n"
        config_text = config_text.replace(key_line, f"{key_line}  database_url: {url}\n", 1)
    else:
        env["DATABASE_URL"] = url
    config = tmp_path / "config.yaml"
    config.write_text(config_text)
    r = serve_until_exit(
        ["--config", str(config), "--port", str(free_port()), "--data-dir", str(tmp_path / "data"), *args], env
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "postgres://tg:***@127.0.0.1:1/none" in r.stderr, out
    assert "refused" in r.stderr.lower(), out  # the error itself, not only that there was one
    assert "s3cretpw" not in out


def test_newer_schema_refuses_to_start(shared_db, start_gateway, mock):
    gw = start_gateway("first", extra_args=pg_args(shared_db, "gw-first"))
    poll(
        "the schema migrated",
        lambda: (lambda t: (t[0][0] is not None, t))(shared_db.query("SELECT to_regclass('tollgate_schema_history')")),
        10,
    )
    history = shared_db.query("SELECT version FROM tollgate_schema_history ORDER BY version")
    assert history and history[-1][0] < 99, history
    assert gw.stop() == 0, gw.stderr()

    # A newer tollgate migrated this database since.
    shared_db.query(
        "INSERT INTO tollgate_schema_history (version, name, applied_on, checksum) "
        "SELECT 99, 'from_a_newer_tollgate', applied_on, checksum FROM tollgate_schema_history WHERE version = %s",
        (history[-1][0],),
    )
    r = serve_until_exit(
        ["--config", str(gw.config_path), "--port", str(free_port()), "--data-dir", str(gw.data_dir),
         *pg_args(shared_db, "gw-first")],
        base_env(mock.api_base),
    )
    assert r.returncode != 0, r.stdout + r.stderr
    assert "newer tollgate" in r.stderr, r.stderr
    assert "99" in r.stderr, r.stderr


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Equal JSON values; floats (sums in another order) to 1e-9 relative."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), (path, a, b)
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (path, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), (path, sorted(set(a) ^ set(b)))
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def test_report_reads_the_shared_store(shared_db, start_gateway, mock):
    gw = start_gateway("reported", extra_args=pg_args(shared_db, "gw-report"))
    client = gw.client()
    ids = [chat(client, i, MODELS[i % len(MODELS)], stream=i % 4 == 3) for i in range(12)]
    # The same long-prefix conversation twice: the second reads from the provider cache.
    system = f"You are a meticulous reviewer [{uuid.uuid4()}]. " + "Check every diff. " * 40
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Review it."}]
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="deepseek-v3.2", messages=messages)
        ids.append(raw.headers["x-tollgate-request-id"])
    assert raw.parse().usage.prompt_tokens_details.cached_tokens > 0
    # A failure record (no upstream attempt).
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    ids.append(exc.value.response.headers["x-tollgate-request-id"])

    poll("every record shipped", lambda: drained(gw), DRAIN_TIMEOUT_S)
    assert sorted(r for (r,) in shared_db.query("SELECT request_id FROM tollgate_records")) == sorted(ids)
    assert gw.stop() == 0, gw.stderr()

    def report(*args: str) -> Dict[str, Any]:
        r = run_tollgate(["report", *args, "--format", "json", "--no-progress"], base_env(mock.api_base))
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)

    from_db = report("--db", shared_db.url)
    from_dir = report("--data-dir", str(gw.data_dir))
    assert from_db["requests"]["total"] == len(ids)
    assert from_db["requests"]["failed"] == 1
    assert from_db["requests"]["streamed"] == 3
    assert from_db["cost"]["total_usd"] > 0
    (pg_cost,) = shared_db.query("SELECT sum(cost_usd) FROM tollgate_records")[0]
    assert from_db["cost"]["total_usd"] == pytest.approx(pg_cost, rel=1e-9)
    by_model = {m["model"]: m for m in from_db["models"]}
    assert by_model["deepseek-v3.2"]["cached_tokens"] > 0
    for section in ("period", "requests", "cost", "tokens", "cache", "reasoning"):
        assert_same(from_db[section], from_dir[section], section)
    assert_same(by_model, {m["model"]: m for m in from_dir["models"]}, "models")
