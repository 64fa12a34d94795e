//! Stage 6 for a comma-separated `model` (`"gpt-4o,claude-sonnet"`, LiteLLM's): every group is
//! asked at once through the one routing loop ([`route_request`]), the first answer wins (for a
//! stream, the first whose first event arrived) and the others are cancelled.
//!
//! Each contestant routes with a draft of its own (same trace as the request): its failed
//! attempts leave their records as usual, and a contestant cancelled while it waited leaves one
//! record saying so (status 499, `cancelled`, the client's fault — never the provider's, so no
//! deployment cools down for losing a race). The winner's answer continues on the request's own
//! draft, which carries its charges, limits and admission.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tollgate_core::{ErrorKind, Fault, GatewayError};

use crate::app::App;
use crate::body::RequestBody;
use crate::pipeline::draft::Draft;
use crate::pipeline::endpoint::Endpoint;
use crate::pipeline::route::{Failure, Plan, Routed, Tries, route_request};
use crate::state::LiveState;

/// What a contestant still waiting when another answered is recorded with.
fn cancelled() -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        "cancelled: another model the request named answered first",
    )
    .with_status(499)
    .with_code("cancelled")
    .with_fault(Fault::Client)
}

/// Asks every group in `groups` at once; the first answer, moved onto `draft`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn race(
    app: &Arc<App>,
    live: &LiveState,
    endpoint: Endpoint,
    body: &RequestBody,
    stream: bool,
    draft: &mut Draft,
    groups: &[String],
    plan: &Plan<'_>,
) -> (Routed, Tries) {
    let pre_ms = draft.gateway_ms(draft.elapsed_ms(), 0.0);
    let mut running = FuturesUnordered::new();
    for group in groups {
        let mut child = draft.contestant(group);
        // Said only if it is dropped still waiting, i.e. when another contestant won.
        child.abandon_as(cancelled());
        let mut body = body.clone();
        running.push(async move {
            let (routed, tries) = route_request(app, live, endpoint, &mut body, stream, &mut child, group, plan).await;
            (routed, tries, child)
        });
    }
    let mut total = Tries::default();
    let mut last: Option<Failure> = None;
    while let Some((routed, tries, mut child)) = running.next().await {
        total.attempts += tries.attempts;
        total.retries += tries.retries;
        total.fallbacks += tries.fallbacks;
        draft.attempts += tries.attempts;
        // The contestant's attempts have their records; the request's record is the parent's.
        child.deployment = None;
        child.closed = true;
        match routed {
            Ok((d, sent, at, _)) => {
                // Every other contestant still running is cancelled by being dropped: its draft
                // records it as such.
                drop(running);
                // The losers' waits overlapped the winner's; only the winner's failed attempts
                // were time the answer waited on providers.
                draft.failed_upstream_ms = child.failed_upstream_ms;
                draft.use_deployment(&d);
                draft.record.attempt = child.record.attempt;
                draft.record.mocked = child.record.mocked;
                draft.record.provider = std::mem::take(&mut child.record.provider);
                return (Ok((d, sent, at, pre_ms)), total);
            }
            Err(f) => last = Some(f),
        }
    }
    let failure = last.unwrap_or_else(|| Failure {
        error: GatewayError::new(ErrorKind::Internal, "no model was tried"),
        retry_after: None,
        upstream_ms: 0.0,
    });
    (Err(failure), total)
}
