"""Virtual keys (issue 14): LiteLLM's key management API, keys on the request path, key spend that
equals the records, budgets held exactly across two instances sharing one Postgres, and rate
limits (rpm, tpm, parallel, per model) exact across instances sharing one Redis.

Management calls use httpx (LiteLLM's paths, fields, shapes and error envelope); completions use
the official `openai` SDK, as a LiteLLM user's code does. The two-instance tests need the test
Postgres (TOLLGATE_TEST_POSTGRES_URL, see test_shared_store.py) and get a fresh database each; the
rate-limit tests that count in Redis need TOLLGATE_TEST_REDIS_URL (or TOLLGATE_CI=1 for
redis://127.0.0.1:6379/) and use a key prefix of their own, deleted afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx
import openai
import pytest
import redis

from conftest import GROUPS, LITELLM_CONFIG, MASTER_KEY, PRICES, Gateway, Mock
# The shared-store suite's Postgres fixtures and helpers: a role and database per test.
from test_shared_store import SharedDb, drained, pg_admin_url, pg_args, poll, shared_db  # noqa: F401

MODELS = list(GROUPS)
# How long a key looked up on one instance is trusted there (keys.rs CACHE_TTL), and the slack a
# change made on another instance gets on top of it before the test calls it late.
KEY_CACHE_TTL_S = 1.0
PROPAGATION_SLACK_S = 0.5

# Every field of LiteLLM's /key/generate that tollgate stores, with values that are not defaults.
ALL_FIELDS: Dict[str, Any] = {
    "duration": "30d",
    "models": ["deepseek-v3.2", "minimax-m2.1"],
    "max_budget": 12.5,
    "soft_budget": 10.0,
    "budget_duration": "30d",
    "budget_id": "budget-e2e",
    "user_id": "user-e2e-1",
    "team_id": "team-e2e-1",
    "max_parallel_requests": 50,
    "tpm_limit": 10_000_000,
    "rpm_limit": 100_000,
    "model_rpm_limit": {"deepseek-v3.2": 50_000},
    "model_tpm_limit": {"deepseek-v3.2": 5_000_000},
    "model_max_budget": {"deepseek-v3.2": {"budget_limit": 5.0, "time_period": "1d"}},
    "metadata": {"owner": "e2e", "tags": ["a", "b"], "n": 3},
    "blocked": True,
}


def sha256_hex(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def bearer(key: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ok(r: httpx.Response) -> Dict[str, Any]:
    assert r.status_code == 200, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
    return r.json()


def api_error(r: httpx.Response, status: int, param: Optional[str] = "<any>") -> Dict[str, Any]:
    """LiteLLM's management error envelope: {"error": {"message", "type", "param", "code": "<status>"}}."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: expected {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    assert err["code"] == str(status), err
    assert isinstance(err["message"], str) and err["message"], err
    if param != "<any>":
        assert err["param"] == param, err
    return err


def request_error(r: httpx.Response, status: int, code: str) -> Dict[str, Any]:
    """An OpenAI-shaped refusal on the request path."""
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text}"
    err = r.json()["error"]
    assert err["code"] == code, err
    return err


def chat_raw(gw: Gateway, key: str, model: str = "deepseek-v3.2", header: str = "bearer") -> httpx.Response:
    """One chat completion with plain httpx, for status codes and error bodies."""
    headers = bearer(key) if header == "bearer" else {"x-api-key": key}
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        headers=headers,
        json={"model": model, "messages": [{"role": "user", "content": f"hello [{uuid.uuid4()}]"}], "max_tokens": 16},
        timeout=30,
    )


def parse_time(s: str) -> datetime:
    # RFC 3339 with nanoseconds: Python takes at most microseconds.
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        s = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    return datetime.fromisoformat(s)


def cached_config() -> str:
    return LITELLM_CONFIG.replace(
        "litellm_settings:\n", "litellm_settings:\n  cache: true\n  cache_params:\n    type: local\n", 1
    )


# ---------------------------------------------------------------------------------------------
# 1. Management round trip (one gateway, SQLite)
# ---------------------------------------------------------------------------------------------


def test_keys_management_round_trip(start_gateway):
    gw = start_gateway("keys-mgmt")
    h = gw.http()
    # A key may name only teams and budget tiers that exist (its user need not exist).
    for team in ("team-e2e-1", "team-e2e-2"):
        ok(h.post("/team/new", json={"team_id": team}))
    ok(h.post("/budget/new", json={"budget_id": ALL_FIELDS["budget_id"]}))

    # A key that expires almost at once, checked at the end (by then it has expired).
    short = ok(h.post("/key/generate", json={"key_alias": "short-lived", "duration": "1s"}))

    # generate, with every field.
    custom = "sk-e2e-custom-" + uuid.uuid4().hex
    before = datetime.now(timezone.utc)
    gen = ok(h.post("/key/generate", json={**ALL_FIELDS, "key_alias": "rt-main", "key": custom}))
    after = datetime.now(timezone.utc)
    for field, value in ALL_FIELDS.items():
        if field != "duration":
            assert gen[field] == value, (field, gen[field], value)
    assert gen["key_alias"] == "rt-main"
    assert gen["key"] == custom
    assert gen["token"] == sha256_hex(custom)
    assert gen["key_name"] == f"sk-...{custom[-4:]}"
    assert gen["spend"] == 0
    expires = parse_time(gen["expires"])
    assert before + timedelta(days=30) - timedelta(seconds=1) <= expires <= after + timedelta(days=30) + timedelta(seconds=1)
    token = gen["token"]

    # Two more keys, generated (not custom): LiteLLM's shape.
    b = ok(h.post("/key/generate", json={"key_alias": "rt-b", "user_id": "user-e2e-1", "team_id": "team-e2e-2"}))
    c = ok(h.post("/key/generate", json={"key_alias": "rt-c", "user_id": "user-e2e-2", "team_id": "team-e2e-1"}))
    for k in (b, c):
        assert k["key"].startswith("sk-") and len(k["key"]) >= 20, k["key"]
        assert k["token"] == sha256_hex(k["key"])
        assert k["key_name"] == f"sk-...{k['key'][-4:]}"
        assert k["models"] == [] and k["blocked"] is False and k["expires"] is None
    assert b["key"] != c["key"]

    # info: by raw key and by hash; the raw key is never stored or shown again.
    info = ok(h.get("/key/info", params={"key": custom}))
    assert info["key"] == custom
    by_hash = ok(h.get("/key/info", params={"key": token}))
    assert by_hash["info"] == info["info"]
    row = info["info"]
    assert row["token"] == token and row["key_alias"] == "rt-main" and row["spend"] == 0
    for field, value in ALL_FIELDS.items():
        if field != "duration":
            assert row[field] == value, (field, row[field], value)
    assert custom not in json.dumps(row)
    api_error(h.get("/key/info", params={"key": "sk-no-such-key-" + uuid.uuid4().hex}), 404)

    # list: LiteLLM's paging and filters; tokens unless return_full_object.
    everything = ok(h.get("/key/list", params={"size": 100}))
    assert everything["total_count"] == 4 and everything["current_page"] == 1 and everything["total_pages"] == 1
    all_tokens = {token, b["token"], c["token"], short["token"]}
    assert set(everything["keys"]) == all_tokens, everything
    pages = [ok(h.get("/key/list", params={"page": p, "size": 3})) for p in (1, 2)]
    assert [len(p["keys"]) for p in pages] == [3, 1]
    assert [p["current_page"] for p in pages] == [1, 2]
    assert all(p["total_count"] == 4 and p["total_pages"] == 2 for p in pages)
    assert set(pages[0]["keys"]) | set(pages[1]["keys"]) == all_tokens
    by_user = ok(h.get("/key/list", params={"user_id": "user-e2e-1", "return_full_object": "true"}))
    assert by_user["total_count"] == 2
    assert {k["key_alias"] for k in by_user["keys"]} == {"rt-main", "rt-b"}
    assert all(isinstance(k, dict) and "spend" in k and "token" in k for k in by_user["keys"])
    by_team = ok(h.get("/key/list", params={"team_id": "team-e2e-1"}))
    assert set(by_team["keys"]) == {token, c["token"]}
    by_alias = ok(h.get("/key/list", params={"key_alias": "rt-b", "return_full_object": "true"}))
    assert [k["token"] for k in by_alias["keys"]] == [b["token"]] and by_alias["total_count"] == 1

    # Generated blocked: refused on the request path; unblock/block take effect at once here.
    request_error(chat_raw(gw, custom), 401, "key_blocked")
    unblocked = ok(h.post("/key/unblock", json={"key": custom}))
    assert unblocked["blocked"] is False and unblocked["token"] == token
    assert chat_raw(gw, custom).status_code == 200
    assert chat_raw(gw, custom, header="x-api-key").status_code == 200
    blocked = ok(h.post("/key/block", json={"key": token}))  # named by its hash
    assert blocked["blocked"] is True
    request_error(chat_raw(gw, custom), 401, "key_blocked")
    assert ok(h.get("/key/info", params={"key": custom}))["info"]["blocked"] is True
    ok(h.post("/key/unblock", json={"key": token}))
    assert chat_raw(gw, custom).status_code == 200

    # update: only the fields given change.
    spent = ok(h.get("/key/info", params={"key": custom}))["info"]
    assert spent["spend"] > 0
    updated = ok(h.post("/key/update", json={"key": custom, "max_budget": 20.0}))
    assert updated["max_budget"] == 20.0
    now_row = ok(h.get("/key/info", params={"key": token}))["info"]
    changed = {k for k in set(spent) | set(now_row) if spent.get(k) != now_row.get(k)}
    assert changed <= {"max_budget", "updated_at"} and "max_budget" in changed, (changed, spent, now_row)
    assert parse_time(now_row["updated_at"]) >= parse_time(spent["updated_at"])
    # ... also named by its hash, and more than one field.
    ok(h.post("/key/update", json={"key": token, "models": ["deepseek-v3.2"], "metadata": {"owner": "ops"}}))
    row2 = ok(h.get("/key/info", params={"key": custom}))["info"]
    assert row2["models"] == ["deepseek-v3.2"] and row2["metadata"] == {"owner": "ops"}
    assert row2["max_budget"] == 20.0 and row2["user_id"] == "user-e2e-1" and row2["rpm_limit"] == 100_000
    request_error(chat_raw(gw, custom, model="minimax-m2.1"), 401, "key_model_access_denied")
    api_error(h.post("/key/update", json={"key": "sk-nope-" + uuid.uuid4().hex, "max_budget": 1}), 404)

    # Bad input: 400, naming the field.
    for body, field in [
        ({"max_budget": -1}, "max_budget"),
        ({"duration": "soon"}, "duration"),
        ({"models": "deepseek-v3.2"}, "models"),
        ({"key_alias": "rt-b"}, "key_alias"),
    ]:
        err = api_error(h.post("/key/generate", json=body), 400, param=field)
        assert field in err["message"], err
    err = api_error(h.post("/key/update", json={"key": custom, "budget_duration": "soon"}), 400, param="budget_duration")
    assert "budget_duration" in err["message"]
    err = api_error(h.post("/key/update", json={"key": custom, "key_alias": "rt-c"}), 400, param="key_alias")
    # The refused update changed nothing.
    assert ok(h.get("/key/info", params={"key": custom}))["info"]["key_alias"] == "rt-main"

    # A virtual key is no admin: 403 for management, its own /key/info only.
    vk = bearer(c["key"])
    api_error(httpx.post(f"{gw.url}/key/generate", headers=vk, json={"key_alias": "escalate"}, timeout=10), 403)
    api_error(httpx.get(f"{gw.url}/key/list", headers=vk, timeout=10), 403)
    api_error(httpx.post(f"{gw.url}/key/update", headers=vk, json={"key": c["key"], "max_budget": 1e9}, timeout=10), 403)
    api_error(httpx.post(f"{gw.url}/key/unblock", headers=bearer(custom), json={"key": custom}, timeout=10), 403)
    own = ok(httpx.get(f"{gw.url}/key/info", headers=vk, timeout=10))
    assert own["info"]["token"] == c["token"] and own["info"]["key_alias"] == "rt-c"
    api_error(httpx.get(f"{gw.url}/key/info", headers=vk, params={"key": custom}, timeout=10), 403)
    api_error(httpx.post(f"{gw.url}/key/generate", json={}, timeout=10), 401)
    assert ok(h.get("/key/list"))["total_count"] == 4  # nothing was created by the refused calls

    # regenerate: a new raw key on the same row; the old one stops working at once.
    spend_before = ok(h.get("/key/info", params={"key": custom}))["info"]["spend"]
    regen = ok(h.post("/key/regenerate", json={"key": custom}))
    new_raw = regen["key"]
    assert new_raw != custom and new_raw.startswith("sk-")
    assert regen["token"] == sha256_hex(new_raw) != token
    assert regen["key_name"] == f"sk-...{new_raw[-4:]}"
    assert regen["key_alias"] == "rt-main" and regen["user_id"] == "user-e2e-1" and regen["max_budget"] == 20.0
    assert regen["spend"] == pytest.approx(spend_before, abs=1e-12)
    request_error(chat_raw(gw, custom), 401, "invalid_api_key")
    assert chat_raw(gw, new_raw).status_code == 200
    api_error(h.get("/key/info", params={"key": token}), 404)
    assert ok(h.get("/key/info", params={"key": new_raw}))["info"]["key_alias"] == "rt-main"
    assert ok(h.get("/key/list"))["total_count"] == 4

    # delete: by key (raw value) and by alias; LiteLLM's answer names what was given.
    assert ok(h.post("/key/delete", json={"keys": [new_raw]})) == {"deleted_keys": [new_raw]}
    assert ok(h.post("/key/delete", json={"key_aliases": ["rt-b"]})) == {"deleted_keys": ["rt-b"]}
    assert ok(h.post("/key/delete", json={"keys": [c["token"]]})) == {"deleted_keys": [c["token"]]}  # by hash
    request_error(chat_raw(gw, new_raw), 401, "invalid_api_key")
    request_error(chat_raw(gw, b["key"]), 401, "invalid_api_key")
    api_error(h.get("/key/info", params={"key": new_raw}), 404)
    api_error(h.post("/key/delete", json={"keys": [new_raw]}), 404)
    remaining = ok(h.get("/key/list"))
    assert remaining["total_count"] == 1 and remaining["keys"] == [short["token"]]
    request_error(chat_raw(gw, c["key"]), 401, "invalid_api_key")

    # The key with duration 1s has expired by now (generated before everything above).
    wait = (parse_time(short["expires"]) - datetime.now(timezone.utc)).total_seconds()
    time.sleep(max(0.0, wait) + 0.05)
    err = request_error(chat_raw(gw, short["key"]), 401, "expired_key")
    assert "expired" in err["message"]
    assert ok(h.get("/key/info", params={"key": short["key"]}))["info"]["key_alias"] == "short-lived"


# ---------------------------------------------------------------------------------------------
# 2. A key limited to one model, through the openai SDK
# ---------------------------------------------------------------------------------------------


def test_keys_limited_to_one_model(start_gateway):
    gw = start_gateway("keys-one-model")
    h = gw.http()
    key = ok(h.post("/key/generate", json={"key_alias": "deepseek-only", "models": ["deepseek-v3.2"]}))["key"]
    client = gw.client(api_key=key)

    plain = client.chat.completions.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": f"plain [{uuid.uuid4()}]"}]
    )
    assert plain.choices[0].message.content
    assert plain.model == "deepseek-v3.2"
    stream = client.chat.completions.create(
        model="deepseek-v3.2",
        messages=[{"role": "user", "content": f"streamed [{uuid.uuid4()}]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    for other in ("minimax-m2.1", "grok-4.1-fast"):
        with pytest.raises(openai.AuthenticationError) as exc:
            client.chat.completions.create(model=other, messages=[{"role": "user", "content": "hi"}])
        assert exc.value.status_code == 401
        assert exc.value.code == "key_model_access_denied", exc.value.body
        assert other in exc.value.message and "deepseek-v3.2" in exc.value.message
        # Denied streams too, before any chunk.
        with pytest.raises(openai.AuthenticationError) as exc:
            client.chat.completions.create(model=other, messages=[{"role": "user", "content": "hi"}], stream=True)
        assert exc.value.code == "key_model_access_denied"

    assert [m.id for m in client.models.list()] == ["deepseek-v3.2"]
    info = httpx.get(f"{gw.base_url}/model/info", headers=bearer(key), timeout=10)
    assert info.status_code == 200, info.text
    assert [m["model_name"] for m in info.json()["data"]] == ["deepseek-v3.2"]
    # The master key still sees every group; a key with models [] (all) too.
    assert [m.id for m in gw.client().models.list()] == MODELS
    all_key = ok(h.post("/key/generate", json={"key_alias": "all-models", "models": []}))["key"]
    all_client = gw.client(api_key=all_key)
    assert [m.id for m in all_client.models.list()] == MODELS
    assert all_client.chat.completions.create(
        model="grok-4.1-fast", messages=[{"role": "user", "content": "hi"}]
    ).choices[0].message.content


# ---------------------------------------------------------------------------------------------
# 3. Pass-the-hash
# ---------------------------------------------------------------------------------------------


def test_keys_stored_hash_is_not_a_credential(start_gateway):
    gw = start_gateway("keys-hash")
    gen = ok(gw.http().post("/key/generate", json={"key_alias": "hashed"}))
    raw, token = gen["key"], gen["token"]
    assert token == sha256_hex(raw)
    assert gw.client(api_key=raw).chat.completions.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}]
    ).choices[0].message.content

    with pytest.raises(openai.AuthenticationError) as exc:
        gw.client(api_key=token).chat.completions.create(
            model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}]
        )
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key", exc.value.body
    request_error(chat_raw(gw, token, header="x-api-key"), 401, "invalid_api_key")
    for path in ("/v1/models", "/v1/model/info"):
        r = httpx.get(f"{gw.url}{path}", headers=bearer(token), timeout=10)
        request_error(r, 401, "invalid_api_key")
    # Nor does the hash open the management API (own /key/info).
    r = httpx.get(f"{gw.url}/key/info", headers=bearer(token), timeout=10)
    assert r.status_code == 401, r.text


# ---------------------------------------------------------------------------------------------
# 4. Spend equals the records
# ---------------------------------------------------------------------------------------------


def sqlite_records(data_dir: Path) -> List[Dict[str, Any]]:
    with sqlite3.connect(f"file:{data_dir / 'tollgate.sqlite'}?mode=ro", uri=True) as db:
        return [json.loads(doc) for (doc,) in db.execute("SELECT json FROM records")]


def test_keys_spend_equals_the_records(tmp_path):
    mock = Mock(tmp_path / "mock", fail_rules=["grok-4-1-fast-reasoning=1.0"])
    gw = Gateway(tmp_path / "gw", mock, config_text=cached_config())
    restarted: Optional[Gateway] = None
    try:
        h = gw.http()
        ok(h.post("/team/new", json={"team_id": "team-spend"}))
        gen = ok(h.post("/key/generate", json={
            "key_alias": "spender", "user_id": "user-spend", "team_id": "team-spend", "max_budget": 10.0,
        }))
        raw, token = gen["key"], gen["token"]
        client = gw.client(api_key=raw)
        # Another key's traffic, which must not count for this one.
        other = gw.client(api_key=ok(h.post("/key/generate", json={"key_alias": "bystander"}))["key"])
        other.chat.completions.create(model="minimax-m2.1", messages=[{"role": "user", "content": "bystander"}])

        ids: List[str] = []
        caches: List[str] = []
        # Plain, on each working model.
        for model in ("deepseek-v3.2", "minimax-m2.1"):
            r = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": f"plain {model} [{uuid.uuid4()}]"}]
            )
            assert r.parse().choices[0].message.content
            ids.append(r.headers["x-tollgate-request-id"])
        # Streamed.
        r = client.chat.completions.with_raw_response.create(
            model="deepseek-v3.2", messages=[{"role": "user", "content": f"streamed [{uuid.uuid4()}]"}],
            stream=True, stream_options={"include_usage": True},
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in r.parse() if ch.choices)
        ids.append(r.headers["x-tollgate-request-id"])
        # The same prompt twice, plain and streamed: the second of each is a response-cache hit.
        for stream in (False, True):
            prompt = [{"role": "user", "content": f"cache me, stream={stream} [{uuid.uuid4()}]"}]
            for _ in range(2):
                r = client.chat.completions.with_raw_response.create(
                    model="deepseek-v3.2", messages=prompt, stream=stream
                )
                body = r.parse()
                if stream:
                    assert "".join(ch.choices[0].delta.content or "" for ch in body if ch.choices)
                else:
                    assert body.choices[0].message.content
                ids.append(r.headers["x-tollgate-request-id"])
                caches.append(r.headers.get("x-tollgate-cache", ""))
        assert caches == ["miss", "hit", "miss", "hit"], caches
        # Failed upstream (the mock fails every grok request).
        with pytest.raises(openai.InternalServerError) as exc:
            client.chat.completions.create(model="grok-4.1-fast", messages=[{"role": "user", "content": "fail"}])
        ids.append(exc.value.response.headers["x-tollgate-request-id"])

        # Streams settle when their record closes, just after the last chunk: wait for spend to be still.
        def settled():
            a = ok(h.get("/key/info", params={"key": raw}))["info"]["spend"]
            time.sleep(0.3)
            b = ok(h.get("/key/info", params={"key": raw}))["info"]["spend"]
            return a == b, b

        spend = poll("key spend settled", settled, 10)
        assert spend > 0
        assert gw.stop() == 0, gw.stderr()

        records = sqlite_records(gw.data_dir)
        mine = [r for r in records if r.get("key_alias") == "spender"]
        # One record per request; a failed request adds its upstream attempt's (same request id).
        assert {r["request_id"] for r in mine} == set(ids)
        successes = [r for r in mine if r["status"] == "success"]
        assert sorted(r["request_id"] for r in successes) == sorted(ids[:-1])
        assert {r["key_hash"] for r in mine} == {token[:16]}
        assert {(r["user_id"], r["team_id"]) for r in mine} == {("user-spend", "team-spend")}
        assert [r for r in records if r.get("key_hash") == token[:16]] == mine
        failed = [r for r in mine if r["status"] != "success"]
        assert {r["request_id"] for r in failed} == {ids[-1]} and {r["http_status"] for r in failed} == {500}, failed
        assert [r["cache"] for r in successes].count("hit") == 2
        assert all(r["cost_usd"] == 0 for r in successes if r["cache"] == "hit")
        assert all((r["cost_usd"] or 0) == 0 for r in failed), failed
        total = sum(r["cost_usd"] or 0.0 for r in mine)
        assert total > 0
        assert spend == pytest.approx(total, abs=1e-9, rel=1e-9), (spend, total, [r["cost_usd"] for r in mine])
        # The raw key is in no record (SQLite and the JSONL log).
        db_text = (gw.data_dir / "tollgate.sqlite").read_bytes()
        assert raw.encode() not in db_text
        assert raw not in gw.jsonl_path.read_text()

        # The spend was written at shutdown: a restarted gateway on the same data dir shows it.
        restarted = Gateway(tmp_path / "gw", mock, config_path=gw.config_path)
        info = ok(restarted.http().get("/key/info", params={"key": raw}))["info"]
        assert info["spend"] == pytest.approx(total, abs=1e-9, rel=1e-9)
        assert restarted.stop() == 0, restarted.stderr()
    finally:
        gw.process.kill()
        if restarted is not None:
            restarted.process.kill()
        mock.process.terminate()


# ---------------------------------------------------------------------------------------------
# 5 and 6. Two instances, one Postgres
# ---------------------------------------------------------------------------------------------


def two_instances(shared_db: SharedDb, start_gateway, tmp_path: Path) -> Dict[str, Gateway]:
    config = tmp_path / "config.yaml"
    config.write_text(LITELLM_CONFIG)
    return {
        name: start_gateway(name, config_path=config, extra_args=pg_args(shared_db, name))
        for name in ("gw-a", "gw-b")
    }


def pg_records(shared_db: SharedDb) -> List[Dict[str, Any]]:
    return [json.loads(doc) for (doc,) in shared_db.query("SELECT json::text FROM tollgate_records")]


def test_keys_budget_holds_under_a_burst_on_two_instances(shared_db, start_gateway, tmp_path):
    gws = two_instances(shared_db, start_gateway, tmp_path)
    a, b = gws["gw-a"], gws["gw-b"]
    max_tokens = 20
    messages = lambda i: [{"role": "user", "content": f"burst request {i:03d} [{uuid.uuid4()}]"}]  # noqa: E731

    # One request's real cost, from the master key (no budget).
    probe = a.client().chat.completions.with_raw_response.create(
        model="deepseek-v3.2", messages=messages(999), max_tokens=max_tokens
    )
    one = float(probe.headers["x-tollgate-cost-usd"])
    usage = probe.parse().usage
    inp, _, out = PRICES["deepseek-v3.2"]
    assert one == pytest.approx(usage.prompt_tokens * inp + usage.completion_tokens * out, rel=1e-9)
    max_budget = round(5.5 * one, 12)

    gen = ok(a.http().post("/key/generate", json={
        "key_alias": "burst", "max_budget": max_budget, "budget_duration": "30d", "models": ["deepseek-v3.2"],
    }))
    raw, token = gen["key"], gen["token"]
    time.sleep(1.5)  # a key made on A is usable on B within ~1 s

    clients = {name: gw.client(api_key=raw) for name, gw in gws.items()}
    n = 50
    start = threading.Barrier(n)
    outcomes: List[Any] = [None] * n

    def fire(i: int) -> None:
        name = "gw-a" if i % 2 == 0 else "gw-b"
        start.wait()
        try:
            r = clients[name].chat.completions.with_raw_response.create(
                model="deepseek-v3.2", messages=messages(i), max_tokens=max_tokens
            )
            outcomes[i] = ("ok", name, r.headers["x-tollgate-request-id"], float(r.headers["x-tollgate-cost-usd"]))
        except openai.RateLimitError as e:
            outcomes[i] = ("429", name, e.response.headers.get("x-tollgate-request-id"), e.body, dict(e.response.headers))
        except Exception as e:  # noqa: BLE001 - any other outcome is a finding
            outcomes[i] = ("other", name, repr(e))

    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(fire, range(n)))

    others = [o for o in outcomes if o[0] == "other"]
    assert not others, others[:5]
    succeeded = [o for o in outcomes if o[0] == "ok"]
    refused = [o for o in outcomes if o[0] == "429"]
    assert succeeded, "no request of the burst got through"
    assert refused, f"all {n} requests got through a budget for ~5"
    assert len(succeeded) <= 6, f"{len(succeeded)} requests got through a budget of {max_budget} (one costs {one})"
    assert {o[1] for o in succeeded + refused} == {"gw-a", "gw-b"}
    for _, name, rid, body, headers in refused:
        assert body["type"] == "budget_exceeded" and body["code"] == "budget_exceeded", body
        assert body["scope"] == "key" and body["entity_id"] == "burst", body
        assert body["max_budget"] == pytest.approx(max_budget, rel=1e-12), body
        assert isinstance(body["spend"], (int, float)) and body["spend"] >= 0, body
        reset_at = parse_time(body["budget_reset_at"])
        assert reset_at > datetime.now(timezone.utc), body
        retry_after = int(headers["retry-after"])
        assert 0 < retry_after <= 31 * 86_400, headers  # 30d: until the first of next month
        assert rid, headers

    time.sleep(1.0)  # both instances' gathered spend is written (every 250 ms)
    for name, gw in gws.items():
        poll(f"{name} shipped every record", lambda gw=gw: drained(gw), 30)
    infos = {name: ok(gw.http().get("/key/info", params={"key": raw}))["info"] for name, gw in gws.items()}
    spend = infos["gw-a"]["spend"]
    assert infos["gw-b"]["spend"] == pytest.approx(spend, abs=1e-12), infos
    assert spend <= max_budget + 1e-9, (spend, max_budget)

    mine = [r for r in pg_records(shared_db) if r.get("key_hash") == token[:16]]
    assert all(r["key_alias"] == "burst" for r in mine)
    assert {r["request_id"] for r in mine} == {o[2] for o in succeeded + refused}, f"{len(mine)} records for {n} requests"
    ok_records = [r for r in mine if r["status"] == "success"]
    assert sorted(r["request_id"] for r in ok_records) == sorted(o[2] for o in succeeded)
    assert all(r["http_status"] == 429 for r in mine if r["status"] != "success")
    assert {r["instance_id"] for r in mine} == {"gw-a", "gw-b"}
    total = sum(r["cost_usd"] or 0.0 for r in mine)
    assert total == pytest.approx(sum(o[3] for o in succeeded), abs=1e-12)
    assert spend == pytest.approx(total, abs=1e-9, rel=1e-9), (spend, total)
    # Every hold was given back (the store's own columns): nothing stays reserved after the burst.
    [(stored_spend, reserved)] = shared_db.query("SELECT spend, reserved FROM tollgate_keys WHERE token = %s", (token,))
    assert reserved == pytest.approx(0.0, abs=1e-12), (stored_spend, reserved)
    assert stored_spend == pytest.approx(total, abs=1e-9, rel=1e-9)
    for gw in gws.values():
        assert gw.stop() == 0, gw.stderr()


def test_keys_blocked_on_one_instance_is_refused_on_the_other(shared_db, start_gateway, tmp_path):
    gws = two_instances(shared_db, start_gateway, tmp_path)
    a, b = gws["gw-a"], gws["gw-b"]
    gen = ok(a.http().post("/key/generate", json={"key_alias": "blockme"}))
    raw = gen["key"]

    # B learns the key (and caches it).
    def works_on_b():
        r = chat_raw(b, raw)
        return r.status_code == 200, r.text

    poll("the key from A works on B", works_on_b, 5, interval=0.05)
    assert chat_raw(b, raw).status_code == 200

    ok(a.http().post("/key/block", json={"key": raw}))
    blocked_at = time.monotonic()
    request_error(chat_raw(a, raw), 401, "key_blocked")  # at once where it was blocked

    def refused_on_b():
        r = chat_raw(b, raw)
        return r.status_code == 401 and r.json()["error"]["code"] == "key_blocked", (r.status_code, r.text)

    poll("the block reaches B", refused_on_b, KEY_CACHE_TTL_S + PROPAGATION_SLACK_S, interval=0.05)
    took = time.monotonic() - blocked_at
    assert took <= KEY_CACHE_TTL_S + PROPAGATION_SLACK_S, took
    # And it stays refused (not one lucky miss).
    for _ in range(3):
        request_error(chat_raw(b, raw), 401, "key_blocked")
    assert ok(b.http().get("/key/info", params={"key": raw}))["info"]["blocked"] is True

    # Unblocked on B: back on A within the same time.
    ok(b.http().post("/key/unblock", json={"key": raw}))
    unblocked_at = time.monotonic()
    poll("the unblock reaches A", lambda: (lambda r: (r.status_code == 200, r.text))(chat_raw(a, raw)),
         KEY_CACHE_TTL_S + PROPAGATION_SLACK_S, interval=0.05)
    assert time.monotonic() - unblocked_at <= KEY_CACHE_TTL_S + PROPAGATION_SLACK_S
    # Deleted on A: gone on B within the same time.
    ok(a.http().post("/key/delete", json={"keys": [raw]}))
    poll("the delete reaches B",
         lambda: (lambda r: (r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", r.text))(chat_raw(b, raw)),
         KEY_CACHE_TTL_S + PROPAGATION_SLACK_S, interval=0.05)
    for gw in gws.values():
        assert gw.stop() == 0, gw.stderr()


# ---------------------------------------------------------------------------------------------
# 7. Rate limits: rpm, tpm, parallel and per-model, in Redis across instances or per process
# ---------------------------------------------------------------------------------------------

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/"


class LimitRedis:
    """The test Redis and a key prefix no other test or run uses."""

    def __init__(self, url: str):
        self.url = url
        self.prefix = f"tollgate:e2e:{uuid.uuid4().hex}"
        self.client = redis.Redis.from_url(url, socket_timeout=5)

    def keys(self) -> List[bytes]:
        return list(self.client.scan_iter(match=f"{self.prefix}:*"))

    def flush(self) -> None:
        """Deletes this test's keys, and only them."""
        keys = self.keys()
        if keys:
            self.client.delete(*keys)


@pytest.fixture
def limit_redis() -> LimitRedis:
    url = os.environ.get("TOLLGATE_TEST_REDIS_URL")
    if not url:
        if not os.environ.get("TOLLGATE_CI"):
            pytest.skip(
                "no Redis for the cross-instance rate-limit tests: set TOLLGATE_TEST_REDIS_URL "
                f"(e.g. {DEFAULT_REDIS_URL}), or TOLLGATE_CI=1 for that default"
            )
        url = DEFAULT_REDIS_URL
    r = LimitRedis(url)
    try:
        r.client.ping()
    except redis.RedisError as e:
        # Asked for explicitly (or in CI): a missing Redis is a failure, not a skip.
        pytest.fail(f"cannot reach the test Redis {url}: {e}", pytrace=False)
    yield r
    r.flush()


@pytest.fixture(params=["local", "redis"])
def limit_backend(request) -> Optional[LimitRedis]:
    """Where the gateway counts limits: per process, or in the test Redis (skipped without one)."""
    return request.getfixturevalue("limit_redis") if request.param == "redis" else None


def limits_config(r: Optional[LimitRedis], base: str = LITELLM_CONFIG) -> str:
    """The LiteLLM config, counting rate limits in `r` (LiteLLM's router_settings.redis_url)."""
    if r is None:
        return base
    text = base.replace("router_settings:\n", f"router_settings:\n  redis_url: {r.url}\n", 1)
    return text + f"\ntollgate_settings:\n  rate_limit_prefix: {r.prefix}\n"


def readiness(gw: Gateway) -> Dict[str, Any]:
    return ok(httpx.get(f"{gw.url}/health/readiness", headers=bearer(MASTER_KEY), timeout=10))


def test_keys_rpm_limit_admits_exactly_its_value_over_two_instances(shared_db, limit_redis, start_gateway, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(limits_config(limit_redis))
    gws = {name: start_gateway(name, config_path=config, extra_args=pg_args(shared_db, name)) for name in ("gw-a", "gw-b")}
    for gw in gws.values():
        assert readiness(gw)["rate_limits"] == "redis"
        assert "rate limits: redis" in gw.stderr(), gw.stderr()
    gen = ok(gws["gw-a"].http().post("/key/generate", json={"key_alias": "rpm-ten", "rpm_limit": 10}))
    raw = gen["key"]
    time.sleep(1.5)  # a key made on A is usable on B within ~1 s

    clients = {name: gw.client(api_key=raw) for name, gw in gws.items()}
    n = 24
    start = threading.Barrier(n)
    outcomes: List[Any] = [None] * n

    def fire(i: int) -> None:
        name = "gw-a" if i % 2 == 0 else "gw-b"
        start.wait()
        try:
            r = clients[name].chat.completions.with_raw_response.create(
                model="deepseek-v3.2", messages=[{"role": "user", "content": f"rpm {i} [{uuid.uuid4()}]"}], max_tokens=8
            )
            outcomes[i] = ("ok", name, dict(r.headers))
        except openai.RateLimitError as e:
            outcomes[i] = ("429", name, e.body, dict(e.response.headers))
        except Exception as e:  # noqa: BLE001 - any other outcome is a finding
            outcomes[i] = ("other", name, repr(e))

    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(fire, range(n)))

    assert not [o for o in outcomes if o[0] == "other"], outcomes
    admitted = [o for o in outcomes if o[0] == "ok"]
    refused = [o for o in outcomes if o[0] == "429"]
    assert len(admitted) == 10, f"{len(admitted)} of {n} admitted under rpm_limit 10 over two instances"
    assert {o[1] for o in admitted + refused} == {"gw-a", "gw-b"}
    for _, _, headers in admitted:
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert 0 <= int(headers["x-ratelimit-key-remaining-requests"]) <= 9, headers
    for _, _, body, headers in refused:
        assert body["code"] == "rpm_limit" and body["type"] == "rate_limit_error", body
        assert body["scope"] == "key" and body["entity_id"] == "rpm-ten", body
        assert "rpm_limit of 10" in body["message"] and "across gateway instances" in body["message"], body
        assert raw not in body["message"]
        assert 1 <= int(headers["retry-after"]) <= 6, headers
        assert headers["x-ratelimit-key-remaining-requests"] == "0", headers
    # Every request is counted in Redis, none fell back to a process of its own.
    for gw in gws.values():
        assert readiness(gw)["rate_limits_redis"]["counted_locally"] == 0
        assert gw.stop() == 0, gw.stderr()


def test_keys_tpm_limit_is_not_tripped_below_its_value(limit_backend, start_gateway):
    gw = start_gateway("tpm", config_text=limits_config(limit_backend))
    assert readiness(gw)["rate_limits"] == ("local" if limit_backend is None else "redis")
    messages = [{"role": "user", "content": "count my tokens"}]
    # What one request uses (the mock's answer to the same prompt is the same size).
    probe = gw.client().chat.completions.create(model="deepseek-v3.2", messages=messages, max_tokens=16)
    one = probe.usage.total_tokens
    assert one > 0
    tpm = one * 5 + one // 2
    raw = ok(gw.http().post("/key/generate", json={"key_alias": "tpm", "tpm_limit": tpm}))["key"]
    client = gw.client(api_key=raw)
    used = 0
    refusal = None
    for _ in range(20):
        try:
            r = client.chat.completions.with_raw_response.create(model="deepseek-v3.2", messages=messages, max_tokens=16)
        except openai.RateLimitError as e:
            refusal = e
            break
        used += r.parse().usage.total_tokens
        assert r.headers["x-ratelimit-limit-tokens"] == str(tpm)
    assert refusal is not None, f"{used} tokens used under tpm_limit {tpm} and never refused"
    # Refused only once the key had used its whole limit: never below it.
    assert used >= tpm, f"refused after {used} tokens under tpm_limit {tpm}"
    assert used <= tpm + one, f"{used} tokens admitted under tpm_limit {tpm}"
    assert refusal.body["code"] == "tpm_limit" and f"tpm_limit of {tpm}" in refusal.body["message"], refusal.body
    assert int(refusal.response.headers["retry-after"]) >= 1

    # A burst of large prompts: each takes its estimated prompt tokens (bytes / 4) when admitted,
    # so they cannot all pass a window that is nearly full before any of them has ended.
    burst_key = ok(gw.http().post("/key/generate", json={"key_alias": "tpm-burst", "tpm_limit": 1000}))["key"]
    burst = gw.client(api_key=burst_key)
    n = 10
    start = threading.Barrier(n)

    def large(i: int) -> str:
        start.wait()
        try:
            burst.chat.completions.create(
                model="deepseek-v3.2", messages=[{"role": "user", "content": f"{i} " + "x" * 2400}], max_tokens=4
            )
            return "ok"
        except openai.RateLimitError as e:
            assert e.code == "tpm_limit", e.body
            return "429"

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(large, range(n)))
    # ~600 estimated tokens each under 1,000: the second still fits (600 is not over), the
    # third would not, wherever the first two are.
    assert 1 <= results.count("ok") <= 2, results
    assert gw.stop() == 0, gw.stderr()


def test_keys_parallel_slot_comes_back_when_the_client_disconnects_mid_stream(limit_backend, tmp_path):
    # grok streams half its answer, then stalls with the connection open: only the client
    # leaving ends that request.
    mock = Mock(tmp_path / "mock", fail_rules=["grok-4-1-fast-reasoning=1.0:stall"])
    gw = Gateway(tmp_path / "gw", mock, config_text=limits_config(limit_backend))
    try:
        raw = ok(gw.http().post("/key/generate", json={"key_alias": "one-at-a-time", "max_parallel_requests": 1}))["key"]
        client = gw.client(api_key=raw)
        stream = client.chat.completions.create(
            model="grok-4.1-fast", messages=[{"role": "user", "content": "a long answer please"}], stream=True
        )
        first = next(iter(stream))
        assert first.choices, first
        # The stream holds the key's one slot.
        with pytest.raises(openai.RateLimitError) as exc:
            client.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "me too"}])
        assert exc.value.code == "max_parallel_requests", exc.value.body
        assert "max_parallel_requests of 1" in exc.value.body["message"]
        # The client goes away mid-stream.
        stream.close()
        left = time.monotonic()

        def admitted():
            r = chat_raw(gw, raw)
            return r.status_code == 200, (r.status_code, r.text)

        poll("the slot to come back", admitted, 2.0, interval=0.05)
        assert time.monotonic() - left <= 2.0
        assert gw.stop() == 0, gw.stderr()
    finally:
        gw.process.kill()
        mock.process.terminate()


def test_keys_model_rpm_limit_on_one_model_does_not_limit_another(limit_backend, start_gateway):
    gw = start_gateway("per-model", config_text=limits_config(limit_backend))
    raw = ok(gw.http().post("/key/generate", json={"key_alias": "per-model", "model_rpm_limit": {"deepseek-v3.2": 2}}))["key"]
    client = gw.client(api_key=raw)
    hi = [{"role": "user", "content": "hi"}]
    for left in (1, 0):
        r = client.chat.completions.with_raw_response.create(model="deepseek-v3.2", messages=hi)
        assert r.headers["x-ratelimit-model_per_key-remaining-requests"] == str(left), dict(r.headers)
        assert r.headers["x-ratelimit-model_per_key-limit-requests"] == "2"
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="deepseek-v3.2", messages=hi)
    body = exc.value.body
    assert body["code"] == "rpm_limit" and body["scope"] == "key_model", body
    assert "per-model/deepseek-v3.2" in body["message"] and "model_rpm_limit of 2" in body["message"], body
    # The key's other models are not limited by it.
    for model in ("minimax-m2.1", "grok-4.1-fast", "minimax-m2.1", "grok-4.1-fast", "minimax-m2.1"):
        r = client.chat.completions.with_raw_response.create(model=model, messages=hi)
        assert r.parse().choices[0].message.content
        assert "x-ratelimit-model_per_key-remaining-requests" not in r.headers
    assert gw.stop() == 0, gw.stderr()
