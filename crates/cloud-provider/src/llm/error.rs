//! Typed errors of the LLM transport; each displays as one sentence saying what went wrong
//! and what to do.

use std::time::Duration;

use thiserror::Error;

/// What can go wrong talking to a model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LlmError {
    /// The provider refused the credentials.
    #[error("{provider} rejected the credentials (HTTP {status}: {message}); check LLM_API_KEY and that the key may use this model")]
    Auth {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// Rate limited, and retries did not get through (or the wait asked for was too long).
    #[error("{provider} rate-limited the request after {attempts} attempt(s) ({message}); wait{} and try again, or lower the request rate", retry_after.map(|d| format!(" at least {}s", d.as_secs_f64().ceil())).unwrap_or_default())]
    RateLimited {
        /// Provider name.
        provider: String,
        /// The wait the provider asked for, if it said.
        retry_after: Option<Duration>,
        /// Provider's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Overloaded or temporarily unavailable (529, 503, other 5xx, `overloaded_error`).
    #[error("{provider} is overloaded or unavailable (HTTP {status}: {message}) after {attempts} attempt(s); try again later")]
    Overloaded {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The provider rejected the request itself (schema, model name, context length).
    #[error("{provider} rejected the request (HTTP {status}: {message}); check the model name, the tool schemas and the conversation size")]
    BadRequest {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// The provider answered with something that is not the documented response format.
    #[error("{provider} sent a response this client cannot read ({detail}); check LLM_BASE_URL points at a compatible endpoint")]
    Malformed {
        /// Provider name.
        provider: String,
        /// What was wrong.
        detail: String,
    },
    /// The model produced a tool call whose arguments are unusable; feed
    /// its `Display` sentence back to the model as an error tool result.
    #[error("tool call {call_id} to `{name}` was malformed: {detail}; resend the call with a JSON object matching the tool's input schema")]
    MalformedToolCall {
        /// Id of the call.
        call_id: String,
        /// Tool name.
        name: String,
        /// What was wrong.
        detail: String,
    },
    /// The model answered with neither text nor a tool call, repeatedly.
    #[error("{provider} returned an empty answer {attempts} time(s) in a row; try again, or raise max_tokens")]
    EmptyResponse {
        /// Provider name.
        provider: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Connection-level failure (DNS, refused, reset, TLS).
    #[error("could not reach {provider} ({detail}); check LLM_BASE_URL and the network")]
    Transport {
        /// Provider name.
        provider: String,
        /// What failed.
        detail: String,
    },
    /// No complete answer within the timeout.
    #[error("{provider} did not answer within {}s; try again, or raise the timeout", after.as_secs_f64())]
    Timeout {
        /// Provider name.
        provider: String,
        /// The timeout in force.
        after: Duration,
    },
    /// The provider configuration is incomplete or invalid.
    #[error("invalid LLM configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// True for errors worth retrying after a pause.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Overloaded { .. }
                | LlmError::Transport { .. }
                | LlmError::Timeout { .. }
        )
    }
}
