//! Stage 7 for a cache hit: the stored answer replayed (a body, or its chunks as SSE), recorded
//! at cost 0 with what the hit saved.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tollgate_core::{CacheState, Cost};
use tollgate_providers::sse::inspect_chunk;

use crate::cache::CachedEntry;
use crate::edge::{ResponseTags, tag_response};
use crate::pipeline::draft::Draft;
use crate::pipeline::egress::{Egress, chunk_out};
use crate::pipeline::stream::coalesce;

/// Answers from the cache: the stored body, or the stored chunks as SSE (written by `egress` for
/// a client of another API's stream). The record keeps the original usage, costs nothing, and
/// notes what the hit saved.
pub(crate) fn cache_hit(
    mut draft: Draft,
    entry: &CachedEntry,
    key: &str,
    client_wants_usage: bool,
    mut egress: Option<Box<dyn Egress>>,
) -> Response {
    // An egress reads the usage chunk whether or not the client asked for it.
    let client_wants_usage = client_wants_usage || egress.is_some();
    draft.record.cache = CacheState::Hit;
    draft.record.model = entry.model.clone();
    draft.record.provider = entry.provider.clone();
    draft.record.finish_reason = entry.finish_reason.clone();
    draft.record.set_usage(&entry.usage);
    draft.record.set_cost(Some(Cost::default()));
    draft.record.saved_cost_usd = entry.cost_usd;
    let mut resp = match &entry.body {
        Some(body) => (StatusCode::OK, [("content-type", "application/json")], body.clone()).into_response(),
        None => {
            let mut events: Vec<Result<Bytes, std::io::Error>> = Vec::with_capacity(entry.chunks.len() + 1);
            for c in &entry.chunks {
                let usage_only = inspect_chunk(c).is_some_and(|i| i.choices_empty && i.usage.is_some());
                if usage_only && !client_wants_usage {
                    continue;
                }
                events.extend(chunk_out(&mut egress, c).map(Ok));
            }
            events.extend(chunk_out(&mut egress, "[DONE]").map(Ok));
            draft.record.ttft_ms = Some(draft.elapsed_ms());
            let mut r = Response::new(Body::from_stream(coalesce(futures::stream::iter(events))));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/event-stream"));
            r
        }
    };
    let h = resp.headers_mut();
    tag_response(
        h,
        &ResponseTags {
            request_id: &draft.record.request_id,
            model_group: &draft.record.model_group,
            cost_usd: Some(0.0),
            overhead_ms: draft.elapsed_ms(),
            cache: CacheState::Hit.as_str(),
        },
    );
    if let Ok(v) = HeaderValue::from_str(key) {
        h.insert("x-litellm-cache-key", v);
    }
    if let Some(saved) = entry.cost_usd
        && let Ok(v) = HeaderValue::from_str(&format!("{saved:.10}"))
    {
        h.insert("x-tollgate-cache-saved-usd", v);
    }
    let _ = draft.finish(200, Some(0.0), None);
    resp
}
