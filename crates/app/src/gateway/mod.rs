//! The gateway: `exllm serve` speaks the OpenAI and Anthropic HTTP APIs in front of every
//! provider, with keys, budgets, limits, metrics and the resilience pipeline applied.
//!
//! Modules: `server` (binding, shutdown, the router, shared state), `openai` (the OpenAI
//! protocol: `/v1/chat/completions`, `/v1/models`, `/v1/embeddings`), `anthropic`
//! (`/v1/messages`), `keys` (the master key, virtual keys, budgets, admin endpoints), `ops`
//! (`/health`, `/health/ready`, `/metrics`, access log).

pub mod anthropic;
pub mod keys;
pub mod openai;
pub mod ops;
pub mod server;

use exllm_core::ErrorKind;

/// An error the gateway answers with, in the client's protocol (each protocol module renders
/// it in its own error shape).
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// The HTTP status.
    pub status: u16,
    /// The kind, when it came from an ExLLM error.
    pub kind: Option<ErrorKind>,
    /// The message (never contains a secret).
    pub message: String,
    /// The protocol's error type/code (`invalid_request_error`, `rate_limit_error`, …), when the
    /// caller knows it better than the status does.
    pub code: Option<String>,
}

impl GatewayError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: None,
            message: message.into(),
            code: None,
        }
    }

    /// The status a client sees for an ExLLM error.
    pub fn status_for(kind: ErrorKind) -> u16 {
        match kind {
            ErrorKind::Validation
            | ErrorKind::InvalidRequest
            | ErrorKind::ContextLengthExceeded => 400,
            ErrorKind::Auth => 401,
            ErrorKind::BudgetExceeded => 403,
            // OpenAI answers an exhausted quota with 429 `insufficient_quota`; SDKs raise their
            // rate-limit error for it, so the gateway does the same.
            ErrorKind::QuotaExhausted => 429,
            ErrorKind::NotFound => 404,
            ErrorKind::RateLimited => 429,
            ErrorKind::ContentFiltered => 400,
            ErrorKind::Timeout => 504,
            ErrorKind::Unavailable | ErrorKind::CircuitOpen => 503,
            ErrorKind::Transport
            | ErrorKind::Decode
            | ErrorKind::StreamTruncated
            | ErrorKind::Provider => 502,
            ErrorKind::Cancelled => 499,
            _ => 500,
        }
    }
}

impl From<&exllm_core::Error> for GatewayError {
    fn from(err: &exllm_core::Error) -> Self {
        // An upstream 4xx the client caused keeps its status, so SDKs raise the same exception
        // they would against the provider itself.
        let status = match (err.kind(), err.status()) {
            (ErrorKind::InvalidRequest | ErrorKind::NotFound, Some(s))
                if (400..500).contains(&s) =>
            {
                s
            }
            (kind, _) => Self::status_for(kind),
        };
        Self {
            status,
            kind: Some(err.kind()),
            message: err.to_string(),
            code: err.code().map(str::to_owned),
        }
    }
}
