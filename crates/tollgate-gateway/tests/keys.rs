//! Virtual keys over real HTTP: LiteLLM's `/key/*` API round trip, and what a key may do on the
//! request path (models, blocked, expired, spend), with records naming the key by hash prefix.

use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::{Gw, KEY, call, eventually, gateway, start_mock, two_priced_groups};

/// A key made with the master key; its raw value.
async fn new_key(gw: &Gw, body: Value) -> String {
    let (s, created) = call(gw, "POST", "/key/generate", KEY, Some(body)).await;
    assert_eq!(s, 200, "{created}");
    created["key"].as_str().unwrap().to_string()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn a_key_round_trips_through_litellms_api_and_is_enforced() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;

    // Generate: the raw key once, its hash as the id, the fields as given. A key's team must
    // exist (its user need not, as in LiteLLM).
    let (s, _) = call(&gw, "POST", "/team/new", KEY, Some(json!({"team_id": "core"}))).await;
    assert_eq!(s, 200);
    let body = json!({"key_alias": "ci", "models": ["cheap"], "max_budget": 5, "user_id": "ada", "team_id": "core", "duration": "30d", "metadata": {"job": "nightly"}});
    let (s, created) = call(&gw, "POST", "/key/generate", KEY, Some(body)).await;
    assert_eq!(s, 200, "{created}");
    let raw = created["key"].as_str().unwrap().to_string();
    assert!(raw.starts_with("sk-") && raw.len() == 25, "{raw}");
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!(token, tollgate_gateway::keys::hash_key(&raw));
    assert_eq!(created["key_name"], format!("sk-...{}", &raw[raw.len() - 4..]));
    assert_eq!(created["models"], json!(["cheap"]));
    assert!(created["expires"].as_str().is_some());

    // The alias is unique.
    let (s, dup) = call(&gw, "POST", "/key/generate", KEY, Some(json!({"key_alias": "ci"}))).await;
    assert_eq!(s, 400, "{dup}");
    assert_eq!(dup["error"]["type"], "bad_request_error");
    assert_eq!(dup["error"]["code"], "400");
    // Bad input says what to send.
    for (body, field) in [
        (json!({"max_budget": -1}), "max_budget"),
        (json!({"duration": "soon"}), "duration"),
        (json!({"models": "cheap"}), "models"),
        (json!({"rpm_limit": "ten"}), "rpm_limit"),
    ] {
        let (s, e) = call(&gw, "POST", "/key/generate", KEY, Some(body)).await;
        assert_eq!(s, 400, "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(field), "{e}");
    }

    // The key may call its model and sees only it.
    let (s, answer) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!(s, 200, "{answer}");
    let (_, models) = call(&gw, "GET", "/v1/models", &raw, None).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cheap"]);
    let (_, info) = call(&gw, "GET", "/v1/model/info", &raw, None).await;
    assert!(
        info["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["model_name"] == "cheap")
    );
    // … and nothing else.
    let (s, denied) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("dear"))).await;
    assert_eq!(s, 401, "{denied}");
    assert_eq!(denied["error"]["code"], "key_model_access_denied");
    // A virtual key cannot manage keys.
    let (s, _) = call(&gw, "POST", "/key/generate", &raw, Some(json!({}))).await;
    assert_eq!(s, 403);

    // Pass-the-hash: the stored hash is an identifier, never a credential.
    let (s, e) = call(&gw, "POST", "/v1/chat/completions", &token, Some(chat("cheap"))).await;
    assert_eq!(s, 401, "{e}");

    // Spend: /key/info equals the sum of the key's records' cost (1e-9), gathering included.
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!(s, 200);
    let (s, own) = call(&gw, "GET", "/key/info", &raw, None).await;
    assert_eq!(s, 200, "{own}");
    assert_eq!(own["info"]["key_alias"], "ci");
    assert!(own["info"]["spend"].as_f64().unwrap() > 0.0);

    // Update changes only what is given; block and unblock; list.
    let (s, updated) = call(
        &gw,
        "POST",
        "/key/update",
        KEY,
        Some(json!({"key": raw, "models": ["cheap", "dear"]})),
    )
    .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["models"], json!(["cheap", "dear"]));
    assert_eq!(updated["max_budget"], 5.0);
    assert_eq!(updated["metadata"]["job"], "nightly");
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("dear"))).await;
    assert_eq!(s, 200, "the update applies at once on this instance");
    let (s, _) = call(&gw, "POST", "/key/block", KEY, Some(json!({"key": token}))).await;
    assert_eq!(s, 200);
    let (s, e) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("key_blocked")));
    let (s, _) = call(&gw, "POST", "/key/unblock", KEY, Some(json!({"key": raw}))).await;
    assert_eq!(s, 200);
    let (s, listed) = call(&gw, "GET", "/key/list?return_full_object=true&user_id=ada", KEY, None).await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(listed["total_count"], 1);
    assert_eq!(listed["keys"][0]["token"], token);
    // Everything this key spent so far, as /key/info says (compared with its records below).
    let spend = listed["keys"][0]["spend"].as_f64().unwrap();

    // Regenerate: a new raw key for the same row; the old one stops working.
    let (s, renewed) = call(&gw, "POST", "/key/regenerate", KEY, Some(json!({"key": raw}))).await;
    assert_eq!(s, 200, "{renewed}");
    let new_raw = renewed["key"].as_str().unwrap().to_string();
    assert_ne!(new_raw, raw);
    assert_eq!(renewed["key_alias"], "ci");
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!(s, 401);
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &new_raw, Some(chat("cheap"))).await;
    assert_eq!(s, 200);

    // Delete by alias.
    let (s, deleted) = call(&gw, "POST", "/key/delete", KEY, Some(json!({"key_aliases": ["ci"]}))).await;
    assert_eq!(s, 200, "{deleted}");
    assert_eq!(deleted["deleted_keys"], json!(["ci"]));
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &new_raw, Some(chat("cheap"))).await;
    assert_eq!(s, 401);

    // Records name the key by alias and hash prefix, with its user and team, never the raw key.
    let new_token = tollgate_gateway::keys::hash_key(&new_raw);
    let (records, jsonl) = gw.records_and_jsonl().await;
    let by_key: Vec<_> = records
        .iter()
        .filter(|r| r.key_alias.as_deref() == Some("ci"))
        .collect();
    assert_eq!(by_key.len(), 5, "cheap, denied dear, cheap, dear, cheap (renewed)");
    for r in &by_key {
        assert_eq!(r.user_id.as_deref(), Some("ada"));
        assert_eq!(r.team_id.as_deref(), Some("core"));
        let prefix = r.key_hash.as_deref().unwrap();
        assert!(token.starts_with(prefix) || new_token.starts_with(prefix));
        assert_eq!(prefix.len(), 16);
    }
    assert!(
        !jsonl.contains(&raw) && !jsonl.contains(&new_raw),
        "raw keys never reach records"
    );
    let recorded: f64 = by_key
        .iter()
        .filter(|r| r.key_hash.as_deref().is_some_and(|p| token.starts_with(p)))
        .filter_map(|r| r.cost_usd)
        .sum();
    assert!(
        (recorded - spend).abs() < 1e-9,
        "records {recorded} vs /key/info {spend}"
    );
}

#[tokio::test]
async fn an_expired_key_is_refused_and_says_when_it_expired() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let raw = new_key(&gw, json!({"duration": "1s"})).await;
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("dear"))).await;
    assert_eq!(s, 200, "no models listed: every model");
    eventually("the key to expire", Duration::from_secs(10), || {
        let gw = &gw;
        let raw = raw.clone();
        async move {
            let (s, e) = call(gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
            s == 401 && e["error"]["code"] == "expired_key"
        }
    })
    .await;
}

/// A budget of $X and a burst of concurrent requests: admission holds each one's estimate, so the
/// key's spend never passes the budget, and the next request gets 429 `budget_exceeded`.
#[tokio::test]
async fn a_budget_holds_under_a_concurrent_burst() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    // Each request costs at most about (prompt/2 × $0.00001 + 50 × $0.00002) ≈ $0.0012 estimated;
    // a budget of $0.006 admits a handful of the 50.
    let raw = new_key(&gw, json!({"max_budget": 0.006, "key_alias": "tight"})).await;
    let body = json!({"model": "dear", "max_tokens": 50, "messages": [{"role": "user", "content": "hello there"}]});
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (http, url, raw, body) = (
                gw.http.clone(),
                format!("{}/v1/chat/completions", gw.base),
                raw.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                let r = http.post(url).bearer_auth(raw).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                let retry = r.headers().get("retry-after").is_some();
                (status, retry, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, _, v) = t.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                refused += 1;
                assert_eq!(v["error"]["type"], "budget_exceeded", "{v}");
                assert_eq!(v["error"]["scope"], "key");
                assert_eq!(v["error"]["entity_id"], "tight");
                assert_eq!(v["error"]["max_budget"], 0.006);
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "{ok} admitted, {refused} refused");
    // Settled: what the key spent is what its records cost, and never past the budget.
    let (_, info) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    let spend = info["info"]["spend"].as_f64().unwrap();
    assert!(spend <= 0.006 + 1e-12, "spent {spend} of 0.006");
    let records = gw.records().await;
    let recorded: f64 = records
        .iter()
        .filter(|r| r.key_alias.as_deref() == Some("tight"))
        .filter_map(|r| r.cost_usd)
        .sum();
    assert!(
        (recorded - spend).abs() < 1e-9,
        "records {recorded} vs /key/info {spend}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.key_alias.as_deref() == Some("tight"))
            .count(),
        50,
        "refusals are recorded too"
    );
}

/// `budget_duration`: the budget resets when its period ends, from the clock, with no job.
#[tokio::test]
async fn a_budget_with_a_duration_resets_on_time_and_says_when() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let raw = new_key(&gw, json!({"max_budget": 0.0015, "budget_duration": "2s"})).await;
    let body = json!({"model": "dear", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    // Spend until refused, within one period.
    let mut refusal = None;
    for _ in 0..10 {
        let r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(&raw)
            .json(&body)
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 429 {
            let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            refusal = Some((retry, r.json::<Value>().await.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (retry, v) = refusal.expect("the budget is reached within a period");
    assert!(retry <= 2, "Retry-After is the time to the reset: {retry}");
    assert!(v["error"]["budget_reset_at"].as_str().is_some(), "{v}");
    // `/key/info` says when the period resets, and once it has, shows the new period's spend
    // (nothing yet) with no request needed to reset it.
    let (_, info) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    let reset = info["info"]["budget_reset_at"]
        .as_str()
        .expect("budget_reset_at")
        .to_string();
    if v["error"]["budget_reset_at"].as_str() == Some(reset.as_str()) {
        // Still the refused period (the 2 s period may just have turned over otherwise).
        assert!(info["info"]["spend"].as_f64().unwrap() > 0.0, "{info}");
    }
    let reset = chrono::DateTime::parse_from_rfc3339(&reset).unwrap();
    let wait = (reset.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .num_milliseconds()
        .max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait + 300)).await;
    let (_, info) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    assert_eq!(info["info"]["spend"].as_f64(), Some(0.0), "{info}");
    eventually("the next period to admit again", Duration::from_secs(10), || {
        let (gw, raw, body) = (&gw, raw.clone(), body.clone());
        async move {
            let r = gw
                .http
                .post(format!("{}/v1/chat/completions", gw.base))
                .bearer_auth(raw)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16() == 200
        }
    })
    .await;
}

#[tokio::test]
async fn rpm_and_parallel_limits_refuse_with_the_limit_named_and_slots_come_back() {
    let mock = common::start_mock_with(
        &[],
        tollgate_mock::MockConfig {
            // Streams take seconds, so one is surely still running when the next request comes.
            chunk_delay_ms: 200,
            ..Default::default()
        },
    )
    .await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let raw = new_key(&gw, json!({"rpm_limit": 3, "key_alias": "rpm"})).await;
    for _ in 0..3 {
        let (s, v) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
        assert_eq!(s, 200, "{v}");
    }
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&raw)
        .json(&chat("cheap"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rpm_limit");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("rpm_limit of 3"),
        "{v}"
    );

    // One parallel request: a second one while the first streams is refused; when the first
    // client leaves mid-stream, its slot comes back.
    let one = new_key(&gw, json!({"max_parallel_requests": 1})).await;
    let stream_body =
        json!({"model": "cheap", "stream": true, "messages": [{"role": "user", "content": "a long answer please"}]});
    let first = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&one)
        .json(&stream_body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let (s, v) = call(&gw, "POST", "/v1/chat/completions", &one, Some(chat("cheap"))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("max_parallel_requests")),
        "{v}"
    );
    drop(first); // the client goes away mid-stream
    eventually("the slot to come back", Duration::from_secs(10), || {
        let (gw, one) = (&gw, one.clone());
        async move {
            call(gw, "POST", "/v1/chat/completions", &one, Some(chat("cheap")))
                .await
                .0
                == 200
        }
    })
    .await;
}

#[tokio::test]
async fn answers_to_a_key_carry_its_spend_budget_and_limits() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let raw = new_key(&gw, json!({"max_budget": 3, "rpm_limit": 5, "tpm_limit": 100000})).await;
    let send = || {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(&raw)
            .json(&chat("cheap"))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let h = first.headers();
    let header = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(header("x-litellm-key-max-budget").as_deref(), Some("3"));
    assert_eq!(header("x-litellm-key-rpm-limit").as_deref(), Some("5"));
    assert_eq!(header("x-litellm-key-tpm-limit").as_deref(), Some("100000"));
    assert_eq!(header("x-ratelimit-limit-requests").as_deref(), Some("5"));
    assert_eq!(header("x-ratelimit-remaining-requests").as_deref(), Some("4"));
    let spend: f64 = header("x-litellm-key-spend").unwrap().parse().unwrap();
    assert!(spend > 0.0, "this request's cost is included: {spend}");
    let second = send().await.unwrap();
    assert_eq!(second.headers()["x-ratelimit-remaining-requests"], "3");
    // The master key's answers carry none of them.
    let r = gw.chat(chat("cheap")).await;
    assert!(r.headers().get("x-litellm-key-spend").is_none());
}

#[tokio::test]
async fn litellms_spend_endpoints_add_up_the_records() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let mut keys = Vec::new();
    for (alias, team) in [("a", "red"), ("b", "blue")] {
        let (s, _) = call(&gw, "POST", "/team/new", KEY, Some(json!({"team_id": team}))).await;
        assert_eq!(s, 200);
        let (_, k) = call(
            &gw,
            "POST",
            "/key/generate",
            KEY,
            Some(json!({"key_alias": alias, "team_id": team, "user_id": alias})),
        )
        .await;
        keys.push(k["key"].as_str().unwrap().to_string());
    }
    for (i, model) in ["cheap", "dear", "dear"].iter().enumerate() {
        let (s, _) = call(&gw, "POST", "/v1/chat/completions", &keys[i % 2], Some(chat(model))).await;
        assert_eq!(s, 200);
    }
    // Records are written off the request path: wait until the three are readable.
    eventually("the records", Duration::from_secs(10), || {
        let gw = &gw;
        async move {
            call(gw, "GET", "/spend/logs", KEY, None)
                .await
                .1
                .as_array()
                .is_some_and(|a| a.len() == 3)
        }
    })
    .await;
    let (_, logs) = call(&gw, "GET", &format!("/spend/logs?api_key={}", keys[0]), KEY, None).await;
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 2, "a's two requests");
    assert!(
        logs.iter()
            .all(|l| l["key_alias"] == "a" && l["team_id"] == "red" && l["user"] == "a")
    );
    let (_, total) = call(&gw, "GET", "/global/spend", KEY, None).await;
    let (_, by_model) = call(&gw, "GET", "/global/spend/models", KEY, None).await;
    let (_, by_key) = call(&gw, "GET", "/global/spend/keys", KEY, None).await;
    let (_, by_team) = call(&gw, "GET", "/global/spend/teams", KEY, None).await;
    let sum = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["total_spend"].as_f64().unwrap())
            .sum::<f64>()
    };
    let total = total["spend"].as_f64().unwrap();
    assert!(total > 0.0);
    assert!((sum(&by_model) - total).abs() < 1e-12);
    assert!((sum(&by_key) - total).abs() < 1e-12);
    assert!((sum(&by_team["teams"]) - total).abs() < 1e-12);
    assert_eq!(by_model[0]["model"], "dear", "largest first");
    let (_, daily) = call(&gw, "GET", "/spend/logs?summarize=true", KEY, None).await;
    assert!((daily[0]["spend"].as_f64().unwrap() - total).abs() < 1e-12);
    // Dates are checked; a virtual key may not read everyone's spend.
    let (s, e) = call(&gw, "GET", "/spend/logs?start_date=yesterday", KEY, None).await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = call(&gw, "GET", "/global/spend", &keys[0], None).await;
    assert_eq!(s, 403);
}

/// A workflow run cannot be estimated up front; a key that spent its budget is still refused,
/// and each step's cost goes to the key.
#[tokio::test]
async fn a_workflow_counts_against_the_key_budget() {
    let mock = start_mock(&[]).await;
    let yaml = format!(
        "{}workflows:\n  duo:\n    steps:\n      - role: planner\n        model: cheap\n      - role: coder\n        model: dear\n",
        two_priced_groups(mock)
    );
    let gw = gateway(&yaml).await;
    let raw = new_key(&gw, json!({"max_budget": 0.001, "models": ["duo"]})).await;
    let (s, v) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("duo"))).await;
    assert_eq!(s, 200, "{v}");
    // Settled on the key: the steps' costs (gathered for up to a flush interval).
    eventually("the run's cost on the key", Duration::from_secs(5), || {
        let (gw, raw) = (&gw, raw.clone());
        async move {
            let (_, info) = call(gw, "GET", "/key/info", &raw, None).await;
            info["info"]["spend"].as_f64().unwrap_or(0.0) > 0.001
        }
    })
    .await;
    eventually("the store to have the spend", Duration::from_secs(5), || {
        let (gw, raw) = (&gw, raw.clone());
        async move {
            let (s, v) = call(gw, "POST", "/v1/chat/completions", &raw, Some(chat("duo"))).await;
            s == 429 && v["error"]["type"] == "budget_exceeded"
        }
    })
    .await;
}

/// `tollgate_settings.budget_error_status: 400` for clients written against older LiteLLM, and
/// `hide_budget_amounts` for keys handed to people who should not see the figures.
#[tokio::test]
async fn budget_refusals_follow_the_settings() {
    let mock = start_mock(&[]).await;
    let yaml = format!(
        "{}tollgate_settings:\n  budget_error_status: 400\n  hide_budget_amounts: true\n",
        two_priced_groups(mock)
    );
    let gw = gateway(&yaml).await;
    let raw = new_key(&gw, json!({"max_budget": 0, "key_alias": "spent"})).await;
    let (s, v) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["type"], "budget_exceeded");
    assert_eq!(v["error"]["entity_id"], "spent");
    assert!(
        v["error"].get("spend").is_none() && v["error"].get("max_budget").is_none(),
        "{v}"
    );
    assert!(!v["error"]["message"].as_str().unwrap().contains('$'), "{v}");
}

/// `/key/regenerate` with `grace_period`: the old key keeps working until the period ends, so
/// clients can move over without an outage; without one it stops at once.
#[tokio::test]
async fn a_regenerated_key_keeps_its_old_value_for_the_grace_period_only() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let old = new_key(&gw, json!({"key_alias": "rotating"})).await;
    let (s, v) = call(
        &gw,
        "POST",
        "/key/regenerate",
        KEY,
        Some(json!({"key": old, "grace_period": "1h"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let new = v["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        call(&gw, "POST", "/v1/chat/completions", &new, Some(chat("cheap")))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&gw, "POST", "/v1/chat/completions", &old, Some(chat("cheap")))
            .await
            .0,
        200,
        "inside the grace period"
    );

    // Regenerated again without a grace period: the previous value stops at once, and the one
    // before it (whose grace belonged to the replaced row) too.
    let (s, v) = call(&gw, "POST", "/key/regenerate", KEY, Some(json!({"key": new}))).await;
    assert_eq!(s, 200, "{v}");
    let newest = v["key"].as_str().unwrap().to_string();
    assert_eq!(
        call(&gw, "POST", "/v1/chat/completions", &newest, Some(chat("cheap")))
            .await
            .0,
        200
    );
    for gone in [&new, &old] {
        let (s, v) = call(&gw, "POST", "/v1/chat/completions", gone, Some(chat("cheap"))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (401, Some("invalid_api_key")), "{v}");
    }
    let (s, v) = call(
        &gw,
        "POST",
        "/key/regenerate",
        KEY,
        Some(json!({"key": newest, "grace_period": "a while"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("grace_period"), "{v}");
}

/// `soft_budget`: the key keeps working past it, and the crossing is counted once per period.
#[tokio::test]
async fn a_soft_budget_is_reported_once_and_does_not_refuse() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let raw = new_key(&gw, json!({"key_alias": "soft", "soft_budget": 0.000001})).await;
    let crossed = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("tollgate_soft_budget_crossed_total "))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(crossed(&gw.get_text("/metrics", true).await).as_deref(), Some("0"));
    for _ in 0..4 {
        assert_eq!(
            call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("dear")))
                .await
                .0,
            200
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(crossed(&gw.get_text("/metrics", true).await).as_deref(), Some("1"));
}

#[tokio::test]
async fn regenerating_right_after_a_request_keeps_its_spend() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let raw = new_key(&gw, json!({"key_alias": "rotated"})).await;
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat("cheap"))).await;
    assert_eq!(s, 200);
    // At once, while the request's spend is still gathering in memory under the old token.
    let (_, before) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    let spent = before["info"]["spend"].as_f64().unwrap();
    assert!(spent > 0.0, "{before}");
    let (s, regen) = call(&gw, "POST", "/key/regenerate", KEY, Some(json!({"key": raw}))).await;
    assert_eq!(s, 200, "{regen}");
    assert!((regen["spend"].as_f64().unwrap() - spent).abs() < 1e-12, "{regen}");
    // … and after the gathered spend has been written.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let new_raw = regen["key"].as_str().unwrap();
    let (_, after) = call(&gw, "GET", &format!("/key/info?key={new_raw}"), KEY, None).await;
    assert!(
        (after["info"]["spend"].as_f64().unwrap() - spent).abs() < 1e-12,
        "{after}"
    );
}
