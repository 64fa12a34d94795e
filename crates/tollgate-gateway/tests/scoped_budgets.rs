//! Budgets beyond the key's: its team, its user (personal keys), its team membership, the end
//! user the request names, the key's budget per model and the gateway's own — each held at
//! admission and settled with the real cost, over real HTTP. Entities are written to the store
//! directly here (their API has its own tests), as an admin's earlier calls would have.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_store::{EntityKind, EntityRow, EntityStore, Ledger, SqliteKeys};

mod common;
use common::{Gw, KEY, gateway, start_mock, two_priced_groups};

/// The two priced groups of the other gateway tests, with `extra` settings after them.
fn config(mock: SocketAddr, extra: &str) -> String {
    format!("{}{extra}", two_priced_groups(mock))
}

fn store(gw: &Gw) -> SqliteKeys {
    SqliteKeys::open(&gw.dir.path().join("data")).unwrap()
}

fn entity(kind: EntityKind, id: &str, doc: Value) -> EntityRow {
    EntityRow::new(kind, id, doc.as_object().unwrap().clone())
}

async fn new_key(gw: &Gw, body: Value) -> String {
    let r = gw
        .http
        .post(format!("{}/key/generate", gw.base))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["key"].as_str().unwrap_or_else(|| panic!("{v}")).to_string()
}

async fn chat(gw: &Gw, key: &str, body: Value) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn ask(model: &str, user: Option<&str>) -> Value {
    let mut b = json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hello there"}]});
    if let Some(u) = user {
        b["user"] = json!(u);
    }
    b
}

/// Sends `body` with `key` until a 429; the refusal. Panics when 60 requests all pass.
async fn until_refused(gw: &Gw, key: &str, body: &Value) -> Value {
    for _ in 0..60 {
        let (status, v) = chat(gw, key, body.clone()).await;
        match status {
            200 => {}
            429 => return v,
            other => panic!("unexpected {other}: {v}"),
        }
    }
    panic!("60 requests passed the budget")
}

#[tokio::test]
async fn a_team_budget_holds_across_its_keys_and_its_spend_is_the_records() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock, "")).await;
    store(&gw)
        .create_entity(&entity(
            EntityKind::Team,
            "t1",
            json!({"team_id": "t1", "team_alias": "core", "max_budget": 0.004}),
        ))
        .unwrap();
    // Two keys of the team, neither with a budget of its own: the team's holds for both.
    let a = new_key(&gw, json!({"team_id": "t1", "key_alias": "a"})).await;
    let b = new_key(&gw, json!({"team_id": "t1", "key_alias": "b"})).await;
    let mut refusal = None;
    for i in 0..60 {
        let key = if i % 2 == 0 { &a } else { &b };
        let (status, v) = chat(&gw, key, ask("dear", None)).await;
        if status == 429 {
            refusal = Some(v);
            break;
        }
        assert_eq!(status, 200, "{v}");
    }
    let v = refusal.expect("the team budget refuses");
    assert_eq!(v["error"]["type"], "budget_exceeded", "{v}");
    assert_eq!(
        (v["error"]["scope"].as_str(), v["error"]["entity_id"].as_str()),
        (Some("team"), Some("core"))
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("budget exceeded for team core") && msg.contains("/team/update"),
        "{msg}"
    );
    // A key outside the team is not affected.
    let other = new_key(&gw, json!({"key_alias": "other"})).await;
    assert_eq!(chat(&gw, &other, ask("dear", None)).await.0, 200);

    // Shut down (which writes the records and the spend still gathering), keeping the files.
    let Gw {
        gw: running, dir: tmp, ..
    } = gw;
    running.shutdown().await.unwrap();
    let dir = tmp.path().join("data");
    let records: Vec<tollgate_core::Record> = tollgate_store::read_sqlite(&dir).unwrap().map(|r| r.unwrap()).collect();
    let team_cost: f64 = records
        .iter()
        .filter(|r| r.team_id.as_deref() == Some("t1"))
        .filter_map(|r| r.cost_usd)
        .sum();
    let s = SqliteKeys::open(&dir).unwrap();
    let spent = s.spend_of("team", "t1").unwrap().unwrap();
    assert!((spent.spend - team_cost).abs() < 1e-9, "{} vs {team_cost}", spent.spend);
    assert!(
        spent.spend <= 0.004 + 1e-12 && spent.reserved.abs() < 1e-12,
        "{spent:?}"
    );
    assert_eq!(
        s.spend_under("team_model", "t1/").unwrap().len(),
        1,
        "per model: only `dear`"
    );
    assert!((s.spend_under("team_model", "t1/").unwrap()[0].1 - team_cost).abs() < 1e-9);
}

#[tokio::test]
async fn end_users_are_held_to_their_budget_or_the_default_and_can_be_blocked() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock, "litellm_settings:\n  max_end_user_budget: 0.003\n")).await;
    let s = store(&gw);
    s.create_entity(&entity(
        EntityKind::Customer,
        "vip",
        json!({"user_id": "vip", "max_budget": 1.0}),
    ))
    .unwrap();
    s.create_entity(&entity(
        EntityKind::Customer,
        "bad",
        json!({"user_id": "bad", "blocked": true}),
    ))
    .unwrap();
    let v = until_refused(&gw, KEY, &ask("dear", Some("anon"))).await;
    assert_eq!(
        (v["error"]["scope"].as_str(), v["error"]["entity_id"].as_str()),
        (Some("end_user"), Some("anon"))
    );
    assert_eq!(v["error"]["max_budget"], 0.003);
    // Another end user, with a budget of their own, goes on.
    assert_eq!(chat(&gw, KEY, ask("dear", Some("vip"))).await.0, 200);
    let (status, v) = chat(&gw, KEY, ask("cheap", Some("bad"))).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("end_user_blocked")),
        "{v}"
    );

    let records = gw.records().await;
    assert!(records.iter().any(|r| r.end_user.as_deref() == Some("vip")));
    assert!(records.iter().filter(|r| r.end_user.as_deref() == Some("anon")).count() >= 2);
}

#[tokio::test]
async fn the_gateway_budget_covers_all_traffic_and_resets_with_its_period() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(
        mock,
        "litellm_settings:\n  max_budget: 0.003\n  budget_duration: 30d\n",
    ))
    .await;
    let v = until_refused(&gw, KEY, &ask("dear", None)).await;
    assert_eq!(v["error"]["scope"], "proxy", "{v}");
    assert!(v["error"]["budget_reset_at"].is_string(), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("litellm_settings.max_budget")
    );
}

#[tokio::test]
async fn a_key_budget_per_model_refuses_that_model_only() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock, "")).await;
    let key = new_key(
        &gw,
        json!({"key_alias": "mm", "model_max_budget": {"dear": {"budget_limit": 0.003, "time_period": "1d"}}}),
    )
    .await;
    let v = until_refused(&gw, &key, &ask("dear", None)).await;
    assert_eq!(v["error"]["scope"], "key_model", "{v}");
    assert_eq!(v["error"]["entity_id"], "mm on model dear");
    assert_eq!(chat(&gw, &key, ask("cheap", None)).await.0, 200);
}

#[tokio::test]
async fn a_users_budget_tier_holds_their_personal_keys() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock, "")).await;
    let s = store(&gw);
    s.create_entity(&entity(
        EntityKind::Budget,
        "starter",
        json!({"budget_id": "starter", "max_budget": 0.003}),
    ))
    .unwrap();
    s.create_entity(&entity(
        EntityKind::User,
        "ada",
        json!({"user_id": "ada", "budget_id": "starter"}),
    ))
    .unwrap();
    let key = new_key(&gw, json!({"user_id": "ada"})).await;
    let v = until_refused(&gw, &key, &ask("dear", None)).await;
    assert_eq!(
        (v["error"]["scope"].as_str(), v["error"]["entity_id"].as_str()),
        (Some("user"), Some("ada"))
    );
}

#[tokio::test]
async fn a_team_limits_the_models_of_its_keys_and_a_blocked_team_stops_them() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock, "")).await;
    let s = store(&gw);
    s.create_entity(&entity(
        EntityKind::Team,
        "t2",
        json!({"team_id": "t2", "team_alias": "frugal", "models": ["cheap"]}),
    ))
    .unwrap();
    let key = new_key(&gw, json!({"team_id": "t2"})).await;
    assert_eq!(chat(&gw, &key, ask("cheap", None)).await.0, 200);
    let (status, v) = chat(&gw, &key, ask("dear", None)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("key_model_access_denied")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("team frugal"), "{v}");
    let models: Value = gw
        .http
        .get(format!("{}/v1/models", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["cheap"]);

    let mut team = s.get_entity(EntityKind::Team, "t2").unwrap().unwrap();
    team.doc.insert("blocked".into(), json!(true));
    s.update_entity(&team).unwrap();
    // Other instances see a change within the cache's second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, v) = chat(&gw, &key, ask("cheap", None)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("team_blocked")),
        "{v}"
    );
}

#[tokio::test]
async fn team_and_end_user_rate_limits_count_across_keys() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock, "")).await;
    let s = store(&gw);
    s.create_entity(&entity(
        EntityKind::Team,
        "t3",
        json!({"team_id": "t3", "team_alias": "paced", "rpm_limit": 3}),
    ))
    .unwrap();
    s.create_entity(&entity(
        EntityKind::Customer,
        "slow",
        json!({"user_id": "slow", "rpm_limit": 2}),
    ))
    .unwrap();
    // Three requests of the team over two keys, then the team's minute is used up.
    let a = new_key(&gw, json!({"team_id": "t3"})).await;
    let b = new_key(&gw, json!({"team_id": "t3"})).await;
    for key in [&a, &b, &a] {
        assert_eq!(chat(&gw, key, ask("cheap", None)).await.0, 200);
    }
    let (status, v) = chat(&gw, &b, ask("cheap", None)).await;
    assert_eq!((status, v["error"]["code"].as_str()), (429, Some("rpm_limit")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("team paced"), "{v}");
    // The end user's limit holds whichever key sends their requests (the master key here).
    let other = new_key(&gw, json!({})).await;
    for key in [KEY, other.as_str()] {
        assert_eq!(chat(&gw, key, ask("cheap", Some("slow"))).await.0, 200);
    }
    let (status, v) = chat(&gw, KEY, ask("cheap", Some("slow"))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (429, Some("rpm_limit")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("end user slow"), "{v}");
}

/// `litellm_settings.timezone`: a daily budget resets at midnight there, not in UTC.
#[tokio::test]
async fn budget_periods_start_at_midnight_in_the_configured_timezone() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock, "litellm_settings:\n  timezone: Asia/Tokyo\n")).await;
    let key = new_key(
        &gw,
        json!({"key_alias": "daily", "max_budget": 1.0, "budget_duration": "1d"}),
    )
    .await;
    let info: Value = gw
        .http
        .get(format!("{}/key/info?key={key}", gw.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reset = chrono::DateTime::parse_from_rfc3339(info["info"]["budget_reset_at"].as_str().unwrap()).unwrap();
    // Tokyo is UTC+9 all year: its midnight is 15:00 UTC, within the next 24 hours.
    let utc = reset.with_timezone(&chrono::Utc);
    assert_eq!(utc.format("%H:%M:%S").to_string(), "15:00:00", "{info}");
    let ahead = utc - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::zero() && ahead <= chrono::Duration::hours(24),
        "{info}"
    );
}

/// With Postgres, a hold is a store transaction that finishes even when its request is gone
/// (the client left while it ran): the hold must not stay reserved with nobody to settle it.
#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn a_hold_whose_request_left_meanwhile_is_given_back() {
    use std::future::Future;
    use std::sync::Arc;
    use tollgate_store::{Hold, KeyRow, KeyStore, PostgresKeys, PostgresTarget};

    let db = tollgate_store::test_db::TestDatabase::create("hold_leak").expect("a Postgres test database");
    let target = PostgresTarget::parse(&db.url, 2).unwrap();
    let store = Arc::new(PostgresKeys::open(&target).unwrap());
    let token = format!("{:064x}", 42);
    store
        .create(&KeyRow {
            token: token.clone(),
            key_name: "sk-...0042".into(),
            max_budget: Some(1.0),
            ..KeyRow::default()
        })
        .unwrap();
    let keys = Arc::new(tollgate_gateway::keys::Keys::new(store.clone(), "test".into()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let hold = vec![Hold {
            scope: "key".into(),
            id: token.clone(),
            amount: 0.5,
            max_budget: 1.0,
            window: None,
        }];
        // Polled once (the store transaction starts), then dropped: the client left.
        let mut pending = Box::pin(keys.hold(hold));
        let first = pending
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        assert!(first.is_pending(), "a store round trip cannot be done within one poll");
        drop(pending);
    });
    let reserved = || {
        let mut c = target.connect().unwrap();
        c.query_one("SELECT reserved FROM tollgate_keys WHERE token = $1", &[&token])
            .unwrap()
            .get::<_, f64>(0)
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        keys.flush();
        if reserved() == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the hold stayed reserved: {}",
            reserved()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(rt);
}
