//! Turning what a provider sent back — status, headers, error bodies, in-band error frames —
//! into one typed [`Error`].
//!
//! The body shapes are those in `shared/docs/wire-formats.md`: OpenAI and Groq
//! `{"error":{message,type,param,code}}`, Anthropic `{"type":"error","error":{type,message},
//! "request_id"}`, Gemini `{"error":{code,message,status,details}}` and Ollama `{"error":"…"}`.

use std::time::{Duration, SystemTime};

use exllm_core::{Error, ErrorKind, Secret};
use serde_json::Value;

use crate::headers;

/// How many bytes of a body an error keeps in `raw_body`.
pub(crate) const RAW_BODY_BYTES: usize = 512;

/// Removes the request's secret from everything that leaves the executor.
#[derive(Clone, Default)]
pub(crate) struct Scrub(Option<Secret>);

impl Scrub {
    pub(crate) fn new(secret: Option<Secret>) -> Self {
        Self(secret.filter(|s| !s.is_empty()))
    }

    pub(crate) fn text(&self, text: &str) -> String {
        match &self.0 {
            Some(secret) => secret.scrub(text),
            None => text.to_owned(),
        }
    }

    /// The first [`RAW_BODY_BYTES`] of `bytes` as text, scrubbed *before* cutting so that a
    /// secret straddling the cut cannot leak by halves.
    pub(crate) fn preview(&self, bytes: &[u8]) -> String {
        let secret_len = self.0.as_ref().map_or(0, |s| s.expose().len());
        let window = &bytes[..bytes.len().min(RAW_BODY_BYTES + secret_len)];
        let text = self.text(&String::from_utf8_lossy(window));
        truncate(&text, RAW_BODY_BYTES).to_owned()
    }

    /// Rebuilds `err` with every text field scrubbed: the one choke point every error passes
    /// through on its way out, whoever built it.
    pub(crate) fn error(&self, err: Error) -> Error {
        if self.0.is_none() {
            return err;
        }
        let mut out = Error::new(err.kind(), self.text(err.message()));
        if let Some(v) = err.provider() {
            out = out.with_provider(self.text(v));
        }
        if let Some(v) = err.status() {
            out = out.with_status(v);
        }
        if let Some(v) = err.code() {
            out = out.with_code(self.text(v));
        }
        if let Some(v) = err.request_id() {
            out = out.with_request_id(self.text(v));
        }
        if let Some(v) = err.retry_after() {
            out = out.with_retry_after(v);
        }
        if let Some(v) = err.field() {
            out = out.with_field(self.text(v));
        }
        if let Some(v) = err.raw_body() {
            out = out.with_raw_body(self.text(v));
        }
        if err.is_retryable() != err.kind().is_retryable() {
            out = out.with_retryable(err.is_retryable());
        }
        out
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The error for a non-2xx response.
pub(crate) fn from_status(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    scrub: &Scrub,
) -> Error {
    let trimmed = body.trim_ascii();
    let err = if trimmed.is_empty() {
        Error::new(
            kind_for_status(status),
            format!("HTTP {status} with an empty body"),
        )
    } else {
        match serde_json::from_slice::<Value>(trimmed) {
            Ok(value) => from_json(Some(status), &value).unwrap_or_else(|| {
                Error::new(
                    kind_for_status(status),
                    format!("HTTP {status} with an unrecognised error body"),
                )
                .with_raw_body(scrub.preview(body))
            }),
            Err(_) => {
                let content_type = headers::header(headers, "content-type")
                    .map_or("no content type", |v| {
                        v.split(';').next().unwrap_or(v).trim()
                    });
                Error::new(
                    kind_for_status(status),
                    format!("HTTP {status} with a non-JSON body ({content_type})"),
                )
                .with_raw_body(scrub.preview(body))
            }
        }
    };
    with_headers(err.with_status(status), headers)
}

/// Adds what the headers say — request id, retry-after, `x-should-retry` — to `err`; headers
/// win over the body because the SDKs read them first.
pub(crate) fn with_headers(mut err: Error, headers: &[(String, String)]) -> Error {
    if let Some(id) = headers::request_id(headers) {
        err = err.with_request_id(id);
    }
    if let Some(wait) = headers::retry_after(headers, SystemTime::now()) {
        err = err.with_retry_after(wait);
    }
    if let Some(retry) = headers::should_retry(headers) {
        err = err.with_retryable(retry);
    }
    err
}

/// Whether a JSON body is an error report rather than a result: a non-null top-level `error`
/// (object or, for Ollama, string) or Anthropic's `"type":"error"`. A result carrying
/// `"error": null` (OpenAI's Responses API does) is not an error.
pub(crate) fn is_error_body(value: &Value) -> bool {
    let Some(object) = value.as_object() else {
        return false;
    };
    matches!(
        object.get("error"),
        Some(Value::Object(_) | Value::String(_))
    ) || object.get("type").and_then(Value::as_str) == Some("error")
}

/// The error a JSON error body describes, with `status` when it came with one; `None` when
/// the body has no recognisable error shape.
pub(crate) fn from_json(status: Option<u16>, value: &Value) -> Option<Error> {
    if !is_error_body(value) {
        return None;
    }
    let details = Details::read(value);
    // A status embedded in the body (Groq's `status_code`, Gemini's numeric `code`) stands in
    // for the HTTP status when there is none, as in a stream after a 200.
    let effective_status = status.or(details.embedded_status);
    let kind = details
        .decisive_kind()
        .or_else(|| effective_status.map(kind_for_status))
        .or_else(|| details.hinted_kind())
        .unwrap_or(ErrorKind::Provider);
    let message = details.message.clone().unwrap_or_else(|| match status {
        Some(status) => format!("HTTP {status} error without a message"),
        None => "provider reported an error without a message".to_owned(),
    });
    let mut err = Error::new(kind, message);
    if let Some(code) = details.code() {
        err = err.with_code(code);
    }
    if let Some(id) = details.request_id {
        err = err.with_request_id(id);
    }
    if let Some(wait) = details.retry_delay {
        err = err.with_retry_after(wait);
    }
    if details.failed_generation {
        // Groq's `tool_use_failed` carries what the model produced in `failed_generation`
        // (fx: groq/error-400-tool-use-failed.response.json, and in-band in
        // groq/stream-midstream-error-event-tool-use-failed.response.sse); the body is kept
        // whole so that callers can show or repair it. Scrubbing happens on the way out.
        err = err.with_raw_body(value.to_string());
    }
    if status.is_none()
        && let Some(embedded) = details.embedded_status
    {
        err = err.with_status(embedded);
    }
    Some(err)
}

/// The kind an HTTP status implies when the body does not say better.
pub(crate) fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        400 | 413 | 422 => ErrorKind::InvalidRequest,
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        // A conflict is transient (the SDKs retry it), so it is "unavailable, try again".
        409 => ErrorKind::Unavailable,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Unavailable,
        400..=499 => ErrorKind::InvalidRequest,
        _ => ErrorKind::Provider,
    }
}

/// The fields of an error body, whichever provider's shape it has.
#[derive(Debug, Default)]
struct Details {
    message: Option<String>,
    /// OpenAI/Groq `error.code` when it is a string.
    code: Option<String>,
    /// OpenAI/Groq/Anthropic `error.type`.
    error_type: Option<String>,
    /// Gemini's canonical `error.status` (`RESOURCE_EXHAUSTED`, …).
    canonical: Option<String>,
    /// Gemini's `ErrorInfo.reason` (`API_KEY_INVALID`, …).
    reason: Option<String>,
    retry_delay: Option<Duration>,
    request_id: Option<String>,
    embedded_status: Option<u16>,
    /// Groq's `error.failed_generation` is present.
    failed_generation: bool,
}

impl Details {
    fn read(value: &Value) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let mut details = Self {
            request_id: text(value.get("request_id")),
            ..Self::default()
        };
        match value.get("error") {
            Some(Value::String(message)) => details.message = Some(message.clone()),
            Some(Value::Object(error)) => {
                details.message = text(error.get("message"));
                details.error_type = text(error.get("type"));
                details.canonical = text(error.get("status"));
                details.failed_generation =
                    error.get("failed_generation").is_some_and(Value::is_string);
                match error.get("code") {
                    Some(Value::String(code)) => details.code = Some(code.clone()),
                    Some(Value::Number(n)) => details.embedded_status = status_from(n.as_u64()),
                    _ => {}
                }
                if let Some(n) = error.get("status_code").and_then(Value::as_u64) {
                    details.embedded_status = status_from(Some(n));
                }
                for detail in error
                    .get("details")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if details.reason.is_none() {
                        details.reason = text(detail.get("reason"));
                    }
                    if let Some(delay) = detail.get("retryDelay").and_then(Value::as_str) {
                        details.retry_delay = headers::parse_duration(delay);
                    }
                }
            }
            _ => {
                // `{"type":"error","message":…}` without an inner object: keep what there is.
                details.message = text(value.get("message"));
            }
        }
        details
    }

    /// The provider code an error reports: the most specific of code, reason, type, status.
    fn code(&self) -> Option<String> {
        self.code
            .clone()
            .or_else(|| self.reason.clone())
            .or_else(|| self.error_type.clone())
            .or_else(|| self.canonical.clone())
    }

    fn labels(&self) -> impl Iterator<Item = &str> {
        [&self.code, &self.reason, &self.error_type, &self.canonical]
            .into_iter()
            .filter_map(|v| v.as_deref())
    }

    /// A kind the body states so precisely that it beats the HTTP status (a 429 that is really
    /// an exhausted quota, a 400 that is really a bad key or an over-long prompt).
    fn decisive_kind(&self) -> Option<ErrorKind> {
        for label in self.labels() {
            let kind = match label {
                "insufficient_quota" => ErrorKind::QuotaExhausted,
                "context_length_exceeded" => ErrorKind::ContextLengthExceeded,
                "content_filter" | "content_policy_violation" => ErrorKind::ContentFiltered,
                "invalid_api_key"
                | "API_KEY_INVALID"
                | "authentication_error"
                | "permission_error"
                | "UNAUTHENTICATED"
                | "PERMISSION_DENIED" => ErrorKind::Auth,
                "overloaded_error" => ErrorKind::Unavailable,
                "rate_limit_error" | "rate_limit_exceeded" | "RESOURCE_EXHAUSTED" => {
                    ErrorKind::RateLimited
                }
                _ => continue,
            };
            return Some(kind);
        }
        // Anthropic reports an over-long prompt as a plain invalid_request_error.
        if self
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("prompt is too long"))
        {
            return Some(ErrorKind::ContextLengthExceeded);
        }
        None
    }

    /// A kind the body suggests, used only when there is no status to go by (in-band errors
    /// and 200s carrying an error).
    fn hinted_kind(&self) -> Option<ErrorKind> {
        self.labels().find_map(|label| match label {
            "invalid_request_error"
            | "INVALID_ARGUMENT"
            | "FAILED_PRECONDITION"
            | "request_too_large"
            | "tool_use_failed" => Some(ErrorKind::InvalidRequest),
            "not_found_error" | "model_not_found" | "NOT_FOUND" => Some(ErrorKind::NotFound),
            "api_error" | "server_error" | "UNAVAILABLE" | "INTERNAL" => {
                Some(ErrorKind::Unavailable)
            }
            "DEADLINE_EXCEEDED" => Some(ErrorKind::Timeout),
            _ => None,
        })
    }
}

fn status_from(n: Option<u64>) -> Option<u16> {
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
}
