//! One deployment, resolved from its config entry: its route (provider, URLs, auth), key,
//! price, limits and timeouts. Built at load for every named model group, and per requested name
//! for a wildcard pattern (`wildcard.rs`), by the same [`BuildContext::build`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tollgate_core::config::{ConfigWarning, DeploymentConfig, Env, Secret};
use tollgate_core::{Price, PriceTable, redact};
use tollgate_providers::provider::{
    NOT_YET_SERVED, Provider, ProviderError, Route, route_openai_compatible, route_with,
};

use crate::deployment_stats::DeploymentStats;
use crate::upstream_client::{RequestBuilder, parse_uri};

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

impl Deployment {
    /// `req` with the deployment's key in the header its provider reads (a bearer token, or
    /// Azure's `api-key`).
    pub fn authorize(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.api_key {
            Some(k) => {
                let (name, value) = self.route.auth_header(k.expose());
                req.header(name, value)
            }
            None => req,
        }
    }
}

/// A deployment whose provider prefix tollgate does not know: its route (OpenAI's wire at its
/// `api_base`) and the warning saying so, or why it cannot be served.
fn unknown_provider(prefix: &str, model: &str, api_base: Option<&str>) -> Result<(Route, Option<String>), String> {
    if NOT_YET_SERVED.contains(&prefix) {
        return Err(format!(
            "{prefix}/ is not yet served by tollgate (its requests need {}, not OpenAI's wire format)",
            if prefix.starts_with("vertex") {
                "Google OAuth"
            } else {
                "AWS SigV4 signing"
            }
        ));
    }
    let Some(base) = api_base else {
        return Err(format!(
            "unknown provider prefix `{prefix}/` and no api_base; set litellm_params.api_base to serve it as an OpenAI-compatible endpoint"
        ));
    };
    let r = route_openai_compatible(model, base).map_err(|e| e.to_string())?;
    let message = format!(
        "unknown provider prefix `{prefix}/`: served as an OpenAI-compatible endpoint at {}",
        r.api_base
    );
    Ok((r, Some(message)))
}

/// A deployment's upstream URLs, parsed.
#[derive(Debug, Clone)]
pub struct UpstreamUrls {
    pub chat: Uri,
    pub stream: Uri,
    pub embeddings: Uri,
}

impl UpstreamUrls {
    fn parse(r: &Route) -> Result<UpstreamUrls, String> {
        let parse = |s: &str| parse_uri(s).map_err(|e| format!("`{}` is not a usable URL: {e}", redact::url(s)));
        Ok(UpstreamUrls {
            chat: parse(&r.chat_url)?,
            stream: parse(&r.stream_url)?,
            embeddings: parse(&r.embeddings_url)?,
        })
    }

    /// The parsed form of `url` when it is one of the route's (it always is today); otherwise
    /// parsed now.
    pub fn resolve(&self, url: &str) -> Result<Uri, String> {
        for u in [&self.chat, &self.stream, &self.embeddings] {
            if u == url {
                return Ok(u.clone());
            }
        }
        parse_uri(url).map_err(|e| format!("`{}` is not a usable URL: {e}", redact::url(url)))
    }
}

/// A model group: what clients name in `model`.
#[derive(Debug)]
pub struct ModelGroup {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
}

/// A deployment left out of the live state, and why.
#[derive(Debug, Clone)]
pub struct Unserved {
    pub model_name: String,
    pub model: String,
    /// The YAML path of its `litellm_params.model`.
    pub path: String,
    pub reason: String,
}

/// The environment variables LiteLLM falls back to for a deployment (providers' keys and
/// endpoints, Azure's api-version), read once at load so a wildcard deployment built later reads
/// the same values.
#[derive(Debug, Default)]
pub struct ProviderEnv {
    vars: HashMap<&'static str, String>,
}

impl ProviderEnv {
    pub fn read(env: &dyn Env) -> ProviderEnv {
        let names = Provider::ALL
            .into_iter()
            .flat_map(|p| [p.key_env_var(), p.base_env_var()])
            .flatten()
            .chain(["AZURE_API_VERSION"]);
        let vars = names.filter_map(|n| env.var(n).map(|v| (n, v))).collect();
        ProviderEnv { vars }
    }

    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    /// The variable `var` names for the provider `model`'s prefix names.
    fn for_model(&self, model: &str, var: fn(Provider) -> Option<&'static str>) -> Option<String> {
        let (prefix, _) = model.split_once('/')?;
        Provider::from_prefix(prefix).and_then(var).and_then(|v| self.var(v))
    }
}

/// What building a deployment needs besides its own entry.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub prices: Arc<PriceTable>,
    pub env: Arc<ProviderEnv>,
    /// `litellm_settings.request_timeout`, else the gateway's default.
    pub default_timeout: Duration,
}

/// A deployment built, or skipped (a provider tollgate cannot reach) with the warning saying so.
pub enum Built {
    Served(Box<Deployment>, Vec<ConfigWarning>),
    Skipped(Unserved, ConfigWarning),
}

/// A deployment that cannot be built: the YAML path where the fix goes, and what is wrong.
#[derive(Debug)]
pub struct BuildError {
    pub path: String,
    pub message: String,
}

impl BuildContext {
    /// A wildcard entry (`model_name` with `*`) is checked at load as far as it can be without a
    /// requested name: a provider it names must be one tollgate knows or can reach.
    pub fn check_pattern(&self, d: &DeploymentConfig) -> Result<(), BuildError> {
        // `*` stands for any name here; the provider prefix is what can be checked.
        let sample = d.model.replace('*', "x");
        match self.build(d, &sample, &d.model_name)? {
            Built::Served(..) => Ok(()),
            Built::Skipped(_, w) => Err(BuildError {
                path: w.path,
                message: w.message,
            }),
        }
    }

    /// The deployment `d` serving `model` (its own `litellm_params.model`, or a wildcard's with
    /// the requested name substituted) in the group `group`.
    pub fn build(&self, d: &DeploymentConfig, model: &str, group: &str) -> Result<Built, BuildError> {
        let mut warnings = Vec::new();
        let base = format!("model_list[{}].litellm_params", d.index);
        // LiteLLM's environment fallbacks for what the deployment does not write itself.
        let api_base = d
            .api_base
            .clone()
            .or_else(|| self.env.for_model(model, Provider::base_env_var));
        let api_version = d.api_version.clone().or_else(|| self.env.var("AZURE_API_VERSION"));
        let resolved = match route_with(model, api_base.as_deref(), api_version.as_deref()) {
            Ok(r) => Ok((r, None)),
            Err(ProviderError::UnknownPrefix { prefix, .. }) => unknown_provider(&prefix, model, api_base.as_deref()),
            // LiteLLM accepts `azure/` alone (an image model named by the request); tollgate
            // cannot route it, so it is left out rather than refusing the config.
            Err(e @ ProviderError::EmptyModel { .. }) => Err(e.to_string()),
            Err(e) => {
                return Err(BuildError {
                    path: format!("{base}.model"),
                    message: e.to_string(),
                });
            }
        };
        let r = match resolved {
            Ok((r, note)) => {
                if let Some(message) = note {
                    warnings.push(ConfigWarning {
                        path: format!("{base}.model"),
                        message,
                    });
                }
                r
            }
            // A deployment tollgate cannot serve is left out; the rest of the config is served.
            Err(reason) => {
                let warning = ConfigWarning {
                    path: format!("{base}.model"),
                    message: format!("{reason}; this deployment is skipped, the rest of the config is served"),
                };
                let unserved = Unserved {
                    model_name: group.to_string(),
                    model: model.to_string(),
                    path: format!("{base}.model"),
                    reason,
                };
                return Ok(Built::Skipped(unserved, warning));
            }
        };
        let api_key = d
            .api_key
            .clone()
            .or_else(|| r.provider.key_env_var().and_then(|v| self.env.var(v)).map(Secret::new));
        if api_key.is_none()
            && !matches!(
                r.provider,
                Provider::OllamaChat | Provider::HostedVllm | Provider::OpenAiCompatible
            )
            && api_base.is_none()
        {
            warnings.push(ConfigWarning {
                path: format!("{base}.api_key"),
                message: format!(
                    "no api_key and {} is not set; the provider will refuse the requests",
                    r.provider.key_env_var().unwrap_or("no key variable")
                ),
            });
        }
        // A wildcard's price is the requested model's, unless the entry names a base model.
        let price_key = d.model_info.base_model.as_deref().unwrap_or(model);
        let mut price = self.prices.lookup(price_key).cloned().unwrap_or_default();
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
        let timeout = d.timeout.map(Duration::from_secs_f64).unwrap_or(self.default_timeout);
        let urls = UpstreamUrls::parse(&r).map_err(|message| BuildError {
            path: format!("{base}.api_base"),
            message,
        })?;
        let dep = Deployment {
            model_group: group.to_string(),
            model: model.to_string(),
            max_input_tokens: price.max_input_tokens,
            max_output_tokens: price.max_output(),
            price: priced.then_some(price),
            urls,
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
        Ok(Built::Served(Box::new(dep), warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_url_resolves_to_its_parsed_form_without_parsing_again() {
        // `Uri == str` compares the parts, so the route's text finds the URI parsed at load, query
        // and credentials included; any other URL is parsed on the spot.
        for s in [
            "http://user:pass@127.0.0.1:9/v1/chat/completions?api-key=k",
            "https://res.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-10-21",
            "http://127.0.0.1:4000/v1/embeddings",
        ] {
            let u = parse_uri(s).unwrap();
            assert!(u == s, "{s} vs {u}");
        }
        let u = parse_uri("http://127.0.0.1:4000/v1/chat/completions").unwrap();
        let urls = UpstreamUrls {
            chat: u.clone(),
            stream: u.clone(),
            embeddings: parse_uri("http://127.0.0.1:4000/v1/embeddings").unwrap(),
        };
        assert_eq!(urls.resolve("http://127.0.0.1:4000/v1/chat/completions").unwrap(), u);
        assert_eq!(
            urls.resolve("http://127.0.0.1:4000/v1/rerank").unwrap().path(),
            "/v1/rerank"
        );
        assert!(urls.resolve("not a url").is_err());
    }
}
