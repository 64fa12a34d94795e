//! The endpoints the pipeline serves. Each is a configuration of the same stages, not a copy of
//! them: what its body must hold, whether it streams, caches or runs workflows, which cache call
//! type it is, and how its request is put on the wire.

use tollgate_providers::provider::{Provider, WireFormat};

/// How a request is sent to a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Chat: translated to the deployment's own wire format (OpenAI's, Gemini's, Anthropic's),
    /// max_tokens fitted to its context window.
    Chat,
    /// Passed on as OpenAI's JSON to the deployment's embeddings URL.
    Embeddings,
    /// Legacy text completions: passed on to `/completions` of a `text-completion-openai/`
    /// deployment; for any other deployment `prompt` becomes one user message sent as chat, and
    /// the answer is written back in the text-completion shape (`pipeline/text_completion.rs`).
    TextCompletion,
    /// The client's JSON passed on (`model` rewritten) to the deployment's `path` beside its
    /// OpenAI-style URLs; the answer is relayed as the deployment wrote it.
    Json { path: &'static str, reach: Reach },
    /// A multipart form, held in the pipeline as JSON (`pipeline/form.rs`) and sent to `path`
    /// as multipart again with `model` rewritten; the answer is relayed as written.
    Form { path: &'static str },
    /// Anthropic's Messages API: passed through as the client wrote it (`model` rewritten) to an
    /// Anthropic deployment, its answer and events relayed as they come; translated to chat for
    /// any other deployment, its answer and chunks written back as Anthropic's
    /// (`pipeline/messages.rs`).
    Messages,
}

/// Which deployments an endpoint passed through can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The OpenAI-compatible family (OpenAI's own endpoints, mirrored by vLLM, Groq, …).
    OpenAiFamily,
    /// `/rerank` speakers: Cohere, Jina AI, and OpenAI-compatible servers (vLLM, Infinity)
    /// that take Cohere's body.
    Rerank,
}

impl Wire {
    /// Whether a deployment of `provider` can answer this endpoint; the others are refused
    /// before a request is sent (a configuration mistake, the client's 400).
    pub fn reaches(self, provider: Provider) -> bool {
        let openai_family =
            provider.wire_format() == WireFormat::OpenAi && !matches!(provider, Provider::Cohere | Provider::JinaAi);
        match self {
            Wire::Chat | Wire::Embeddings | Wire::TextCompletion | Wire::Messages => true,
            Wire::Json {
                reach: Reach::OpenAiFamily,
                ..
            }
            | Wire::Form { .. } => openai_family,
            Wire::Json {
                reach: Reach::Rerank, ..
            } => openai_family || matches!(provider, Provider::Cohere | Provider::JinaAi),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// What records call it (`Record::endpoint`): `chat`, `embeddings`, `completions`, `messages`, …
    pub name: &'static str,
    /// LiteLLM's call type, as `cache_params.supported_call_types` names it.
    pub call_type: &'static str,
    /// The body must carry a non-empty `messages` list.
    pub needs_messages: bool,
    /// Fields the body must carry (besides `model`), named in the 400 when missing.
    pub requires: &'static [&'static str],
    /// `stream: true` is honoured (otherwise the answer is always whole).
    pub streams: bool,
    /// A workflow may be named in `model`.
    pub runs_workflows: bool,
    /// Answers may come from and go to the response cache. Off where the cache key would not
    /// see everything that decides the answer (an uploaded file) or an answer is an image.
    pub caches: bool,
    /// Where the body names the end user (LiteLLM's customer), as a path of fields: OpenAI's
    /// `user`, Anthropic's `metadata.user_id`.
    pub end_user_at: &'static [&'static str],
    pub wire: Wire,
}

impl Endpoint {
    /// `POST /v1/chat/completions`.
    pub const CHAT: Endpoint = Endpoint {
        name: "chat",
        end_user_at: &["user"],
        call_type: "completion",
        needs_messages: true,
        requires: &[],
        streams: true,
        runs_workflows: true,
        caches: true,
        wire: Wire::Chat,
    };

    /// `POST /v1/embeddings`.
    pub const EMBEDDINGS: Endpoint = Endpoint {
        name: "embeddings",
        end_user_at: &["user"],
        call_type: "embedding",
        needs_messages: false,
        requires: &[],
        streams: false,
        runs_workflows: false,
        caches: true,
        wire: Wire::Embeddings,
    };

    /// `POST /v1/completions`: legacy text completions.
    pub const COMPLETIONS: Endpoint = Endpoint {
        name: "completions",
        end_user_at: &["user"],
        call_type: "text_completion",
        needs_messages: false,
        requires: &["prompt"],
        streams: true,
        runs_workflows: false,
        caches: false,
        wire: Wire::TextCompletion,
    };

    /// `POST /v1/moderations`.
    pub const MODERATIONS: Endpoint = Endpoint {
        name: "moderations",
        end_user_at: &["user"],
        call_type: "moderation",
        needs_messages: false,
        requires: &["input"],
        streams: false,
        runs_workflows: false,
        caches: false,
        wire: Wire::Json {
            path: "moderations",
            reach: Reach::OpenAiFamily,
        },
    };

    /// `POST /v1/rerank`: Cohere's body (`query`, `documents`, `top_n`) and answer.
    pub const RERANK: Endpoint = Endpoint {
        name: "rerank",
        end_user_at: &["user"],
        call_type: "rerank",
        needs_messages: false,
        requires: &["query", "documents"],
        streams: false,
        runs_workflows: false,
        caches: false,
        wire: Wire::Json {
            path: "rerank",
            reach: Reach::Rerank,
        },
    };

    /// `POST /v1/images/generations`.
    pub const IMAGES: Endpoint = Endpoint {
        name: "images",
        end_user_at: &["user"],
        call_type: "image_generation",
        needs_messages: false,
        requires: &["prompt"],
        streams: false,
        runs_workflows: false,
        caches: false,
        wire: Wire::Json {
            path: "images/generations",
            reach: Reach::OpenAiFamily,
        },
    };

    /// `POST /v1/audio/transcriptions`: a multipart upload.
    pub const TRANSCRIPTIONS: Endpoint = Endpoint {
        name: "transcriptions",
        end_user_at: &["user"],
        call_type: "transcription",
        needs_messages: false,
        requires: &["file"],
        streams: false,
        runs_workflows: false,
        caches: false,
        wire: Wire::Form {
            path: "audio/transcriptions",
        },
    };

    /// `POST /v1/messages`: Anthropic's Messages API (Claude Code's). Cached like chat: a whole
    /// answer is stored in Anthropic's shape, a stream as the OpenAI chunks the stage read it as
    /// and replayed as Anthropic's events.
    pub const MESSAGES: Endpoint = Endpoint {
        name: "messages",
        call_type: "anthropic_messages",
        needs_messages: true,
        requires: &["max_tokens"],
        streams: true,
        runs_workflows: true,
        caches: true,
        end_user_at: &["metadata", "user_id"],
        wire: Wire::Messages,
    };

    /// `POST /v1/responses`: OpenAI's Responses API (Codex CLI's), translated to chat before the
    /// stages and back after them (`responses_api.rs`), so it is chat here but for its name.
    pub const RESPONSES: Endpoint = Endpoint {
        name: "responses",
        call_type: "responses",
        ..Endpoint::CHAT
    };
}
