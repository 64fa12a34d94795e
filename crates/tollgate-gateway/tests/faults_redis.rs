//! Redis as a dependency the gateway can live without: a killed, a frozen (SIGSTOP) and a hung
//! Redis (a listener that accepts and never answers) open the circuit after a few failed
//! operations; while it is open, requests make no Redis round trip at all (counted as skipped
//! operations in `/metrics`), readiness says `degraded`, and every request is still served. When
//! Redis is back, one probe closes the circuit and cache hits resume.
//!
//! Nothing here measures time: the bound on Redis round trips is read from the gateway's own
//! operation counters, and every wait is a poll with a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::redis::RedisProcess;
use common::{Gw, KEY, gateway};

/// Consecutive failures that open the circuit in these tests (the default, written out).
const THRESHOLD: u64 = 3;

fn config(mock: SocketAddr, redis_port: u16, guard: &str) -> String {
    format!(
        r#"model_list:
  - model_name: deepseek-v3.2
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: http://{mock}/v1
      api_key: k
litellm_settings:
  cache: true
  cache_params: {{type: redis, host: 127.0.0.1, port: {redis_port}, ttl: 600}}
general_settings:
  master_key: {KEY}
tollgate_settings:
  redis: {{failure_threshold: {THRESHOLD}, {guard}}}
"#
    )
}

fn chat(content: &str) -> Value {
    json!({"model": "deepseek-v3.2", "messages": [{"role": "user", "content": content}]})
}

/// Redis operations as `/metrics` counts them.
#[derive(Debug, Clone, Copy, Default)]
struct Ops {
    attempted: u64,
    failed: u64,
    skipped: u64,
}

impl Gw {
    /// Sends a chat request; asserts it was served (the cache never turns into an error) and
    /// returns its `x-tollgate-cache` state.
    async fn cache_state(&self, body: &Value) -> String {
        let r = self.chat(body.clone()).await;
        assert_eq!(r.status(), 200, "a Redis outage must never fail a request");
        r.headers()["x-tollgate-cache"].to_str().unwrap().to_string()
    }

    async fn metrics_text(&self) -> String {
        self.get_text("/metrics", false).await
    }

    async fn redis_ops(&self) -> Ops {
        let text = self.metrics_text().await;
        let count = |result: &str| -> u64 {
            let line = text
                .lines()
                .find(|l| {
                    l.starts_with("tollgate_dependency_operations_total{")
                        && l.contains(r#"dependency="redis""#)
                        && l.contains(&format!(r#"result="{result}""#))
                })
                .unwrap_or_else(|| panic!("no Redis {result} counter in /metrics:\n{text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        Ops {
            attempted: count("attempted"),
            failed: count("failed"),
            skipped: count("skipped"),
        }
    }

    async fn circuit_state_metric(&self) -> String {
        let text = self.metrics_text().await;
        text.lines()
            .find(|l| {
                l.starts_with("tollgate_dependency_circuit_state{")
                    && l.contains(r#"dependency="redis""#)
                    && l.ends_with(" 1")
            })
            .and_then(|l| l.split(r#"state=""#).nth(1))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no Redis circuit state in /metrics:\n{text}"))
            .to_string()
    }

    /// Polls readiness until `pred` holds, with a deadline; returns the last readiness.
    async fn readiness_until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.readiness().await;
            if pred(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "never {what}: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `body` until it is answered from the cache, with a deadline. The store after a miss
    /// runs off the request path, so the first repeats may miss.
    async fn until_hit(&self, body: &Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.cache_state(body).await;
            if state == "hit" {
                return;
            }
            assert!(Instant::now() < deadline, "never a cache hit (last: {state})");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends requests while Redis is unreachable and checks what the circuit did: it opened
    /// after `THRESHOLD` failures, and later operations were skipped without a round trip.
    async fn serve_through_outage(&self, n: u64, expected_error: &str) {
        let before = self.redis_ops().await;
        for i in 0..n {
            // Each request is a lookup and (after the answer) a store: two Redis operations.
            assert_eq!(
                self.cache_state(&chat(&format!("during the outage {i}"))).await,
                "bypass"
            );
        }
        // The stores run off the request path; wait until all 2n operations are accounted for.
        let deadline = Instant::now() + Duration::from_secs(30);
        let during = loop {
            let now = self.redis_ops().await;
            let done = (now.attempted + now.skipped) - (before.attempted + before.skipped);
            if done >= 2 * n {
                break now;
            }
            assert!(Instant::now() < deadline, "operations never accounted for: {now:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let ready = self.readiness().await;
        let circuit = &ready["cache"]["redis"];
        let probes = circuit["probes"].as_u64().unwrap();
        let attempted = during.attempted - before.attempted;
        // Round trips: the THRESHOLD that opened the circuit, at most one more that was already
        // under way when it opened, and one probe per back-off period.
        assert!(
            attempted <= THRESHOLD + 1 + probes,
            "{attempted} Redis round trips for {n} requests ({probes} probes): the circuit did not stop them; {during:?}"
        );
        // (An operation admitted before `before` may fail inside the window, hence >=.)
        assert!(
            during.failed - before.failed >= attempted,
            "no round trip succeeded during the outage: {before:?} → {during:?}"
        );
        assert!(
            during.skipped - before.skipped >= 2 * n - attempted,
            "the rest were skipped: {during:?}"
        );
        assert_eq!(ready["status"], "degraded", "{ready}");
        assert_eq!(ready["cache"]["healthy"], false);
        let state = circuit["state"].as_str().unwrap();
        assert!(state == "open" || state == "half_open", "{ready}");
        assert!(
            circuit["consecutive_failures"].as_u64().unwrap() >= THRESHOLD,
            "{ready}"
        );
        assert!(circuit["since"].as_str().unwrap().ends_with('Z'), "{ready}");
        let error = ready["cache"]["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains(expected_error),
            "last_error {error:?} should mention {expected_error:?}"
        );
        assert!(["open", "half_open"].contains(&self.circuit_state_metric().await.as_str()));
    }

    /// After Redis is back: the circuit closes (after its back-off), hits resume, readiness is
    /// healthy again.
    async fn recovers(&self) {
        let mut i = 0;
        // Readiness alone never probes: requests do. Keep sending until it closes.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let _ = self.cache_state(&chat(&format!("after the outage {i}"))).await;
            i += 1;
            let r = self.readiness().await;
            if r["cache"]["redis"]["state"] == "closed" && r["cache"]["healthy"] == true {
                assert_eq!(r["status"], "healthy", "{r}");
                break;
            }
            assert!(Instant::now() < deadline, "the circuit never closed: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.circuit_state_metric().await, "closed");
        let body = chat("cached again after the outage");
        assert_eq!(self.cache_state(&body).await, "miss");
        self.until_hit(&body).await;
    }
}

/// Waits until the gateway has talked to Redis successfully and a stored answer is a hit.
async fn prove_cache_works(g: &Gw) {
    g.readiness_until("connected to Redis", |r| r["cache"]["redis"]["connected"] == true)
        .await;
    let body = chat("before the outage");
    g.cache_state(&body).await;
    g.until_hit(&body).await;
    assert_eq!(g.readiness().await["cache"]["redis"]["state"], "closed");
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis_server),
    ignore = "needs redis-server on PATH (the test starts its own)"
)]
async fn a_killed_redis_opens_the_circuit_and_a_restarted_one_closes_it() {
    let mut redis = RedisProcess::start();
    let port = redis.port;
    let mock = common::start_mock(&[]).await;
    let g = gateway(&config(mock, port, "retry_after: 0.2, max_retry_after: 1")).await;
    prove_cache_works(&g).await;

    redis.kill();
    g.serve_through_outage(30, "").await;

    let _redis = RedisProcess::start_on(port);
    g.recovers().await;
    g.records().await;
}

#[tokio::test]
#[cfg_attr(
    not(tollgate_redis_server),
    ignore = "needs redis-server on PATH (the test starts its own)"
)]
async fn a_frozen_redis_opens_the_circuit_by_timeout_and_closes_it_when_thawed() {
    let redis = RedisProcess::start();
    let mock = common::start_mock(&[]).await;
    let g = gateway(&config(
        mock,
        redis.port,
        "retry_after: 0.2, max_retry_after: 1, operation_timeout: 0.1",
    ))
    .await;
    prove_cache_works(&g).await;

    // The process keeps its port and its connections, and answers nothing: only the
    // per-operation timeout can tell.
    redis.freeze();
    g.serve_through_outage(30, "timed out").await;

    redis.thaw();
    g.recovers().await;
    g.records().await;
}

/// A "Redis" that accepts connections and never says a word. Needs no redis-server, so it
/// always runs.
#[tokio::test]
async fn a_hung_redis_that_never_answers_opens_the_circuit_by_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Kept open, never read or written.
            held.push(socket);
        }
    });
    let mock = common::start_mock(&[]).await;
    let g = gateway(&config(
        mock,
        port,
        "retry_after: 0.2, max_retry_after: 1, operation_timeout: 0.1",
    ))
    .await;
    g.serve_through_outage(30, "timed out").await;
    // Each round trip after a failure starts on a fresh connection (the old one is dropped), so
    // connections are bounded by round trips too.
    let ops = g.redis_ops().await;
    let connections = accepted.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        connections <= ops.attempted,
        "{connections} connections for {} round trips",
        ops.attempted
    );
    g.records().await;
}
