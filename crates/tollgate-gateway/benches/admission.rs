//! What a virtual key costs on the request path, per request, against the master key: the
//! pieces the authenticate and admit stages add (hash the presented key, find it in the cache,
//! take and give back its rpm/tpm/parallel units). The store is not on this path once a key is
//! cached (a miss costs one indexed SELECT, once a second per key).
//!
//! `cargo bench -p tollgate-gateway --bench admission`; under `cargo test` each runs once.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_gateway::key_limits::KeyLimits;
use tollgate_gateway::keys::{Keys, hash_key};
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
    let limits = Arc::new(KeyLimits::default());
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    // Cached, as every request but the first in a second is.
    rt.block_on(keys.lookup(&hash_key(RAW))).expect("lookup");

    let mut group = c.benchmark_group("admission");
    group.bench_function("master_key", |b| {
        b.iter(|| tollgate_gateway::edge::constant_time_eq(std::hint::black_box(MASTER).as_bytes(), MASTER.as_bytes()))
    });
    group.bench_function("virtual_key_with_limits", |b| {
        b.iter(|| {
            let token = hash_key(std::hint::black_box(RAW));
            let key = rt.block_on(keys.lookup(&token)).expect("lookup").expect("known key");
            let slot = limits
                .admit(&key.token, key.rpm_limit, key.tpm_limit, key.max_parallel_requests)
                .expect("admitted");
            slot.used_tokens(300);
            drop(slot);
        })
    });
    group.finish();
}

criterion_group!(benches, admission);
criterion_main!(benches);
