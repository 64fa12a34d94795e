//! One Redis the gateway can live without: a lazily opened multiplexed connection shared by every
//! request, with every operation run through a [`Breaker`]. The response cache and the rate
//! limits each hold one (each with its own circuit, so one's outage is reported as its own).

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;

use crate::breaker::{Breaker, BreakerError};

pub struct RedisLink {
    client: redis::Client,
    /// Empty until the first operation connects, and emptied again when an operation on it fails.
    conn: ArcSwapOption<MultiplexedConnection>,
    connecting: tokio::sync::Mutex<()>,
    breaker: Breaker,
}

impl RedisLink {
    /// Does not connect: the first operation does, so a Redis that is down at startup delays
    /// nothing and fails nothing.
    pub fn new(client: redis::Client, breaker: Breaker) -> Self {
        RedisLink {
            client,
            conn: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            breaker,
        }
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Whether a connection is open right now.
    pub fn connected(&self) -> bool {
        self.conn.load().is_some()
    }

    /// Connects now, through the breaker like any operation (a Redis that is down counts one
    /// failure), so the first requests find the connection up.
    pub async fn warm_up(&self) {
        let _ = self.breaker.call(self.connection()).await;
    }

    /// The live connection, connecting first when there is none. Connects are serialized: a
    /// caller that waited for another's connect uses its result. Runs inside the breaker, so
    /// the connect shares the operation's timeout and a refused or hung connect is a failure.
    async fn connection(&self) -> redis::RedisResult<Arc<MultiplexedConnection>> {
        if let Some(c) = self.conn.load_full() {
            return Ok(c);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.conn.load_full() {
            return Ok(c);
        }
        let budget = Some(self.breaker.operation_timeout());
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(budget)
            .set_response_timeout(budget);
        let conn = Arc::new(self.client.get_multiplexed_async_connection_with_config(&cfg).await?);
        self.conn.store(Some(conn.clone()));
        Ok(conn)
    }

    /// Runs one operation (a command, a pipeline, a script) through the breaker. An operation
    /// that fails drops its connection (unless another caller already replaced it), so the next
    /// admitted operation starts afresh: a connection to a Redis that was restarted or hung is
    /// worth nothing.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, BreakerError<redis::RedisError>>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let used: std::sync::Mutex<Option<Arc<MultiplexedConnection>>> = std::sync::Mutex::new(None);
        let outcome = self
            .breaker
            .call(async {
                let conn = self.connection().await?;
                if let Ok(mut u) = used.lock() {
                    *u = Some(conn.clone());
                }
                op((*conn).clone()).await
            })
            .await;
        if matches!(outcome, Err(BreakerError::Failed(_) | BreakerError::TimedOut(_)))
            && let Some(conn) = used.lock().ok().and_then(|mut u| u.take())
        {
            self.conn.compare_and_swap(&Some(conn), None);
        }
        outcome
    }

    /// One command through [`RedisLink::run`].
    pub async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BreakerError<redis::RedisError>> {
        self.run(|mut c| async move { cmd.query_async::<T>(&mut c).await })
            .await
    }
}
