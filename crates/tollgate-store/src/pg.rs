//! Postgres, the shared store: connection settings (URL, `sslmode`, pool size), the pool, and
//! the [`RecordStore`] implementation over `tollgate_records`.
//!
//! `sslmode` follows libpq, which is what a LiteLLM `DATABASE_URL` was written for: `disable`;
//! `allow`/`prefer` (the default) and `require` encrypt without checking the server's
//! certificate (libpq does not check it in those modes either, and Debian's Postgres ships a
//! self-signed one); `verify-ca` and `verify-full` check it against the Mozilla roots and the
//! host name.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::config::SslMode;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Config};
use r2d2_postgres::PostgresConnectionManager;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;
use tollgate_core::Record;

use crate::error::StoreError;
use crate::store::{Dialect, NEWEST_FIRST, QueryValue, RecordPage, RecordQuery, RecordStore, StoredRow, TimeRange};

/// How long connecting may take before it counts as a failure (startup, reconnects).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows fetched per round trip while reading.
const READ_PAGE: i64 = 2000;

/// Where the shared store is and how to reach it.
#[derive(Clone)]
pub struct PostgresTarget {
    config: Config,
    tls: MakeRustlsConnect,
    /// The URL with its password masked, for every message.
    location: String,
    pub pool_size: u32,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("location", &self.location)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// The URL without its password (and without query values other than `sslmode`-like switches).
pub fn redact_url(url: &str) -> String {
    tollgate_core::redact::database_url(url)
}

impl PostgresTarget {
    /// Parses a `postgres://` or `postgresql://` URL (libpq's keys, `sslmode` included).
    pub fn parse(url: &str, pool_size: u32) -> Result<PostgresTarget, StoreError> {
        let location = redact_url(url);
        let bad = |message: String| StoreError::Postgres {
            location: location.clone(),
            message,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad("expected a postgres:// or postgresql:// URL".into()));
        }
        let (without_sslmode, sslmode) = take_query_key(url, "sslmode");
        let (mode, verify) = match sslmode.as_deref() {
            Some("disable") => (SslMode::Disable, false),
            None | Some("allow") | Some("prefer") => (SslMode::Prefer, false),
            Some("require") => (SslMode::Require, false),
            Some("verify-ca") | Some("verify-full") => (SslMode::Require, true),
            Some(other) => {
                return Err(bad(format!(
                    "sslmode={other} is not a libpq sslmode; use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        };
        let mut config: Config = without_sslmode
            .parse()
            .map_err(|e: postgres::Error| bad(format!("not a valid Postgres URL: {e}")))?;
        config.ssl_mode(mode);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tollgate");
        }
        Ok(PostgresTarget {
            config,
            tls: tls_connector(verify).map_err(|e| bad(format!("cannot set up TLS: {e}")))?,
            location,
            pool_size: pool_size.max(1),
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// One connection, outside any pool (migrations, the report).
    pub fn connect(&self) -> Result<Client, StoreError> {
        self.config.connect(self.tls.clone()).map_err(|e| self.error(&e))
    }

    /// A pool of at most `pool_size` connections, opened lazily: building it never fails on an
    /// unreachable server, checking a connection out does.
    pub fn pool(&self) -> Pool {
        let manager = PostgresConnectionManager::new(self.config.clone(), self.tls.clone());
        let pool = r2d2::Pool::builder()
            .max_size(self.pool_size)
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            // r2d2 logs every failed connect attempt; the shipper reports outages itself.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Pool {
            pool: Some(pool),
            location: self.location.clone(),
        }
    }

    pub(crate) fn error(&self, e: &postgres::Error) -> StoreError {
        StoreError::Postgres {
            location: self.location.clone(),
            message: crate::error::postgres_text(e),
        }
    }
}

type Inner = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

/// The pool the shipper, the retention job and the key store take connections from.
///
/// The connections are the blocking `postgres` client's, whose `Drop` runs a small runtime of
/// its own to say goodbye to the server; inside an async runtime's thread that panics (and a
/// panic in a destructor aborts). The last owner of a pool may well be a tokio task (the
/// gateway's shared state), so a pool is always dropped on a thread of its own.
pub struct Pool {
    pool: Option<Inner>,
    location: String,
}

impl Clone for Pool {
    fn clone(&self) -> Pool {
        Pool {
            pool: self.pool.clone(),
            location: self.location.clone(),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let dropped = std::thread::Builder::new()
                .name("tollgate-pg-close".into())
                .spawn(move || drop(pool));
            if let Err(e) = dropped {
                // No thread to close them on: leak the connections rather than abort; the
                // server ends them when the process exits.
                tracing::debug!(error = %e, "cannot close Postgres connections on a thread of their own");
            }
        }
    }
}

/// A connection checked out of the [`Pool`].
pub type PooledClient = r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>;

impl Pool {
    pub fn get(&self) -> Result<PooledClient, StoreError> {
        let Some(pool) = &self.pool else {
            return Err(StoreError::Postgres {
                location: self.location.clone(),
                message: "the connection pool is closed".into(),
            });
        };
        pool.get().map_err(|e| StoreError::Postgres {
            location: self.location.clone(),
            message: format!("cannot connect: {e}"),
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }
}

/// Removes `key=value` from a URL's query; returns the URL without it and the value.
fn take_query_key(url: &str, key: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((k, v)) if k == key => {
                value = Some(v.to_string());
                false
            }
            _ => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_string(), value)
    } else {
        (format!("{base}?{}", kept.join("&")), value)
    }
}

fn tls_connector(verify: bool) -> Result<MakeRustlsConnect, rustls::Error> {
    // ring explicitly: the process may have no default crypto provider installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let config = if verify {
        let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's `prefer`/`require`: the connection is encrypted and the handshake signature checked,
/// but the certificate chain is not (that is what `verify-ca`/`verify-full` are for).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One multi-row insert for a whole batch: the columns go as arrays and `unnest` turns them back
/// into rows, so a batch is one statement and one round trip whatever its size.
const INSERT: &str = "INSERT INTO tollgate_records
    (request_id, attempt, instance_id, trace_id, session_id, start_time, model_group, model,
     status, key_alias, workflow, cost_usd, json, key_hash, cache, user_id, team_id)
  SELECT r, a, i, t, s, st, g, m, x, k, w, c, j::json, kh, ca, us, tm
  FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
              $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::float8[], $13::text[],
              $14::text[], $15::text[], $16::text[], $17::text[])
       AS u(r, a, i, t, s, st, g, m, x, k, w, c, j, kh, ca, us, tm)
  ON CONFLICT (request_id, attempt) DO NOTHING";

/// Inserts a batch in one transaction; rows already stored are skipped. Returns the new rows.
pub(crate) fn insert_rows(client: &mut Client, rows: &[StoredRow]) -> Result<u64, postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    // Borrowed columns: the batch's strings are not copied on the way to the wire.
    let col = |f: fn(&StoredRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let opt = |f: fn(&StoredRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<Option<&str>>>();
    let request_id = col(|r| &r.request_id);
    let attempt: Vec<i32> = rows
        .iter()
        .map(|r| i32::try_from(r.attempt).unwrap_or(i32::MAX))
        .collect();
    let instance = opt(|r| r.instance_id.as_deref());
    let trace = col(|r| &r.trace_id);
    let session = opt(|r| r.session_id.as_deref());
    let start: Vec<DateTime<Utc>> = rows.iter().map(|r| r.start_time).collect();
    let group = col(|r| &r.model_group);
    let model = col(|r| &r.model);
    let status = col(|r| r.status);
    let key = opt(|r| r.key_alias.as_deref());
    let workflow = opt(|r| r.workflow.as_deref());
    let cost: Vec<Option<f64>> = rows.iter().map(|r| r.cost_usd).collect();
    let json = col(|r| &r.json);
    let key_hash = opt(|r| r.key_hash.as_deref());
    let cache = opt(|r| r.cache.as_deref());
    let user = opt(|r| r.user_id.as_deref());
    let team = opt(|r| r.team_id.as_deref());
    let params: [&(dyn ToSql + Sync); 17] = [
        &request_id,
        &attempt,
        &instance,
        &trace,
        &session,
        &start,
        &group,
        &model,
        &status,
        &key,
        &workflow,
        &cost,
        &json,
        &key_hash,
        &cache,
        &user,
        &team,
    ];
    let mut tx = client.transaction()?;
    let n = tx.execute(INSERT, &params)?;
    tx.commit()?;
    Ok(n)
}

/// Streams `tollgate_records` in insertion order, `range` applied by the server (the
/// `start_time` index), a page at a time so memory stays bounded.
pub(crate) fn read_records(
    client: &mut Client,
    range: TimeRange,
    location: &str,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Result<u64, StoreError> {
    let pg = |e: postgres::Error| StoreError::Postgres {
        location: location.to_string(),
        message: crate::error::postgres_text(&e),
    };
    // Only the bounds given are in the SQL, so the planner sees plain range conditions.
    let mut sql = String::from("SELECT id, json::text, instance_id FROM tollgate_records WHERE id > $1");
    let mut params: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(0i64)];
    if let Some(since) = range.since {
        params.push(Box::new(since));
        sql.push_str(&format!(" AND start_time >= ${}", params.len()));
    }
    if let Some(until) = range.until {
        params.push(Box::new(until));
        sql.push_str(&format!(" AND start_time < ${}", params.len()));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {READ_PAGE}"));
    let stmt = client.prepare(&sql).map_err(pg)?;
    let mut after = 0i64;
    let mut n = 0u64;
    loop {
        params[0] = Box::new(after);
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let mut rows = client.query_raw(&stmt, refs).map_err(pg)?;
        let mut got = 0i64;
        while let Some(row) = rows.next().map_err(pg)? {
            got += 1;
            let id: i64 = row.try_get(0).map_err(pg)?;
            after = id;
            let json: String = row.try_get(1).map_err(pg)?;
            let instance: Option<String> = row.try_get(2).map_err(pg)?;
            let mut record: Record = serde_json::from_str(&json).map_err(|source| StoreError::Decode {
                path: location.into(),
                location: format!("tollgate_records.id {id}"),
                source,
            })?;
            if record.instance_id.is_none() {
                record.instance_id = instance;
            }
            n += 1;
            if !sink(record) {
                return Ok(n);
            }
        }
        if got < READ_PAGE {
            return Ok(n);
        }
    }
}

/// Whether the database holds tollgate's records table (the report's detection).
pub fn has_records_table(client: &mut Client) -> Result<bool, postgres::Error> {
    let row = client.query_one("SELECT to_regclass('tollgate_records') IS NOT NULL", &[])?;
    row.try_get(0)
}

/// A Postgres database behind the [`RecordStore`] interface.
pub struct PostgresStore {
    client: Client,
    target: PostgresTarget,
}

impl PostgresStore {
    /// Connects and brings the schema up to date (refusing a newer one).
    pub fn open(target: &PostgresTarget) -> Result<PostgresStore, StoreError> {
        let mut client = target.connect()?;
        crate::migrate::postgres(&mut client, target.location())?;
        Ok(PostgresStore {
            client,
            target: target.clone(),
        })
    }

    /// Connects without migrating (the report reads; it never changes a database).
    pub fn open_read_only(target: &PostgresTarget) -> Result<PostgresStore, StoreError> {
        Ok(PostgresStore {
            client: target.connect()?,
            target: target.clone(),
        })
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl RecordStore for PostgresStore {
    fn location(&self) -> String {
        format!("postgres {}", self.target.location())
    }

    fn insert(&mut self, rows: &[StoredRow]) -> Result<u64, StoreError> {
        insert_rows(&mut self.client, rows).map_err(|e| self.target.error(&e))
    }

    fn read(&mut self, range: TimeRange, sink: &mut dyn FnMut(Record) -> bool) -> Result<u64, StoreError> {
        let location = self.target.location().to_string();
        read_records(&mut self.client, range, &location, sink)
    }

    fn prune(&mut self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        prune(&mut self.client, before).map_err(|e| self.target.error(&e))
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT coalesce(max(version), 0)::int8 FROM {}",
            crate::migrate::HISTORY_TABLE
        );
        let row = self.client.query_one(&sql, &[]).map_err(|e| self.target.error(&e))?;
        row.try_get(0).map_err(|e| self.target.error(&e))
    }

    fn query(&mut self, query: &RecordQuery) -> Result<RecordPage, StoreError> {
        let location = self.target.location().to_string();
        query_records(&mut self.client, query, &location)
    }
}

/// Postgres's spelling of the log view's query (its filters are the V7 columns).
const POSTGRES_DIALECT: Dialect = Dialect {
    placeholder: |n| format!("${n}"),
    position: "strpos",
};

/// How many request ids a search for part of one may match and still be read by those ids.
const SEARCH_IDS: usize = 1000;

/// One page of the log view from the shared store.
///
/// A search for part of a request id cannot use an index: along the time index it reads every
/// record until a page's worth matches, all million of them when few or none do (4 s at a million
/// records, bench/notes.md). So the ids that match are looked for first in the unique index on
/// `(request_id, attempt)` alone (an index-only scan: 0.2 s at a million), and when they are few the
/// page is read by them; when they are many, the time index finds a page's worth soon.
pub(crate) fn query_records(
    client: &mut Client,
    query: &RecordQuery,
    location: &str,
) -> Result<RecordPage, StoreError> {
    let pg = |e: postgres::Error| StoreError::Postgres {
        location: location.to_string(),
        message: crate::error::postgres_text(&e),
    };
    let ids = match query.request_id.as_deref().filter(|s| !s.is_empty()) {
        Some(part) => matching_ids(client, part).map_err(pg)?,
        None => None,
    };
    if ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(RecordPage::default());
    }
    let narrowed;
    let query = match &ids {
        Some(_) => {
            narrowed = RecordQuery {
                request_id: None,
                ..query.clone()
            };
            &narrowed
        }
        None => query,
    };
    let (mut conditions, values) = query.conditions(&POSTGRES_DIALECT);
    let mut params: Vec<Box<dyn ToSql + Sync>> = values
        .into_iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                QueryValue::Text(s) => Box::new(s),
                QueryValue::Time(t) => Box::new(t),
                // `attempt` is an INTEGER column.
                QueryValue::Int(n) => Box::new(i32::try_from(n).unwrap_or(i32::MAX)),
            }
        })
        .collect();
    if let Some(ids) = ids {
        params.push(Box::new(ids));
        let cond = format!("request_id = ANY(${}::text[])", params.len());
        conditions = if conditions.is_empty() {
            format!("WHERE {cond}")
        } else {
            format!("{conditions} AND {cond}")
        };
    }
    let sql = format!(
        "SELECT id, json::text, instance_id FROM tollgate_records {conditions} {NEWEST_FIRST} LIMIT {}",
        query.page_size() + 1
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
    let rows = client.query(&sql, &refs).map_err(pg)?;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get(0).map_err(pg)?;
        let json: String = row.try_get(1).map_err(pg)?;
        let instance: Option<String> = row.try_get(2).map_err(pg)?;
        let mut record: Record = serde_json::from_str(&json).map_err(|source| StoreError::Decode {
            path: location.into(),
            location: format!("tollgate_records.id {id}"),
            source,
        })?;
        if record.instance_id.is_none() {
            record.instance_id = instance;
        }
        records.push(record);
    }
    Ok(query.page(records))
}

/// The request ids holding `part`, when there are at most [`SEARCH_IDS`] of them (`None` when
/// there are more). Ordered by id so the planner walks the unique index, reading no row.
fn matching_ids(client: &mut Client, part: &str) -> Result<Option<Vec<String>>, postgres::Error> {
    let rows = client.query(
        "SELECT request_id FROM tollgate_records WHERE strpos(request_id, $1) > 0 ORDER BY request_id LIMIT $2",
        &[&part, &((SEARCH_IDS + 1) as i64)],
    )?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        ids.push(row.try_get::<_, String>(0)?);
    }
    // A retried request's attempts share its id.
    ids.dedup();
    Ok((rows.len() <= SEARCH_IDS).then_some(ids))
}

/// Deletes the records that started before `before`.
pub(crate) fn prune(client: &mut Client, before: DateTime<Utc>) -> Result<u64, postgres::Error> {
    client.execute("DELETE FROM tollgate_records WHERE start_time < $1", &[&before])
}
