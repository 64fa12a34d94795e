//! Who is signed in to the dashboard: a server-side table of sessions, each found by the random
//! id in an `HttpOnly` cookie, with its own CSRF token and an end. The browser holds no key and
//! nothing it could replay after sign-out: the id means something only while the row exists.
//! Also the sign-in limiter: failed sign-ins per client address, so the form cannot be used to
//! guess keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session lasts after sign-in (not extended by use: a stolen cookie ages out).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Failed sign-ins an address may make in [`FAILURE_WINDOW`] before it must wait.
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// Sessions kept at most; the oldest go first beyond it (a flood of sign-ins cannot grow memory
/// without bound).
const MAX_SESSIONS: usize = 10_000;

/// What the signed-in person may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// The master key (or a gateway without auth): everything.
    Admin,
    /// A virtual key: its own records, usage and budget.
    Key {
        /// The key's stored SHA-256 (hex): checked on every page, so a blocked or deleted key's
        /// session ends at once.
        token: String,
        /// Its first 16 hex digits, as records carry it.
        hash16: String,
        /// Its alias, else `sk-...abcd`.
        name: String,
    },
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        matches!(self, Viewer::Admin)
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub viewer: Viewer,
    /// Sent back in every form; a change without it is refused.
    pub csrf: String,
    pub ends: Instant,
    /// The key signed in with, kept in this table only (never sent back to the browser): the
    /// playground's requests go through the pipeline with it, so its limits, budget and
    /// records are the key's own.
    pub credential: Credential,
}

/// A key held for a session; its `Debug` never shows it.
#[derive(Clone, Default)]
pub struct Credential(String);

impl Credential {
    pub fn new(key: &str) -> Credential {
        Credential(key.to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

/// A random token: 32 bytes from the OS's CSPRNG, as hex.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session; returns its id (the cookie's value).
    pub fn open(
        &self,
        viewer: Viewer,
        credential: Credential,
        now: Instant,
    ) -> Result<(String, Session), getrandom::Error> {
        let id = random_token()?;
        let session = Session {
            viewer,
            csrf: random_token()?,
            ends: now + SESSION_TTL,
            credential,
        };
        if let Ok(mut t) = self.table.lock() {
            t.retain(|_, s| s.ends > now);
            if t.len() >= MAX_SESSIONS
                && let Some(oldest) = t.iter().min_by_key(|(_, s)| s.ends).map(|(k, _)| k.clone())
            {
                t.remove(&oldest);
            }
            t.insert(id.clone(), session.clone());
        }
        Ok((id, session))
    }

    /// The live session with this id; an ended one is removed.
    pub fn find(&self, id: &str, now: Instant) -> Option<Session> {
        let mut t = self.table.lock().ok()?;
        match t.get(id) {
            Some(s) if s.ends > now => Some(s.clone()),
            Some(_) => {
                t.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut t) = self.table.lock() {
            t.remove(id);
        }
    }
}

/// Failed sign-ins per client address, in fixed windows.
#[derive(Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl SignInLimiter {
    /// `Some(wait)` while the address has used up its failures.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let t = self.failures.lock().ok()?;
        let (start, n) = t.get(&ip)?;
        let ends = *start + FAILURE_WINDOW;
        (*n >= MAX_FAILURES && ends > now).then(|| ends - now)
    }

    pub fn failed(&self, ip: IpAddr, now: Instant) {
        if let Ok(mut t) = self.failures.lock() {
            // Old windows go, so the table holds only addresses that failed lately.
            t.retain(|_, (start, _)| *start + FAILURE_WINDOW > now);
            let entry = t.entry(ip).or_insert((now, 0));
            entry.1 += 1;
        }
    }

    /// A successful sign-in clears the address's count.
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut t) = self.failures.lock() {
            t.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_and_close() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (id, session) = s.open(Viewer::Admin, Credential::new("sk-secret"), t0).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert!(!format!("{session:?}").contains("sk-secret"));
        assert!(s.find(&id, t0).is_some());
        assert!(s.find(&id, t0 + SESSION_TTL + Duration::from_secs(1)).is_none());
        assert!(s.find(&id, t0).is_none(), "an ended session is removed");
        let (id, _) = s.open(Viewer::Admin, Credential::default(), t0).unwrap();
        s.close(&id);
        assert!(s.find(&id, t0).is_none());
    }

    #[test]
    fn an_address_waits_after_too_many_failures() {
        let l = SignInLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(l.blocked(ip, t0).is_none());
            l.failed(ip, t0);
        }
        assert!(l.blocked(ip, t0).is_some());
        assert!(l.blocked(other, t0).is_none(), "per address");
        assert!(l.blocked(ip, t0 + FAILURE_WINDOW).is_none(), "the window ends");
        l.succeeded(ip);
        assert!(l.blocked(ip, t0).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
