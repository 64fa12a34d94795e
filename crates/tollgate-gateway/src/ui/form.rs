//! A dashboard form's text as a management API body. The pages pass on what was typed, so the
//! API's own checks and messages apply (a negative budget, a count that is not whole, an unknown
//! period); only what the API could not read at all — words where it wants a number — is
//! refused here, naming the field.

use serde_json::{Map, Number, Value, json};

/// What an empty field means: on a create form, "not given"; on a change form, "remove it"
/// (the API's `null`), as the keys page's budget form has always done.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Blank {
    Omit,
    Clear,
}

/// A number field (`max_budget`, `tpm_limit`, …); `None` when the form has no such field.
pub fn number(body: &mut Map<String, Value>, name: &str, given: Option<&str>, blank: Blank) -> Result<(), String> {
    let Some(given) = given.map(str::trim) else {
        return Ok(());
    };
    if given.is_empty() {
        if blank == Blank::Clear {
            body.insert(name.into(), Value::Null);
        }
        return Ok(());
    }
    let n: Number = given.parse().map_err(|_| format!("{name} {given:?} is not a number"))?;
    body.insert(name.into(), Value::Number(n));
    Ok(())
}

/// A text field (`user_email`, `budget_duration`, …).
pub fn text(body: &mut Map<String, Value>, name: &str, given: Option<&str>, blank: Blank) {
    match given.map(str::trim) {
        None => {}
        Some("") if blank == Blank::Omit => {}
        Some("") => {
            body.insert(name.into(), Value::Null);
        }
        Some(v) => {
            body.insert(name.into(), json!(v));
        }
    }
}

/// A comma-separated list of names (`models`); an empty one is left out (the API's "all").
pub fn names(body: &mut Map<String, Value>, name: &str, given: Option<&str>) {
    let list: Vec<&str> = given
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !list.is_empty() {
        body.insert(name.into(), json!(list));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_numbers_and_names() {
        let mut b = Map::new();
        number(&mut b, "max_budget", Some(" 7.5 "), Blank::Omit).unwrap();
        number(&mut b, "tpm_limit", Some(""), Blank::Clear).unwrap();
        number(&mut b, "rpm_limit", Some(""), Blank::Omit).unwrap();
        number(&mut b, "max_parallel_requests", None, Blank::Clear).unwrap();
        // Passed on as typed: the API says why -1 or 1.5 will not do.
        number(&mut b, "soft_budget", Some("-1"), Blank::Omit).unwrap();
        let e = number(&mut b, "max_budget", Some("lots"), Blank::Omit).unwrap_err();
        assert!(e.contains("max_budget") && e.contains("is not a number"), "{e}");
        text(&mut b, "budget_duration", Some(""), Blank::Clear);
        text(&mut b, "user_email", Some(""), Blank::Omit);
        names(&mut b, "models", Some(" cheap, ,dear "));
        assert_eq!(
            Value::Object(b),
            json!({"max_budget": 7.5, "tpm_limit": null, "soft_budget": -1, "budget_duration": null, "models": ["cheap", "dear"]})
        );
    }
}
