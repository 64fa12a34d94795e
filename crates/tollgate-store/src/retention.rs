//! `tollgate_settings.retention_days`: records older than that are deleted, from the local SQLite
//! and from the shared store, once at startup and then every hour. Local rows not yet shipped are
//! kept whatever their age: retention never loses a record the shared store has not got.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::pg::PostgresTarget;
use crate::sqlite::SqliteStore;

/// How often the job runs after the first time.
const INTERVAL: Duration = Duration::from_secs(3600);

/// Stops the job when dropped (with the writer's handle).
pub(crate) struct RetentionJob {
    stop: Arc<AtomicBool>,
}

impl Drop for RetentionJob {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub local: u64,
    pub shared: Option<u64>,
}

pub(crate) fn start(days: u32, db_path: PathBuf, shared: Option<PostgresTarget>) -> RetentionJob {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("tollgate-retention".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
                match prune_once(&db_path, shared.as_ref(), cutoff) {
                    Ok(p) if p.local > 0 || p.shared.unwrap_or(0) > 0 => {
                        tracing::info!(days, local = p.local, shared = ?p.shared, "retention: old records deleted")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "retention: cannot delete old records; trying again in an hour")
                    }
                }
                let mut slept = Duration::ZERO;
                while slept < INTERVAL && !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    slept += Duration::from_millis(200);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the retention job; old records are kept");
    }
    RetentionJob { stop }
}

/// Deletes records that started before `cutoff`: locally (keeping what is not shipped yet) and,
/// with a shared store, there too.
pub fn prune_once(
    db_path: &std::path::Path,
    shared: Option<&PostgresTarget>,
    cutoff: DateTime<Utc>,
) -> Result<Pruned, StoreError> {
    let mut local = SqliteStore::open(db_path)?;
    let keep_after = match shared {
        Some(target) => Some(local.shipped_upto(target.location())?),
        None => None,
    };
    let mut pruned = Pruned {
        local: local.prune_keeping(cutoff, keep_after)?,
        shared: None,
    };
    if let Some(target) = shared {
        let mut client = target.connect()?;
        pruned.shared = Some(crate::pg::prune(&mut client, cutoff).map_err(|e| target.error(&e))?);
    }
    Ok(pruned)
}
