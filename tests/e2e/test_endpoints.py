"""The official OpenAI SDK on the endpoints beside chat: legacy completions (a text-completion
model and a chat model behind the same call, plain and streamed), moderations, image generation
and audio transcription of a small generated WAV. Each answer is recorded and priced where the
answer reports tokens and a price exists; unpriced otherwise, never $0."""

from __future__ import annotations

import io
import json
import struct

import pytest


def endpoints_config(mock_api_base: str) -> str:
    return f"""\
model_list:
  - model_name: instruct
    litellm_params:
      model: text-completion-openai/gpt-3.5-turbo-instruct
      api_base: {mock_api_base}
      api_key: e2e-key
      input_cost_per_token: 0.0000015
      output_cost_per_token: 0.000002
  - model_name: chatty
    litellm_params:
      model: openai/mock-chat
      api_base: {mock_api_base}
      api_key: e2e-key
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: omni-moderation
    litellm_params:
      model: openai/omni-moderation-latest
      api_base: {mock_api_base}
      api_key: e2e-key
  - model_name: gpt-image-1
    litellm_params:
      model: openai/gpt-image-1
      api_base: {mock_api_base}
      api_key: e2e-key
      input_cost_per_token: 0.000005
      output_cost_per_token: 0.00004
  - model_name: whisper
    litellm_params:
      model: openai/whisper-1
      api_base: {mock_api_base}
      api_key: e2e-key

general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


def tiny_wav(seconds: float = 0.25, rate: int = 16000) -> bytes:
    """A silent 16-bit mono PCM WAV."""
    frames = int(seconds * rate)
    data = b"\x00\x00" * frames
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + fmt + b"data" + struct.pack("<I", len(data)) + data


@pytest.fixture(scope="module")
def endpoints_gateway(tmp_path_factory, mock):
    from conftest import Gateway

    gw = Gateway(tmp_path_factory.mktemp("endpoints"), mock, config_text=endpoints_config(mock.api_base))
    yield gw
    # Stopped already when the test read the records; stopping again returns the same code.
    assert gw.stop() == 0, gw.stderr()


def records(gw) -> list:
    assert gw.stop() == 0, gw.stderr()
    return [json.loads(line) for line in gw.jsonl_path.read_text().splitlines() if line.strip()]


def test_openai_sdk_on_every_endpoint(endpoints_gateway):
    client = endpoints_gateway.client()

    for model in ("instruct", "chatty"):
        c = client.completions.create(model=model, prompt="Say hello to the gateway", max_tokens=16)
        assert c.object == "text_completion"
        assert c.choices[0].text
        assert c.usage.total_tokens > 0
        pieces = [
            chunk.choices[0].text
            for chunk in client.completions.create(model=model, prompt="Say hello to the gateway", stream=True)
            if chunk.choices
        ]
        assert "".join(pieces).strip()

    m = client.moderations.create(model="omni-moderation", input=["a calm day", "kill the process"])
    assert [r.flagged for r in m.results] == [False, True]

    img = client.images.generate(model="gpt-image-1", prompt="a lighthouse at dusk", n=1)
    assert img.data[0].url
    assert img.usage.output_tokens > 0

    wav = io.BytesIO(tiny_wav())
    wav.name = "tiny.wav"
    t = client.audio.transcriptions.create(model="whisper", file=wav)
    assert t.text.startswith("mock transcript of")

    by_group: dict = {}
    for r in records(endpoints_gateway):
        if r["status"] == "success" and r.get("attempt") is not None:
            by_group.setdefault(r["model_group"], []).append(r)
    for group in ("instruct", "chatty"):
        assert len(by_group[group]) == 2, by_group.get(group)
        for r in by_group[group]:
            assert r["prompt_tokens"] > 0 and r["completion_tokens"] > 0
            assert r["cost_usd"] > 0
    (image,) = by_group["gpt-image-1"]
    expected = image["prompt_tokens"] * 0.000005 + image["completion_tokens"] * 0.00004
    assert abs(image["cost_usd"] - expected) <= 1e-12
    # Moderations and Whisper report no tokens and have no price: flagged, not $0.
    for group in ("omni-moderation", "whisper"):
        (r,) = by_group[group]
        assert r["cost_usd"] is None
        assert r["unpriced"] is True
