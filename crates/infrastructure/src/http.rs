//! The one HTTP executor every provider adapter sends through.
//!
//! Adapters only translate; sending, timeouts, status and body to typed errors, in-band stream
//! errors and secret scrubbing happen here, once, so every provider fails the same way.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use exllm_core::{Error, ErrorKind, Result, Secret};
use futures_core::Stream;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::headers::{self, RateLimitInfo};
use crate::ndjson::NdjsonDecoder;
use crate::provider_error::{self, Scrub};
use crate::sse::{DEFAULT_MAX_LINE_BYTES, SseDecoder, SseEvent};

/// Limits and deadlines of an [`HttpExecutor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Deadline for establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Deadline for a whole non-streaming call, from sending to the last body byte.
    pub total_timeout: Duration,
    /// Longest silence tolerated while streaming: before the response head and between chunks.
    pub idle_timeout: Duration,
    /// Longest line a stream may carry (see [`DEFAULT_MAX_LINE_BYTES`]).
    pub max_line_bytes: usize,
    /// Largest non-streaming body (or error body) read into memory.
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    /// Deadlines sized for LLM calls: long generations take minutes (the official SDKs allow
    /// ten), while a healthy stream is rarely silent for long.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(300),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// How a request authenticates. Credentials go here, never in [`HttpRequest::header`], so that
/// they are marked sensitive and scrubbed from every error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (a local Ollama).
    #[default]
    None,
    /// `Authorization: Bearer <secret>` (OpenAI, Groq, OpenAI-compatible services).
    Bearer(Secret),
    /// A named header carrying the secret (`x-api-key` for Anthropic, `x-goog-api-key` for
    /// Gemini).
    Header {
        /// The header name.
        name: String,
        /// The secret value.
        value: Secret,
    },
}

impl Auth {
    /// The secret to scrub from errors, when there is one.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Self::None => None,
            Self::Bearer(secret) | Self::Header { value: secret, .. } => Some(secret),
        }
    }
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Patch => reqwest::Method::PATCH,
            Self::Delete => reqwest::Method::DELETE,
        }
    }
}

/// A request for the executor: method, URL, credentials, extra headers, optional JSON body.
#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// The credentials.
    pub auth: Auth,
    /// Extra headers (not credentials: those go in [`HttpRequest::auth`]).
    pub headers: Vec<(String, String)>,
    /// The JSON body, sent with `content-type: application/json`.
    pub body: Option<Value>,
}

impl HttpRequest {
    /// A request with `method` to `url`, no credentials, no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            auth: Auth::None,
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` of `json` to `url`.
    pub fn post(url: impl Into<String>, json: Value) -> Self {
        Self::new(Method::Post, url).body(json)
    }

    /// A `DELETE` of `url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Sets the credentials.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the JSON body.
    pub fn body(mut self, json: Value) -> Self {
        self.body = Some(json);
        self
    }
}

impl fmt::Debug for HttpRequest {
    /// Prints no secret: the auth is `***`, the URL and body are scrubbed, and headers whose
    /// names suggest credentials are masked in case one was passed as a plain header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scrub = Scrub::new(self.auth.secret().cloned());
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let value = if looks_sensitive(name) {
                    "***".to_owned()
                } else {
                    scrub.text(value)
                };
                (name.as_str(), value)
            })
            .collect();
        let body = self.body.as_ref().map(|body| {
            let text = body.to_string();
            let preview = scrub.preview(text.as_bytes());
            if preview.len() < text.len() {
                format!("{preview}… ({} bytes)", text.len())
            } else {
                preview
            }
        });
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &scrub.text(&self.url))
            .field("auth", &self.auth)
            .field("headers", &headers)
            .field("body", &body)
            .finish()
    }
}

/// Header names that carry credentials by convention.
fn looks_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "proxy-authorization"
        || name == "cookie"
        || name.contains("key")
        || name.contains("token")
        || name.contains("secret")
}

/// A successful non-streaming response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The response headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` for an empty body).
    pub body: Value,
    /// The provider's request id from `x-request-id` or `request-id`.
    pub request_id: Option<String>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        headers::header(&self.headers, name)
    }

    /// The `x-ratelimit-*` headers, parsed.
    pub fn rate_limit(&self) -> RateLimitInfo {
        RateLimitInfo::from_headers(&self.headers)
    }
}

/// How a streaming body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events (`text/event-stream`).
    Sse,
    /// Newline-delimited JSON (`application/x-ndjson`).
    Ndjson,
}

/// One frame of a streaming body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A server-sent event.
    Sse(SseEvent),
    /// One NDJSON line.
    Line(String),
}

/// The frames of a streaming response. An error ends it: after an `Err` it yields nothing more.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame>> + Send>>;

/// The HTTP client every provider shares: one connection pool, typed errors, no leaked secrets.
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct HttpExecutor {
    client: reqwest::Client,
    config: Arc<HttpConfig>,
}

impl fmt::Debug for HttpExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpExecutor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpExecutor {
    /// Builds the pooled client.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the TLS or client setup fails.
    pub fn new(config: HttpConfig) -> Result<Self> {
        // reqwest is built without a default crypto provider; ring is ours. Another component
        // may have installed one first, which is fine, so the result is ignored.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("exllm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| {
                Error::config(format!(
                    "cannot build the HTTP client: {}",
                    describe(&err.without_url())
                ))
            })?;
        Ok(Self {
            client,
            config: Arc::new(config),
        })
    }

    /// The limits and deadlines in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Sends `request` and returns its JSON response.
    ///
    /// # Errors
    /// Every failure is an [`Error`] carrying `provider`, and the status, provider code,
    /// request id and retry-after when known: non-2xx statuses by status and body, a 2xx whose
    /// body reports an error, invalid JSON ([`ErrorKind::Decode`] with the raw body), the total
    /// deadline ([`ErrorKind::Timeout`]) and connection failures ([`ErrorKind::Transport`]).
    pub async fn send_json(&self, provider: &str, request: HttpRequest) -> Result<HttpResponse> {
        let scrub = Scrub::new(request.auth.secret().cloned());
        let total = self.config.total_timeout;
        let result = match tokio::time::timeout(total, self.json_call(&request, &scrub)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("no complete response within {total:?}"),
            )),
        };
        result.map_err(|err| scrub.error(err.or_provider(provider)))
    }

    async fn json_call(&self, request: &HttpRequest, scrub: &Scrub) -> Result<HttpResponse> {
        let response = self.send(request, "application/json").await?;
        let status = response.status().as_u16();
        let headers = header_pairs(response.headers());
        let body = read_body(response, self.config.max_body_bytes, None).await?;
        if !(200..300).contains(&status) {
            return Err(provider_error::from_status(status, &headers, &body, scrub));
        }
        let value = parse_success(status, &headers, &body, scrub)?;
        Ok(HttpResponse {
            status,
            request_id: headers::request_id(&headers),
            headers,
            body: value,
        })
    }

    /// Sends `request` and returns its body as a stream of frames.
    ///
    /// A non-2xx status is read and mapped as in [`HttpExecutor::send_json`] before this
    /// returns. Afterwards, in-band errors (an SSE `event: error`, a frame whose JSON has a
    /// top-level `error`, Anthropic's `"type":"error"`) come out as `Err` and end the stream;
    /// so do silence longer than the idle timeout ([`ErrorKind::Timeout`]), a broken
    /// connection ([`ErrorKind::Transport`]) and an over-long line ([`ErrorKind::Decode`]).
    ///
    /// # Errors
    /// As [`HttpExecutor::send_json`], for failures before the first frame.
    pub async fn send_stream(
        &self,
        provider: &str,
        request: HttpRequest,
        framing: Framing,
    ) -> Result<FrameStream> {
        let scrub = Scrub::new(request.auth.secret().cloned());
        self.open_stream(&request, framing, &scrub, provider)
            .await
            .map_err(|err| scrub.error(err.or_provider(provider)))
    }

    async fn open_stream(
        &self,
        request: &HttpRequest,
        framing: Framing,
        scrub: &Scrub,
        provider: &str,
    ) -> Result<FrameStream> {
        let idle = self.config.idle_timeout;
        let accept = match framing {
            Framing::Sse => "text/event-stream",
            Framing::Ndjson => "application/x-ndjson",
        };
        // The response head counts as the first chunk: a server that never answers is as
        // stuck as one that stops mid-stream.
        let response = match tokio::time::timeout(idle, self.send(request, accept)).await {
            Ok(result) => result?,
            Err(_) => return Err(idle_error(idle, "the response head")),
        };
        let status = response.status().as_u16();
        let headers = header_pairs(response.headers());
        if !(200..300).contains(&status) {
            let body = read_body(response, self.config.max_body_bytes, Some(idle)).await?;
            return Err(provider_error::from_status(status, &headers, &body, scrub));
        }
        let decoder = match framing {
            Framing::Sse => Decoder::Sse(SseDecoder::new(self.config.max_line_bytes)),
            Framing::Ndjson => Decoder::Ndjson(NdjsonDecoder::new(self.config.max_line_bytes)),
        };
        let mut state = StreamState {
            response: Some(response),
            decoder,
            queue: VecDeque::new(),
            pending_error: None,
            done: false,
            idle,
            scrub: scrub.clone(),
            provider: provider.to_owned(),
            request_id: headers::request_id(&headers),
        };
        // A plain JSON body where a stream was asked for is usually an error report (or a
        // server ignoring `stream`); framing it line by line would lose it, so read it whole.
        if is_plain_json(&headers) {
            let response = state.response.take();
            if let Some(response) = response {
                let body = read_body(response, self.config.max_body_bytes, Some(idle)).await?;
                let value = parse_success(status, &headers, &body, scrub)?;
                let text = value.to_string();
                state.queue.push_back(match framing {
                    Framing::Sse => Frame::Sse(SseEvent {
                        data: text,
                        ..SseEvent::default()
                    }),
                    Framing::Ndjson => Frame::Line(text),
                });
            }
            state.done = true;
        }
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            StreamState::next,
        )))
    }

    /// Builds and sends one request; the response head is back when this returns.
    async fn send(&self, request: &HttpRequest, accept: &str) -> Result<reqwest::Response> {
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::validation("headers", format!("invalid HTTP header name {name:?}"))
            })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                Error::validation(
                    "headers",
                    format!("invalid value for HTTP header {}", name.as_str()),
                )
            })?;
            if looks_sensitive(name.as_str()) {
                value.set_sensitive(true);
            }
            headers.append(name, value);
        }
        match &request.auth {
            Auth::None => {}
            Auth::Bearer(secret) => {
                let value = secret_header(&format!("Bearer {}", secret.expose()))?;
                headers.insert(reqwest::header::AUTHORIZATION, value);
            }
            Auth::Header { name, value } => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Error::config(format!("invalid auth header name {name:?}")))?;
                headers.insert(name, secret_header(value.expose())?);
            }
        }
        if !headers.contains_key(reqwest::header::ACCEPT) {
            headers.insert(
                reqwest::header::ACCEPT,
                HeaderValue::from_str(accept)
                    .map_err(|_| Error::config("invalid accept header"))?,
            );
        }
        let mut builder = self
            .client
            .request(request.method.to_reqwest(), request.url.as_str())
            .headers(headers);
        if let Some(body) = &request.body {
            let bytes = serde_json::to_vec(body)
                .map_err(|err| Error::validation("body", format!("unserialisable body: {err}")))?;
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        builder.send().await.map_err(transport_error)
    }
}

/// A header value holding a secret: marked sensitive so that no layer below logs it.
fn secret_header(value: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        Error::config("the API key contains characters not allowed in an HTTP header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A reqwest failure as an [`Error`]: the URL dropped (it may carry a key as a query
/// parameter) and the cause chain kept, since "error sending request" alone explains nothing.
fn transport_error(err: reqwest::Error) -> Error {
    let err = err.without_url();
    let kind = if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_builder() {
        ErrorKind::Config
    } else {
        ErrorKind::Transport
    };
    Error::new(kind, describe(&err))
}

/// An error and its causes on one line.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn idle_error(idle: Duration, waiting_for: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("no data for {idle:?} while waiting for {waiting_for}"),
    )
}

/// Header pairs with lowercase names; values that are not UTF-8 are kept lossily.
fn header_pairs(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Whether the body is `application/json` (not an event stream or NDJSON).
fn is_plain_json(headers: &[(String, String)]) -> bool {
    headers::header(headers, "content-type").is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// Reads a whole body, refusing more than `max` bytes; `idle` bounds each chunk wait when set.
async fn read_body(
    mut response: reqwest::Response,
    max: usize,
    idle: Option<Duration>,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let chunk = match idle {
            Some(idle) => match tokio::time::timeout(idle, response.chunk()).await {
                Ok(chunk) => chunk,
                Err(_) => return Err(idle_error(idle, "the response body")),
            },
            None => response.chunk().await,
        };
        match chunk.map_err(transport_error)? {
            Some(bytes) => {
                if body.len() + bytes.len() > max {
                    return Err(Error::new(
                        ErrorKind::Decode,
                        format!("response body larger than the {max}-byte limit"),
                    ));
                }
                body.extend_from_slice(&bytes);
            }
            None => return Ok(body),
        }
    }
}

/// The JSON of a 2xx body, or the error it reports.
fn parse_success(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    scrub: &Scrub,
) -> Result<Value> {
    if body.trim_ascii().is_empty() {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        Error::decode(
            format!("HTTP {status} with a body that is not valid JSON: {err}"),
            scrub.preview(body),
        )
        .with_status(status)
    })?;
    if let Some(err) = provider_error::from_json(None, &value) {
        return Err(provider_error::with_headers(
            err.with_status(status),
            headers,
        ));
    }
    Ok(value)
}

enum Decoder {
    Sse(SseDecoder),
    Ndjson(NdjsonDecoder),
}

impl Decoder {
    /// An error the decoder holds back until its good frames are delivered.
    fn deferred_error(&mut self) -> Option<Error> {
        self.feed(&[]).err()
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Frame>> {
        Ok(match self {
            Self::Sse(d) => d.feed(chunk)?.into_iter().map(Frame::Sse).collect(),
            Self::Ndjson(d) => d.feed(chunk)?.into_iter().map(Frame::Line).collect(),
        })
    }

    fn finish(&mut self) -> Result<Vec<Frame>> {
        Ok(match self {
            Self::Sse(d) => d.finish()?.into_iter().map(Frame::Sse).collect(),
            Self::Ndjson(d) => d.finish()?.into_iter().map(Frame::Line).collect(),
        })
    }
}

struct StreamState {
    response: Option<reqwest::Response>,
    decoder: Decoder,
    queue: VecDeque<Frame>,
    /// An error to yield once the frames decoded before it are out.
    pending_error: Option<Error>,
    done: bool,
    idle: Duration,
    scrub: Scrub,
    provider: String,
    request_id: Option<String>,
}

impl StreamState {
    /// The next frame or error; after an error the stream ends.
    async fn next(mut self) -> Option<(Result<Frame>, Self)> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                return Some(match in_band_error(&frame) {
                    Some(err) => (Err(self.end(err)), self),
                    None => (Ok(frame), self),
                });
            }
            if let Some(err) = self.pending_error.take() {
                return Some((Err(self.end(err)), self));
            }
            if self.done {
                return None;
            }
            let response = self.response.as_mut()?;
            let read = tokio::time::timeout(self.idle, response.chunk()).await;
            let frames = match read {
                Err(_) => Err(idle_error(self.idle, "the next stream chunk")),
                Ok(Err(err)) => Err(transport_error(err)),
                Ok(Ok(Some(bytes))) => self.decoder.feed(&bytes),
                Ok(Ok(None)) => {
                    self.done = true;
                    self.response = None;
                    self.decoder.finish()
                }
            };
            match frames {
                Ok(frames) => {
                    self.queue.extend(frames);
                    self.pending_error = self.decoder.deferred_error();
                }
                Err(err) => return Some((Err(self.end(err)), self)),
            }
        }
    }

    /// Ends the stream with `err`, completed with what the stream knows and scrubbed.
    fn end(&mut self, mut err: Error) -> Error {
        self.done = true;
        self.queue.clear();
        self.pending_error = None;
        self.response = None;
        if err.request_id().is_none()
            && let Some(id) = &self.request_id
        {
            err = err.with_request_id(id.clone());
        }
        self.scrub.error(err.or_provider(&self.provider))
    }
}

/// The error an in-band frame reports, if it is one.
fn in_band_error(frame: &Frame) -> Option<Error> {
    let (data, is_error_event) = match frame {
        Frame::Sse(event) => (event.data.as_str(), event.event.as_deref() == Some("error")),
        Frame::Line(line) => (line.as_str(), false),
    };
    // Only frames mentioning "error" are worth a second JSON parse.
    if !is_error_event && memchr::memmem::find(data.as_bytes(), b"error").is_none() {
        return None;
    }
    let parsed = serde_json::from_str::<Value>(data).ok();
    if let Some(err) = parsed
        .as_ref()
        .and_then(|v| provider_error::from_json(None, v))
    {
        return Some(err);
    }
    is_error_event.then(|| {
        let message = if data.trim().is_empty() {
            "the stream reported an error without details".to_owned()
        } else {
            format!(
                "the stream reported an error: {}",
                crate::line::preview(data.as_bytes())
            )
        };
        let err = Error::new(ErrorKind::Provider, message);
        match parsed {
            Some(_) => err.with_raw_body(crate::line::preview(data.as_bytes())),
            None => err,
        }
    })
}
