//! The shared record store's connection settings: which Postgres database, from where, with how
//! many connections.
//!
//! Records are always written to SQLite under `--data-dir` first; a database URL adds Postgres as
//! the store they are shipped to, so several gateways share one record store. The URL can come
//! from three places, and [`choose_database`] is the one place that decides between them, for
//! `serve` and `check` alike (so `check` says exactly what `serve` would use).

use serde::Serialize;

use crate::env::Env;
use crate::redact;
use crate::secret::Secret;

/// `general_settings.database_connection_pool_limit` when it is not written (LiteLLM's default).
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// More connections than this from one gateway is a typo (Postgres' own default cap is 100).
pub const MAX_POOL_SIZE: u32 = 1000;

/// Where a URL came from, as [`DatabaseChoice::source`] names it and messages quote it.
pub const FROM_FLAG: &str = "--database-url";
pub const FROM_CONFIG: &str = "general_settings.database_url";
pub const FROM_ENV: &str = "DATABASE_URL";

/// `general_settings.database_url` with `database_connection_pool_limit`, as the config wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseSettings {
    /// A `postgres://` or `postgresql://` URL (checked when the config is read).
    pub url: Secret,
    /// Connections this gateway may hold open to the database.
    pub pool_size: u32,
}

/// The database the gateway ships records to, once the flag, config and environment have been
/// weighed. `Debug` masks the URL's password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseChoice {
    /// The URL as given (credentials included): the store connects with it; show
    /// [`DatabaseChoice::redacted_url`] instead.
    pub url: String,
    pub pool_size: u32,
    /// [`FROM_FLAG`], [`FROM_CONFIG`] or [`FROM_ENV`].
    pub source: &'static str,
}

impl DatabaseChoice {
    /// The URL with its password and secret query values masked, for startup lines and `check`.
    pub fn redacted_url(&self) -> String {
        redact::database_url(&self.url)
    }
}

impl std::fmt::Debug for DatabaseChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseChoice")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("source", &self.source)
            .finish()
    }
}

/// Why `url` cannot be the record store's database, or `Ok` when it can. The message says what
/// to write instead but never repeats the value (a URL that failed to parse cannot be masked
/// reliably); callers prefix where the URL came from.
pub fn check_url(url: &str) -> Result<(), String> {
    let fix = "write it as postgres://user:password@host:5432/dbname (or postgresql://…)";
    // Only the scheme is checked: the Postgres client parses the rest (libpq's forms include
    // some a generic URL parser refuses, such as `postgres://user@/db?host=/run/postgresql`).
    let scheme = url
        .trim()
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        })
        .ok_or_else(|| format!("is not a URL; {fix}"))?;
    if scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql") {
        Ok(())
    } else {
        Err(format!(
            "uses `{scheme}:`, but only Postgres is supported as the shared record store; {fix}, or leave the \
             database unset to keep records in SQLite under --data-dir (the default)"
        ))
    }
}

/// The database to ship records to, or `None` for SQLite only.
///
/// Precedence: the `--database-url` flag, then `general_settings.database_url` (`configured`),
/// then the `DATABASE_URL` environment variable. The config beats the environment because
/// LiteLLM itself exports `DATABASE_URL` from its config's `database_url`, so a process running
/// beside LiteLLM may carry a stale value the config has since replaced. An empty or blank value
/// counts as not set wherever it comes from. `pool_size` is
/// `general_settings.database_connection_pool_limit` (or [`DEFAULT_POOL_SIZE`]), passed apart from
/// `configured` because it applies whichever source the URL comes from, including when the
/// config names no URL at all.
///
/// An `Err` is a message naming the source and the fix.
pub fn choose_database(
    flag: Option<&str>,
    configured: Option<&DatabaseSettings>,
    pool_size: u32,
    env: &dyn Env,
) -> Result<Option<DatabaseChoice>, String> {
    let from_env = env.var(FROM_ENV);
    let candidates = [
        (flag.map(str::to_string), FROM_FLAG),
        (configured.map(|c| c.url.expose().to_string()), FROM_CONFIG),
        (from_env, FROM_ENV),
    ];
    let Some((url, source)) = candidates
        .into_iter()
        .find_map(|(url, source)| url.filter(|u| !u.trim().is_empty()).map(|u| (u, source)))
    else {
        return Ok(None);
    };
    let shown = match source {
        FROM_ENV => "DATABASE_URL (environment variable)",
        other => other,
    };
    check_url(&url).map_err(|problem| format!("{shown}: the database URL {problem}"))?;
    Ok(Some(DatabaseChoice {
        url: url.trim().to_string(),
        pool_size,
        source,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn settings(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: Secret::new(url),
            pool_size: 7,
        }
    }

    fn chosen(
        flag: Option<&str>,
        configured: Option<&DatabaseSettings>,
        e: &[(&str, &str)],
    ) -> Option<(String, &'static str)> {
        choose_database(flag, configured, 7, &env(e))
            .unwrap()
            .map(|c| (c.url, c.source))
    }

    #[test]
    fn the_flag_beats_the_config_which_beats_the_environment() {
        let cfg = settings("postgres://cfg@h/db");
        let e = [("DATABASE_URL", "postgres://env@h/db")];
        assert_eq!(
            chosen(Some("postgresql://flag@h/db"), Some(&cfg), &e),
            Some(("postgresql://flag@h/db".to_string(), "--database-url"))
        );
        assert_eq!(
            chosen(None, Some(&cfg), &e),
            Some(("postgres://cfg@h/db".to_string(), "general_settings.database_url"))
        );
        assert_eq!(
            chosen(None, None, &e),
            Some(("postgres://env@h/db".to_string(), "DATABASE_URL"))
        );
        assert_eq!(chosen(None, None, &[]), None, "nothing set: SQLite only");
    }

    #[test]
    fn an_empty_value_counts_as_not_set() {
        let e = [("DATABASE_URL", "postgres://env@h/db")];
        assert_eq!(
            chosen(Some(""), Some(&settings("  ")), &e),
            Some(("postgres://env@h/db".to_string(), "DATABASE_URL"))
        );
        assert_eq!(chosen(Some(" "), None, &[("DATABASE_URL", "")]), None);
    }

    #[test]
    fn the_pool_size_applies_whichever_source_wins() {
        let c = choose_database(None, None, 42, &env(&[("DATABASE_URL", "postgres://h/db")]))
            .unwrap()
            .unwrap();
        assert_eq!((c.pool_size, c.source), (42, "DATABASE_URL"));
        let c = choose_database(Some("postgres://h/db"), Some(&settings("postgres://x/y")), 3, &env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!((c.pool_size, c.source), (3, "--database-url"));
    }

    #[test]
    fn a_url_that_is_not_postgres_is_refused_naming_where_it_came_from() {
        let err = choose_database(None, None, 10, &env(&[("DATABASE_URL", "mysql://u:hunter2@h/db")])).unwrap_err();
        assert!(err.starts_with("DATABASE_URL (environment variable): "), "{err}");
        assert!(err.contains("`mysql:`") && err.contains("only Postgres"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = choose_database(Some("sqlite:///tmp/x.db"), None, 10, &env(&[])).unwrap_err();
        assert!(err.starts_with("--database-url: "), "{err}");
        assert!(err.contains("SQLite under --data-dir"), "{err}");
        let err = choose_database(Some("not a url pw-secret"), None, 10, &env(&[])).unwrap_err();
        assert!(err.contains("is not a URL") && !err.contains("pw-secret"), "{err}");
        for ok in [
            "postgres://h/db",
            "postgresql://u@/db?host=/run/postgresql",
            "POSTGRES://h/db",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        // The environment is only read when nothing above it is set, so a stale value there
        // does not stop a gateway started with the flag.
        assert!(
            choose_database(
                Some("postgres://h/db"),
                None,
                10,
                &env(&[("DATABASE_URL", "mysql://h/db")])
            )
            .is_ok()
        );
    }

    #[test]
    fn a_choice_never_shows_its_password() {
        let c = choose_database(Some("postgres://tg:s3cret-pw@db:5432/app"), None, 10, &env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(c.url, "postgres://tg:s3cret-pw@db:5432/app", "kept for connecting");
        assert_eq!(c.redacted_url(), "postgres://tg:***@db:5432/app");
        assert!(!format!("{c:?}").contains("s3cret-pw"), "{c:?}");
    }
}
