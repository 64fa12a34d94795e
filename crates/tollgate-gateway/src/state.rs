//! The live state: everything a request needs from the config, built and validated as one value.
//!
//! A request takes one snapshot (`Arc<LiveState>`) and keeps it to the end, so a reload (which
//! swaps the whole value) never mixes two configs inside one request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tollgate_core::PriceTable;
use tollgate_core::config::{ConfigWarning, Env, GatewayConfig};
use tollgate_core::routing::WorkflowConfig;

use crate::cache::ResponseCache;
use crate::deployment::{BuildContext, BuildError, Built, ProviderEnv};
pub use crate::deployment::{Deployment, ModelGroup, Unserved, UpstreamUrls};
use crate::wildcard::Wildcards;

/// Upstream timeout when neither the deployment nor `litellm_settings.request_timeout` sets one
/// (LiteLLM's default is 6000 s; ten minutes is long enough for reasoning models and short
/// enough that a dead upstream is noticed).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

fn state_error(config: &GatewayConfig, e: BuildError) -> StateError {
    StateError {
        // `file:line:column` of the entry, where the fix goes.
        file: config.where_is(&e.path),
        path: e.path,
        message: e.message,
    }
}

/// What a client's `model` names.
pub enum Target<'a> {
    /// A configured group, or the group a wildcard pattern resolved the name to.
    Group(Arc<ModelGroup>),
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
    pub groups: HashMap<String, Arc<ModelGroup>>,
    /// `model_name` patterns (`*`, `anthropic/*`), for names no group or workflow holds.
    pub wildcards: Wildcards,
    /// Group names in config order, for listings and error messages.
    pub group_order: Vec<String>,
    pub prices: PriceTable,
    /// Problems found while resolving (on top of the config's own warnings).
    pub warnings: Vec<ConfigWarning>,
    pub max_body_bytes: usize,
    /// The response cache; `None` when `litellm_settings.cache` is not on.
    pub cache: Option<Arc<ResponseCache>>,
    /// Deployments the config lists that tollgate skipped (a provider it cannot reach yet), for
    /// `tollgate check` and for the answer to a request naming their group.
    pub unserved: Vec<Unserved>,
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
        let mut unserved = Vec::new();
        let mut groups: HashMap<String, ModelGroup> = HashMap::new();
        let mut group_order = Vec::new();
        let default_timeout = config
            .request_timeout
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_TIMEOUT);
        let ctx = BuildContext {
            prices: Arc::new(prices.clone()),
            env: Arc::new(ProviderEnv::read(env)),
            default_timeout,
        };
        let mut patterns = Vec::new();
        for d in &config.deployments {
            // `model_name: "*"`, `"anthropic/*"`: a pattern, resolved per requested name.
            if d.model_name.contains('*') {
                ctx.check_pattern(d).map_err(|e| state_error(&config, e))?;
                patterns.push(d.clone());
                continue;
            }
            match ctx
                .build(d, &d.model, &d.model_name)
                .map_err(|e| state_error(&config, e))?
            {
                Built::Served(dep, w) => {
                    warnings.extend(w);
                    let group = groups.entry(d.model_name.clone()).or_insert_with(|| {
                        group_order.push(d.model_name.clone());
                        ModelGroup {
                            name: d.model_name.clone(),
                            deployments: Vec::new(),
                        }
                    });
                    group.deployments.push(Arc::from(dep));
                }
                Built::Skipped(u, w) => {
                    warnings.push(w);
                    unserved.push(u);
                }
            }
        }
        let groups: HashMap<String, Arc<ModelGroup>> = groups.into_iter().map(|(k, g)| (k, Arc::new(g))).collect();
        let wildcards = Wildcards::new(patterns, ctx);
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
            unserved,
            wildcards,
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

    /// Resolves a client's `model`: a group, an alias of one, a workflow (by name or alias),
    /// then the most specific wildcard pattern matching it (LiteLLM's order).
    pub fn target(&self, name: &str) -> Option<Target<'_>> {
        if let Some(g) = self.groups.get(self.config.router.resolve(name)) {
            return Some(Target::Group(Arc::clone(g)));
        }
        if let Some(w) = self
            .config
            .workflows
            .iter()
            .find(|w| w.name == name || w.aliases.iter().any(|a| a == name))
        {
            return Some(Target::Workflow(w));
        }
        self.wildcards
            .resolve(self.config.router.resolve(name))
            .map(Target::Group)
    }

    /// The model group `name` (or its alias) routes to: a configured group, or the one a
    /// wildcard pattern resolves it to. Workflows are not groups.
    pub fn group(&self, name: &str) -> Option<Arc<ModelGroup>> {
        let name = self.config.router.resolve(name);
        match self.groups.get(name) {
            Some(g) => Some(Arc::clone(g)),
            None => self.wildcards.resolve(name),
        }
    }

    /// Every name a client may use: groups, aliases, workflows and their aliases, then the
    /// wildcard patterns as written.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.group_order.clone();
        names.extend(self.config.router.model_group_alias.keys().cloned());
        for w in &self.config.workflows {
            names.push(w.name.clone());
            names.extend(w.aliases.iter().cloned());
        }
        names.extend(self.wildcards.names().map(str::to_string));
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
            deployment_infos(group, &mut data);
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

    /// `GET /v1/model/info?model=<name>` for a name only a wildcard pattern serves: its
    /// resolved deployments (the forwarded model, its price and limits).
    pub fn wildcard_model_info_json(&self, name: &str) -> Option<Value> {
        if self.groups.contains_key(self.config.router.resolve(name)) {
            return None;
        }
        let group = self.wildcards.resolve(self.config.router.resolve(name))?;
        let mut data = Vec::new();
        deployment_infos(&group, &mut data);
        Some(json!({"data": data}))
    }
}

/// LiteLLM's `/model/info` entry for each of a group's deployments.
fn deployment_infos(group: &ModelGroup, data: &mut Vec<Value>) {
    for d in &group.deployments {
        let mut info: Map<String, Value> = d.config.model_info.extra.clone();
        info.insert("id".into(), d.model_id.clone().into());
        info.insert("key".into(), d.model.clone().into());
        info.insert("litellm_provider".into(), d.route.provider_name.as_str().into());
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
            "model_name": group.name,
            "litellm_params": {"model": d.model, "api_base": d.route.api_base},
            "model_info": info,
        }));
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
    fn a_known_provider_missing_its_base_is_an_error_with_path_and_an_unreachable_one_is_skipped() {
        let env = BTreeMap::new();
        let cfg = tollgate_core::config::parse(
            "model_list:\n  - {model_name: x, litellm_params: {model: hosted_vllm/m}}\n",
            Path::new("c.yaml"),
            &env,
        )
        .unwrap();
        let e = LiveState::build(cfg, 1, None, &env).unwrap_err().to_string();
        assert!(
            e.contains("model_list[0].litellm_params.model") && e.contains("hosted_vllm"),
            "{e}"
        );
        let s = state(
            "model_list:\n  - {model_name: x, litellm_params: {model: bedrock/claude}}\n  - {model_name: y, litellm_params: {model: deepseek/deepseek-chat, api_key: k}}\n",
        );
        assert_eq!(s.group_order, ["y"]);
        assert_eq!(s.unserved[0].path, "model_list[0].litellm_params.model");
        assert!(s.unserved[0].reason.contains("bedrock/ is not yet served"));
    }
}
