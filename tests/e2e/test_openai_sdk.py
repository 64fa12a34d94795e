"""The official OpenAI Python SDK against tollgate running an unmodified LiteLLM config.yaml:
plain and streamed chat, usage and cost, prompt-cache accounting, model listing, errors."""

from __future__ import annotations

import json
import uuid
from typing import List, Optional

import httpx
import openai
import pytest

from conftest import ALL_SECRETS, GROUPS, MASTER_KEY, PRICES


def unique(text: str) -> str:
    """A prompt no other test sends, so the mock's provider-side prompt cache stays out of it."""
    return f"{text} [{uuid.uuid4()}]"


def expected_cost(group: str, prompt: int, cached: int, completion: int) -> float:
    inp, cache_read, out = PRICES[group]
    return (prompt - cached) * inp + cached * cache_read + completion * out


def extra(obj, name: str):
    """A field the SDK's types do not declare (provider-specific), kept by its pydantic models."""
    return (obj.model_extra or {}).get(name)


# ---------------------------------------------------------------------------------------------
# plain chat


@pytest.mark.parametrize("group", list(GROUPS))
def test_plain_chat(client, group):
    raw = client.chat.completions.with_raw_response.create(
        model=group,
        messages=[{"role": "user", "content": unique("What does a gateway do?")}],
    )
    resp = raw.parse()
    h = raw.headers

    assert resp.object == "chat.completion"
    assert resp.model == group, "clients see the model group they asked for, as with LiteLLM"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content, "the answer has content"
    assert resp.choices[0].finish_reason == "stop"

    u = resp.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens == 0
    reasoning = u.completion_tokens_details.reasoning_tokens
    assert 0 <= reasoning <= u.completion_tokens
    if group == "deepseek-v3.2":
        assert reasoning > 0, "DeepSeek's reasoning tokens reach the client"
        # DeepSeek's own field for the thinking text passes through untouched.
        assert extra(resp.choices[0].message, "reasoning_content")

    request_id = h["x-tollgate-request-id"]
    assert uuid.UUID(request_id)
    assert h["x-litellm-call-id"] == request_id
    assert h["x-tollgate-model-group"] == group
    assert h["x-litellm-model-group"] == group
    assert h["x-tollgate-cache"] == "off"
    # The gateway's own time: positive (a clamped or missing figure would be 0) and a small
    # part of the request (the mock answers within milliseconds, so this is loose).
    assert 0.0 < float(h["x-tollgate-overhead-ms"]) < 1000.0
    cost = float(h["x-tollgate-cost-usd"])
    assert float(h["x-litellm-response-cost"]) == pytest.approx(cost, abs=1e-10)
    # The header carries 10 decimals.
    assert cost == pytest.approx(
        expected_cost(group, u.prompt_tokens, 0, u.completion_tokens), abs=1e-10
    )
    assert cost > 0


def test_responses_are_deterministic_and_distinct_per_prompt(client):
    q = unique("Same question twice")
    a = client.chat.completions.create(model="grok-4.1-fast", messages=[{"role": "user", "content": q}])
    b = client.chat.completions.create(model="grok-4.1-fast", messages=[{"role": "user", "content": q}])
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage.model_dump() == b.usage.model_dump()
    c = client.chat.completions.create(model="grok-4.1-fast", messages=[{"role": "user", "content": q + "?"}])
    assert c.choices[0].message.content != a.choices[0].message.content


# ---------------------------------------------------------------------------------------------
# streaming


def collect(stream) -> tuple:
    chunks = list(stream)
    content = "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].delta
    )
    return chunks, content


@pytest.mark.parametrize("group", ["deepseek-v3.2", "minimax-m2.1"])
def test_stream_with_include_usage_matches_plain(client, group):
    messages = [{"role": "user", "content": unique("Stream me an answer")}]
    plain = client.chat.completions.create(model=group, messages=messages)

    raw = client.chat.completions.with_raw_response.create(
        model=group, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-tollgate-model-group"] == group
    assert raw.headers["x-tollgate-request-id"]
    assert raw.headers["x-tollgate-cache"] == "off"
    chunks, content = collect(raw.parse())

    assert len(chunks) >= 3
    assert content == plain.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]

    last = chunks[-1]
    assert last.choices == [], "usage comes on a last, choice-less chunk"
    assert last.usage is not None
    assert last.model == group
    assert last.usage.model_dump() == plain.usage.model_dump(), "same request, same usage, streamed or not"
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_chunks_name_the_model_group(client):
    """Every chunk of a stream, not only the usage chunk, carries the group the client asked for,
    as the plain response does (here the upstream name differs: grok-4-1-fast-reasoning)."""
    stream = client.chat.completions.create(
        model="grok-4.1-fast",
        messages=[{"role": "user", "content": unique("Which model am I talking to?")}],
        stream=True,
        stream_options={"include_usage": True},
    )
    models = {c.model for c in stream}
    assert models == {"grok-4.1-fast"}


def test_stream_without_include_usage_has_no_usage_chunk(client):
    messages = [{"role": "user", "content": unique("Stream without usage")}]
    plain = client.chat.completions.create(model="deepseek-v3.2", messages=messages)
    stream = client.chat.completions.create(model="deepseek-v3.2", messages=messages, stream=True)
    chunks, content = collect(stream)
    assert content == plain.choices[0].message.content
    assert chunks, "the stream has chunks"
    # The gateway asks the provider for usage (for its record) and strips that chunk again.
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_stream_reasoning_content_passes_through(client):
    stream = client.chat.completions.create(
        model="deepseek-v3.2",
        messages=[{"role": "user", "content": unique("Think, then answer")}],
        stream=True,
    )
    reasoning = "".join(
        extra(c.choices[0].delta, "reasoning_content") or "" for c in stream if c.choices
    )
    assert reasoning


# ---------------------------------------------------------------------------------------------
# provider prompt cache (usage accounting)


def test_repeated_prefix_reports_cached_tokens_and_cheaper_cost(client):
    # A long system prompt (well over DeepSeek's 64-token cache block) followed by a question.
    system = unique("You are a careful coding agent. " * 40)
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": "List the files."},
    ]
    first = client.chat.completions.with_raw_response.create(model="deepseek-v3.2", messages=messages)
    second = client.chat.completions.with_raw_response.create(model="deepseek-v3.2", messages=messages)
    u1, u2 = first.parse().usage, second.parse().usage

    assert u1.prompt_tokens_details.cached_tokens == 0
    cached = u2.prompt_tokens_details.cached_tokens
    assert cached > 0, "the second identical request hits the provider's prompt cache"
    assert cached <= u2.prompt_tokens
    assert cached % 64 == 0
    assert u2.prompt_tokens == u1.prompt_tokens
    assert u2.total_tokens == u2.prompt_tokens + u2.completion_tokens

    # DeepSeek's native fields survive beside OpenAI's.
    assert extra(u2, "prompt_cache_hit_tokens") == cached
    assert extra(u2, "prompt_cache_miss_tokens") == u2.prompt_tokens - cached
    assert extra(u1, "prompt_cache_hit_tokens") == 0

    c1 = float(first.headers["x-tollgate-cost-usd"])
    c2 = float(second.headers["x-tollgate-cost-usd"])
    assert c1 == pytest.approx(expected_cost("deepseek-v3.2", u1.prompt_tokens, 0, u1.completion_tokens), abs=1e-10)
    assert c2 == pytest.approx(
        expected_cost("deepseek-v3.2", u2.prompt_tokens, cached, u2.completion_tokens), abs=1e-10
    )
    assert c2 < c1


def test_streamed_cache_hit_is_reported_in_the_usage_chunk(client):
    system = unique("Repository map: src/ lib/ tests/ docs/ " * 20)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Go on."}]
    client.chat.completions.create(model="deepseek-v3.2", messages=messages)
    chunks, _ = collect(
        client.chat.completions.create(
            model="deepseek-v3.2", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage.prompt_tokens_details.cached_tokens > 0
    assert extra(usage, "prompt_cache_hit_tokens") == usage.prompt_tokens_details.cached_tokens


# ---------------------------------------------------------------------------------------------
# models


def test_models_list_has_exactly_the_config_groups(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert sorted(ids) == sorted(GROUPS)
    assert ids == list(GROUPS), "config order"
    assert all(m.object == "model" for m in models.data)


def test_model_info_has_context_windows_and_no_keys(gateway):
    with gateway.http() as http:
        r = http.get("/v1/model/info")
    assert r.status_code == 200
    body = r.json()
    by_group = {}
    for entry in body["data"]:
        by_group.setdefault(entry["model_name"], []).append(entry)
    assert set(by_group) == set(GROUPS)
    ds = by_group["deepseek-v3.2"][0]
    assert ds["model_info"]["max_input_tokens"] == 163840
    assert ds["model_info"]["input_cost_per_token"] == pytest.approx(2.8e-07)
    assert ds["model_info"]["output_cost_per_token"] == pytest.approx(4e-07)
    assert ds["model_info"]["cache_read_input_token_cost"] == pytest.approx(2.8e-08)
    for secret in ALL_SECRETS:
        assert secret not in r.text


def test_model_info_and_models_need_the_key(gateway):
    r = httpx.get(f"{gateway.url}/v1/model/info", timeout=10)
    assert r.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        gateway.client(api_key="sk-not-the-master-key-000000").models.list()


def test_health_endpoints(gateway):
    live = httpx.get(f"{gateway.url}/health/liveliness", timeout=10)
    assert live.status_code == 200 and live.json() == "I'm alive!"
    ready = httpx.get(f"{gateway.url}/health/readiness", timeout=10).json()
    assert ready["status"] == "healthy"
    assert ready["model_groups"] == 3
    assert ready["auth"] == "master_key"
    assert ready["cache"]["state"] == "off"
    for secret in ALL_SECRETS:
        assert secret not in json.dumps(ready)


# ---------------------------------------------------------------------------------------------
# errors: each maps to the SDK exception a client catches


def assert_openai_error_shape(body: dict) -> dict:
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    assert "code" in err and err["code"] is not None
    return err


def test_wrong_key_is_authentication_error(gateway):
    bad = gateway.client(api_key="sk-wrong-" + "0" * 24)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 401
    err = assert_openai_error_shape(exc.value.response.json())
    assert err["code"] == "invalid_api_key"
    assert MASTER_KEY not in exc.value.response.text


def test_missing_key_is_401(gateway):
    r = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert r.status_code == 401
    assert assert_openai_error_shape(r.json())["code"] == "missing_api_key"


def test_x_api_key_header_is_accepted(gateway):
    r = httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={"x-api-key": MASTER_KEY},
        json={"model": "minimax-m2.1", "messages": [{"role": "user", "content": unique("hi")}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_unknown_model_is_not_found_and_lists_known_models(client):
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-5-turbo", messages=[{"role": "user", "content": "hi"}])
    e = exc.value
    assert e.status_code == 404
    assert e.code == "model_not_found"
    assert "gpt-5-turbo" in e.message
    for group in GROUPS:
        assert group in e.message
    assert e.response.headers["x-tollgate-request-id"]


def test_malformed_json_is_400_in_openai_shape(gateway):
    with gateway.http() as http:
        r = http.post(
            "/v1/chat/completions",
            content=b'{"model": "deepseek-v3.2", "messages": [',
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 400
    err = assert_openai_error_shape(r.json())
    assert err["type"] == "invalid_request_error"
    assert "JSON" in err["message"]


def test_missing_messages_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="deepseek-v3.2", messages=None)  # type: ignore[arg-type]
    assert exc.value.status_code == 400


def test_upstream_500_is_internal_server_error_without_retries(failing_gateway):
    client = failing_gateway.client()
    before = failing_gateway.mock.stats().get("deepseek-v3.2", 0)
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 500
    err = assert_openai_error_shape(exc.value.response.json())
    assert "500" in err["message"]
    assert exc.value.response.headers["x-tollgate-model-group"] == "deepseek-v3.2"
    # num_retries: 0 in the config and max_retries=0 in the SDK: exactly one upstream attempt.
    assert failing_gateway.mock.stats()["deepseek-v3.2"] == before + 1
    for secret in ALL_SECRETS:
        assert secret not in exc.value.response.text


def test_upstream_429_is_rate_limit_error_with_retry_after(failing_gateway):
    client = failing_gateway.client()
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="minimax-m2.1", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 429
    assert exc.value.response.headers.get("retry-after") == "1"
    assert_openai_error_shape(exc.value.response.json())


def test_upstream_500_on_a_stream_raises_before_the_first_chunk(failing_gateway):
    client = failing_gateway.client()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}], stream=True
        )


def test_healthy_group_still_works_beside_failing_ones(failing_gateway):
    resp = failing_gateway.client().chat.completions.create(
        model="grok-4.1-fast", messages=[{"role": "user", "content": unique("hi")}]
    )
    assert resp.choices[0].message.content


# ---------------------------------------------------------------------------------------------
# request features the gateway must pass through without choking


def test_unknown_fields_and_litellm_fields_are_accepted(client):
    resp = client.chat.completions.create(
        model="deepseek-v3.2",
        messages=[{"role": "user", "content": unique("hello")}],
        temperature=0.2,
        max_tokens=64,
        user="e2e-user",
        extra_body={
            "some_vendor_field": 1,
            "thinking": {"type": "enabled"},
            "metadata": {"session_id": "e2e-session"},
        },
    )
    assert resp.choices[0].message.content
    assert resp.usage.completion_tokens <= 64


def test_max_tokens_truncates_with_finish_reason_length(client):
    resp = client.chat.completions.create(
        model="minimax-m2.1",
        messages=[{"role": "user", "content": unique("Write a long essay")}],
        max_completion_tokens=5,
    )
    assert resp.usage.completion_tokens == 5
    assert resp.choices[0].finish_reason == "length"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file from the workspace",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


def test_tools_round_trip(client):
    messages: List[dict] = [{"role": "user", "content": unique("Open the README")}]
    resp = client.chat.completions.create(
        model="grok-4.1-fast", messages=messages, tools=TOOLS, tool_choice="required"
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "read_file"
    assert json.loads(call.function.arguments) == {"path": "mock"}

    # Send the tool result back: an assistant turn with tool_calls and a tool message.
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "# README\nhello"},
    ]
    follow = client.chat.completions.create(model="grok-4.1-fast", messages=messages, tools=TOOLS, tool_choice="none")
    assert follow.choices[0].message.content
    assert follow.choices[0].finish_reason == "stop"


def test_streamed_tool_call(client):
    stream = client.chat.completions.create(
        model="deepseek-v3.2",
        messages=[{"role": "user", "content": unique("Read it")}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "read_file"}},
        stream=True,
    )
    name: Optional[str] = None
    args = ""
    finish = None
    for c in stream:
        if not c.choices:
            continue
        for tc in c.choices[0].delta.tool_calls or []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    assert name == "read_file"
    assert json.loads(args) == {"path": "mock"}
    assert finish == "tool_calls"


def test_multimodal_content_parts_are_accepted(client):
    resp = client.chat.completions.create(
        model="minimax-m2.1",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": unique("Describe this")},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ],
    )
    assert resp.choices[0].message.content
