//! Stage 2, admit: whether this caller may send a request now. The place where per-key model
//! lists, budgets and rate limits are checked; the master key is always admitted.

use tollgate_core::GatewayError;

use crate::pipeline::authenticate::Caller;
use crate::state::LiveState;

/// `Ok` when the caller may go on; otherwise the refusal (403, 429 with `retry-after`, …).
pub fn admit(_caller: &Caller, _live: &LiveState) -> Result<(), GatewayError> {
    Ok(())
}
