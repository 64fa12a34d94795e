"""Sends a small coding-agent workload through a LiteLLM proxy with the official `openai` client.

    python drive.py BASE_URL KEY MODEL[:N] [MODEL[:N] ...]

For each MODEL it sends N requests (default 12): a third of them repeat an earlier prompt exactly (so a
response cache, when one is configured, can answer them), every fourth is streamed with usage, and each
carries a session id as Roo Code does. Requests are sent one after another, so a repeat always follows
the answer it could be served from.
"""
import sys
import uuid

import openai

base, key, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
client = openai.OpenAI(base_url=base.rstrip("/") + "/v1", api_key=key, max_retries=0,
                       default_headers={"User-Agent": "RooCode/1.0.4"})
TASKS = ["Fix the failing unit test in parser.rs", "Add pagination to the /users endpoint",
         "Explain this stack trace", "Refactor the config loader", "Rename variable foo to bar"]
SYSTEM = "You are a careful coding assistant. Answer with a short plan, then the code. " * 12

sent = failed = 0
for spec in specs:
    model, _, n = spec.partition(":")
    # `openrouter/x:free` style names contain a colon; only a trailing integer is a count.
    if not n.isdigit():
        model, n = spec, "12"
    prompts = []
    for i in range(int(n)):
        if i % 3 == 2 and prompts:
            msgs = prompts[i // 3 % len(prompts)]
        else:
            msgs = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"{TASKS[i % len(TASKS)]} (#{i} for {model})"}]
            prompts.append(msgs)
        sid = str(uuid.uuid4())
        extra = {"metadata": {"session_id": sid}}
        try:
            if i % 4 == 3:
                stream = client.chat.completions.create(model=model, messages=msgs, stream=True,
                                                        stream_options={"include_usage": True},
                                                        extra_body=extra)
                for _ in stream:
                    pass
            else:
                client.chat.completions.create(model=model, messages=msgs, extra_body=extra)
        except openai.APIError as e:
            failed += 1
            print(f"{model}: {type(e).__name__}: {e}", file=sys.stderr)
        sent += 1
print(f"sent {sent} requests, {failed} failed")
