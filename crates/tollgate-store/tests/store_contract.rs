//! One suite, both stores: every test here runs against SQLite and against Postgres (a fresh
//! database per test on `TOLLGATE_TEST_POSTGRES_URL`), through the `RecordStore` interface.

use chrono::{DateTime, Duration, Utc};
use tollgate_core::{CacheState, Record, RecordStatus};
use tollgate_store::test_db::TestDatabase;
use tollgate_store::{
    PostgresStore, PostgresTarget, RecordCursor, RecordQuery, RecordStore, SqliteStore, StoreError, StoredRow,
    TimeRange,
};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 123_456_000).unwrap()
}

fn record(i: u32, attempt: Option<u32>) -> Record {
    let start = t0() + Duration::minutes(i64::from(i));
    Record {
        request_id: format!("req-{i}"),
        trace_id: format!("trace-{}", i / 2),
        session_id: i.is_multiple_of(2).then(|| format!("s{i}")),
        model_group: "coder".into(),
        model: "deepseek/deepseek-v3.2".into(),
        provider: "deepseek".into(),
        status: if attempt == Some(1) {
            RecordStatus::Failure
        } else {
            RecordStatus::Success
        },
        http_status: 200,
        start_time: start,
        end_time: start + Duration::milliseconds(900),
        latency_ms: 900.25,
        prompt_tokens: 1000 + u64::from(i),
        completion_tokens: 50,
        cost_usd: Some(0.000_123_456_789_012_3 * f64::from(i + 1)),
        key_alias: Some("ci".into()),
        attempt,
        instance_id: Some(format!("host:{}", 4000 + i % 2)),
        source: "tollgate".into(),
        ..Record::default()
    }
}

fn rows(records: &[Record]) -> Vec<StoredRow> {
    records.iter().map(|r| StoredRow::from_record(r).unwrap()).collect()
}

fn read_all(store: &mut dyn RecordStore, range: TimeRange) -> Vec<Record> {
    let mut out = Vec::new();
    store
        .read(range, &mut |r| {
            out.push(r);
            true
        })
        .unwrap();
    out
}

/// The suite, run for each store by the tests below.
fn contract(store: &mut dyn RecordStore) {
    // Fresh store: nothing in it, the schema at this build's version.
    assert!(read_all(store, TimeRange::default()).is_empty(), "{}", store.location());
    assert!(store.schema_version().unwrap() >= 1);

    // Records go in and come back equal, in insertion order, floats bit for bit.
    let mut records: Vec<Record> = (0..10).map(|i| record(i, None)).collect();
    // A retried request: two attempts under one request id are two rows.
    records.push(record(20, Some(1)));
    records.push(Record {
        status: RecordStatus::Success,
        ..record(20, Some(2))
    });
    assert_eq!(store.insert(&rows(&records)).unwrap(), 12);
    assert_eq!(read_all(store, TimeRange::default()), records);

    // Inserting again (a batch shipped twice) adds nothing; a new row in the batch still goes in.
    let mut again = rows(&records[..5]);
    again.extend(rows(&[record(30, None)]));
    assert_eq!(store.insert(&again).unwrap(), 1, "only req-30 is new");
    assert_eq!(read_all(store, TimeRange::default()).len(), 13);

    // Time ranges: since inclusive, until exclusive.
    let range = TimeRange {
        since: Some(t0() + Duration::minutes(3)),
        until: Some(t0() + Duration::minutes(7)),
    };
    let ids: Vec<String> = read_all(store, range).into_iter().map(|r| r.request_id).collect();
    assert_eq!(ids, ["req-3", "req-4", "req-5", "req-6"]);

    // The sink can stop the read.
    let mut seen = 0;
    store
        .read(TimeRange::default(), &mut |_| {
            seen += 1;
            seen < 3
        })
        .unwrap();
    assert_eq!(seen, 3);

    // Retention deletes what started before the cutoff.
    let pruned = store.prune(t0() + Duration::minutes(5)).unwrap();
    assert_eq!(pruned, 5, "req-0 … req-4");
    let left: Vec<String> = read_all(store, TimeRange::default())
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(left.first().map(String::as_str), Some("req-5"));
    assert_eq!(left.len(), 8);
}

/// The log view's query: filters, newest first, keyset pages that neither skip nor repeat.
fn query_contract(store: &mut dyn RecordStore) {
    let mut records: Vec<Record> = (0..9)
        .map(|i| Record {
            key_hash: Some(if i % 3 == 0 { "aaaa" } else { "bbbb" }.into()),
            cache: if i == 4 { CacheState::Hit } else { CacheState::Miss },
            model_group: if i % 2 == 0 { "coder" } else { "writer" }.into(),
            user_id: (i == 5).then(|| "ada".to_string()),
            team_id: (i >= 7).then(|| "core".to_string()),
            ..record(i, None)
        })
        .collect();
    // Two rows at the same instant: the request id and attempt break the tie.
    records.push(Record {
        start_time: records[8].start_time,
        request_id: "req-8b%_".into(),
        ..records[8].clone()
    });
    records.push(record(20, Some(1)));
    store.insert(&rows(&records)).unwrap();
    let ids = |q: &RecordQuery, store: &mut dyn RecordStore| -> Vec<String> {
        let page = store.query(q).unwrap();
        page.records.into_iter().map(|r| r.request_id).collect()
    };

    // Everything, newest first, paged by three without a gap or a repeat.
    let mut q = RecordQuery {
        limit: 3,
        ..RecordQuery::default()
    };
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.query(&q).unwrap();
        pages += 1;
        all.extend(page.records.iter().map(|r| r.request_id.clone()));
        // The cursor survives its URL form.
        match page.next {
            Some(c) => q.after = Some(RecordCursor::parse(&c.token()).unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(
        all,
        [
            "req-20", "req-8b%_", "req-8", "req-7", "req-6", "req-5", "req-4", "req-3", "req-2", "req-1", "req-0"
        ]
    );

    let base = RecordQuery {
        limit: 50,
        ..RecordQuery::default()
    };
    let key = RecordQuery {
        key_hash: Some("aaaa".into()),
        ..base.clone()
    };
    assert_eq!(ids(&key, store), ["req-6", "req-3", "req-0"]);
    let hits = RecordQuery {
        cache: Some(CacheState::Hit),
        ..base.clone()
    };
    assert_eq!(ids(&hits, store), ["req-4"]);
    let writer = RecordQuery {
        model_group: Some("writer".into()),
        key_hash: Some("bbbb".into()),
        ..base.clone()
    };
    assert_eq!(ids(&writer, store), ["req-7", "req-5", "req-1"]);
    let failed = RecordQuery {
        status: Some(RecordStatus::Failure),
        ..base.clone()
    };
    assert_eq!(ids(&failed, store), ["req-20"]);
    // Free text on the request id matches `%` and `_` as themselves.
    let text = RecordQuery {
        request_id: Some("%_".into()),
        ..base.clone()
    };
    assert_eq!(ids(&text, store), ["req-8b%_"]);
    // One trace: `record(i)` puts i and i + 1 (i even) in trace i / 2.
    let trace = RecordQuery {
        trace_id: Some("trace-1".into()),
        ..base.clone()
    };
    assert_eq!(ids(&trace, store), ["req-3", "req-2"]);
    // `record(i)` gives even i the session `s{i}`.
    let session = RecordQuery {
        session_id: Some("s4".into()),
        ..base.clone()
    };
    assert_eq!(ids(&session, store), ["req-4"]);
    let none = RecordQuery {
        workflow: Some("cf-x".into()),
        ..base.clone()
    };
    assert!(ids(&none, store).is_empty());
    let user = RecordQuery {
        user_id: Some("ada".into()),
        ..base.clone()
    };
    assert_eq!(ids(&user, store), ["req-5"]);
    let team = RecordQuery {
        team_id: Some("core".into()),
        ..base.clone()
    };
    assert_eq!(ids(&team, store), ["req-8b%_", "req-8", "req-7"]);
    let range = RecordQuery {
        range: TimeRange {
            since: Some(t0() + Duration::minutes(2)),
            until: Some(t0() + Duration::minutes(4)),
        },
        key_alias: Some("ci".into()),
        ..base
    };
    assert_eq!(ids(&range, store), ["req-3", "req-2"]);
}

#[test]
fn sqlite_store_answers_the_log_query() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    query_contract(&mut store);
}

#[test]
fn the_log_querys_indexes_serve_it_and_a_damaged_row_still_goes_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.insert(&rows(&[record(1, None)])).unwrap();
    drop(store);
    let conn = rusqlite_conn(&dir.path().join(tollgate_store::DB_FILE_NAME));
    // A row with damaged JSON stays insertable (readers count such rows as corrupt).
    conn.execute("INSERT INTO records (request_id, json) VALUES ('bad', '{not json')", [])
        .unwrap();
    // The writer fills the log view's columns, and a key's own view has its index.
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT rowid FROM records WHERE key_hash = 'x' ORDER BY start_time DESC")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(plan.iter().any(|p| p.contains("records_key_hash")), "{plan:?}");
    let filled: (Option<String>, Option<String>) = conn
        .query_row(
            "SELECT key_hash, cache FROM records WHERE request_id != 'bad'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let json: String = conn
        .query_row("SELECT json FROM records WHERE request_id != 'bad'", [], |r| r.get(0))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(filled.0.as_deref(), v["key_hash"].as_str());
    assert_eq!(filled.1.as_deref(), v["cache"].as_str());
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let page = store
        .query(&RecordQuery {
            key_hash: Some("none".into()),
            limit: 10,
            ..RecordQuery::default()
        })
        .unwrap();
    assert!(page.records.is_empty());
    // Without a filter the damaged row is left out, the others listed.
    let page = store
        .query(&RecordQuery {
            limit: 10,
            ..RecordQuery::default()
        })
        .unwrap();
    assert_eq!(page.records.len(), 1);
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn postgres_store_answers_the_log_query() {
    let db = pg_db("log_query");
    let target = PostgresTarget::parse(&db.url, 2).unwrap();
    let mut store = PostgresStore::open(&target).unwrap();
    query_contract(&mut store);
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn postgres_v7_moves_the_log_filters_out_of_the_json_and_backfills_old_rows() {
    let db = pg_db("v7");
    // A database as the build before V7 left it, holding a row shipped then (no such columns).
    db.migrate_to(6).unwrap();
    let old = Record {
        key_hash: Some("aaaa".into()),
        cache: CacheState::Hit,
        user_id: Some("ada".into()),
        team_id: Some("core".into()),
        ..record(1, None)
    };
    let json = serde_json::to_string(&old).unwrap();
    let mut admin = db.admin().unwrap();
    admin
        .execute(
            "INSERT INTO tollgate_records (request_id, attempt, trace_id, start_time, model_group, model, status, json)
             VALUES ($1, 0, $2, $3, 'coder', 'm', 'success', $4::text::json)",
            &[&old.request_id, &old.trace_id, &old.start_time, &json],
        )
        .unwrap();

    // Opening migrates: the old row's columns come from its JSON.
    let target = PostgresTarget::parse(&db.url, 1).unwrap();
    let mut store = PostgresStore::open(&target).unwrap();
    assert_eq!(store.schema_version().unwrap(), 7);
    assert_eq!(tollgate_store::postgres_version(), 7);
    let columns = |admin: &mut postgres::Client, id: &str| -> Vec<Option<String>> {
        let row = admin
            .query_one(
                "SELECT key_hash, cache, user_id, team_id FROM tollgate_records WHERE request_id = $1",
                &[&id],
            )
            .unwrap();
        (0..4).map(|i| row.get(i)).collect()
    };
    let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(columns(&mut admin, "req-1"), some(&["aaaa", "hit", "ada", "core"]));

    // New rows get them from the writer's columns (no JSON parsed); a master-key row has none.
    let new = Record {
        key_hash: Some("bbbb".into()),
        user_id: Some("bo".into()),
        ..record(2, None)
    };
    store.insert(&rows(&[new, record(3, None)])).unwrap();
    assert_eq!(
        columns(&mut admin, "req-2"),
        vec![Some("bbbb".into()), Some("off".into()), Some("bo".into()), None]
    );
    assert_eq!(columns(&mut admin, "req-3"), vec![None, Some("off".into()), None, None]);

    // The filters read the columns, for old and new rows alike.
    let find = |store: &mut PostgresStore, q: RecordQuery| -> Vec<String> {
        let q = RecordQuery { limit: 10, ..q };
        store
            .query(&q)
            .unwrap()
            .records
            .into_iter()
            .map(|r| r.request_id)
            .collect()
    };
    let by_key = RecordQuery {
        key_hash: Some("aaaa".into()),
        ..RecordQuery::default()
    };
    assert_eq!(find(&mut store, by_key), ["req-1"]);
    let by_user = RecordQuery {
        user_id: Some("bo".into()),
        ..RecordQuery::default()
    };
    assert_eq!(find(&mut store, by_user), ["req-2"]);
    let by_team = RecordQuery {
        team_id: Some("core".into()),
        ..RecordQuery::default()
    };
    assert_eq!(find(&mut store, by_team), ["req-1"]);
    let off = RecordQuery {
        cache: Some(CacheState::Off),
        ..RecordQuery::default()
    };
    assert_eq!(find(&mut store, off), ["req-3", "req-2"]);

    // No index parses the JSON any more; the new ones skip rows without the value.
    let indexes: Vec<(String, String)> = admin
        .query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tollgate_records'",
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(indexes.iter().all(|(_, def)| !def.contains("json")), "{indexes:?}");
    for name in ["key_hash", "user", "team", "workflow"] {
        let (_, def) = indexes
            .iter()
            .find(|(n, _)| n == &format!("tollgate_records_{name}"))
            .unwrap_or_else(|| panic!("no index for {name}: {indexes:?}"));
        assert!(def.contains("IS NOT NULL"), "{def}");
    }
    // And a key's own view is served by its index (sequential scans off: the table is tiny). An
    // index built over the backfill's HOT chains serves only transactions newer than any running
    // when it was built (`indcheckxmin`), and tests run beside this one: it may take a moment.
    admin.batch_execute("SET enable_seqscan = off").unwrap();
    let mut plan = Vec::new();
    for _ in 0..100 {
        plan = admin
            .query("EXPLAIN SELECT id FROM tollgate_records WHERE key_hash = 'aaaa'", &[])
            .unwrap()
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        if plan.iter().any(|p| p.contains("tollgate_records_key_hash")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(plan.iter().any(|p| p.contains("tollgate_records_key_hash")), "{plan:?}");
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn postgres_finds_part_of_a_request_id_among_few_or_many_matches() {
    let db = pg_db("search");
    let target = PostgresTarget::parse(&db.url, 1).unwrap();
    let mut store = PostgresStore::open(&target).unwrap();
    // 1,200 ids holding "many" (more than the store reads by id), two holding "few" (one of them
    // retried: two rows, one id), with a key each.
    let mut records: Vec<Record> = (0..1200)
        .map(|i| Record {
            request_id: format!("many-{i:05}"),
            ..record(i, None)
        })
        .collect();
    records.push(Record {
        request_id: "few-1".into(),
        key_hash: Some("aaaa".into()),
        ..record(2000, Some(1))
    });
    records.push(Record {
        request_id: "few-1".into(),
        key_hash: Some("aaaa".into()),
        ..record(2001, Some(2))
    });
    records.push(Record {
        request_id: "few-2".into(),
        key_hash: Some("bbbb".into()),
        ..record(1500, None)
    });
    store.insert(&rows(&records)).unwrap();
    let search = |store: &mut PostgresStore, q: RecordQuery| -> (Vec<String>, Option<RecordCursor>) {
        let page = store.query(&q).unwrap();
        (page.records.into_iter().map(|r| r.request_id).collect(), page.next)
    };
    let few = RecordQuery {
        request_id: Some("ew-".into()),
        limit: 10,
        ..RecordQuery::default()
    };
    assert_eq!(search(&mut store, few.clone()).0, ["few-1", "few-1", "few-2"]);
    // With the other filters, and a key's own view.
    let own = RecordQuery {
        key_hash: Some("bbbb".into()),
        ..few.clone()
    };
    assert_eq!(search(&mut store, own).0, ["few-2"]);
    let none = RecordQuery {
        request_id: Some("nowhere".into()),
        ..few
    };
    assert_eq!(search(&mut store, none), (vec![], None));
    // Many: newest first, and the next page goes on where the first ended.
    let many = RecordQuery {
        request_id: Some("many-".into()),
        limit: 50,
        ..RecordQuery::default()
    };
    let (first, next) = search(&mut store, many.clone());
    let expected: Vec<String> = (1150..1200).rev().map(|i| format!("many-{i:05}")).collect();
    assert_eq!(first, expected);
    let (second, _) = search(&mut store, RecordQuery { after: next, ..many });
    assert_eq!(second[0], "many-01149");
}

#[test]
fn sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    contract(&mut store);
}

fn pg_db(name: &str) -> TestDatabase {
    TestDatabase::create(name).expect("a Postgres test database (TOLLGATE_TEST_POSTGRES_URL)")
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn postgres_store_keeps_the_contract() {
    let db = pg_db("contract");
    let target = PostgresTarget::parse(&db.url, 2).unwrap();
    let mut store = PostgresStore::open(&target).unwrap();
    contract(&mut store);
}

#[test]
fn sqlite_migrations_run_once_and_refuse_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    // Opening again re-runs nothing and keeps the rows.
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.insert(&rows(&[record(1, None)])).unwrap();
    drop(store);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), tollgate_store::sqlite_version());
    assert_eq!(read_all(&mut store, TimeRange::default()).len(), 1);
    drop(store);

    // A newer tollgate migrated it: this build refuses it rather than write old-shaped rows.
    let conn = rusqlite_conn(dir.path());
    conn.execute_batch(&format!(
        "INSERT INTO {} (version, name, applied_on, checksum) VALUES (99, 'future', '2030-01-01', '1'); PRAGMA user_version = 99;",
        tollgate_store::HISTORY_TABLE
    ))
    .unwrap();
    drop(conn);
    match SqliteStore::open(dir.path()) {
        Err(e @ StoreError::NewerSchema { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("newer tollgate") && msg.contains("99"), "{msg}");
        }
        Err(e) => panic!("expected NewerSchema, got {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[test]
fn a_database_from_before_migrations_is_adopted_with_its_rows() {
    // What every tollgate before the shared store wrote: the V1 table, user_version 1, no history.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(tollgate_store::DB_FILE_NAME);
    let conn = rusqlite_conn(&path);
    let old = record(1, Some(2));
    let json = serde_json::to_string(&old).unwrap();
    conn.execute_batch(
        "CREATE TABLE records (request_id TEXT, trace_id TEXT, start_time TEXT, model_group TEXT, model TEXT,
             status TEXT, cost_usd REAL, json TEXT NOT NULL);
         CREATE INDEX records_start_time ON records (start_time);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO records (request_id, trace_id, start_time, model_group, model, status, cost_usd, json)
         VALUES ('req-1', 'trace-0', '2026-05-28T20:27:40.123456Z', 'coder', 'm', 'success', 0.1, ?1)",
        [&json],
    )
    .unwrap();
    drop(conn);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(read_all(&mut store, TimeRange::default()), vec![old.clone()]);
    // The new columns were filled from the JSON, so the row is unique by its attempt too.
    assert_eq!(store.insert(&rows(&[old])).unwrap(), 0);
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn postgres_migrations_run_once_and_refuse_a_newer_schema() {
    let db = pg_db("migrate");
    let target = PostgresTarget::parse(&db.url, 1).unwrap();
    let mut store = PostgresStore::open(&target).unwrap();
    store.insert(&rows(&[record(1, None)])).unwrap();
    drop(store);
    // From an empty database above; now again: a no-op that keeps the rows.
    let mut store = PostgresStore::open(&target).unwrap();
    assert_eq!(store.schema_version().unwrap(), tollgate_store::postgres_version());
    assert_eq!(read_all(&mut store, TimeRange::default()).len(), 1);
    drop(store);

    let mut admin = db.admin().unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO {} (version, name, applied_on, checksum) VALUES (99, 'future', '2030-01-01', '1')",
            tollgate_store::HISTORY_TABLE
        ))
        .unwrap();
    match PostgresStore::open(&target) {
        Err(e @ StoreError::NewerSchema { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("newer tollgate") && msg.contains("99"), "{msg}");
            assert!(!msg.contains("password"), "{msg}");
        }
        Err(e) => panic!("expected NewerSchema, got {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn instances_migrating_at_once_do_not_race() {
    let db = pg_db("race");
    let target = PostgresTarget::parse(&db.url, 1).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = target.clone();
            std::thread::spawn(move || PostgresStore::open(&t).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
}

#[test]
fn bad_urls_and_sslmodes_are_refused_with_the_reason() {
    let e = PostgresTarget::parse("mysql://u:pw@h/db", 1).unwrap_err().to_string();
    assert!(e.contains("postgres://") && !e.contains("pw"), "{e}");
    let e = PostgresTarget::parse("postgres://u:pw@h/db?sslmode=maybe", 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sslmode=maybe") && e.contains("verify-full") && !e.contains(":pw@"),
        "{e}"
    );
    for mode in ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] {
        let t = PostgresTarget::parse(&format!("postgresql://u:pw@h:5433/db?sslmode={mode}"), 3).unwrap();
        assert_eq!(t.location(), format!("postgresql://u:***@h:5433/db?sslmode={mode}"));
    }
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn sslmode_require_encrypts_against_a_self_signed_server_and_disable_does_not() {
    // Debian's Postgres serves TLS with a self-signed certificate: libpq's `require` connects
    // (encrypted, unverified); `verify-full` refuses the certificate.
    let db = pg_db("tls");
    let ssl_of = |mode: &str| -> Result<bool, String> {
        let t = PostgresTarget::parse(&format!("{}?sslmode={mode}", db.url), 1).map_err(|e| e.to_string())?;
        let mut c = t.connect().map_err(|e| e.to_string())?;
        let row = c
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    };
    let server_has_tls = {
        let mut admin = db.admin().unwrap();
        admin.query_one("SHOW ssl", &[]).unwrap().get::<_, String>(0) == "on"
    };
    assert_eq!(ssl_of("disable"), Ok(false));
    if server_has_tls {
        assert_eq!(ssl_of("require"), Ok(true));
        assert_eq!(ssl_of("prefer"), Ok(true));
        let refused = ssl_of("verify-full").unwrap_err();
        assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    } else {
        let refused = ssl_of("require").unwrap_err();
        assert!(!refused.is_empty());
    }
}

fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    let path = if path.is_dir() {
        path.join(tollgate_store::DB_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    rusqlite::Connection::open(path).unwrap()
}
