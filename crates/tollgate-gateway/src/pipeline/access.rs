//! Stage 4b, access: whether the caller's key — and its team — may call the model group or
//! workflow the request resolved to. A workflow counts as one model: a key allowed `cf-x` runs
//! all of its steps.

use tollgate_core::{ErrorKind, GatewayError};

use crate::pipeline::authenticate::Caller;

/// `Ok` when the key may call `requested` (as the client wrote it) or what it resolved to.
pub fn check(caller: &Caller, requested: &str, resolved: &str) -> Result<(), GatewayError> {
    if caller.may_use(requested) || caller.may_use(resolved) {
        return Ok(());
    }
    let key_allows = caller
        .key
        .as_ref()
        .is_none_or(|k| k.allows(requested) || k.allows(resolved));
    let message = match (&caller.owners.team, key_allows) {
        (Some(team), true) => format!(
            "team {} of this API key may not call `{requested}`; it may call: {} (change with POST /team/update)",
            team.label(),
            team.row.models().join(", ")
        ),
        _ => format!(
            "this API key may not call `{requested}`; it may call: {} (change with POST /key/update)",
            caller.key.as_ref().map(|k| k.models.join(", ")).unwrap_or_default()
        ),
    };
    Err(GatewayError::new(ErrorKind::Authentication, message).with_code("key_model_access_denied"))
}
