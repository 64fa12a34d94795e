//! Stage 7 for a whole answer: the provider's body read back as OpenAI's, usage priced per
//! bucket, the group's name put back, the answer stored in the response cache when asked, and
//! the record closed.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::cache::{RequestCache, ResponseCache};
use crate::edge::{ApiError, ResponseTags, tag_response};
use crate::pipeline::draft::{Draft, committed, set_id_headers};
use crate::pipeline::endpoint::Endpoint;
use crate::state::Deployment;

pub async fn respond(
    mut draft: Draft,
    endpoint: Endpoint,
    deployment: &Deployment,
    bytes: Bytes,
    upstream_ms: f64,
    store_to: Option<(Arc<ResponseCache>, RequestCache)>,
) -> Response {
    // The provider's answer as OpenAI's, naming the group the client asked for (as with
    // LiteLLM), usage in buckets, response hygiene applied.
    let relayed = match crate::pipeline::passthrough::relay(endpoint, deployment, &bytes, &draft.record.model_group) {
        Ok(r) => r,
        Err(err) => {
            let status = err.status;
            let mut resp = ApiError(err.clone()).into_response();
            set_id_headers(resp.headers_mut(), &draft.record.request_id, &draft.record.model_group);
            committed(draft.finish(status, Some(upstream_ms), Some(&err))).await;
            return resp;
        }
    };
    if let Some(usage) = &relayed.usage {
        draft.set_usage(usage, deployment.price.as_ref());
    }
    draft.record.finish_reason = relayed.finish_reason;
    let out = relayed.body;
    if let Some((cache, rc)) = store_to
        && let Ok(body) = String::from_utf8(out.clone())
    {
        let entry = draft.cache_entry(rc.ttl_s, Some(body), Vec::new());
        // Storing must not delay the answer (Redis is a network round trip).
        cache.store_later(rc.key, entry);
    }
    // Failed attempts and their backoff were waiting on providers too.
    let overhead = draft.gateway_ms(draft.elapsed_ms(), upstream_ms);
    let mut resp = (StatusCode::OK, [("content-type", relayed.content_type)], out).into_response();
    tag_response(
        resp.headers_mut(),
        &ResponseTags {
            request_id: &draft.record.request_id,
            model_group: &draft.record.model_group,
            cost_usd: draft.record.cost_usd,
            overhead_ms: overhead,
            cache: draft.record.cache.as_str(),
        },
    );
    draft.max_tokens.tag(resp.headers_mut());
    committed(draft.finish(200, Some(upstream_ms), None)).await;
    resp
}
