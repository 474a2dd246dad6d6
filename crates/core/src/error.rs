//! The one error type of ExLLM: a kind callers act on, plus the context that explains it.

use std::fmt;
use std::time::Duration;

use crate::chat::ChatResponse;

/// The result type of every fallible ExLLM operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as far as a caller needs to decide what to do next.
///
/// The list is closed for matching inside ExLLM but `#[non_exhaustive]` for users, so new kinds
/// can be added without a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The provider asked us to slow down; [`Error::retry_after`] says for how long when known.
    RateLimited,
    /// The account's quota or credit is used up. Retrying does not help.
    QuotaExhausted,
    /// The key is missing, wrong, revoked or lacks permission.
    Auth,
    /// The provider rejected the request as malformed or unsupported.
    InvalidRequest,
    /// The prompt (plus the requested output) does not fit the model's context window.
    ContextLengthExceeded,
    /// The provider refused or filtered the content.
    ContentFiltered,
    /// The provider is overloaded or unavailable (5xx, 529, HTML error pages).
    Unavailable,
    /// A deadline passed: connect, total, or idle between stream chunks.
    Timeout,
    /// The connection failed or broke.
    Transport,
    /// A body or stream could not be decoded; the raw bytes are kept in [`Error::raw_body`].
    Decode,
    /// A stream ended before the provider said it was complete; the partial reply is kept.
    StreamTruncated,
    /// Configuration is missing or wrong.
    Config,
    /// The request failed validation before any IO ([`Error::field`] names the field).
    Validation,
    /// A provider, model or conversation does not exist.
    NotFound,
    /// The provider's circuit breaker is open.
    CircuitOpen,
    /// A budget would be exceeded.
    BudgetExceeded,
    /// The call was cancelled.
    Cancelled,
    /// The provider does not support the operation (e.g. embeddings on a chat-only provider).
    Unsupported,
    /// The provider reported an error that fits no other kind (e.g. a 200 carrying an error).
    Provider,
}

impl ErrorKind {
    /// The stable snake_case name used in CLI JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::Auth => "auth",
            Self::InvalidRequest => "invalid_request",
            Self::ContextLengthExceeded => "context_length_exceeded",
            Self::ContentFiltered => "content_filtered",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
            Self::Decode => "decode",
            Self::StreamTruncated => "stream_truncated",
            Self::Config => "config",
            Self::Validation => "validation",
            Self::NotFound => "not_found",
            Self::CircuitOpen => "circuit_open",
            Self::BudgetExceeded => "budget_exceeded",
            Self::Cancelled => "cancelled",
            Self::Unsupported => "unsupported",
            Self::Provider => "provider",
        }
    }

    /// Whether a retry of the same request may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::Unavailable
                | Self::Timeout
                | Self::Transport
                | Self::StreamTruncated
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ExLLM error: a [`ErrorKind`], a human message, and what is known about where it came from.
///
/// Boxed inside so that `Result<T>` stays one pointer wide on the error path.
///
/// No secret ever appears in an `Error`: the HTTP executor scrubs keys from provider bodies and
/// transport messages before it builds one.
pub struct Error(Box<Inner>);

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    provider: Option<String>,
    status: Option<u16>,
    code: Option<String>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    field: Option<String>,
    raw_body: Option<String>,
    retryable_override: Option<bool>,
    partial: Option<Box<ChatResponse>>,
}

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            provider: None,
            status: None,
            code: None,
            request_id: None,
            retry_after: None,
            field: None,
            raw_body: None,
            retryable_override: None,
            partial: None,
        }))
    }

    /// A validation error on `field` (checked before any IO).
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message).with_field(field)
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// A decode error keeping (the first bytes of) the raw body.
    pub fn decode(message: impl Into<String>, raw: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, message).with_raw_body(raw)
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
    /// The human message (never contains a secret).
    pub fn message(&self) -> &str {
        &self.0.message
    }
    /// The provider that produced the error, when known.
    pub fn provider(&self) -> Option<&str> {
        self.0.provider.as_deref()
    }
    /// The HTTP status, when the error came from an HTTP response.
    pub fn status(&self) -> Option<u16> {
        self.0.status
    }
    /// The provider's own error code (`insufficient_quota`, `overloaded_error`, …).
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref()
    }
    /// The provider's request id, for support tickets.
    pub fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// The field a validation error is about.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }
    /// The raw body (or its first bytes) of a response that could not be understood.
    pub fn raw_body(&self) -> Option<&str> {
        self.0.raw_body.as_deref()
    }
    /// What the provider had produced before a stream failed, when anything.
    pub fn partial_response(&self) -> Option<&ChatResponse> {
        self.0.partial.as_deref()
    }
    /// How long the provider asked us to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// Whether retrying the same request may succeed: by kind, unless the provider said
    /// otherwise (`x-should-retry`).
    pub fn is_retryable(&self) -> bool {
        self.0
            .retryable_override
            .unwrap_or_else(|| self.0.kind.is_retryable())
    }

    /// Sets the provider name.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.0.provider = Some(provider.into());
        self
    }
    /// Sets the provider name unless one is already set.
    pub fn or_provider(mut self, provider: &str) -> Self {
        if self.0.provider.is_none() {
            self.0.provider = Some(provider.to_owned());
        }
        self
    }
    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.0.status = Some(status);
        self
    }
    /// Sets the provider's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.0.code = Some(code.into());
        self
    }
    /// Sets the provider's request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.0.request_id = Some(id.into());
        self
    }
    /// Sets how long to wait before a retry.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.0.retry_after = Some(wait);
        self
    }
    /// Names the field a validation error is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }
    /// Keeps the raw body (callers pass at most the first few KiB).
    pub fn with_raw_body(mut self, raw: impl Into<String>) -> Self {
        self.0.raw_body = Some(raw.into());
        self
    }
    /// Overrides the retry decision (the provider's `x-should-retry` header).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.0.retryable_override = Some(retryable);
        self
    }
    /// Attaches what a stream had produced before it failed.
    pub fn with_partial(mut self, partial: ChatResponse) -> Self {
        self.0.partial = Some(Box::new(partial));
        self
    }
    /// Changes the kind, keeping the context.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.0.kind = kind;
        self
    }
}

impl Clone for Error {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(provider) = &self.0.provider {
            write!(f, "{provider}: ")?;
        }
        write!(f, "{}", self.0.message)?;
        if let Some(status) = self.0.status {
            write!(f, " (HTTP {status}")?;
            if let Some(code) = &self.0.code {
                write!(f, ", {code}")?;
            }
            f.write_str(")")?;
        } else if let Some(code) = &self.0.code {
            write!(f, " ({code})")?;
        }
        if let Some(field) = &self.0.field {
            write!(f, " [field: {field}]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind)
            .field("message", &self.0.message);
        if let Some(v) = &self.0.provider {
            d.field("provider", v);
        }
        if let Some(v) = &self.0.status {
            d.field("status", v);
        }
        if let Some(v) = &self.0.code {
            d.field("code", v);
        }
        if let Some(v) = &self.0.request_id {
            d.field("request_id", v);
        }
        if let Some(v) = &self.0.retry_after {
            d.field("retry_after", v);
        }
        if let Some(v) = &self.0.field {
            d.field("field", v);
        }
        if let Some(v) = &self.0.raw_body {
            d.field("raw_body", v);
        }
        if self.0.partial.is_some() {
            d.field("partial", &"<partial response>");
        }
        d.finish()
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::new(ErrorKind::Decode, format!("invalid JSON: {err}"))
    }
}

/// The error object of the CLI and other JSON contracts:
/// `{"kind", "message", "status", "provider", "retry_after_ms"}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ErrorBody {
    /// [`ErrorKind::as_str`].
    pub kind: ErrorKind,
    /// The error's `Display`.
    pub message: String,
    /// HTTP status when known.
    pub status: Option<u16>,
    /// Provider when known.
    pub provider: Option<String>,
    /// Retry-after in milliseconds when known.
    pub retry_after_ms: Option<u64>,
    /// The provider's error code when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The field of a validation error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl From<&Error> for ErrorBody {
    fn from(err: &Error) -> Self {
        Self {
            kind: err.kind(),
            message: err.message().to_owned(),
            status: err.status(),
            provider: err.provider().map(str::to_owned),
            retry_after_ms: err
                .retry_after()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            code: err.code().map(str::to_owned),
            field: err.field().map(str::to_owned),
        }
    }
}
