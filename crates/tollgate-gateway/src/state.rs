//! The live state: everything a request needs from the config, built and validated as one value.
//!
//! A request takes one snapshot (`Arc<LiveState>`) and keeps it to the end, so a reload (which
//! swaps the whole value) never mixes two configs inside one request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tollgate_core::config::{ConfigWarning, DeploymentConfig, Env, GatewayConfig, Secret};
use tollgate_core::routing::WorkflowConfig;
use tollgate_core::{Price, PriceTable, redact};
use tollgate_providers::provider::{Provider, Route, route};

use crate::cache::ResponseCache;
use crate::deployment_stats::DeploymentStats;

/// Upstream timeout when neither the deployment nor `litellm_settings.request_timeout` sets one
/// (LiteLLM's default is 6000 s; ten minutes is long enough for reasoning models and short
/// enough that a dead upstream is noticed).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// One resolved deployment of a model group.
#[derive(Debug)]
pub struct Deployment {
    pub model_group: String,
    /// LiteLLM's model string (`deepseek/deepseek-v3.2`), what records call `model`.
    pub model: String,
    pub route: Route,
    /// The route's URLs parsed once, at load, instead of on every request.
    pub urls: UpstreamUrls,
    pub api_key: Option<Secret>,
    pub extra_headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub stream_timeout: Duration,
    /// Table price overlaid with the deployment's overrides; `None` when nothing prices it.
    pub price: Option<Price>,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub model_id: String,
    pub config: DeploymentConfig,
    /// In-flight count, latency, minute windows and cooldown, for the router.
    pub stats: DeploymentStats,
}

/// A deployment's upstream URLs, parsed.
#[derive(Debug, Clone)]
pub struct UpstreamUrls {
    pub chat: reqwest::Url,
    pub stream: reqwest::Url,
    pub embeddings: reqwest::Url,
}

impl UpstreamUrls {
    fn parse(r: &Route) -> Result<UpstreamUrls, String> {
        let parse =
            |s: &str| reqwest::Url::parse(s).map_err(|e| format!("`{}` is not a usable URL: {e}", redact::url(s)));
        Ok(UpstreamUrls {
            chat: parse(&r.chat_url)?,
            stream: parse(&r.stream_url)?,
            embeddings: parse(&r.embeddings_url)?,
        })
    }

    /// The parsed form of `url` when it is one of the route's (it always is today); otherwise
    /// parsed now.
    pub fn resolve(&self, url: &str) -> Result<reqwest::Url, String> {
        for u in [&self.chat, &self.stream, &self.embeddings] {
            if u.as_str() == url {
                return Ok(u.clone());
            }
        }
        reqwest::Url::parse(url).map_err(|e| format!("`{}` is not a usable URL: {e}", redact::url(url)))
    }
}

/// A model group: what clients name in `model`.
#[derive(Debug)]
pub struct ModelGroup {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
}

/// What a client's `model` names.
pub enum Target<'a> {
    Group(&'a ModelGroup),
    Workflow(&'a WorkflowConfig),
}

impl Target<'_> {
    /// The model group's or workflow's own name (an alias resolved).
    pub fn name(&self) -> &str {
        match self {
            Target::Group(g) => &g.name,
            Target::Workflow(w) => &w.name,
        }
    }
}

#[derive(Debug)]
pub struct LiveState {
    pub version: u64,
    pub config: GatewayConfig,
    pub groups: HashMap<String, ModelGroup>,
    /// Group names in config order, for listings and error messages.
    pub group_order: Vec<String>,
    pub prices: PriceTable,
    /// Problems found while resolving (on top of the config's own warnings).
    pub warnings: Vec<ConfigWarning>,
    pub max_body_bytes: usize,
    /// The response cache; `None` when `litellm_settings.cache` is not on.
    pub cache: Option<Arc<ResponseCache>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct StateError {
    pub file: String,
    pub path: String,
    pub message: String,
}

impl LiveState {
    /// Resolves every deployment; fails on the first one that cannot be served.
    pub fn build(
        config: GatewayConfig,
        version: u64,
        extra_prices: Option<PriceTable>,
        env: &dyn Env,
    ) -> Result<Self, StateError> {
        let mut prices = PriceTable::builtin();
        if let Some(p) = extra_prices {
            prices.merge(p);
        }
        if let Some(path) = &config.prices_file {
            let table = PriceTable::load_file(path).map_err(|e| StateError {
                file: config.where_is("tollgate_settings.prices_file"),
                path: "tollgate_settings.prices_file".into(),
                message: e.to_string(),
            })?;
            prices.merge(table);
        }
        let mut warnings = Vec::new();
        let mut groups: HashMap<String, ModelGroup> = HashMap::new();
        let mut group_order = Vec::new();
        let default_timeout = config
            .request_timeout
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_TIMEOUT);
        for d in &config.deployments {
            let base = format!("model_list[{}].litellm_params", d.index);
            let r = route(&d.model, d.api_base.as_deref()).map_err(|e| StateError {
                // `file:line:column` of the model string, where the fix goes.
                file: config.where_is(&format!("{base}.model")),
                path: format!("{base}.model"),
                message: e.to_string(),
            })?;
            let api_key = d
                .api_key
                .clone()
                .or_else(|| r.provider.key_env_var().and_then(|v| env.var(v)).map(Secret::new));
            if api_key.is_none()
                && !matches!(r.provider, Provider::OllamaChat | Provider::HostedVllm)
                && d.api_base.is_none()
            {
                warnings.push(ConfigWarning {
                    path: format!("{base}.api_key"),
                    message: format!(
                        "no api_key and {} is not set; the provider will refuse the requests",
                        r.provider.key_env_var().unwrap_or("no key variable")
                    ),
                });
            }
            let price_key = d.model_info.base_model.as_deref().unwrap_or(&d.model);
            let mut price = prices.lookup(price_key).cloned().unwrap_or_default();
            price.overlay(&d.price_override);
            let priced = price.is_priced();
            if !priced {
                warnings.push(ConfigWarning {
                    path: format!("model_list[{}]", d.index),
                    message: format!(
                        "no price for {price_key}: its requests are recorded with cost_usd null and flagged unpriced; \
                         set litellm_params.input_cost_per_token/output_cost_per_token or model_info.base_model"
                    ),
                });
            }
            let timeout = d.timeout.map(Duration::from_secs_f64).unwrap_or(default_timeout);
            let dep = Deployment {
                model_group: d.model_name.clone(),
                model: d.model.clone(),
                max_input_tokens: price.max_input_tokens,
                max_output_tokens: price.max_output(),
                price: priced.then_some(price),
                urls: UpstreamUrls::parse(&r).map_err(|message| StateError {
                    file: config.where_is(&format!("{base}.api_base")),
                    path: format!("{base}.api_base"),
                    message,
                })?,
                route: r,
                api_key,
                extra_headers: d.extra_headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                timeout,
                stream_timeout: d.stream_timeout.map(Duration::from_secs_f64).unwrap_or(timeout),
                model_id: d
                    .model_info
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}", d.model_name, d.index)),
                config: d.clone(),
                stats: DeploymentStats::default(),
            };
            let group = groups.entry(d.model_name.clone()).or_insert_with(|| {
                group_order.push(d.model_name.clone());
                ModelGroup {
                    name: d.model_name.clone(),
                    deployments: Vec::new(),
                }
            });
            group.deployments.push(Arc::new(dep));
        }
        let max_body_bytes = (config.max_request_size_mb * 1024.0 * 1024.0) as usize;
        let cache = match &config.cache {
            Some(settings) => Some(Arc::new(ResponseCache::new(settings.clone(), &config.redis).map_err(
                |e| StateError {
                    file: config.where_is("litellm_settings.cache_params"),
                    path: "litellm_settings.cache_params".into(),
                    message: e.to_string(),
                },
            )?)),
            None => None,
        };
        Ok(LiveState {
            version,
            config,
            groups,
            group_order,
            prices,
            warnings,
            max_body_bytes,
            cache,
        })
    }

    /// Keeps the previous state's cache (and its entries, and its Redis circuit) when the new
    /// config leaves the cache and Redis settings unchanged, so a reload does not empty it.
    pub fn inherit_cache(&mut self, previous: &LiveState) {
        if self.config.cache.is_some()
            && self.config.cache == previous.config.cache
            && self.config.redis == previous.config.redis
        {
            self.cache = previous.cache.clone();
        }
    }

    /// Resolves a client's `model`: a group, an alias of one, or a workflow (by name or alias).
    pub fn target(&self, name: &str) -> Option<Target<'_>> {
        if let Some(g) = self.groups.get(self.config.router.resolve(name)) {
            return Some(Target::Group(g));
        }
        self.config
            .workflows
            .iter()
            .find(|w| w.name == name || w.aliases.iter().any(|a| a == name))
            .map(Target::Workflow)
    }

    /// Every name a client may use: groups, aliases, workflows and their aliases.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.group_order.clone();
        names.extend(self.config.router.model_group_alias.keys().cloned());
        for w in &self.config.workflows {
            names.push(w.name.clone());
            names.extend(w.aliases.iter().cloned());
        }
        names
    }

    /// Config warnings and resolution warnings together.
    pub fn all_warnings(&self) -> impl Iterator<Item = &ConfigWarning> {
        self.config.warnings.iter().chain(self.warnings.iter())
    }

    /// `GET /v1/models`: OpenAI's list of model groups, those `visible` lets the caller use.
    pub fn models_json(&self, visible: &dyn Fn(&str) -> bool) -> Value {
        let data: Vec<Value> = self
            .model_names()
            .iter()
            .filter(|g| visible(g))
            .map(|g| json!({"id": g, "object": "model", "created": 1_700_000_000u64, "owned_by": "tollgate"}))
            .collect();
        json!({"object": "list", "data": data})
    }

    /// `GET /v1/model/info`: LiteLLM's shape, which Roo Code's LiteLLM provider reads for the
    /// context window, max output and prices. Keys never appear.
    pub fn model_info_json(&self, visible: &dyn Fn(&str) -> bool) -> Value {
        let mut data = Vec::new();
        for g in &self.group_order {
            let Some(group) = self.groups.get(g).filter(|_| visible(g)) else {
                continue;
            };
            for d in &group.deployments {
                let mut info: Map<String, Value> = d.config.model_info.extra.clone();
                info.insert("id".into(), d.model_id.clone().into());
                info.insert("key".into(), d.model.clone().into());
                info.insert("litellm_provider".into(), d.route.provider.prefix().into());
                info.entry("mode").or_insert_with(|| "chat".into());
                if let Some(b) = &d.config.model_info.base_model {
                    info.insert("base_model".into(), b.clone().into());
                }
                let p = d.price.clone().unwrap_or_default();
                let fields: [(&str, Option<Value>); 7] = [
                    ("max_input_tokens", d.max_input_tokens.map(Into::into)),
                    ("max_output_tokens", d.max_output_tokens.map(Into::into)),
                    ("max_tokens", d.max_output_tokens.map(Into::into)),
                    ("input_cost_per_token", p.input_cost_per_token.map(Into::into)),
                    ("output_cost_per_token", p.output_cost_per_token.map(Into::into)),
                    (
                        "cache_read_input_token_cost",
                        p.cache_read_input_token_cost.map(Into::into),
                    ),
                    (
                        "cache_creation_input_token_cost",
                        p.cache_creation_input_token_cost.map(Into::into),
                    ),
                ];
                for (k, v) in fields {
                    info.insert(k.into(), v.unwrap_or(Value::Null));
                }
                info.entry("supports_prompt_caching")
                    .or_insert_with(|| p.cache_read_input_token_cost.is_some().into());
                info.entry("supports_function_calling").or_insert(Value::Bool(true));
                data.push(json!({
                    "model_name": g,
                    "litellm_params": {"model": d.model, "api_base": d.route.api_base},
                    "model_info": info,
                }));
            }
        }
        for w in &self.config.workflows {
            // A workflow fits what its smallest step fits and writes what its last step writes.
            let limits = |f: fn(&Deployment) -> Option<u64>| -> Vec<u64> {
                w.steps
                    .iter()
                    .filter_map(|st| self.groups.get(self.config.router.resolve(&st.model)))
                    .flat_map(|g| g.deployments.iter().filter_map(|d| f(d)))
                    .collect()
            };
            let max_in = limits(|d| d.max_input_tokens).into_iter().min();
            let max_out = w
                .steps
                .last()
                .and_then(|st| self.groups.get(self.config.router.resolve(&st.model)))
                .and_then(|g| g.deployments.iter().filter_map(|d| d.max_output_tokens).min());
            for name in std::iter::once(&w.name).chain(w.aliases.iter()).filter(|n| visible(n)) {
                data.push(json!({
                    "model_name": name,
                    "litellm_params": {"model": format!("workflow/{}", w.name)},
                    "model_info": {
                        "id": format!("workflow-{}", w.name),
                        "mode": "chat",
                        "description": w.description,
                        "max_input_tokens": max_in,
                        "max_output_tokens": max_out,
                        "max_tokens": max_out,
                        "supports_function_calling": true,
                        "workflow_steps": w.steps.iter().map(|s| json!({"role": s.role, "model": s.model})).collect::<Vec<_>>(),
                    },
                }));
            }
        }
        json!({"data": data})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn state(yaml: &str) -> LiveState {
        let env = BTreeMap::new();
        let cfg = tollgate_core::config::parse(yaml, Path::new("c.yaml"), &env).unwrap();
        LiveState::build(cfg, 1, None, &env).unwrap()
    }

    #[test]
    fn groups_keep_config_order_and_strategies_pick() {
        let s = state(
            "model_list:\n  - {model_name: b, litellm_params: {model: deepseek/deepseek-v3.2, api_key: k1}}\n  - {model_name: a, litellm_params: {model: xai/grok-4-1-fast-reasoning, api_key: k}}\n  - {model_name: b, litellm_params: {model: deepseek/deepseek-v3.2, api_base: 'http://x/v1', api_key: k2}}\n",
        );
        assert_eq!(s.group_order, vec!["b", "a"]);
        let g = &s.groups["b"];
        let mut settings = tollgate_core::routing::RouterSettings::default();
        // simple-shuffle reaches both deployments.
        let bases: std::collections::BTreeSet<String> = (0..200)
            .map(|_| crate::router::pick(g, &settings).unwrap().route.api_base.clone())
            .collect();
        assert_eq!(bases.len(), 2);
        // least-busy avoids the deployment with a request in flight.
        settings.strategy = tollgate_core::routing::Strategy::LeastBusy;
        g.deployments[0].stats.started();
        for _ in 0..10 {
            assert!(Arc::ptr_eq(
                &crate::router::pick(g, &settings).unwrap(),
                &g.deployments[1]
            ));
        }
        // latency-based prefers the faster one once both are measured.
        settings.strategy = tollgate_core::routing::Strategy::LatencyBasedRouting;
        g.deployments[0].stats.finished(None, 900.0, 10, &settings);
        g.deployments[1].stats.started();
        g.deployments[1].stats.finished(None, 50.0, 10, &settings);
        assert!(Arc::ptr_eq(
            &crate::router::pick(g, &settings).unwrap(),
            &g.deployments[1]
        ));
        // usage-based prefers fewer tokens this minute.
        settings.strategy = tollgate_core::routing::Strategy::UsageBasedRouting;
        g.deployments[1].stats.started();
        g.deployments[1].stats.finished(None, 50.0, 5000, &settings);
        assert!(Arc::ptr_eq(
            &crate::router::pick(g, &settings).unwrap(),
            &g.deployments[0]
        ));
        // cooldown after more than allowed_fails failures in a minute skips a deployment.
        settings.allowed_fails = 1;
        for _ in 0..2 {
            g.deployments[0].stats.started();
            g.deployments[0]
                .stats
                .finished(Some(tollgate_core::Fault::Deployment), 1.0, 0, &settings);
        }
        assert!(g.deployments[0].stats.cooling_down());
        for _ in 0..10 {
            assert!(Arc::ptr_eq(
                &crate::router::pick(g, &settings).unwrap(),
                &g.deployments[1]
            ));
        }
        let models = s.models_json(&|_: &str| true);
        assert_eq!(models["data"][0]["id"], "b");
        assert_eq!(models["object"], "list");
    }

    #[test]
    fn model_info_has_limits_and_prices_but_no_keys() {
        let s = state(
            "model_list:\n  - {model_name: ds, litellm_params: {model: deepseek/deepseek-v3.2, api_key: sk-secret-value}}\n",
        );
        let info = s.model_info_json(&|_: &str| true);
        let m = &info["data"][0];
        assert_eq!(m["model_name"], "ds");
        assert_eq!(m["model_info"]["max_input_tokens"], 163840);
        assert_eq!(m["model_info"]["input_cost_per_token"], 2.8e-7);
        assert!(!info.to_string().contains("sk-secret-value"));
    }

    #[test]
    fn unpriced_models_warn_and_overrides_price_them() {
        let s = state(
            "model_list:\n  - {model_name: x, litellm_params: {model: openai/my-finetune, api_key: k}}\n  - {model_name: y, litellm_params: {model: openai/my-finetune, api_key: k, input_cost_per_token: 1e-6, output_cost_per_token: 2e-6}}\n",
        );
        assert!(s.groups["x"].deployments[0].price.is_none());
        assert!(
            s.warnings
                .iter()
                .any(|w| w.message.contains("no price for openai/my-finetune"))
        );
        assert_eq!(
            s.groups["y"].deployments[0]
                .price
                .as_ref()
                .unwrap()
                .output_cost_per_token,
            Some(2e-6)
        );
    }

    #[test]
    fn bad_provider_is_an_error_with_path() {
        let env = BTreeMap::new();
        let cfg = tollgate_core::config::parse(
            "model_list:\n  - {model_name: x, litellm_params: {model: bedrock/claude}}\n",
            Path::new("c.yaml"),
            &env,
        )
        .unwrap();
        let e = LiveState::build(cfg, 1, None, &env).unwrap_err().to_string();
        assert!(
            e.contains("model_list[0].litellm_params.model") && e.contains("bedrock"),
            "{e}"
        );
    }
}
