// The dashboard's small script: a copy button for the key shown once, and a confirmation
// before a delete. Everything else works without it (plain forms and links).
"use strict";
document.addEventListener("click", (e) => {
  const button = e.target.closest("[data-copy]");
  if (!button) return;
  const el = document.getElementById(button.dataset.copy);
  if (el && navigator.clipboard) {
    navigator.clipboard.writeText(el.textContent.trim()).then(() => { button.textContent = "✓"; });
  }
});
document.addEventListener("submit", (e) => {
  const form = e.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) e.preventDefault();
});

// The playground: send the prompt, read the pipeline's SSE stream as it arrives, show the text,
// then the usage buckets from the final chunk and a link to the request's page (its cost).
const playground = document.getElementById("playground");
if (playground) {
  playground.addEventListener("submit", async (e) => {
    e.preventDefault();
    const answer = document.getElementById("pg-answer");
    const error = document.getElementById("pg-error");
    const usage = document.getElementById("pg-usage");
    const record = document.getElementById("pg-record");
    answer.textContent = "";
    error.hidden = true;
    usage.hidden = true;
    record.hidden = true;
    const showError = (message) => { error.textContent = message; error.hidden = false; };
    let resp;
    try {
      resp = await fetch("/ui/playground/chat", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": playground.dataset.csrf },
        body: JSON.stringify({
          model: document.getElementById("pg-model").value,
          prompt: document.getElementById("pg-prompt").value,
        }),
      });
    } catch (err) {
      showError(String(err));
      return;
    }
    const id = resp.headers.get("x-litellm-call-id");
    if (!resp.ok || !resp.body) {
      let text = await resp.text();
      try { text = JSON.parse(text).error.message; } catch (_) { /* not JSON: as it is */ }
      showError(`${resp.status}: ${text}`);
      return;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    const onEvent = (data) => {
      if (data === "[DONE]") return;
      let chunk;
      try { chunk = JSON.parse(data); } catch (_) { return; }
      if (chunk.error) { showError(chunk.error.message || JSON.stringify(chunk.error)); return; }
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) answer.textContent += delta.content;
      if (chunk.usage) {
        const u = chunk.usage;
        const cached = (u.prompt_tokens_details && u.prompt_tokens_details.cached_tokens) || 0;
        const reasoning = (u.completion_tokens_details && u.completion_tokens_details.reasoning_tokens) || 0;
        const cells = {
          input: (u.prompt_tokens || 0) - cached,
          cache_read: cached,
          output: (u.completion_tokens || 0) - reasoning,
          reasoning: reasoning,
        };
        for (const [name, value] of Object.entries(cells)) {
          usage.querySelector(`[data-usage="${name}"]`).textContent = String(value);
        }
        usage.hidden = false;
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        for (const line of event.split("\n")) {
          if (line.startsWith("data:")) onEvent(line.slice(5).trim());
        }
      }
    }
    if (id) {
      record.querySelector("a").href = `/ui/logs/${encodeURIComponent(id)}`;
      record.hidden = false;
    }
    playground.dataset.done = "true";
  });
}
