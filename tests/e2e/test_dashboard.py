"""The dashboard in a real browser: Debian's chromium driven by Playwright against `tollgate serve`
in front of `tollgate mock`, with records made by the official openai SDK.

Sign-in with the master key; the overview's figures equal `tollgate report --format json` for the
same range; a key created in the UI is used from the SDK and its request shows in Logs; that key,
signed in, sees only its own data and gets 403 on the keys page; a change without the CSRF token
is refused; the Turkish UI renders; a team and a user made on their pages are the API's too. Every
page is photographed into tests/e2e/screenshots/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from conftest import LITELLM_CONFIG, MASTER_KEY, Gateway, free_port, run_tollgate, tollgate_bin

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = os.environ.get("TOLLGATE_CHROMIUM", "/usr/bin/chromium")


# The suite's LiteLLM config plus a three-step workflow on its models.
DASHBOARD_CONFIG = LITELLM_CONFIG.replace(
    "\nlitellm_settings:",
    """workflows:
  plan-code-review:
    steps:
      - {role: planner, model: deepseek-v3.2}
      - {role: coder, model: minimax-m2.1}
      - {role: reviewer, model: grok-4.1-fast}
litellm_settings:""",
    1,
)


@pytest.fixture(scope="module")
def dash_gateway(tmp_path_factory, mock):
    assert "workflows:" in DASHBOARD_CONFIG
    gw = Gateway(tmp_path_factory.mktemp("dashboard"), mock, config_text=DASHBOARD_CONFIG)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no chromium at {CHROMIUM}: install Debian's `chromium` (tests/e2e/run.sh does, as root)")
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def report_json(gw: Gateway, since: str, until: str | None = None) -> dict:
    bounds = ["--since", since] + (["--until", until] if until else [])
    out = run_tollgate(
        ["report", "--data-dir", str(gw.data_dir), *bounds, "--format", "json", "--no-progress"],
        {**os.environ},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_for_records(gw: Gateway, n: int) -> dict:
    deadline = time.time() + 10
    while True:
        report = report_json(gw, "1h")
        if report["requests"]["total"] >= n or time.time() > deadline:
            return report
        time.sleep(0.2)


def sign_in(page, gw: Gateway, key: str, shot: str | None = None) -> None:
    page.goto(f"{gw.url}/ui")
    assert page.url.endswith("/ui/signin"), page.url
    page.fill("#key", key)
    if shot:
        page.screenshot(path=str(SCREENSHOTS / shot), full_page=True)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url("**/ui/overview")


def figure(page, name: str, scope: str = ".figures") -> str:
    return page.locator(f'{scope} [data-figure="{name}"]').first.get_attribute("data-value")


def number(text: str) -> float | None:
    return None if text in ("none", "") else float(text)


def test_dashboard_story(dash_gateway, browser):
    gw = dash_gateway
    client = gw.client()
    for model in ["deepseek-v3.2", "deepseek-v3.2", "minimax-m2.1"]:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"hi {model}"}])
    expected = wait_for_records(gw, 3)
    assert expected["requests"]["total"] == 3

    context = browser.new_context(locale="en-US")
    page = context.new_page()
    sign_in(page, gw, MASTER_KEY, shot="signin.png")
    # No key in the browser's storage: only the HttpOnly session cookie.
    assert page.evaluate("Object.keys(localStorage).length + Object.keys(sessionStorage).length") == 0
    assert MASTER_KEY not in page.evaluate("document.cookie")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["tollgate_session"]["httpOnly"] and cookies["tollgate_session"]["sameSite"] == "Strict"

    # The overview equals `tollgate report --format json` for the bounds the page states.
    page.goto(f"{gw.url}/ui/overview?range=1h")
    fresh = page.locator("#freshness")
    report = report_json(gw, fresh.get_attribute("data-since"), fresh.get_attribute("data-until"))
    assert int(figure(page, "requests")) == report["requests"]["total"] == 3
    assert int(figure(page, "failed")) == report["requests"]["failed"]
    assert number(figure(page, "success_rate")) == pytest.approx(report["requests"]["success_rate"])
    assert number(figure(page, "cost")) == pytest.approx(report["cost"]["total_usd"], rel=1e-9)
    assert number(figure(page, "saved")) == pytest.approx(report["cost"]["saved_usd"], abs=1e-12)
    overhead = report.get("overhead_ms") or {}
    if overhead:
        assert number(figure(page, "overhead_p50")) == pytest.approx(overhead["p50"])
        assert number(figure(page, "overhead_p95")) == pytest.approx(overhead["p95"])
    for m in report["models"]:
        row = f'#models tr[data-model="{m["model"]}"]'
        assert int(figure(page, "requests", row)) == m["requests"]
        assert number(figure(page, "cost", row)) == pytest.approx(m["cost_usd"], rel=1e-9)
        assert int(figure(page, "prompt_tokens", row)) == m["prompt_tokens"]
        if m.get("latency_ms"):
            assert number(figure(page, "p50", row)) == pytest.approx(m["latency_ms"]["p50"])
            assert number(figure(page, "p95", row)) == pytest.approx(m["latency_ms"]["p95"])
    assert page.locator("svg.chart rect.bar").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    # Create a key in the UI; its raw value is shown once.
    page.goto(f"{gw.url}/ui/keys")
    page.fill("#alias", "e2e-ui")
    page.fill("#max_budget", "10")
    page.click("#create-key button[type=submit]")
    raw = page.locator("#new-key").inner_text().strip()
    assert raw.startswith("sk-")
    page.screenshot(path=str(SCREENSHOTS / "keys.png"), full_page=True)
    page.goto(f"{gw.url}/ui/keys")
    assert page.locator('#keys tr[data-alias="e2e-ui"]').count() == 1
    assert raw not in page.content()

    # A change without the CSRF token is refused (the session cookie alone is not enough).
    refused = page.request.post(f"{gw.url}/ui/keys", form={"alias": "forged"})
    assert refused.status == 403
    page.goto(f"{gw.url}/ui/keys")
    assert page.locator('#keys tr[data-alias="forged"]').count() == 0

    # The key works from the SDK, and its request appears in Logs.
    keyed = gw.client(api_key=raw)
    answer = keyed.chat.completions.with_raw_response.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": "from the new key"}]
    )
    request_id = answer.headers["x-litellm-call-id"]
    wait_for_records(gw, 4)
    page.goto(f"{gw.url}/ui/logs?key=e2e-ui")
    row = page.locator(f'#records tr[data-request-id="{request_id}"]')
    assert row.count() == 1
    assert page.locator("#records tr.record").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "logs.png"), full_page=True)
    # … and the key's spend moved on the keys page.
    page.goto(f"{gw.url}/ui/keys")
    spend = float(page.locator('#keys tr[data-alias="e2e-ui"]').get_attribute("data-spend"))
    assert spend > 0
    page.goto(f"{gw.url}/ui/logs?key=e2e-ui")
    row = page.locator(f'#records tr[data-request-id="{request_id}"]')
    row.locator("a").first.click()
    page.wait_for_url(f"**/ui/logs/{request_id}")
    assert page.locator("#request-id").inner_text() == request_id
    assert "time to first token" in page.content()
    page.screenshot(path=str(SCREENSHOTS / "record.png"), full_page=True)

    # Sign out; the old session no longer opens a page.
    page.click("#signout")
    page.wait_for_url("**/ui/signin")
    page.goto(f"{gw.url}/ui/overview")
    assert page.url.endswith("/ui/signin")

    # The key's own view: only its one request, and no keys page.
    sign_in(page, gw, raw)
    assert "e2e-ui" in page.locator("#who").inner_text()
    page.goto(f"{gw.url}/ui/overview?range=1h")
    assert int(figure(page, "requests")) == 1
    page.screenshot(path=str(SCREENSHOTS / "overview-key.png"), full_page=True)
    page.goto(f"{gw.url}/ui/logs")
    ids = [r.get_attribute("data-request-id") for r in page.locator("#records tr.record").all()]
    assert ids == [request_id]
    denied = page.goto(f"{gw.url}/ui/keys")
    assert denied.status == 403
    page.screenshot(path=str(SCREENSHOTS / "keys-forbidden.png"), full_page=True)
    context.close()


def test_dashboard_in_turkish(dash_gateway, browser):
    gw = dash_gateway
    context = browser.new_context(locale="tr-TR")
    page = context.new_page()
    page.goto(f"{gw.url}/ui/signin")
    assert page.locator("html").get_attribute("lang") == "tr"
    assert "Giriş yap" in page.content()
    sign_in(page, gw, MASTER_KEY)
    page.goto(f"{gw.url}/ui/overview?range=24h")
    assert "Genel bakış" in page.content() and "Başarı oranı" in page.content()
    page.screenshot(path=str(SCREENSHOTS / "overview-tr.png"), full_page=True)
    # The full report, in Turkish, as `tollgate report --lang tr` renders it.
    page.click("#report-html")
    page.wait_for_url("**/ui/report?**")
    assert page.locator("html").get_attribute("lang") == "tr"
    page.screenshot(path=str(SCREENSHOTS / "report-tr.png"), full_page=True)
    page.goto(f"{gw.url}/ui/overview?range=24h")
    # The switch goes back to English and is remembered.
    page.goto(f"{gw.url}/ui/overview?lang=en")
    page.goto(f"{gw.url}/ui/logs")
    assert page.locator("html").get_attribute("lang") == "en"
    context.close()


def test_dashboard_playground_streams_an_answer(dash_gateway, browser):
    gw = dash_gateway
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    sign_in(page, gw, MASTER_KEY)
    page.goto(f"{gw.url}/ui/playground")
    page.select_option("#pg-model", "deepseek-v3.2")
    page.fill("#pg-prompt", "Write a haiku about toll gates.")
    page.click("#pg-send")
    page.wait_for_selector("#playground[data-done=true]", timeout=15000)
    assert page.locator("#pg-error").is_hidden(), page.locator("#pg-error").inner_text()
    assert page.locator("#pg-answer").inner_text().strip()
    assert page.locator("#pg-usage").is_visible()
    assert int(page.locator('#pg-usage [data-usage="input"]').inner_text()) > 0
    page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=True)
    # The request's page, with its cost per bucket.
    page.click("#pg-record a")
    page.wait_for_url("**/ui/logs/**")
    # The record is written within milliseconds of the answer, off the request path.
    deadline = time.time() + 5
    while "deepseek-v3.2" not in page.content() and time.time() < deadline:
        time.sleep(0.2)
        page.reload()
    assert "deepseek-v3.2" in page.content()
    context.close()


def test_dashboard_shows_a_workflow_runs_three_steps(dash_gateway, browser):
    """Last in this file: the run adds records the story above counts exactly."""
    gw = dash_gateway
    answer = gw.client().chat.completions.with_raw_response.create(
        model="plan-code-review", messages=[{"role": "user", "content": "add a health check"}]
    )
    run_id = answer.headers["x-litellm-call-id"]
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    sign_in(page, gw, MASTER_KEY)
    deadline = time.time() + 10
    while True:
        page.goto(f"{gw.url}/ui/logs/{run_id}")
        if page.locator("#workflow-steps tr.step").count() == 3 or time.time() > deadline:
            break
        time.sleep(0.2)
    steps = page.locator("#workflow-steps tr.step").all_inner_texts()
    assert len(steps) == 3, steps
    for role, text in zip(["planner", "coder", "reviewer"], steps):
        assert f"({role})" in text
    assert page.locator("#workflow-steps svg rect.step").count() == 3
    page.screenshot(path=str(SCREENSHOTS / "workflow-run.png"), full_page=True)
    # The models page lists the workflow with its steps and every group's deployment.
    page.goto(f"{gw.url}/ui/models")
    assert page.locator('[data-workflow="plan-code-review"]').count() == 1
    assert page.locator(".group").count() >= 3
    page.screenshot(path=str(SCREENSHOTS / "models.png"), full_page=True)
    context.close()


def test_dashboard_users_and_teams(dash_gateway, browser):
    """An admin creates a team and a user in the UI, sees them listed with their budgets, changes
    the team's budget and adds the user to it; the API agrees. No requests: the story's counts hold."""
    gw = dash_gateway
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    sign_in(page, gw, MASTER_KEY)

    # The team, through the form.
    page.click("#nav-teams")
    page.wait_for_url("**/ui/teams")
    page.fill("#team_alias", "E2E UI team")
    page.fill("#team_id", "e2e-ui-team")
    page.fill("#max_budget", "25")
    page.fill("#budget_duration", "30d")
    page.fill("#models", "deepseek-v3.2")
    with page.expect_navigation():
        page.click("#create-team button[type=submit]")
    row = page.locator('#teams tr[data-team="e2e-ui-team"]')
    assert row.count() == 1, page.locator("#teams-error").all_inner_texts()
    assert row.get_attribute("data-alias") == "E2E UI team"
    assert float(row.get_attribute("data-budget")) == 25.0
    assert "every 30d" in row.inner_text() and "deepseek-v3.2" in row.inner_text()

    # A user, through its form (its key shown once), listed with its budget.
    page.click("#nav-users")
    page.wait_for_url("**/ui/users")
    page.fill("#user_id", "e2e-ui-user")
    page.fill("#user_email", "e2e@example.com")
    page.fill("#max_budget", "5")
    with page.expect_navigation():
        page.click("#create-user button[type=submit]")
    assert page.locator("#new-key").inner_text().strip().startswith("sk-")
    page.goto(f"{gw.url}/ui/users")
    user = page.locator('#users tr[data-user="e2e-ui-user"]')
    assert user.count() == 1
    assert float(user.get_attribute("data-budget")) == 5.0
    assert user.locator(".key-count").inner_text() == "1"

    # The team's budget changed and the user added as its admin, on the page.
    page.goto(f"{gw.url}/ui/teams")
    row = page.locator('#teams tr[data-team="e2e-ui-team"]')
    row.locator('form.limits input[name="max_budget"]').fill("40")
    with page.expect_navigation():
        row.locator("form.limits button.save-limits").click()
    row = page.locator('#teams tr[data-team="e2e-ui-team"]')
    assert float(row.get_attribute("data-budget")) == 40.0
    row.locator('form.member-add input[name="user_id"]').fill("e2e-ui-user")
    row.locator('form.member-add select[name="role"]').select_option("admin")
    with page.expect_navigation():
        row.locator("form.member-add button.add-member").click()
    member = page.locator('#teams tr[data-team="e2e-ui-team"] li[data-member="e2e-ui-user"]')
    assert member.get_attribute("data-role") == "admin"
    page.screenshot(path=str(SCREENSHOTS / "teams.png"), full_page=True)

    # The API sees what the page made.
    with gw.http() as h:
        info = h.get("/team/info", params={"team_id": "e2e-ui-team"}).json()["team_info"]
        assert info["team_alias"] == "E2E UI team" and info["max_budget"] == 40
        assert info["members_with_roles"][0]["user_id"] == "e2e-ui-user"
        assert h.get("/user/info", params={"user_id": "e2e-ui-user"}).json()["teams"][0]["team_id"] == "e2e-ui-team"

    page.goto(f"{gw.url}/ui/users")
    assert "e2e-ui-team" in page.locator('#users tr[data-user="e2e-ui-user"] .user-teams').inner_text()
    page.screenshot(path=str(SCREENSHOTS / "users.png"), full_page=True)
    context.close()


def test_demo_ui_leaves_the_dashboard_running(browser, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    demo = subprocess.Popen(
        [tollgate_bin(), "demo", "--ui", "--tasks", "1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        url = key = None
        deadline = time.time() + 60
        while key is None and time.time() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            if line.startswith("dashboard: "):
                url = line.split(": ", 1)[1].strip()
            if line.startswith("sign in with the demo's master key: "):
                key = line.split(": ", 1)[1].strip()
        assert url == f"http://127.0.0.1:{port}/ui" and key, (url, key)
        page = browser.new_page()
        page.goto(url)
        page.fill("#key", key)
        page.click("#signin-form button[type=submit]")
        page.wait_for_url("**/ui/overview")
        assert int(figure(page, "requests")) > 0
        page.screenshot(path=str(SCREENSHOTS / "demo-overview.png"), full_page=True)
        page.close()
        # Ctrl-C stops the gateway; the demo then prints its report and exits cleanly.
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0
        assert "records written" in rest
    finally:
        if demo.poll() is None:
            demo.kill()
