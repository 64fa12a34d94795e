//! Providers picked by LiteLLM's model prefix (`deepseek/deepseek-v3.2` → DeepSeek).
//!
//! Static dispatch over an enum: adding a provider is adding a variant, and the compiler points
//! at every `match` that must learn it.

use serde::Serialize;
use tollgate_core::redact;

/// A provider: where it lives, how it authenticates, and which [`WireFormat`] its body speaks.
///
/// The body translation belongs to the wire format, not the provider, so a new way to reach a
/// known format is a new variant here and nothing more in the translation modules: Vertex AI
/// would be a variant with [`WireFormat::Gemini`] (URL
/// `…/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`, an OAuth bearer
/// instead of `x-goog-api-key`), and Bedrock's Claude models a variant with
/// [`WireFormat::Anthropic`] (the model in the URL, `anthropic_version` in the body, SigV4
/// signing), both chosen in `translate::build_request` by provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    OpenAi,
    DeepSeek,
    Xai,
    MiniMax,
    OpenRouter,
    Groq,
    TogetherAi,
    Mistral,
    FireworksAi,
    OllamaChat,
    HostedVllm,
    /// Google AI Studio's native `generateContent` API.
    Gemini,
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's legacy `/completions` (LiteLLM's `text-completion-openai/`, e.g.
    /// `gpt-3.5-turbo-instruct`); its chat requests go to `/chat/completions` like `openai/`.
    TextCompletionOpenAi,
    /// Cohere, reached for `/rerank` (the gateway's rerank endpoint).
    Cohere,
    /// Jina AI, reached for `/rerank`.
    JinaAi,
    /// Azure OpenAI: the deployment name in the URL path, `api-version` in the query and the
    /// key in an `api-key` header; the body is OpenAI's.
    Azure,
    /// A prefix tollgate has no native support for, whose deployment names an `api_base`: served
    /// with OpenAI's wire format there, because most self-hosted servers and proxies speak it.
    /// The route keeps the prefix as written, for records and listings.
    OpenAiCompatible,
}

/// Prefixes whose wire or auth is not OpenAI's (SigV4 signing, Google OAuth): a deployment
/// naming one is skipped with a warning, even with an `api_base`, instead of being sent requests
/// it cannot answer.
pub const NOT_YET_SERVED: [&str; 5] = [
    "bedrock",
    "bedrock_converse",
    "sagemaker",
    "vertex_ai",
    "vertex_ai_beta",
];

/// Azure OpenAI's `api-version` when neither the deployment nor `AZURE_API_VERSION` sets one: the
/// latest generally available data-plane version.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// The body format an upstream speaks; each has a translation module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// OpenAI's chat completions: passed through with only `model` rewritten.
    OpenAi,
    /// Gemini `generateContent` (AI Studio today; Vertex AI later).
    Gemini,
    /// Anthropic Messages (Anthropic today; Bedrock and Vertex AI Claude later).
    Anthropic,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "unknown provider prefix `{prefix}` in `{model}`; supported: openai/, deepseek/, xai/, minimax/, openrouter/, groq/, together_ai/, mistral/, fireworks_ai/, ollama_chat/, hosted_vllm/, gemini/, anthropic/, text-completion-openai/, cohere/, jina_ai/, azure/"
    )]
    UnknownPrefix { prefix: String, model: String },
    #[error("`{model}` names no model after its provider prefix")]
    EmptyModel { model: String },
    #[error("{provider}/ has no default api_base; set litellm_params.api_base (e.g. http://host:8000/v1)")]
    NeedsApiBase { provider: &'static str },
    #[error(
        "azure/ needs the resource's endpoint: set litellm_params.api_base (https://<resource>.openai.azure.com) or AZURE_API_BASE"
    )]
    AzureNeedsApiBase,
}

/// Where and how to call one deployment. Its `Debug` and `Serialize` show the URLs masked, so a
/// route printed in a log or a listing never carries the credentials an `api_base` may hold.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub provider: Provider,
    /// The provider's name in records and listings: its prefix, or for
    /// [`Provider::OpenAiCompatible`] the prefix as the config wrote it.
    pub provider_name: String,
    /// The model name the upstream expects (prefix removed).
    pub upstream_model: String,
    /// Base URL without a trailing slash, credentials masked (`user:***@`, `?api-key=***`): what
    /// records, messages and listings show. The request URLs below keep the real credentials.
    pub api_base: String,
    /// Where a plain chat request goes.
    #[serde(serialize_with = "masked")]
    pub chat_url: String,
    /// Where a streamed chat request goes (Gemini streams from another method than it answers).
    #[serde(serialize_with = "masked")]
    pub stream_url: String,
    #[serde(serialize_with = "masked")]
    pub embeddings_url: String,
}

fn masked<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact::url(url))
}

impl Route {
    /// The URL of another endpoint beside the OpenAI-style ones (`completions`, `moderations`,
    /// `images/generations`, `audio/transcriptions`, `rerank`): the embeddings URL with its last
    /// segment replaced, so `api_base`'s path and query (`?api-key=…`) are kept.
    pub fn sibling_url(&self, path: &str) -> String {
        let (url, query) = match self.embeddings_url.split_once('?') {
            Some((u, q)) => (u, Some(q)),
            None => (self.embeddings_url.as_str(), None),
        };
        let base = url.strip_suffix("/embeddings").unwrap_or(url);
        match query {
            Some(q) => format!("{base}/{path}?{q}"),
            None => format!("{base}/{path}"),
        }
    }
}

impl Route {
    /// The header carrying the upstream key: Azure's `api-key`, everyone else's bearer token.
    pub fn auth_header(&self, key: &str) -> (&'static str, String) {
        match self.provider {
            Provider::Azure => ("api-key", key.to_string()),
            _ => ("authorization", format!("Bearer {key}")),
        }
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("provider", &self.provider)
            .field("provider_name", &self.provider_name)
            .field("upstream_model", &self.upstream_model)
            .field("api_base", &self.api_base)
            .field("chat_url", &redact::url(&self.chat_url))
            .field("stream_url", &redact::url(&self.stream_url))
            .field("embeddings_url", &redact::url(&self.embeddings_url))
            .finish()
    }
}

impl Provider {
    pub const ALL: [Provider; 18] = [
        Provider::OpenAi,
        Provider::DeepSeek,
        Provider::Xai,
        Provider::MiniMax,
        Provider::OpenRouter,
        Provider::Groq,
        Provider::TogetherAi,
        Provider::Mistral,
        Provider::FireworksAi,
        Provider::OllamaChat,
        Provider::HostedVllm,
        Provider::Gemini,
        Provider::Anthropic,
        Provider::TextCompletionOpenAi,
        Provider::Cohere,
        Provider::JinaAi,
        Provider::Azure,
        Provider::OpenAiCompatible,
    ];

    /// LiteLLM's prefix, which is also the provider's name in records.
    pub fn prefix(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::DeepSeek => "deepseek",
            Provider::Xai => "xai",
            Provider::MiniMax => "minimax",
            Provider::OpenRouter => "openrouter",
            Provider::Groq => "groq",
            Provider::TogetherAi => "together_ai",
            Provider::Mistral => "mistral",
            Provider::FireworksAi => "fireworks_ai",
            Provider::OllamaChat => "ollama_chat",
            Provider::HostedVllm => "hosted_vllm",
            Provider::Gemini => "gemini",
            Provider::Anthropic => "anthropic",
            Provider::TextCompletionOpenAi => "text-completion-openai",
            Provider::Cohere => "cohere",
            Provider::JinaAi => "jina_ai",
            Provider::Azure => "azure",
            Provider::OpenAiCompatible => "openai_compatible",
        }
    }

    /// The provider a config's prefix names; `None` for a prefix tollgate does not know
    /// ([`Provider::OpenAiCompatible`] is chosen by the caller, never by name).
    pub fn from_prefix(prefix: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| *p != Provider::OpenAiCompatible && p.prefix() == prefix)
    }

    /// The provider's public endpoint, as LiteLLM defaults it.
    pub fn default_api_base(self) -> Option<&'static str> {
        Some(match self {
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::DeepSeek => "https://api.deepseek.com/v1",
            Provider::Xai => "https://api.x.ai/v1",
            Provider::MiniMax => "https://api.minimax.io/v1",
            Provider::OpenRouter => "https://openrouter.ai/api/v1",
            Provider::Groq => "https://api.groq.com/openai/v1",
            Provider::TogetherAi => "https://api.together.xyz/v1",
            Provider::Mistral => "https://api.mistral.ai/v1",
            Provider::FireworksAi => "https://api.fireworks.ai/inference/v1",
            Provider::OllamaChat => "http://localhost:11434",
            Provider::HostedVllm => return None,
            Provider::Gemini => "https://generativelanguage.googleapis.com",
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::TextCompletionOpenAi => "https://api.openai.com/v1",
            Provider::Cohere => "https://api.cohere.com/v1",
            Provider::JinaAi => "https://api.jina.ai/v1",
            Provider::Azure | Provider::OpenAiCompatible => return None,
        })
    }

    /// The environment variable LiteLLM reads the key from when `api_key` is not set.
    pub fn key_env_var(self) -> Option<&'static str> {
        Some(match self {
            Provider::OpenAi => "OPENAI_API_KEY",
            Provider::DeepSeek => "DEEPSEEK_API_KEY",
            Provider::Xai => "XAI_API_KEY",
            Provider::MiniMax => "MINIMAX_API_KEY",
            Provider::OpenRouter => "OPENROUTER_API_KEY",
            Provider::Groq => "GROQ_API_KEY",
            Provider::TogetherAi => "TOGETHERAI_API_KEY",
            Provider::Mistral => "MISTRAL_API_KEY",
            Provider::FireworksAi => "FIREWORKS_AI_API_KEY",
            Provider::Gemini => "GEMINI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::TextCompletionOpenAi => "OPENAI_API_KEY",
            Provider::Cohere => "COHERE_API_KEY",
            Provider::JinaAi => "JINA_AI_API_KEY",
            Provider::Azure => "AZURE_API_KEY",
            Provider::OllamaChat | Provider::HostedVllm | Provider::OpenAiCompatible => return None,
        })
    }

    /// The environment variable LiteLLM reads the endpoint from when `api_base` is not set.
    pub fn base_env_var(self) -> Option<&'static str> {
        match self {
            Provider::Azure => Some("AZURE_API_BASE"),
            _ => None,
        }
    }

    pub fn wire_format(self) -> WireFormat {
        match self {
            Provider::Gemini => WireFormat::Gemini,
            Provider::Anthropic => WireFormat::Anthropic,
            _ => WireFormat::OpenAi,
        }
    }
}

/// Gemini's URLs. LiteLLM takes a custom `api_base` for `gemini/` as everything before
/// `:generateContent` (`https://proxy/v1beta/models/gemini-2.5-flash`); tollgate accepts that,
/// and also a bare host (`https://proxy`) or a versioned root (`https://proxy/v1beta`).
fn gemini_urls(base: &str, model: &str) -> (String, String, String) {
    let models = if base.ends_with(&format!("/models/{model}")) {
        base.to_string()
    } else if base.ends_with("/v1beta") || base.ends_with("/v1") || base.ends_with("/v1alpha") {
        format!("{base}/models/{model}")
    } else {
        format!("{base}/v1beta/models/{model}")
    };
    let root = models.rsplit_once("/models/").map_or(base, |(r, _)| r).to_string();
    (
        format!("{models}:generateContent"),
        format!("{models}:streamGenerateContent?alt=sse"),
        // Embeddings still go through Google's OpenAI-compatible endpoint.
        format!("{root}/openai/embeddings"),
    )
}

/// Anthropic's URL. LiteLLM appends `/v1/messages` to an `api_base` that does not already end
/// with it; a base ending in `/v1` gets only `/messages`, so `http://host/v1` works as it does
/// for every other provider.
fn anthropic_url(base: &str) -> String {
    if base.ends_with("/v1/messages") {
        base.to_string()
    } else if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

/// Resolves a LiteLLM model string and optional `api_base` into a route.
pub fn route(model: &str, api_base: Option<&str>) -> Result<Route, ProviderError> {
    route_with(model, api_base, None)
}

/// [`route`] with Azure's `api-version` (ignored by every other provider; Azure's default is
/// [`AZURE_DEFAULT_API_VERSION`]).
pub fn route_with(model: &str, api_base: Option<&str>, api_version: Option<&str>) -> Result<Route, ProviderError> {
    let (provider, upstream_model) = match model.split_once('/') {
        Some((prefix, rest)) => {
            let provider = Provider::from_prefix(prefix).ok_or_else(|| ProviderError::UnknownPrefix {
                prefix: prefix.to_string(),
                model: model.to_string(),
            })?;
            (provider, rest)
        }
        // LiteLLM treats a bare name as an OpenAI model.
        None => (Provider::OpenAi, model),
    };
    build(
        provider,
        provider.prefix(),
        upstream_model,
        model,
        api_base,
        api_version,
    )
}

/// A deployment whose prefix tollgate does not know, served with OpenAI's wire format at its
/// `api_base` (which it must have). The prefix stays the provider's name in records.
pub fn route_openai_compatible(model: &str, api_base: &str) -> Result<Route, ProviderError> {
    let (prefix, upstream_model) = model.split_once('/').unwrap_or(("openai_compatible", model));
    build(
        Provider::OpenAiCompatible,
        prefix,
        upstream_model,
        model,
        Some(api_base),
        None,
    )
}

fn build(
    provider: Provider,
    provider_name: &str,
    upstream_model: &str,
    model: &str,
    api_base: Option<&str>,
    api_version: Option<&str>,
) -> Result<Route, ProviderError> {
    if upstream_model.is_empty() {
        return Err(ProviderError::EmptyModel {
            model: model.to_string(),
        });
    }
    let written = match api_base {
        Some(b) if !b.trim().is_empty() => b.trim(),
        _ if provider == Provider::Azure => return Err(ProviderError::AzureNeedsApiBase),
        _ => provider.default_api_base().ok_or(ProviderError::NeedsApiBase {
            provider: provider.prefix(),
        })?,
    };
    // A query (`?api-key=…`) and fragment stay at the end of every URL: paths are appended to
    // the base's path, never after its query.
    let (path_part, query) = match written.split_once('?') {
        Some((p, q)) => (p, Some(q.split_once('#').map_or(q, |(q, _)| q))),
        None => (written.split_once('#').map_or(written, |(p, _)| p), None),
    };
    let base = path_part.trim_end_matches('/').to_string();
    let azure_query;
    let query = if provider == Provider::Azure {
        let version = format!("api-version={}", api_version.unwrap_or(AZURE_DEFAULT_API_VERSION));
        azure_query = match query.filter(|q| !q.is_empty()) {
            Some(q) if q.contains("api-version=") => q.to_string(),
            Some(q) => format!("{q}&{version}"),
            None => version,
        };
        Some(azure_query.as_str())
    } else {
        query
    };
    let with_query = |url: String| -> String {
        match query.filter(|q| !q.is_empty()) {
            None => url,
            Some(q) => match url.split_once('?') {
                Some((u, own)) => format!("{u}?{q}&{own}"),
                None => format!("{url}?{q}"),
            },
        }
    };
    let openai_base = match provider {
        // Ollama's OpenAI-compatible API lives under /v1 of the server LiteLLM users point at.
        Provider::OllamaChat if !base.ends_with("/v1") => format!("{base}/v1"),
        // Azure's resource endpoint (`https://r.openai.azure.com`, with or without `/openai`):
        // each deployment has its own path under it.
        Provider::Azure => azure_deployment_base(&base, upstream_model),
        _ => base.clone(),
    };
    let (chat_url, stream_url, embeddings_url) = match provider.wire_format() {
        WireFormat::OpenAi => {
            let chat = format!("{openai_base}/chat/completions");
            (chat.clone(), chat, format!("{openai_base}/embeddings"))
        }
        WireFormat::Gemini => gemini_urls(&base, upstream_model),
        WireFormat::Anthropic => {
            let url = anthropic_url(&base);
            (url.clone(), url, format!("{base}/v1/embeddings"))
        }
    };
    let shown_base = match query.filter(|q| !q.is_empty()) {
        Some(q) => redact::url(&format!("{base}?{q}")),
        None => redact::url(&base),
    };
    Ok(Route {
        provider,
        provider_name: provider_name.to_string(),
        upstream_model: upstream_model.to_string(),
        chat_url: with_query(chat_url),
        stream_url: with_query(stream_url),
        embeddings_url: with_query(embeddings_url),
        api_base: shown_base,
    })
}

/// `…/openai/deployments/{deployment}` under an Azure resource endpoint, whichever of its forms
/// the config wrote: the bare resource, `…/openai`, or the deployment's own path.
fn azure_deployment_base(base: &str, deployment: &str) -> String {
    if base.contains("/openai/deployments/") {
        return base.to_string();
    }
    let resource = base.strip_suffix("/openai").unwrap_or(base);
    format!("{resource}/openai/deployments/{deployment}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_models_route_to_their_providers() {
        let r = route("deepseek/deepseek-v3.2", None).unwrap();
        assert_eq!(r.provider, Provider::DeepSeek);
        assert_eq!(r.upstream_model, "deepseek-v3.2");
        assert_eq!(r.chat_url, "https://api.deepseek.com/v1/chat/completions");

        let r = route("xai/grok-4-1-fast-reasoning", None).unwrap();
        assert_eq!(r.chat_url, "https://api.x.ai/v1/chat/completions");
        assert_eq!(r.upstream_model, "grok-4-1-fast-reasoning");

        let r = route("minimax/MiniMax-M2.1", None).unwrap();
        assert_eq!(r.chat_url, "https://api.minimax.io/v1/chat/completions");

        let r = route("gemini/gemini-2.5-flash", None).unwrap();
        assert_eq!(r.provider.wire_format(), WireFormat::Gemini);
        assert_eq!(
            r.chat_url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            r.stream_url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        let r = route("anthropic/claude-sonnet-4-5", None).unwrap();
        assert_eq!(r.chat_url, "https://api.anthropic.com/v1/messages");
    }

    #[test]
    fn native_api_base_forms() {
        for base in [
            "http://m:1",
            "http://m:1/v1beta",
            "http://m:1/v1beta/models/gemini-2.5-flash",
        ] {
            let r = route("gemini/gemini-2.5-flash", Some(base)).unwrap();
            assert_eq!(
                r.chat_url, "http://m:1/v1beta/models/gemini-2.5-flash:generateContent",
                "{base}"
            );
        }
        for base in ["http://m:1", "http://m:1/v1", "http://m:1/v1/messages/"] {
            let r = route("anthropic/claude-sonnet-4-5", Some(base)).unwrap();
            assert_eq!(r.chat_url, "http://m:1/v1/messages", "{base}");
        }
    }

    #[test]
    fn openrouter_keeps_the_vendor_path() {
        let r = route("openrouter/x-ai/grok-4.1-fast", None).unwrap();
        assert_eq!(r.upstream_model, "x-ai/grok-4.1-fast");
        assert_eq!(r.chat_url, "https://openrouter.ai/api/v1/chat/completions");
    }

    #[test]
    fn api_base_overrides_and_trailing_slash_is_trimmed() {
        let r = route("openai/gpt-4o-mini", Some("http://127.0.0.1:9000/v1/")).unwrap();
        assert_eq!(r.chat_url, "http://127.0.0.1:9000/v1/chat/completions");
        assert_eq!(r.embeddings_url, "http://127.0.0.1:9000/v1/embeddings");
        let r = route("gpt-4o-mini", None).unwrap();
        assert_eq!(r.provider, Provider::OpenAi);
    }

    #[test]
    fn ollama_gets_v1_and_vllm_needs_a_base() {
        let r = route("ollama_chat/qwen3:1.7b", None).unwrap();
        assert_eq!(r.chat_url, "http://localhost:11434/v1/chat/completions");
        assert!(matches!(
            route("hosted_vllm/m", None),
            Err(ProviderError::NeedsApiBase { .. })
        ));
        let r = route("hosted_vllm/m", Some("http://gpu:8000/v1")).unwrap();
        assert_eq!(r.chat_url, "http://gpu:8000/v1/chat/completions");
    }

    #[test]
    fn a_query_in_api_base_stays_at_the_end_of_every_url() {
        let r = route("openai/m", Some("http://u:pw@h:1/v1/?api-key=sk-q")).unwrap();
        assert_eq!(r.chat_url, "http://u:pw@h:1/v1/chat/completions?api-key=sk-q");
        assert_eq!(r.embeddings_url, "http://u:pw@h:1/v1/embeddings?api-key=sk-q");
        let r = route("gemini/g", Some("http://h:1/v1beta?key=sk-q")).unwrap();
        assert_eq!(r.chat_url, "http://h:1/v1beta/models/g:generateContent?key=sk-q");
        assert_eq!(
            r.stream_url,
            "http://h:1/v1beta/models/g:streamGenerateContent?key=sk-q&alt=sse"
        );
        let r = route("anthropic/c", Some("http://h:1/v1?x=1")).unwrap();
        assert_eq!(r.chat_url, "http://h:1/v1/messages?x=1");
    }

    #[test]
    fn the_shown_api_base_never_carries_credentials() {
        let r = route("openai/m", Some("http://u:hunter2@h:1/v1?api-key=sk-q")).unwrap();
        assert_eq!(r.api_base, "http://u:***@h:1/v1?api-key=***");
        let shown = format!("{r:?} {}", serde_json::to_string(&r).unwrap());
        assert!(!shown.contains("hunter2") && !shown.contains("sk-q"), "{shown}");
        let r = route("openai/m", Some("http://h:1/v1/")).unwrap();
        assert_eq!(r.api_base, "http://h:1/v1");
    }

    #[test]
    fn azure_puts_the_deployment_in_the_path_and_the_version_in_the_query() {
        for base in [
            "https://res.openai.azure.com",
            "https://res.openai.azure.com/",
            "https://res.openai.azure.com/openai",
            "https://res.openai.azure.com/openai/deployments/gpt4o-prod",
        ] {
            let r = route("azure/gpt4o-prod", Some(base)).unwrap();
            assert_eq!(r.provider, Provider::Azure);
            assert_eq!(
                r.chat_url,
                "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
                "{base}"
            );
        }
        let r = route_with(
            "azure/emb",
            Some("https://res.openai.azure.com"),
            Some("2025-01-01-preview"),
        )
        .unwrap();
        assert_eq!(
            r.embeddings_url,
            "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2025-01-01-preview"
        );
        assert_eq!(
            r.sibling_url("images/generations"),
            "https://res.openai.azure.com/openai/deployments/emb/images/generations?api-version=2025-01-01-preview"
        );
        // A version written into api_base is kept, not doubled.
        let r = route("azure/d", Some("https://res.openai.azure.com?api-version=2024-06-01")).unwrap();
        assert_eq!(
            r.chat_url,
            "https://res.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-06-01"
        );
        assert_eq!(r.auth_header("k1"), ("api-key", "k1".to_string()));
        assert!(matches!(route("azure/d", None), Err(ProviderError::AzureNeedsApiBase)));
        let r = route("openai/m", None).unwrap();
        assert_eq!(r.auth_header("k1"), ("authorization", "Bearer k1".to_string()));
    }

    #[test]
    fn an_unknown_prefix_with_an_api_base_keeps_its_name() {
        let r = route_openai_compatible("lm_studio/qwen3-8b", "http://127.0.0.1:1234/v1").unwrap();
        assert_eq!(r.provider, Provider::OpenAiCompatible);
        assert_eq!(r.provider_name, "lm_studio");
        assert_eq!(r.upstream_model, "qwen3-8b");
        assert_eq!(r.chat_url, "http://127.0.0.1:1234/v1/chat/completions");
        assert_eq!(Provider::from_prefix("openai_compatible"), None);
        assert_eq!(route("deepseek/x", None).unwrap().provider_name, "deepseek");
    }

    #[test]
    fn unknown_prefix_lists_the_known_ones() {
        let e = route("bedrock/claude", None).unwrap_err().to_string();
        assert!(e.contains("bedrock") && e.contains("deepseek/"), "{e}");
    }

    #[test]
    fn sibling_urls_keep_the_base_path_and_query() {
        let r = route("text-completion-openai/gpt-3.5-turbo-instruct", None).unwrap();
        assert_eq!(r.provider, Provider::TextCompletionOpenAi);
        assert_eq!(r.sibling_url("completions"), "https://api.openai.com/v1/completions");
        let r = route("cohere/rerank-english-v3.0", None).unwrap();
        assert_eq!(r.sibling_url("rerank"), "https://api.cohere.com/v1/rerank");
        let r = route("hosted_vllm/bge", Some("http://h:8000/v1?api-key=k")).unwrap();
        assert_eq!(r.sibling_url("rerank"), "http://h:8000/v1/rerank?api-key=k");
    }
}
