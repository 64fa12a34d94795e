//! Rate limits counted in a real Redis, shared by instances (each `RateLimits` here stands for a
//! gateway instance), and what a gateway says about where it counts them. Every test uses a key
//! prefix of its own and deletes only that prefix's keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_core::config::RedisGuard;
use tollgate_gateway::rate_limits::{DEFAULT_LEASE, LimitScope, PARALLEL, RPM, RateLimits, TPM};

mod common;
use common::redis::{RedisProcess, redis_url};
use common::{KEY, eventually, gateway, start_mock};

/// A prefix no other test or run uses.
fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tollgate:test:{test}:{}:{nanos}", std::process::id())
}

/// Deletes this test's keys (and only them).
async fn flush(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut c).await.unwrap();
    }
}

/// `actual` is `want`, or a little above it: counters drain as time passes (a tpm of 1,000
/// frees a token every 60 ms), so a slow machine may see a few units back, never fewer.
#[track_caller]
fn about(actual: u64, want: u64, slack: u64) {
    assert!(
        (want..=want + slack).contains(&actual),
        "{actual}, expected {want} (+{slack})"
    );
}

fn instance(prefix: &str) -> RateLimits {
    RateLimits::redis(&redis_url(), &RedisGuard::default(), prefix, DEFAULT_LEASE).unwrap()
}

fn key(rpm: Option<u64>, tpm: Option<u64>, parallel: Option<u64>) -> LimitScope {
    LimitScope {
        scope: "key",
        entity: "0123abcd".into(),
        label: "ci".into(),
        rpm,
        tpm,
        parallel,
    }
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis),
    ignore = "needs Redis: set TOLLGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/)"
)]
async fn two_instances_sharing_redis_admit_exactly_the_rpm_limit() {
    let p = prefix("rpm");
    let instances = [Arc::new(instance(&p)), Arc::new(instance(&p))];
    let start = Arc::new(tokio::sync::Barrier::new(30));
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let limits = Arc::clone(&instances[i % 2]);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let k = [key(Some(10), None, None)];
                limits
                    .admit(&format!("req-{i}"), &k, 0)
                    .await
                    .map(|p| p.standing().to_vec())
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(over) => {
                assert_eq!((over.limit, over.value, over.scope), (RPM, 10, "key"));
                assert!(over.shared, "counted in Redis, not locally: {over:?}");
                assert!((1..=6).contains(&over.retry_after_s()), "{over:?}");
            }
        }
    }
    assert_eq!(admitted, 10, "exactly the limit over both instances");
    assert_eq!(instances[0].fallbacks() + instances[1].fallbacks(), 0);
    flush(&p).await;
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis),
    ignore = "needs Redis: set TOLLGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/)"
)]
async fn a_refusal_takes_nothing_from_any_scope() {
    let p = prefix("refusal");
    let limits = instance(&p);
    let own = key(Some(100), Some(10_000), Some(5));
    let per_model = LimitScope {
        scope: "key_model",
        entity: "0123abcd/gpt".into(),
        label: "ci/gpt".into(),
        rpm: Some(1),
        tpm: None,
        parallel: None,
    };
    let both = [own.clone(), per_model.clone()];
    let first = limits.admit("r1", &both, 100).await.unwrap();
    let s = first.standing();
    assert_eq!(s[0].requests.unwrap().remaining, 99);
    about(s[0].tokens.unwrap().remaining, 9_900, 400);
    assert_eq!(s[1].requests.unwrap().remaining, 0);
    let over = limits.admit("r2", &both, 100).await.unwrap_err();
    assert_eq!(
        (over.scope, over.label.as_str(), over.limit),
        ("key_model", "ci/gpt", RPM)
    );
    // The refusal's standing: nothing taken from the key's own scope either.
    assert_eq!(over.standing[0].requests.unwrap().remaining, 99);
    about(over.standing[0].tokens.unwrap().remaining, 9_900, 400);
    // The key alone: 98 left after this one, one parallel slot of five in use besides it.
    let alone = limits.admit("r3", std::slice::from_ref(&own), 100).await.unwrap();
    assert_eq!(alone.standing()[0].requests.unwrap().remaining, 98);
    about(alone.standing()[0].tokens.unwrap().remaining, 9_800, 400);
    assert!(
        alone.standing()[0].tokens.unwrap().remaining < 9_900,
        "the key's own request took its estimate"
    );
    let mut held = vec![first, alone];
    for i in 0..3 {
        held.push(
            limits
                .admit(&format!("r{}", 4 + i), std::slice::from_ref(&own), 0)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        limits
            .admit("r9", std::slice::from_ref(&own), 0)
            .await
            .unwrap_err()
            .limit,
        PARALLEL
    );
    // Another model of the same key is its own counter.
    let other = LimitScope {
        entity: "0123abcd/claude".into(),
        ..per_model
    };
    assert!(limits.admit("r10", &[other], 0).await.is_ok());
    drop(held);
    flush(&p).await;
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis),
    ignore = "needs Redis: set TOLLGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/)"
)]
async fn a_parallel_slot_is_released_when_the_permit_is_dropped() {
    let p = prefix("release");
    let (a, b) = (instance(&p), instance(&p));
    let k = [key(None, None, Some(1))];
    let held = a.admit("r1", &k, 0).await.unwrap();
    assert_eq!(b.admit("r2", &k, 0).await.unwrap_err().limit, PARALLEL);
    drop(held);
    eventually(
        "the slot to come back on the other instance",
        Duration::from_secs(2),
        || async { b.admit("r3", &k, 0).await.is_ok() },
    )
    .await;
    flush(&p).await;
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis),
    ignore = "needs Redis: set TOLLGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/)"
)]
async fn a_running_request_keeps_its_lease_and_a_crashed_instances_lease_expires() {
    let p = prefix("lease");
    let lease = Duration::from_millis(600);
    let k = [key(None, None, Some(1))];
    let other = RateLimits::redis(&redis_url(), &RedisGuard::default(), &p, lease).unwrap();
    // A request running for several leases keeps its slot: the instance renews it.
    let running = RateLimits::redis(&redis_url(), &RedisGuard::default(), &p, lease).unwrap();
    let held = running.admit("long", &k, 0).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(lease / 2).await;
        assert_eq!(
            other.admit("probe", &k, 0).await.unwrap_err().limit,
            PARALLEL,
            "a renewed lease holds"
        );
    }
    drop(held);
    eventually("the released slot", Duration::from_secs(2), || async {
        other.admit("after", &k, 0).await.is_ok()
    })
    .await;
    // Wait for "after" to be released too (its permit was dropped at once).
    eventually("the probe's slot", Duration::from_secs(2), || async {
        other.admit("again", &k, 0).await.is_ok()
    })
    .await;

    // An instance that dies holding a slot: it neither releases nor renews it.
    let crashed = RateLimits::redis(&redis_url(), &RedisGuard::default(), &p, lease).unwrap();
    eventually("a slot for the doomed instance", Duration::from_secs(2), || async {
        match crashed.admit("orphan", &k, 0).await {
            Ok(permit) => {
                std::mem::forget(permit);
                true
            }
            Err(_) => false,
        }
    })
    .await;
    drop(crashed);
    assert_eq!(other.admit("blocked", &k, 0).await.unwrap_err().limit, PARALLEL);
    let orphaned = std::time::Instant::now();
    eventually("the orphaned lease to expire", Duration::from_secs(3), || async {
        other.admit("reclaimed", &k, 0).await.is_ok()
    })
    .await;
    assert!(orphaned.elapsed() >= lease / 2, "reclaimed only once the lease ran out");
    flush(&p).await;
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis),
    ignore = "needs Redis: set TOLLGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/)"
)]
async fn tpm_counts_the_estimate_then_the_real_usage_and_never_trips_below_its_value() {
    let p = prefix("tpm");
    let (a, b) = (instance(&p), instance(&p));
    let k = [key(None, Some(1000), None)];
    // Large prompts in a burst: each takes its estimate, so the third cannot pass a window
    // the first two already fill.
    let first = a.admit("r1", &k, 600).await.unwrap();
    let second = b.admit("r2", &k, 600).await.unwrap();
    assert_eq!(a.admit("r3", &k, 600).await.unwrap_err().limit, TPM);
    // They used 100 tokens each: corrected when they end.
    for permit in [&first, &second] {
        permit.used_tokens(60, 40);
    }
    drop((first, second));
    eventually("the estimates to be corrected", Duration::from_secs(2), || async {
        match a.admit("peek", &k, 0).await {
            Ok(permit) => (800..=840).contains(&permit.standing()[0].tokens.unwrap().remaining),
            Err(_) => false,
        }
    })
    .await;
    // Fill up to exactly 1,000 tokens: still admitted at the value, refused only past it.
    for i in 0..8 {
        let permit = b.admit(&format!("fill-{i}"), &k, 0).await.unwrap();
        permit.used_tokens(100, 0);
    }
    eventually("the window at its value", Duration::from_secs(2), || async {
        match a.admit("at", &k, 0).await {
            Ok(permit) => permit.standing()[0].tokens.unwrap().remaining <= 40,
            Err(_) => false,
        }
    })
    .await;
    let last = a.admit("over", &k, 0).await.unwrap();
    last.used_tokens(50, 0);
    drop(last);
    eventually("the window over its value", Duration::from_secs(2), || async {
        matches!(b.admit("refused", &k, 0).await, Err(e) if e.limit == TPM && e.value == 1000)
    })
    .await;
    // The counters carry TTLs: an idle scope's keys vanish on their own.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{p}:key:0123abcd:tpm"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 70_000, "PTTL {ttl}");
    flush(&p).await;
}

/// A Redis that does not answer: requests are counted in this process (and still limited),
/// never refused or delayed for long because of the outage.
#[tokio::test]
async fn an_unreachable_redis_falls_back_to_counting_in_this_process() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let limits = RateLimits::redis(
        &format!("redis://127.0.0.1:{closed}/"),
        &RedisGuard::default(),
        "tollgate:test:down",
        DEFAULT_LEASE,
    )
    .unwrap();
    assert_eq!(limits.backend(), "redis");
    let k = [key(Some(3), None, None)];
    let started = std::time::Instant::now();
    for i in 0..3 {
        limits.admit(&format!("r{i}"), &k, 0).await.unwrap();
    }
    let over = limits.admit("r4", &k, 0).await.unwrap_err();
    assert_eq!((over.limit, over.shared), (RPM, false));
    assert_eq!(limits.fallbacks(), 4);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

fn config(mock: SocketAddr, extra: &str) -> String {
    format!(
        "model_list:
  - model_name: cheap
    litellm_params:
      model: openai/cheap
      api_base: http://{mock}/v1
      api_key: k
  - model_name: dear
    litellm_params:
      model: openai/dear
      api_base: http://{mock}/v1
      api_key: k
general_settings:
  master_key: {KEY}
{extra}"
    )
}

async fn new_key(gw: &common::Gw, body: Value) -> String {
    let r = gw.post("/key/generate", body).await;
    assert_eq!(r.status().as_u16(), 200);
    r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string()
}

async fn chat(gw: &common::Gw, key: &str, model: &str) -> reqwest::Response {
    gw.http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap()
}

/// Per process without Redis (readiness says so); a key's `model_rpm_limit` limits that model
/// only, and every answer carries LiteLLM's per-scope headers and OpenAI's for the tightest.
#[tokio::test]
async fn a_model_limit_on_a_key_limits_that_model_only_and_headers_show_each_scope() {
    let mock = start_mock(&[]).await;
    let gw = gateway(&config(mock, "")).await;
    assert_eq!(gw.readiness().await["rate_limits"], "local");
    let raw = new_key(
        &gw,
        json!({"key_alias": "per-model", "rpm_limit": 10, "tpm_limit": 100000, "model_rpm_limit": {"dear": 2}}),
    )
    .await;
    for left in [1, 0] {
        let r = chat(&gw, &raw, "dear").await;
        assert_eq!(r.status().as_u16(), 200);
        let h = r.headers();
        assert_eq!(
            h["x-ratelimit-model_per_key-remaining-requests"],
            left.to_string().as_str()
        );
        assert_eq!(h["x-ratelimit-model_per_key-limit-requests"], "2");
        assert_eq!(h["x-ratelimit-key-limit-requests"], "10");
        assert_eq!(h["x-ratelimit-key-limit-tokens"], "100000");
        // OpenAI's headers follow the tightest scope: the model's.
        assert_eq!(h["x-ratelimit-limit-requests"], "2");
        assert_eq!(h["x-ratelimit-remaining-requests"], left.to_string().as_str());
        assert!(h.contains_key("x-ratelimit-reset-requests"));
        assert_eq!(h["x-ratelimit-limit-tokens"], "100000");
        assert!(h.contains_key("x-ratelimit-remaining-tokens"));
    }
    let r = chat(&gw, &raw, "dear").await;
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["x-ratelimit-model_per_key-remaining-requests"], "0");
    assert_eq!(r.headers()["x-ratelimit-key-remaining-requests"], "8");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rpm_limit");
    assert_eq!(v["error"]["scope"], "key_model");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("per-model/dear") && msg.contains("model_rpm_limit of 2"),
        "{msg}"
    );
    assert!(!msg.contains(&raw), "{msg}");
    // The other model is limited by the key's own rpm only.
    for _ in 0..3 {
        let r = chat(&gw, &raw, "cheap").await;
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()
                .get("x-ratelimit-model_per_key-remaining-requests")
                .is_none()
        );
    }
    gw.records().await;
}

/// A gateway whose config names a Redis counts there (another instance sees its counts) and
/// says so in readiness.
#[tokio::test]
#[cfg_attr(
    not(tollgate_redis),
    ignore = "needs Redis: set TOLLGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/)"
)]
async fn a_gateway_naming_a_redis_counts_there_and_says_so() {
    let p = prefix("gateway");
    let mock = start_mock(&[]).await;
    let yaml = config(
        mock,
        &format!(
            "router_settings:\n  redis_url: {}\ntollgate_settings:\n  rate_limit_prefix: {p}\n",
            redis_url()
        ),
    );
    let gw = gateway(&yaml).await;
    assert_eq!(gw.readiness().await["rate_limits"], "redis");
    let raw = new_key(&gw, json!({"key_alias": "shared", "rpm_limit": 4})).await;
    for _ in 0..2 {
        assert_eq!(chat(&gw, &raw, "cheap").await.status().as_u16(), 200);
    }
    // Another instance sharing the Redis sees the two requests, and its one counts here.
    let other = instance(&p);
    let own = LimitScope {
        entity: tollgate_gateway::keys::hash_key(&raw),
        ..key(Some(4), None, None)
    };
    let permit = other.admit("elsewhere", &[own], 0).await.unwrap();
    assert_eq!(permit.standing()[0].requests.unwrap().remaining, 1);
    assert_eq!(chat(&gw, &raw, "cheap").await.status().as_u16(), 200);
    let r = chat(&gw, &raw, "cheap").await;
    assert_eq!(r.status().as_u16(), 429);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("key shared is over its rpm_limit of 4"), "{msg}");
    assert!(msg.contains("across gateway instances"), "{msg}");
    let ready = gw.readiness().await;
    assert_eq!(ready["rate_limits_redis"]["state"], "closed", "{ready}");
    assert_eq!(ready["rate_limits_redis"]["counted_locally"], 0, "{ready}");
    gw.records().await;
    flush(&p).await;
}

/// A workflow run counts as one request to the workflow's name, however many steps it runs.
#[tokio::test]
async fn a_workflow_run_counts_as_one_request_to_its_name() {
    let mock = start_mock(&[]).await;
    let yaml = config(
        mock,
        "workflows:\n  duo:\n    steps:\n      - role: planner\n        model: cheap\n      - role: coder\n        model: dear\n",
    );
    let gw = gateway(&yaml).await;
    let raw = new_key(
        &gw,
        json!({"key_alias": "runs", "rpm_limit": 2, "model_rpm_limit": {"duo": 1, "cheap": 1}}),
    )
    .await;
    let r = chat(&gw, &raw, "duo").await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["x-ratelimit-key-remaining-requests"],
        "1",
        "two steps, one request"
    );
    assert_eq!(r.headers()["x-ratelimit-model_per_key-remaining-requests"], "0");
    // The run's `cheap` step did not count against `cheap`'s own limit.
    assert_eq!(chat(&gw, &raw, "cheap").await.status().as_u16(), 200);
    let r = chat(&gw, &raw, "duo").await;
    assert_eq!(r.status().as_u16(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rpm_limit");
    gw.records().await;
}

/// The rate-limit Redis killed, then frozen: requests are still served (and limited) per process
/// without waiting on it, readiness says so, and when Redis is back they count there again.
#[tokio::test]
#[cfg_attr(
    not(tollgate_redis_server),
    ignore = "needs redis-server on PATH (the test starts its own)"
)]
async fn a_rate_limit_redis_outage_counts_per_process_and_never_fails_a_request() {
    let mut redis = RedisProcess::start();
    let port = redis.port;
    let mock = start_mock(&[]).await;
    let yaml = config(
        mock,
        &format!("router_settings:\n  redis_host: 127.0.0.1\n  redis_port: {port}\n"),
    );
    let gw = gateway(&yaml).await;
    let raw = new_key(&gw, json!({"key_alias": "outage", "rpm_limit": 1000})).await;
    assert_eq!(chat(&gw, &raw, "cheap").await.status().as_u16(), 200);
    assert_eq!(gw.readiness().await["rate_limits_redis"]["counted_locally"], 0);

    for outage in ["killed", "frozen"] {
        if outage == "killed" {
            redis.kill();
        } else {
            redis.freeze();
        }
        for _ in 0..6 {
            let started = std::time::Instant::now();
            let r = chat(&gw, &raw, "cheap").await;
            assert_eq!(r.status().as_u16(), 200, "Redis {outage}");
            // At most one operation timeout (250 ms), and none once the circuit is open.
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{outage}: {:?}",
                started.elapsed()
            );
        }
        let ready = gw.readiness().await;
        assert_eq!(ready["status"], "degraded", "{ready}");
        assert_eq!(ready["rate_limits"], "redis");
        assert!(
            ready["rate_limits_redis"]["counted_locally"].as_u64().unwrap() >= 1,
            "{ready}"
        );
        assert_ne!(ready["rate_limits_redis"]["state"], "closed", "{ready}");
        let metrics = gw.get_text("/metrics", false).await;
        assert!(
            metrics.contains("tollgate_dependency_circuit_state{dependency=\"redis_rate_limits\",state=\"open\"} 1")
                || metrics.contains(
                    "tollgate_dependency_circuit_state{dependency=\"redis_rate_limits\",state=\"half_open\"} 1"
                ),
            "{metrics}"
        );
        assert!(
            !metrics.contains("tollgate_rate_limit_local_fallbacks_total 0"),
            "{metrics}"
        );
        if outage == "killed" {
            redis = RedisProcess::start_on(port);
        } else {
            redis.thaw();
        }
        let before = gw.readiness().await["rate_limits_redis"]["counted_locally"]
            .as_u64()
            .unwrap();
        eventually("the circuit to close again", Duration::from_secs(60), || async {
            assert_eq!(chat(&gw, &raw, "cheap").await.status().as_u16(), 200);
            gw.readiness().await["rate_limits_redis"]["state"] == "closed"
        })
        .await;
        // Counted in Redis again: no more local fallbacks.
        let after = gw.readiness().await["rate_limits_redis"]["counted_locally"]
            .as_u64()
            .unwrap();
        assert_eq!(chat(&gw, &raw, "cheap").await.status().as_u16(), 200);
        let later = gw.readiness().await["rate_limits_redis"]["counted_locally"]
            .as_u64()
            .unwrap();
        assert!(after >= before && later == after, "{before} {after} {later}");
    }
    gw.records().await;
}
