//! Stage 1, authenticate: who is calling. Today the master key (or no auth with
//! `--insecure-dev`); virtual keys resolve to their caller here too.

use axum::http::HeaderMap;
use tollgate_core::GatewayError;

use crate::app::App;
use crate::edge::authorize;
use crate::state::LiveState;

/// An authenticated caller.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// What records name the caller's key by (`master_key`; `None` with auth off).
    pub key_alias: Option<String>,
}

/// The caller behind the request's credentials, or 401. Unauthenticated traffic is answered
/// without a record: it would let anyone fill the store.
pub fn caller(app: &App, live: &LiveState, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let key = live.config.master_key.as_ref().filter(|_| app.auth_enabled);
    let key_alias = authorize(headers, key)?;
    Ok(Caller { key_alias })
}
