//! What every wire format module produces: the upstream request it builds and the error it
//! reports. Kept out of [`translate`](crate::translate), the dispatcher that calls those modules,
//! so they depend on these types without depending on their caller.

/// An HTTP request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// OpenAI fields the provider has no equivalent for, left out of the body (logged by the
    /// gateway, so nothing disappears unseen).
    pub dropped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's request cannot be expressed for this provider.
    #[error("{0}")]
    InvalidRequest(String),
    /// The provider answered with something that is not its documented format.
    #[error("{provider} answered with something tollgate cannot read: {message}")]
    UpstreamFormat { provider: &'static str, message: String },
}
