//! How fast the shipper sends records from the SQLite outbox to the shared Postgres: records per
//! second, sustained, over batches of real inserts (fresh request ids, so none is skipped as a
//! duplicate) into a table with its indexes.
//!
//! Each sample commits `n` records to a fresh SQLite outbox (not timed), then starts a writer with
//! the shared store and times until all `n` are in Postgres (the one connect it makes is timed
//! too, so the figure is slightly pessimistic). Postgres is a fresh database on
//! `TOLLGATE_TEST_POSTGRES_URL`, dropped at the end.
//!
//! `TOLLGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p tollgate-store --bench shipping`;
//! under `cargo test` it runs once as a smoke test, and without the variable it says so and skips.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_core::Record;
use tollgate_store::test_db::TestDatabase;
use tollgate_store::{PostgresTarget, RecordStore, RecordWriter, SharedStore, SqliteStore, StoreConfig, StoredRow};

/// Request ids never repeat across samples.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn record(i: u64) -> Record {
    let now = Utc::now();
    Record {
        request_id: format!("bench-{i:012}"),
        trace_id: format!("bench-{i:012}"),
        session_id: Some(format!("session-{}", i % 64)),
        model_group: "deepseek-v3.2".into(),
        model: "deepseek/deepseek-v3.2".into(),
        provider: "deepseek".into(),
        start_time: now,
        end_time: now,
        prompt_tokens: 12_000,
        completion_tokens: 240,
        cached_tokens: 10_240,
        cost_usd: Some(0.000_42),
        cost_input_usd: Some(0.000_2),
        cost_output_usd: Some(0.000_22),
        latency_ms: 812.5,
        overhead_ms: Some(0.21),
        key_alias: Some("ci".into()),
        user_agent: Some("RooCode/3.30".into()),
        prompt_sha256: Some("9f".repeat(32)),
        attempt: Some(1),
        instance_id: Some("bench:4000".into()),
        source: "tollgate".into(),
        ..Record::default()
    }
}

/// Commits `n` new records to a fresh outbox, then times shipping them all.
fn ship(db: &TestDatabase, n: u64) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut outbox = SqliteStore::open(dir.path()).expect("outbox");
        let first = NEXT.fetch_add(n, Ordering::Relaxed);
        let rows: Vec<StoredRow> = (first..first + n)
            .map(|i| StoredRow::from_record(&record(i)).expect("row"))
            .collect();
        for chunk in rows.chunks(10_000) {
            outbox.insert(chunk).expect("insert");
        }
    }
    let mut config = StoreConfig::local(dir.path().to_path_buf());
    config.shared = Some(SharedStore {
        target: PostgresTarget::parse(&db.url, 2).expect("url"),
        require: true,
    });
    let started = Instant::now();
    let (writer, handle) = RecordWriter::start(config).expect("writer");
    while writer.status().shared.is_none_or(|s| s.shipped < n) {
        // Sleep, not spin: a spinning poller would take CPU from the shipper it measures.
        std::thread::sleep(Duration::from_micros(500));
    }
    let elapsed = started.elapsed();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(handle.shutdown()).expect("shutdown");
    elapsed
}

fn shipping(c: &mut Criterion) {
    if std::env::var("TOLLGATE_TEST_POSTGRES_URL").is_err() {
        eprintln!("shipping: skipped (set TOLLGATE_TEST_POSTGRES_URL to a Postgres to ship to)");
        return;
    }
    let db = TestDatabase::create("bench_ship").expect("a Postgres database");
    let mut group = c.benchmark_group("shipping");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("sqlite_to_postgres", |b| b.iter_custom(|iters| ship(&db, iters)));
    group.finish();
}

criterion_group!(benches, shipping);
criterion_main!(benches);
