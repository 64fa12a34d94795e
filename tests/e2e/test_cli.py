"""The command line around the gateway: `check` on the LiteLLM config, the startup summary of
`serve`, and refusing a guessable master key."""

from __future__ import annotations

import re

import httpx

from conftest import ALL_SECRETS, GROUPS, LITELLM_CONFIG, base_env, run_tollgate

# drop_params is not acted on (tollgate passes fields through); num_retries and routing_strategy
# are, so they must not be reported as ignored.
IGNORED_SETTINGS = [
    "litellm_settings.drop_params",
]
ACTED_ON_SETTINGS = [
    "litellm_settings.num_retries",
    "router_settings.routing_strategy",
]


def assert_no_secrets(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text


def test_check_warns_about_settings_it_does_not_act_on(tmp_path, mock):
    config = tmp_path / "config.yaml"
    config.write_text(LITELLM_CONFIG)
    r = run_tollgate(["check", "--config", str(config)], base_env(mock.api_base))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    warnings = [l for l in r.stdout.splitlines() if l.startswith("warning: ")]
    for setting in IGNORED_SETTINGS:
        # Each warning names the file, the line and column of the setting, and its YAML path.
        located = re.compile(rf"^warning: {re.escape(str(config))}:\d+:\d+: {re.escape(setting)}: ")
        assert any(located.match(l) for l in warnings), (setting, out)
    for setting in ACTED_ON_SETTINGS:
        assert not any(f": {setting}: " in l for l in warnings), (setting, out)
    # What it will serve: every group with its upstream and price.
    for group, model in GROUPS.items():
        assert re.search(rf"^  model {re.escape(group)}: {re.escape(model)} via {re.escape(mock.api_base)} \(\$", r.stdout, re.M), out
    assert "UNPRICED" not in r.stdout
    assert_no_secrets(out)
    # The keys are shown redacted.
    assert "…****" in r.stdout


def test_check_names_the_line_of_a_yaml_syntax_error(tmp_path, mock):
    lines = LITELLM_CONFIG.splitlines()
    # A classic hand-editing slip: one key indented a column short.
    bad = next(i for i, l in enumerate(lines) if l.strip().startswith("api_key: os.environ/MINIMAX_API_KEY"))
    lines[bad] = lines[bad][1:]
    config = tmp_path / "broken.yaml"
    config.write_text("\n".join(lines) + "\n")
    r = run_tollgate(["check", "--config", str(config)], base_env(mock.api_base))
    assert r.returncode == 2, r.stdout + r.stderr
    column = len(lines[bad]) - len(lines[bad].lstrip()) + 1
    assert f"{config}:{bad + 1}:{column}" in r.stderr, r.stderr
    assert "YAML" in r.stderr
    assert_no_secrets(r.stdout + r.stderr)


def test_serve_refuses_the_well_known_master_key(tmp_path, mock):
    config = tmp_path / "config.yaml"
    config.write_text(LITELLM_CONFIG)
    r = run_tollgate(
        ["serve", "--config", str(config), "--port", "0", "--data-dir", str(tmp_path / "data")],
        base_env(mock.api_base, master_key="sk-1234"),
        timeout=20,
    )
    assert r.returncode != 0
    assert "--insecure-dev" in r.stderr
    assert "master_key" in r.stderr


def test_insecure_dev_starts_but_still_enforces_a_configured_key(tmp_path, mock, start_gateway):
    gw = start_gateway("insecure", master_key="sk-1234", extra_args=["--insecure-dev"])
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert r.status_code == 401
    r = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={"Authorization": "Bearer sk-1234"},
        json={"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert gw.stop() == 0


def test_startup_prints_groups_cache_store_and_auth(gateway):
    err = gateway.stderr()
    lines = err.splitlines()
    assert any(l.startswith(f"tollgate listening on http://127.0.0.1:{gateway.port}") for l in lines), err
    model_lines = [l for l in lines if l.startswith("  model ")]
    assert len(model_lines) == len(GROUPS), err
    for line, (group, model) in zip(model_lines, GROUPS.items()):
        assert line.startswith(f"  model {group}: {model} via {gateway.mock.api_base} ($"), line
        assert "per 1M in/out" in line
    assert "  model deepseek-v3.2: deepseek/deepseek-v3.2 via " in err
    assert "($0.28/$0.40 per 1M in/out)" in model_lines[0]
    assert any(l.startswith("  cache: off") for l in lines), err
    store = [l for l in lines if l.startswith("  store: ")]
    assert store == [f"  store: sqlite {gateway.data_dir / 'tollgate.sqlite'} + jsonl {gateway.jsonl_path}"], err
    assert any(l.startswith("  record durability: buffered (") for l in lines), err
    assert any(l.startswith("  auth: master key required") for l in lines), err
    # Settings it does not act on are named at startup too.
    for setting in IGNORED_SETTINGS:
        assert setting in err
    assert_no_secrets(err)


def test_bad_port_fails_fast(tmp_path, mock, gateway):
    """A port already in use is an error with a non-zero exit, not a hang."""
    config = tmp_path / "config.yaml"
    config.write_text(LITELLM_CONFIG)
    r = run_tollgate(
        ["serve", "--config", str(config), "--port", str(gateway.port), "--data-dir", str(tmp_path / "d")],
        base_env(mock.api_base),
        timeout=20,
    )
    assert r.returncode != 0
    assert str(gateway.port) in r.stderr
