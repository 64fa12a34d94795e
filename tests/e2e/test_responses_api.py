"""The official OpenAI SDK's Responses API (`client.responses.*`, what Codex CLI speaks) against
tollgate's `/v1/responses`: plain and streamed, a function tool round trip, `previous_response_id`
continuing a conversation from the store, JSON-schema output, retrieve and delete. The deployment
is DeepSeek on the mock (a reasoning model there, so every usage bucket is exercised); each
answer's usage and its record's cost are checked against hand-computed values."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest

from conftest import MASTER_KEY, Gateway, Mock, records_of

MODEL = "codex-coder"
# deepseek-v3.2 per token (the built-in price table): input, cache read, output.
PRICE_IN, PRICE_READ, PRICE_OUT = 2.8e-07, 2.8e-08, 4e-07

SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
}


def config(mock_url: str) -> str:
    return f"""\
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: {mock_url}/v1
      api_key: os.environ/DEEPSEEK_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    mock = Mock(tmp_path_factory.mktemp("responses-mock"))
    g = Gateway(tmp_path_factory.mktemp("responses"), mock, config_text=config(mock.url))
    yield g
    assert g.stop() == 0, g.stderr()
    mock.process.terminate()


@pytest.fixture
def client(gw) -> openai.OpenAI:
    # Codex CLI's setup: the gateway as the base URL, the key as the API key.
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30.0)


def user_id() -> str:
    return f"codex-{uuid.uuid4().hex[:12]}"


def check_usage_and_record(gw: Gateway, who: str, usage, stream: bool) -> None:
    """The response's usage in the Responses convention equals the record's buckets, and the
    record's cost equals the hand-computed one."""
    cached = usage.input_tokens_details.cached_tokens
    reasoning = usage.output_tokens_details.reasoning_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert reasoning > 0, "deepseek-v3.2 reasons on the mock"
    (r,) = records_of(gw, who)
    assert r["endpoint"] == "responses"
    assert r["model_group"] == MODEL and r["stream"] is stream and r["status"] == "success"
    assert r["prompt_tokens"] == usage.input_tokens
    assert r["cached_tokens"] == cached
    assert r["completion_tokens"] == usage.output_tokens
    assert r["reasoning_tokens"] == reasoning
    expected = (usage.input_tokens - cached) * PRICE_IN + cached * PRICE_READ + usage.output_tokens * PRICE_OUT
    assert r["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_plain(gw, client):
    who = user_id()
    resp = client.responses.create(
        model=MODEL,
        instructions="You are a coding agent.",
        input="Explain the failing test.",
        user=who,
    )
    assert resp.object == "response" and resp.status == "completed"
    assert resp.id.startswith("resp_")
    assert resp.model == MODEL
    assert resp.output_text.startswith("Mock answer to: Explain the failing test.")
    kinds = [item.type for item in resp.output]
    assert kinds == ["reasoning", "message"], kinds
    check_usage_and_record(gw, who, resp.usage, stream=False)
    # The upstream got a chat request: the instructions first, then the input.
    seen = httpx.get(f"{gw.mock.url}/mock/last_request").json()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["messages"] == [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Explain the failing test."},
    ]


def test_streamed(gw, client):
    who = user_id()
    stream = client.responses.create(model=MODEL, input="Write a haiku about gateways.", user=who, stream=True)
    events = list(stream)
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[1] == "response.in_progress"
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types and "response.reasoning_summary_text.delta" in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text
    assert text.startswith("Mock answer to: Write a haiku about gateways.")
    check_usage_and_record(gw, who, final.usage, stream=True)


@pytest.mark.parametrize("streamed", [False, True])
def test_function_tool_round_trip(gw, client, streamed):
    who = user_id()
    ask = dict(model=MODEL, tools=[SHELL], user=who)
    if streamed:
        events = list(client.responses.create(**ask, input="List the files.", tool_choice="required", stream=True))
        assert "response.function_call_arguments.delta" in [e.type for e in events]
        first = events[-1].response
    else:
        first = client.responses.create(**ask, input="List the files.", tool_choice="required")
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "shell" and json.loads(call.arguments) == {"cmd": "mock"}
    assert call.call_id
    # The agent runs the command and continues from the stored response.
    second = client.responses.create(
        **ask,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Cargo.toml\nsrc"}],
    )
    assert second.status == "completed" and second.output_text
    body = httpx.get(f"{gw.mock.url}/mock/last_request").json()["body"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "tool"], roles
    assert body["messages"][1]["tool_calls"][0]["id"] == call.call_id
    assert body["messages"][2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Cargo.toml\nsrc"}
    recs = records_of(gw, who, n=2)
    assert all(r["endpoint"] == "responses" and r["status"] == "success" for r in recs)


def test_previous_response_id_continues_and_stored_responses_can_be_read_and_deleted(gw, client):
    first = client.responses.create(model=MODEL, instructions="Be brief.", input="My project is called tollgate.")
    second = client.responses.create(model=MODEL, previous_response_id=first.id, input="What is my project called?")
    assert second.previous_response_id == first.id
    messages = httpx.get(f"{gw.mock.url}/mock/last_request").json()["body"]["messages"]
    # The earlier turn (without its instructions) comes before the new input.
    assert messages[0] == {"role": "user", "content": "My project is called tollgate."}
    assert messages[1]["role"] == "assistant" and messages[1]["content"] == first.output_text
    assert messages[2] == {"role": "user", "content": "What is my project called?"}

    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    deleted = client.responses.delete(first.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, previous_response_id=first.id, input="again?")
    # `store: false` keeps nothing to continue from.
    unstored = client.responses.create(model=MODEL, input="Forget this.", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_json_schema_output(gw, client):
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "summary": {"type": "string"}},
        "required": ["ok", "summary"],
        "additionalProperties": False,
    }
    resp = client.responses.create(
        model=MODEL,
        input="Did the build pass?",
        text={"format": {"type": "json_schema", "name": "verdict", "schema": schema, "strict": True}},
    )
    verdict = json.loads(resp.output_text)
    assert verdict["ok"] is True and verdict["summary"].startswith("Mock answer to: Did the build pass?")
    assert resp.text.format.type == "json_schema"
    sent = httpx.get(f"{gw.mock.url}/mock/last_request").json()["body"]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": schema, "strict": True},
    }


def test_errors_are_openai_shaped(gw, client):
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="no-such-model", input="hi")
    assert "no-such-model" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input=[{"type": "computer_call_output", "call_id": "x"}])
    assert "computer_call_output" in str(e.value)
    bad = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.responses.create(model=MODEL, input="hi")
