//! Credentials written into URLs, masked wherever a URL is shown or stored.
//!
//! LiteLLM users put credentials in `api_base` (`http://user:pass@host/v1`, `…/v1?api-key=…`) and
//! in Redis URLs (`redis://:password@host:6379`). The real URL is needed to send requests; every
//! other use (records, client-facing errors, startup lines, `check`, `/admin/config`) goes
//! through [`url`] or [`text`].
//!
//! The rule: a password in the userinfo becomes `***` (a userinfo without a password is a token
//! by itself, as in `https://TOKEN@host`, and is masked whole); every query value becomes `***`
//! except for a few keys known to carry no secret (`alt=sse`, Azure's `api-version`), because a
//! query key that "looks like a secret" cannot be guessed reliably (`key`, `code`, `sig`, `x`…);
//! a fragment is masked whole. Database URLs ([`database_url`]) follow the same rule with their
//! own list of visible query keys, and keep a user name without a password visible.

/// What a hidden value is replaced with.
pub const MASK: &str = "***";

/// Query keys whose values are protocol switches, never credentials.
const PUBLIC_QUERY_KEYS: &[&str] = &["alt", "api-version", "api_version"];

/// One URL with its credentials masked. Text without `://` is treated as a URL without a scheme
/// (only its query and fragment can be masked). Never fails: a string that is not a URL keeps
/// whatever is not userinfo, query or fragment.
pub fn url(s: &str) -> String {
    masked(s, &Rules::GENERIC)
}

/// A database connection URL (`postgres://user:password@host:5432/db?sslmode=require`) with its
/// credentials masked, where [`url`] would hide too much to be useful and too little to be safe:
/// - a userinfo without a password is the database user name, not a token, so it stays visible
///   (`postgres://tg@db/app` is shown as written);
/// - the query keys that only choose how to connect (`sslmode`, `application_name`,
///   `connect_timeout`, `target_session_attrs`) stay visible; every other value is masked, since
///   libpq also takes `password=…` (and key file passphrases) there;
/// - the userinfo runs to the last `@` before the query, so a password with an unencoded `/`
///   (which libpq would misread anyway) is still hidden.
pub fn database_url(s: &str) -> String {
    masked(s, &Rules::DATABASE)
}

/// What [`masked`] keeps visible; the rest of the rule is shared.
struct Rules {
    /// Query keys whose values are shown.
    public_query_keys: &'static [&'static str],
    /// A userinfo without `:` is a user name (shown) rather than a token (masked).
    bare_user_is_name: bool,
    /// The userinfo may run past a `/` (up to the last `@` before the query).
    userinfo_past_slash: bool,
}

impl Rules {
    const GENERIC: Rules = Rules {
        public_query_keys: PUBLIC_QUERY_KEYS,
        bare_user_is_name: false,
        userinfo_past_slash: false,
    };
    const DATABASE: Rules = Rules {
        public_query_keys: DATABASE_PUBLIC_QUERY_KEYS,
        bare_user_is_name: true,
        userinfo_past_slash: true,
    };
}

/// libpq connection parameters that choose how to connect and never carry a credential.
const DATABASE_PUBLIC_QUERY_KEYS: &[&str] = &["sslmode", "application_name", "connect_timeout", "target_session_attrs"];

fn masked(s: &str, rules: &Rules) -> String {
    let (scheme, rest) = match s.find("://") {
        Some(i) => (&s[..i + 3], &s[i + 3..]),
        None => ("", s),
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(scheme);
    let authority_end = if scheme.is_empty() {
        0
    } else {
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
        match rest[..query_start].rfind('@') {
            // The userinfo and host then end at the first `/` after that `@`.
            Some(at) if rules.userinfo_past_slash && at >= host_end => {
                rest[at..].find(['/', '?', '#']).map_or(rest.len(), |j| at + j)
            }
            _ => host_end,
        }
    };
    let (authority, after) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            match authority[..at].split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                None if rules.bare_user_is_name => out.push_str(&authority[..at]),
                None => out.push_str(MASK),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match after.find('#') {
        Some(i) => (&after[..i], Some(&after[i + 1..])),
        None => (after, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&query_masked(query, rules.public_query_keys));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        if !f.is_empty() {
            out.push_str(MASK);
        }
    }
    out
}

fn query_masked(query: &str, public_keys: &[&str]) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if public_keys.iter().any(|p| p.eq_ignore_ascii_case(k)) => pair.to_string(),
            Some((k, "")) => format!("{k}="),
            Some((k, _)) => format!("{k}={MASK}"),
            None if pair.is_empty() => String::new(),
            None => MASK.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Free text (an error message from the HTTP client, which embeds the URL it called) with every
/// URL in it masked as [`url`] does.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        // The scheme is the run of scheme characters right before `://`.
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        let end = rest[i + 3..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '(' | ')' | '`' | '\\'))
            .map_or(rest.len(), |j| i + 3 + j);
        out.push_str(&rest[..scheme_start]);
        out.push_str(&url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// True when `s` contains anything [`text`] would mask: the caller may then show the masked form.
pub fn has_credentials(s: &str) -> bool {
    text(s) != s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_password_query_values_and_fragment_are_masked() {
        assert_eq!(
            url("http://user:pass@host:8000/v1?api-key=sk-1&alt=sse#tok"),
            "http://user:***@host:8000/v1?api-key=***&alt=sse#***"
        );
        assert_eq!(url("redis://:pw@10.0.0.5:6379/"), "redis://:***@10.0.0.5:6379/");
        assert_eq!(url("https://ghp_token@host/x"), "https://***@host/x");
        assert_eq!(
            url("http://host/v1?api-version=2024-10-01&key="),
            "http://host/v1?api-version=2024-10-01&key="
        );
        assert_eq!(url("http://host/v1?sk-bare"), "http://host/v1?***");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for u in [
            "https://api.deepseek.com/v1",
            "http://127.0.0.1:9/v1",
            "http://m:1/v1beta/models/g:streamGenerateContent?alt=sse",
            "not a url",
            "",
        ] {
            assert_eq!(url(u), u);
            assert!(!has_credentials(u));
        }
    }

    #[test]
    fn an_at_sign_in_the_path_is_not_userinfo() {
        assert_eq!(url("http://host/models/a@b"), "http://host/models/a@b");
    }

    #[test]
    fn urls_inside_messages_are_masked() {
        let msg = "error sending request for url (http://u:hunter2@127.0.0.1:9/v1/chat/completions?api-key=sk-9): connect refused";
        let shown = text(msg);
        assert!(!shown.contains("hunter2") && !shown.contains("sk-9"), "{shown}");
        assert_eq!(
            shown,
            "error sending request for url (http://u:***@127.0.0.1:9/v1/chat/completions?api-key=***): connect refused"
        );
        assert_eq!(
            text("two: redis://:a@h and http://x?k=v."),
            "two: redis://:***@h and http://x?k=***"
        );
    }

    #[test]
    fn a_database_password_is_masked_and_connection_options_stay_visible() {
        assert_eq!(
            database_url("postgres://tg:secret@db:5432/app?sslmode=require"),
            "postgres://tg:***@db:5432/app?sslmode=require"
        );
        assert_eq!(
            database_url(
                "postgresql://tg:secret@db/app?sslmode=verify-full&application_name=tollgate&connect_timeout=5&target_session_attrs=read-write"
            ),
            "postgresql://tg:***@db/app?sslmode=verify-full&application_name=tollgate&connect_timeout=5&target_session_attrs=read-write"
        );
        assert_eq!(database_url("postgres://:secret@db/app"), "postgres://:***@db/app");
    }

    #[test]
    fn a_database_user_without_a_password_is_a_name_not_a_token() {
        for u in [
            "postgres://tg@db/app",
            "postgres://db:5432/app",
            "postgresql:///app",
            "postgres://h1:5432,h2:5432/app",
        ] {
            assert_eq!(database_url(u), u);
        }
        // The generic rule still treats a lone userinfo as a token.
        assert_eq!(url("postgres://tg@db/app"), "postgres://***@db/app");
    }

    #[test]
    fn every_other_database_query_value_is_masked() {
        assert_eq!(
            database_url("postgres://db/app?user=tg&password=secret&sslmode=require&sslpassword=kp&options=-c%20x"),
            "postgres://db/app?user=***&password=***&sslmode=require&sslpassword=***&options=***"
        );
        assert_eq!(
            database_url("postgres://tg:pw@db/app#frag"),
            "postgres://tg:***@db/app#***"
        );
        // Keys are matched whole, case-insensitively: a key that merely starts like a visible one is masked.
        assert_eq!(
            database_url("postgres://db/app?SSLMODE=disable&sslmode_x=secret"),
            "postgres://db/app?SSLMODE=disable&sslmode_x=***"
        );
    }

    #[test]
    fn a_database_password_with_odd_characters_is_still_hidden() {
        for (u, want) in [
            ("postgres://tg:p@ss@db/app", "postgres://tg:***@db/app"),
            ("postgres://tg:pa/ss@db/app", "postgres://tg:***@db/app"),
            ("postgres://tg:pa/ss@db", "postgres://tg:***@db"),
            (
                "postgres://tg:p%40ss@db:5432/app?sslmode=require",
                "postgres://tg:***@db:5432/app?sslmode=require",
            ),
        ] {
            let shown = database_url(u);
            assert_eq!(shown, want, "{u}");
            assert!(!shown.contains("ss@") && !shown.contains("pa"), "{u} -> {shown}");
        }
        // An `@` in the query is not userinfo.
        assert_eq!(
            database_url("postgres://db/app?application_name=a@b"),
            "postgres://db/app?application_name=a@b"
        );
    }
}
