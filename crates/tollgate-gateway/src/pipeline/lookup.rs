//! Stage 5, cache lookup: the response cache answers before any deployment is chosen (it is per
//! model group). Decides the record's cache state and whether the answer is to be stored.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::Value;
use tollgate_core::CacheState;

use crate::cache::{CachedEntry, Lookup, RequestCache, ResponseCache, request_controls};
use crate::pipeline::draft::Draft;
use crate::pipeline::endpoint::Endpoint;
use crate::pipeline::parse::Request;
use crate::state::LiveState;

/// Where a fresh answer is to be stored, if anywhere.
pub type StoreTo = Option<(Arc<ResponseCache>, RequestCache)>;

pub enum Looked {
    /// Answer from the cache: the entry and its key.
    Hit(Arc<CachedEntry>, String),
    /// Go to a provider; store its answer where this says.
    Miss(StoreTo),
}

pub async fn lookup(
    live: &LiveState,
    endpoint: Endpoint,
    request: &Request,
    headers: &HeaderMap,
    draft: &mut Draft,
) -> Looked {
    let Some(cache) = live.cache.as_ref().filter(|_| endpoint.caches) else {
        return Looked::Miss(None);
    };
    let fingerprint = draft.record.prompt_sha256.clone().unwrap_or_default();
    let Some(rc) = request_controls(
        &cache.settings,
        endpoint.call_type,
        &fingerprint,
        request.stream,
        request.body.get::<Value>("cache").as_ref(),
        headers,
    ) else {
        draft.record.cache = CacheState::Bypass;
        return Looked::Miss(None);
    };
    draft.record.cache = if rc.lookup {
        CacheState::Miss
    } else {
        CacheState::Bypass
    };
    if rc.lookup {
        // Boxed: a Redis lookup's future is larger than the rest of the request's (see `handle`).
        match Box::pin(cache.get(&rc)).await {
            Lookup::Hit(entry) => return Looked::Hit(entry, rc.key),
            Lookup::Miss => {}
            Lookup::Unavailable => draft.record.cache = CacheState::Bypass,
        }
    }
    Looked::Miss(rc.store.then(|| (cache.clone(), rc)))
}
