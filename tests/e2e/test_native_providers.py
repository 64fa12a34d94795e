"""The official OpenAI SDK against native Gemini and Anthropic deployments (served by
`tollgate mock` in each provider's own wire format): `usage` must carry cached and reasoning
tokens in OpenAI's fields, identically plain and streamed."""

from __future__ import annotations

import pytest

PROVIDERS = {
    "reviewer": "gemini/gemini-2.5-flash",
    "premium": "anthropic/claude-sonnet-4-5",
}


def native_config(mock_url: str) -> str:
    # api_base as LiteLLM users write it for these providers: the host (Anthropic) and the
    # versioned root (Gemini).
    return f"""\
model_list:
  - model_name: reviewer
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: {mock_url}/v1beta
      api_key: gemini-e2e-key
  - model_name: premium
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {mock_url}
      api_key: anthropic-e2e-key

general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


SYSTEM = "You review pull requests for a payments company; be exact about money. " * 10


def messages(question: str):
    return [
        # cache_control passes through to Anthropic; Gemini caches implicitly.
        {"role": "system", "content": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Review: fn fee(amount: u64) -> u64 { amount / 100 }"},
        {"role": "assistant", "content": "Integer division truncates fractional cents."},
        {"role": "user", "content": question},
    ]


@pytest.fixture(scope="module")
def native_gateway(tmp_path_factory, mock):
    from conftest import Gateway

    gw = Gateway(tmp_path_factory.mktemp("native"), mock, config_text=native_config(mock.url))
    yield gw
    assert gw.stop() == 0, gw.stderr()


def usage_dict(u) -> dict:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "cached_tokens": u.prompt_tokens_details.cached_tokens,
        "reasoning_tokens": u.completion_tokens_details.reasoning_tokens,
    }


@pytest.mark.parametrize("model", list(PROVIDERS))
def test_sdk_gets_cached_and_reasoning_usage_plain_and_streamed(native_gateway, model):
    client = native_gateway.client()
    question = f"Suggest a fix ({model})."
    # First call: nothing cached yet (Anthropic writes the marked prefix).
    first = client.chat.completions.create(model=model, messages=messages(question), reasoning_effort="low")
    # Second call: the prefix is read from the provider's cache.
    second = client.chat.completions.create(model=model, messages=messages(question), reasoning_effort="low")
    u1, u2 = usage_dict(first.usage), usage_dict(second.usage)
    assert first.model == model
    assert first.choices[0].message.content
    assert u1["cached_tokens"] == 0, u1
    assert 0 < u2["cached_tokens"] < u2["prompt_tokens"], u2
    assert u2["prompt_tokens"] == u1["prompt_tokens"], "prompt_tokens include cached tokens"
    assert 0 < u2["reasoning_tokens"] < u2["completion_tokens"], u2
    assert u2["total_tokens"] == u2["prompt_tokens"] + u2["completion_tokens"]
    reasoning = second.choices[0].message.model_extra.get("reasoning_content")
    assert reasoning, "thinking comes back as reasoning_content"
    if model == "premium":
        # Anthropic reports the cache write, which the gateway passes on under LiteLLM's name.
        details = first.usage.prompt_tokens_details.model_extra
        assert details.get("cache_creation_tokens") == u2["cached_tokens"], first.usage

    stream = client.chat.completions.create(
        model=model,
        messages=messages(question),
        reasoning_effort="low",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert usage_dict(usage_chunks[0].usage) == u2, "streamed usage equals plain usage"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == second.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [second.choices[0].finish_reason]


@pytest.mark.parametrize("model", list(PROVIDERS))
def test_sdk_streams_tool_calls_with_indices(native_gateway, model):
    client = native_gateway.client()
    tools = [{"type": "function", "function": {"name": "get_rate", "parameters": {
        "type": "object", "properties": {"currency": {"type": "string"}}}}}]
    plain = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Look up the EUR rate."}], tools=tools, tool_choice="required")
    call = plain.choices[0].message.tool_calls[0]
    assert plain.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_rate"
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Look up the EUR rate."}], tools=tools,
        tool_choice="required", stream=True)
    deltas = [tc for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas and all(d.index == 0 for d in deltas)
    assert deltas[0].id == call.id
    args = "".join(d.function.arguments or "" for d in deltas)
    assert args.replace(" ", "") == call.function.arguments.replace(" ", "")
