"""LiteLLM's request-level routing controls and test hooks through the official OpenAI SDK
(`extra_body` for LiteLLM's fields): fallbacks and retries from the body, the timeout header, a
comma-separated model list, `mock_response` and the `mock_testing_*` hooks."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import List

import openai
import pytest

from conftest import PRICES


def ask(text: str) -> list:
    return [{"role": "user", "content": f"{text} [{uuid.uuid4()}]"}]


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_fallbacks_and_num_retries_from_the_body(failing_gateway):
    # On the failing provider DeepSeek always answers 500 and MiniMax 429; grok answers.
    client = failing_gateway.client()
    raw = client.chat.completions.with_raw_response.create(
        model="deepseek-v3.2",
        messages=ask("fall back"),
        extra_body={"fallbacks": ["grok-4.1-fast"]},
    )
    assert raw.parse().model == "grok-4.1-fast"
    assert raw.headers["x-litellm-attempted-fallbacks"] == "1"

    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.with_raw_response.create(
            model="minimax-m2.1", messages=ask("retry"), extra_body={"num_retries": 1}
        )
    assert e.value.response.headers["x-litellm-attempted-retries"] == "1"

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="grok-4.1-fast", messages=ask("typo"), extra_body={"fallbacks": ["no-such-model"]}
        )
    assert e.value.body["code"] == "invalid_fallback"


def test_the_timeout_header_cuts_the_wait(client):
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(
            model="deepseek-v3.2",
            messages=ask("slow"),
            extra_headers={"x-litellm-timeout": "0.3"},
            extra_body={"mock_timeout": True},
        )
    assert e.value.status_code == 504
    assert e.value.body["type"] == "timeout"
    assert 0.3 <= time.monotonic() - started < 5


def test_a_comma_list_returns_the_first_answer_plain_and_streamed(failing_gateway):
    client = failing_gateway.client()
    resp = client.chat.completions.create(model="deepseek-v3.2,grok-4.1-fast", messages=ask("race"))
    assert resp.model == "grok-4.1-fast"
    assert resp.choices[0].message.content

    stream = client.chat.completions.create(
        model="minimax-m2.1,grok-4.1-fast",
        messages=ask("race a stream"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage.completion_tokens > 0


def test_mock_response_and_the_mock_testing_hooks(start_gateway):
    gw = start_gateway("mocks")
    client = gw.client()
    before = gw.mock.stats()

    raw = client.chat.completions.with_raw_response.create(
        model="deepseek-v3.2", messages=ask("mock me"), extra_body={"mock_response": "Mocked answer."}
    )
    resp = raw.parse()
    assert resp.choices[0].message.content == "Mocked answer."
    assert resp.usage.completion_tokens == 5
    plain_cost = float(raw.headers["x-tollgate-cost-usd"])
    inp, _, out = PRICES["deepseek-v3.2"]
    assert plain_cost == pytest.approx(resp.usage.prompt_tokens * inp + 5 * out, abs=1e-12)

    stream = client.chat.completions.create(
        model="deepseek-v3.2",
        messages=ask("mock a stream"),
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock_response": "Mocked answer."},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Mocked answer."
    assert chunks[-1].usage.completion_tokens == 5

    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="deepseek-v3.2", messages=ask("mock an error"), extra_body={"mock_response": "litellm.RateLimitError"}
        )
    assert gw.mock.stats() == before, "no mocked request reached the provider"

    # The requested group fails, its fallback (the provider) answers.
    raw = client.chat.completions.with_raw_response.create(
        model="deepseek-v3.2",
        messages=ask("fallbacks"),
        extra_body={"mock_testing_fallbacks": True, "fallbacks": ["grok-4.1-fast"]},
    )
    assert raw.parse().model == "grok-4.1-fast"
    assert raw.headers["x-litellm-attempted-fallbacks"] == "1"

    # The first attempt is a 429; the retry answers.
    raw = client.chat.completions.with_raw_response.create(
        model="minimax-m2.1",
        messages=ask("rate limited"),
        extra_body={"mock_testing_rate_limit_error": True, "num_retries": 1},
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-litellm-attempted-retries"] == "1"

    assert gw.stop() == 0, gw.stderr()
    records = read_jsonl(gw.jsonl_path)
    mocked = [r for r in records if r.get("mocked")]
    assert len(mocked) == 2, mocked
    for r in mocked:
        assert r["status"] == "success" and r["model_group"] == "deepseek-v3.2"
        assert r["cost_usd"] > 0
    # The mocked error (its attempt and the request) and the mocked rate limit's first attempt.
    assert sum(1 for r in records if r["http_status"] == 429) == 3
    assert any(r["http_status"] == 500 and r["model_group"] == "deepseek-v3.2" for r in records)
    assert all("mocked" not in r for r in records if r not in mocked)
