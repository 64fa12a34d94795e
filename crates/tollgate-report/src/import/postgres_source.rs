//! `LiteLLM_SpendLogs` straight from LiteLLM's Postgres, read-only. Each row is fetched as
//! `row_to_json` text so the same SpendLogs reader handles it as a JSON line; rows stream from the
//! server, so memory stays bounded.

use chrono::{DateTime, Utc};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use tollgate_core::{PriceTable, Record};

use super::{Detected, InputSummary, RowKind};
use crate::ReportError;

/// Reads the table at `url` (a `postgres://` URL; `?options=-csearch_path%3D…` picks a schema).
pub fn import_postgres(
    url: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    prices: &PriceTable,
    sink: &mut dyn FnMut(Record) -> bool,
) -> Result<InputSummary, ReportError> {
    let err = |e: postgres::Error| ReportError::Postgres(e.to_string());
    let mut client = Client::connect(url, NoTls).map_err(err)?;
    let mut tx = client.build_transaction().read_only(true).start().map_err(err)?;
    let since = since.map(|t| t.to_rfc3339());
    let until = until.map(|t| t.to_rfc3339());
    let sql = r#"SELECT row_to_json(t)::text FROM "LiteLLM_SpendLogs" t
                 WHERE ($1::text IS NULL OR t."startTime" >= $1::timestamptz)
                   AND ($2::text IS NULL OR t."startTime" < $2::timestamptz)
                 ORDER BY t."startTime""#;
    let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&since, &until];
    let mut rows = tx.query_raw(sql, params).map_err(err)?;
    let mut summary = InputSummary::new(&redact(url), Some(Detected::Postgres.describe()), false);
    let mut n = 0u64;
    while let Some(row) = rows.next().map_err(err)? {
        n += 1;
        let json: String = row.try_get(0).map_err(err)?;
        match RowKind::LitellmSpendLogs.convert(json.as_bytes(), prices) {
            Ok(rec) => {
                summary.records += 1;
                if !sink(rec) {
                    break;
                }
            }
            Err(error) => summary.reject(n, &error),
        }
    }
    drop(rows);
    tx.rollback().map_err(err)?;
    Ok(summary)
}

/// The URL without its password, for the report.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let query_free = &url[at..];
            let query_free = query_free.split('?').next().unwrap_or(query_free);
            format!("{}{}{}", &url[..s + 3], user, query_free)
        }
        _ => url.split('?').next().unwrap_or(url).to_string(),
    }
}
