//! The Ollama native API wire format (`/api/chat`, `/api/tags`, `/api/embed`), for a local
//! Ollama server and for ollama.com's hosted API.
//!
//! This module is translation only: [`request_body`] turns a [`ChatRequest`] into the JSON of
//! `POST {host}/api/chat`, [`parse_response`] turns the reply into a [`ChatResponse`], and a
//! [`ChunkDecoder`] turns the NDJSON stream into [`StreamEvent`]s through the core's
//! [`StreamAccumulator`]. Sending, status handling and error mapping (Ollama's
//! `{"error":"…"}` bodies and in-band error lines included) live once in the [`HttpExecutor`].
//!
//! Wire facts are cited from `shared/docs/wire-formats.md` ("Ollama (native API)") and the
//! fixtures in `shared/fixtures/ollama/` (written `fx:` below). The `fx: docs/…` ones are
//! hand-written examples from Ollama's docs; `fx: rust-genai/…` are recordings.
//!
//! How Ollama differs from the OpenAI shape, in short:
//! - streaming is the default, so `stream` is always sent explicitly;
//! - sampling settings go in an `options` object (`num_predict` is the token limit);
//! - images are raw base64 strings in `messages[].images`, never URLs;
//! - tool-call `arguments` are JSON objects, each call arrives whole, and ids are optional;
//! - there is no response id, and usage is `prompt_eval_count` / `eval_count` on the final
//!   `done: true` object.

use std::collections::HashMap;

use async_trait::async_trait;
use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, ContentPart, EmbedRequest, EmbedResponse,
    Error, ErrorKind, FinishReason, ImageSource, Model, Pricing, Reasoning, ResponseFormat, Result,
    Role, Secret, StreamAccumulator, StreamEvent, ToolCall, ToolChoice, Usage,
};
use exllm_infrastructure::http::{Auth, Framing, HttpExecutor, HttpRequest};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Where a local Ollama listens when `OLLAMA_HOST` is unset [ollama envconfig/config.go `Host`].
pub const OLLAMA_DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// Ollama's default port, used when `OLLAMA_HOST` names no scheme and no port.
const DEFAULT_PORT: &str = "11434";

/// How many bytes of an undecodable body or line an error keeps.
const RAW_KEEP_BYTES: usize = 2048;

/// One Ollama server: a local one, or ollama.com's hosted API with a key.
///
/// ```
/// use exllm_adapters_providers::ollama::OllamaConfig;
///
/// assert_eq!(OllamaConfig::new(None, None).base_url, "http://127.0.0.1:11434");
/// // `OLLAMA_HOST` is often set the way the server binds, without a scheme.
/// assert_eq!(
///     OllamaConfig::new(Some("0.0.0.0".into()), None).base_url,
///     "http://127.0.0.1:11434"
/// );
/// assert_eq!(
///     OllamaConfig::new(Some("gpu-box:8080".into()), None).url("api/chat"),
///     "http://gpu-box:8080/api/chat"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaConfig {
    /// The provider name used in `provider/model` addresses and errors (`ollama`).
    pub name: String,
    /// The server root, e.g. `http://127.0.0.1:11434`; `/api/chat` is appended.
    pub base_url: String,
    /// The bearer key for ollama.com's hosted API; `None` for a local server, which needs none
    /// [wire-formats.md "Ollama": docs/api/authentication.mdx].
    pub api_key: Option<Secret>,
    /// Headers sent with every request (e.g. for a reverse proxy in front of Ollama).
    pub extra_headers: Vec<(String, String)>,
}

impl OllamaConfig {
    /// The server at `host` (the `OLLAMA_HOST` value, normalised by [`normalize_host`];
    /// [`OLLAMA_DEFAULT_HOST`] when `None` or blank), with `api_key` sent as a bearer token.
    pub fn new(host: Option<String>, api_key: Option<Secret>) -> Self {
        Self {
            name: "ollama".to_owned(),
            base_url: normalize_host(host.as_deref().unwrap_or("")),
            api_key: api_key.filter(|k| !k.is_empty()),
            extra_headers: Vec::new(),
        }
    }

    /// Renames the provider (for a second Ollama server registered beside the first).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a header sent with every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_headers.push((name.into(), value.into()));
        self
    }

    /// `{base_url}/{path}` with exactly one slash between them.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.base_url.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }
}

/// An `OLLAMA_HOST` value as the URL the Ollama client would connect to.
///
/// Follows Ollama's own client [ollama envconfig/config.go `Host` and `ConnectableHost`]:
/// - no scheme means `http://`, and then a missing port means `11434` (`127.0.0.1` →
///   `http://127.0.0.1:11434`); the bare name `ollama.com` means `https://ollama.com:443`;
/// - with a scheme, a missing port is the scheme's own (`http://box` → port 80, `https://` →
///   443), as in any URL;
/// - an empty host is `127.0.0.1`, and an unspecified bind address (`0.0.0.0`, `::`) — what
///   people set for the *server* — becomes loopback, since clients cannot connect to it on
///   every system;
/// - an invalid port falls back to the default; a path is kept, trailing slashes dropped.
pub fn normalize_host(raw: &str) -> String {
    let trimmed = raw.trim().trim_matches(|c| c == '"' || c == '\'').trim();
    let (scheme, rest, default_port) = match trimmed.split_once("://") {
        None if trimmed == "ollama.com" => ("https".to_owned(), "ollama.com:443", "443"),
        None => ("http".to_owned(), trimmed, DEFAULT_PORT),
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let port = match scheme.as_str() {
                "http" => "80",
                "https" => "443",
                _ => DEFAULT_PORT,
            };
            (scheme, rest, port)
        }
    };
    let (hostport, path) = match rest.split_once('/') {
        Some((hostport, path)) => (hostport, path.trim_end_matches('/')),
        None => (rest, ""),
    };
    let (mut host, mut port) = match split_host_port(hostport) {
        Some((host, port)) => (host, port),
        None => (hostport.trim_matches(|c| c == '[' || c == ']'), ""),
    };
    if host.is_empty() {
        host = "127.0.0.1";
    }
    if !port.parse::<u16>().is_ok_and(|_| !port.starts_with('+')) {
        port = default_port;
    }
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        Ok(ip) if ip.is_unspecified() => "::1".to_owned(),
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_owned(),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    if path.is_empty() {
        format!("{scheme}://{host}:{port}")
    } else {
        format!("{scheme}://{host}:{port}/{path}")
    }
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`; `None` when there is no port part
/// or the host is an unbracketed IPv6 address.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    if let Some(inner) = hostport.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = hostport.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

/// A [`ChatProvider`] speaking Ollama's native API to one server.
#[derive(Debug, Clone)]
pub struct OllamaProvider {
    config: OllamaConfig,
    executor: HttpExecutor,
}

impl OllamaProvider {
    /// A provider for the server `config` describes, sending through `executor`.
    pub fn new(config: OllamaConfig, executor: HttpExecutor) -> Self {
        Self { config, executor }
    }

    /// The server's configuration.
    pub fn config(&self) -> &OllamaConfig {
        &self.config
    }

    fn auth(&self) -> Auth {
        match &self.config.api_key {
            Some(key) if !key.is_empty() => Auth::Bearer(key.clone()),
            _ => Auth::None,
        }
    }

    fn with_headers<'a>(
        &self,
        mut http: HttpRequest,
        extra: impl IntoIterator<Item = &'a (String, String)>,
    ) -> HttpRequest {
        for (name, value) in &self.config.extra_headers {
            http = http.header(name.clone(), value.clone());
        }
        for (name, value) in extra {
            http = http.header(name.clone(), value.clone());
        }
        http.auth(self.auth())
    }

    fn chat_request(&self, body: Value, request: &ChatRequest) -> HttpRequest {
        let http = HttpRequest::post(self.config.url("api/chat"), body);
        self.with_headers(http, &request.extra_headers)
    }
}

#[async_trait]
impl ChatProvider for OllamaProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let body = request_body(&request, false)?;
        let http = self.chat_request(body, &request);
        let reply = self.executor.send_json(&self.config.name, http).await?;
        parse_response(&self.config.name, &reply.body)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let body = request_body(&request, true)?;
        let http = self.chat_request(body, &request);
        // NDJSON framing also sends `Accept: application/x-ndjson`, as Ollama's client does
        // [wire-formats.md: api/client.go L204].
        let frames = self
            .executor
            .send_stream(&self.config.name, http, Framing::Ndjson)
            .await?;
        let decoder = ChunkDecoder::new(&self.config.name, &request.model);
        Ok(crate::pump::events(frames, decoder))
    }

    async fn list_models(&self) -> Result<Vec<Model>> {
        let http = self.with_headers(HttpRequest::get(self.config.url("api/tags")), []);
        let reply = self.executor.send_json(&self.config.name, http).await?;
        parse_models(&self.config.name, &reply.body)
    }

    /// `GET /api/tags`: cheap, and unlike `/api/version` it is authenticated on ollama.com,
    /// so a bad key shows up here.
    async fn health(&self) -> Result<()> {
        self.list_models().await.map(|_| ())
    }

    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse> {
        let http = self.with_headers(
            HttpRequest::post(self.config.url("api/embed"), embed_body(&request)),
            [],
        );
        let reply = self.executor.send_json(&self.config.name, http).await?;
        parse_embed(&self.config.name, &request, &reply.body)
    }

    /// Ollama runs models on the caller's own hardware: every model is free. (ollama.com's
    /// hosted models are billed by subscription, not per token, so zero holds there too.)
    fn pricing(&self, _model: &str) -> Option<Pricing> {
        Some(Pricing::default())
    }
}

// ---------------------------------------------------------------------------------------------
// Request translation.

/// The JSON body of `POST /api/chat` for `request`, streaming or not.
///
/// Pure: no IO. Fails with [`ErrorKind::Validation`] on what Ollama cannot take: an image by
/// URL (Ollama only accepts inline base64), an image that is not base64, or a tool message
/// without a tool result.
///
/// `extra_body` is merged last, so `think` (`true`, `"low"`, `"medium"`, `"high"`),
/// `keep_alive` or anything else Ollama accepts can be passed through it. An `options` object
/// there is merged key by key into the one built from the request, so `{"options":
/// {"num_ctx": 8192}}` does not discard the temperature.
pub fn request_body(request: &ChatRequest, stream: bool) -> Result<Value> {
    let mut body = Map::new();
    body.insert("model".to_owned(), Value::String(request.model.clone()));
    body.insert("messages".to_owned(), Value::Array(messages(request)?));
    // Streaming is the default on /api/chat, so `stream` is always explicit
    // [wire-formats.md "Streaming is the default"; fx: docs/chat-tools.request.json].
    body.insert("stream".to_owned(), Value::Bool(stream));

    let mut options = Map::new();
    if let Some(t) = request.temperature {
        options.insert("temperature".to_owned(), float(t));
    }
    if let Some(p) = request.top_p {
        options.insert("top_p".to_owned(), float(p));
    }
    if let Some(n) = request.max_tokens {
        options.insert("num_predict".to_owned(), Value::from(n));
    }
    if !request.stop.is_empty() {
        options.insert("stop".to_owned(), json!(request.stop));
    }
    if let Some(seed) = request.seed {
        options.insert("seed".to_owned(), Value::from(seed));
    }

    let tools = tools(request);
    if !tools.is_empty() {
        body.insert("tools".to_owned(), Value::Array(tools));
    }
    match &request.response_format {
        // `format` takes "json" or a JSON schema object [ollama docs/api.md "Structured
        // outputs"].
        Some(ResponseFormat::JsonObject) => {
            body.insert("format".to_owned(), json!("json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert("format".to_owned(), schema.clone());
        }
        Some(ResponseFormat::Text) | None => {}
    }

    // Last, so that a caller can override anything the translation chose.
    for (key, value) in &request.extra_body {
        match (key.as_str(), value) {
            ("options", Value::Object(extra)) => {
                for (k, v) in extra {
                    options.insert(k.clone(), v.clone());
                }
            }
            _ => {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    if !options.is_empty() {
        body.insert("options".to_owned(), Value::Object(options));
    }
    Ok(Value::Object(body))
}

/// The `tools` array, OpenAI-shaped [fx: docs/chat-tools.request.json].
///
/// Ollama has no `tool_choice`. `None` is honoured by not offering the tools; a named tool by
/// offering only that one; `Required` cannot be expressed and is logged, the tools still
/// offered.
fn tools(request: &ChatRequest) -> Vec<Value> {
    let only: Option<&str> = match &request.tool_choice {
        Some(ToolChoice::None) => return Vec::new(),
        Some(ToolChoice::Tool(name)) => {
            tracing::warn!(
                tool = %name,
                "Ollama cannot force a tool call; offering only the chosen tool"
            );
            Some(name.as_str())
        }
        Some(ToolChoice::Required) if !request.tools.is_empty() => {
            tracing::warn!("Ollama cannot force a tool call; tool_choice `required` is not sent");
            None
        }
        _ => None,
    };
    request
        .tools
        .iter()
        .filter(|tool| only.is_none_or(|name| tool.name == name))
        .map(|tool| {
            let mut function = Map::new();
            function.insert("name".to_owned(), Value::String(tool.name.clone()));
            if let Some(description) = &tool.description {
                function.insert("description".to_owned(), Value::String(description.clone()));
            }
            function.insert("parameters".to_owned(), tool.parameters.clone());
            json!({"type": "function", "function": function})
        })
        .collect()
}

/// An `f32` as the decimal a person wrote (`0.7`, not `0.699999988079071`).
fn float(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn messages(request: &ChatRequest) -> Result<Vec<Value>> {
    // Tool results name their tool (`tool_name`) on Ollama [fx: docs/chat-history-tool-result
    // .request.json]; a result that does not say is matched to its call by id.
    let call_names: HashMap<&str, &str> = request
        .messages
        .iter()
        .flat_map(|m| m.tool_calls())
        .filter(|c| !c.id.is_empty())
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();

    let mut out = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        let mut content = String::new();
        let mut thinking = String::new();
        let mut images = Vec::new();
        let mut calls = Vec::new();
        let mut results = Vec::new();
        for (j, part) in message.content.iter().enumerate() {
            match part {
                ContentPart::Text { text } | ContentPart::Refusal { text } => {
                    content.push_str(text)
                }
                ContentPart::Image { source, .. } => {
                    images.push(Value::String(image_base64(source, i, j)?));
                }
                ContentPart::Reasoning(r) => thinking.push_str(&r.text),
                ContentPart::ToolCall(call) => calls.push(tool_call(call)),
                ContentPart::ToolResult(result) => {
                    let mut tool = Map::new();
                    tool.insert("role".to_owned(), json!("tool"));
                    tool.insert("content".to_owned(), json!(result.content));
                    let name = result
                        .name
                        .as_deref()
                        .or_else(|| call_names.get(result.call_id.as_str()).copied());
                    if let Some(name) = name {
                        tool.insert("tool_name".to_owned(), json!(name));
                    }
                    if !result.call_id.is_empty() {
                        // Newer servers link results by id too; older ones ignore the field.
                        tool.insert("tool_call_id".to_owned(), json!(result.call_id));
                    }
                    results.push(Value::Object(tool));
                }
            }
        }
        if message.role == Role::Tool && results.is_empty() {
            return Err(Error::validation(
                format!("messages[{i}]"),
                "a tool message needs a tool result part (with the tool it answers)",
            ));
        }
        // Tool results become one `tool` message each, whatever role carried them: providers
        // that put them in user messages (Anthropic) convert cleanly this way.
        let only_results = !results.is_empty()
            && content.is_empty()
            && images.is_empty()
            && calls.is_empty()
            && thinking.is_empty();
        out.extend(results);
        if only_results || message.role == Role::Tool {
            continue;
        }
        let mut wire = Map::new();
        wire.insert("role".to_owned(), json!(message.role.as_str()));
        // `content` is always present, empty beside tool calls [fx: docs/chat-history-tool-result
        // .request.json].
        wire.insert("content".to_owned(), Value::String(content));
        if !thinking.is_empty() {
            // Sent back so reasoning models keep their chain of thought across turns
            // [wire-formats.md "Thinking"].
            wire.insert("thinking".to_owned(), Value::String(thinking));
        }
        if !images.is_empty() {
            wire.insert("images".to_owned(), Value::Array(images));
        }
        if !calls.is_empty() {
            wire.insert("tool_calls".to_owned(), Value::Array(calls));
        }
        out.push(Value::Object(wire));
    }
    Ok(out)
}

/// An assistant tool call as Ollama wants it back: `arguments` a JSON object, not a string
/// [fx: docs/chat-history-tool-result.request.json].
fn tool_call(call: &ToolCall) -> Value {
    let arguments = match &call.arguments {
        Value::Null => Value::Object(Map::new()),
        // Arguments kept verbatim as a string because they were not JSON: an object is what
        // Ollama parses, so a string that is one is unwrapped, anything else sent as is.
        Value::String(raw) => serde_json::from_str::<Value>(raw)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::String(raw.clone())),
        other => other.clone(),
    };
    let mut wire = Map::new();
    if !call.id.is_empty() {
        wire.insert("id".to_owned(), json!(call.id));
    }
    wire.insert(
        "function".to_owned(),
        json!({"name": call.name, "arguments": arguments}),
    );
    Value::Object(wire)
}

/// An image as the raw base64 Ollama takes: no `data:` prefix
/// [fx: docs/chat-vision-images.request.json]. Ollama fetches no URLs, so an `https://` image
/// is a validation error rather than a request the server would reject.
fn image_base64(source: &ImageSource, message: usize, part: usize) -> Result<String> {
    let field = || format!("messages[{message}].content[{part}]");
    let data = match source {
        ImageSource::Base64 { data, .. } => strip_data_url(data).unwrap_or(data),
        ImageSource::Url { url } => strip_data_url(url).ok_or_else(|| {
            Error::validation(
                field(),
                "Ollama takes images only as inline base64 data; it cannot fetch an image URL \
                 (download it and send it as ContentPart::image_base64)",
            )
        })?,
    };
    // Ollama decodes with Go's standard base64; anything else would come back as a 400.
    let valid = data
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\r' | b'\n'));
    if data.is_empty() || !valid {
        return Err(Error::validation(
            field(),
            "the image data is not standard base64",
        ));
    }
    Ok(data.to_owned())
}

/// The base64 payload of a `data:<type>;base64,<data>` URL.
fn strip_data_url(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    meta.ends_with(";base64").then_some(data)
}

// ---------------------------------------------------------------------------------------------
// Response translation.

#[derive(Deserialize, Default)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    done: Option<bool>,
    #[serde(default)]
    done_reason: Option<String>,
    // The stats are all `omitempty` [wire-formats.md; ollama api/types.go Metrics].
    #[serde(default)]
    total_duration: Option<u64>,
    #[serde(default)]
    load_duration: Option<u64>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    prompt_eval_cached_count: Option<u64>,
    #[serde(default)]
    prompt_eval_duration: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    eval_duration: Option<u64>,
}

#[derive(Deserialize, Default)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

impl WireToolCall {
    /// The call, with id `call_<index>` when Ollama sent none (older servers never do:
    /// fx: docs/chat-tools.response.json; newer ones may: fx: rust-genai/stream-chat-thinking
    /// -tool-calls.SYNTHETIC.ndjson).
    fn into_call(self, index: usize) -> ToolCall {
        let id = self
            .id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{index}"));
        let (name, arguments) = match self.function {
            Some(f) => (f.name.unwrap_or_default(), f.arguments),
            None => (String::new(), None),
        };
        let arguments = match arguments {
            None | Some(Value::Null) => Value::Object(Map::new()),
            // Some servers stringify; a string that is JSON is read as such.
            Some(Value::String(raw)) => ToolCall::parse_arguments(&raw),
            Some(other) => other,
        };
        ToolCall::new(id, name, arguments)
    }
}

impl WireResponse {
    fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_eval_count.unwrap_or(0),
            output_tokens: self.eval_count.unwrap_or(0),
            cached_input_tokens: self.prompt_eval_cached_count.unwrap_or(0),
            ..Usage::default()
        }
    }

    fn has_usage(&self) -> bool {
        self.prompt_eval_count.is_some() || self.eval_count.is_some()
    }

    /// The durations, in nanoseconds as Ollama reports them, under `*_ns` names.
    fn insert_durations(&self, metadata: &mut Map<String, Value>) {
        for (name, value) in [
            ("total_duration_ns", self.total_duration),
            ("load_duration_ns", self.load_duration),
            ("prompt_eval_duration_ns", self.prompt_eval_duration),
            ("eval_duration_ns", self.eval_duration),
        ] {
            if let Some(ns) = value {
                metadata.insert(name.to_owned(), Value::from(ns));
            }
        }
    }
}

/// Ollama's `done_reason` normalized, given whether the reply called tools.
///
/// `stop` → [`FinishReason::Stop`] (or [`FinishReason::ToolCalls`] when the reply called
/// tools: Ollama says `stop` then too, fx: docs/chat-tools.response.json); `length` →
/// [`FinishReason::Length`]. `load` and `unload` answer requests with no messages (loading or
/// unloading a model) and are no finish at all: `None`, kept verbatim in
/// [`ChatResponse::provider_finish_reason`] like any unknown value. A final object without a
/// `done_reason` (older servers: fx: docs/chat-vision-images.response.json) is a plain stop.
pub fn finish_reason(raw: Option<&str>, called_tools: bool) -> Option<FinishReason> {
    match raw {
        Some("length") => Some(FinishReason::Length),
        Some("stop") | None if called_tools => Some(FinishReason::ToolCalls),
        Some("stop") | None => Some(FinishReason::Stop),
        Some(_) => None,
    }
}

/// The first bytes of `text`, cut on a character boundary, for error messages.
fn first_bytes(text: &str) -> String {
    if text.len() <= RAW_KEEP_BYTES {
        return text.to_owned();
    }
    let mut end = RAW_KEEP_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn error_message(body: &Value) -> String {
    let error = &body["error"];
    error
        .as_str()
        .or_else(|| error["message"].as_str())
        .unwrap_or("the provider returned an error")
        .to_owned()
}

/// Translates an `/api/chat` response body (`stream: false`, HTTP 200) into a
/// [`ChatResponse`]. Ollama sends no response id, so [`ChatResponse::id`] stays empty.
pub fn parse_response(provider: &str, body: &Value) -> Result<ChatResponse> {
    let raw = || first_bytes(&body.to_string());
    if body.get("error").is_some_and(|e| !e.is_null()) {
        // The executor turns a 200 carrying an error into an error already; this guards
        // callers that hand us a body directly.
        return Err(Error::new(ErrorKind::Provider, error_message(body))
            .with_provider(provider)
            .with_raw_body(raw()));
    }
    let mut wire = WireResponse::deserialize(body).map_err(|e| {
        Error::decode(format!("not an Ollama chat response: {e}"), raw()).with_provider(provider)
    })?;
    if wire.message.is_none() && wire.done.is_none() {
        return Err(
            Error::decode("not an Ollama chat response: no `message`", raw())
                .with_provider(provider),
        );
    }
    let mut response = ChatResponse::new(provider, wire.model.clone().unwrap_or_default());
    let message = wire.message.take().unwrap_or_default();
    if let Some(thinking) = message.thinking.filter(|t| !t.is_empty()) {
        response.content.push(ContentPart::Reasoning(Reasoning {
            text: thinking,
            ..Reasoning::default()
        }));
    }
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        response.content.push(ContentPart::text(text));
    }
    for (index, call) in message.tool_calls.into_iter().flatten().enumerate() {
        response
            .content
            .push(ContentPart::ToolCall(call.into_call(index)));
    }
    let called_tools = !response.tool_calls().is_empty();
    response.provider_finish_reason = wire.done_reason.clone();
    response.finish_reason = finish_reason(wire.done_reason.as_deref(), called_tools);
    response.usage = wire.usage();
    if let Some(created) = &wire.created_at {
        response
            .metadata
            .insert("created_at".to_owned(), Value::String(created.clone()));
    }
    wire.insert_durations(&mut response.metadata);
    Ok(response)
}

/// Translates a `GET /api/tags` body into models: one per entry, id = the entry's `name`
/// (`llama3.2:latest`) [fx: tags.response.terminal-paste.json, docs/tags.response.json].
/// The list says nothing of context windows or prices; the catalogue and
/// [`ChatProvider::pricing`] fill those in.
pub fn parse_models(provider: &str, body: &Value) -> Result<Vec<Model>> {
    let models = match body.get("models") {
        Some(Value::Array(models)) => models.as_slice(),
        // A server with nothing pulled may say `null` (a nil Go slice).
        Some(Value::Null) => &[],
        _ => {
            return Err(Error::decode(
                "the model list has no `models` array",
                first_bytes(&body.to_string()),
            )
            .with_provider(provider));
        }
    };
    Ok(models
        .iter()
        .filter_map(|m| {
            m.get("name")
                .or_else(|| m.get("model"))
                .and_then(Value::as_str)
        })
        .filter(|id| !id.is_empty())
        .map(|id| Model::named(provider, id))
        .collect())
}

/// The JSON body of `POST /api/embed`: `{"model", "input": […], "dimensions"?}`
/// [ollama docs/api.md "Generate Embeddings"].
pub fn embed_body(request: &EmbedRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".to_owned(), Value::String(request.model.clone()));
    body.insert("input".to_owned(), json!(request.inputs));
    if let Some(dimensions) = request.dimensions {
        body.insert("dimensions".to_owned(), Value::from(dimensions));
    }
    Value::Object(body)
}

#[derive(Deserialize)]
struct WireEmbed {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    embeddings: Option<Vec<Vec<f32>>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

/// Translates an `/api/embed` body (`{"model", "embeddings": [[…]], "prompt_eval_count"}`)
/// into an [`EmbedResponse`]; usage input is `prompt_eval_count`. A reply with a different
/// number of vectors than `request` had inputs is a decode error: the vectors could not be
/// matched to their texts.
pub fn parse_embed(provider: &str, request: &EmbedRequest, body: &Value) -> Result<EmbedResponse> {
    let raw = || first_bytes(&body.to_string());
    let wire = WireEmbed::deserialize(body).map_err(|e| {
        Error::decode(format!("not an Ollama embed response: {e}"), raw()).with_provider(provider)
    })?;
    let embeddings = wire.embeddings.unwrap_or_default();
    if embeddings.len() != request.inputs.len() {
        return Err(Error::decode(
            format!(
                "{} embeddings for {} inputs",
                embeddings.len(),
                request.inputs.len()
            ),
            raw(),
        )
        .with_provider(provider));
    }
    let mut response = EmbedResponse::new(
        provider,
        wire.model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| request.model.clone()),
    );
    response.embeddings = embeddings;
    response.usage = Usage::new(wire.prompt_eval_count.unwrap_or(0), 0);
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Stream translation.

/// Turns the lines of an `/api/chat` NDJSON stream into stream events.
///
/// Feed it every line with [`ChunkDecoder::line`], then call [`ChunkDecoder::end`] when the
/// body ends. Pure, so it is tested without a network.
///
/// Each line is a whole JSON object: text and thinking come as pieces, tool calls whole (there
/// is no argument streaming), and the last object has `done: true` with `done_reason` and the
/// stats [wire-formats.md "Streaming is the default"; fx: rust-genai/*.ndjson].
#[derive(Debug)]
pub struct ChunkDecoder {
    provider: String,
    acc: StreamAccumulator,
    lines: usize,
    /// Tool calls seen so far: the next call's index.
    calls: usize,
    done: bool,
}

impl ChunkDecoder {
    /// A decoder for a reply from `provider` to a request for `model`.
    pub fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            acc: StreamAccumulator::new(provider, model),
            lines: 0,
            calls: 0,
            done: false,
        }
    }

    /// Whether the `done: true` object arrived: nothing more is expected.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Attaches what was received so far to a mid-stream error.
    pub fn fail(&self, err: Error) -> Error {
        self.acc.fail(err.or_provider(&self.provider))
    }

    /// Decodes one NDJSON line.
    pub fn line(&mut self, line: &str) -> Result<Vec<StreamEvent>> {
        let line = line.trim();
        if line.is_empty() || self.done {
            return Ok(Vec::new());
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            self.fail(Error::decode(
                format!("malformed stream line: {e}"),
                first_bytes(line),
            ))
        })?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            // After output began Ollama writes `{"error":"…"}` as a last line with status 200
            // [fx: docs/stream-midstream-error.docs.ndjson]. The executor raises it itself;
            // this keeps one that slipped through from being lost.
            return Err(self.fail(
                Error::new(ErrorKind::Provider, error_message(&value))
                    .with_raw_body(first_bytes(line)),
            ));
        }
        let chunk = WireResponse::deserialize(&value).map_err(|e| {
            self.fail(Error::decode(
                format!("unexpected stream line: {e}"),
                first_bytes(line),
            ))
        })?;
        self.lines += 1;
        Ok(self.chunk(chunk))
    }

    fn chunk(&mut self, mut chunk: WireResponse) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if self.lines == 1 {
            let resp = self.acc.response_mut();
            if let Some(model) = chunk.model.as_ref().filter(|m| !m.is_empty()) {
                resp.model.clone_from(model);
            }
            if let Some(created) = &chunk.created_at {
                resp.metadata
                    .insert("created_at".to_owned(), Value::String(created.clone()));
            }
        }
        let message = chunk.message.take().unwrap_or_default();
        if let Some(thinking) = message.thinking.filter(|t| !t.is_empty()) {
            events.push(self.acc.reasoning(&thinking));
        }
        // Content chunks may be empty (fx: rust-genai/stream-chat-ollama-cloud.ndjson line 2).
        if let Some(text) = message.content.filter(|t| !t.is_empty()) {
            events.push(self.acc.text(&text));
        }
        // Each call arrives whole, possibly several in one line
        // (fx: rust-genai/stream-chat-thinking-tool-calls.SYNTHETIC.ndjson): start, all the
        // arguments, end.
        for wire in message.tool_calls.into_iter().flatten() {
            let index = self.calls;
            self.calls += 1;
            let call = wire.into_call(index);
            events.push(self.acc.tool_call_start(index, &call.id, &call.name));
            events.push(self.acc.tool_call_delta(index, &call.arguments.to_string()));
            events.extend(self.acc.tool_call_end(index));
        }
        if chunk.done == Some(true) {
            self.done = true;
            if chunk.has_usage() {
                events.push(self.acc.usage(chunk.usage()));
            }
            let raw = chunk.done_reason.as_deref();
            self.acc
                .finish_reason(finish_reason(raw, self.calls > 0), raw);
            chunk.insert_durations(&mut self.acc.response_mut().metadata);
        }
        events
    }

    /// The events that close the stream when the body ends: the complete response, or a
    /// [`ErrorKind::StreamTruncated`] error keeping the partial reply when no `done: true`
    /// object arrived.
    pub fn end(self) -> Result<Vec<StreamEvent>> {
        if !self.done {
            let why = if self.lines == 0 {
                "the stream ended before any line arrived"
            } else {
                "the stream ended without a `done: true` line"
            };
            return Err(self.acc.truncated(why));
        }
        let (events, _) = self.acc.finish();
        Ok(events)
    }
}

/// The shared stream pump drives this decoder.
impl crate::pump::FrameDecoder for ChunkDecoder {
    fn data(&mut self, data: &str) -> Result<Vec<StreamEvent>> {
        ChunkDecoder::line(self, data)
    }
    fn is_done(&self) -> bool {
        ChunkDecoder::is_done(self)
    }
    fn fail(&self, err: Error) -> Error {
        ChunkDecoder::fail(self, err)
    }
    fn end(self) -> Result<Vec<StreamEvent>> {
        ChunkDecoder::end(self)
    }
}
