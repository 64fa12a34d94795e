//! The request path, written down once. [`handle`] is the list of stages every request on an
//! OpenAI-style endpoint goes through, in order; each stage is a module with a narrow input and
//! output that answers early with an OpenAI-shaped error:
//!
//! 1. [`authenticate`] — who is calling (401; unauthenticated traffic leaves no record)
//! 2. [`admit`] — whether the gateway may take another request (the global in-flight cap, 429),
//!    checked before the body is read
//! 3. [`parse`] — read the body within its limits (413/408) and parse it, keeping every field (400),
//!    then [`end_user`] — the end user its `user` field names (403 when blocked)
//! 4. [`resolve`] — the model group or workflow `model` names (404 listing the known names),
//!    then [`access`] — whether the caller's key may call it (401 `key_model_access_denied`),
//!    then [`limits`] — rpm, tpm and parallel limits of every scope the request counts in
//!    ([`limit_scopes`]; 429 `rpm_limit`, `tpm_limit`, `max_parallel_requests`),
//!    then [`budget`] — the estimated cost held against every budget the request is charged to:
//!    key, user, team, team member, end user, key × model, the gateway (429 `budget_exceeded`);
//!    for a model group, [`controls`] — the request's own `fallbacks`, `num_retries`, `timeout`
//!    and [`test_hooks`] (`mock_response`, …), the groups they name checked (400/401) before
//!    anything is counted
//! 5. [`lookup`] — the response cache, before any deployment is chosen
//! 6. [`route`] — attempts, retries and fallbacks over the group's deployments; [`race`] asks
//!    the groups of a comma-separated `model` at once and keeps the first answer
//! 7. respond — [`plain`], [`stream`], or [`replay`] for a cache hit; [`workflow`] runs its
//!    steps through stages 6–7
//! 8. [`draft`] — account and record: usage priced per bucket, one record per attempt and per
//!    request, handed to the writer off the request path
//!
//! After the answer, [`key_headers`] tells a virtual key its spend and limits, and
//! [`soft_budget`] reports a key past its soft budget.
//!
//! Endpoints ([`endpoint`]) are configurations of these stages, not copies of them: the ones
//! beside chat and embeddings differ only in how stage 6 puts them on the wire and stage 7 reads
//! the answer ([`passthrough`], with [`text_completion`] and [`form`]); Anthropic's Messages API
//! ([`messages`]) also writes its stream as Anthropic's events and its errors in Anthropic's
//! shape.

pub(crate) mod access;
pub(crate) mod admit;
pub mod authenticate;
pub(crate) mod budget;
pub(crate) mod charges;
pub(crate) mod controls;
pub mod count_tokens;
pub(crate) mod draft;
pub(crate) mod egress;
pub(crate) mod end_user;
pub mod endpoint;
pub(crate) mod form;
pub(crate) mod key_headers;
pub mod limit_scopes;
pub(crate) mod limits;
pub(crate) mod lookup;
pub(crate) mod messages;
pub(crate) mod parse;
pub(crate) mod passthrough;
pub(crate) mod plain;
pub(crate) mod race;
pub(crate) mod replay;
pub(crate) mod resolve;
pub(crate) mod route;
pub(crate) mod soft_budget;
pub(crate) mod stream;
pub(crate) mod test_hooks;
pub(crate) mod text_completion;
pub(crate) mod workflow;

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::edge::ApiError;
use crate::state::Target;
use draft::Draft;
use endpoint::Endpoint;
use lookup::Looked;
use route::Sent;

/// The request's future is moved into a box by axum and again by the router, so every byte of
/// it is copied twice per request and its stack frame touched. A stage that is rare (a workflow
/// run, a race over several groups) or large and optional (shared rate limits, the cache
/// lookup) is boxed where it is awaited, so it costs only the requests that use it; the test
/// `the_request_future_stays_small` holds the line.
pub async fn handle(app: Arc<App>, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    let live = app.live.load_full();
    let caller = match authenticate::caller(&app, &live, &headers).await {
        Ok(c) => c,
        Err(e) => return ApiError(e).into_response(),
    };
    let mut standing = Vec::new();
    let mut resp = serve(app.clone(), live, &caller, endpoint, headers, body, &mut standing).await;
    key_headers::tag(&app, &caller, &standing, resp.headers_mut());
    soft_budget::report(&app, &caller);
    resp
}

/// Stages 2–8 for an authenticated caller. `standing`: where the caller's rate-limit scopes
/// stand once stage 4c has counted the request (for the response headers).
async fn serve(
    app: Arc<App>,
    live: Arc<crate::state::LiveState>,
    caller: &authenticate::Caller,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
    standing: &mut Vec<crate::rate_limits::Standing>,
) -> Response {
    let mut draft = Draft::new(app.clone(), &live, &headers);
    draft.record.endpoint = Some(endpoint.name.to_string());
    draft.identify(caller);
    draft.admission = match admit::admit(&app, &live) {
        Ok(a) => Some(a),
        Err(e) => return draft.fail(e),
    };
    let request = match parse::read(&app, &live, endpoint, &headers, body, &mut draft).await {
        Ok(r) => r,
        Err(e) => return draft.fail(e),
    };
    let end_user = match end_user::identify(&app, endpoint, &request, &mut draft).await {
        Ok(u) => u,
        Err(e) => return draft.fail(e),
    };
    let targets = match resolve::targets(&live, endpoint, &request) {
        Err(e) => return draft.fail(e),
        Ok(t) => t,
    };
    // A key may call a comma list only if it may call every group in it.
    let listed = targets.len() > 1;
    for t in &targets {
        let requested = if listed { t.name() } else { request.model.as_str() };
        if let Err(e) = access::check(caller, requested, t.name()) {
            return draft.fail(e);
        }
    }
    let target = &targets[0];
    // The request's own routing settings and test hooks (a workflow routes by its steps').
    let (controls, hooks) = match &target {
        Target::Group(g) => match request_controls(&live, caller, &headers, &request, &g.name) {
            Ok(c) => c,
            Err(e) => return draft.fail(e),
        },
        Target::Workflow(_) => Default::default(),
    };
    match limits::admit(
        &app,
        caller,
        end_user.as_ref(),
        target.name(),
        &request,
        &draft.record.request_id,
    )
    .await
    {
        limits::Limited::Unlimited => {}
        limits::Limited::Admitted(permit) => {
            standing.extend_from_slice(permit.standing());
            draft.limits = Some(Arc::new(permit));
        }
        limits::Limited::Refused(e, at) => {
            *standing = at;
            return draft.fail(e);
        }
    }
    let groups: Vec<String> = match target {
        Target::Group(_) => {
            let groups: Vec<&crate::state::ModelGroup> = targets
                .iter()
                .filter_map(|t| match t {
                    Target::Group(g) => Some(&**g),
                    Target::Workflow(_) => None,
                })
                .collect();
            draft.charges = match budget::hold(&app, &live, caller, end_user.as_ref(), &groups, &request).await {
                Ok(charges) => charges,
                Err(e) => return draft.fail(e),
            };
            groups.iter().map(|g| g.name.clone()).collect()
        }
        Target::Workflow(wf) => {
            draft.record.workflow = Some(wf.name.clone());
            // A run's cost is its steps' (each settled as it ends), unknown up front: a payer
            // already at its budget is refused, one under it may finish the run.
            draft.charges = match budget::check(&app, &live, caller, end_user.as_ref(), &wf.name).await {
                Ok(charges) => charges,
                Err(e) => return draft.fail(e),
            };
            if endpoint.wire == endpoint::Wire::Messages {
                // The steps speak chat; the run's answer is written back as Anthropic's.
                let body = match messages::workflow_body(&request.body) {
                    Ok(b) => b,
                    Err(e) => return draft.fail(e),
                };
                let resp = Box::pin(workflow::run(app.clone(), live.clone(), wf, draft.into_run(), body)).await;
                return messages::workflow_answer(resp, &wf.name).await;
            }
            return Box::pin(workflow::run(
                app.clone(),
                live.clone(),
                wf,
                draft.into_run(),
                request.body.to_map(),
            ))
            .await;
        }
    };
    let store_to = match lookup::lookup(&live, endpoint, &request, &headers, &mut draft).await {
        Looked::Hit(entry, key) => {
            // A Messages stream is replayed as Anthropic's events, written from the stored chunks.
            let egress = (endpoint.wire == endpoint::Wire::Messages).then(|| {
                Box::new(messages::MessagesEgress::replaying(&draft.record.model_group)) as Box<dyn egress::Egress>
            });
            return replay::cache_hit(draft, &entry, &key, request.client_wants_usage, egress);
        }
        Looked::Miss(store_to) => store_to,
    };
    let (stream, client_wants_usage) = (request.stream, request.client_wants_usage);
    let mut body = route::upstream_body(endpoint, request.body, stream);
    let mut plan = controls.plan(hooks);
    plan.forwarded = messages::forwarded_headers(&headers);
    let (outcome, tries) = match groups.as_slice() {
        [group] => route::route_request(&app, &live, endpoint, &mut body, stream, &mut draft, group, &plan).await,
        several => {
            Box::pin(race::race(
                &app, &live, endpoint, &body, stream, &mut draft, several, &plan,
            ))
            .await
        }
    };
    let mut resp = match outcome {
        Err(f) => route::answer_failure(draft, f).await,
        Ok((deployment, Sent::Plain(bytes), sent, _)) => {
            let upstream_ms = sent.elapsed().as_secs_f64() * 1000.0;
            plain::respond(draft, endpoint, &deployment, bytes, upstream_ms, store_to).await
        }
        Ok((deployment, Sent::Stream(events), sent, pre_ms)) => {
            // A text completion answered by chat is streamed back in the text-completion shape.
            let reshape = (endpoint.wire == endpoint::Wire::TextCompletion
                && passthrough::completes_as_chat(&deployment))
            .then_some(text_completion::chunk_from_chat as fn(String) -> String);
            // A Messages stream leaves as Anthropic's events.
            let egress = (endpoint.wire == endpoint::Wire::Messages).then(|| {
                Box::new(messages::MessagesEgress::for_deployment(
                    &deployment,
                    &draft.record.model_group,
                )) as Box<dyn egress::Egress>
            });
            stream::respond(
                draft,
                deployment,
                events,
                sent,
                pre_ms,
                client_wants_usage,
                store_to,
                stream::StreamExtras {
                    reshape,
                    egress,
                    ..Default::default()
                },
            )
        }
    };
    tries.tag(resp.headers_mut());
    resp
}

/// Stage 4e: the request's routing controls, checked, and its test hooks.
fn request_controls(
    live: &crate::state::LiveState,
    caller: &authenticate::Caller,
    headers: &HeaderMap,
    request: &parse::Request,
    group: &str,
) -> Result<(controls::Controls, test_hooks::TestHooks), tollgate_core::GatewayError> {
    let c = controls::read(headers, &request.body, &request.model, group)?;
    controls::check(live, caller, &c)?;
    Ok((c, test_hooks::TestHooks::read(&request.body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn returns, without calling it.
    fn future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(Arc<App>, Endpoint, HeaderMap, Body) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn the_request_future_stays_small() {
        // 13.3 KB before the rare and optional stages were boxed (every request copied it
        // twice), 6.5 KB after.
        let size = future_size(handle);
        assert!(size <= LIMIT, "the request's future is {size} bytes (limit {LIMIT})");
    }

    const LIMIT: usize = 8 * 1024;
}
