//! Stage 1, authenticate: who is calling. The master key, a virtual key (`/key/generate`), or
//! nobody with `--insecure-dev` and no master key.
//!
//! A virtual key is looked up by the SHA-256 of what was presented, so a stored hash sent as a
//! key is hashed again and never matches (LiteLLM's pass-the-hash advisory).

use std::sync::Arc;

use axum::http::HeaderMap;
use chrono::Utc;
use tollgate_core::{ErrorKind, Fault, GatewayError};
use tollgate_store::KeyRow;

use crate::app::App;
use crate::edge::{constant_time_eq, presented_key};
use crate::keys::hash_key;
use crate::owners::{self, Owners};
use crate::state::LiveState;

/// An authenticated caller.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// What records name the caller's key by (`master_key`, a key's alias or `sk-...abcd`;
    /// `None` with auth off).
    pub key_alias: Option<String>,
    /// The virtual key, when the caller used one (never the master key).
    pub key: Option<Arc<KeyRow>>,
    /// The key's user, team and team membership, charged with the key's requests.
    pub owners: Owners,
}

impl Caller {
    /// Whether the caller may call this model group or workflow: the master key (and no auth)
    /// may call everything, a virtual key what its `models` list and its team's allow (empty:
    /// everything).
    pub fn may_use(&self, model: &str) -> bool {
        self.key.as_ref().is_none_or(|k| k.allows(model)) && self.owners.team.as_ref().is_none_or(|t| t.allows(model))
    }

    /// The master key, or no auth at all: may use the management API.
    pub fn is_admin(&self) -> bool {
        self.key.is_none()
    }
}

/// The caller behind the request's credentials, or 401. Unauthenticated traffic is answered
/// without a record: it would let anyone fill the store.
pub async fn caller(app: &App, live: &LiveState, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let Some(master) = live.config.master_key.as_ref().filter(|_| app.auth_enabled) else {
        return Ok(Caller::default());
    };
    let presented = match presented_key(headers) {
        None | Some("") => return Err(missing()),
        Some(p) => p,
    };
    if constant_time_eq(presented.as_bytes(), master.expose().as_bytes()) {
        return Ok(Caller {
            key_alias: Some("master_key".into()),
            ..Caller::default()
        });
    }
    let token = hash_key(presented);
    let key = match app.keys.lookup(&token).await {
        Ok(Some(k))
            if constant_time_eq(k.token.as_bytes(), token.as_bytes())
                // The key this one replaced, inside its grace period (`/key/regenerate`).
                || k.in_grace(&token, Utc::now()) =>
        {
            k
        }
        Ok(_) => return Err(invalid()),
        Err(e) => return Err(store_unreachable(&e)),
    };
    if key.blocked {
        return Err(GatewayError::new(
            ErrorKind::Authentication,
            "this API key is blocked; ask the gateway's admin to unblock it (POST /key/unblock)",
        )
        .with_code("key_blocked"));
    }
    if key.expired(Utc::now()) {
        let when = key.expires.map(|e| e.to_rfc3339()).unwrap_or_default();
        return Err(GatewayError::new(
            ErrorKind::Authentication,
            format!("this API key expired at {when}; ask for a new key or a longer duration (POST /key/update)"),
        )
        .with_code("expired_key"));
    }
    let owners = owners::of_key(&app.keys, &key)
        .await
        .map_err(|e| store_unreachable(&e))?;
    if let Some(team) = owners.team.as_ref().filter(|t| t.row.flag("blocked")) {
        return Err(GatewayError::new(
            ErrorKind::Authentication,
            format!(
                "team {} of this API key is blocked; ask the gateway's admin to unblock it (POST /team/update with `blocked: false`)",
                team.label()
            ),
        )
        .with_code("team_blocked"));
    }
    Ok(Caller {
        key_alias: Some(key.key_alias.clone().unwrap_or_else(|| key.key_name.clone())),
        key: Some(key),
        owners,
    })
}

fn store_unreachable(e: &tollgate_store::StoreError) -> GatewayError {
    tracing::warn!(error = %e, "cannot look up a virtual key or its owners");
    GatewayError::new(
        ErrorKind::Internal,
        "cannot verify the API key right now (the key store is unreachable); retry shortly",
    )
    .with_status(503)
    .with_code("key_store_unavailable")
    .with_fault(Fault::Gateway)
    .with_retry_after(1)
}

fn missing() -> GatewayError {
    GatewayError::new(
        ErrorKind::Authentication,
        "missing API key: send the gateway's master key or a virtual key as `Authorization: Bearer <key>` or `x-api-key: <key>`",
    )
    .with_code("missing_api_key")
}

fn invalid() -> GatewayError {
    GatewayError::new(ErrorKind::Authentication, "invalid API key").with_code("invalid_api_key")
}
