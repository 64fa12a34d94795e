"""The official Anthropic SDK against tollgate's `/v1/messages` (what Claude Code speaks), routed
once to an `anthropic/` deployment (passed through: the provider sees the client's body with
only `model` rewritten) and once to a `deepseek/` deployment (translated to chat and back).
Every answer's usage and the cost in its record are checked against hand-computed values."""

from __future__ import annotations

import json
import uuid

import anthropic
import httpx
import pytest

from conftest import MASTER_KEY, Gateway, Mock, records_of

# Claude Code's model names, mapped by the config: one to Anthropic itself, one to DeepSeek.
NATIVE = "claude-sonnet-4-5-20250929"
TRANSLATED = "claude-haiku-4-5-20251001"
ROUTES = [NATIVE, TRANSLATED]
# Deployments whose streams the mock breaks midway (`--fail MODEL=1:reset`).
BROKEN = {NATIVE: "claude-broken", TRANSLATED: "deepseek-broken"}

# Per token (LiteLLM's price map): input, cache read, cache write, output.
PRICES = {
    NATIVE: (3e-06, 3e-07, 3.75e-06, 1.5e-05),
    TRANSLATED: (2.8e-07, 2.8e-08, 0.0, 4e-07),
}

SYSTEM = [
    {"type": "text", "text": "You are Claude Code, a coding agent. " * 20, "cache_control": {"type": "ephemeral"}},
]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def config(mock_url: str) -> str:
    return f"""\
model_list:
  - model_name: {NATIVE}
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {mock_url}
      api_key: anthropic-e2e-key
  - model_name: {TRANSLATED}
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: {mock_url}/v1
      api_key: os.environ/DEEPSEEK_API_KEY
  - model_name: claude-broken
    litellm_params:
      model: anthropic/claude-broken
      api_base: {mock_url}
      api_key: anthropic-e2e-key
  - model_name: deepseek-broken
    litellm_params:
      model: deepseek/deepseek-broken
      api_base: {mock_url}/v1
      api_key: os.environ/DEEPSEEK_API_KEY

general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


@pytest.fixture(scope="module")
def messages_mock(tmp_path_factory):
    m = Mock(
        tmp_path_factory.mktemp("messages-mock"),
        fail_rules=["claude-broken=1.0:reset", "deepseek-broken=1.0:reset"],
    )
    yield m
    m.process.terminate()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, messages_mock):
    g = Gateway(tmp_path_factory.mktemp("messages"), messages_mock, config_text=config(messages_mock.url))
    yield g
    assert g.stop() == 0, g.stderr()


@pytest.fixture
def client(gw) -> anthropic.Anthropic:
    # Claude Code's setup: ANTHROPIC_BASE_URL at the gateway, the key as a bearer token.
    return anthropic.Anthropic(base_url=gw.url, auth_token=MASTER_KEY, api_key=None, max_retries=0, timeout=30.0)


def user_id() -> str:
    """A fresh `metadata.user_id`: the record's end user, so a test finds its own records."""
    return f"user-{uuid.uuid4().hex[:12]}"


def expected_cost(model: str, usage) -> float:
    inp, read, write, out = PRICES[model]
    return (
        usage.input_tokens * inp
        + (usage.cache_read_input_tokens or 0) * read
        + (usage.cache_creation_input_tokens or 0) * write
        + usage.output_tokens * out
    )


def check_record(gw: Gateway, end_user: str, model: str, usage, stream: bool) -> dict:
    (r,) = records_of(gw, end_user)
    assert r["endpoint"] == "messages"
    assert r["model_group"] == model
    assert r["stream"] is stream
    assert r["status"] == "success"
    read, write = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
    assert r["prompt_tokens"] == usage.input_tokens + read + write
    assert r["cached_tokens"] == read
    assert r["cache_creation_tokens"] == write
    assert r["completion_tokens"] == usage.output_tokens
    assert r["cost_usd"] == pytest.approx(expected_cost(model, usage), rel=1e-9)
    parts = sum(r[k] for k in ("cost_input_usd", "cost_cache_read_usd", "cost_cache_write_usd", "cost_output_usd", "cost_reasoning_usd"))
    assert parts == pytest.approx(r["cost_usd"], rel=1e-9)
    return r


@pytest.mark.parametrize("model", ROUTES)
def test_plain_text(gw, client, model):
    who = user_id()
    kwargs = dict(
        model=model,
        max_tokens=200,
        system=SYSTEM,
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Explain this diff."}]},
            {"role": "assistant", "content": "It renames a function."},
            {"role": "user", "content": "Is that safe?"},
        ],
        metadata={"user_id": who},
        stop_sequences=["\n\nHuman:"],
    )
    msg = client.messages.create(**kwargs, extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[-1].type == "text" and msg.content[-1].text.startswith("Mock answer to: Is that safe?")
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    check_record(gw, who, model, msg.usage, stream=False)
    seen = httpx.get(f"{gw.mock.url}/mock/last_request").json()
    if model == NATIVE:
        # Passed through: the body as the SDK sent it, only `model` rewritten; headers forwarded.
        assert seen["path"] == "/v1/messages"
        assert seen["body"] == {**kwargs, "model": "claude-sonnet-4-5"}
        assert seen["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31"
        # The marked system prompt was written to Anthropic's cache.
        assert msg.usage.cache_creation_input_tokens > 0 or msg.usage.cache_read_input_tokens > 0
    else:
        body = seen["body"]
        assert seen["path"] == "/v1/chat/completions"
        assert body["model"] == "deepseek-v3.2"
        assert body["messages"][0] == {"role": "system", "content": SYSTEM[0]["text"]}
        assert body["messages"][1:] == [
            {"role": "user", "content": "Explain this diff."},
            {"role": "assistant", "content": "It renames a function."},
            {"role": "user", "content": "Is that safe?"},
        ]
        assert body["user"] == who and body["stop"] == ["\n\nHuman:"] and body["max_tokens"] == 200
        assert "metadata" not in body and "cache_control" not in json.dumps(body)


@pytest.mark.parametrize("model", ROUTES)
def test_streamed_text(gw, client, model):
    who = user_id()
    with client.messages.stream(
        model=model,
        max_tokens=120,
        messages=[{"role": "user", "content": "Write a haiku about gateways."}],
        metadata={"user_id": who},
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    text = "".join(b.text for b in final.content if b.type == "text")
    assert text.startswith("Mock answer to: Write a haiku about gateways.")
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events and "message_delta" in events
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    check_record(gw, who, model, final.usage, stream=True)


@pytest.mark.parametrize("model", ROUTES)
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_call_round_trip(gw, client, model, streamed):
    who = user_id()
    question = {"role": "user", "content": "What is the weather in Paris?"}
    ask = dict(model=model, max_tokens=300, tools=[WEATHER], metadata={"user_id": who})
    if streamed:
        with client.messages.stream(**ask, messages=[question], tool_choice={"type": "any"}) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(**ask, messages=[question], tool_choice={"type": "any"})
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather"
    assert call.input == {"city": "mock"}
    assert call.id
    second = client.messages.create(
        **ask,
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21 C and sunny"}]},
        ],
    )
    assert second.stop_reason in ("end_turn", "max_tokens")
    assert any(b.type == "text" and b.text for b in second.content)
    recs = records_of(gw, who, n=2)
    assert all(r["endpoint"] == "messages" and r["status"] == "success" for r in recs)


@pytest.mark.parametrize("model", ROUTES)
def test_thinking(gw, client, model):
    who = user_id()
    ask = dict(
        model=model,
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "Plan the refactor."}],
        metadata={"user_id": who},
    )
    msg = client.messages.create(**ask)
    thinking = [b for b in msg.content if b.type == "thinking"]
    assert thinking and thinking[0].thinking.startswith("Thinking about: Plan the refactor.")
    assert msg.content[-1].type == "text"
    r = check_record(gw, who, model, msg.usage, stream=False)
    assert 0 < r["reasoning_tokens"] <= msg.usage.output_tokens
    seen = httpx.get(f"{gw.mock.url}/mock/last_request").json()["body"]
    if model == NATIVE:
        # Anthropic signs its thinking; the signature reaches the client untouched.
        assert thinking[0].signature.startswith("RXJtb2Nr")
        assert seen["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    else:
        assert seen["reasoning_effort"] == "medium"
    # Streamed: thinking deltas (and Anthropic's signature) arrive as Anthropic's events.
    with client.messages.stream(**{**ask, "metadata": {"user_id": user_id()}}) as s:
        deltas = {e.delta.type for e in s if e.type == "content_block_delta"}
        final = s.get_final_message()
    assert "thinking_delta" in deltas and "text_delta" in deltas
    if model == NATIVE:
        assert "signature_delta" in deltas
        assert final.content[0].signature == thinking[0].signature
    assert final.content[0].thinking == thinking[0].thinking


@pytest.mark.parametrize("model", ROUTES)
def test_count_tokens(gw, client, model):
    raw = client.messages.with_raw_response.count_tokens(
        model=model, system=SYSTEM, messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    count = raw.parse()
    assert count.input_tokens > 0
    plain = client.messages.create(
        model=model, max_tokens=10, system=SYSTEM, messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    u = plain.usage
    prompt = u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    if model == NATIVE:
        # Anthropic's own count: exactly what the request then uses.
        assert raw.headers["x-tollgate-token-count"] == "exact"
        assert count.input_tokens == prompt
    else:
        assert raw.headers["x-tollgate-token-count"] == "estimated"
        assert json.loads(raw.http_response.text)["estimated"] is True
        assert abs(count.input_tokens - prompt) <= max(5, prompt // 5)


@pytest.mark.parametrize("model", ROUTES)
def test_upstream_error_mid_stream_is_an_error_event(gw, client, model):
    who = user_id()
    broken = BROKEN[model]
    with pytest.raises(anthropic.APIStatusError) as err:
        with client.messages.stream(
            model=broken,
            max_tokens=200,
            messages=[{"role": "user", "content": "Tell me a long story."}],
            metadata={"user_id": who},
        ) as s:
            for _ in s:
                pass
    assert "stream broke midway" in str(err.value)
    (r,) = records_of(gw, who)
    assert r["endpoint"] == "messages"
    assert r["status"] == "failure"
    assert r["error_type"]


def test_errors_take_anthropics_shape(gw, client):
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert nf.value.body["type"] == "error"
    assert nf.value.body["error"]["type"] == "not_found_error"
    bad = anthropic.Anthropic(base_url=gw.url, api_key="sk-wrong-key-0123456789", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        bad.messages.create(model=NATIVE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert auth.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as br:
        client.messages.create(model=NATIVE, max_tokens=10, messages=[])
    assert br.value.body["error"]["type"] == "invalid_request_error"
