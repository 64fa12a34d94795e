"""Budgets beyond the key's (issue 14), held exactly across two instances sharing one Postgres: a
team's budget over all of its keys, and an end user's (the OpenAI `user` field) over every key that
names them. Entities are made with LiteLLM's management API (httpx); completions use the official
`openai` SDK. Needs the test Postgres (TOLLGATE_TEST_POSTGRES_URL, see test_shared_store.py)."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List

import openai
import pytest

from test_keys import ok, pg_records, two_instances
from test_shared_store import drained, pg_admin_url, poll, shared_db  # noqa: F401


def one_request_cost(gw, max_tokens: int) -> float:
    probe = gw.client().chat.completions.with_raw_response.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": f"probe [{uuid.uuid4()}]"}], max_tokens=max_tokens
    )
    return float(probe.headers["x-tollgate-cost-usd"])


def burst(clients: List[Any], n: int, max_tokens: int, user: str | None = None) -> List[Any]:
    """`n` concurrent completions, request i through clients[i % len(clients)]."""
    start = threading.Barrier(n)
    outcomes: List[Any] = [None] * n

    def fire(i: int) -> None:
        extra = {"user": user} if user else {}
        start.wait()
        try:
            r = clients[i % len(clients)].chat.completions.with_raw_response.create(
                model="deepseek-v3.2",
                messages=[{"role": "user", "content": f"burst {i:03d} [{uuid.uuid4()}]"}],
                max_tokens=max_tokens,
                **extra,
            )
            outcomes[i] = ("ok", float(r.headers["x-tollgate-cost-usd"]))
        except openai.RateLimitError as e:
            outcomes[i] = ("429", e.body)
        except Exception as e:  # noqa: BLE001 - any other outcome is a finding
            outcomes[i] = ("other", repr(e))

    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(fire, range(n)))
    return outcomes


def test_a_team_budget_holds_across_its_keys_on_two_instances(shared_db, start_gateway, tmp_path):
    gws = two_instances(shared_db, start_gateway, tmp_path)
    a, b = gws["gw-a"], gws["gw-b"]
    max_tokens = 20
    one = one_request_cost(a, max_tokens)
    max_budget = round(5.5 * one, 12)
    team = ok(a.http().post("/team/new", json={"team_alias": "burst-team", "max_budget": max_budget}))
    team_id = team["team_id"]
    keys = [ok(a.http().post("/key/generate", json={"team_id": team_id}))["key"] for _ in range(2)]
    time.sleep(1.5)  # made on A, seen on B within the key cache's second

    # Four clients: both keys on both instances.
    clients = [gw.client(api_key=k) for gw in (a, b) for k in keys]
    outcomes = burst(clients, 50, max_tokens)
    assert not [o for o in outcomes if o[0] == "other"], outcomes
    succeeded = [o for o in outcomes if o[0] == "ok"]
    refused = [o for o in outcomes if o[0] == "429"]
    assert succeeded and refused, outcomes
    assert len(succeeded) <= 6, f"{len(succeeded)} requests got through a team budget of {max_budget} (one costs {one})"
    for _, body in refused:
        assert body["type"] == "budget_exceeded" and body["scope"] == "team", body
        assert body["entity_id"] == "burst-team", body

    time.sleep(1.0)  # gathered spend written (every 250 ms)
    for name, gw in gws.items():
        poll(f"{name} shipped every record", lambda gw=gw: drained(gw), 30)
    recorded = sum(r.get("cost_usd") or 0.0 for r in pg_records(shared_db) if r.get("team_id") == team_id)
    assert recorded == pytest.approx(sum(o[1] for o in succeeded), abs=1e-12)
    [(spend, reserved)] = shared_db.query(
        "SELECT spend, reserved FROM tollgate_spend WHERE scope = 'team' AND id = %s", (team_id,)
    )
    assert spend <= max_budget + 1e-9
    assert spend == pytest.approx(recorded, abs=1e-9), (spend, recorded)
    assert reserved == pytest.approx(0.0, abs=1e-12), "every hold was given back"
    info = ok(b.http().get("/team/info", params={"team_id": team_id}))
    assert info["team_info"]["spend"] == pytest.approx(recorded, abs=1e-9), info
    for gw in gws.values():
        assert gw.stop() == 0, gw.stderr()


def test_an_end_user_budget_holds_over_every_key_on_two_instances(shared_db, start_gateway, tmp_path):
    gws = two_instances(shared_db, start_gateway, tmp_path)
    a, b = gws["gw-a"], gws["gw-b"]
    max_tokens = 20
    one = one_request_cost(a, max_tokens)
    max_budget = round(4.5 * one, 12)
    ok(a.http().post("/customer/new", json={"user_id": "acme-customer", "max_budget": max_budget}))
    time.sleep(1.5)
    outcomes = burst([a.client(), b.client()], 40, max_tokens, user="acme-customer")
    succeeded = [o for o in outcomes if o[0] == "ok"]
    refused = [o for o in outcomes if o[0] == "429"]
    assert not [o for o in outcomes if o[0] == "other"], outcomes
    assert succeeded and refused and len(succeeded) <= 5, (len(succeeded), len(refused))
    assert all(body["scope"] == "end_user" and body["entity_id"] == "acme-customer" for _, body in refused)
    # Another end user is not affected.
    r = a.client().chat.completions.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}], max_tokens=max_tokens, user="someone-else"
    )
    assert r.choices
    time.sleep(1.0)
    for name, gw in gws.items():
        poll(f"{name} shipped every record", lambda gw=gw: drained(gw), 30)
    mine = [r for r in pg_records(shared_db) if r.get("end_user") == "acme-customer"]
    assert len(mine) == 40, "every request of the burst, refusals included, is recorded with its end user"
    for gw in gws.values():
        assert gw.stop() == 0, gw.stderr()
