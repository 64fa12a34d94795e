//! Durations in the config (timeouts, cooldowns): one reader and one ceiling shared by `config`
//! and `routing`, so every section refuses the same overflowing values.

use serde_json::Value;

use crate::config_error::{ConfigError, invalid};

/// Longest timeout or cooldown, seconds (a day): longer is a typo, and `1e308` overflowed the
/// cooldown clock so that it never applied.
pub(crate) const MAX_SECONDS: f64 = 86_400.0;

/// A positive, finite number of seconds up to `max`: durations are built from these, and a
/// `1e308` or `.inf` would overflow (or panic) where the clock arithmetic uses them.
pub(crate) fn seconds_up_to(v: &Value, path: &str, file: &str, max: f64) -> Result<f64, ConfigError> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|s| *s > 0.0 && *s <= max)
        .ok_or_else(|| {
            invalid(
                file,
                path,
                format!("expected a positive number of seconds, at most {max}, found {v}"),
            )
        })
}
