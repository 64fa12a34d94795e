//! What `record_durability: sync` costs: records per second and per-record latency of the
//! record writer, `buffered` against `sync`, at several numbers of concurrent submitters.
//!
//! Each benchmark starts one writer on SQLite (WAL) plus JSONL in a temp dir (on the disk
//! `TMPDIR` names, so fsync costs are that disk's). An iteration is one record; a run of `n`
//! iterations is spread over `c` tasks and timed until every record is stored:
//! - `buffered/c`: each task submits its share without waiting; the time ends when the writer has
//!   stored them all (throughput of the batched, lingering writer),
//! - `sync/c`: each task submits one record and waits for its commit, then the next; many waiting
//!   tasks share one commit (group commit). Per-record latency ≈ time per element × c.
//!
//! `cargo bench -p tollgate-store --bench durability`; under `cargo test` every benchmark runs
//! once as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_core::Record;
use tollgate_store::{RecordDurability, RecordWriter, StoreConfig, WriterHandle};

const CONCURRENCY: &[usize] = &[1, 8, 64];

fn record(i: u64) -> Record {
    Record {
        request_id: format!("req-{i}"),
        trace_id: format!("trace-{i}"),
        model_group: "deepseek-v3.2".into(),
        model: "deepseek/deepseek-v3.2".into(),
        provider: "deepseek".into(),
        prompt_tokens: 1_200,
        completion_tokens: 240,
        cached_tokens: 1_024,
        cost_usd: Some(0.000_42),
        latency_ms: 812.5,
        source: "tollgate".into(),
        ..Record::default()
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    writer: RecordWriter,
    handle: Option<WriterHandle>,
}

fn start(rt: &tokio::runtime::Runtime, durability: RecordDurability) -> Bench {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StoreConfig {
        data_dir: dir.path().join("data"),
        jsonl: Some(dir.path().join("records.jsonl")),
        // Large enough that the buffered runs never drop (which would flatter them).
        capacity: 1 << 20,
        durability,
        instance_id: None,
        shared: None,
        retention_days: None,
    };
    let _guard = rt.enter();
    let (writer, handle) = RecordWriter::start(config).expect("writer");
    Bench {
        _dir: dir,
        writer,
        handle: Some(handle),
    }
}

/// Submits `n` records from `c` tasks and returns the time until all are stored.
async fn run(writer: &RecordWriter, durability: RecordDurability, n: u64, c: usize) -> Duration {
    let target = writer.written() + n;
    let started = Instant::now();
    let per_task = n.div_ceil(c as u64);
    let writer = Arc::new(writer.clone());
    let tasks: Vec<_> = (0..c as u64)
        .map(|t| {
            let writer = Arc::clone(&writer);
            let first = t * per_task;
            let last = (first + per_task).min(n);
            tokio::spawn(async move {
                for i in first..last {
                    let commit = writer.submit(record(i));
                    if durability == RecordDurability::Sync {
                        commit.wait().await.expect("committed");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    // Sync runs are stored by now; buffered ones when the writer has caught up.
    while writer.written() < target {
        // Sleep, not spin: a spinning poller would take CPU from the writer thread it measures.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(writer.dropped(), 0, "the queue must not drop in a benchmark");
    started.elapsed()
}

fn durability(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("durability");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    for mode in [RecordDurability::Buffered, RecordDurability::Sync] {
        for &conc in CONCURRENCY {
            let mut bench = start(&rt, mode);
            group.bench_function(format!("{}/{conc}", mode.as_str()), |b| {
                b.iter_custom(|iters| rt.block_on(run(&bench.writer, mode, iters, conc)));
            });
            if let Some(handle) = bench.handle.take() {
                let summary = rt.block_on(handle.shutdown()).expect("shutdown");
                assert_eq!(summary.failed, 0);
            }
        }
    }
    group.finish();
}

criterion_group!(benches, durability);
criterion_main!(benches);
