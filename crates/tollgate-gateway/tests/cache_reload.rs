//! The response cache (memory and real Redis) and config reload, over real HTTP with the mock
//! as the upstream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_core::{CacheState, Record};

mod common;
use common::redis::{RedisProcess, redis_url};
use common::{Gw, KEY, gateway, gateway_at};

async fn start_mock() -> SocketAddr {
    common::start_mock(&[]).await
}

async fn upstream_calls(mock: SocketAddr) -> u64 {
    let stats: BTreeMap<String, u64> = reqwest::get(format!("http://{mock}/mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats.values().sum()
}

fn config(mock: SocketAddr, cache_params: &str) -> String {
    format!(
        r#"model_list:
  - model_name: deepseek-v3.2
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: http://{mock}/v1
      api_key: k
  - model_name: minimax-m2.1
    litellm_params:
      model: minimax/MiniMax-M2.1
      api_base: http://{mock}/v1
      api_key: k
litellm_settings:
  cache: true
  cache_params: {cache_params}
general_settings:
  master_key: {KEY}
"#
    )
}

impl Gw {
    async fn send(&self, body: &Value, headers: &[(&str, &str)]) -> (String, reqwest::header::HeaderMap, String) {
        let mut req = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(KEY)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers().clone();
        let state = h["x-tollgate-cache"].to_str().unwrap().to_string();
        (state, h, r.text().await.unwrap())
    }

    async fn state_of(&self, body: &Value) -> String {
        self.send(body, &[]).await.0
    }

    /// (answers stored so far, stores handed over and not finished) from readiness.
    async fn stores(&self) -> (u64, u64) {
        let r = self.readiness().await;
        let n = |k: &str| r["cache"][k].as_u64().unwrap();
        (n("stores"), n("stores_pending"))
    }

    /// Sends `body` (with `headers`), asserts a miss, then waits with a deadline until its answer
    /// is stored: the store runs off the request path, so a lookup right after the response
    /// could otherwise race it. The store is handed over before the response ends, so once
    /// nothing is pending, it has landed.
    async fn miss_then_stored(&self, body: &Value, headers: &[(&str, &str)]) -> (reqwest::header::HeaderMap, String) {
        let (before, _) = self.stores().await;
        let (state, h, text) = self.send(body, headers).await;
        assert_eq!(state, "miss");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (stored, pending) = self.stores().await;
            if stored > before && pending == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the answer was never stored");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (h, text)
    }

    /// Sends `body` (with `headers`) until it is not a hit, with a deadline: for entries that
    /// must expire (TTL, `s-maxage`, `max-age`). Returns the state that ended the wait.
    async fn until_not_hit(&self, body: &Value, headers: &[(&str, &str)]) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let state = self.send(body, headers).await.0;
            if state != "hit" {
                return state;
            }
            assert!(Instant::now() < deadline, "the entry never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn chat(content: &str) -> Value {
    json!({"model": "deepseek-v3.2", "messages": [{"role": "user", "content": content}]})
}

fn with_cache(mut body: Value, ctl: Value) -> Value {
    body["cache"] = ctl;
    body
}

#[tokio::test]
async fn plain_hits_replay_the_answer_cost_nothing_and_record_the_saving() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "{type: local}")).await;
    let body = chat("What is a monad?");
    let (_, first) = g.miss_then_stored(&body, &[]).await;
    let (s2, h2, second) = g.send(&body, &[]).await;
    assert_eq!(s2, "hit");
    assert_eq!(first, second, "a hit replays the stored answer");
    assert!(
        h2["x-litellm-cache-key"]
            .to_str()
            .unwrap()
            .starts_with("tollgate:completion:plain:")
    );
    assert_eq!(h2["x-tollgate-cost-usd"].to_str().unwrap().parse::<f64>().unwrap(), 0.0);
    assert_eq!(upstream_calls(mock).await, 1, "the hit never reached the provider");
    // The user field and stream_options do not change the answer, so they do not change the key.
    let mut other_user = body.clone();
    other_user["user"] = json!("someone-else");
    assert_eq!(g.state_of(&other_user).await, "hit");
    // Another model group or other messages are other answers.
    let mut other_model = body.clone();
    other_model["model"] = json!("minimax-m2.1");
    assert_eq!(g.state_of(&other_model).await, "miss");

    let records = g.records().await;
    let miss = records
        .iter()
        .find(|r| r.cache == CacheState::Miss && r.model_group == "deepseek-v3.2")
        .unwrap();
    let hits: Vec<&Record> = records.iter().filter(|r| r.cache == CacheState::Hit).collect();
    assert_eq!(hits.len(), 2);
    for h in hits {
        assert_eq!(h.cost_usd, Some(0.0));
        assert_eq!(h.saved_cost_usd, miss.cost_usd);
        assert_eq!(h.prompt_tokens, miss.prompt_tokens);
        assert_eq!(h.model, "deepseek/deepseek-v3.2");
    }
}

fn sse_payloads(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn streamed_answers_are_cached_and_replayed_as_sse_with_usage() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "{type: local}")).await;
    let mut body = chat("Stream me a haiku about caches");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (_, first) = g.miss_then_stored(&body, &[]).await;
    let (s2, h2, second) = g.send(&body, &[]).await;
    assert_eq!(s2, "hit");
    assert_eq!(h2["content-type"], "text/event-stream");
    assert!(second.ends_with("data: [DONE]\n\n"));
    let (a, b) = (sse_payloads(&first), sse_payloads(&second));
    assert_eq!(a.len(), b.len(), "replayed chunk by chunk like the original");
    assert_eq!(a, b);
    assert!(b.last().unwrap()["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    // The same stream without include_usage is the same cache entry, minus the usage chunk.
    body.as_object_mut().unwrap().remove("stream_options");
    let (s3, _, third) = g.send(&body, &[]).await;
    assert_eq!(s3, "hit");
    let c = sse_payloads(&third);
    assert_eq!(c.len(), a.len() - 1);
    assert!(c.iter().all(|v| v.get("usage").is_none_or(Value::is_null)));
    // A plain request is a different entry.
    body.as_object_mut().unwrap().remove("stream");
    assert_eq!(g.state_of(&body).await, "miss");
    assert_eq!(upstream_calls(mock).await, 2);
    let records = g.records().await;
    assert_eq!(
        records
            .iter()
            .filter(|r| r.cache == CacheState::Hit && r.stream)
            .count(),
        2
    );
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "{type: local, ttl: 2}")).await;
    let body = chat("ttl test");
    // A per-request ttl overrides the config's: stored at the same time, it outlives it.
    let long = with_cache(chat("long ttl"), json!({"ttl": 600}));
    g.miss_then_stored(&long, &[]).await;
    g.miss_then_stored(&body, &[]).await;
    assert_eq!(g.state_of(&body).await, "hit");
    // Polled rather than slept: expiry is checked, not the clock.
    assert_eq!(g.until_not_hit(&body, &[]).await, "miss");
    assert_eq!(
        g.state_of(&long).await,
        "hit",
        "the per-request ttl outlived the config's"
    );
    g.records().await;
}

#[tokio::test]
async fn per_request_controls_and_cache_control_headers() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "{type: local}")).await;
    let body = chat("controls");
    // no-store: answered, not kept.
    assert_eq!(
        g.state_of(&with_cache(body.clone(), json!({"no-store": true}))).await,
        "miss"
    );
    g.miss_then_stored(&body, &[]).await;
    assert_eq!(g.state_of(&body).await, "hit");
    // no-cache: skips the lookup (bypass), goes upstream.
    let before = upstream_calls(mock).await;
    assert_eq!(
        g.state_of(&with_cache(body.clone(), json!({"no-cache": true}))).await,
        "bypass"
    );
    assert_eq!(upstream_calls(mock).await, before + 1);
    // s-maxage: only entries younger than that (the entry's own ttl is 600 s).
    assert_eq!(
        g.until_not_hit(&with_cache(body.clone(), json!({"s-maxage": 1})), &[])
            .await,
        "miss"
    );
    assert_eq!(
        g.state_of(&with_cache(body.clone(), json!({"s-maxage": 60}))).await,
        "hit"
    );
    // namespace: another namespace is another cache.
    g.miss_then_stored(&with_cache(body.clone(), json!({"namespace": "team-b"})), &[])
        .await;
    assert_eq!(
        g.state_of(&with_cache(body.clone(), json!({"namespace": "team-b"})))
            .await,
        "hit"
    );
    // HTTP Cache-Control request headers.
    assert_eq!(g.send(&body, &[("cache-control", "no-cache")]).await.0, "bypass");
    let fresh = chat("header no-store");
    assert_eq!(g.send(&fresh, &[("cache-control", "no-store")]).await.0, "miss");
    g.miss_then_stored(&fresh, &[]).await;
    assert_eq!(g.until_not_hit(&fresh, &[("cache-control", "max-age=1")]).await, "miss");
    g.records().await;
}

#[tokio::test]
async fn default_off_mode_caches_only_requests_that_ask() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "{type: local, mode: default_off}")).await;
    let body = chat("opt in");
    assert_eq!(g.state_of(&body).await, "bypass");
    assert_eq!(g.state_of(&body).await, "bypass");
    let opt_in = with_cache(body, json!({"use-cache": true}));
    g.miss_then_stored(&opt_in, &[]).await;
    assert_eq!(g.state_of(&opt_in).await, "hit");
    g.records().await;
}

#[tokio::test]
async fn no_cache_configured_means_off_everywhere() {
    let mock = start_mock().await;
    let yaml = config(mock, "{type: local}").replace("  cache: true\n", "");
    let g = gateway(&yaml).await;
    assert_eq!(g.state_of(&chat("x")).await, "off");
    let ready: Value = g.readiness().await;
    assert_eq!(ready["cache"]["state"], "off");
    g.records().await;
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis),
    ignore = "needs Redis: set TOLLGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/)"
)]
async fn two_gateways_share_one_redis() {
    let url = redis_url();
    let mock = start_mock().await;
    // A namespace of its own, so reruns and other tests never see this run's entries.
    let ns = format!("test-{}-{}", std::process::id(), chrono_like_nanos());
    let yaml = config(
        mock,
        &format!("{{type: redis, url: \"{url}\", namespace: {ns}, ttl: 60}}"),
    );
    let a = gateway(&yaml).await;
    let b = gateway(&yaml).await;
    let body = chat("shared across instances");
    // The first lookup may run before the lazy connection is up (a bypass); wait for it.
    wait_healthy(&a).await;
    wait_healthy(&b).await;
    a.miss_then_stored(&body, &[]).await;
    assert_eq!(
        b.state_of(&body).await,
        "hit",
        "gateway B answers from what gateway A stored"
    );
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    assert_eq!(b.state_of(&streamed).await, "miss");
    a.records().await;
    b.records().await;
}

fn chrono_like_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn wait_healthy(g: &Gw) {
    for _ in 0..100 {
        // Any request triggers the lazy connect; readiness reports when it is up.
        let _ = g.send(&chat("warm-up"), &[("cache-control", "no-store")]).await;
        let ready: Value = g.readiness().await;
        if ready["cache"]["healthy"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cache never connected to Redis");
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis_server),
    ignore = "needs redis-server on PATH (the test starts its own)"
)]
async fn redis_killed_mid_test_degrades_to_bypass_never_to_errors() {
    let mut redis = RedisProcess::start();
    let port = redis.port;
    let mock = start_mock().await;
    let g = gateway(&config(
        mock,
        &format!("{{type: redis, host: 127.0.0.1, port: {port}}}"),
    ))
    .await;
    wait_healthy(&g).await;
    let body = chat("before the crash");
    g.miss_then_stored(&body, &[]).await;
    redis.kill();
    let mut states = Vec::new();
    for i in 0..5 {
        // `send` asserts 200: the cache never turns into an error.
        states.push(g.state_of(&chat(&format!("after the crash {i}"))).await);
    }
    assert!(states.iter().all(|s| s == "bypass"), "{states:?}");
    let ready: Value = g.readiness().await;
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["cache"]["healthy"], false);
    assert!(ready["cache"]["errors"].as_u64().unwrap() >= 5);
    let records = g.records().await;
    // The five after the crash, plus any warm-up request made while the connection came up.
    assert!(records.iter().filter(|r| r.cache == CacheState::Bypass).count() >= 5);
    assert!(records.iter().all(|r| r.status == tollgate_core::RecordStatus::Success));
}

fn two_groups(mock: SocketAddr, third: bool) -> String {
    let mut y = config(mock, "{type: local}");
    if third {
        y = y.replace(
            "litellm_settings:",
            &format!(
                "  - model_name: added-later\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://{mock}/v1\n      api_key: k\nlitellm_settings:"
            ),
        );
    }
    y
}

#[tokio::test]
async fn file_edits_reload_under_load_without_a_failed_request_and_broken_edits_keep_serving() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("config.yaml");
    std::fs::write(&path, two_groups(mock, false)).unwrap();
    let g = gateway_at(&path, dir, true).await;
    // Warm the cache so the reload's carry-over of entries is visible.
    g.miss_then_stored(&chat("kept across reloads"), &[]).await;

    // Load: 4 clients sending distinct requests until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (http, base, stop) = (g.http.clone(), g.base.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(KEY)
                    .json(&chat(&format!("client {c} request {i}")))
                    .send()
                    .await
                    .unwrap();
                statuses.push(r.status().as_u16());
                i += 1;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&path, two_groups(mock, true)).unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        if g.model_ids().await.contains(&"added-later".to_string()) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the file edit was picked up");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let version = g.readiness().await["config_version"].as_u64().unwrap();
    assert_eq!(version, 2, "one save, one reload");

    // A broken edit: the last good config keeps serving, readiness shows why.
    std::fs::write(&path, "model_list:\n  - model_name: [unclosed\n").unwrap();
    let mut ready = Value::Null;
    for _ in 0..100 {
        ready = g.readiness().await;
        if !ready["config_error"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = ready["config_error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("config.yaml:") && err.contains(&format!("still serving config version {version}")),
        "{ready}"
    );
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["config_version"], version);
    assert!(g.model_ids().await.contains(&"added-later".to_string()));

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let statuses = c.await.unwrap();
        total += statuses.len();
        assert!(
            statuses.iter().all(|s| *s == 200),
            "a request failed during reload: {statuses:?}"
        );
    }
    assert!(total > 10, "the load ran ({total} requests)");
    // The cache survived the reload (same cache settings).
    assert_eq!(g.state_of(&chat("kept across reloads")).await, "hit");

    // Fixing the file clears the error.
    std::fs::write(g.dir.path().join("config.yaml"), two_groups(mock, false)).unwrap();
    for _ in 0..100 {
        if g.readiness().await["config_error"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(g.readiness().await["config_error"].is_null());
    let records = g.records().await;
    let versions: std::collections::BTreeSet<u64> = records.iter().filter_map(|r| r.config_version).collect();
    assert!(
        versions.contains(&1) && versions.contains(&2),
        "records carry the version that served them: {versions:?}"
    );
}

#[tokio::test]
async fn admin_reload_and_config_need_the_master_key_and_redact_secrets() {
    let mock = start_mock().await;
    let g = gateway(&config(mock, "{type: local}")).await;
    let url = format!("{}/admin/reload", g.base);
    assert_eq!(g.http.post(&url).send().await.unwrap().status(), 401);
    let r: Value = g
        .http
        .post(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["config_version"], 2);
    let cfg = g
        .http
        .get(format!("{}/admin/config", g.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!cfg.contains(KEY), "the master key is redacted");
    let cfg: Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["config_version"], 2);
    assert_eq!(cfg["effective"]["litellm_settings"]["cache"], true);
    // A reload that would weaken auth is refused and the old config keeps serving.
    std::fs::write(
        g.dir.path().join("config.yaml"),
        config(mock, "{type: local}").replace(KEY, "sk-1234"),
    )
    .unwrap();
    let r = g.http.post(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still serving config version 2"),
        "{v}"
    );
    assert_eq!(
        g.http
            .get(format!("{}/v1/models", g.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    g.records().await;
}
