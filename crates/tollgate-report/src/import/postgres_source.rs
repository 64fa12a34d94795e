//! `--db postgres://…`: the records in a Postgres database, read-only. Two tables are looked for
//! and every one present is read: tollgate's own `tollgate_records` (the shared store many
//! gateway instances ship to) and LiteLLM's `LiteLLM_SpendLogs`. `--since/--until` go into the
//! SQL, so a day of a year of records reads a day. Rows stream from the server; memory stays
//! bounded. The connection follows the gateway's (`sslmode` as libpq reads it).

use chrono::{DateTime, Utc};
use postgres::Client;
use postgres::types::ToSql;
use tollgate_core::{PriceTable, Record};
use tollgate_store::PostgresTarget;

use super::{Detected, InputSummary, RowKind};
use crate::ReportError;

/// Reads every records table at `url` (`?options=-csearch_path%3D…` picks a schema).
pub fn import_postgres(
    url: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    prices: &PriceTable,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Result<Vec<InputSummary>, ReportError> {
    let err = |e: postgres::Error| ReportError::Postgres(tollgate_store::postgres_text(&e));
    let target = PostgresTarget::parse(url, 1).map_err(|e| ReportError::Postgres(e.to_string()))?;
    let mut client = target.connect().map_err(|e| ReportError::Postgres(e.to_string()))?;
    let slice = Slice {
        since,
        until,
        key_hash: None,
    };
    let tables = client
        .query_one(
            r#"SELECT to_regclass('tollgate_records') IS NOT NULL, to_regclass('"LiteLLM_SpendLogs"') IS NOT NULL"#,
            &[],
        )
        .map_err(err)?;
    let (tollgate, litellm): (bool, bool) = (tables.try_get(0).map_err(err)?, tables.try_get(1).map_err(err)?);
    if !tollgate && !litellm {
        return Err(ReportError::Postgres(format!(
            "{} has neither tollgate's tollgate_records nor LiteLLM's LiteLLM_SpendLogs table; point --db at the database the gateway (general_settings.database_url) writes to",
            target.location()
        )));
    }
    let mut out = Vec::new();
    let go_on = std::cell::Cell::new(true);
    let mut counting_sink = |r: Record| {
        go_on.set(sink(r));
        go_on.get()
    };
    if tollgate {
        let sql = "SELECT json::text, instance_id FROM tollgate_records";
        out.push(read_table(
            &mut client,
            &target,
            Table {
                select: sql,
                time_column: "start_time",
                order: "id",
                detected: Detected::TollgatePostgres,
            },
            &slice,
            prices,
            &mut counting_sink,
        )?);
    }
    if litellm && go_on.get() {
        out.push(read_table(
            &mut client,
            &target,
            Table {
                select: r#"SELECT row_to_json(t)::text, NULL::text FROM "LiteLLM_SpendLogs" t"#,
                time_column: r#"t."startTime""#,
                order: r#"t."startTime""#,
                detected: Detected::Postgres,
            },
            &slice,
            prices,
            &mut counting_sink,
        )?);
    }
    Ok(out)
}

/// tollgate's own records in a shared store, read-only: the range, and one key's records when
/// `key_hash` is given (the first 16 hex digits of its hash, as records carry it). LiteLLM's
/// table in the same database, if any, is not read: this is the gateway's view of its records.
pub fn import_tollgate_records(
    target: &PostgresTarget,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    key_hash: Option<&str>,
    prices: &PriceTable,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Result<InputSummary, ReportError> {
    let mut client = target.connect().map_err(|e| ReportError::Postgres(e.to_string()))?;
    let table = Table {
        select: "SELECT json::text, instance_id FROM tollgate_records",
        time_column: "start_time",
        order: "id",
        detected: Detected::TollgatePostgres,
    };
    let slice = Slice { since, until, key_hash };
    read_table(&mut client, target, table, &slice, prices, sink)
}

/// Which rows of a table: a time range and, for tollgate's records, one key.
struct Slice<'a> {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    key_hash: Option<&'a str>,
}

/// Rows fetched per round trip.
const CHUNK_ROWS: i32 = 2_000;

struct Table {
    select: &'static str,
    time_column: &'static str,
    order: &'static str,
    detected: Detected,
}

fn read_table(
    client: &mut Client,
    target: &PostgresTarget,
    table: Table,
    slice: &Slice<'_>,
    prices: &PriceTable,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Result<InputSummary, ReportError> {
    let err = |e: postgres::Error| ReportError::Postgres(tollgate_store::postgres_text(&e));
    // Only the bounds given are in the SQL, so the planner sees a plain index range.
    let mut sql = format!("{} WHERE true", table.select);
    // As text cast to timestamptz: LiteLLM's columns are `timestamp` (no zone), tollgate's are
    // `timestamptz`, and the cast compares both correctly.
    let bounds: Vec<String> = [slice.since, slice.until]
        .iter()
        .flatten()
        .map(|t| t.to_rfc3339())
        .collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let mut next = bounds.iter();
    for (present, op) in [(slice.since.is_some(), ">="), (slice.until.is_some(), "<")] {
        if present && let Some(b) = next.next() {
            params.push(b);
            sql.push_str(&format!(
                " AND {} {op} ${}::text::timestamptz",
                table.time_column,
                params.len()
            ));
        }
    }
    let key_hash = slice.key_hash.map(str::to_string);
    if let Some(k) = &key_hash {
        params.push(k);
        // The column the shipper fills and the store indexes (Postgres V7). Only the dashboard
        // reads by key, on a store its gateway has migrated.
        sql.push_str(&format!(" AND key_hash = ${}", params.len()));
    }
    sql.push_str(&format!(" ORDER BY {}", table.order));
    let mut tx = client.build_transaction().read_only(true).start().map_err(err)?;
    // A portal read a chunk at a time: the server holds the rest, so what waits in this process
    // is one chunk by construction, not by the driver's flow control. (Measured over a month of a
    // million records, `tollgate report --db`: the same report, peak RSS 263 → 256 MB — the rest
    // is the aggregation's own.)
    let portal = tx.bind(&sql, &params).map_err(err)?;
    let mut summary = InputSummary::new(target.location(), Some(table.detected.describe()), false);
    let mut n = 0u64;
    'chunks: loop {
        let rows = tx.query_portal(&portal, CHUNK_ROWS).map_err(err)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            n += 1;
            let json: String = row.try_get(0).map_err(err)?;
            let instance: Option<String> = row.try_get(1).map_err(err)?;
            let parsed = match table.detected {
                Detected::TollgatePostgres => {
                    super::tollgate::record_from_json(json.as_bytes(), prices).map(|mut r| {
                        if r.instance_id.is_none() {
                            r.instance_id = instance;
                        }
                        r
                    })
                }
                _ => RowKind::LitellmSpendLogs.convert(json.as_bytes(), prices),
            };
            match parsed {
                Ok(rec) => {
                    summary.records += 1;
                    if !sink(rec) {
                        break 'chunks;
                    }
                }
                Err(error) => summary.reject(n, &error),
            }
        }
    }
    drop(portal);
    tx.rollback().map_err(err)?;
    Ok(summary)
}

/// The URL without its password, for the report.
pub fn redact(url: &str) -> String {
    tollgate_store::redact_url(url)
}
