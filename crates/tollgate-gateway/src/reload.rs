//! Config reload: by file watch, SIGHUP (the binary; it also reopens the JSONL file) or
//! `POST /admin/reload`.
//!
//! The new config is loaded and the whole live state built and validated before one atomic swap.
//! A request holds the snapshot it started with, so in-flight requests finish on their config; an
//! invalid file keeps the last good config serving and shows the error in readiness and the log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tollgate_core::PriceTable;
use tollgate_core::config::{self, ProcessEnv, master_key_problem};

use crate::app::App;
use crate::state::LiveState;

/// Editors write a file in several steps (truncate, write, rename); wait for them to settle.
const DEBOUNCE: Duration = Duration::from_millis(200);

impl App {
    /// Loads the config file again and swaps it in whole, or keeps the current one and says why.
    pub fn reload(&self) -> Result<u64, String> {
        // One reload at a time, so versions stay ordered.
        let _one = self
            .reload_lock
            .lock()
            .map_err(|_| "reload lock poisoned".to_string())?;
        let old = self.live.load_full();
        match self.build_next(&old) {
            Ok(next) => {
                let v = next.version;
                let groups = next.group_order.len();
                // Applies to records submitted from now on; the writer switches its fsync setting.
                self.writer.set_durability(next.config.record_durability);
                // The store (and its connections, shipping cursor, retention job) is chosen once,
                // at startup; say so rather than look as if the edit took effect.
                let store_settings = |c: &tollgate_core::config::GatewayConfig| {
                    (
                        c.database.clone(),
                        c.database_pool_size,
                        c.retention_days,
                        c.require_database,
                    )
                };
                if store_settings(&old.config) != store_settings(&next.config) {
                    tracing::warn!(
                        "the shared store settings changed (database_url, database_connection_pool_limit, retention_days, require_database); they take effect at the next restart"
                    );
                    eprintln!(
                        "tollgate: the shared store settings changed in {}; they take effect at the next restart",
                        old.config.path.display()
                    );
                }
                // Which Redis counts rate limits is chosen at startup too (the counters live
                // there); which tokens count applies at once.
                self.rate_limits.set_token_type(next.config.token_rate_limit_type);
                let limit_settings = |c: &tollgate_core::config::GatewayConfig| {
                    (c.rate_limit_redis.clone(), c.rate_limit_prefix.clone())
                };
                if limit_settings(&old.config) != limit_settings(&next.config) {
                    tracing::warn!(
                        "the rate-limit Redis settings changed (router_settings.redis_*, the cache's Redis, tollgate_settings.rate_limit_prefix); they take effect at the next restart"
                    );
                    eprintln!(
                        "tollgate: the rate-limit Redis settings changed in {}; they take effect at the next restart",
                        old.config.path.display()
                    );
                }
                self.live.store(Arc::new(next));
                if let Ok(mut e) = self.config_error.lock() {
                    *e = None;
                }
                tracing::info!("config reloaded: version {v}, {groups} model groups");
                eprintln!(
                    "tollgate: config reloaded from {} (version {v}, {groups} model groups)",
                    old.config.path.display()
                );
                Ok(v)
            }
            Err(e) => {
                let msg = format!("{e}; still serving config version {}", old.version);
                tracing::warn!("config reload failed: {msg}");
                eprintln!("tollgate: config reload failed: {msg}");
                if let Ok(mut slot) = self.config_error.lock() {
                    *slot = Some(msg.clone());
                }
                Err(msg)
            }
        }
    }

    /// SIGHUP, as daemons do: reopen the JSONL file (after logrotate moved it) and reload the config.
    pub fn hangup(&self) -> Result<u64, String> {
        self.writer.reopen_jsonl();
        self.reload()
    }

    fn build_next(&self, old: &LiveState) -> Result<LiveState, String> {
        let cfg = config::load(&old.config.path, &ProcessEnv).map_err(|e| e.to_string())?;
        if self.auth_enabled {
            // A reload must never open a gateway that started closed.
            if let Some(problem) = master_key_problem(cfg.master_key.as_ref()) {
                return Err(format!("refusing the new config: {problem}"));
            }
        }
        let prices = self
            .prices_path
            .as_ref()
            .map(|p| PriceTable::load_file(p))
            .transpose()
            .map_err(|e| e.to_string())?;
        let mut next = LiveState::build(cfg, old.version + 1, prices, &ProcessEnv).map_err(|e| e.to_string())?;
        next.inherit_cache(old);
        Ok(next)
    }
}

/// Watches the config file and its includes; reloads when one of them changes.
pub struct ConfigWatcher {
    _watcher: RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn watched_files(live: &LiveState) -> BTreeSet<PathBuf> {
    live.config.files.iter().map(|f| absolute(f)).collect()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A digest of the watched files' bytes (missing files count as empty).
fn contents_digest(files: &BTreeSet<PathBuf>) -> String {
    let mut all = Vec::new();
    for f in files {
        all.extend_from_slice(f.as_os_str().as_encoded_bytes());
        all.push(0);
        all.extend(std::fs::read(f).unwrap_or_default());
        all.push(0);
    }
    tollgate_core::record::prompt_sha256(&all)
}

pub fn watch(app: Arc<App>) -> notify::Result<ConfigWatcher> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(ev) = event {
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
    })?;
    // Directories, not files: editors that save by rename replace the watched inode.
    let mut dirs = BTreeSet::new();
    let mut files = watched_files(&app.live.load());
    for f in &files {
        if let Some(d) = f.parent()
            && dirs.insert(d.to_path_buf())
        {
            watcher.watch(d, RecursiveMode::NonRecursive)?;
        }
    }
    let mut last_seen = contents_digest(&files);
    let task = tokio::spawn(async move {
        while let Some(path) = rx.recv().await {
            if !files.contains(&absolute(&path)) {
                continue;
            }
            // Settle: swallow the burst of events one save produces.
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            // Touching a file, or an editor's several writes of one save, is not a new config.
            let digest = contents_digest(&files);
            if digest == last_seen {
                continue;
            }
            last_seen = digest;
            let app2 = app.clone();
            let _ = tokio::task::spawn_blocking(move || app2.reload()).await;
            // Includes may have changed; files in new directories are picked up on the next
            // restart (rare), files in watched directories at once.
            files = watched_files(&app.live.load());
        }
    });
    Ok(ConfigWatcher {
        _watcher: watcher,
        task,
    })
}
