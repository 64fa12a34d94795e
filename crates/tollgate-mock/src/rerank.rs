//! Rerank in Cohere's shape (`query`, `documents`, `top_n` → `results[{index,
//! relevance_score}]`): a document's score is the share of the query's words it contains.
//! Both Cohere's `meta.billed_units` and Jina's `usage.total_tokens` are reported.

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
pub(crate) struct RerankRequest {
    pub model: String,
    pub query: String,
    pub documents: Vec<Value>,
    #[serde(default)]
    pub top_n: Option<usize>,
}

fn text(doc: &Value) -> String {
    match doc {
        Value::String(s) => s.clone(),
        other => other
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

pub(crate) fn render(req: &RerankRequest) -> Result<Vec<u8>, String> {
    let words: Vec<String> = req.query.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return Err("`query` is empty".into());
    }
    let mut scored: Vec<(usize, f64)> = req
        .documents
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let t = text(d).to_lowercase();
            let hits = words.iter().filter(|w| t.contains(w.as_str())).count();
            (i, hits as f64 / words.len() as f64)
        })
        .collect();
    // Highest first; ties by position, so the order is deterministic.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(req.top_n.unwrap_or(scored.len()));
    let results: Vec<Value> = scored
        .iter()
        .map(|(i, s)| json!({"index": i, "relevance_score": s}))
        .collect();
    let tokens: usize = req.documents.iter().map(|d| text(d).len() / 4 + 1).sum::<usize>() + req.query.len() / 4 + 1;
    serde_json::to_vec(&json!({
        "id": "rerank-mock",
        "model": req.model,
        "results": results,
        "meta": {"billed_units": {"search_units": 1}},
        "usage": {"total_tokens": tokens},
    }))
    .map_err(|e| e.to_string())
}
