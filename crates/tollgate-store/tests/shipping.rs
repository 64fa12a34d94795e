//! Shipping to the shared store: SQLite is the outbox, Postgres gets every record exactly once,
//! an outage costs nothing but a backlog, and retention never deletes what is not shipped.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tollgate_core::Record;
use tollgate_store::test_db::TestDatabase;
use tollgate_store::{
    PostgresStore, PostgresTarget, RecordStore, RecordWriter, SharedStore, StoreConfig, StoreError, TimeRange,
    WriterHandle,
};

fn record(i: u64, start: DateTime<Utc>) -> Record {
    Record {
        request_id: format!("req-{i:06}"),
        trace_id: format!("req-{i:06}"),
        model_group: "coder".into(),
        model: "deepseek/deepseek-v3.2".into(),
        start_time: start,
        end_time: start,
        prompt_tokens: 100 + i,
        completion_tokens: 7,
        cost_usd: Some(1e-6 * i as f64),
        source: "tollgate".into(),
        ..Record::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn start(
    dir: &std::path::Path,
    db: &TestDatabase,
    instance: &str,
    require: bool,
) -> Result<(RecordWriter, WriterHandle), StoreError> {
    let mut config = StoreConfig::local(dir.to_path_buf());
    config.instance_id = Some(instance.to_string());
    config.shared = Some(SharedStore {
        target: PostgresTarget::parse(&db.url, 2).unwrap(),
        require,
    });
    RecordWriter::start(config)
}

fn shared_rows(db: &TestDatabase) -> Vec<(String, Option<String>)> {
    let mut admin = db.admin().unwrap();
    admin
        .query(
            "SELECT request_id, instance_id FROM tollgate_records ORDER BY request_id",
            &[],
        )
        .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        .unwrap_or_default()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pg_db(name: &str) -> TestDatabase {
    TestDatabase::create(name).expect("a Postgres test database (TOLLGATE_TEST_POSTGRES_URL)")
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn every_record_reaches_postgres_once_through_an_outage() {
    let rt = runtime();
    let db = pg_db("ship");
    let dir = tempfile::tempdir().unwrap();
    let (writer, handle) = start(dir.path(), &db, "gw-a:4000", false).unwrap();
    let now = Utc::now();
    for i in 0..500 {
        writer.submit(record(i, now));
    }
    wait_for("the first 500 records in Postgres", Duration::from_secs(20), || {
        writer
            .status()
            .shared
            .is_some_and(|s| s.backlog == 0 && s.shipped >= 500)
    });
    assert_eq!(shared_rows(&db).len(), 500);

    // Postgres goes away: the writer keeps accepting and committing locally, the backlog grows
    // and the status says why.
    db.block().unwrap();
    for i in 500..1500 {
        writer.submit(record(i, now));
    }
    wait_for("every record committed locally", Duration::from_secs(20), || {
        writer.status().written == 1500
    });
    wait_for("the outage to show", Duration::from_secs(20), || {
        let s = writer.status();
        s.shared
            .as_ref()
            .is_some_and(|sh| sh.backlog > 0 && sh.last_error.is_some() && !sh.connected)
    });
    let status = writer.status();
    let problem = status.problem().expect("degraded while the shared store is away");
    assert!(problem.contains("records wait in SQLite"), "{problem}");
    assert_eq!(status.written, 1500, "no record waits on Postgres to be kept");
    assert_eq!(status.failed + status.dropped, 0);

    // Back: the backlog drains, nothing twice, nothing missing, each with its instance id.
    db.unblock().unwrap();
    wait_for("the backlog to drain", Duration::from_secs(30), || {
        writer
            .status()
            .shared
            .is_some_and(|s| s.backlog == 0 && s.last_error.is_none())
    });
    let rows = shared_rows(&db);
    assert_eq!(rows.len(), 1500);
    for (i, (id, instance)) in rows.iter().enumerate() {
        assert_eq!(id, &format!("req-{i:06}"));
        assert_eq!(instance.as_deref(), Some("gw-a:4000"));
    }
    assert!(writer.status().problem().is_none());
    rt.block_on(handle.shutdown()).unwrap();

    // The shipped records read back equal to the local ones (the JSON carries the instance id).
    let target = PostgresTarget::parse(&db.url, 1).unwrap();
    let mut shared = PostgresStore::open(&target).unwrap();
    let mut local = tollgate_store::SqliteStore::open(dir.path()).unwrap();
    let mut a = Vec::new();
    let mut b = Vec::new();
    shared
        .read(TimeRange::default(), &mut |r| {
            a.push(r);
            true
        })
        .unwrap();
    local
        .read(TimeRange::default(), &mut |r| {
            b.push(r);
            true
        })
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a[0].instance_id.as_deref(), Some("gw-a:4000"));
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn two_instances_share_one_table_and_a_restart_does_not_resend() {
    let rt = runtime();
    let db = pg_db("two");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (wa, ha) = start(dir_a.path(), &db, "a", false).unwrap();
    let (wb, hb) = start(dir_b.path(), &db, "b", false).unwrap();
    let now = Utc::now();
    for i in 0..300u64 {
        if i.is_multiple_of(2) {
            wa.submit(record(i, now))
        } else {
            wb.submit(record(i, now))
        };
    }
    rt.block_on(ha.shutdown()).unwrap();
    rt.block_on(hb.shutdown()).unwrap();
    let rows = shared_rows(&db);
    assert_eq!(rows.len(), 300, "shutdown ships what is left");
    for (id, instance) in &rows {
        let i: u64 = id.trim_start_matches("req-").parse().unwrap();
        assert_eq!(instance.as_deref(), Some(if i.is_multiple_of(2) { "a" } else { "b" }));
    }
    // A restart starts from the cursor: nothing is sent twice (and nothing would be stored twice).
    let (wa, ha) = start(dir_a.path(), &db, "a", false).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(wa.status().shared.map(|s| (s.backlog, s.shipped)), Some((0, 0)));
    rt.block_on(ha.shutdown()).unwrap();
    assert_eq!(shared_rows(&db).len(), 300);
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn startup_without_postgres_serves_unless_it_is_required() {
    let rt = runtime();
    let db = pg_db("down");
    db.block().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path(), &db, "x", true)
        .err()
        .expect("require_database refuses to start");
    let msg = e.to_string();
    assert!(msg.contains("require_database") && msg.contains(&db.name), "{msg}");

    let (writer, handle) = start(dir.path(), &db, "x", false).unwrap();
    // Degraded from the start, before any record waits.
    let shared = writer.status().shared.unwrap();
    assert!(!shared.connected && shared.last_error.is_some(), "{shared:?}");
    assert!(writer.status().problem().is_some());
    // Back without traffic: the shipper's probe notices, so readiness recovers by itself.
    db.unblock().unwrap();
    wait_for("the probe to reconnect", Duration::from_secs(30), || {
        writer
            .status()
            .shared
            .is_some_and(|s| s.connected && s.last_error.is_none())
    });
    db.block().unwrap();
    writer.submit(record(1, Utc::now()));
    // Counted at once, queued or committed: readiness never says "nothing to ship" while a
    // record is on its way (a test, or a deploy script, may stop a gateway on that answer).
    assert_eq!(writer.status().shared.unwrap().backlog, 1);
    wait_for("the backlog to show", Duration::from_secs(20), || {
        writer
            .status()
            .shared
            .is_some_and(|s| s.backlog == 1 && s.last_error.is_some())
    });
    db.unblock().unwrap();
    wait_for("the record to arrive", Duration::from_secs(30), || {
        shared_rows(&db).len() == 1
    });
    rt.block_on(handle.shutdown()).unwrap();
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn retention_prunes_both_stores_but_never_an_unshipped_record() {
    let rt = runtime();
    let db = pg_db("retention");
    let dir = tempfile::tempdir().unwrap();
    let target = PostgresTarget::parse(&db.url, 1).unwrap();
    let old = Utc::now() - chrono::Duration::days(40);
    let (writer, handle) = start(dir.path(), &db, "r", false).unwrap();
    for i in 0..10 {
        writer.submit(record(i, old));
    }
    for i in 10..15 {
        writer.submit(record(i, Utc::now()));
    }
    rt.block_on(handle.shutdown()).unwrap();
    assert_eq!(shared_rows(&db).len(), 15);

    // Five more old records, committed locally while Postgres is away: not shipped yet.
    db.block().unwrap();
    let (writer, handle) = start(dir.path(), &db, "r", false).unwrap();
    for i in 15..20 {
        writer.submit(record(i, old));
    }
    wait_for("the local commit", Duration::from_secs(10), || {
        writer.status().written == 5
    });
    rt.block_on(handle.shutdown()).unwrap();
    db.unblock().unwrap();

    let cutoff = Utc::now() - chrono::Duration::days(30);
    let pruned =
        tollgate_store::prune_once(&dir.path().join(tollgate_store::DB_FILE_NAME), Some(&target), cutoff).unwrap();
    assert_eq!(pruned.shared, Some(10), "the ten old shipped ones");
    assert_eq!(pruned.local, 10, "the unshipped old ones stay");
    let mut local = tollgate_store::SqliteStore::open(dir.path()).unwrap();
    let mut ids = Vec::new();
    local
        .read(TimeRange::default(), &mut |r| {
            ids.push(r.request_id);
            true
        })
        .unwrap();
    assert_eq!(ids.len(), 10);
    assert!(ids.contains(&"req-000015".to_string()));
    assert_eq!(shared_rows(&db).len(), 5);
}

/// The last owner of a pool may be a tokio task (the gateway's shared state, cancelled at
/// shutdown): dropping it there must not panic (the blocking client's own drop would, and a panic
/// in a destructor aborts the process).
#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn a_pool_with_open_connections_can_be_dropped_on_an_async_worker() {
    let db = pg_db("pooldrop");
    let pool = PostgresTarget::parse(&db.url, 2).unwrap().pool();
    {
        let mut c = pool.get().unwrap();
        c.simple_query("SELECT 1").unwrap();
    } // back in the pool, open
    let rt = runtime();
    rt.block_on(async move {
        tokio::spawn(async move { drop(pool) }).await.unwrap();
    });
    // The connection is closed on its own thread, shortly.
    let mut admin = db.admin().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = admin
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", &[&db.name])
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} connections still open");
        std::thread::sleep(Duration::from_millis(50));
    }
}
