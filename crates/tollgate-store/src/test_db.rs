//! Tests' own Postgres databases (feature `test-support`): each test makes a fresh database with
//! a fresh owner role on the server named by `TOLLGATE_TEST_POSTGRES_URL`, and drops both when
//! it ends. The role is what lets a test take Postgres away from a gateway (`block`: the role may
//! no longer log in and its sessions are ended) and give it back (`unblock`).

use postgres::{Client, NoTls};

/// A database (and its owner role) that exists until this value is dropped.
pub struct TestDatabase {
    /// The URL a gateway uses: the fresh role on the fresh database.
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// `prefix` names the test, so a leftover database says where it came from.
    pub fn create(prefix: &str) -> Result<TestDatabase, String> {
        let admin_url = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .map_err(|_| "TOLLGATE_TEST_POSTGRES_URL is not set".to_string())?;
        let nonce: u64 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let name = format!("tg_{prefix}_{}_{:x}", std::process::id(), nonce & 0xff_ffff);
        let mut admin = Client::connect(&admin_url, NoTls).map_err(|e| format!("connect {admin_url}: {e}"))?;
        // One statement each: CREATE DATABASE cannot run inside the transaction a multi-statement
        // query would be.
        for sql in [
            format!("CREATE ROLE {name} LOGIN"),
            format!("CREATE DATABASE {name} OWNER {name}"),
        ] {
            admin
                .batch_execute(&sql)
                .map_err(|e| format!("{sql}: {}", crate::error::postgres_text(&e)))?;
        }
        let url = with_user_and_db(&admin_url, &name, &name);
        Ok(TestDatabase { url, name, admin_url })
    }

    /// A connection as the server's admin (the URL the tests were given) to this database.
    pub fn admin(&self) -> Result<Client, String> {
        let url = with_db(&self.admin_url, &self.name);
        Client::connect(&url, NoTls).map_err(|e| format!("connect {url}: {e}"))
    }

    /// Runs this build's migrations up to `version` only, as the gateway's role: the database
    /// as an older tollgate left it (to test what the next migration does to its rows).
    pub fn migrate_to(&self, version: u16) -> Result<(), String> {
        let mut client = Client::connect(&self.url, NoTls).map_err(|e| format!("connect {}: {e}", self.url))?;
        crate::migrate::postgres_up_to(&mut client, version, &self.name).map_err(|e| e.to_string())
    }

    /// Postgres goes away for the gateway: its role may not log in, its sessions are ended.
    pub fn block(&self) -> Result<(), String> {
        let mut admin = Client::connect(&self.admin_url, NoTls).map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!(
                "ALTER ROLE {0} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{0}';",
                self.name
            ))
            .map_err(|e| e.to_string())
    }

    /// Postgres is back.
    pub fn unblock(&self) -> Result<(), String> {
        let mut admin = Client::connect(&self.admin_url, NoTls).map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!("ALTER ROLE {} LOGIN;", self.name))
            .map_err(|e| e.to_string())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
}

/// `url` with its database replaced.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `url` with its user (and password) and database replaced.
fn with_user_and_db(url: &str, user: &str, db: &str) -> String {
    let url = with_db(url, db);
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map_or(0, |i| i + 1);
    format!("{}{user}@{}", &url[..scheme_end], &rest[host_start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_test_database_and_role() {
        assert_eq!(
            with_user_and_db("postgres://postgres@127.0.0.1:5432/test", "tg_x", "tg_x"),
            "postgres://tg_x@127.0.0.1:5432/tg_x"
        );
        assert_eq!(
            with_user_and_db("postgres://u:pw@h/test?sslmode=disable", "r", "d"),
            "postgres://r@h/d?sslmode=disable"
        );
        assert_eq!(with_db("postgresql://h:5432", "d"), "postgresql://h:5432/d");
    }
}
