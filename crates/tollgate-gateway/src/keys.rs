//! Virtual keys on the request path: from a presented raw key to its row, fast.
//!
//! A raw key is hashed (SHA-256 hex, LiteLLM's algorithm) and looked up in a small cache in
//! front of the key table; a miss goes to the store off the async workers. Entries live one
//! second, so a key blocked, deleted or changed on another instance stops (or starts) working
//! everywhere within a second; on the instance that made the change, at once.
//!
//! Spend is added to a key when its request's record closes: amounts gather in memory and are
//! written to the store in one statement every few hundred milliseconds (and at shutdown);
//! `/key/info` adds what is still gathering, so it always equals the sum of the records.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tollgate_store::{AccessStore, Charge, EntityKind, EntityRow, Hold, HoldOutcome, KEY_SCOPE, KeyRow, StoreError};

use crate::local_ledger::LocalLedger;

/// How long a looked-up key (or the absence of one) is trusted.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// How often gathered spend is written to the store.
const SPEND_FLUSH: Duration = Duration::from_millis(250);

/// The characters of a generated key: URL-safe base64's alphabet (64, so a random byte's low six
/// bits pick one uniformly).
const KEY_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// LiteLLM's key shape: `sk-` and 22 URL-safe random characters (132 bits from the OS's CSPRNG).
pub fn new_raw_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 22];
    getrandom::fill(&mut bytes)?;
    let mut key = String::with_capacity(25);
    key.push_str("sk-");
    key.extend(bytes.iter().map(|b| KEY_ALPHABET[usize::from(b & 63)] as char));
    Ok(key)
}

/// SHA-256 hex of the whole raw key: what the store keeps (LiteLLM's `hash_token`).
pub fn hash_key(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// `sk-...abcd`: how a key is shown once its raw value is gone.
pub fn display_name(raw: &str) -> String {
    let tail: String = raw
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// Whether `s` looks like a stored hash (64 lowercase hex digits). Management endpoints accept
/// one as an identifier; authentication never does (it hashes whatever it is given).
pub fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The cost gathered and not yet written, per scope and id, as it stood when
/// [`Keys::settled_read`] read the store.
#[derive(Debug, Default)]
pub struct Gathered(HashMap<(String, String), f64>);

impl Gathered {
    /// What is gathered for a scope and id (0 when nothing is).
    pub fn of(&self, scope: &str, id: &str) -> f64 {
        self.0.get(&(scope.to_string(), id.to_string())).copied().unwrap_or(0.0)
    }

    /// What is gathered for the ids of `scope` that start with `prefix`.
    pub fn under<'a>(&'a self, scope: &'a str, prefix: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0
            .iter()
            .filter(move |((s, id), _)| s == scope && id.starts_with(prefix))
            .map(|((_, id), cost)| (id.as_str(), *cost))
    }
}

/// What the next flush writes for one scope.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    cost: f64,
    release: f64,
    window: Option<chrono::DateTime<chrono::Utc>>,
}

/// The key table (and the entities keys belong to) with their caches and the spend being gathered.
pub struct Keys {
    store: Arc<dyn AccessStore>,
    cache: moka::sync::Cache<String, Option<Arc<KeyRow>>>,
    entities: moka::sync::Cache<(EntityKind, String), Option<Arc<EntityRow>>>,
    /// Per scope (`key`, `user`, `team_model`, …) and id: cost to add to its spend, the
    /// admission hold to give back, and the latest budget period the cost belongs to.
    pending: Mutex<HashMap<(String, String), Pending>>,
    /// Held while gathered spend is being written, so a scope loaded into `local` or read by
    /// [`Keys::settled_read`] meanwhile counts each amount once (in the store or in `pending`,
    /// never both or neither).
    flushing: Mutex<()>,
    /// Budget holds in memory (a gateway on its own SQLite file); `None`: in the store.
    local: Option<LocalLedger>,
    /// Keys already reported past their soft budget, per budget period (`token@period start`).
    soft_reported: moka::sync::Cache<String, ()>,
    stop: AtomicBool,
    /// Where the keys live, for startup lines and errors.
    pub location: String,
}

impl Keys {
    pub fn new(store: Arc<dyn AccessStore>, location: String) -> Keys {
        Keys {
            store,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHE_TTL)
                .build(),
            entities: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHE_TTL)
                .build(),
            pending: Mutex::new(HashMap::new()),
            flushing: Mutex::new(()),
            local: None,
            soft_reported: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(40 * 86_400))
                .build(),
            stop: AtomicBool::new(false),
            location,
        }
    }

    /// Budget holds in memory rather than in the store: for the only process on a SQLite
    /// store (see `local_ledger.rs`).
    pub fn holds_in_memory(mut self) -> Keys {
        self.local = Some(LocalLedger::default());
        self
    }

    pub fn store(&self) -> &Arc<dyn AccessStore> {
        &self.store
    }

    /// Holds every amount or none: in memory for a local store, else in one store transaction.
    pub async fn hold(self: &Arc<Self>, holds: Vec<Hold>) -> Result<HoldOutcome, StoreError> {
        let Some(local) = &self.local else {
            // The blocking hold runs to the end even when this future is dropped (the client
            // left): its result then has nowhere to go, and a hold nobody settles would stay
            // reserved. So the task gives such a hold back itself.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let keys = Arc::clone(self);
            tokio::task::spawn_blocking(move || {
                let outcome = keys.store.hold(&holds);
                if let Err(Ok(HoldOutcome::Held)) = tx.send(outcome) {
                    keys.charge(holds.into_iter().map(Charge::release_of).collect());
                }
            });
            return rx.await.map_err(|_| StoreError::WriterGone)?;
        };
        match local.hold(&holds) {
            Ok(outcome) => Ok(outcome),
            Err(missing) => {
                // First hold on these scopes: load what they spent, then hold.
                let keys = Arc::clone(self);
                tokio::task::spawn_blocking(move || keys.load(&missing))
                    .await
                    .map_err(|_| StoreError::WriterGone)??;
                Ok(local.hold(&holds).unwrap_or(HoldOutcome::Refused {
                    index: 0,
                    spend: 0.0,
                    reserved: 0.0,
                }))
            }
        }
    }

    /// Loads scopes into the local ledger: stored spend plus what is gathered. Blocking.
    fn load(&self, scopes: &[(String, String)]) -> Result<(), StoreError> {
        let Some(local) = &self.local else {
            return Ok(());
        };
        let _flush = self.flushing.lock().map_err(|_| StoreError::WriterGone)?;
        for (scope, id) in scopes {
            let (spend, window) = if scope == KEY_SCOPE {
                self.store
                    .get(id)?
                    .filter(|k| k.token == *id)
                    .map_or((0.0, None), |k| (k.spend, k.budget_window))
            } else {
                self.store
                    .spend_of(scope, id)?
                    .map_or((0.0, None), |r| (r.spend, r.budget_window))
            };
            let gathered = self.pending_of(scope, id);
            local.load(scope, id, spend + gathered, window);
        }
        Ok(())
    }

    /// The key with this token, from the cache or the store.
    pub async fn lookup(&self, token: &str) -> Result<Option<Arc<KeyRow>>, StoreError> {
        if let Some(hit) = self.cache.get(token) {
            return Ok(hit);
        }
        let store = Arc::clone(&self.store);
        let owned = token.to_string();
        let found = tokio::task::spawn_blocking(move || store.get(&owned))
            .await
            .map_err(|_| StoreError::WriterGone)??
            .map(Arc::new);
        self.cache.insert(token.to_string(), found.clone());
        Ok(found)
    }

    /// The entity of this kind and id, from the cache or the store.
    pub async fn entity(&self, kind: EntityKind, id: &str) -> Result<Option<Arc<EntityRow>>, StoreError> {
        let cache_key = (kind, id.to_string());
        if let Some(hit) = self.entities.get(&cache_key) {
            return Ok(hit);
        }
        let store = Arc::clone(&self.store);
        let owned = id.to_string();
        let found = tokio::task::spawn_blocking(move || store.get_entity(kind, &owned))
            .await
            .map_err(|_| StoreError::WriterGone)??
            .map(Arc::new);
        self.entities.insert(cache_key, found.clone());
        Ok(found)
    }

    /// After a change made here: the next request sees the store's row.
    pub fn forget(&self, token: &str) {
        self.cache.invalidate(token);
    }

    /// After a change to an entity made here.
    pub fn forget_entity(&self, kind: EntityKind, id: &str) {
        self.entities.invalidate(&(kind, id.to_string()));
    }

    /// A request of this key ended: its cost goes to the key's spend and its admission hold
    /// (`released`) is given back.
    pub fn settle(&self, token: &str, cost: f64, released: f64) {
        self.charge(vec![Charge {
            scope: KEY_SCOPE.into(),
            id: token.into(),
            cost,
            release: released,
            window: None,
        }]);
    }

    /// A request ended: each charge's cost goes to its scope's spend and its hold is given back
    /// (at once in the local ledger, in the store with the next flush).
    pub fn charge(&self, charges: Vec<Charge>) {
        if let Some(local) = &self.local {
            local.settle(&charges);
        }
        self.gather(charges);
    }

    /// Adds charges to what the next flush writes.
    fn gather(&self, charges: Vec<Charge>) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        for c in charges {
            let cost = if c.cost.is_finite() { c.cost } else { 0.0 };
            if cost == 0.0 && c.release == 0.0 && c.window.is_none() {
                continue;
            }
            let e = p.entry((c.scope, c.id)).or_default();
            e.cost += cost;
            e.release += c.release;
            e.window = e.window.max(c.window);
        }
    }

    /// `true` the first time `token` is reported past its soft budget in the period `period`.
    pub fn first_soft_report(&self, token: &str, period: &str) -> bool {
        let mut first = false;
        self.soft_reported
            .get_with(format!("{token}@{period}"), || first = true);
        first
    }

    /// Runs `read` on the store and takes what is gathered, with no flush between the two: a
    /// flush moves amounts from `pending` into the store, so an answer that adds one to the other
    /// without this hold can count an amount in neither (read the store, flush, read `pending`)
    /// and show a spend that went down. Blocking.
    pub fn settled_read<T, E: From<StoreError>>(
        &self,
        read: impl FnOnce(&dyn AccessStore) -> Result<T, E>,
    ) -> Result<(T, Gathered), E> {
        let _flush = self.flushing.lock().map_err(|_| StoreError::WriterGone)?;
        let found = read(self.store.as_ref())?;
        let gathered = self
            .pending
            .lock()
            .map(|p| Gathered(p.iter().map(|(at, e)| (at.clone(), e.cost)).collect()))
            .unwrap_or_default();
        Ok((found, gathered))
    }

    /// Spend gathered for this key and not yet in the store.
    pub fn pending_spend(&self, token: &str) -> f64 {
        self.pending_of(KEY_SCOPE, token)
    }

    /// Spend gathered for a scope and not yet in the store.
    fn pending_of(&self, scope: &str, id: &str) -> f64 {
        self.pending
            .lock()
            .ok()
            .and_then(|p| p.get(&(scope.to_string(), id.to_string())).map(|e| e.cost))
            .unwrap_or(0.0)
    }

    /// Writes the gathered spend; on failure it is kept for the next try. Blocking.
    pub fn flush(&self) {
        let Ok(_flushing) = self.flushing.lock() else {
            return;
        };
        let batch: Vec<Charge> = match self.pending.lock() {
            Ok(mut p) if !p.is_empty() => p
                .drain()
                .map(|((scope, id), e)| Charge {
                    scope,
                    id,
                    cost: e.cost,
                    release: e.release,
                    window: e.window,
                })
                .collect(),
            _ => return,
        };
        if let Err(e) = self.store.settle(&batch) {
            tracing::warn!(error = %e, "cannot write spend; it is kept and retried");
            self.gather(batch);
            return;
        }
        for c in &batch {
            if c.scope == KEY_SCOPE {
                self.cache.invalidate(&c.id);
            }
        }
    }

    /// The thread that writes gathered spend until [`Keys::stop`].
    pub fn start_flusher(self: &Arc<Self>) {
        let keys = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("tollgate-key-spend".into())
            .spawn(move || {
                while !keys.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(SPEND_FLUSH);
                    keys.flush();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the key spend writer; spend is written at shutdown only");
        }
    }

    /// Stops the flusher and writes what is left (shutdown). Blocking.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_litellms_shape_and_differ() {
        let a = new_raw_key().unwrap();
        let b = new_raw_key().unwrap();
        assert_eq!(a.len(), 25);
        assert!(a.starts_with("sk-"));
        assert!(a[3..].bytes().all(|c| KEY_ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_is_litellms_sha256_hex() {
        // sha256("sk-1234") as LiteLLM's hash_token computes it (Python's hashlib).
        assert_eq!(
            hash_key("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
        assert!(is_token(&hash_key("sk-anything")));
        assert!(!is_token("sk-anything"));
        assert_eq!(display_name("sk-abcdefgh1234"), "sk-...1234");
    }

    /// The dashboard once showed a key with spend 0 right after its request was recorded: it read
    /// the stored row, a flush moved the request's cost from memory into the store, and then it
    /// read what was gathered (nothing by then).
    #[test]
    fn a_spend_read_with_what_is_gathered_counts_every_amount_while_flushes_run() {
        use tollgate_store::KeyStore;
        let dir = tempfile::tempdir().unwrap();
        let store = tollgate_store::SqliteKeys::open(dir.path()).unwrap();
        let token = hash_key("sk-settled");
        store
            .create(&KeyRow {
                token: token.clone(),
                ..KeyRow::default()
            })
            .unwrap();
        let keys = Arc::new(Keys::new(Arc::new(store), "test".into()));
        let flusher = {
            let keys = Arc::clone(&keys);
            std::thread::spawn(move || {
                while !keys.stop.load(Ordering::Relaxed) {
                    keys.flush();
                }
            })
        };
        for charged in 1..=300 {
            keys.charge(vec![Charge {
                scope: KEY_SCOPE.to_string(),
                id: token.clone(),
                cost: 1.0,
                release: 0.0,
                window: None,
            }]);
            let (row, gathered) = keys.settled_read(|s| s.get(&token)).unwrap();
            let seen = row.unwrap().spend + gathered.of(KEY_SCOPE, &token);
            assert_eq!(seen, f64::from(charged), "after {charged} charges");
        }
        keys.stop();
        flusher.join().unwrap();
    }
}
