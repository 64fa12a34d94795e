"""Every request becomes one record with its exact cost; SIGTERM writes them all; secrets never
reach the records. These tests own their gateway, since they stop it."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Dict, List

import openai
import pytest

from conftest import (
    ALL_SECRETS,
    EMBEDDING_KEY,
    EMBEDDING_MODEL,
    EMBEDDING_PRICE,
    LITELLM_CONFIG_WITH_EMBEDDINGS,
    PRICES,
)

SECRETS = ALL_SECRETS + [EMBEDDING_KEY]


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def chat_cost(group: str, prompt: int, cached: int, completion: int) -> float:
    inp, cache_read, out = PRICES[group]
    return (prompt - cached) * inp + cached * cache_read + completion * out


def test_embeddings_return_vectors_and_usage(start_gateway):
    gw = start_gateway("embeddings", config_text=LITELLM_CONFIG_WITH_EMBEDDINGS)
    client = gw.client()
    raw = client.embeddings.with_raw_response.create(
        model=EMBEDDING_MODEL, input=["hello world", "a second, longer input text"]
    )
    resp = raw.parse()
    assert resp.model == EMBEDDING_MODEL
    assert [d.index for d in resp.data] == [0, 1]
    assert all(len(d.embedding) > 0 for d in resp.data)
    assert resp.data[0].embedding != resp.data[1].embedding
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens
    assert raw.headers["x-tollgate-model-group"] == EMBEDDING_MODEL
    cost = float(raw.headers["x-tollgate-cost-usd"])
    assert cost == pytest.approx(resp.usage.prompt_tokens * EMBEDDING_PRICE, abs=1e-10)
    # The SDK's default base64 encoding round-trips too.
    assert len(client.embeddings.create(model=EMBEDDING_MODEL, input="x").data[0].embedding) > 0


def test_records_match_responses_and_hold_no_secrets(start_gateway):
    gw = start_gateway("records", config_text=LITELLM_CONFIG_WITH_EMBEDDINGS)
    client = gw.client()
    expect: Dict[str, dict] = {}  # request id -> what the record must say

    # 1. Plain DeepSeek chat, tagged with a LiteLLM session id.
    q = f"Records test [{uuid.uuid4()}]"
    raw = client.chat.completions.with_raw_response.create(
        model="deepseek-v3.2",
        messages=[{"role": "user", "content": q}],
        extra_body={"metadata": {"session_id": "e2e-records-session"}},
    )
    u = raw.parse().usage
    expect[raw.headers["x-tollgate-request-id"]] = dict(
        group="deepseek-v3.2", usage=u, stream=False, session="e2e-records-session",
        header_cost=float(raw.headers["x-tollgate-cost-usd"]),
    )

    # 2-3. The same long-prefix conversation twice: the second reads from the provider cache.
    system = f"You are a meticulous reviewer [{uuid.uuid4()}]. " + "Check every diff. " * 40
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Review it."}]
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="deepseek-v3.2", messages=messages)
        u = raw.parse().usage
        expect[raw.headers["x-tollgate-request-id"]] = dict(
            group="deepseek-v3.2", usage=u, stream=False,
            header_cost=float(raw.headers["x-tollgate-cost-usd"]),
        )
    assert u.prompt_tokens_details.cached_tokens > 0

    # 4. A stream that did not ask for usage is still recorded with its usage and cost: compare
    #    with the same request done plain (a one-message prompt has no cacheable prefix).
    q = f"Stream for the record [{uuid.uuid4()}]"
    plain = client.chat.completions.with_raw_response.create(
        model="minimax-m2.1", messages=[{"role": "user", "content": q}]
    )
    expect[plain.headers["x-tollgate-request-id"]] = dict(
        group="minimax-m2.1", usage=plain.parse().usage, stream=False,
        header_cost=float(plain.headers["x-tollgate-cost-usd"]),
    )
    raw = client.chat.completions.with_raw_response.create(
        model="minimax-m2.1", messages=[{"role": "user", "content": q}], stream=True
    )
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)
    expect[raw.headers["x-tollgate-request-id"]] = dict(
        group="minimax-m2.1", usage=plain.parse().usage, stream=True
    )

    # 5. An unknown model: a failure record with the id the error response carried.
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    failed_id = exc.value.response.headers["x-tollgate-request-id"]

    # 6. A wrong key is not recorded (anyone could fill the store with them).
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key="sk-intruder-" + "1" * 20).chat.completions.create(
            model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}]
        )

    # 7. Embeddings.
    emb = client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input="index this sentence")
    emb_id = emb.headers["x-tollgate-request-id"]
    emb_tokens = emb.parse().usage.prompt_tokens

    # Graceful shutdown: SIGTERM, exit 0, every accepted record written.
    n = len(expect) + 2
    assert gw.stop() == 0, gw.stderr()
    err = gw.stderr()
    assert f"stopped: {n} records written, 0 failed, 0 dropped" in err, err

    records = read_jsonl(gw.jsonl_path)
    assert len(records) == n, "one line per request"
    by_id = {r["request_id"]: r for r in records}
    assert set(by_id) == set(expect) | {failed_id, emb_id}

    for rid, e in expect.items():
        r = by_id[rid]
        usage = e["usage"]
        cached = usage.prompt_tokens_details.cached_tokens
        assert r["status"] == "success", r
        assert r["http_status"] == 200
        assert r["model_group"] == e["group"]
        assert r["stream"] == e["stream"]
        assert r["prompt_tokens"] == usage.prompt_tokens
        assert r["completion_tokens"] == usage.completion_tokens
        assert r["reasoning_tokens"] == usage.completion_tokens_details.reasoning_tokens
        assert r["cached_tokens"] == cached
        want = chat_cost(e["group"], usage.prompt_tokens, cached, usage.completion_tokens)
        assert abs(r["cost_usd"] - want) <= 1e-12, (r["cost_usd"], want)
        assert r["unpriced"] is False
        if "header_cost" in e:
            assert r["cost_usd"] == pytest.approx(e["header_cost"], abs=1e-10)
        if "session" in e:
            assert r["session_id"] == e["session"]
        assert r["cache"] == "off"
        assert r["latency_ms"] >= 0
    ds = [by_id[rid] for rid, e in expect.items() if e["group"] == "deepseek-v3.2"]
    assert all(r["model"] == "deepseek/deepseek-v3.2" and r["provider"] == "deepseek" for r in ds)
    assert any(r["cached_tokens"] > 0 for r in ds)

    f = by_id[failed_id]
    assert f["status"] == "failure"
    assert f["http_status"] == 404
    assert f["model_group"] == "no-such-model"
    assert f["error_message"]

    e = by_id[emb_id]
    assert e["status"] == "success"
    assert e["prompt_tokens"] == emb_tokens
    assert abs(e["cost_usd"] - emb_tokens * EMBEDDING_PRICE) <= 1e-12

    # The SQLite store holds the same records.
    db_path = gw.data_dir / "tollgate.sqlite"
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = dict(db.execute("SELECT request_id, cost_usd FROM records").fetchall())
    assert set(rows) == set(by_id)
    for rid, cost in rows.items():
        if by_id[rid]["cost_usd"] is not None:
            assert abs(cost - by_id[rid]["cost_usd"]) <= 1e-12

    # Secrets never reach the records, the database files or the logs.
    files = [gw.jsonl_path, *sorted(gw.data_dir.iterdir())]
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret[:8]}… found in {path.name}"
    for secret in SECRETS:
        assert secret not in err
