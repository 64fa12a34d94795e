//! The dashboard over real HTTP: sign-in and its cookies, sessions, CSRF on every change, the
//! sign-in limiter, a virtual key's own view, and the pages' figures from the records.

use std::time::Duration;

use serde_json::json;

mod common;
use common::ui::{client, csrf_of, get, post, set_cookie, sign_in};
use common::{KEY, call, eventually, gateway, gateway_opts, start_mock, two_priced_groups};

/// A `data-figure="name" data-value="…"` on a page (the first one).
fn figure(html: &str, name: &str) -> String {
    let marker = format!(r#"data-figure="{name}" data-value=""#);
    let at = html.find(&marker).unwrap_or_else(|| panic!("no figure {name}")) + marker.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn sign_in_sessions_and_cookies() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let http = client();

    // `/` and `/ui` lead to the pages; a page without a session leads to the sign-in form.
    let root = http.get(format!("{}/", gw.base)).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/ui");
    let page = http.get(format!("{}/ui/overview", gw.base)).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/ui/signin");

    // The form: its token bound to a strict, HttpOnly cookie; the page locked down by CSP.
    let form = http.get(format!("{}/ui/signin", gw.base)).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let csp = form.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let (bound, whole) = set_cookie(&form, "tollgate_signin").unwrap();
    assert!(
        whole.contains("HttpOnly") && whole.contains("SameSite=Strict"),
        "{whole}"
    );
    let token = csrf_of(&form.text().await.unwrap());

    // Without the form's token (or with another one), nothing is checked: refused.
    for (cookie, csrf) in [(bound.as_str(), ""), (bound.as_str(), "forged"), ("", token.as_str())] {
        let resp = http
            .post(format!("{}/ui/signin", gw.base))
            .header("cookie", cookie)
            .form(&[("key", KEY), ("csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "cookie {cookie:?} csrf {csrf:?}");
    }

    // The master key: a session cookie, HttpOnly and strict, Secure behind a TLS proxy.
    let resp = http
        .post(format!("{}/ui/signin", gw.base))
        .header("cookie", &bound)
        .header("x-forwarded-proto", "https")
        .form(&[("key", KEY), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (session, whole) = set_cookie(&resp, "tollgate_session").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui"] {
        assert!(whole.contains(part), "{whole} lacks {part}");
    }
    // The cookie is a random id, not the key.
    assert!(!whole.contains(KEY));
    let plain = sign_in(&gw, KEY).await;
    assert!(!plain.cookie.contains("Secure"));

    // A session reads the pages; a forged one does not.
    let (s, html) = get(&gw, &session, "/ui/overview").await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains(r#"data-figure="requests""#));
    let (s, _) = get(&gw, "tollgate_session=00ff", "/ui/overview").await;
    assert_eq!(s, 303);

    // Sign-out needs the CSRF token too, then the session is gone.
    let (s, _) = post(&gw, &plain.cookie, "/ui/signout", &[]).await;
    assert_eq!(s, 403);
    let (s, _) = post(&gw, &plain.cookie, "/ui/signout", &[("csrf", &plain.csrf)]).await;
    assert_eq!(s, 303);
    let (s, _) = get(&gw, &plain.cookie, "/ui/overview").await;
    assert_eq!(s, 303, "signed out");
}

#[tokio::test]
async fn changes_need_the_csrf_token_and_a_key_sees_only_its_own() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let admin = sign_in(&gw, KEY).await;

    // Creating a key: refused without the token, done with it (the raw key shown once).
    let (s, body) = post(&gw, &admin.cookie, "/ui/keys", &[("alias", "web")]).await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = post(&gw, &admin.cookie, "/ui/keys", &[("alias", "web"), ("csrf", "nope")]).await;
    assert_eq!(s, 403, "{body}");
    let (s, html) = post(
        &gw,
        &admin.cookie,
        "/ui/keys",
        &[("alias", "web"), ("max_budget", "5"), ("csrf", &admin.csrf)],
    )
    .await;
    assert_eq!(s, 200, "{html}");
    let at = html.find(r#"id="new-key">"#).expect("the new key") + r#"id="new-key">"#.len();
    let raw = html[at..].split('<').next().unwrap().to_string();
    assert!(raw.starts_with("sk-"), "{raw}");
    // The key exists for the API too (the page used key_api's own functions).
    let (s, info) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["info"]["key_alias"], "web");
    assert_eq!(info["info"]["max_budget"], 5.0);
    // The list shows it, and never the raw key again.
    let (_, keys) = get(&gw, &admin.cookie, "/ui/keys").await;
    assert!(keys.contains(r#"data-alias="web""#) && !keys.contains(&raw));
    // A bad budget is said so on the page.
    let (s, html) = post(
        &gw,
        &admin.cookie,
        "/ui/keys",
        &[("alias", "x"), ("max_budget", "lots"), ("csrf", &admin.csrf)],
    )
    .await;
    assert_eq!(s, 400);
    assert!(html.contains("is not a number"), "{html}");

    // Traffic from the key and from the master key.
    let chat = json!({"model": "cheap", "messages": [{"role": "user", "content": "hello"}]});
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &raw, Some(chat.clone())).await;
    assert_eq!(s, 200);
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", KEY, Some(chat.clone())).await;
    assert_eq!(s, 200);
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", KEY, Some(chat)).await;
    assert_eq!(s, 200);
    eventually("the records are written", Duration::from_secs(5), || async {
        let (_, html) = get(&gw, &admin.cookie, "/ui/overview?range=1h").await;
        figure(&html, "requests") == "3"
    })
    .await;

    // The key's own view: its one request, in the overview and the logs; no keys page.
    let own = sign_in(&gw, &raw).await;
    let (_, html) = get(&gw, &own.cookie, "/ui/overview?range=1h").await;
    assert_eq!(figure(&html, "requests"), "1");
    assert!(html.contains("web"), "signed in as the key's alias");
    let (_, logs) = get(&gw, &own.cookie, "/ui/logs").await;
    assert_eq!(logs.matches(r#"class="record "#).count(), 1, "{logs}");
    // Asking for another key's records changes nothing.
    let (_, logs) = get(&gw, &own.cookie, "/ui/logs?key=master_key").await;
    assert_eq!(logs.matches(r#"class="record "#).count(), 1);
    let (_, all) = get(&gw, &admin.cookie, "/ui/logs").await;
    assert_eq!(all.matches(r#"class="record "#).count(), 3);
    let (_, masters) = get(&gw, &admin.cookie, "/ui/logs?key=master_key").await;
    assert_eq!(masters.matches(r#"class="record "#).count(), 2);
    let (s, _) = get(&gw, &own.cookie, "/ui/keys").await;
    assert_eq!(s, 403);
    let (s, _) = post(&gw, &own.cookie, "/ui/keys", &[("alias", "mine"), ("csrf", &own.csrf)]).await;
    assert_eq!(s, 403);

    // A request's page, and another key's request is not found for the key.
    let id_at = all.find(r#"data-request-id=""#).unwrap() + r#"data-request-id=""#.len();
    let newest = all[id_at..].split('"').next().unwrap().to_string();
    let (s, detail) = get(&gw, &admin.cookie, &format!("/ui/logs/{newest}")).await;
    assert_eq!(s, 200, "{detail}");
    assert!(
        detail.contains("cache read") && detail.contains("time to first token"),
        "{detail}"
    );
    let (s, _) = get(&gw, &own.cookie, &format!("/ui/logs/{newest}")).await;
    assert_eq!(s, 404, "the newest record is the master key's");

    // The budget is changed through `/key/update`'s own code: a bad value is said so, empty
    // removes it.
    let token = tollgate_gateway::keys::hash_key(&raw);
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/keys/budget",
        &[("key", &token), ("max_budget", "7.5")],
    )
    .await;
    assert_eq!(s, 403, "no token, no change");
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/keys/budget",
        &[("key", &token), ("max_budget", "7.5"), ("csrf", &admin.csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let (_, info) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    assert_eq!(info["info"]["max_budget"], 7.5);
    let (s, html) = post(
        &gw,
        &admin.cookie,
        "/ui/keys/budget",
        &[("key", &token), ("max_budget", "-1"), ("csrf", &admin.csrf)],
    )
    .await;
    assert_eq!(s, 400, "{html}");
    assert!(html.contains("max_budget"), "the API's own message: {html}");

    // Blocking the key from the page ends its session at the next page.
    let (s, _) = post(&gw, &admin.cookie, "/ui/keys/block", &[("key", &token)]).await;
    assert_eq!(s, 403, "no token, no change");
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/keys/block",
        &[("key", &token), ("csrf", &admin.csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let (s, _) = get(&gw, &own.cookie, "/ui/overview").await;
    assert_eq!(s, 303, "a blocked key's session ends");
    // Regenerating shows the new value once; the old one stops working.
    let (s, html) = post(
        &gw,
        &admin.cookie,
        "/ui/keys/regenerate",
        &[("key", &token), ("csrf", &admin.csrf)],
    )
    .await;
    assert_eq!(s, 200, "{html}");
    let at = html.find(r#"id="new-key">"#).expect("the new key") + r#"id="new-key">"#.len();
    let fresh = html[at..].split('<').next().unwrap().to_string();
    assert!(fresh.starts_with("sk-") && fresh != raw);
    let (s, _) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    assert_eq!(s, 404);
    let (s, info) = call(&gw, "GET", &format!("/key/info?key={fresh}"), KEY, None).await;
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["info"]["key_alias"], "web");
    let fresh_token = tollgate_gateway::keys::hash_key(&fresh);
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/keys/delete",
        &[("key", &fresh_token), ("csrf", &admin.csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let (s, _) = call(&gw, "GET", &format!("/key/info?key={fresh}"), KEY, None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_address_and_turkish_renders() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let http = client();
    let form = http
        .get(format!("{}/ui/signin", gw.base))
        .header("accept-language", "tr-TR,tr;q=0.9")
        .send()
        .await
        .unwrap();
    let (bound, _) = set_cookie(&form, "tollgate_signin").unwrap();
    let html = form.text().await.unwrap();
    assert!(
        html.contains(r#"<html lang="tr">"#) && html.contains("Giriş yap"),
        "{html}"
    );
    let token = csrf_of(&html);
    let attempt = |key: &'static str| {
        let http = http.clone();
        let (bound, token, base) = (bound.clone(), token.clone(), gw.base.clone());
        async move {
            http.post(format!("{base}/ui/signin"))
                .header("cookie", &bound)
                .form(&[("key", key), ("csrf", &token)])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("sk-wrong").await.status(), 401);
    }
    // A huge form is not read (the sign-in form is open to anyone).
    let huge = http
        .post(format!("{}/ui/signin", gw.base))
        .header("cookie", &bound)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token}&key={}", "k".repeat(1 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert_eq!(huge.headers()["connection"], "close");
    // The sixth is refused before the key is looked at, even the right one.
    let refused = attempt(KEY).await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait > 0 && wait <= 300, "{wait}");
}

/// Behind a trusted reverse proxy each client has its own sign-in limit (named by the proxy's
/// `X-Forwarded-For`); from anybody else that header is not believed.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_limited_alone() {
    let mock = start_mock(&[]).await;
    let proxied = format!(
        "{}tollgate_settings:\n  trusted_proxies: ['127.0.0.1']\n",
        two_priced_groups(mock)
    );
    for (config, claimed_apart) in [(proxied, true), (two_priced_groups(mock), false)] {
        let gw = gateway(&config).await;
        let http = client();
        let form = http.get(format!("{}/ui/signin", gw.base)).send().await.unwrap();
        let (bound, _) = set_cookie(&form, "tollgate_signin").unwrap();
        let token = csrf_of(&form.text().await.unwrap());
        let attempt = |from: &'static str, key: &'static str| {
            let http = http.clone();
            let (bound, token, base) = (bound.clone(), token.clone(), gw.base.clone());
            async move {
                http.post(format!("{base}/ui/signin"))
                    .header("cookie", &bound)
                    .header("x-forwarded-for", from)
                    .form(&[("key", key), ("csrf", &token)])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        for _ in 0..5 {
            assert_eq!(attempt("198.51.100.1", "sk-wrong").await, 401);
        }
        assert_eq!(
            attempt("198.51.100.1", KEY).await,
            429,
            "the client that failed is limited"
        );
        // Another client behind the same proxy: its own bucket when the proxy is trusted, the
        // proxy's (full) bucket when it is not.
        let other = attempt("198.51.100.2", KEY).await;
        assert_eq!(other, if claimed_apart { 303 } else { 429 }, "trusted: {claimed_apart}");
    }
}

#[tokio::test]
async fn a_workflow_runs_page_shows_its_three_steps_as_a_timeline() {
    let mock = start_mock(&[]).await;
    let yaml = format!(
        "model_list:
  - model_name: cheap
    litellm_params: {{model: openai/cheap, api_base: http://{mock}/v1, api_key: k}}
workflows:
  plan-code-review:
    steps:
      - {{role: planner, model: cheap}}
      - {{role: coder, model: cheap}}
      - {{role: reviewer, model: cheap}}
general_settings:
  master_key: {KEY}
"
    );
    let gw = gateway(&yaml).await;
    let resp = gw
        .chat(json!({"model": "plan-code-review", "messages": [{"role": "user", "content": "build it"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let run_id = resp.headers()["x-litellm-call-id"].to_str().unwrap().to_string();
    let admin = sign_in(&gw, KEY).await;
    let path = format!("/ui/logs/{run_id}");
    eventually("the run and its steps are written", Duration::from_secs(5), || async {
        let (s, html) = get(&gw, &admin.cookie, &path).await;
        s == 200 && html.matches(r#"<tr class="step "#).count() == 3
    })
    .await;
    let (_, page) = get(&gw, &admin.cookie, &path).await;
    // The models page: the group, its deployment, and the workflow with its steps; a key may
    // not open it.
    let (s, models) = get(&gw, &admin.cookie, "/ui/models").await;
    assert_eq!(s, 200, "{models}");
    assert!(
        models.contains(r#"data-group="cheap""#) && models.contains("openai&#x2f;cheap"),
        "{models}"
    );
    assert!(models.contains(r#"data-workflow="plan-code-review""#), "{models}");
    assert!(
        models.contains("planner → cheap") && models.contains("reviewer → cheap"),
        "{models}"
    );
    assert!(models.contains(r#"id="config-ok""#));
    // Three rows and three bars, in the order the steps ran.
    assert!(page.contains(r#"id="workflow-steps""#), "{page}");
    assert_eq!(page.matches(r#"<rect class="step""#).count(), 3, "{page}");
    assert_eq!(page.matches(r#"<tr class="step "#).count(), 3, "{page}");
    let planner = page.find("(planner)").unwrap();
    let coder = page.find("(coder)").unwrap();
    let reviewer = page.find("(reviewer)").unwrap();
    assert!(planner < coder && coder < reviewer);
}

#[tokio::test]
async fn a_custom_range_and_the_log_filters() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let chat = |session: &str| json!({"model": "cheap", "messages": [{"role": "user", "content": "hello"}], "litellm_session_id": session});
    for session in ["alpha", "beta", "beta"] {
        let (s, _) = call(&gw, "POST", "/v1/chat/completions", KEY, Some(chat(session))).await;
        assert_eq!(s, 200);
    }
    let admin = sign_in(&gw, KEY).await;
    eventually("the records are written", Duration::from_secs(5), || async {
        let (_, html) = get(&gw, &admin.cookie, "/ui/overview?since=2h").await;
        html.contains(r#"data-figure="requests" data-value="3""#)
    })
    .await;
    // A range that ended before the traffic has none of it; a bad bound says what to write.
    let (s, html) = get(&gw, &admin.cookie, "/ui/overview?since=2020-01-01&until=2020-01-02").await;
    assert_eq!(s, 200);
    assert_eq!(figure(&html, "requests"), "0");
    // The page states the bounds it covers, and how old its figures are (not the range's end).
    assert!(
        html.contains(r#"data-since="2020-01-01T00:00:00.000000Z" data-until="2020-01-02T00:00:00.000000Z""#),
        "{html}"
    );
    let age: i64 = html
        .split(r#"data-age=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(age < 60, "computed {age} s ago");
    let (s, html) = get(&gw, &admin.cookie, "/ui/overview?since=yesterday-ish").await;
    assert_eq!(s, 400);
    assert!(html.contains("RFC 3339"), "{html}");
    // The full report for a range, shown and downloadable, as `tollgate report` renders it.
    let resp = client()
        .get(format!("{}/ui/report?range=1h&format=json&download=1", gw.base))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"tollgate-report-1h.json\""
    );
    let report: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(report["requests"]["total"], 3);
    let (s, md) = get(&gw, &admin.cookie, "/ui/report?since=2h&format=md").await;
    assert_eq!(s, 200);
    assert!(md.starts_with('#'), "{md}");
    let html = client()
        .get(format!("{}/ui/report?range=24h&lang=tr", gw.base))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    let csp = html.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("style-src 'unsafe-inline'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(html.text().await.unwrap().contains("<html"));
    let (s, _) = get(&gw, &admin.cookie, "/ui/report?format=pdf").await;
    assert_eq!(s, 400);
    // The session filter.
    let (_, logs) = get(&gw, &admin.cookie, "/ui/logs?session=beta").await;
    assert_eq!(logs.matches(r#"class="record "#).count(), 2, "{logs}");
}

#[tokio::test]
async fn the_playground_streams_through_the_pipeline_with_the_sessions_key() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let (s, created) = call(
        &gw,
        "POST",
        "/key/generate",
        KEY,
        Some(json!({"key_alias": "tryer", "models": ["cheap"]})),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    let raw = created["key"].as_str().unwrap().to_string();
    let own = sign_in(&gw, &raw).await;

    // The page offers only what the key may call.
    let (s, html) = get(&gw, &own.cookie, "/ui/playground").await;
    assert_eq!(s, 200);
    assert!(html.contains(r#"<option value="cheap">"#) && !html.contains(r#"<option value="dear">"#));

    let ask = |model: &str, csrf: Option<&str>| {
        let mut req = client()
            .post(format!("{}/ui/playground/chat", gw.base))
            .header("cookie", &own.cookie)
            .json(&json!({"model": model, "prompt": "say hello"}));
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        req.send()
    };
    // A change of state (a paid request) without the token is refused.
    assert_eq!(ask("cheap", None).await.unwrap().status(), 403);
    assert_eq!(ask("cheap", Some("forged")).await.unwrap().status(), 403);
    // The key's own limits apply: it may not call `dear`.
    let denied = ask("dear", Some(&own.csrf)).await.unwrap();
    assert_eq!(denied.status(), 401);
    let streamed = ask("cheap", Some(&own.csrf)).await.unwrap();
    assert_eq!(streamed.status(), 200);
    assert!(
        streamed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let id = streamed.headers()["x-litellm-call-id"].to_str().unwrap().to_string();
    let text = streamed.text().await.unwrap();
    assert!(
        text.contains("\"delta\"") && text.contains("\"usage\"") && text.contains("data: [DONE]"),
        "{text}"
    );
    // Recorded as the key's request.
    eventually("the record is written", Duration::from_secs(5), || async {
        let (s, html) = get(&gw, &own.cookie, &format!("/ui/logs/{id}")).await;
        s == 200 && html.contains("tryer")
    })
    .await;
}

#[tokio::test]
async fn an_expensive_report_is_kept_with_its_bounds_until_refreshed() {
    let mock = start_mock(&[]).await;
    // Every report counts as expensive here, so each is kept once built.
    let config = format!(
        "{}tollgate_settings:\n  dashboard_live_report_ms: 0\n",
        two_priced_groups(mock)
    );
    let gw = gateway(&config).await;
    let chat = json!({"model": "cheap", "messages": [{"role": "user", "content": "hello"}]});
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", KEY, Some(chat.clone())).await;
    assert_eq!(s, 200);
    let admin = sign_in(&gw, KEY).await;
    eventually("the record is written", Duration::from_secs(5), || async {
        let (_, html) = get(&gw, &admin.cookie, "/ui/overview?range=30d&refresh=1").await;
        figure(&html, "requests") == "1"
    })
    .await;
    // The next visit shows the kept report, says so, and names the bounds it covers.
    let (_, kept) = get(&gw, &admin.cookie, "/ui/overview?range=30d").await;
    assert!(kept.contains(r#"data-kept="true""#), "{kept}");
    assert_eq!(figure(&kept, "requests"), "1");
    let until = kept
        .split(r#"data-until=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let until: chrono::DateTime<chrono::Utc> = until.parse().unwrap();
    assert!(
        chrono::Utc::now() - until < chrono::Duration::seconds(30),
        "until {until}"
    );

    // New traffic is in the logs at once, but not in the kept report until it is refreshed.
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", KEY, Some(chat)).await;
    assert_eq!(s, 200);
    eventually("the second record is written", Duration::from_secs(5), || async {
        let (_, logs) = get(&gw, &admin.cookie, "/ui/logs").await;
        logs.matches(r#"class="record "#).count() == 2
    })
    .await;
    let (_, still) = get(&gw, &admin.cookie, "/ui/overview?range=30d").await;
    assert_eq!(figure(&still, "requests"), "1");
    let (_, report) = get(&gw, &admin.cookie, "/ui/report?range=30d&format=json").await;
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        report["requests"]["total"], 1,
        "the report page shows the same kept report"
    );
    let (_, now) = get(&gw, &admin.cookie, "/ui/overview?range=30d&refresh=1").await;
    assert_eq!(figure(&now, "requests"), "2");
    assert!(now.contains(r#"data-kept="false""#), "{now}");
    // The Turkish page is its own report, built on its first visit.
    let (_, tr) = get(&gw, &admin.cookie, "/ui/overview?range=30d&lang=tr").await;
    assert_eq!(figure(&tr, "requests"), "2");
}

/// With a shared store, the overview reads every instance's records from Postgres, and a
/// virtual key's view its own records there.
#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn with_a_shared_store_the_overview_reads_every_instances_records() {
    // The database is made and dropped outside the runtime (its client blocks).
    let db = tollgate_store::test_db::TestDatabase::create("dash_overview").expect("a Postgres test database");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(overview_over_a_shared_store(&db.url));
}

async fn overview_over_a_shared_store(url: &str) {
    let mock = start_mock(&[]).await;
    let shared = |o: &mut tollgate_gateway::ServeOptions| {
        o.database = Some(tollgate_core::database::DatabaseChoice {
            url: url.to_string(),
            pool_size: 2,
            source: tollgate_core::database::FROM_FLAG,
        });
    };
    let a = gateway_opts(&two_priced_groups(mock), shared).await;
    let b = gateway_opts(&two_priced_groups(mock), shared).await;
    // A key made on one instance and used there, beside the master key's traffic.
    let (s, made) = call(
        &a,
        "POST",
        "/key/generate",
        KEY,
        Some(json!({"key_alias": "shared-ui"})),
    )
    .await;
    assert_eq!(s, 200, "{made}");
    let raw = made["key"].as_str().unwrap().to_string();
    let chat = json!({"model": "cheap", "messages": [{"role": "user", "content": "hello"}]});
    for key in [raw.as_str(), KEY, KEY] {
        let (s, body) = call(&a, "POST", "/v1/chat/completions", key, Some(chat.clone())).await;
        assert_eq!(s, 200, "{body}");
    }
    // Instance B served none of it; its overview is the shared store's.
    let admin = sign_in(&b, KEY).await;
    eventually("the records are shipped", Duration::from_secs(15), || async {
        let (_, html) = get(&b, &admin.cookie, "/ui/overview?range=1h").await;
        figure(&html, "requests") == "3"
    })
    .await;
    let own = sign_in(&b, &raw).await;
    let (_, html) = get(&b, &own.cookie, "/ui/overview?range=1h").await;
    assert_eq!(figure(&html, "requests"), "1", "the key's own record only");
    let (_, report) = get(&b, &admin.cookie, "/ui/report?range=1h&format=json").await;
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["requests"]["total"], 3);
    assert!(
        report["inputs"][0]["format"]
            .as_str()
            .unwrap_or("")
            .contains("Postgres"),
        "{}",
        report["inputs"]
    );
}

/// The `<tr …>` of a listing whose `attr` is `value`, up to its `</tr>` (panics when absent).
fn row_of<'a>(html: &'a str, attr: &str, value: &str) -> &'a str {
    let marker = format!(r#"<tr {attr}="{value}""#);
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no row {attr}={value} in {html}"));
    let end = html[at..].find("</tr>").unwrap() + at;
    &html[at..end]
}

/// An attribute's value in a piece of HTML (the first one).
fn attr(html: &str, name: &str) -> String {
    let marker = format!(r#" {name}=""#);
    let at = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn users_and_teams_pages_change_them_through_the_api_code() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let admin = sign_in(&gw, KEY).await;
    let csrf = admin.csrf.as_str();

    // A virtual key may open neither page nor change anything on them.
    let (s, created) = call(&gw, "POST", "/key/generate", KEY, Some(json!({"key_alias": "plain"}))).await;
    assert_eq!(s, 200, "{created}");
    let own = sign_in(&gw, created["key"].as_str().unwrap()).await;
    for path in ["/ui/users", "/ui/teams"] {
        let (s, html) = get(&gw, &own.cookie, path).await;
        assert_eq!(s, 403, "{path}: {html}");
        let (s, _) = post(
            &gw,
            &own.cookie,
            path,
            &[("user_id", "x"), ("team_id", "x"), ("csrf", &own.csrf)],
        )
        .await;
        assert_eq!(s, 403, "{path}");
    }
    let (s, html) = get(&gw, &admin.cookie, "/ui/overview").await;
    assert_eq!(s, 200);
    assert!(
        html.contains(r#"href="/ui/users""#) && html.contains(r#"href="/ui/teams""#),
        "the admin's navigation"
    );
    let (_, html) = get(&gw, &own.cookie, "/ui/overview").await;
    assert!(
        !html.contains(r#"href="/ui/users""#),
        "a key's navigation has no users page"
    );

    // Creating a user: refused without the CSRF token or with a wrong one, nothing made.
    let user_form = [
        ("user_id", "ada"),
        ("user_email", "ada@example.com"),
        ("max_budget", "20"),
        ("budget_duration", "30d"),
        ("models", "cheap"),
        ("create_key", "on"),
    ];
    let (s, _) = post(&gw, &admin.cookie, "/ui/users", &user_form).await;
    assert_eq!(s, 403);
    let mut forged = user_form.to_vec();
    forged.push(("csrf", "forged"));
    let (s, _) = post(&gw, &admin.cookie, "/ui/users", &forged).await;
    assert_eq!(s, 403);
    let (s, _) = call(&gw, "GET", "/user/info?user_id=ada", KEY, None).await;
    assert_eq!(s, 404, "no user made without the token");
    // With it: made as `/user/new` makes it, with a key shown once.
    let mut with = user_form.to_vec();
    with.push(("csrf", csrf));
    let (s, html) = post(&gw, &admin.cookie, "/ui/users", &with).await;
    assert_eq!(s, 200, "{html}");
    let at = html.find(r#"id="new-key">"#).expect("the user's key") + r#"id="new-key">"#.len();
    let ada_key = html[at..].split('<').next().unwrap().to_string();
    assert!(ada_key.starts_with("sk-"), "{ada_key}");
    let (s, info) = call(&gw, "GET", "/user/info?user_id=ada", KEY, None).await;
    assert_eq!(s, 200, "{info}");
    let u = &info["user_info"];
    assert_eq!(
        (&u["user_email"], &u["max_budget"], &u["budget_duration"], &u["models"]),
        (
            &json!("ada@example.com"),
            &json!(20.0),
            &json!("30d"),
            &json!(["cheap"])
        )
    );
    assert_eq!(info["keys"].as_array().unwrap().len(), 1);
    // The same id again: the API's own refusal, on the page.
    let (s, html) = post(&gw, &admin.cookie, "/ui/users", &with).await;
    assert_eq!(s, 400);
    assert!(html.contains("already exists"), "{html}");

    // Spend through the user's key shows against the user's budget, with the period's reset.
    let chat = json!({"model": "cheap", "messages": [{"role": "user", "content": "hello"}]});
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &ada_key, Some(chat.clone())).await;
    assert_eq!(s, 200);
    let spend_on_page = || async {
        let (s, users) = get(&gw, &admin.cookie, "/ui/users").await;
        assert_eq!(s, 200, "{users}");
        attr(row_of(&users, "data-user", "ada"), "data-spend")
            .parse::<f64>()
            .unwrap()
    };
    eventually("the user's spend shows", Duration::from_secs(5), || async {
        spend_on_page().await > 0.0
    })
    .await;
    let (_, users) = get(&gw, &admin.cookie, "/ui/users").await;
    let ada = row_of(&users, "data-user", "ada").to_string();
    assert_eq!(attr(&ada, "data-budget"), "20.0");
    let spend: f64 = attr(&ada, "data-spend").parse().unwrap();
    let (_, info) = call(&gw, "GET", "/user/info?user_id=ada", KEY, None).await;
    assert_eq!(spend, info["user_info"]["spend"].as_f64().unwrap(), "the API's figure");
    assert!(ada.contains("<progress") && ada.contains("every 30d · ↻ "), "{ada}");
    assert!(ada.contains("ada@example.com") && ada.contains(r#"<td class="num key-count">1</td>"#));
    assert!(users.contains(r#"id="users-total">(1)"#), "{users}");

    // Changing the budget and limits: words where a number goes are refused here, a bad number
    // by the API (its message), a good change through `/user/update`'s code.
    let limits = |budget: &'static str| {
        [
            ("user_id", "ada"),
            ("max_budget", budget),
            ("budget_duration", "30d"),
            ("tpm_limit", "1000"),
            ("rpm_limit", "10"),
            ("csrf", csrf),
        ]
    };
    let (s, html) = post(&gw, &admin.cookie, "/ui/users/limits", &limits("lots")).await;
    assert_eq!(s, 400);
    assert!(html.contains("is not a number"), "{html}");
    let (s, html) = post(&gw, &admin.cookie, "/ui/users/limits", &limits("-1")).await;
    assert_eq!(s, 400);
    assert!(html.contains("max_budget"), "the API's own message: {html}");
    let (s, _) = post(&gw, &admin.cookie, "/ui/users/limits", &limits("50")[..5]).await;
    assert_eq!(s, 403, "no token, no change");
    let (s, _) = post(&gw, &admin.cookie, "/ui/users/limits", &limits("50")).await;
    assert_eq!(s, 303);
    let (_, info) = call(&gw, "GET", "/user/info?user_id=ada", KEY, None).await;
    let u = &info["user_info"];
    assert_eq!(
        (&u["max_budget"], &u["tpm_limit"], &u["rpm_limit"]),
        (&json!(50.0), &json!(1000), &json!(10))
    );
    let (_, users) = get(&gw, &admin.cookie, "/ui/users").await;
    let ada = row_of(&users, "data-user", "ada").to_string();
    assert_eq!(attr(&ada, "data-budget"), "50.0");
    assert!(ada.contains("TPM 1000") && ada.contains("RPM 10"), "{ada}");

    // Teams: created through the page (not without the token), listed with their budget.
    let team_form = [
        ("team_alias", "Research"),
        ("team_id", "research"),
        ("max_budget", "100"),
        ("budget_duration", "1mo"),
        ("models", "cheap, dear"),
    ];
    let (s, _) = post(&gw, &admin.cookie, "/ui/teams", &team_form).await;
    assert_eq!(s, 403);
    let mut with = team_form.to_vec();
    with.push(("csrf", csrf));
    let (s, _) = post(&gw, &admin.cookie, "/ui/teams", &with).await;
    assert_eq!(s, 303);
    let (s, info) = call(&gw, "GET", "/team/info?team_id=research", KEY, None).await;
    assert_eq!(s, 200, "{info}");
    let t = &info["team_info"];
    assert_eq!(
        (&t["team_alias"], &t["max_budget"], &t["models"]),
        (&json!("Research"), &json!(100.0), &json!(["cheap", "dear"]))
    );
    let (s, teams) = get(&gw, &admin.cookie, "/ui/teams").await;
    assert_eq!(s, 200, "{teams}");
    let research = row_of(&teams, "data-team", "research").to_string();
    assert_eq!(attr(&research, "data-budget"), "100.0");
    assert_eq!(attr(&research, "data-alias"), "Research");
    assert!(
        research.contains("every 1mo · ↻ ") && research.contains("cheap, dear"),
        "{research}"
    );

    // Its budget and limits change through `/team/update`'s code.
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/limits",
        &[
            ("team_id", "research"),
            ("max_budget", "150"),
            ("budget_duration", "1mo"),
            ("tpm_limit", ""),
            ("rpm_limit", "60"),
            ("csrf", csrf),
        ],
    )
    .await;
    assert_eq!(s, 303);
    let (_, info) = call(&gw, "GET", "/team/info?team_id=research", KEY, None).await;
    assert_eq!(
        (&info["team_info"]["max_budget"], &info["team_info"]["rpm_limit"]),
        (&json!(150.0), &json!(60))
    );

    // A member added on the page is one everywhere: the team's members, the user's teams.
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/member_add",
        &[("team_id", "research"), ("user_id", "ada"), ("role", "admin")],
    )
    .await;
    assert_eq!(s, 403, "no token, no member");
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/member_add",
        &[
            ("team_id", "research"),
            ("user_id", "ada"),
            ("role", "admin"),
            ("csrf", csrf),
        ],
    )
    .await;
    assert_eq!(s, 303);
    let (_, info) = call(&gw, "GET", "/team/info?team_id=research", KEY, None).await;
    assert_eq!(info["team_info"]["members_with_roles"][0]["user_id"], "ada");
    assert_eq!(info["team_info"]["members_with_roles"][0]["role"], "admin");
    let (_, teams) = get(&gw, &admin.cookie, "/ui/teams").await;
    assert!(
        row_of(&teams, "data-team", "research").contains(r#"data-member="ada" data-role="admin""#),
        "{teams}"
    );
    let (_, users) = get(&gw, &admin.cookie, "/ui/users").await;
    assert!(row_of(&users, "data-user", "ada").contains(r#"<td class="user-teams">research</td>"#));
    // Twice: the API's refusal, shown on the page.
    let (s, html) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/member_add",
        &[
            ("team_id", "research"),
            ("user_id", "ada"),
            ("role", "user"),
            ("csrf", csrf),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(html.contains("already in team"), "{html}");

    // Blocking the team refuses its keys; unblocking lets them through again.
    let (s, team_key) = call(
        &gw,
        "POST",
        "/key/generate",
        KEY,
        Some(json!({"team_id": "research", "key_alias": "research-ci"})),
    )
    .await;
    assert_eq!(s, 200, "{team_key}");
    let team_key = team_key["key"].as_str().unwrap().to_string();
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/block",
        &[("team_id", "research"), ("csrf", csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let (s, refused) = call(&gw, "POST", "/v1/chat/completions", &team_key, Some(chat.clone())).await;
    assert!(s == 401 || s == 403, "{s} {refused}");
    let (_, teams) = get(&gw, &admin.cookie, "/ui/teams").await;
    assert_eq!(attr(row_of(&teams, "data-team", "research"), "data-blocked"), "True");
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/unblock",
        &[("team_id", "research"), ("csrf", csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let (s, _) = call(&gw, "POST", "/v1/chat/completions", &team_key, Some(chat)).await;
    assert_eq!(s, 200);

    // Removing the member, then deleting the user (its key goes too) and the team.
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/member_delete",
        &[("team_id", "research"), ("user_id", "ada"), ("csrf", csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let (_, info) = call(&gw, "GET", "/team/info?team_id=research", KEY, None).await;
    assert_eq!(info["team_info"]["members_with_roles"], json!([]));
    let (s, _) = post(&gw, &admin.cookie, "/ui/users/delete", &[("user_id", "ada")]).await;
    assert_eq!(s, 403, "no token, no deletion");
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/users/delete",
        &[("user_id", "ada"), ("csrf", csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let (s, _) = call(&gw, "GET", "/user/info?user_id=ada", KEY, None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&gw, "GET", &format!("/key/info?key={ada_key}"), KEY, None).await;
    assert_eq!(s, 404, "the user's key went with it");
    let (_, users) = get(&gw, &admin.cookie, "/ui/users").await;
    assert!(!users.contains(r#"data-user="ada""#));
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/delete",
        &[("team_id", "research"), ("csrf", csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let (s, _) = call(&gw, "GET", "/team/info?team_id=research", KEY, None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&gw, "GET", &format!("/key/info?key={team_key}"), KEY, None).await;
    assert_eq!(s, 404, "the team's key went with it");
    let (_, teams) = get(&gw, &admin.cookie, "/ui/teams").await;
    assert!(!teams.contains(r#"data-team="research""#) && teams.contains("No teams yet."));
    // Deleting what is gone: the API's 404, on the page.
    let (s, html) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/delete",
        &[("team_id", "research"), ("csrf", csrf)],
    )
    .await;
    assert_eq!(s, 404);
    assert!(html.contains("does not exist"), "{html}");
    let (s, _) = post(
        &gw,
        &admin.cookie,
        "/ui/teams/explode",
        &[("team_id", "x"), ("csrf", csrf)],
    )
    .await;
    assert_eq!(s, 404);

    // The Turkish page.
    let (s, html) = get(&gw, &admin.cookie, "/ui/teams?lang=tr").await;
    assert_eq!(s, 200);
    assert!(
        html.contains("Takım oluştur") && html.contains("Kullanıcılar"),
        "{html}"
    );
}

#[tokio::test]
async fn users_page_by_the_hundred_and_a_keys_limits_and_models() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&two_priced_groups(mock)).await;
    let admin = sign_in(&gw, KEY).await;
    for i in 0..101 {
        let body = json!({"user_id": format!("u{i:03}"), "auto_create_key": false});
        let (s, v) = call(&gw, "POST", "/user/new", KEY, Some(body)).await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, first) = get(&gw, &admin.cookie, "/ui/users").await;
    assert_eq!(first.matches("<tr data-user=").count(), 100);
    assert!(first.contains(r#"href="&#x2f;ui&#x2f;users?page=2""#), "{first}");
    assert!(!first.contains(r#"id="prev-page""#));
    let (_, second) = get(&gw, &admin.cookie, "/ui/users?page=2").await;
    assert_eq!(second.matches("<tr data-user=").count(), 1);
    assert!(second.contains(r#"data-user="u100""#) && second.contains(r#"id="prev-page""#));
    assert!(!second.contains(r#"id="next-page""#));

    // A key's rate limits change through `/key/update`'s code; the page shows them and the models.
    let (s, created) = call(
        &gw,
        "POST",
        "/key/generate",
        KEY,
        Some(json!({"key_alias": "limited", "models": ["cheap"]})),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    let raw = created["key"].as_str().unwrap().to_string();
    let token = tollgate_gateway::keys::hash_key(&raw);
    let csrf = admin.csrf.as_str();
    let form = |tpm: &'static str| {
        [
            ("key", token.as_str()),
            ("tpm_limit", tpm),
            ("rpm_limit", "5"),
            ("max_parallel_requests", "2"),
            ("csrf", csrf),
        ]
    };
    let (s, _) = post(&gw, &admin.cookie, "/ui/keys/limits", &form("500")[..4]).await;
    assert_eq!(s, 403, "no token, no change");
    let (s, html) = post(&gw, &admin.cookie, "/ui/keys/limits", &form("5.5")).await;
    assert_eq!(s, 400);
    assert!(html.contains("tpm_limit"), "the API's own message: {html}");
    let (s, _) = post(&gw, &admin.cookie, "/ui/keys/limits", &form("500")).await;
    assert_eq!(s, 303);
    let (_, info) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    let i = &info["info"];
    assert_eq!(
        (&i["tpm_limit"], &i["rpm_limit"], &i["max_parallel_requests"]),
        (&json!(500), &json!(5), &json!(2))
    );
    let (_, keys) = get(&gw, &admin.cookie, "/ui/keys").await;
    let row = row_of(&keys, "data-alias", "limited");
    assert!(
        row.contains("TPM 500") && row.contains("RPM 5") && row.contains("parallel 2"),
        "{row}"
    );
    assert!(row.contains(r#"<td class="models">cheap</td>"#), "{row}");
    assert!(
        !keys.contains(r#"id="next-page""#) && keys.contains("Page 1 / 1"),
        "{keys}"
    );
    // An emptied field removes that limit.
    let (s, _) = post(&gw, &admin.cookie, "/ui/keys/limits", &form("")).await;
    assert_eq!(s, 303);
    let (_, info) = call(&gw, "GET", &format!("/key/info?key={raw}"), KEY, None).await;
    assert!(info["info"]["tpm_limit"].is_null(), "{info}");
    assert_eq!(info["info"]["rpm_limit"], 5);
}
