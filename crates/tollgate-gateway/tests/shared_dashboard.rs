//! The dashboard's log pages over a shared store: two gateways ship to one Postgres, and each
//! one's Logs page lists every instance's records (filtered, a virtual key's own only), says
//! which store it reads, and reconnects after Postgres went away. Without a shared store the
//! pages read the instance's SQLite and say that.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_gateway::ServeOptions;
use tollgate_store::test_db::TestDatabase;

mod common;
use common::ui::{get as page, listed, sign_in};
use common::{Gw, KEY, call, eventually, gateway, gateway_opts, start_mock, two_priced_groups};

/// Instance `name` of a gateway shipping to `url`.
fn shared(url: &str, name: &str) -> impl FnOnce(&mut ServeOptions) {
    let (url, name) = (url.to_string(), name.to_string());
    move |o| {
        o.database = Some(tollgate_core::database::DatabaseChoice {
            url,
            pool_size: 4,
            source: tollgate_core::database::FROM_FLAG,
        });
        o.instance_id = Some(name);
    }
}

/// A chat request with `key` (and a session id, if given); the request id the gateway answers with.
async fn chat(gw: &Gw, key: &str, model: &str, session: Option<&str>) -> String {
    let mut req = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}));
    if let Some(s) = session {
        req = req.header("x-session-id", s);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-tollgate-request-id"].to_str().unwrap().to_string()
}

async fn ok(gw: &Gw, path: &str, body: Value) -> Value {
    let (status, answer) = call(gw, "POST", path, KEY, Some(body)).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn every_instances_records_are_on_each_instances_logs_page() {
    // The test database's client is blocking: it is made and dropped outside the runtime.
    let db = TestDatabase::create("shared_logs").expect("a Postgres test database");
    let url = db.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mock = start_mock(&[]).await;
        let yaml = two_priced_groups(mock);
        let a = gateway_opts(&yaml, shared(&url, "a")).await;
        let b = gateway_opts(&yaml, shared(&url, "b")).await;

        // A virtual key of user ada in team core, made on A (keys live in the shared store).
        ok(&a, "/team/new", json!({"team_id": "core"})).await;
        let key = ok(
            &a,
            "/key/generate",
            json!({"key_alias": "web", "user_id": "ada", "team_id": "core"}),
        )
        .await["key"]
            .as_str()
            .unwrap()
            .to_string();

        // Traffic through A (the key's, and the master key's in a session), and through B.
        let by_key = chat(&a, &key, "cheap", None).await;
        let in_session = chat(&a, KEY, "dear", Some("s-42")).await;
        let on_b = chat(&b, KEY, "cheap", None).await;

        // B's Logs page: A's records too, once shipped, from the store it names.
        let admin = sign_in(&b, KEY).await.cookie;
        eventually("A's records reach B's Logs page", Duration::from_secs(10), || async {
            listed(&page(&b, &admin, "/ui/logs").await.1).len() == 3
        })
        .await;
        let (status, html) = page(&b, &admin, "/ui/logs").await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("shared store (Postgres)"), "{html}");
        let mut all = listed(&html);
        all.sort();
        let mut sent = vec![by_key.clone(), in_session.clone(), on_b.clone()];
        sent.sort();
        assert_eq!(all, sent);
        // Not from B's own SQLite, which holds B's record only.
        let b_local: Vec<String> = tollgate_store::read_sqlite(&b.dir.path().join("data"))
            .unwrap()
            .map(|r| r.unwrap().request_id)
            .collect();
        assert_eq!(b_local, vec![on_b.clone()]);

        // Each filter, on B, over the shared rows.
        let part_of_id = format!("q={}", &in_session[..in_session.len() - 2]);
        let whole_id = format!("q={by_key}");
        for (query, expected) in [
            ("model=dear", vec![in_session.clone()]),
            ("key=web", vec![by_key.clone()]),
            ("user=ada", vec![by_key.clone()]),
            ("team=core", vec![by_key.clone()]),
            ("session=s-42", vec![in_session.clone()]),
            ("status=failure", vec![]),
            ("cache=hit", vec![]),
            (part_of_id.as_str(), vec![in_session.clone()]),
            (whole_id.as_str(), vec![by_key.clone()]),
        ] {
            let (status, html) = page(&b, &admin, &format!("/ui/logs?{query}")).await;
            assert_eq!(status, 200, "{query}: {html}");
            assert_eq!(listed(&html), expected, "{query}");
        }
        let (_, html) = page(&b, &admin, "/ui/logs?status=success&cache=off").await;
        assert_eq!(listed(&html).len(), 3);

        // A's request has its page on B.
        let (status, html) = page(&b, &admin, &format!("/ui/logs/{in_session}")).await;
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains("shared store (Postgres)") && html.contains("dear"),
            "{html}"
        );

        // The key, signed in on B, sees its own record only, whatever it asks for.
        let own = sign_in(&b, &key).await.cookie;
        let (_, html) = page(&b, &own, "/ui/logs").await;
        assert_eq!(listed(&html), vec![by_key.clone()]);
        let (_, html) = page(&b, &own, "/ui/logs?key=master_key").await;
        assert_eq!(listed(&html), vec![by_key.clone()]);
        let (status, _) = page(&b, &own, &format!("/ui/logs/{in_session}")).await;
        assert_eq!(status, 404);
        let (status, _) = page(&b, &own, &format!("/ui/logs/{by_key}")).await;
        assert_eq!(status, 200);

        // Postgres goes away: the page says so (no panic, no stale rows); back, it reads again.
        // (The test database's client is blocking: used on a thread of its own.)
        std::thread::scope(|s| s.spawn(|| db.block()).join()).unwrap().unwrap();
        let (status, html) = page(&b, &admin, "/ui/logs").await;
        assert_eq!(status, 503, "{html}");
        assert!(html.contains("postgres") && !html.contains("data-request-id"), "{html}");
        std::thread::scope(|s| s.spawn(|| db.unblock()).join())
            .unwrap()
            .unwrap();
        let (status, html) = page(&b, &admin, "/ui/logs").await;
        assert_eq!(status, 200, "{html}");
        assert_eq!(listed(&html).len(), 3);

        a.gw.shutdown().await.unwrap();
        b.gw.shutdown().await.unwrap();
    });
    drop(rt);
}

#[tokio::test]
async fn without_a_shared_store_the_logs_come_from_this_instances_sqlite() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let id = chat(&gw, KEY, "cheap", None).await;
    let admin = sign_in(&gw, KEY).await.cookie;
    eventually("the record is written", Duration::from_secs(5), || async {
        listed(&page(&gw, &admin, "/ui/logs").await.1) == [id.clone()]
    })
    .await;
    let (_, html) = page(&gw, &admin, "/ui/logs").await;
    assert!(html.contains("this instance (SQLite)"), "{html}");
    let (_, html) = page(&gw, &admin, &format!("/ui/logs/{id}")).await;
    assert!(html.contains("this instance (SQLite)"), "{html}");
}
