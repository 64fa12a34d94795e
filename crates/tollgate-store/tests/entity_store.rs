//! Users, teams and the other entities, and the ledger that holds budgets across scopes: the
//! same suite on SQLite and on Postgres.

use std::sync::Arc;

use serde_json::json;
use tollgate_store::test_db::TestDatabase;
use tollgate_store::{
    Charge, EntityKind, EntityRow, EntityStore, Hold, HoldOutcome, KeyError, KeyRow, KeyStore, Ledger, PostgresKeys,
    PostgresTarget, SqliteKeys,
};

fn doc(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

fn hold(scope: &str, id: &str, amount: f64, max_budget: f64) -> Hold {
    Hold {
        scope: scope.into(),
        id: id.into(),
        amount,
        max_budget,
        window: None,
    }
}

fn charge(scope: &str, id: &str, cost: f64, release: f64) -> Charge {
    Charge {
        scope: scope.into(),
        id: id.into(),
        cost,
        release,
        window: None,
    }
}

fn contract<S: EntityStore + Ledger + KeyStore>(store: &S) {
    // Entities round trip, kinds are separate namespaces, ids are unique per kind.
    let mut team = EntityRow::new(
        EntityKind::Team,
        "t1",
        doc(json!({"team_alias": "core", "max_budget": 5.0})),
    );
    team.parent = Some("org-1".into());
    store.create_entity(&team).unwrap();
    store
        .create_entity(&EntityRow::new(
            EntityKind::User,
            "t1",
            doc(json!({"user_email": "a@x"})),
        ))
        .unwrap();
    store
        .create_entity(&EntityRow::new(EntityKind::Team, "t2", doc(json!({}))))
        .unwrap();
    match store.create_entity(&EntityRow::new(EntityKind::Team, "t1", doc(json!({})))) {
        Err(KeyError::Conflict(m)) => assert!(m.contains("team `t1` already exists"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let got = store.get_entity(EntityKind::Team, "t1").unwrap().unwrap();
    assert_eq!(
        (got.parent.as_deref(), got.f64("max_budget")),
        (Some("org-1"), Some(5.0))
    );
    assert_eq!(got.str("team_alias"), Some("core"));
    assert!(store.get_entity(EntityKind::Organization, "t1").unwrap().is_none());

    let (all, total) = store.list_entities(EntityKind::Team, None, 1, 10).unwrap();
    assert_eq!(
        (total, all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>()),
        (2, vec!["t1", "t2"])
    );
    assert_eq!(
        store.list_entities(EntityKind::Team, Some("org-1"), 1, 10).unwrap().1,
        1
    );
    assert_eq!(store.list_entities(EntityKind::Team, None, 2, 1).unwrap().0[0].id, "t2");

    let mut edited = got.clone();
    edited.doc.insert("blocked".into(), json!(true));
    edited.parent = None;
    assert!(store.update_entity(&edited).unwrap());
    let after = store.get_entity(EntityKind::Team, "t1").unwrap().unwrap();
    assert!(after.flag("blocked") && after.parent.is_none());
    assert!(
        !store
            .update_entity(&EntityRow::new(EntityKind::Team, "nope", doc(json!({}))))
            .unwrap()
    );

    assert_eq!(
        store
            .delete_entities(EntityKind::Team, &["t2".into(), "nope".into()])
            .unwrap(),
        vec!["t2".to_string()]
    );
    assert!(store.get_entity(EntityKind::Team, "t2").unwrap().is_none());
    assert!(store.get_entity(EntityKind::User, "t1").unwrap().is_some());

    // The ledger: a key and its team. Holds fit while every scope has room, and a refusal by
    // one scope holds nothing anywhere.
    let key = KeyRow {
        token: format!("{:064x}", 7),
        key_name: "sk-...0007".into(),
        ..KeyRow::default()
    };
    store.create(&key).unwrap();
    let both = |amount| [hold("key", &key.token, amount, 10.0), hold("team", "t1", amount, 5.0)];
    assert_eq!(store.hold(&both(3.0)).unwrap(), HoldOutcome::Held);
    match store.hold(&both(3.0)).unwrap() {
        HoldOutcome::Refused { index, spend, reserved } => {
            assert_eq!(index, 1, "the team's $5 budget refuses, not the key's $10");
            assert_eq!((spend, reserved), (0.0, 3.0));
        }
        HoldOutcome::Held => panic!("held past the team's budget"),
    }
    // The refused request left no hold on the key: $7 more fit its $10.
    assert_eq!(
        store.hold(&[hold("key", &key.token, 7.0, 10.0)]).unwrap(),
        HoldOutcome::Held
    );
    store
        .settle(&[
            charge("key", &key.token, 1.5, 3.0),
            charge("key", &key.token, 0.0, 7.0),
            charge("team", "t1", 1.5, 3.0),
            charge("user_model", "ada/gpt-4o", 0.25, 0.0),
            charge("user_model", "ada/gpt-4o", 0.25, 0.0),
            charge("user_model", "bob/gpt-4o", 1.0, 0.0),
        ])
        .unwrap();
    let team_spend = store.spend_of("team", "t1").unwrap().unwrap();
    assert_eq!((team_spend.spend, team_spend.reserved), (1.5, 0.0));
    let key_row = store.get(&key.token).unwrap().unwrap();
    assert!((key_row.spend - 1.5).abs() < 1e-12);
    assert_eq!(
        store.spend_under("user_model", "ada/").unwrap(),
        vec![("ada/gpt-4o".to_string(), 0.5)]
    );
    assert!(store.spend_of("team", "nobody").unwrap().is_none());

    // A new budget period starts the scope from 0.
    let mut fresh = hold("team", "t1", 4.9, 5.0);
    fresh.window = Some(chrono::Utc::now());
    assert_eq!(store.hold(&[fresh]).unwrap(), HoldOutcome::Held);
    assert_eq!(store.spend_of("team", "t1").unwrap().unwrap().spend, 0.0);
}

/// 50 threads each hold $1 against a $20 team budget at once: exactly 20 are held.
fn concurrent<S: Ledger + 'static>(store: Arc<S>) {
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let s = Arc::clone(&store);
            std::thread::spawn(move || s.hold(&[hold("team", "burst", 1.0, 20.0), hold("proxy", "global", 1.0, 1e9)]))
        })
        .collect();
    let held = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .filter(|o| *o == HoldOutcome::Held)
        .count();
    assert_eq!(held, 20);
    assert_eq!(store.spend_of("team", "burst").unwrap().unwrap().reserved, 20.0);
    assert_eq!(store.spend_of("proxy", "global").unwrap().unwrap().reserved, 20.0);
}

#[test]
fn sqlite_entities_and_ledger_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&SqliteKeys::open(dir.path()).unwrap());
    concurrent(Arc::new(SqliteKeys::open(dir.path()).unwrap()));
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn postgres_entities_and_ledger_keep_the_contract() {
    let db = TestDatabase::create("entities").expect("a Postgres test database");
    let target = PostgresTarget::parse(&db.url, 8).unwrap();
    contract(&PostgresKeys::open(&target).unwrap());
    concurrent(Arc::new(PostgresKeys::open(&target).unwrap()));
}
