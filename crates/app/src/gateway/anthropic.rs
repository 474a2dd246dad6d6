//! The Anthropic protocol: `POST /v1/messages`, in Anthropic's request, response, streaming and
//! error shapes, for any provider behind the gateway.
//!
//! The translation is kept in pure functions ([`parse_request`], [`render_message`],
//! [`SseEncoder`], [`error_body`]) so that it is tested without a server; the handler only adds
//! authorization, the call, headers and metrics.
//!
//! Wire shapes: `../shared/docs/wire-formats.md` and `../shared/fixtures/anthropic/`
//! (`messages-text.json`, `stream-text-short.response.sse`).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use exllm_core::{
    CallOptions, ChatInput, ChatRequest, ChatResponse, ChatStream, ContentPart, Decimal, ErrorKind,
    FinishReason, Message, Reasoning, Role, StreamEvent, ToolCall, ToolChoice, ToolDefinition,
    ToolResult, Usage,
};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use crate::gateway::GatewayError;
use crate::gateway::keys::Caller;
use crate::gateway::server::{GatewayOptions, RequestId, Shared};

/// The route this module serves, as metrics name it.
pub const ROUTE: &str = "/v1/messages";

/// How long a stream may stay silent before an `event: ping` keeps the connection alive
/// (Anthropic sends pings too: fx `stream-text-short.response.sse`), unless the server's
/// [`GatewayOptions`] say otherwise.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

/// The Anthropic-compatible routes.
pub fn routes() -> Router<Shared> {
    Router::new().route(ROUTE, post(messages))
}

/// A parsed `/v1/messages` request.
#[derive(Debug, Clone)]
pub struct MessagesRequest {
    /// The model as the client named it (an ExLLM address or an alias).
    pub model: String,
    /// The request in core form (its `model` is replaced by the facade).
    pub request: ChatRequest,
    /// Whether the client asked for an event stream.
    pub stream: bool,
}

/// Top-level fields Anthropic accepts; any other is refused as Anthropic refuses it.
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
];

/// Fields only an Anthropic upstream understands; they are passed through to it and dropped
/// for other providers, which have no equivalent.
const ANTHROPIC_ONLY_FIELDS: &[&str] = &["top_k", "thinking", "metadata", "service_tier"];

fn invalid(message: impl Into<String>) -> GatewayError {
    let mut err = GatewayError::new(400, message);
    err.code = Some("invalid_request_error".to_owned());
    err
}

fn not_found(message: impl Into<String>) -> GatewayError {
    let mut err = GatewayError::new(404, message);
    err.code = Some("not_found_error".to_owned());
    err
}

/// Parses an Anthropic Messages request body. `provider` is the provider the model resolves
/// to, when known: Anthropic-only fields (`thinking`, `top_k`, …) are forwarded only to it.
pub fn parse_request(
    body: &Value,
    provider: Option<&str>,
) -> Result<MessagesRequest, GatewayError> {
    let Some(object) = body.as_object() else {
        return Err(invalid("the request body must be a JSON object"));
    };
    if let Some(extra) = object.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!("{extra}: Extra inputs are not permitted")));
    }
    let model = match object.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err(invalid("model: Input should be a non-empty string")),
        None => return Err(invalid("model: Field required")),
    };
    let max_tokens = match object.get("max_tokens") {
        None | Some(Value::Null) => return Err(invalid("max_tokens: Field required")),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| invalid("max_tokens: Input should be a positive integer"))?,
    };

    let mut request = ChatRequest::new(model.clone());
    request.max_tokens = Some(max_tokens);
    request.temperature = optional_f32(object, "temperature")?;
    request.top_p = optional_f32(object, "top_p")?;
    request.stop = match object.get("stop_sequences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("stop_sequences: every item must be a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("stop_sequences: Input should be a list of strings")),
    };
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream: Input should be a boolean")),
    };

    if let Some(system) = object.get("system").filter(|v| !v.is_null()) {
        let parts = system_parts(system)?;
        if !parts.is_empty() {
            request.messages.push(Message::new(Role::System, parts));
        }
    }
    let Some(Value::Array(messages)) = object.get("messages") else {
        return Err(invalid("messages: Field required (a list of messages)"));
    };
    if messages.is_empty() {
        return Err(invalid("messages: at least one message is required"));
    }
    // Tool results name only the call id; Gemini and Ollama also need the tool's name, which
    // the earlier `tool_use` block gives.
    let mut tool_names: HashMap<String, String> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        request
            .messages
            .extend(parse_message(message, i, &mut tool_names)?);
    }

    if let Some(tools) = object.get("tools").filter(|v| !v.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(invalid("tools: Input should be a list"));
        };
        for (i, tool) in tools.iter().enumerate() {
            request.tools.push(parse_tool(tool, i)?);
        }
    }
    if let Some(choice) = object.get("tool_choice").filter(|v| !v.is_null()) {
        request.tool_choice = Some(parse_tool_choice(choice)?);
    }
    if provider == Some("anthropic") {
        for field in ANTHROPIC_ONLY_FIELDS {
            if let Some(value) = object.get(*field).filter(|v| !v.is_null()) {
                request
                    .extra_body
                    .insert((*field).to_owned(), value.clone());
            }
        }
    }
    Ok(MessagesRequest {
        model,
        request,
        stream,
    })
}

fn optional_f32(object: &Map<String, Value>, field: &str) -> Result<Option<f32>, GatewayError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        // Sampling parameters are small numbers; the narrowing is what every adapter sends.
        #[allow(clippy::cast_possible_truncation)]
        Some(v) => v
            .as_f64()
            .map(|x| Some(x as f32))
            .ok_or_else(|| invalid(format!("{field}: Input should be a number"))),
    }
}

fn system_parts(system: &Value) -> Result<Vec<ContentPart>, GatewayError> {
    match system {
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![ContentPart::text(text.clone())]),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match (block_type(block), block.get("text")) {
                ("text", Some(Value::String(text))) => Ok(ContentPart::text(text.clone())),
                _ => Err(invalid("system: only text blocks are supported")),
            })
            .collect(),
        _ => Err(invalid(
            "system: Input should be a string or a list of text blocks",
        )),
    }
}

fn block_type(block: &Value) -> &str {
    block.get("type").and_then(Value::as_str).unwrap_or("")
}

fn string_field<'a>(block: &'a Value, field: &str, at: &str) -> Result<&'a str, GatewayError> {
    block
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.{field}: Field required (a string)")))
}

/// One Anthropic message as core messages: tool results become one `tool` message (adapters
/// put them back where their protocol wants them), the rest of the turn follows it.
fn parse_message(
    message: &Value,
    i: usize,
    tool_names: &mut HashMap<String, String>,
) -> Result<Vec<Message>, GatewayError> {
    let at = format!("messages.{i}");
    let role = match message.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(invalid(format!(
                "{at}.role: Input should be 'user' or 'assistant', not '{other}'"
            )));
        }
        None => return Err(invalid(format!("{at}.role: Field required"))),
    };
    let blocks = match message.get("content") {
        Some(Value::String(text)) => {
            return Ok(vec![Message::new(
                role,
                vec![ContentPart::text(text.clone())],
            )]);
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(invalid(format!(
                "{at}.content: Input should be a string or a list of content blocks"
            )));
        }
    };
    let mut results = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match block_type(block) {
            "text" => parts.push(ContentPart::text(string_field(block, "text", &at)?)),
            "image" => parts.push(parse_image(block, &at)?),
            "tool_use" if role == Role::Assistant => {
                let id = string_field(block, "id", &at)?.to_owned();
                let name = string_field(block, "name", &at)?.to_owned();
                let input = match block.get("input") {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(v @ Value::Object(_)) => v.clone(),
                    Some(_) => {
                        return Err(invalid(format!("{at}.input: Input should be an object")));
                    }
                };
                tool_names.insert(id.clone(), name.clone());
                parts.push(ContentPart::ToolCall(ToolCall::new(id, name, input)));
            }
            "tool_result" if role == Role::User => {
                let call_id = string_field(block, "tool_use_id", &at)?.to_owned();
                let content = tool_result_text(block.get("content"), &at)?;
                let is_error = block
                    .get("is_error")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                results.push(ContentPart::ToolResult(ToolResult {
                    name: tool_names.get(&call_id).cloned(),
                    call_id,
                    content,
                    is_error,
                }));
            }
            "thinking" if role == Role::Assistant => {
                parts.push(ContentPart::Reasoning(Reasoning {
                    text: string_field(block, "thinking", &at)?.to_owned(),
                    signature: block
                        .get("signature")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    redacted: None,
                }));
            }
            "redacted_thinking" if role == Role::Assistant => {
                parts.push(ContentPart::Reasoning(Reasoning {
                    text: String::new(),
                    signature: None,
                    redacted: Some(string_field(block, "data", &at)?.to_owned()),
                }));
            }
            "tool_use" | "tool_result" | "thinking" | "redacted_thinking" => {
                return Err(invalid(format!(
                    "{at}: a `{}` block is not allowed in a {} message",
                    block_type(block),
                    role.as_str()
                )));
            }
            other => {
                return Err(invalid(format!(
                    "{at}: content blocks of type `{other}` are not supported by the gateway"
                )));
            }
        }
    }
    let mut out = Vec::with_capacity(2);
    if !results.is_empty() {
        out.push(Message::new(Role::Tool, results));
    }
    if !parts.is_empty() || out.is_empty() {
        out.push(Message::new(role, parts));
    }
    Ok(out)
}

fn parse_image(block: &Value, at: &str) -> Result<ContentPart, GatewayError> {
    let Some(source) = block.get("source") else {
        return Err(invalid(format!("{at}.source: Field required")));
    };
    let at = format!("{at}.source");
    match block_type(source) {
        "base64" => Ok(ContentPart::image_base64(
            string_field(source, "media_type", &at)?,
            string_field(source, "data", &at)?,
        )),
        "url" => Ok(ContentPart::image_url(string_field(source, "url", &at)?)),
        other => Err(invalid(format!(
            "{at}.type: image sources of type `{other}` are not supported (use `base64` or `url`)"
        ))),
    }
}

/// A tool result's content as text: a string, or text blocks joined by newlines.
fn tool_result_text(content: Option<&Value>, at: &str) -> Result<String, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (k, block) in blocks.iter().enumerate() {
                match block_type(block) {
                    "text" => {
                        texts.push(string_field(block, "text", &format!("{at}.content.{k}"))?)
                    }
                    other => {
                        return Err(invalid(format!(
                            "{at}.content.{k}: tool results with `{other}` blocks are not supported by the gateway (text only)"
                        )));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(invalid(format!(
            "{at}.content: Input should be a string or a list of content blocks"
        ))),
    }
}

fn parse_tool(tool: &Value, i: usize) -> Result<ToolDefinition, GatewayError> {
    let at = format!("tools.{i}");
    match tool.get("type").and_then(Value::as_str) {
        None | Some("custom") => {}
        Some(other) => {
            return Err(invalid(format!(
                "{at}.type: server tools (`{other}`) are not supported by the gateway"
            )));
        }
    }
    let name = string_field(tool, "name", &at)?.to_owned();
    let parameters = match tool.get("input_schema") {
        Some(schema @ Value::Object(_)) => schema.clone(),
        _ => {
            return Err(invalid(format!(
                "{at}.input_schema: Field required (an object)"
            )));
        }
    };
    Ok(ToolDefinition {
        name,
        description: tool
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters,
        strict: tool.get("strict").and_then(Value::as_bool),
    })
}

fn parse_tool_choice(choice: &Value) -> Result<ToolChoice, GatewayError> {
    match block_type(choice) {
        "auto" => Ok(ToolChoice::Auto),
        "any" => Ok(ToolChoice::Required),
        "none" => Ok(ToolChoice::None),
        "tool" => Ok(ToolChoice::Tool(
            string_field(choice, "name", "tool_choice")?.to_owned(),
        )),
        other => Err(invalid(format!(
            "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none', not '{other}'"
        ))),
    }
}

/// Anthropic stop reasons a provider may report verbatim.
const ANTHROPIC_STOP_REASONS: &[&str] = &[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
];

/// The Anthropic `stop_reason` of a response: an Anthropic upstream's own value is kept, any
/// other provider's is mapped from the core finish reason.
pub fn stop_reason(response: &ChatResponse) -> &'static str {
    if let Some(raw) = response.provider_finish_reason.as_deref()
        && let Some(known) = ANTHROPIC_STOP_REASONS.iter().find(|r| **r == raw)
    {
        return known;
    }
    match response.finish_reason {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls) => "tool_use",
        Some(FinishReason::ContentFilter) => "refusal",
        _ if !response.tool_calls().is_empty() => "tool_use",
        _ => "end_turn",
    }
}

/// Usage in Anthropic's convention: `input_tokens` excludes cache reads and writes, which are
/// reported beside it.
pub fn usage_json(usage: &Usage) -> Value {
    let uncached = usage
        .input_tokens
        .saturating_sub(usage.cached_input_tokens)
        .saturating_sub(usage.cache_write_tokens);
    json!({
        "input_tokens": uncached,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    })
}

/// A tool call's arguments as the `input` object Anthropic requires. Arguments a model
/// produced as invalid JSON (kept by core as a string) are wrapped rather than dropped.
fn tool_input(arguments: &Value) -> Value {
    match arguments {
        Value::Object(_) => arguments.clone(),
        Value::Null => Value::Object(Map::new()),
        other => json!({ "arguments": other }),
    }
}

/// The content blocks of a response, in order.
fn content_blocks(response: &ChatResponse) -> Vec<Value> {
    let mut blocks = Vec::with_capacity(response.content.len());
    for part in &response.content {
        match part {
            ContentPart::Text { text } | ContentPart::Refusal { text } if !text.is_empty() => {
                blocks.push(json!({"type": "text", "text": text}));
            }
            ContentPart::ToolCall(call) => blocks.push(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_input(&call.arguments),
            })),
            ContentPart::Reasoning(r) => match &r.redacted {
                Some(data) => blocks.push(json!({"type": "redacted_thinking", "data": data})),
                None => blocks.push(json!({
                    "type": "thinking",
                    "thinking": r.text,
                    "signature": r.signature.clone().unwrap_or_default(),
                })),
            },
            _ => {}
        }
    }
    blocks
}

/// A complete response as an Anthropic `message` object. `id` is used when the provider gave
/// none; `model` when it reported none.
pub fn render_message(response: &ChatResponse, id: &str, model: &str) -> Value {
    json!({
        "id": if response.id.is_empty() { id } else { response.id.as_str() },
        "type": "message",
        "role": "assistant",
        "model": if response.model.is_empty() { model } else { response.model.as_str() },
        "content": content_blocks(response),
        "stop_reason": stop_reason(response),
        "stop_sequence": Value::Null,
        "usage": usage_json(&response.usage),
    })
}

/// The Anthropic error `type` for a gateway error.
pub fn error_type(err: &GatewayError) -> &'static str {
    const TYPES: &[&str] = &[
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
    ];
    if let Some(code) = err.code.as_deref()
        && let Some(known) = TYPES.iter().find(|t| **t == code)
    {
        return known;
    }
    match err.status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The Anthropic error body: `{"type":"error","error":{"type","message"}}`.
pub fn error_body(err: &GatewayError) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type(err), "message": err.message},
    })
}

/// Which kind of content block is open in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text,
    /// A thinking block, and whether its signature was sent (which ends it: more reasoning
    /// after the signature is a new block, as the core accumulator assembles it).
    Thinking {
        signed: bool,
    },
    /// A tool call, by its core index.
    ToolUse(usize),
    /// A redacted thinking block (open only while it is being written).
    Redacted,
}

/// Turns core stream events into Anthropic server-sent events.
///
/// Blocks are numbered in order of appearance; a block is closed when content of another kind
/// (or another tool call) begins, as Anthropic never interleaves blocks.
#[derive(Debug)]
pub struct SseEncoder {
    id: String,
    model: String,
    next_index: usize,
    open: Option<(OpenBlock, usize)>,
    /// Tool calls (by core index) whose block was already opened.
    started_calls: Vec<usize>,
    usage: Usage,
}

/// One server-sent event with Anthropic's `event:` name.
pub fn sse_event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The keep-alive event Anthropic sends during silences.
pub fn ping_event() -> String {
    sse_event("ping", &json!({"type": "ping"}))
}

/// The event that ends a stream whose upstream failed after the first byte.
pub fn error_event(err: &GatewayError) -> String {
    sse_event("error", &error_body(err))
}

impl SseEncoder {
    /// An encoder for message `id` answered by `model`.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            next_index: 0,
            open: None,
            started_calls: Vec::new(),
            usage: Usage::default(),
        }
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// `message_start`, with the usage known before any content (none for most providers).
    pub fn start(&mut self, usage: Option<Usage>) -> String {
        if let Some(usage) = usage {
            self.usage = usage;
        }
        sse_event(
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": Value::Null,
                    "stop_sequence": Value::Null,
                    "usage": usage_json(&self.usage),
                },
            }),
        )
    }

    fn close(&mut self, out: &mut Vec<String>) {
        if let Some((_, index)) = self.open.take() {
            out.push(sse_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open(&mut self, kind: OpenBlock, block: Value, out: &mut Vec<String>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((kind, index));
        out.push(sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn delta(index: usize, delta: Value) -> String {
        sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    }

    fn text(&mut self, text: &str, out: &mut Vec<String>) {
        if text.is_empty() {
            return;
        }
        let index = match self.open {
            Some((OpenBlock::Text, index)) => index,
            _ => self.open(OpenBlock::Text, json!({"type": "text", "text": ""}), out),
        };
        out.push(Self::delta(
            index,
            json!({"type": "text_delta", "text": text}),
        ));
    }

    /// The open, unsigned thinking block, opening one if there is none.
    fn thinking_block(&mut self, out: &mut Vec<String>) -> usize {
        match self.open {
            Some((OpenBlock::Thinking { signed: false }, index)) => index,
            _ => self.open(
                OpenBlock::Thinking { signed: false },
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            ),
        }
    }

    fn thinking(&mut self, text: &str, out: &mut Vec<String>) {
        if text.is_empty() {
            return;
        }
        let index = self.thinking_block(out);
        out.push(Self::delta(
            index,
            json!({"type": "thinking_delta", "thinking": text}),
        ));
    }

    /// The signature of the open thinking block, sent before the block closes, as Anthropic
    /// does. A signature with no unsigned thinking block open is a block of its own (a signed
    /// block whose thinking is empty), as in the final response.
    fn signature(&mut self, signature: &str, out: &mut Vec<String>) {
        let index = self.thinking_block(out);
        self.open = Some((OpenBlock::Thinking { signed: true }, index));
        out.push(Self::delta(
            index,
            json!({"type": "signature_delta", "signature": signature}),
        ));
    }

    /// A redacted thinking block: it arrives whole, so it opens and closes at once.
    fn redacted(&mut self, data: &str, out: &mut Vec<String>) {
        self.open(
            OpenBlock::Redacted,
            json!({"type": "redacted_thinking", "data": data}),
            out,
        );
        self.close(out);
    }

    fn tool_start(
        &mut self,
        core_index: usize,
        id: &str,
        name: &str,
        out: &mut Vec<String>,
    ) -> usize {
        self.started_calls.push(core_index);
        self.open(
            OpenBlock::ToolUse(core_index),
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            out,
        )
    }

    /// The events for one core stream event (none for some).
    pub fn event(&mut self, event: &StreamEvent) -> Vec<String> {
        let mut out = Vec::new();
        match event {
            StreamEvent::TextDelta(text) | StreamEvent::RefusalDelta(text) => {
                self.text(text, &mut out)
            }
            StreamEvent::ReasoningDelta(text) => self.thinking(text, &mut out),
            StreamEvent::ReasoningSignature(signature) => self.signature(signature, &mut out),
            StreamEvent::RedactedReasoning(data) => self.redacted(data, &mut out),
            StreamEvent::ToolCallStart { index, id, name }
                if !self.started_calls.contains(index) =>
            {
                self.tool_start(*index, id, name, &mut out);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                // A fragment of the open call streams as it comes. Providers stream calls one
                // after another; a fragment of a call whose block was already closed cannot be
                // placed (Anthropic blocks do not reopen) and is not sent.
                if let Some((OpenBlock::ToolUse(open), block)) = self.open
                    && open == *index
                    && !arguments.is_empty()
                {
                    out.push(Self::delta(
                        block,
                        json!({"type": "input_json_delta", "partial_json": arguments}),
                    ));
                }
            }
            StreamEvent::ToolCallEnd { index, call } => {
                if !self.started_calls.contains(index) {
                    // A call that arrived whole (no start event): one block with its input.
                    let block = self.tool_start(*index, &call.id, &call.name, &mut out);
                    let input = tool_input(&call.arguments).to_string();
                    out.push(Self::delta(
                        block,
                        json!({"type": "input_json_delta", "partial_json": input}),
                    ));
                    self.close(&mut out);
                } else if matches!(self.open, Some((OpenBlock::ToolUse(open), _)) if open == *index)
                {
                    self.close(&mut out);
                }
            }
            StreamEvent::Usage(usage) => self.usage = *usage,
            StreamEvent::Done(response) => self.finish(response, &mut out),
            // Events added to core later carry nothing Anthropic clients can show.
            _ => {}
        }
        out
    }

    fn finish(&mut self, response: &ChatResponse, out: &mut Vec<String>) {
        self.close(out);
        if !response.usage.is_empty() {
            self.usage = response.usage;
        }
        let usage = usage_json(&self.usage);
        out.push(sse_event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(response), "stop_sequence": Value::Null},
                "usage": usage,
            }),
        ));
        out.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    }
}

/// The request id when the server's layer set none (the handler mounted on its own): the
/// client's `x-request-id` when it sent a usable one, else a new one.
fn fallback_request_id(headers: &HeaderMap) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if let Some(id) = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
    {
        return id.to_owned();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("req_{nanos:x}{n:04x}")
}

/// Headers every model response carries.
fn common_headers(headers: &mut HeaderMap, request_id: &str, provider: &str, overhead: Duration) {
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-request-id", request_id);
    // Anthropic's SDKs read the id from `request-id`.
    set("request-id", request_id);
    if !provider.is_empty() {
        set("x-exllm-provider", provider);
    }
    set("x-exllm-overhead-us", &overhead.as_micros().to_string());
}

/// An error response in Anthropic's shape.
fn error_response(
    err: &GatewayError,
    request_id: &str,
    provider: &str,
    overhead: Duration,
) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(error_body(err))).into_response();
    common_headers(response.headers_mut(), request_id, provider, overhead);
    response
}

/// What one call knows while it runs, for the response headers and metrics.
struct Call {
    state: Shared,
    request_id: String,
    provider: String,
    started: Instant,
    /// The silence after which a stream sends a ping.
    ping: Duration,
    /// Time spent waiting on the upstream, subtracted to get the gateway's own overhead.
    upstream: Duration,
}

impl Call {
    fn overhead(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.upstream)
    }

    fn fail(&self, err: &GatewayError) -> Response {
        let overhead = self.overhead();
        tracing::info!(
            route = ROUTE,
            request_id = %self.request_id,
            provider = %self.provider,
            status = err.status,
            "request failed: {}",
            err.message
        );
        self.state.metrics.observe(
            ROUTE,
            &self.provider,
            err.status,
            self.started.elapsed(),
            overhead,
            &Usage::default(),
            None,
        );
        error_response(err, &self.request_id, &self.provider, overhead)
    }
}

async fn messages(
    State(state): State<Shared>,
    request_id: Option<Extension<RequestId>>,
    options: Option<Extension<GatewayOptions>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ping = options.map_or(PING_INTERVAL, |Extension(o)| o.ping_interval);
    let mut call = Call {
        state,
        ping,
        request_id: request_id.map_or_else(|| fallback_request_id(&headers), |Extension(id)| id.0),
        provider: String::new(),
        started: Instant::now(),
        upstream: Duration::ZERO,
    };
    match prepare(&mut call, &headers, body).await {
        Ok((parsed, caller)) if parsed.stream => stream(call, parsed, caller).await,
        Ok((parsed, caller)) => complete(call, parsed, caller).await,
        Err(err) => call.fail(&err),
    }
}

/// Parses, resolves and authorizes a request.
async fn prepare(
    call: &mut Call,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(MessagesRequest, Caller), GatewayError> {
    let body = body.map_err(|rejection| {
        let mut err = GatewayError::new(rejection.status().as_u16(), rejection.body_text());
        if err.status == 413 {
            err.code = Some("request_too_large".to_owned());
        }
        err
    })?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("the request body is not valid JSON: {e}")))?;
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let exllm = &call.state.wired.exllm;
    // A model that is neither an address nor an alias is unknown, as Anthropic says of a model
    // it does not serve (404), rather than a malformed request.
    let target = if model.is_empty() {
        None
    } else {
        Some(exllm.resolve(model).map_err(|_| {
            not_found(format!(
                "model: `{model}` is neither a `provider/model` address nor a configured alias"
            ))
        })?)
    };
    let mut parsed = parse_request(&value, target.as_ref().map(|t| t.provider.as_str()))?;
    let Some(target) = target else {
        return Err(invalid("model: Field required"));
    };
    // An unconfigured built-in provider is named with the variable that would configure it.
    call.state
        .wired
        .check_address(&parsed.model)
        .map_err(|e| not_found(format!("model: {}", e.message())))?;
    if exllm.provider(&target.provider).is_err() {
        return Err(not_found(format!(
            "model: no provider `{}` is configured for `{model}`",
            target.provider
        )));
    }
    // Set only once the provider is known to exist: metrics label by it, and a client must
    // not be able to invent labels.
    call.provider.clone_from(&target.provider);
    // The budget is checked against the estimated cost before the call and settled after it.
    let caller = call
        .state
        .keys
        .authorize_chat(headers, &parsed.model, &parsed.request, exllm)
        .await?;
    if let Some(key) = caller.extension() {
        parsed.request.extensions.insert(key);
    }
    Ok((parsed, caller))
}

async fn complete(mut call: Call, parsed: MessagesRequest, caller: Caller) -> Response {
    let upstream_started = Instant::now();
    let result = call
        .state
        .wired
        .exllm
        .chat_with(
            &parsed.model,
            ChatInput::Request(parsed.request),
            &CallOptions::default(),
        )
        .await;
    call.upstream = upstream_started.elapsed();
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            // A failed call costs nothing: the reservation is given back.
            call.state
                .keys
                .settle_usage(&caller, Decimal::ZERO, None)
                .await;
            return call.fail(&GatewayError::from(&err));
        }
    };
    if !response.provider.is_empty() {
        call.provider.clone_from(&response.provider);
    }
    let cost = response.cost.map(|c| c.total_usd);
    call.state
        .keys
        .settle_usage(&caller, cost.unwrap_or_default(), Some(&response.usage))
        .await;
    let fallback_id = format!("msg_{}", call.request_id);
    let body = render_message(&response, &fallback_id, &parsed.model);
    let overhead = call.overhead();
    call.state.metrics.observe(
        ROUTE,
        &call.provider,
        200,
        call.started.elapsed(),
        overhead,
        &response.usage,
        cost,
    );
    let mut http = (StatusCode::OK, axum::Json(body)).into_response();
    common_headers(
        http.headers_mut(),
        &call.request_id,
        &call.provider,
        overhead,
    );
    if let Some(cost) = cost
        && let Ok(value) = HeaderValue::from_str(&cost.to_string())
    {
        http.headers_mut()
            .insert(HeaderName::from_static("x-exllm-cost-usd"), value);
    }
    http
}

/// Records a stream's end in the metrics however it ends: finished, failed, or dropped when
/// the client went away (dropping the body drops the upstream stream, which cancels it).
struct StreamGuard {
    call: Call,
    /// The gateway's own time before the first event was sent on.
    overhead: Duration,
    status: u16,
    usage: Usage,
    cost: Option<Decimal>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let call = &self.call;
        call.state.metrics.stream_ended();
        call.state.metrics.observe(
            ROUTE,
            &call.provider,
            self.status,
            call.started.elapsed(),
            self.overhead,
            &self.usage,
            self.cost,
        );
    }
}

struct StreamBody {
    upstream: ChatStream,
    encoder: SseEncoder,
    pending: VecDeque<String>,
    finished: bool,
    guard: StreamGuard,
    caller: Caller,
}

async fn stream(mut call: Call, parsed: MessagesRequest, caller: Caller) -> Response {
    let upstream_started = Instant::now();
    let result = call
        .state
        .wired
        .exllm
        .stream_with(
            &parsed.model,
            ChatInput::Request(parsed.request),
            &CallOptions::default(),
        )
        .await;
    // No status is sent before the upstream's first event: an upstream that fails before its
    // first byte reaches the client as that failure's status, never as a 200.
    let first = match result {
        Ok(mut upstream) => match upstream.next().await {
            Some(Ok(event)) => Ok((upstream, event)),
            Some(Err(err)) => Err(GatewayError::from(&err)),
            None => {
                let mut err = GatewayError::new(502, "the upstream stream ended before any event");
                err.kind = Some(ErrorKind::StreamTruncated);
                Err(err)
            }
        },
        Err(err) => Err(GatewayError::from(&err)),
    };
    call.upstream = upstream_started.elapsed();
    let (upstream, first) = match first {
        Ok(ok) => ok,
        Err(err) => {
            call.state
                .keys
                .settle_usage(&caller, Decimal::ZERO, None)
                .await;
            return call.fail(&err);
        }
    };

    let id = format!("msg_{}", call.request_id);
    let mut encoder = SseEncoder::new(id, parsed.model.clone());
    let mut pending = VecDeque::new();
    let early_usage = match &first {
        StreamEvent::Usage(usage) => Some(*usage),
        _ => None,
    };
    pending.push_back(encoder.start(early_usage));
    pending.extend(encoder.event(&first));
    let finished = matches!(first, StreamEvent::Done(_));

    let overhead = call.overhead();
    let mut headers = HeaderMap::new();
    common_headers(&mut headers, &call.request_id, &call.provider, overhead);
    call.state.metrics.stream_started();
    let mut body = StreamBody {
        upstream,
        encoder,
        pending,
        finished: false,
        guard: StreamGuard {
            call,
            overhead,
            status: 200,
            usage: Usage::default(),
            cost: None,
        },
        caller,
    };
    if finished && let StreamEvent::Done(response) = first {
        settle(&mut body, &response).await;
    }
    body.finished = finished;

    let events = futures_util::stream::unfold(body, |mut body| async move {
        loop {
            if let Some(event) = body.pending.pop_front() {
                return Some((Ok::<_, Infallible>(Bytes::from(event)), body));
            }
            if body.finished {
                return None;
            }
            match tokio::time::timeout(body.guard.call.ping, body.upstream.next()).await {
                Err(_) => body.pending.push_back(ping_event()),
                Ok(Some(Ok(event))) => {
                    body.pending.extend(body.encoder.event(&event));
                    body.guard.usage = body.encoder.usage();
                    if let StreamEvent::Done(response) = event {
                        settle(&mut body, &response).await;
                        body.finished = true;
                    }
                }
                Ok(Some(Err(err))) => {
                    // What the upstream produced before failing is paid for, when priced.
                    if let Some(partial) = err.partial_response() {
                        settle(&mut body, partial).await;
                    } else {
                        body.caller_release().await;
                    }
                    let err = GatewayError::from(&err);
                    body.guard.status = err.status;
                    if let Some(partial) = body.upstream_partial_usage() {
                        body.guard.usage = partial;
                    }
                    body.pending.push_back(error_event(&err));
                    body.finished = true;
                }
                Ok(None) => {
                    let err = GatewayError::new(
                        502,
                        "the upstream stream ended before the reply was complete",
                    );
                    body.guard.status = err.status;
                    body.pending.push_back(error_event(&err));
                    body.finished = true;
                }
            }
        }
    });

    let mut response = Response::new(Body::from_stream(events));
    *response.headers_mut() = headers;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise buffer the events.
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

impl StreamBody {
    /// Gives back the budget reserved for a call that produced nothing billable.
    async fn caller_release(&mut self) {
        self.guard
            .call
            .state
            .keys
            .settle_usage(&self.caller, Decimal::ZERO, None)
            .await;
    }

    /// The usage seen before a mid-stream failure (what the encoder recorded).
    fn upstream_partial_usage(&self) -> Option<Usage> {
        let usage = self.encoder.usage();
        (!usage.is_empty()).then_some(usage)
    }
}

/// Records the final usage and cost of a finished stream and settles the caller's budget.
async fn settle(body: &mut StreamBody, response: &ChatResponse) {
    if !response.usage.is_empty() {
        body.guard.usage = response.usage;
    }
    if !response.provider.is_empty() {
        body.guard.call.provider.clone_from(&response.provider);
    }
    body.guard.cost = response.cost.map(|c| c.total_usd);
    body.guard
        .call
        .state
        .keys
        .settle_usage(
            &body.caller,
            body.guard.cost.unwrap_or_default(),
            Some(&body.guard.usage),
        )
        .await;
}
