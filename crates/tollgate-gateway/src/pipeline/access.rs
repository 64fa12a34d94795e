//! Stage 4b, access: whether the caller's key may call the model group or workflow the request
//! resolved to. A workflow counts as one model: a key allowed `cf-x` runs all of its steps.

use tollgate_core::{ErrorKind, GatewayError};

use crate::pipeline::authenticate::Caller;

/// `Ok` when the key may call `requested` (as the client wrote it) or what it resolved to.
pub fn check(caller: &Caller, requested: &str, resolved: &str) -> Result<(), GatewayError> {
    if caller.may_use(requested) || caller.may_use(resolved) {
        return Ok(());
    }
    let allowed = caller.key.as_ref().map(|k| k.models.join(", ")).unwrap_or_default();
    Err(GatewayError::new(
        ErrorKind::Authentication,
        format!("this API key may not call `{requested}`; it may call: {allowed} (change with POST /key/update)"),
    )
    .with_code("key_model_access_denied"))
}
