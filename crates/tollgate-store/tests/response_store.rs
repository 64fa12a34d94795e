//! Stored Responses API responses (`previous_response_id`, `GET/DELETE /v1/responses/{id}`): the
//! same suite on SQLite and on Postgres.

use chrono::{Duration, Utc};
use serde_json::json;
use tollgate_store::test_db::TestDatabase;
use tollgate_store::{PostgresKeys, PostgresTarget, ResponseStore, SqliteKeys, StoredResponse};

fn stored(id: &str, owner: &str, age_days: i64) -> StoredResponse {
    StoredResponse {
        id: id.into(),
        owner: owner.into(),
        response: json!({"id": id, "object": "response", "output": [{"type": "message"}]}),
        messages: vec![
            json!({"role": "user", "content": "hi"}),
            json!({"role": "assistant", "content": "hello"}),
        ],
        created_at: Utc::now() - Duration::days(age_days),
    }
}

fn contract<S: ResponseStore>(store: &S) {
    let r = stored("resp_1", "key-a", 0);
    store.put_response(&r).unwrap();
    let got = store.get_response("resp_1", "key-a").unwrap().unwrap();
    assert_eq!((got.response, got.messages), (r.response.clone(), r.messages.clone()));
    // Another key cannot read, continue or delete it.
    assert_eq!(store.get_response("resp_1", "key-b").unwrap(), None);
    assert!(!store.delete_response("resp_1", "key-b").unwrap());
    assert!(store.get_response("resp_1", "key-a").unwrap().is_some());
    // Retention: older rows go, newer stay.
    store.put_response(&stored("resp_old", "key-a", 40)).unwrap();
    assert_eq!(store.purge_responses(Utc::now() - Duration::days(30)).unwrap(), 1);
    assert_eq!(store.get_response("resp_old", "key-a").unwrap(), None);
    assert!(store.delete_response("resp_1", "key-a").unwrap());
    assert_eq!(store.get_response("resp_1", "key-a").unwrap(), None);
    assert!(!store.delete_response("resp_1", "key-a").unwrap());
}

#[test]
fn sqlite_stored_responses_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&SqliteKeys::open(dir.path()).unwrap());
}

#[test]
#[cfg_attr(not(tollgate_postgres), ignore = "needs Postgres: set TOLLGATE_TEST_POSTGRES_URL")]
fn postgres_stored_responses_keep_the_contract() {
    let db = TestDatabase::create("responses").expect("a Postgres test database");
    let target = PostgresTarget::parse(&db.url, 4).unwrap();
    contract(&PostgresKeys::open(&target).unwrap());
}
