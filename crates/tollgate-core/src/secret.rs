//! Secrets from the config (API keys, the master key, connection URLs). Kept apart from `config`
//! so that modules the loader uses (`database`) hold secrets without importing the loader.

use std::fmt;

use serde::Serialize;

/// A secret from the config (API or master key). Never printed, logged or serialised in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// What `check` and `/admin/config` show instead of the value.
    pub fn redacted(&self) -> String {
        let n = self.0.chars().count();
        if n <= 8 {
            "****".to_string()
        } else {
            let head: String = self.0.chars().take(3).collect();
            format!("{head}…**** ({n} chars)")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}
