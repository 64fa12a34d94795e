//! Stage 3b, end user: who the request is for, as the OpenAI `user` field names them (LiteLLM's
//! "customer"). The end user is charged with the request like the key's owners are: their
//! budget (their own, their budget tier's, or `litellm_settings.max_end_user_budget`) is held
//! and their spend recorded. A blocked end user is refused here.

use tollgate_core::{ErrorKind, GatewayError};
use tollgate_store::EntityKind;

use crate::app::App;
use crate::owners::{self, Owner};
use crate::pipeline::draft::{Draft, MAX_CLIENT_STRING, bounded};
use crate::pipeline::endpoint::Endpoint;
use crate::pipeline::parse::Request;

/// The end user a request names.
#[derive(Debug, Clone)]
pub struct EndUser {
    pub id: String,
    /// Their `/customer/new` row, when there is one.
    pub owner: Option<Owner>,
}

/// The request's end user (none when it names none), on the record; 403 when blocked.
pub async fn identify(
    app: &App,
    endpoint: Endpoint,
    request: &Request,
    draft: &mut Draft,
) -> Result<Option<EndUser>, GatewayError> {
    let named = endpoint.end_user_at.split_first().and_then(|(field, path)| {
        let mut v = request.body.get::<serde_json::Value>(field)?;
        for k in path {
            v = v.get(*k)?.clone();
        }
        v.as_str().map(str::to_string)
    });
    let Some(id) = named.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let id = bounded(&id, MAX_CLIENT_STRING).to_string();
    draft.record.end_user = Some(id.clone());
    let owner = owners::owner(&app.keys, EntityKind::Customer, &id).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot look up an end user");
        GatewayError::new(
            ErrorKind::Internal,
            "cannot check the request's end user right now (the key store is unreachable); retry shortly",
        )
        .with_status(503)
        .with_code("key_store_unavailable")
        .with_retry_after(1)
    })?;
    if owner.as_ref().is_some_and(|o| o.row.flag("blocked")) {
        return Err(GatewayError::new(
            ErrorKind::Authentication,
            format!("end user `{id}` (the request's `user` field) is blocked; unblock with POST /customer/unblock"),
        )
        .with_status(403)
        .with_code("end_user_blocked"));
    }
    Ok(Some(EndUser { id, owner }))
}
