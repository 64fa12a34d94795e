"""The official openai SDK calls the cf-x workflow like any model (plain and streamed), and a
running gateway reloads its config on SIGHUP under load without failing a request."""
from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from conftest import LITELLM_CONFIG, MASTER_KEY, Mock

# The user's LiteLLM config plus tollgate's `workflows:` section: the seed's cf-x-normal tier.
WORKFLOW_CONFIG = LITELLM_CONFIG.replace(
    "\nlitellm_settings:",
    """  - model_name: gemini-2.5-flash
    litellm_params:
      model: openai/gemini-2.5-flash
      api_base: os.environ/MOCK_API_BASE
      api_key: os.environ/OPENAI_API_KEY
workflows:
  cf-x-normal:
    aliases: [cf-x]
    output: combined
    steps:
      - {role: planner, model: deepseek-v3.2, system: You plan.}
      - {role: coder, model: grok-4.1-fast, fallbacks: [minimax-m2.1], system: You write the code.}
      - {role: reviewer, model: gemini-2.5-flash, system: You review the code.}
litellm_settings:""",
    1,
)

TASK = [{"role": "user", "content": "Add input validation to parse_config and test it."}]


@pytest.fixture
def grok_down_mock(tmp_path):
    """A provider whose Grok always fails, as the seed's coder did."""
    m = Mock(tmp_path / "mock", fail_rules=["grok-4-1-fast-reasoning=1.0:500"])
    yield m
    m.process.terminate()


def test_sdk_calls_cf_x_plain_with_a_failing_coder_falling_back(start_gateway, grok_down_mock):
    gw = start_gateway("wf", config_text=WORKFLOW_CONFIG, mock=grok_down_mock)
    client = gw.client()
    ids = [m.id for m in client.models.list().data]
    assert "cf-x" in ids and "cf-x-normal" in ids
    raw = client.chat.completions.with_raw_response.create(model="cf-x", messages=TASK)
    resp = raw.parse()
    assert resp.model == "cf-x-normal"
    content = resp.choices[0].message.content
    for section in ("## Planner", "## Coder", "## Reviewer"):
        assert section in content, content
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    # Grok failed, MiniMax coded: both calls reached the provider.
    stats = grok_down_mock.stats()
    assert stats.get("grok-4-1-fast-reasoning") == 1 and stats.get("MiniMax-M2.1") == 1, stats


def test_sdk_streams_cf_x_with_the_whole_runs_usage(start_gateway, mock):
    gw = start_gateway("wf-stream", config_text=WORKFLOW_CONFIG)
    client = gw.client()
    text, usage, models = "", None, set()
    for chunk in client.chat.completions.create(
        model="cf-x", messages=TASK, stream=True, stream_options={"include_usage": True}
    ):
        models.add(chunk.model)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert models == {"cf-x-normal"}
    assert "## Planner" in text and "## Reviewer" in text
    assert usage is not None and usage.prompt_tokens > 0
    # The run's usage is the sum of its steps' usage, each step as recorded (not just the last
    # step, whose prompt already holds the earlier steps' output).
    assert gw.stop() == 0
    records = [
        json.loads(line) for line in gw.jsonl_path.read_text().splitlines() if line.strip()
    ]
    steps = [
        r for r in records
        if r.get("workflow") == "cf-x-normal" and not r["rollup"] and r["status"] == "success"
    ]
    assert sorted(r["step_role"] for r in steps) == ["coder", "planner", "reviewer"], steps
    assert usage.prompt_tokens == sum(r["prompt_tokens"] for r in steps)
    assert usage.completion_tokens == sum(r["completion_tokens"] for r in steps)
    assert usage.prompt_tokens > max(r["prompt_tokens"] for r in steps)


def test_sighup_reloads_under_load_without_a_failed_request(start_gateway, mock):
    gw = start_gateway("reload", extra_args=["--no-watch"])
    client = gw.client()
    failures, done, count = [], threading.Event(), [0]

    def load():
        while not done.is_set():
            try:
                client.chat.completions.create(model="deepseek-v3.2", messages=TASK)
                count[0] += 1
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    gw.config_path.write_text(WORKFLOW_CONFIG)
    gw.process.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline:
        if "cf-x" in [m.id for m in client.models.list().data]:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    done.set()
    for t in threads:
        t.join()
    assert "cf-x" in [m.id for m in client.models.list().data], gw.stderr()
    assert failures == [], failures[:3]
    assert count[0] > 5
    ready = httpx.get(f"{gw.url}/health/readiness").json()
    assert ready["config_version"] == 2 and ready["config_error"] is None
    assert "config reloaded" in gw.stderr()
