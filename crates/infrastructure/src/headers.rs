//! What response headers tell a client: how long to wait, whether to retry, request ids, limits.

use std::time::{Duration, SystemTime};

/// Rate-limit state a provider reported in `x-ratelimit-*` headers (OpenAI, Groq and
/// OpenAI-compatible services). Every field is optional because providers send subsets, and a
/// 429 may carry none of them (openai/openai-node#1477).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// `x-ratelimit-limit-requests`.
    pub limit_requests: Option<u64>,
    /// `x-ratelimit-remaining-requests`.
    pub remaining_requests: Option<u64>,
    /// `x-ratelimit-reset-requests`, a Go-style duration such as `2m59.56s`.
    pub reset_requests: Option<Duration>,
    /// `x-ratelimit-limit-tokens`.
    pub limit_tokens: Option<u64>,
    /// `x-ratelimit-remaining-tokens`.
    pub remaining_tokens: Option<u64>,
    /// `x-ratelimit-reset-tokens`, a Go-style duration such as `12ms`.
    pub reset_tokens: Option<Duration>,
}

impl RateLimitInfo {
    /// Reads the `x-ratelimit-*` headers; unparseable values are left out, never an error.
    pub fn from_headers(headers: &[(String, String)]) -> Self {
        let number = |name: &str| header(headers, name).and_then(|v| v.trim().parse().ok());
        let duration = |name: &str| header(headers, name).and_then(parse_duration);
        Self {
            limit_requests: number("x-ratelimit-limit-requests"),
            remaining_requests: number("x-ratelimit-remaining-requests"),
            reset_requests: duration("x-ratelimit-reset-requests"),
            limit_tokens: number("x-ratelimit-limit-tokens"),
            remaining_tokens: number("x-ratelimit-remaining-tokens"),
            reset_tokens: duration("x-ratelimit-reset-tokens"),
        }
    }

    /// Whether any rate-limit header was present.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The first header called `name` (case-insensitive).
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The wait a response asks for, read the way the official OpenAI and Anthropic SDKs read it:
/// `retry-after-ms` first, then `retry-after` as (fractional) seconds or as an HTTP-date.
pub(crate) fn retry_after(headers: &[(String, String)], now: SystemTime) -> Option<Duration> {
    // Parsed as seconds and scaled, so fractional milliseconds work too.
    if let Some(thousand_times) = header(headers, "retry-after-ms").and_then(parse_seconds) {
        return Some(thousand_times / 1000);
    }
    let value = header(headers, "retry-after")?;
    if let Some(wait) = parse_seconds(value) {
        return Some(wait);
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    // A date in the past means "now".
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `x-should-retry: true|false`, the provider's own verdict on retrying.
pub(crate) fn should_retry(headers: &[(String, String)]) -> Option<bool> {
    match header(headers, "x-should-retry")?.trim() {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The provider's request id: `x-request-id` (OpenAI, Groq) or `request-id` (Anthropic).
pub(crate) fn request_id(headers: &[(String, String)]) -> Option<String> {
    header(headers, "x-request-id")
        .or_else(|| header(headers, "request-id"))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A non-negative decimal number of seconds (`"1"`, `"0.5"`) as a duration.
fn parse_seconds(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// A Go-style duration (`"2m59.56s"`, `"12ms"`, `"1h"`), which also covers protobuf's JSON
/// durations (`"22s"`, `"34.4s"`) in Gemini's `RetryInfo.retryDelay`.
pub(crate) fn parse_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).ok()
}
