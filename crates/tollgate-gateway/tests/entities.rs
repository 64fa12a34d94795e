//! LiteLLM's management API for users, teams, team members, organizations, customers and budget
//! tiers, over real HTTP: each entity's round trip (new → info → update → list → delete → 404)
//! on SQLite and on Postgres, LiteLLM's error envelope for bad input, membership kept in step
//! across team, user and membership row, keys that may name only teams and tiers that exist,
//! and what goes with a deleted user or team.

use serde_json::{Value, json};

mod common;
use common::{Gw, KEY, call, gateway, gateway_opts, start_mock, two_priced_groups};

/// A management call with the master key that must succeed; its answer.
async fn ok(gw: &Gw, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = call(gw, method, path, KEY, body).await;
    assert_eq!(s, 200, "{method} {path}: {v}");
    v
}

/// A refusal in LiteLLM's envelope, with this status and naming `param` in both the param and
/// the message.
async fn refused(gw: &Gw, method: &str, path: &str, body: Option<Value>, status: u16, param: &str) -> String {
    let (s, v) = call(gw, method, path, KEY, body.clone()).await;
    assert_eq!(s, status, "{method} {path} {body:?}: {v}");
    let e = &v["error"];
    assert_eq!(e["code"], status.to_string(), "{v}");
    assert_eq!(e["param"], param, "{method} {path} {body:?}: {v}");
    let message = e["message"].as_str().unwrap().to_string();
    assert!(message.contains(param) || status == 404, "{message}");
    message
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

/// new → info → update → list → delete → 404 for every entity, on whichever store `gw` uses.
async fn round_trip(gw: &Gw) {
    // A budget tier.
    let tier = ok(
        gw,
        "POST",
        "/budget/new",
        Some(json!({"budget_id": "free", "max_budget": 1.5, "budget_duration": "1d", "rpm_limit": 10})),
    )
    .await;
    assert_eq!(
        (tier["budget_id"].as_str(), tier["max_budget"].as_f64()),
        (Some("free"), Some(1.5))
    );
    assert!(tier["budget_reset_at"].as_str().is_some(), "{tier}");
    refused(
        gw,
        "POST",
        "/budget/new",
        Some(json!({"budget_id": "free"})),
        400,
        "budget_id",
    )
    .await;
    let got = ok(gw, "GET", "/budget/info?budget_id=free", None).await;
    assert_eq!(got["rpm_limit"], 10);
    let many = ok(gw, "POST", "/budget/info", Some(json!({"budgets": ["free", "nope"]}))).await;
    assert_eq!(many.as_array().unwrap().len(), 1);
    let changed = ok(
        gw,
        "POST",
        "/budget/update",
        Some(json!({"budget_id": "free", "max_budget": 2.0})),
    )
    .await;
    assert_eq!(
        (changed["max_budget"].as_f64(), changed["rpm_limit"].as_u64()),
        (Some(2.0), Some(10))
    );
    assert_eq!(ok(gw, "GET", "/budget/list", None).await.as_array().unwrap().len(), 1);

    // An organization, on the tier.
    let org = ok(
        gw,
        "POST",
        "/organization/new",
        Some(
            json!({"organization_id": "acme", "organization_alias": "Acme", "models": ["cheap"], "budget_id": "free"}),
        ),
    )
    .await;
    assert_eq!(org["organization_alias"], "Acme");
    assert_eq!(
        org["litellm_budget_table"]["max_budget"], 2.0,
        "the tier's budget: {org}"
    );
    assert_eq!(org["spend"], 0.0);

    // A team in it, with a member; then the organization lists it.
    let team = ok(gw, "POST", "/team/new", Some(json!({"team_id": "core", "team_alias": "Core", "organization_id": "acme", "max_budget": 5, "models": ["cheap"], "members_with_roles": [{"user_id": "ada", "role": "admin"}]}))).await;
    assert_eq!(team["members_with_roles"][0]["user_id"], "ada");
    assert_eq!(team["max_budget"], 5.0);
    let anon = ok(gw, "POST", "/team/new", Some(json!({"team_alias": "no id given"}))).await;
    let anon_id = anon["team_id"].as_str().unwrap().to_string();
    assert_eq!(anon_id.len(), 36, "a uuid: {anon_id}");
    refused(
        gw,
        "POST",
        "/team/new",
        Some(json!({"team_id": "core"})),
        400,
        "team_id",
    )
    .await;
    let info = ok(gw, "GET", "/team/info?team_id=core", None).await;
    assert_eq!(info["team_id"], "core");
    assert_eq!(info["team_info"]["team_alias"], "Core");
    assert_eq!(info["team_memberships"][0]["user_id"], "ada");
    assert_eq!(info["keys"], json!([]));
    let org_info = ok(gw, "GET", "/organization/info?organization_id=acme", None).await;
    let team_ids: Vec<&str> = org_info["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team_id"].as_str().unwrap())
        .collect();
    assert_eq!(team_ids, ["core"]);
    let updated = ok(
        gw,
        "POST",
        "/team/update",
        Some(json!({"team_id": "core", "rpm_limit": 7})),
    )
    .await;
    assert_eq!(
        (updated["team_id"].as_str(), updated["data"]["rpm_limit"].as_u64()),
        (Some("core"), Some(7))
    );
    assert_eq!(updated["data"]["max_budget"], 5.0, "only what is given changes");
    let listed = ok(gw, "GET", "/team/list", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let in_org = ok(gw, "GET", "/team/list?organization_id=acme", None).await;
    assert_eq!(in_org.as_array().unwrap().len(), 1);
    assert_eq!(in_org[0]["team_memberships"][0]["user_id"], "ada");

    // A user: made as a team member above, so /user/new refuses the id; a new one gets a key.
    refused(gw, "POST", "/user/new", Some(json!({"user_id": "ada"})), 400, "user_id").await;
    let bob = ok(gw, "POST", "/user/new", Some(json!({"user_id": "bob", "user_email": "bob@x.test", "max_budget": 3, "teams": ["core"], "key_alias": "bob-key"}))).await;
    let raw = bob["key"].as_str().unwrap().to_string();
    assert!(raw.starts_with("sk-"), "{bob}");
    assert_eq!(
        (bob["user_id"].as_str(), bob["key_alias"].as_str()),
        (Some("bob"), Some("bob-key"))
    );
    assert_eq!(bob["max_budget"], 3.0);
    assert_eq!(bob["teams"], json!(["core"]));
    assert!(bob.get("token").is_none(), "LiteLLM's answer has no token: {bob}");
    let (s, answer) = call(gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!(s, 200, "the user's key works: {answer}");
    let keyless = ok(
        gw,
        "POST",
        "/user/new",
        Some(json!({"user_id": "cy", "auto_create_key": false})),
    )
    .await;
    assert_eq!(keyless["key"], Value::Null);
    let user = ok(gw, "GET", "/user/info?user_id=bob", None).await;
    assert_eq!(user["user_id"], "bob");
    assert_eq!(user["user_info"]["user_email"], "bob@x.test");
    assert_eq!(user["keys"][0]["key_alias"], "bob-key");
    assert_eq!(user["keys"][0]["team_alias"], Value::Null);
    assert_eq!(user["teams"][0]["team_id"], "core");
    let changed = ok(
        gw,
        "POST",
        "/user/update",
        Some(json!({"user_id": "bob", "user_alias": "Bob", "max_budget": null})),
    )
    .await;
    assert_eq!(changed["user_id"], "bob");
    assert_eq!(changed["data"]["user_alias"], "Bob");
    assert!(changed["data"].get("max_budget").is_none(), "null clears: {changed}");
    let users = ok(gw, "GET", "/user/list?page_size=2", None).await;
    assert_eq!(
        (users["total"].as_u64(), users["total_pages"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    let page2 = ok(gw, "GET", "/user/list?page_size=2&page=2", None).await;
    assert_eq!(page2["users"][0]["user_id"], "cy");
    let bob_listed = ok(gw, "GET", "/user/list?user_ids=bob", None).await;
    assert_eq!(bob_listed["users"][0]["key_count"], 1);

    // A customer (an end user), on the tier; /end_user/* is the same API.
    let c = ok(
        gw,
        "POST",
        "/customer/new",
        Some(json!({"user_id": "cust-1", "alias": "Shop", "budget_id": "free", "default_model": "cheap"})),
    )
    .await;
    assert_eq!(
        (c["user_id"].as_str(), c["blocked"].as_bool()),
        (Some("cust-1"), Some(false))
    );
    assert_eq!(c["litellm_budget_table"]["budget_id"], "free");
    refused(
        gw,
        "POST",
        "/customer/new",
        Some(json!({"user_id": "cust-1"})),
        400,
        "user_id",
    )
    .await;
    assert_eq!(
        ok(gw, "GET", "/end_user/info?end_user_id=cust-1", None).await["alias"],
        "Shop"
    );
    let c = ok(
        gw,
        "POST",
        "/customer/update",
        Some(json!({"user_id": "cust-1", "budget_id": null, "max_budget": 0.5})),
    )
    .await;
    assert_eq!(c["litellm_budget_table"]["max_budget"], 0.5, "its own budget now: {c}");
    let blocked = ok(
        gw,
        "POST",
        "/customer/block",
        Some(json!({"user_ids": ["cust-1", "cust-2"]})),
    )
    .await;
    assert_eq!(
        blocked["blocked_users"].as_array().unwrap().len(),
        2,
        "LiteLLM makes unknown customers: {blocked}"
    );
    assert_eq!(
        ok(gw, "GET", "/customer/info?end_user_id=cust-2", None).await["blocked"],
        true
    );
    ok(gw, "POST", "/customer/unblock", Some(json!({"user_ids": ["cust-2"]}))).await;
    assert_eq!(
        ok(gw, "GET", "/customer/info?end_user_id=cust-2", None).await["blocked"],
        false
    );
    assert_eq!(ok(gw, "GET", "/customer/list", None).await.as_array().unwrap().len(), 2);

    // The tier cannot go while anything names it.
    let msg = refused(gw, "POST", "/budget/delete", Some(json!({"id": "free"})), 400, "id").await;
    assert!(msg.contains("organization acme"), "{msg}");

    // Deletes, each followed by a 404.
    let gone = ok(
        gw,
        "POST",
        "/customer/delete",
        Some(json!({"user_ids": ["cust-1", "cust-2"]})),
    )
    .await;
    assert_eq!(gone["deleted_customers"], 2);
    refused(gw, "GET", "/customer/info?end_user_id=cust-1", None, 404, "end_user_id").await;
    refused(
        gw,
        "POST",
        "/customer/delete",
        Some(json!({"user_ids": ["cust-1"]})),
        404,
        "user_ids",
    )
    .await;
    assert_eq!(
        ok(gw, "POST", "/user/delete", Some(json!({"user_ids": ["bob", "cy"]}))).await,
        json!(2)
    );
    refused(gw, "GET", "/user/info?user_id=bob", None, 404, "user_id").await;
    let (s, _) = call(gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!(s, 401, "LiteLLM deletes the user's keys with the user");
    assert_eq!(
        ok(gw, "POST", "/team/delete", Some(json!({"team_ids": [anon_id]}))).await["deleted_teams"][0],
        anon_id
    );
    // DELETE, as LiteLLM's current API has it: the organization and its teams.
    let deleted = ok(
        gw,
        "DELETE",
        "/organization/delete",
        Some(json!({"organization_ids": ["acme"]})),
    )
    .await;
    assert_eq!(deleted[0]["organization_id"], "acme");
    assert_eq!(deleted[0]["teams"][0]["team_id"], "core");
    refused(
        gw,
        "GET",
        "/organization/info?organization_id=acme",
        None,
        404,
        "organization_id",
    )
    .await;
    refused(gw, "GET", "/team/info?team_id=core", None, 404, "team_id").await;
    let ada = ok(gw, "GET", "/user/info?user_id=ada", None).await;
    assert_eq!(
        ada["user_info"]["teams"],
        json!([]),
        "the deleted team left ada's teams"
    );
    let gone = ok(gw, "POST", "/budget/delete", Some(json!({"id": "free"}))).await;
    assert_eq!(gone["budget_id"], "free");
    refused(gw, "GET", "/budget/info?budget_id=free", None, 404, "budget_id").await;
    assert_eq!(ok(gw, "GET", "/organization/list", None).await, json!([]));
    assert_eq!(ok(gw, "GET", "/budget/list", None).await, json!([]));
}

#[tokio::test]
async fn every_entity_round_trips_on_sqlite() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    round_trip(&gw).await;
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn every_entity_round_trips_on_postgres() {
    // The test database's client is blocking: it is made and dropped outside the runtime.
    let db = tollgate_store::test_db::TestDatabase::create("entities").expect("a Postgres test database");
    let url = db.url.clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let mock = start_mock(&[]).await;
        let gw = gateway_opts(&two_priced_groups(mock), move |o| {
            o.database = Some(tollgate_core::database::DatabaseChoice {
                url,
                pool_size: 4,
                source: tollgate_core::database::FROM_FLAG,
            });
        })
        .await;
        round_trip(&gw).await;
    });
    // The entities lived in the shared database, where every instance sees them.
    let mut admin = db.admin().unwrap();
    let deleted: i64 = admin
        .query_one("SELECT count(*) FROM tollgate_deleted_entities", &[])
        .unwrap()
        .get(0);
    assert!(deleted >= 8, "deleted entities are kept for audit: {deleted}");
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    ok(&gw, "POST", "/team/new", Some(json!({"team_id": "t"}))).await;
    for (path, body, field) in [
        ("/user/new", json!({"max_budget": -1}), "max_budget"),
        ("/user/new", json!({"budget_duration": "soon"}), "budget_duration"),
        ("/user/new", json!({"models": "cheap"}), "models"),
        ("/user/new", json!({"user_role": "king"}), "user_role"),
        ("/user/new", json!({"teams": ["no-such-team"]}), "teams"),
        ("/user/new", json!({"budget_id": "no-such-tier"}), "budget_id"),
        ("/team/new", json!({"rpm_limit": "ten"}), "rpm_limit"),
        (
            "/team/new",
            json!({"organization_id": "no-such-org"}),
            "organization_id",
        ),
        (
            "/team/new",
            json!({"members_with_roles": [{"user_id": "a"}]}),
            "members_with_roles",
        ),
        ("/team/new", json!({"metadata": [1]}), "metadata"),
        ("/team/update", json!({"max_budget": 1}), "team_id"),
        ("/team/update", json!({"team_id": "t", "blocked": "yes"}), "blocked"),
        (
            "/team/update",
            json!({"team_id": "t", "members_with_roles": []}),
            "members_with_roles",
        ),
        ("/team/member_add", json!({"team_id": "t"}), "member"),
        (
            "/team/member_add",
            json!({"team_id": "t", "member": {"user_id": "a", "role": "owner"}}),
            "member",
        ),
        (
            "/team/member_add",
            json!({"team_id": "t", "member": {"user_id": "a", "role": "user"}, "max_budget_in_team": -2}),
            "max_budget_in_team",
        ),
        ("/organization/new", json!({"models": []}), "organization_alias"),
        (
            "/organization/new",
            json!({"organization_alias": "x", "tpm_limit": -5}),
            "tpm_limit",
        ),
        ("/customer/new", json!({"alias": "no id"}), "user_id"),
        (
            "/customer/new",
            json!({"user_id": "c", "max_budget": 1, "budget_id": "b"}),
            "budget_id",
        ),
        (
            "/customer/new",
            json!({"user_id": "c", "allowed_model_region": "mars"}),
            "allowed_model_region",
        ),
        (
            "/customer/new",
            json!({"user_id": "c", "default_model": "no-such-model"}),
            "default_model",
        ),
        ("/budget/new", json!({"max_budget": "lots"}), "max_budget"),
        ("/budget/new", json!({"budget_duration": "1y"}), "budget_duration"),
        ("/user/delete", json!({"user_ids": "bob"}), "user_ids"),
        ("/team/delete", json!({}), "team_ids"),
    ] {
        refused(&gw, "POST", path, Some(body), 400, field).await;
    }
    // Not JSON, and not an object.
    let (s, v) = call(&gw, "POST", "/team/new", KEY, Some(json!([1]))).await;
    assert_eq!((s, v["error"]["type"].as_str()), (400, Some("bad_request_error")));
    // Unknown entities are 404 not_found_error.
    for (method, path, body, field) in [
        ("GET", "/user/info?user_id=nobody", None, "user_id"),
        (
            "POST",
            "/user/update",
            Some(json!({"user_id": "nobody", "max_budget": 1})),
            "user_id",
        ),
        (
            "POST",
            "/team/member_add",
            Some(json!({"team_id": "nope", "member": {"user_id": "a", "role": "user"}})),
            "team_id",
        ),
        (
            "POST",
            "/team/member_delete",
            Some(json!({"team_id": "t", "user_id": "stranger"})),
            "user_id",
        ),
        (
            "POST",
            "/organization/update",
            Some(json!({"organization_id": "nope"})),
            "organization_id",
        ),
        (
            "POST",
            "/budget/update",
            Some(json!({"budget_id": "nope"})),
            "budget_id",
        ),
        ("POST", "/customer/update", Some(json!({"user_id": "nope"})), "user_id"),
        (
            "POST",
            "/team/delete",
            Some(json!({"team_ids": ["t", "nope"]})),
            "team_ids",
        ),
    ] {
        let (_, v) = call(&gw, method, path, KEY, body.clone()).await;
        assert_eq!(v["error"]["type"], "not_found_error", "{path}: {v}");
        refused(&gw, method, path, body, 404, field).await;
    }
    assert_eq!(
        ok(&gw, "GET", "/team/info?team_id=t", None).await["team_id"],
        "t",
        "a refused delete of several deletes none"
    );
    // A virtual key is no admin here either.
    let key = ok(&gw, "POST", "/key/generate", Some(json!({}))).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) = call(&gw, "POST", "/team/new", &key, Some(json!({}))).await;
    assert_eq!((s, v["error"]["type"].as_str()), (403, Some("auth_error")));
    let (s, _) = call(&gw, "GET", "/user/list", "sk-not-a-key", None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn team_members_join_change_and_leave() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    ok(
        &gw,
        "POST",
        "/team/new",
        Some(json!({"team_id": "t", "team_alias": "T"})),
    )
    .await;
    ok(
        &gw,
        "POST",
        "/user/new",
        Some(json!({"user_id": "ada", "user_email": "ada@x.test", "auto_create_key": false})),
    )
    .await;

    // One member by id (an existing user), with a budget in the team.
    let added = ok(
        &gw,
        "POST",
        "/team/member_add",
        Some(json!({"team_id": "t", "member": {"user_id": "ada", "role": "admin"}, "max_budget_in_team": 2.5})),
    )
    .await;
    assert_eq!(added["team_id"], "t");
    assert_eq!(added["updated_users"][0]["teams"], json!(["t"]));
    let m = &added["updated_team_memberships"][0];
    assert_eq!((m["user_id"].as_str(), m["team_id"].as_str()), (Some("ada"), Some("t")));
    assert_eq!(m["litellm_budget_table"]["max_budget"], 2.5);
    // A list: a new user by id, and one by email only (LiteLLM makes both users).
    let added = ok(&gw, "POST", "/team/member_add", Some(json!({"team_id": "t", "member": [{"user_id": "bo", "role": "user"}, {"user_email": "cy@x.test", "role": "user"}]}))).await;
    let members = added["members_with_roles"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let cy = members[2]["user_id"].as_str().unwrap().to_string();
    assert_eq!(cy.len(), 36, "a made user gets a uuid: {cy}");
    assert_eq!(
        ok(&gw, "GET", &format!("/user/info?user_id={cy}"), None).await["user_info"]["user_email"],
        "cy@x.test"
    );
    assert_eq!(
        ok(&gw, "GET", "/user/info?user_id=bo", None).await["user_info"]["teams"],
        json!(["t"])
    );
    // Adding a member twice is refused.
    refused(
        &gw,
        "POST",
        "/team/member_add",
        Some(json!({"team_id": "t", "member": {"user_email": "ada@x.test", "role": "user"}})),
        400,
        "member",
    )
    .await;

    // Update: role and budget, by email.
    let up = ok(
        &gw,
        "POST",
        "/team/member_update",
        Some(json!({"team_id": "t", "user_email": "ada@x.test", "role": "user", "max_budget_in_team": 9})),
    )
    .await;
    assert_eq!(
        up,
        json!({"team_id": "t", "user_id": "ada", "user_email": "ada@x.test", "max_budget_in_team": 9.0})
    );
    let info = ok(&gw, "GET", "/team/info?team_id=t", None).await;
    assert_eq!(info["team_info"]["members_with_roles"][0]["role"], "user");
    let ada = info["team_memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "ada")
        .unwrap()
        .clone();
    assert_eq!(ada["litellm_budget_table"]["max_budget"], 9.0);
    assert_eq!(info["team_memberships"].as_array().unwrap().len(), 3);

    // Delete: gone from the team, its memberships and the user's teams.
    let left = ok(
        &gw,
        "POST",
        "/team/member_delete",
        Some(json!({"team_id": "t", "user_id": "ada"})),
    )
    .await;
    assert_eq!(left["members_with_roles"].as_array().unwrap().len(), 2);
    assert_eq!(
        ok(&gw, "GET", "/user/info?user_id=ada", None).await["user_info"]["teams"],
        json!([])
    );
    assert_eq!(
        ok(&gw, "GET", "/team/info?team_id=t", None).await["team_memberships"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    refused(
        &gw,
        "POST",
        "/team/member_delete",
        Some(json!({"team_id": "t", "user_id": "ada"})),
        404,
        "user_id",
    )
    .await;
    // Rejoining starts a fresh membership.
    ok(
        &gw,
        "POST",
        "/team/member_add",
        Some(json!({"team_id": "t", "member": {"user_id": "ada", "role": "user"}})),
    )
    .await;
    assert_eq!(ok(&gw, "GET", "/team/list?user_id=ada", None).await[0]["team_id"], "t");

    // Deleting a user takes them out of their teams.
    ok(&gw, "POST", "/user/delete", Some(json!({"user_ids": ["bo"]}))).await;
    let info = ok(&gw, "GET", "/team/info?team_id=t", None).await;
    let ids: Vec<&str> = info["team_info"]["members_with_roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"bo") && ids.len() == 2, "{ids:?}");
    assert_eq!(info["team_memberships"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn keys_may_name_only_teams_and_tiers_that_exist() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    refused(
        &gw,
        "POST",
        "/key/generate",
        Some(json!({"team_id": "ghost"})),
        400,
        "team_id",
    )
    .await;
    refused(
        &gw,
        "POST",
        "/key/generate",
        Some(json!({"budget_id": "ghost"})),
        400,
        "budget_id",
    )
    .await;
    // LiteLLM accepts a user id no /user/new made.
    ok(&gw, "POST", "/key/generate", Some(json!({"user_id": "someone"}))).await;

    ok(
        &gw,
        "POST",
        "/team/new",
        Some(json!({"team_id": "narrow", "models": ["cheap"]})),
    )
    .await;
    ok(&gw, "POST", "/budget/new", Some(json!({"budget_id": "tier"}))).await;
    let msg = refused(
        &gw,
        "POST",
        "/key/generate",
        Some(json!({"team_id": "narrow", "models": ["cheap", "dear"]})),
        400,
        "models",
    )
    .await;
    assert!(msg.contains("dear"), "{msg}");
    let key = ok(
        &gw,
        "POST",
        "/key/generate",
        Some(json!({"team_id": "narrow", "models": ["cheap"], "budget_id": "tier"})),
    )
    .await;
    ok(&gw, "POST", "/key/generate", Some(json!({"team_id": "narrow"}))).await;
    let raw = key["key"].as_str().unwrap().to_string();
    refused(
        &gw,
        "POST",
        "/key/update",
        Some(json!({"key": raw, "team_id": "ghost"})),
        400,
        "team_id",
    )
    .await;
    refused(
        &gw,
        "POST",
        "/key/update",
        Some(json!({"key": raw, "models": ["dear"]})),
        400,
        "models",
    )
    .await;
    refused(
        &gw,
        "POST",
        "/key/update",
        Some(json!({"key": raw, "budget_id": "ghost"})),
        400,
        "budget_id",
    )
    .await;
    assert_eq!(
        ok(&gw, "GET", &format!("/key/info?key={raw}"), None).await["info"]["models"],
        json!(["cheap"])
    );
    // The team's keys are listed with it, and go with it.
    assert_eq!(
        ok(&gw, "GET", "/team/info?team_id=narrow", None).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    ok(&gw, "POST", "/team/delete", Some(json!({"team_ids": ["narrow"]}))).await;
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!(s, 401, "LiteLLM deletes a team's keys with the team");
}

#[tokio::test]
async fn spend_shown_is_the_ledgers_and_a_deleted_entitys_is_gone() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    ok(
        &gw,
        "POST",
        "/user/new",
        Some(json!({"user_id": "ada", "auto_create_key": false, "budget_duration": "30d"})),
    )
    .await;
    ok(&gw, "POST", "/team/new", Some(json!({"team_id": "t"}))).await;
    // Spend as the request path charges it, through the ledger of the same database.
    let store = tollgate_store::SqliteKeys::open(&gw.dir.path().join("data")).unwrap();
    let charge = |scope: &str, id: &str, cost: f64| tollgate_store::Charge {
        scope: scope.into(),
        id: id.into(),
        cost,
        release: 0.0,
        window: None,
    };
    use tollgate_store::Ledger;
    store
        .settle(&[
            charge("user", "ada", 0.25),
            charge("user_model", "ada/cheap", 0.25),
            charge("team", "t", 1.5),
        ])
        .unwrap();
    let ada = ok(&gw, "GET", "/user/info?user_id=ada", None).await;
    assert_eq!(ada["user_info"]["spend"], 0.25);
    assert_eq!(ada["user_info"]["model_spend"], json!({"cheap": 0.25}));
    assert!(ada["user_info"]["budget_reset_at"].as_str().is_some(), "{ada}");
    assert_eq!(
        ok(&gw, "GET", "/team/info?team_id=t", None).await["team_info"]["spend"],
        1.5
    );
    // A user made again under a deleted one's id starts from nothing, as in LiteLLM.
    ok(&gw, "POST", "/user/delete", Some(json!({"user_ids": ["ada"]}))).await;
    ok(
        &gw,
        "POST",
        "/user/new",
        Some(json!({"user_id": "ada", "auto_create_key": false})),
    )
    .await;
    let ada = ok(&gw, "GET", "/user/info?user_id=ada", None).await;
    assert_eq!(
        (ada["user_info"]["spend"].as_f64(), &ada["user_info"]["model_spend"]),
        (Some(0.0), &json!({}))
    );
}
