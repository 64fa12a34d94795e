//! The endpoints the pipeline serves. Each is a configuration of the same stages, not a copy of
//! them: what its body must hold, whether it streams or runs workflows, which cache call type it
//! is, and how its request is put on the wire.

/// How a request is sent to a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Chat: translated to the deployment's own wire format (OpenAI's, Gemini's, Anthropic's),
    /// max_tokens fitted to its context window.
    Chat,
    /// Passed on as OpenAI's JSON to the deployment's embeddings URL.
    Embeddings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// LiteLLM's call type, as `cache_params.supported_call_types` names it.
    pub call_type: &'static str,
    /// The body must carry a non-empty `messages` list.
    pub needs_messages: bool,
    /// `stream: true` is honoured (otherwise the answer is always whole).
    pub streams: bool,
    /// A workflow may be named in `model`.
    pub runs_workflows: bool,
    pub wire: Wire,
}

impl Endpoint {
    /// `POST /v1/chat/completions`.
    pub const CHAT: Endpoint = Endpoint {
        call_type: "completion",
        needs_messages: true,
        streams: true,
        runs_workflows: true,
        wire: Wire::Chat,
    };

    /// `POST /v1/embeddings`.
    pub const EMBEDDINGS: Endpoint = Endpoint {
        call_type: "embedding",
        needs_messages: false,
        streams: false,
        runs_workflows: false,
        wire: Wire::Embeddings,
    };
}
