//! Serving workers, one per core: each is a thread with its own single-threaded runtime that
//! accepts from the shared listening socket and serves its connections start to finish, with
//! its own upstream connection pool.
//!
//! A request then runs on one thread from the client's bytes to the upstream's answer and back:
//! no task is handed to another thread and no parked thread is woken on its way. With one
//! multi-threaded runtime, the server task and the upstream connection task of a request could
//! run on different threads, each hand-off a cross-thread wake-up; measured on 2 cores, the
//! workers use ≈ 10–20 % less CPU per request (bench/notes.md, issue 11). The cost: a worker
//! does not steal another's connections, so one busy connection-heavy worker cannot hand work to
//! an idle one. The kernel spreads new connections over the workers' accept calls.
//! `--workers 0` serves on the shared runtime instead.

use std::io;
use std::sync::Arc;

use axum::Router;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::listener::{ConnectionStats, ConnectionTimeouts};

/// What every worker serves with.
pub struct Serving {
    pub router: Router,
    /// One permit per connection that may be open, over all workers.
    pub slots: Arc<Semaphore>,
    pub cap: usize,
    pub timeouts: Arc<dyn Fn() -> ConnectionTimeouts + Send + Sync>,
    pub stats: Arc<ConnectionStats>,
    /// Turns true when the workers are to stop accepting and drain.
    pub stop: watch::Receiver<bool>,
}

/// The number of workers when none is configured: one per core the process may use.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts `count` workers on `listener`. The returned receivers each resolve when a worker has
/// closed its last connection after the stop signal.
pub fn start(
    listener: std::net::TcpListener,
    count: usize,
    serving: &Serving,
) -> io::Result<Vec<oneshot::Receiver<()>>> {
    listener.set_nonblocking(true)?;
    let mut done = Vec::with_capacity(count);
    for i in 0..count.max(1) {
        let listener = listener.try_clone()?;
        let client = crate::app::http_client().map_err(io::Error::other)?;
        let router = serving.router.clone();
        let slots = serving.slots.clone();
        let cap = serving.cap;
        let timeouts = serving.timeouts.clone();
        let stats = serving.stats.clone();
        let mut stop = serving.stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("tollgate-worker-{i}"))
            .spawn(move || {
                crate::app::use_worker_http(client);
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let stopped = async move {
                                let _ = stop.wait_for(|s| *s).await;
                            };
                            crate::listener::serve(listener, router, slots, cap, timeouts, stats, stopped).await;
                        }
                        Err(e) => tracing::error!("worker {i} cannot use the listening socket: {e}"),
                    }
                });
                // Tasks still running (upstream connections, cache writes) end with the runtime.
                drop(runtime);
                let _ = done_tx.send(());
            })?;
        done.push(done_rx);
    }
    Ok(done)
}
