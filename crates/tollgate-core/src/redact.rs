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
//! a fragment is masked whole.

/// What a hidden value is replaced with.
pub const MASK: &str = "***";

/// Query keys whose values are protocol switches, never credentials.
const PUBLIC_QUERY_KEYS: &[&str] = &["alt", "api-version", "api_version"];

/// One URL with its credentials masked. Text without `://` is treated as a URL without a scheme
/// (only its query and fragment can be masked). Never fails: a string that is not a URL keeps
/// whatever is not userinfo, query or fragment.
pub fn url(s: &str) -> String {
    let (scheme, rest) = match s.find("://") {
        Some(i) => (&s[..i + 3], &s[i + 3..]),
        None => ("", s),
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(scheme);
    let authority_end = if scheme.is_empty() {
        0
    } else {
        rest.find(['/', '?', '#']).unwrap_or(rest.len())
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
            out.push_str(&query_masked(query));
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

fn query_masked(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if PUBLIC_QUERY_KEYS.iter().any(|p| p.eq_ignore_ascii_case(k)) => pair.to_string(),
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
}
