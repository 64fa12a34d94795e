//! The virtual-key table, the same suite on SQLite and on Postgres.

use tollgate_store::test_db::TestDatabase;
use tollgate_store::{KeyError, KeyFilter, KeyRow, KeyStore, PostgresKeys, PostgresTarget, Reservation, SqliteKeys};

fn key(n: u32, alias: Option<&str>, user: Option<&str>) -> KeyRow {
    KeyRow {
        token: format!("{n:064x}"),
        key_name: format!("sk-...{n:04}"),
        key_alias: alias.map(str::to_string),
        user_id: user.map(str::to_string),
        models: vec!["deepseek-v3.2".into()],
        max_budget: Some(12.5),
        created_at: Some(chrono::Utc::now()),
        ..KeyRow::default()
    }
}

fn contract(store: &dyn KeyStore) {
    store.create(&key(1, Some("ci"), Some("ada"))).unwrap();
    store.create(&key(2, None, Some("ada"))).unwrap();
    store.create(&key(3, None, Some("bob"))).unwrap();
    // The alias is unique; the conflict says what to do.
    match store.create(&key(4, Some("ci"), None)) {
        Err(KeyError::Conflict(m)) => assert!(m.contains("`ci`"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store.get(&key(4, None, None).token).unwrap().is_none());

    let got = store.get(&key(1, None, None).token).unwrap().unwrap();
    assert_eq!(got, key(1, Some("ci"), Some("ada")).clone_with_created(&got));
    assert_eq!(store.find_alias("ci").unwrap().unwrap().token, got.token);

    // Paging in creation order, filters, totals.
    let (page1, total) = store.list(&KeyFilter::default(), 1, 2).unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page1.iter().map(|k| k.key_name.as_str()).collect::<Vec<_>>(),
        ["sk-...0001", "sk-...0002"]
    );
    let (page2, _) = store.list(&KeyFilter::default(), 2, 2).unwrap();
    assert_eq!(page2.len(), 1);
    let ada = KeyFilter {
        user_id: Some("ada".into()),
        ..KeyFilter::default()
    };
    assert_eq!(store.list(&ada, 1, 10).unwrap().1, 2);

    // Spend goes up in place, whatever the document says.
    store
        .add_spend(&[(got.token.clone(), 0.25, 0.0), (got.token.clone(), 0.125, 0.0)])
        .unwrap();
    let mut edited = store.get(&got.token).unwrap().unwrap();
    assert!((edited.spend - 0.375).abs() < 1e-12);
    edited.blocked = true;
    edited.spend = 999.0; // ignored by update
    assert!(store.update(&edited).unwrap());
    let after = store.get(&got.token).unwrap().unwrap();
    assert!(after.blocked);
    assert!((after.spend - 0.375).abs() < 1e-12);

    // Regenerate: same row and spend under a new token; the old token is gone.
    let mut renewed = after.clone();
    renewed.token = format!("{:064x}", 99);
    assert!(store.replace_token(&after.token, &renewed).unwrap());
    assert!(store.get(&after.token).unwrap().is_none());
    assert!((store.get(&renewed.token).unwrap().unwrap().spend - 0.375).abs() < 1e-12);

    // Budget holds: $12.5 budget, $0.375 spent. Holds fit until they would pass it.
    let t = renewed.token.clone();
    assert_eq!(store.reserve(&t, 10.0, None).unwrap(), Reservation::Held);
    match store.reserve(&t, 5.0, None).unwrap() {
        Reservation::Refused {
            spend,
            reserved,
            max_budget,
        } => {
            assert!((spend - 0.375).abs() < 1e-12 && (reserved - 10.0).abs() < 1e-12 && max_budget == 12.5)
        }
        Reservation::Held => panic!("held past the budget"),
    }
    // Settling gives the hold back and adds the real cost.
    store.add_spend(&[(t.clone(), 1.0, 10.0)]).unwrap();
    assert_eq!(store.reserve(&t, 5.0, None).unwrap(), Reservation::Held);
    store.add_spend(&[(t.clone(), 0.0, 5.0)]).unwrap();
    // A new budget period starts from 0 whatever was spent before.
    let window = chrono::Utc::now();
    assert_eq!(store.reserve(&t, 12.0, Some(window)).unwrap(), Reservation::Held);
    assert!(store.get(&t).unwrap().unwrap().spend.abs() < 1e-12);
    store.add_spend(&[(t.clone(), 0.0, 12.0)]).unwrap();

    // Delete returns what existed.
    let gone = store.delete(&[renewed.token.clone(), "nope".into()]).unwrap();
    assert_eq!(gone, vec![renewed.token.clone()]);
    assert!(store.get(&renewed.token).unwrap().is_none());
    assert_eq!(store.list(&KeyFilter::default(), 1, 10).unwrap().1, 2);
}

trait WithCreated {
    fn clone_with_created(&self, got: &KeyRow) -> KeyRow;
}

impl WithCreated for KeyRow {
    /// The row as written, with the stored creation time (micro-second rounding aside).
    fn clone_with_created(&self, got: &KeyRow) -> KeyRow {
        KeyRow {
            created_at: got.created_at,
            ..self.clone()
        }
    }
}

#[test]
fn sqlite_keys_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&SqliteKeys::open(dir.path()).unwrap());
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn postgres_keys_keep_the_contract() {
    let db = TestDatabase::create("keys").expect("a Postgres test database");
    let target = PostgresTarget::parse(&db.url, 2).unwrap();
    contract(&PostgresKeys::open(&target).unwrap());
}
