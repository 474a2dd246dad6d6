//! The Anthropic Messages wire format (`POST /v1/messages`), plain and streamed.
//!
//! This module is translation only: [`request_body`] turns a [`ChatRequest`] into the JSON of
//! `POST {base_url}/v1/messages`, [`parse_response`] turns the reply into a [`ChatResponse`],
//! and an [`EventDecoder`] turns the SSE stream into [`StreamEvent`]s through the core's
//! [`StreamAccumulator`]. Sending, status handling, retry headers, in-band `event: error`
//! frames and error mapping (529 `overloaded_error` → [`ErrorKind::Unavailable`]) live once
//! in the [`HttpExecutor`].
//!
//! Wire facts are cited from `shared/docs/wire-formats.md` ("Anthropic Messages") and the
//! recorded fixtures in `shared/fixtures/anthropic/` (written `fx:` below).
//!
//! Translation choices worth knowing:
//!
//! - **System messages** are lifted to the top-level `system` field (a string for one text,
//!   an array of text blocks for several), wherever they sit in the conversation.
//! - **Tool results** (role `tool`) become `tool_result` blocks in a `user` message; consecutive
//!   results, and a user message right after them, are merged into one user message.
//! - **Reasoning** goes back unchanged as `thinking` (with its signature) or `redacted_thinking`
//!   (with its data) blocks, in the order it came, before the `tool_use` blocks. Reasoning
//!   without a signature (from another provider) is dropped: Anthropic accepts only thinking
//!   it signed.
//! - **Structured output** ([`ResponseFormat::JsonSchema`]) has no native field: a tool named
//!   after the schema, with the schema as its `input_schema`, is added and forced with
//!   `tool_choice: {"type":"tool","name":…}`. The `tool_use` input that comes back becomes the
//!   reply's text (a JSON string) and the finish reason [`FinishReason::Stop`], streamed or
//!   not; this is what vercel/ai does (packages/anthropic, `isJsonResponseFromTool`).
//!   [`ResponseFormat::JsonObject`] is the same with a tool named `json` whose schema is
//!   `{"type":"object"}`. Anthropic refuses forced tool use while extended thinking is on, so
//!   structured output and `thinking` do not mix.
//! - **Stop reasons** ([`finish_reason`]): `end_turn`, `stop_sequence` and `pause_turn` (a
//!   server-tool turn paused, to be continued by sending the reply back) are
//!   [`FinishReason::Stop`]; `max_tokens` and `model_context_window_exceeded` are
//!   [`FinishReason::Length`]; `tool_use` is [`FinishReason::ToolCalls`]; `refusal` is
//!   [`FinishReason::ContentFilter`] (vercel/ai packages/anthropic/src/map-anthropic-stop-reason.ts
//!   maps them the same way). The raw value is kept in
//!   [`ChatResponse::provider_finish_reason`].
//! - **Usage** follows the core convention: `input_tokens` is Anthropic's `input_tokens` plus
//!   `cache_read_input_tokens` plus `cache_creation_input_tokens`.
//! - `seed` has no Anthropic equivalent and is not sent.

use std::collections::BTreeMap;

use async_trait::async_trait;
use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, ContentPart, Error, ErrorKind,
    FinishReason, ImageSource, Message, Model, Reasoning, ResponseFormat, Result, Role, Secret,
    StreamAccumulator, StreamEvent, ToolCall, ToolChoice, Usage,
};
use exllm_infrastructure::http::{Auth, Framing, HttpExecutor, HttpRequest};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Anthropic's public API root; `/v1/messages` is appended [anthropic-sdk-python
/// src/anthropic/_client.py `base_url`].
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` header every request carries (wire-formats.md, "Anthropic
/// Messages"; fx: llm-anthropic/stream-text-prompt.http.json request headers).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The `max_tokens` sent when a request sets none: the field is required
/// (anthropic-sdk-python types/message_create_params.py `max_tokens: Required[int]`).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The tool name used for [`ResponseFormat::JsonObject`] and for a schema whose name leaves
/// nothing usable as a tool name.
const JSON_TOOL: &str = "json";

/// How many bytes of an undecodable body or event an error keeps.
const RAW_KEEP_BYTES: usize = 2048;

/// Where and how to reach Anthropic.
///
/// ```
/// use exllm_adapters_providers::anthropic::AnthropicConfig;
/// use exllm_core::Secret;
///
/// let config = AnthropicConfig::new(Some(Secret::new("sk-ant-…")), None)
///     .beta("interleaved-thinking-2025-05-14")
///     .default_max_tokens(8192);
/// assert_eq!(config.url("v1/messages"), "https://api.anthropic.com/v1/messages");
///
/// // `ANTHROPIC_BASE_URL` is the root, as in the official SDKs: `/v1/messages` is appended.
/// let proxy = AnthropicConfig::new(None, Some("http://localhost:4000/".into()));
/// assert_eq!(proxy.url("/v1/messages"), "http://localhost:4000/v1/messages");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicConfig {
    /// The provider name used in `provider/model` addresses and errors (`anthropic`).
    pub name: String,
    /// The API root, e.g. `https://api.anthropic.com`; `/v1/messages` is appended.
    pub base_url: String,
    /// The key sent as `x-api-key`; `None` sends no key (a gateway that adds its own).
    pub api_key: Option<Secret>,
    /// The `anthropic-version` header.
    pub version: String,
    /// Beta flags, sent comma-joined as `anthropic-beta` (wire-formats.md).
    pub betas: Vec<String>,
    /// `max_tokens` for requests that set none.
    pub default_max_tokens: u32,
    /// Headers sent with every request.
    pub extra_headers: Vec<(String, String)>,
}

impl AnthropicConfig {
    /// Anthropic with `api_key`, at `base_url` (the `ANTHROPIC_BASE_URL` root) or
    /// [`ANTHROPIC_BASE_URL`] when it is `None` or blank.
    pub fn new(api_key: Option<Secret>, base_url: Option<String>) -> Self {
        Self {
            name: "anthropic".to_owned(),
            base_url: base_url
                .filter(|url| !url.trim().is_empty())
                .unwrap_or_else(|| ANTHROPIC_BASE_URL.to_owned()),
            api_key,
            version: ANTHROPIC_VERSION.to_owned(),
            betas: Vec::new(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
            extra_headers: Vec::new(),
        }
    }

    /// Adds a beta flag (`anthropic-beta`).
    pub fn beta(mut self, flag: impl Into<String>) -> Self {
        self.betas.push(flag.into());
        self
    }

    /// Sets the `max_tokens` sent when a request sets none.
    pub fn default_max_tokens(mut self, n: u32) -> Self {
        self.default_max_tokens = n;
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

/// A [`ChatProvider`] speaking the Anthropic Messages API.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    config: AnthropicConfig,
    executor: HttpExecutor,
}

impl AnthropicProvider {
    /// A provider for `config`, sending through `executor`.
    pub fn new(config: AnthropicConfig, executor: HttpExecutor) -> Self {
        Self { config, executor }
    }

    /// The configuration.
    pub fn config(&self) -> &AnthropicConfig {
        &self.config
    }

    fn auth(&self) -> Auth {
        match &self.config.api_key {
            Some(key) if !key.is_empty() => Auth::Header {
                name: "x-api-key".to_owned(),
                value: key.clone(),
            },
            _ => Auth::None,
        }
    }

    /// Adds the version, beta and configured headers, then `extra`; beta flags given in
    /// `extra` join the configured ones in the single `anthropic-beta` header.
    fn with_headers(&self, mut http: HttpRequest, extra: &[(String, String)]) -> HttpRequest {
        http = http.header("anthropic-version", self.config.version.clone());
        let mut betas: Vec<&str> = self.config.betas.iter().map(String::as_str).collect();
        for (name, value) in self.config.extra_headers.iter().chain(extra) {
            if name.eq_ignore_ascii_case("anthropic-beta") {
                betas.extend(value.split(',').map(str::trim).filter(|b| !b.is_empty()));
            } else {
                http = http.header(name.clone(), value.clone());
            }
        }
        if !betas.is_empty() {
            http = http.header("anthropic-beta", betas.join(","));
        }
        http
    }

    fn messages_request(&self, body: Value, request: &ChatRequest) -> HttpRequest {
        let http = HttpRequest::post(self.config.url("v1/messages"), body).auth(self.auth());
        self.with_headers(http, &request.extra_headers)
    }
}

#[async_trait]
impl ChatProvider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let body = request_body(&self.config, &request, false)?;
        let http = self.messages_request(body, &request);
        let reply = self.executor.send_json(&self.config.name, http).await?;
        let mut response = parse_response(
            &self.config.name,
            &reply.body,
            structured_tool(&request).as_deref(),
        )?;
        if let Some(id) = reply.request_id {
            response
                .metadata
                .insert("request_id".to_owned(), Value::String(id));
        }
        Ok(response)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let body = request_body(&self.config, &request, true)?;
        let http = self.messages_request(body, &request);
        let frames = self
            .executor
            .send_stream(&self.config.name, http, Framing::Sse)
            .await?;
        let decoder = EventDecoder::new(&self.config.name, &request.model)
            .structured_tool(structured_tool(&request));
        Ok(crate::pump::events(frames, decoder))
    }

    /// `GET /v1/models`, asking for the largest page (1000) so that one call lists them all.
    async fn list_models(&self) -> Result<Vec<Model>> {
        let http = HttpRequest::get(self.config.url("v1/models?limit=1000")).auth(self.auth());
        let http = self.with_headers(http, &[]);
        let reply = self.executor.send_json(&self.config.name, http).await?;
        parse_models(&self.config.name, &reply.body)
    }

    async fn health(&self) -> Result<()> {
        self.list_models().await.map(|_| ())
    }
}

// ---------------------------------------------------------------------------------------------
// Request translation.

/// The JSON body of `POST /v1/messages` for `request`, with `stream` set as asked.
///
/// Pure: no IO. Fails only on a request that cannot be expressed: a tool message without a
/// tool result, or tool-call arguments that are not a JSON object.
pub fn request_body(
    config: &AnthropicConfig,
    request: &ChatRequest,
    stream: bool,
) -> Result<Value> {
    let mut body = Map::new();
    body.insert("model".to_owned(), Value::String(request.model.clone()));
    let (system, messages) = messages(&request.messages)?;
    if let Some(system) = system {
        body.insert("system".to_owned(), system);
    }
    body.insert("messages".to_owned(), Value::Array(messages));
    body.insert(
        "max_tokens".to_owned(),
        Value::from(request.max_tokens.unwrap_or(config.default_max_tokens)),
    );
    if let Some(t) = request.temperature {
        body.insert("temperature".to_owned(), float(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".to_owned(), float(p));
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".to_owned(), json!(request.stop));
    }

    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|tool| {
            // `{name, description, input_schema}` (fx: messages-parallel-tool-use.request.json).
            let mut def = Map::new();
            def.insert("name".to_owned(), Value::String(tool.name.clone()));
            if let Some(description) = &tool.description {
                def.insert("description".to_owned(), Value::String(description.clone()));
            }
            def.insert("input_schema".to_owned(), tool.parameters.clone());
            Value::Object(def)
        })
        .collect();
    let mut tool_choice = request.tool_choice.as_ref().map(|choice| match choice {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
    });
    if let Some((name, schema)) = structured_output(request) {
        tools.push(json!({
            "name": name,
            "description": "Respond with a JSON object matching this tool's input schema.",
            "input_schema": schema,
        }));
        tool_choice = Some(json!({"type": "tool", "name": name}));
    }
    if !tools.is_empty() {
        body.insert("tools".to_owned(), Value::Array(tools));
        // A tool choice without tools means nothing, and the API rejects it.
        if let Some(choice) = tool_choice {
            body.insert("tool_choice".to_owned(), choice);
        }
    }
    // The recordings send `stream` either way (fx: messages-text-with-system.request.json has
    // `false`, stream-text-short.request.json `true`).
    body.insert("stream".to_owned(), Value::Bool(stream));
    // Last, so that a caller can override anything the translation chose and add what has
    // no core field (`thinking`, `metadata`, `top_k`, `output_config`, …).
    for (key, value) in &request.extra_body {
        body.insert(key.clone(), value.clone());
    }
    Ok(Value::Object(body))
}

/// The name of the tool that carries structured output for `request`, when it asks for any.
pub fn structured_tool(request: &ChatRequest) -> Option<String> {
    structured_output(request).map(|(name, _)| name)
}

fn structured_output(request: &ChatRequest) -> Option<(String, Value)> {
    match request.response_format.as_ref()? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some((JSON_TOOL.to_owned(), json!({"type": "object"}))),
        ResponseFormat::JsonSchema { name, schema, .. } => Some((tool_name(name), schema.clone())),
    }
}

/// `name` made a valid tool name (`^[a-zA-Z0-9_-]{1,64}$`): other characters become `_`.
fn tool_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        JSON_TOOL.to_owned()
    } else {
        cleaned
    }
}

/// An `f32` as the decimal a person wrote (`0.7`, not `0.699999988079071`).
fn float(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The top-level `system` value and the `messages` array.
fn messages(input: &[Message]) -> Result<(Option<Value>, Vec<Value>)> {
    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    // Whether the last message in `out` is a user message opened by tool results, which later
    // tool results (and a user message right after them) join.
    let mut open_results = false;
    for (i, message) in input.iter().enumerate() {
        match message.role {
            Role::System => {
                system.extend(message.content.iter().filter_map(|part| match part {
                    ContentPart::Text { text } if !text.is_empty() => Some(text.clone()),
                    _ => None,
                }));
            }
            Role::Tool => {
                if !message
                    .content
                    .iter()
                    .any(|p| matches!(p, ContentPart::ToolResult(_)))
                {
                    return Err(Error::validation(
                        format!("messages[{i}]"),
                        "a tool message needs a tool result part (with the call id it answers)",
                    ));
                }
                let blocks = blocks(&message.content, i)?;
                if open_results && let Some(Value::Array(content)) = last_content(&mut out) {
                    content.extend(blocks);
                } else {
                    out.push(json!({"role": "user", "content": blocks}));
                }
                open_results = true;
            }
            Role::User => {
                let blocks = blocks(&message.content, i)?;
                if open_results && let Some(Value::Array(content)) = last_content(&mut out) {
                    // Tool results first, then what the user adds, in one turn (fx:
                    // messages-tool-result-followup.request.json).
                    content.extend(blocks);
                } else {
                    out.push(json!({"role": "user", "content": blocks}));
                }
                open_results = message
                    .content
                    .iter()
                    .all(|p| matches!(p, ContentPart::ToolResult(_)))
                    && !message.content.is_empty();
            }
            Role::Assistant => {
                out.push(json!({"role": "assistant", "content": blocks(&message.content, i)?}));
                open_results = false;
            }
        }
    }
    let system = match system.len() {
        0 => None,
        // One text goes as a string, as recorded (fx: messages-text-with-system.request.json).
        1 => system.pop().map(Value::String),
        _ => Some(Value::Array(
            system
                .into_iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect(),
        )),
    };
    Ok((system, out))
}

fn last_content(out: &mut [Value]) -> Option<&mut Value> {
    out.last_mut().and_then(|m| m.get_mut("content"))
}

/// A message's parts as Anthropic content blocks, in order.
fn blocks(parts: &[ContentPart], index: usize) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            // The API rejects empty text blocks; whitespace is accepted
            // (fx: llm-anthropic/stream-after-tool-results.request.json sends " ").
            ContentPart::Text { text } | ContentPart::Refusal { text } => {
                if !text.is_empty() {
                    out.push(json!({"type": "text", "text": text}));
                }
            }
            ContentPart::Image { source, .. } => out.push(image_block(source)),
            ContentPart::ToolCall(call) => out.push(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_input(&call.arguments, index)?,
            })),
            // `{type, tool_use_id, content, is_error}` (fx:
            // messages-tool-result-followup.request.json).
            ContentPart::ToolResult(result) => out.push(json!({
                "type": "tool_result",
                "tool_use_id": result.call_id,
                "content": result.content,
                "is_error": result.is_error,
            })),
            ContentPart::Reasoning(reasoning) => {
                if let Some(block) = reasoning_block(reasoning) {
                    out.push(block);
                }
            }
        }
    }
    Ok(out)
}

/// A reasoning part as Anthropic sent it: signature and redacted data unchanged
/// (fx: messages-thinking-tool-use.response.json, stream-redacted-thinking.response.sse).
fn reasoning_block(reasoning: &Reasoning) -> Option<Value> {
    if let Some(data) = &reasoning.redacted {
        return Some(json!({"type": "redacted_thinking", "data": data}));
    }
    // Unsigned reasoning (another provider's, or a stream cut before the signature) cannot be
    // verified by Anthropic and would be rejected; it is the one thing not sent back.
    let signature = reasoning.signature.as_ref()?;
    Some(json!({"type": "thinking", "thinking": reasoning.text, "signature": signature}))
}

/// Images: `{"type":"base64",media_type,data}` (fx: llm-anthropic/stream-vision-base64-image.request.json)
/// or `{"type":"url",url}` (fx: messages-vision-image-url.request.json). A `data:` URL is sent
/// as base64, since the URL source takes only fetchable URLs.
fn image_block(source: &ImageSource) -> Value {
    let source = match source {
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Url { url } => match url
            .strip_prefix("data:")
            .and_then(|rest| rest.split_once(";base64,"))
        {
            Some((media_type, data)) => {
                json!({"type": "base64", "media_type": media_type, "data": data})
            }
            None => json!({"type": "url", "url": url}),
        },
    };
    json!({"type": "image", "source": source})
}

/// Tool-call arguments as the object `input` must be. Arguments kept verbatim as a string
/// (invalid JSON from a cut-off stream) go back when they parse to an object; otherwise the
/// request cannot be expressed.
fn tool_input(arguments: &Value, index: usize) -> Result<Value> {
    match arguments {
        Value::Object(_) => Ok(arguments.clone()),
        Value::Null => Ok(Value::Object(Map::new())),
        Value::String(raw) => match ToolCall::parse_arguments(raw) {
            object @ Value::Object(_) => Ok(object),
            _ => Err(not_an_object(index)),
        },
        _ => Err(not_an_object(index)),
    }
}

fn not_an_object(index: usize) -> Error {
    Error::validation(
        format!("messages[{index}]"),
        "Anthropic needs tool-call arguments to be a JSON object",
    )
}

// ---------------------------------------------------------------------------------------------
// Response translation.

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Option<Vec<Value>>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Anthropic's usage. In streams, `message_start` carries the input side and `message_delta`
/// the cumulative output, newer ones repeating the input and cache fields
/// (fx: stream-text-short.response.sse), so fields present later replace earlier ones.
#[derive(Debug, Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    fn merge(&mut self, later: WireUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    /// In the core's convention: input includes the cache reads and writes
    /// (fx: rust-genai/stream-usage-cache-read.sse reports 9 uncached + 4202 cached).
    fn to_usage(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(write),
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
        }
    }
}

/// Anthropic's `stop_reason` normalized (see the module docs); `None` for a value Anthropic
/// does not document (it is still kept verbatim in [`ChatResponse::provider_finish_reason`]).
/// [anthropic-sdk-python src/anthropic/types/stop_reason.py]
pub fn finish_reason(raw: &str) -> Option<FinishReason> {
    match raw {
        "end_turn" | "stop_sequence" | "pause_turn" => Some(FinishReason::Stop),
        "max_tokens" | "model_context_window_exceeded" => Some(FinishReason::Length),
        "tool_use" => Some(FinishReason::ToolCalls),
        "refusal" => Some(FinishReason::ContentFilter),
        _ => None,
    }
}

/// The finish reason, with a forced structured-output tool call counting as a plain stop.
fn finish(raw: &str, structured: bool) -> Option<FinishReason> {
    match finish_reason(raw) {
        Some(FinishReason::ToolCalls) if structured => Some(FinishReason::Stop),
        other => other,
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

fn text_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Translates a Messages response body (HTTP 200) into a [`ChatResponse`].
///
/// `structured_tool` names the tool that carries structured output (see
/// [`structured_tool`]): its input becomes the reply's text.
pub fn parse_response(
    provider: &str,
    body: &Value,
    structured_tool: Option<&str>,
) -> Result<ChatResponse> {
    if body.get("type").and_then(Value::as_str) == Some("error") {
        // The executor turns a 200 carrying an error into an error already; this guards
        // callers that hand us a body directly.
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("the provider returned an error");
        return Err(Error::new(ErrorKind::Provider, message)
            .with_provider(provider)
            .with_raw_body(first_bytes(&body.to_string())));
    }
    let wire = WireMessage::deserialize(body).map_err(|e| {
        Error::decode(
            format!("not a Messages response: {e}"),
            first_bytes(&body.to_string()),
        )
        .with_provider(provider)
    })?;
    let mut response = ChatResponse::new(provider, wire.model.unwrap_or_default());
    response.id = wire.id.unwrap_or_default();
    let mut structured = false;
    let mut unhandled = Vec::new();
    for block in wire.content.unwrap_or_default() {
        match text_of(&block, "type") {
            "text" => {
                let text = text_of(&block, "text");
                if !text.is_empty() {
                    response.content.push(ContentPart::text(text));
                }
            }
            // fx: messages-thinking-tool-use.response.json.
            "thinking" => response.content.push(ContentPart::Reasoning(Reasoning {
                text: text_of(&block, "thinking").to_owned(),
                signature: Some(text_of(&block, "signature"))
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                redacted: None,
            })),
            "redacted_thinking" => response.content.push(ContentPart::Reasoning(Reasoning {
                text: String::new(),
                signature: None,
                redacted: Some(text_of(&block, "data").to_owned()),
            })),
            // `input` is an object, not a string (fx: messages-parallel-tool-use.response.json).
            "tool_use" => {
                let name = text_of(&block, "name");
                let input = block
                    .get("input")
                    .cloned()
                    .filter(|v| !v.is_null())
                    .unwrap_or_else(|| Value::Object(Map::new()));
                if structured_tool == Some(name) {
                    structured = true;
                    response.content.push(ContentPart::text(input.to_string()));
                } else {
                    response.content.push(ContentPart::ToolCall(ToolCall::new(
                        text_of(&block, "id"),
                        name,
                        input,
                    )));
                }
            }
            // Server-tool blocks and future kinds have no core part; they are kept, not lost.
            _ => unhandled.push(block),
        }
    }
    if !unhandled.is_empty() {
        response
            .metadata
            .insert("unhandled_content".to_owned(), Value::Array(unhandled));
    }
    response.finish_reason = wire
        .stop_reason
        .as_deref()
        .and_then(|raw| finish(raw, structured));
    response.provider_finish_reason = wire.stop_reason;
    if let Some(sequence) = wire.stop_sequence {
        response
            .metadata
            .insert("stop_sequence".to_owned(), Value::String(sequence));
    }
    if let Some(usage) = wire.usage {
        response.usage = usage.to_usage();
    }
    if let Some(tier) = body.pointer("/usage/service_tier").and_then(Value::as_str) {
        response
            .metadata
            .insert("service_tier".to_owned(), Value::String(tier.to_owned()));
    }
    Ok(response)
}

/// Translates a `GET /v1/models` body (`{"data": [{"id": …}, …]}`) into models.
pub fn parse_models(provider: &str, body: &Value) -> Result<Vec<Model>> {
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return Err(Error::decode(
            "the model list has no `data` array",
            first_bytes(&body.to_string()),
        )
        .with_provider(provider));
    };
    Ok(data
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str))
        .map(|id| Model::named(provider, id))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Stream translation.

/// What a content block of the stream is, by its `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// A tool call, with its position among the reply's tool calls.
    Tool(usize),
    /// The structured-output tool; `true` once any input fragment arrived.
    Structured(bool),
    /// Redacted thinking (whole at start) or a kind ExLLM does not know.
    Other,
}

/// Turns the events of a Messages SSE stream into stream events.
///
/// Feed it every event's `data:` with [`EventDecoder::data`], then call
/// [`EventDecoder::end`] when `message_stop` arrived or the body ended. Pure, so it is tested
/// without a network.
#[derive(Debug)]
pub struct EventDecoder {
    provider: String,
    structured_tool: Option<String>,
    acc: StreamAccumulator,
    blocks: BTreeMap<u64, Block>,
    next_tool: usize,
    usage: WireUsage,
    events: usize,
    stopped: bool,
    unhandled: Vec<Value>,
}

impl EventDecoder {
    /// A decoder for a reply from `provider` to a request for `model`.
    pub fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            structured_tool: None,
            acc: StreamAccumulator::new(provider, model),
            blocks: BTreeMap::new(),
            next_tool: 0,
            usage: WireUsage::default(),
            events: 0,
            stopped: false,
            unhandled: Vec::new(),
        }
    }

    /// Names the structured-output tool (see [`structured_tool`]): its input fragments
    /// stream as text.
    pub fn structured_tool(mut self, name: Option<String>) -> Self {
        self.structured_tool = name;
        self
    }

    /// Whether `message_stop` arrived: nothing more is expected.
    pub fn is_done(&self) -> bool {
        self.stopped
    }

    /// Attaches what was received so far to a mid-stream error.
    pub fn fail(&self, err: Error) -> Error {
        self.acc.fail(err.or_provider(&self.provider))
    }

    /// Decodes one event's `data:` payload. The payload is parsed as JSON whatever its
    /// spacing: Anthropic pads it (`{"type":"message_stop"    }`, fx: stream-text-short.response.sse).
    pub fn data(&mut self, data: &str) -> Result<Vec<StreamEvent>> {
        let data = data.trim();
        if data.is_empty() || self.stopped {
            return Ok(Vec::new());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            self.fail(Error::decode(
                format!("malformed stream event: {e}"),
                first_bytes(data),
            ))
        })?;
        self.events += 1;
        let mut events = Vec::new();
        match text_of(&value, "type") {
            "message_start" => self.message_start(&value),
            "content_block_start" => self.block_start(&value, &mut events),
            "content_block_delta" => self.block_delta(&value, &mut events),
            "content_block_stop" => self.block_stop(&value, &mut events),
            "message_delta" => self.message_delta(&value, &mut events),
            "message_stop" => self.stopped = true,
            // The executor raises in-band errors itself (wire-formats.md, "Errors"); this keeps
            // one that slipped through from being lost.
            "error" => {
                let message = value
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the stream reported an error");
                return Err(self.fail(
                    Error::new(ErrorKind::Provider, message).with_raw_body(first_bytes(data)),
                ));
            }
            // A whole message where a stream was asked for: a server ignoring `stream`.
            "message" => self.whole_message(&value, &mut events)?,
            // `ping` is interleaved anywhere and says nothing (fx: stream-redacted-thinking.response.sse).
            _ => {}
        }
        Ok(events)
    }

    fn message_start(&mut self, value: &Value) {
        let Some(message) = value.get("message") else {
            return;
        };
        let resp = self.acc.response_mut();
        if let Some(id) = message.get("id").and_then(Value::as_str) {
            resp.id = id.to_owned();
        }
        if let Some(model) = message
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            resp.model = model.to_owned();
        }
        if let Some(tier) = message
            .pointer("/usage/service_tier")
            .and_then(Value::as_str)
        {
            resp.metadata
                .insert("service_tier".to_owned(), Value::String(tier.to_owned()));
        }
        if let Some(usage) = message
            .get("usage")
            .and_then(|u| WireUsage::deserialize(u).ok())
        {
            self.usage.merge(usage);
            // Kept in the response so that a cut-off stream still reports the input side; the
            // usage event comes with `message_delta`'s final counts.
            self.acc.response_mut().usage = self.usage.to_usage();
        }
    }

    fn block_start(&mut self, value: &Value, events: &mut Vec<StreamEvent>) {
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(block) = value.get("content_block") else {
            return;
        };
        let kind = match text_of(block, "type") {
            "text" => {
                let text = text_of(block, "text");
                if !text.is_empty() {
                    events.push(self.acc.text(text));
                }
                Block::Text
            }
            // Starts as `{"type":"thinking","thinking":"","signature":""}`
            // (fx: stream-thinking-text.response.sse).
            "thinking" => {
                let thinking = text_of(block, "thinking");
                if !thinking.is_empty() {
                    events.push(self.acc.reasoning(thinking));
                }
                let signature = text_of(block, "signature");
                if !signature.is_empty() {
                    events.push(self.acc.reasoning_signature(signature));
                }
                Block::Thinking
            }
            // Arrives whole, with `data` (fx: stream-redacted-thinking.response.sse).
            "redacted_thinking" => {
                events.push(self.acc.redacted_reasoning(text_of(block, "data")));
                Block::Other
            }
            // `{type:"tool_use",id,name,input:{}}`, newer ones with `caller`
            // (fx: llm-anthropic/stream-tool-use-no-args.response.sse).
            "tool_use" => {
                let name = text_of(block, "name");
                if self.structured_tool.as_deref() == Some(name) {
                    Block::Structured(false)
                } else {
                    let ordinal = self.next_tool;
                    self.next_tool += 1;
                    events.push(
                        self.acc
                            .tool_call_start(ordinal, text_of(block, "id"), name),
                    );
                    Block::Tool(ordinal)
                }
            }
            _ => {
                self.unhandled.push(block.clone());
                Block::Other
            }
        };
        self.blocks.insert(index, kind);
    }

    fn block_delta(&mut self, value: &Value, events: &mut Vec<StreamEvent>) {
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(delta) = value.get("delta") else {
            return;
        };
        let block = self.blocks.get(&index).copied();
        match text_of(delta, "type") {
            "text_delta" => {
                let text = text_of(delta, "text");
                if !text.is_empty() {
                    events.push(self.acc.text(text));
                }
            }
            "thinking_delta" => {
                // An empty piece precedes the signature (fx: llm-anthropic/stream-thinking.response.sse).
                let thinking = text_of(delta, "thinking");
                if !thinking.is_empty() {
                    events.push(self.acc.reasoning(thinking));
                }
            }
            "signature_delta" => {
                events.push(self.acc.reasoning_signature(text_of(delta, "signature")));
            }
            // Fragments of the tool input, the first often `""`
            // (fx: stream-tool-use-input-json-delta.sse).
            "input_json_delta" => {
                let fragment = text_of(delta, "partial_json");
                match block {
                    Some(Block::Structured(_)) => {
                        if !fragment.is_empty() {
                            self.blocks.insert(index, Block::Structured(true));
                            events.push(self.acc.text(fragment));
                        }
                    }
                    Some(Block::Tool(ordinal)) => {
                        if !fragment.is_empty() {
                            events.push(self.acc.tool_call_delta(ordinal, fragment));
                        }
                    }
                    // A fragment for a block that never started: kept as a call rather than
                    // dropped (the accumulator opens one with an empty id and name).
                    _ => {
                        let ordinal = self.next_tool;
                        self.next_tool += 1;
                        self.blocks.insert(index, Block::Tool(ordinal));
                        events.push(self.acc.tool_call_delta(ordinal, fragment));
                    }
                }
            }
            _ => {}
        }
    }

    fn block_stop(&mut self, value: &Value, events: &mut Vec<StreamEvent>) {
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        match self.blocks.get(&index).copied() {
            Some(Block::Tool(ordinal)) => events.extend(self.acc.tool_call_end(ordinal)),
            // Structured output with no arguments sends only `""`: that is `{}`, as for any
            // tool (wire-formats.md, "Delta types").
            Some(Block::Structured(false)) => {
                self.blocks.insert(index, Block::Structured(true));
                events.push(self.acc.text("{}"));
            }
            _ => {}
        }
    }

    fn message_delta(&mut self, value: &Value, events: &mut Vec<StreamEvent>) {
        if let Some(raw) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
            let structured = self
                .blocks
                .values()
                .any(|b| matches!(b, Block::Structured(_)));
            self.acc.finish_reason(finish(raw, structured), Some(raw));
        }
        if let Some(sequence) = value
            .pointer("/delta/stop_sequence")
            .and_then(Value::as_str)
        {
            self.acc.response_mut().metadata.insert(
                "stop_sequence".to_owned(),
                Value::String(sequence.to_owned()),
            );
        }
        if let Some(usage) = value
            .get("usage")
            .and_then(|u| WireUsage::deserialize(u).ok())
        {
            self.usage.merge(usage);
            events.push(self.acc.usage(self.usage.to_usage()));
        }
    }

    fn whole_message(&mut self, value: &Value, events: &mut Vec<StreamEvent>) -> Result<()> {
        let response = parse_response(&self.provider, value, self.structured_tool.as_deref())
            .map_err(|err| self.fail(err))?;
        let resp = self.acc.response_mut();
        resp.id = response.id;
        if !response.model.is_empty() {
            resp.model = response.model;
        }
        resp.metadata.extend(response.metadata);
        for part in response.content {
            match part {
                ContentPart::Text { text } => events.push(self.acc.text(&text)),
                ContentPart::Reasoning(r) => match r.redacted {
                    Some(data) => events.push(self.acc.redacted_reasoning(&data)),
                    None => {
                        events.push(self.acc.reasoning(&r.text));
                        if let Some(signature) = r.signature {
                            events.push(self.acc.reasoning_signature(&signature));
                        }
                    }
                },
                ContentPart::ToolCall(call) => {
                    let ordinal = self.next_tool;
                    self.next_tool += 1;
                    events.push(self.acc.tool_call_start(ordinal, &call.id, &call.name));
                    events.push(
                        self.acc
                            .tool_call_delta(ordinal, &call.arguments.to_string()),
                    );
                    events.extend(self.acc.tool_call_end(ordinal));
                }
                _ => {}
            }
        }
        events.push(self.acc.usage(response.usage));
        self.acc.finish_reason(
            response.finish_reason,
            response.provider_finish_reason.as_deref(),
        );
        self.stopped = true;
        Ok(())
    }

    /// The events that close the stream: the complete response after `message_stop`, or a
    /// [`ErrorKind::StreamTruncated`] error carrying what arrived when the body ended first.
    pub fn end(mut self) -> Result<Vec<StreamEvent>> {
        if !self.unhandled.is_empty() {
            let unhandled = std::mem::take(&mut self.unhandled);
            self.acc
                .response_mut()
                .metadata
                .insert("unhandled_content".to_owned(), Value::Array(unhandled));
        }
        if self.events == 0 {
            return Err(self
                .acc
                .truncated("the stream ended before any event arrived"));
        }
        // The stream ends at `message_stop`; there is no `[DONE]` (wire-formats.md, "SSE").
        if !self.stopped {
            return Err(self
                .acc
                .truncated("the stream ended without `message_stop`"));
        }
        let (events, _) = self.acc.finish();
        Ok(events)
    }
}

/// The shared stream pump drives this decoder.
impl crate::pump::FrameDecoder for EventDecoder {
    fn data(&mut self, data: &str) -> Result<Vec<StreamEvent>> {
        EventDecoder::data(self, data)
    }
    fn is_done(&self) -> bool {
        EventDecoder::is_done(self)
    }
    fn fail(&self, err: Error) -> Error {
        EventDecoder::fail(self, err)
    }
    fn end(self) -> Result<Vec<StreamEvent>> {
        EventDecoder::end(self)
    }
}
