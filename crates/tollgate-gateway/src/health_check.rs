//! LiteLLM's model health check (`GET /health`): each deployment is asked something tiny —
//! a one-token chat completion for chat models (a one-token text completion for
//! `text-completion-openai/` ones), a one-word embedding for `mode: embedding`, a
//! one-document rerank for `mode: rerank`, and the provider's models list for the other modes
//! (images, audio, moderation), which must not be charged for a check. The results are kept on
//! a board so background checks (`general_settings.background_health_checks`) and `/health`
//! share them. Checks are the gateway's own traffic: they are not recorded as requests.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tollgate_core::redact;
use tollgate_providers::provider::Provider;

use crate::body::RequestBody;
use crate::state::{Deployment, LiveState};
use crate::upstream_client::Client;

/// LiteLLM's ceiling for one check (`HEALTH_CHECK_TIMEOUT_SECONDS`).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// One deployment's outcome.
#[derive(Debug, Clone)]
pub struct Checked {
    pub model_group: String,
    pub model: String,
    /// Masked, as everywhere it is shown.
    pub api_base: String,
    /// Why it is unhealthy; `None` when it answered.
    pub error: Option<String>,
}

/// The latest complete round of checks, and when it ended.
#[derive(Default)]
pub struct HealthBoard {
    latest: Mutex<Option<(Vec<Checked>, Instant)>>,
}

impl HealthBoard {
    pub fn publish(&self, results: Vec<Checked>) {
        if let Ok(mut l) = self.latest.lock() {
            *l = Some((results, Instant::now()));
        }
    }

    /// The latest results and how old they are.
    pub fn latest(&self) -> Option<(Vec<Checked>, Duration)> {
        let l = self.latest.lock().ok()?;
        l.as_ref().map(|(r, at)| (r.clone(), at.elapsed()))
    }
}

/// LiteLLM's answer: `healthy_endpoints`, `unhealthy_endpoints` (each with its `model` and
/// `api_base`, an unhealthy one with its `error`; only `model` when `details` is off) and their
/// counts. `group`: only that model group's deployments.
pub fn answer(results: &[Checked], group: Option<&str>, details: bool) -> Value {
    let (mut healthy, mut unhealthy) = (Vec::new(), Vec::new());
    for c in results.iter().filter(|c| group.is_none_or(|g| c.model_group == g)) {
        let mut e = Map::new();
        e.insert("model".into(), c.model.clone().into());
        if details {
            e.insert("api_base".into(), c.api_base.clone().into());
            e.insert("model_name".into(), c.model_group.clone().into());
        }
        match &c.error {
            None => healthy.push(Value::Object(e)),
            Some(err) => {
                if details {
                    e.insert("error".into(), err.clone().into());
                }
                unhealthy.push(Value::Object(e));
            }
        }
    }
    json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
    })
}

/// Checks every deployment of `live` (of `group` only, when given), all at once.
pub async fn check_all(http: &Client, live: &LiveState, group: Option<&str>) -> Vec<Checked> {
    let deployments: Vec<&Deployment> = live
        .group_order
        .iter()
        .filter(|g| group.is_none_or(|want| want == g.as_str()))
        .filter_map(|g| live.groups.get(g))
        .flat_map(|g| g.deployments.iter().map(|d| d.as_ref()))
        .collect();
    futures::future::join_all(deployments.into_iter().map(|d| async move {
        Checked {
            model_group: d.model_group.clone(),
            model: d.model.clone(),
            api_base: d.route.api_base.clone(),
            error: check(http, d).await.err(),
        }
    }))
    .await
}

/// What `model_info.mode` says the deployment is for (`chat` when unsaid).
fn mode(d: &Deployment) -> &str {
    d.config
        .model_info
        .extra
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("chat")
}

/// One deployment's check: `Err` with what went wrong.
async fn check(http: &Client, d: &Deployment) -> Result<(), String> {
    let model = &d.route.upstream_model;
    let json_post = |url: String, body: Value| {
        let mut req = http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        req = d.authorize(req);
        req
    };
    let req = match mode(d) {
        "embedding" => json_post(
            d.urls.embeddings.to_string(),
            json!({"model": model, "input": ["ping"]}),
        ),
        // Cohere and Jina AI are reached for rerank only.
        m if m == "rerank" || matches!(d.route.provider, Provider::Cohere | Provider::JinaAi) => json_post(
            d.route.sibling_url("rerank"),
            json!({"model": model, "query": "ping", "documents": ["pong"], "top_n": 1}),
        ),
        // A text-completion model has no chat endpoint.
        _ if d.route.provider == Provider::TextCompletionOpenAi => json_post(
            d.route.sibling_url("completions"),
            json!({"model": model, "prompt": "ping", "max_tokens": 1}),
        ),
        "chat" | "completion" | "responses" => {
            let mut body = Map::new();
            body.insert("model".into(), model.clone().into());
            body.insert("messages".into(), json!([{"role": "user", "content": "ping"}]));
            body.insert("max_tokens".into(), json!(1));
            crate::upstream::chat_request(http, d, &RequestBody::from_map(&body), false).map_err(|e| e.message)?
        }
        // Images, audio and moderation cost per call: the models list says the key and
        // endpoint work without paying for it.
        _ => {
            let mut req = http.get(d.route.sibling_url("models"));
            req = d.authorize(req);
            req
        }
    };
    let mut req = req;
    for (k, v) in &d.extra_headers {
        req = req.header(k, v);
    }
    let wait = d.timeout.min(CHECK_TIMEOUT);
    let resp = match tokio::time::timeout(wait, req.send()).await {
        Err(_) => return Err(format!("no answer within {:.1} s", wait.as_secs_f64())),
        Ok(Err(e)) => return Err(redact::text(&format!("cannot reach {}: {e}", d.route.api_base))),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = tokio::time::timeout(wait, resp.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
    Err(redact::text(&format!("HTTP {}: {text}", status.as_u16())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_counts_and_hides_details_when_asked() {
        let results = vec![
            Checked {
                model_group: "a".into(),
                model: "openai/x".into(),
                api_base: "http://h/v1".into(),
                error: None,
            },
            Checked {
                model_group: "b".into(),
                model: "openai/y".into(),
                api_base: "http://h/v1".into(),
                error: Some("HTTP 401: bad key".into()),
            },
        ];
        let all = answer(&results, None, true);
        assert_eq!(all["healthy_count"], 1);
        assert_eq!(all["unhealthy_count"], 1);
        assert_eq!(all["unhealthy_endpoints"][0]["error"], "HTTP 401: bad key");
        let only_b = answer(&results, Some("b"), false);
        assert_eq!(only_b["healthy_count"], 0);
        assert_eq!(only_b["unhealthy_endpoints"][0], json!({"model": "openai/y"}));
    }
}
