//! What a virtual key costs on the request path, per request, against the master key: the
//! pieces the authenticate and limits stages add (hash the presented key, find it in the cache,
//! take and give back its rpm/tpm/parallel units). The store is not on this path once a key is
//! cached (a miss costs one indexed SELECT, once a second per key).
//!
//! With `TOLLGATE_TEST_REDIS_URL` set, the same limits counted in Redis: one admission (one
//! EVALSHA round trip) and its release (another, spawned when the permit is dropped, run by the
//! same single-threaded runtime during the next iterations, so the mean includes it). Skipped,
//! with a note, without Redis.
//!
//! `cargo bench -p tollgate-gateway --bench admission`; under `cargo test` each runs once.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_core::config::RedisGuard;
use tollgate_gateway::keys::{Keys, hash_key};
use tollgate_gateway::pipeline::authenticate::Caller;
use tollgate_gateway::pipeline::limit_scopes::scopes;
use tollgate_gateway::rate_limits::{DEFAULT_LEASE, RateLimits};
use tollgate_store::{KeyRow, KeyStore, SqliteKeys};

const MASTER: &str = "sk-bench-master-0123456789abcdef0123";
const RAW: &str = "sk-Abcdefghijklmnopqrstuv";

fn admission(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteKeys::open(dir.path()).expect("key store");
    store
        .create(&KeyRow {
            token: hash_key(RAW),
            key_name: "sk-...stuv".into(),
            // Limits so high the bench never reaches them, so every iteration takes the admit path.
            rpm_limit: Some(u64::MAX / 4),
            tpm_limit: Some(u64::MAX / 4),
            max_parallel_requests: Some(1_000_000),
            ..KeyRow::default()
        })
        .expect("key");
    let keys = Keys::new(Arc::new(store), "bench".into());
    let local = RateLimits::local();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Cached, as every request but the first in a second is.
    rt.block_on(keys.lookup(&hash_key(RAW))).expect("lookup");

    let mut group = c.benchmark_group("admission");
    group.bench_function("master_key", |b| {
        b.iter(|| tollgate_gateway::edge::constant_time_eq(std::hint::black_box(MASTER).as_bytes(), MASTER.as_bytes()))
    });
    let admit_once = |limits: &RateLimits| {
        let token = hash_key(std::hint::black_box(RAW));
        let key = rt.block_on(keys.lookup(&token)).expect("lookup").expect("known key");
        let caller = Caller {
            key_alias: Some(key.key_name.clone()),
            key: Some(key),
            ..Caller::default()
        };
        let s = scopes(&caller, "m", None);
        let permit = rt.block_on(limits.admit("bench", &s, 75)).expect("admitted");
        permit.used_tokens(250, 50);
        drop(permit);
    };
    group.bench_function("virtual_key_with_limits", |b| b.iter(|| admit_once(&local)));
    match std::env::var("TOLLGATE_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            let prefix = format!("tollgate:bench:{}", std::process::id());
            let shared = rt.block_on(async {
                RateLimits::redis(&url, &RedisGuard::default(), &prefix, DEFAULT_LEASE).expect("Redis URL")
            });
            group.bench_function("virtual_key_with_limits_in_redis", |b| b.iter(|| admit_once(&shared)));
            // Let the last releases finish, then remove what the bench wrote.
            rt.block_on(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(client) = redis::Client::open(url.as_str())
                    && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                {
                    let token = hash_key(RAW);
                    let keys: Vec<String> = ["rpm", "tpm", "par"]
                        .iter()
                        .map(|k| format!("{prefix}:key:{token}:{k}"))
                        .collect();
                    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
                }
            });
        }
        None => eprintln!("admission/virtual_key_with_limits_in_redis: skipped (set TOLLGATE_TEST_REDIS_URL)"),
    }
    group.finish();
}

criterion_group!(benches, admission);
criterion_main!(benches);
