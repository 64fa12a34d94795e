"""Users, teams, organizations, customers and budget tiers (issue 14): LiteLLM's management API
round trip for each entity (new -> info -> update -> list -> delete -> 404), once on the default
SQLite store and once on a shared Postgres with two instances, where what one instance writes the
other reads at once.

Management calls use httpx (LiteLLM's paths, fields, shapes and error envelope); the key
`/user/new` makes is used with the official `openai` SDK, as a LiteLLM user's code does."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Dict, Optional

import httpx
import openai
import pytest

from conftest import LITELLM_CONFIG, Gateway
# The shared-store suite's Postgres fixtures: a role and database per test.
from test_shared_store import SharedDb, pg_admin_url, pg_args, poll, shared_db  # noqa: F401

# How long a key looked up on one instance is trusted there (keys.rs CACHE_TTL), with slack.
KEY_PROPAGATION_S = 3.0


def ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
    return r.json()


def refused(r: httpx.Response, status: int, param: Optional[str]) -> Dict[str, Any]:
    """LiteLLM's management error envelope, naming the field to fix."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: expected {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == str(status) and err["param"] == param, err
    assert isinstance(err["message"], str) and err["message"], err
    if status == 400 and param:
        assert param in err["message"], err
    if status == 404:
        assert err["type"] == "not_found_error", err
    return err


def chat(gw: Gateway, key: str) -> str:
    answer = gw.client(api_key=key).chat.completions.create(
        model="deepseek-v3.2", messages=[{"role": "user", "content": f"hello [{uuid.uuid4()}]"}], max_tokens=16
    )
    return answer.choices[0].message.content or ""


def round_trip(w: Gateway, r: Gateway) -> None:
    """Every entity's round trip: written through `w`, read through `r` (the same gateway, or
    another instance on the same Postgres)."""
    wh, rh = w.http(), r.http()

    # Budget tier.
    tier = ok(wh.post("/budget/new", json={"budget_id": "e2e-tier", "max_budget": 2.0, "budget_duration": "1d", "rpm_limit": 60}))
    assert tier["budget_id"] == "e2e-tier" and tier["max_budget"] == 2.0 and tier["budget_reset_at"]
    refused(wh.post("/budget/new", json={"budget_id": "e2e-tier"}), 400, "budget_id")
    assert ok(rh.get("/budget/info", params={"budget_id": "e2e-tier"}))["rpm_limit"] == 60
    assert [b["budget_id"] for b in ok(rh.post("/budget/info", json={"budgets": ["e2e-tier", "nope"]}))] == ["e2e-tier"]
    updated = ok(wh.post("/budget/update", json={"budget_id": "e2e-tier", "max_budget": 3.0}))
    assert updated["max_budget"] == 3.0 and updated["rpm_limit"] == 60
    assert [b["budget_id"] for b in ok(rh.get("/budget/list"))] == ["e2e-tier"]

    # Organization.
    org = ok(wh.post("/organization/new", json={"organization_id": "e2e-org", "organization_alias": "E2E", "budget_id": "e2e-tier", "models": ["deepseek-v3.2"]}))
    assert org["organization_alias"] == "E2E" and org["spend"] == 0
    assert org["litellm_budget_table"]["max_budget"] == 3.0
    patched = ok(wh.patch("/organization/update", json={"organization_id": "e2e-org", "organization_alias": "E2E renamed"}))
    assert patched["organization_alias"] == "E2E renamed" and patched["models"] == ["deepseek-v3.2"]

    # Team in the organization, with a member.
    team = ok(wh.post("/team/new", json={"team_id": "e2e-team", "team_alias": "Team", "organization_id": "e2e-org", "max_budget": 10, "models": ["deepseek-v3.2", "minimax-m2.1"], "members_with_roles": [{"user_id": "e2e-admin", "role": "admin"}]}))
    assert team["team_id"] == "e2e-team" and team["members_with_roles"][0]["role"] == "admin"
    generated = ok(wh.post("/team/new", json={"team_alias": "no id"}))
    uuid.UUID(generated["team_id"])
    info = ok(rh.get("/team/info", params={"team_id": "e2e-team"}))
    assert info["team_info"]["team_alias"] == "Team" and info["keys"] == []
    assert [m["user_id"] for m in info["team_memberships"]] == ["e2e-admin"]
    upd = ok(wh.post("/team/update", json={"team_id": "e2e-team", "tpm_limit": 1000}))
    assert upd["team_id"] == "e2e-team" and upd["data"]["tpm_limit"] == 1000 and upd["data"]["max_budget"] == 10
    assert {t["team_id"] for t in ok(rh.get("/team/list"))} == {"e2e-team", generated["team_id"]}
    assert [t["team_id"] for t in ok(rh.get("/team/list", params={"organization_id": "e2e-org"}))] == ["e2e-team"]
    assert [t["team_id"] for t in ok(rh.get("/organization/info", params={"organization_id": "e2e-org"}))["teams"]] == ["e2e-team"]
    assert [o["organization_id"] for o in ok(rh.get("/organization/list"))] == ["e2e-org"]
    # A key of the team may ask only for the team's models; an unknown team is refused.
    refused(wh.post("/key/generate", json={"team_id": "e2e-team", "models": ["grok-4.1-fast"]}), 400, "models")
    refused(wh.post("/key/generate", json={"team_id": "no-such-team"}), 400, "team_id")

    # Member add / update / delete.
    added = ok(wh.post("/team/member_add", json={"team_id": "e2e-team", "member": [{"user_id": "e2e-member", "role": "user"}], "max_budget_in_team": 1.5}))
    assert [m["user_id"] for m in added["members_with_roles"]] == ["e2e-admin", "e2e-member"]
    assert added["updated_team_memberships"][0]["litellm_budget_table"]["max_budget"] == 1.5
    refused(wh.post("/team/member_add", json={"team_id": "e2e-team", "member": {"user_id": "e2e-member", "role": "user"}}), 400, "member")
    assert ok(wh.post("/team/member_update", json={"team_id": "e2e-team", "user_id": "e2e-member", "role": "admin", "max_budget_in_team": 2.5}))["max_budget_in_team"] == 2.5
    assert ok(rh.get("/user/info", params={"user_id": "e2e-member"}))["user_info"]["teams"] == ["e2e-team"]
    left = ok(wh.post("/team/member_delete", json={"team_id": "e2e-team", "user_id": "e2e-member"}))
    assert [m["user_id"] for m in left["members_with_roles"]] == ["e2e-admin"]
    assert ok(rh.get("/user/info", params={"user_id": "e2e-member"}))["user_info"]["teams"] == []

    # User, with the key LiteLLM makes for it, used through the openai SDK.
    user = ok(wh.post("/user/new", json={"user_id": "e2e-user", "user_email": "u@e2e.test", "max_budget": 5, "teams": ["e2e-team"], "key_alias": "e2e-user-key", "models": ["deepseek-v3.2"]}))
    key = user["key"]
    assert key.startswith("sk-") and user["user_id"] == "e2e-user" and user["teams"] == ["e2e-team"]
    assert user["key_alias"] == "e2e-user-key" and "token" not in user
    assert poll("the user's key works on the reading instance", lambda: (_works(r, key), None), KEY_PROPAGATION_S) is None
    refused(wh.post("/user/new", json={"user_id": "e2e-user"}), 400, "user_id")
    uinfo = ok(rh.get("/user/info", params={"user_id": "e2e-user"}))
    assert uinfo["user_info"]["user_email"] == "u@e2e.test" and uinfo["user_info"]["max_budget"] == 5
    assert [k["key_alias"] for k in uinfo["keys"]] == ["e2e-user-key"] and uinfo["keys"][0]["team_alias"] is None
    assert [t["team_id"] for t in uinfo["teams"]] == ["e2e-team"]
    uupd = ok(wh.post("/user/update", json={"user_id": "e2e-user", "user_alias": "U", "max_budget": 6}))
    assert uupd["user_id"] == "e2e-user" and uupd["data"]["user_alias"] == "U" and uupd["data"]["max_budget"] == 6
    listed = ok(rh.get("/user/list", params={"page_size": 100}))
    assert {u["user_id"] for u in listed["users"]} == {"e2e-admin", "e2e-member", "e2e-user"} and listed["total"] == 3
    assert {u["user_id"]: u["key_count"] for u in listed["users"]}["e2e-user"] == 1

    # Customer (end user), under both paths.
    cust = ok(wh.post("/customer/new", json={"user_id": "e2e-cust", "alias": "Shop", "budget_id": "e2e-tier", "allowed_model_region": "eu"}))
    assert cust["blocked"] is False and cust["litellm_budget_table"]["budget_id"] == "e2e-tier"
    refused(wh.post("/customer/new", json={"user_id": "e2e-cust"}), 400, "user_id")
    refused(wh.post("/customer/new", json={"user_id": "x", "max_budget": 1, "budget_id": "e2e-tier"}), 400, "budget_id")
    assert ok(rh.get("/end_user/info", params={"end_user_id": "e2e-cust"}))["alias"] == "Shop"
    cupd = ok(wh.post("/customer/update", json={"user_id": "e2e-cust", "alias": "Shop 2"}))
    assert cupd["alias"] == "Shop 2" and cupd["allowed_model_region"] == "eu"
    assert ok(wh.post("/customer/block", json={"user_ids": ["e2e-cust"]}))["blocked_users"][0]["blocked"] is True
    assert ok(rh.get("/customer/info", params={"end_user_id": "e2e-cust"}))["blocked"] is True
    ok(wh.post("/customer/unblock", json={"user_ids": ["e2e-cust"]}))
    assert [c["user_id"] for c in ok(rh.get("/customer/list"))] == ["e2e-cust"]

    # A tier in use cannot be deleted.
    refused(wh.post("/budget/delete", json={"id": "e2e-tier"}), 400, "id")

    # Deletes, each then a 404.
    assert ok(wh.post("/customer/delete", json={"user_ids": ["e2e-cust"]}))["deleted_customers"] == 1
    refused(rh.get("/customer/info", params={"end_user_id": "e2e-cust"}), 404, "end_user_id")
    assert ok(wh.post("/user/delete", json={"user_ids": ["e2e-user"]})) == 1
    refused(rh.get("/user/info", params={"user_id": "e2e-user"}), 404, "user_id")
    # LiteLLM deletes a user's keys with the user.
    assert poll("the deleted user's key stops working", lambda: (not _works(r, key), None), KEY_PROPAGATION_S) is None
    assert ok(wh.post("/team/delete", json={"team_ids": [generated["team_id"]]})) == {"deleted_teams": [generated["team_id"]]}
    gone = ok(wh.request("DELETE", "/organization/delete", json={"organization_ids": ["e2e-org"]}))
    assert [o["organization_id"] for o in gone] == ["e2e-org"] and gone[0]["teams"][0]["team_id"] == "e2e-team"
    refused(rh.get("/organization/info", params={"organization_id": "e2e-org"}), 404, "organization_id")
    refused(rh.get("/team/info", params={"team_id": "e2e-team"}), 404, "team_id")
    assert ok(wh.post("/budget/delete", json={"id": "e2e-tier"}))["budget_id"] == "e2e-tier"
    refused(rh.get("/budget/info", params={"budget_id": "e2e-tier"}), 404, "budget_id")
    assert ok(rh.get("/budget/list")) == [] and ok(rh.get("/team/list")) == []


def _works(gw: Gateway, key: str) -> bool:
    try:
        return bool(chat(gw, key))
    except openai.AuthenticationError:
        return False


def test_entities_round_trip_on_sqlite(start_gateway):
    gw = start_gateway("entities-sqlite")
    round_trip(gw, gw)
    # A virtual key is no admin for these endpoints.
    key = ok(gw.http().post("/key/generate", json={}))["key"]
    r = httpx.post(f"{gw.url}/team/new", headers={"Authorization": f"Bearer {key}"}, json={}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["type"] == "auth_error", r.text


def test_entities_round_trip_on_shared_postgres(shared_db: SharedDb, start_gateway, tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(LITELLM_CONFIG)
    a = start_gateway("gw-a", config_path=config, extra_args=pg_args(shared_db, "gw-a"))
    b = start_gateway("gw-b", config_path=config, extra_args=pg_args(shared_db, "gw-b"))
    round_trip(a, b)
    # Both instances wrote to the one Postgres: the deleted entities are kept there for audit.
    kinds = {k for (k,) in shared_db.query("SELECT DISTINCT kind FROM tollgate_deleted_entities")}
    assert kinds >= {"user", "team", "organization", "customer", "budget", "team_member"}, kinds
