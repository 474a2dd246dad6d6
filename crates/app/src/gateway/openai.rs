//! The OpenAI protocol: `POST /v1/chat/completions` (plain and streamed), `GET /v1/models` and
//! `POST /v1/embeddings`, for any provider behind ExLLM.
//!
//! This is the inverse of the OpenAI adapter in `exllm-adapters-providers`: wire request → core
//! [`ChatRequest`], core [`ChatResponse`] / [`StreamEvent`]s → wire response and SSE chunks.
//! Errors are rendered as `{"error":{"message","type","param","code"}}` with the status the
//! official SDKs map to their exception classes.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use exllm_core::{
    CallOptions, ChatInput, ChatRequest, ChatResponse, ChatStream, ContentPart, Decimal,
    EmbedRequest, ErrorKind, FinishReason, ImageSource, Message, ResponseFormat, Role, StreamEvent,
    ToolCall, ToolChoice, ToolDefinition, ToolResult, Usage,
};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::GatewayError;
use super::keys::Caller;
use super::server::{
    COST_USD, GatewayOptions, OVERHEAD_US, PROVIDER, RequestId, Shared, too_large,
};

const CHAT_ROUTE: &str = "/v1/chat/completions";
const EMBEDDINGS_ROUTE: &str = "/v1/embeddings";

/// `/v1/chat/completions`, `/v1/models`, `/v1/embeddings`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route(CHAT_ROUTE, post(chat_completions))
        .route("/v1/models", get(models))
        .route(EMBEDDINGS_ROUTE, post(embeddings))
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The OpenAI error `type` for a status (the SDKs choose their exception by status alone).
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 404 | 409 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

/// An error in OpenAI's shape.
pub fn error_response(err: &GatewayError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(error_body(err))).into_response()
}

/// `{"error":{"message","type","param","code"}}`.
pub fn error_body(err: &GatewayError) -> Value {
    json!({
        "error": {
            "message": err.message,
            "type": error_type(err.status),
            "param": null,
            "code": err.code,
        }
    })
}

fn bad_request(message: impl Into<String>) -> GatewayError {
    GatewayError {
        status: 400,
        kind: Some(ErrorKind::InvalidRequest),
        message: message.into(),
        code: Some("invalid_request_error".to_owned()),
    }
}

fn model_not_found(model: &str, why: &str) -> GatewayError {
    GatewayError {
        status: 404,
        kind: Some(ErrorKind::NotFound),
        message: format!("The model `{model}` does not exist or is not served here: {why}"),
        code: Some("model_not_found".to_owned()),
    }
}

/// The client-facing error for an ExLLM error.
fn gateway_error(err: &exllm_core::Error) -> GatewayError {
    let mut mapped = GatewayError::from(err);
    // An upstream 429 stays a 429 whatever its kind: OpenAI answers an exhausted quota with
    // 429 `insufficient_quota`, and the SDKs raise their rate-limit exception for it.
    if err.status() == Some(429) {
        mapped.status = 429;
    }
    mapped
}

/// An ExLLM error as the client sees it, keeping the upstream's `retry-after`.
fn exllm_error(err: &exllm_core::Error, provider: &str) -> Response {
    let mut response = error_response(&gateway_error(err));
    let headers = response.headers_mut();
    if let Some(wait) = err.retry_after() {
        let secs = wait.as_secs_f64().ceil().max(0.0);
        if let Ok(value) = HeaderValue::from_str(&format!("{secs}")) {
            headers.insert(header::RETRY_AFTER, value);
        }
    }
    set_provider(headers, provider);
    response
}

fn set_provider(headers: &mut HeaderMap, provider: &str) {
    if !provider.is_empty()
        && let Ok(value) = HeaderValue::from_str(provider)
    {
        headers.insert(PROVIDER, value);
    }
}

fn set_overhead(headers: &mut HeaderMap, overhead: Duration) {
    if let Ok(value) = HeaderValue::from_str(&overhead.as_micros().to_string()) {
        headers.insert(OVERHEAD_US, value);
    }
}

/// Maps a body-extraction failure: 413 over the limit, 400 otherwise.
fn body_error(rejection: &BytesRejection, path: &str, limit: usize) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(path, limit);
    }
    error_response(&bad_request(format!(
        "could not read the request body: {}",
        rejection.body_text()
    )))
}

/// The top-level fields of OpenAI's `CreateChatCompletionRequest` (openapi.yaml, with its
/// `allOf` parts): anything else is refused as OpenAI refuses it, so a misspelt parameter is
/// not silently ignored.
const CHAT_FIELDS: &[&str] = &[
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "metadata",
    "modalities",
    "model",
    "moderation",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

/// The top-level fields of OpenAI's `CreateEmbeddingRequest`.
const EMBEDDING_FIELDS: &[&str] = &["dimensions", "encoding_format", "input", "model", "user"];

/// Parses the JSON body, naming the problem when it is malformed, mistyped or carries a field
/// the OpenAI API does not have.
fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    known: &[&str],
) -> Result<T, GatewayError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| bad_request(format!("the request body is not valid JSON: {err}")))?;
    let Some(object) = value.as_object() else {
        return Err(bad_request("the request body must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(GatewayError {
            code: Some("unknown_parameter".to_owned()),
            ..bad_request(format!("Unrecognized request argument supplied: {unknown}"))
        });
    }
    serde_json::from_value(value)
        .map_err(|err| bad_request(format!("the request body is invalid: {err}")))
}

// ---------------------------------------------------------------------------------------------
// The wire request

/// A Chat Completions request. Fields this gateway does not use are accepted and ignored, as
/// OpenAI-compatible servers do, so that clients sending newer parameters keep working.
#[derive(Debug, Deserialize)]
struct ChatCompletionRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    tools: Option<Vec<WireTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    id: String,
    function: WireFunctionCall,
    /// Provider data clients echo back unchanged: Gemini's thought signature travels as
    /// `extra_content.google.thought_signature`, Google's own OpenAI-compatible convention.
    #[serde(default)]
    extra_content: Option<Value>,
}

/// The `extra_content` that carries a tool call's opaque signature to OpenAI clients.
fn signature_extra(signature: &str) -> Value {
    json!({"google": {"thought_signature": signature}})
}

#[derive(Debug, Deserialize)]
struct WireFunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Debug, Deserialize)]
struct WireTool {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

/// A parsed request: the core request, the model as the client named it, and the stream flags.
#[derive(Debug)]
struct Parsed {
    model: String,
    request: ChatRequest,
    stream: bool,
    include_usage: bool,
}

fn parse_chat(body: &[u8]) -> Result<Parsed, GatewayError> {
    let wire: ChatCompletionRequest = parse_json(body, CHAT_FIELDS)?;
    if wire.n.is_some_and(|n| n > 1) {
        return Err(GatewayError {
            code: Some("unsupported_value".to_owned()),
            ..bad_request("n > 1 is not supported by this gateway: send one request per choice")
        });
    }
    if wire.messages.is_empty() {
        return Err(bad_request("`messages` must contain at least one message"));
    }
    let mut request = ChatRequest::new(wire.model.clone());
    for (i, message) in wire.messages.into_iter().enumerate() {
        request.messages.push(
            to_message(message)
                .map_err(|e| bad_request(format!("messages[{i}]: {}", e.message)))?,
        );
    }
    request.temperature = wire.temperature;
    request.top_p = wire.top_p;
    request.seed = wire.seed;
    request.max_tokens = wire.max_completion_tokens.or(wire.max_tokens);
    request.stop = match wire.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    for (i, tool) in wire.tools.unwrap_or_default().into_iter().enumerate() {
        if tool.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(bad_request(format!("tools[{i}].type must be \"function\"")));
        }
        request.tools.push(ToolDefinition {
            name: tool.function.name,
            description: tool.function.description,
            parameters: tool
                .function
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: tool.function.strict,
        });
    }
    request.tool_choice = wire.tool_choice.map(to_tool_choice).transpose()?;
    request.response_format = wire.response_format.map(to_response_format).transpose()?;
    let stream = wire.stream.unwrap_or(false);
    let include_usage = stream
        && wire
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
    Ok(Parsed {
        model: wire.model,
        request,
        stream,
        include_usage,
    })
}

fn to_message(message: WireMessage) -> Result<Message, GatewayError> {
    let role = match message.role.as_str() {
        // `developer` is the newer name of `system` for reasoning models.
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(bad_request(format!(
                "role `{other}` is not supported (use system, developer, user, assistant or tool)"
            )));
        }
    };
    if role == Role::Tool {
        let call_id = message
            .tool_call_id
            .ok_or_else(|| bad_request("a tool message needs `tool_call_id`"))?;
        let content = match message.content {
            None => String::new(),
            Some(content) => content_text(content)?,
        };
        return Ok(Message::new(
            Role::Tool,
            vec![ContentPart::ToolResult(ToolResult {
                call_id,
                name: message.name,
                content,
                is_error: false,
            })],
        ));
    }
    let mut parts = match message.content {
        None => Vec::new(),
        Some(WireContent::Text(text)) => vec![ContentPart::text(text)],
        Some(WireContent::Parts(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                to_part(part).map_err(|e| bad_request(format!("content[{i}]: {}", e.message)))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if role == Role::Assistant {
        if let Some(text) = message.refusal.filter(|t| !t.is_empty()) {
            parts.push(ContentPart::Refusal { text });
        }
        for call in message.tool_calls.unwrap_or_default() {
            let mut tool_call = ToolCall::new(
                call.id,
                call.function.name,
                ToolCall::parse_arguments(&call.function.arguments),
            );
            tool_call.signature = call
                .extra_content
                .as_ref()
                .and_then(|e| e.pointer("/google/thought_signature"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            parts.push(ContentPart::ToolCall(tool_call));
        }
    }
    Ok(Message::new(role, parts))
}

/// The text of a content that may only hold text (tool results).
fn content_text(content: WireContent) -> Result<String, GatewayError> {
    match content {
        WireContent::Text(text) => Ok(text),
        WireContent::Parts(parts) => {
            let mut out = String::new();
            for part in parts {
                match to_part(part)? {
                    ContentPart::Text { text } => out.push_str(&text),
                    _ => return Err(bad_request("tool message content may only hold text parts")),
                }
            }
            Ok(out)
        }
    }
}

fn to_part(part: Value) -> Result<ContentPart, GatewayError> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => part
            .get("text")
            .and_then(Value::as_str)
            .map(ContentPart::text)
            .ok_or_else(|| bad_request("a text part needs a `text` string")),
        "refusal" => part
            .get("refusal")
            .and_then(Value::as_str)
            .map(|t| ContentPart::Refusal { text: t.to_owned() })
            .ok_or_else(|| bad_request("a refusal part needs a `refusal` string")),
        "image_url" => {
            let image = part.get("image_url");
            // Both `{"image_url":{"url":…}}` and the older `{"image_url":"…"}` are seen.
            let url = image
                .and_then(|i| i.get("url").and_then(Value::as_str).or_else(|| i.as_str()))
                .ok_or_else(|| bad_request("an image_url part needs `image_url.url`"))?;
            let detail = image
                .and_then(|i| i.get("detail"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(ContentPart::Image {
                source: image_source(url),
                detail,
            })
        }
        "" => Err(bad_request("a content part needs a `type`")),
        other => Err(bad_request(format!(
            "content part type `{other}` is not supported (text, image_url)"
        ))),
    }
}

/// A `data:` URL becomes inline base64 so that providers which cannot fetch URLs (Anthropic,
/// Gemini, Ollama) get the bytes; any other URL is passed on.
fn image_source(url: &str) -> ImageSource {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media_type) = meta.strip_suffix(";base64")
    {
        return ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        };
    }
    ImageSource::Url {
        url: url.to_owned(),
    }
}

fn to_tool_choice(value: Value) -> Result<ToolChoice, GatewayError> {
    match &value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(bad_request(format!(
                "tool_choice `{other}` is not one of auto, none, required"
            ))),
        },
        Value::Object(_) => value
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Tool(name.to_owned()))
            .ok_or_else(|| bad_request("tool_choice needs `function.name`")),
        _ => Err(bad_request("tool_choice must be a string or an object")),
    }
}

fn to_response_format(value: Value) -> Result<ResponseFormat, GatewayError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let spec = value
                .get("json_schema")
                .ok_or_else(|| bad_request("response_format json_schema needs `json_schema`"))?;
            Ok(ResponseFormat::JsonSchema {
                name: spec
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("response")
                    .to_owned(),
                schema: spec.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: spec.get("strict").and_then(Value::as_bool).unwrap_or(false),
            })
        }
        _ => Err(bad_request(
            "response_format.type must be text, json_object or json_schema",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The wire response

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens(),
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    })
}

fn finish_reason(response: &ChatResponse) -> &'static str {
    match response.finish_reason {
        Some(reason) => reason.as_str(),
        None if !response.tool_calls().is_empty() => FinishReason::ToolCalls.as_str(),
        None => FinishReason::Stop.as_str(),
    }
}

/// Tool-call arguments as OpenAI sends them: a JSON string (kept verbatim when the model
/// produced invalid JSON, which the core keeps as a string value).
fn arguments_string(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

fn completion_json(response: &ChatResponse, id: &str) -> Value {
    let mut text: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut tool_calls = Vec::new();
    for part in &response.content {
        match part {
            ContentPart::Text { text: t } => text.get_or_insert_with(String::new).push_str(t),
            ContentPart::Refusal { text: t } => {
                refusal.get_or_insert_with(String::new).push_str(t);
            }
            ContentPart::ToolCall(call) => {
                let mut wire = json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": arguments_string(&call.arguments)},
                });
                if let Some(signature) = &call.signature {
                    wire["extra_content"] = signature_extra(signature);
                }
                tool_calls.push(wire);
            }
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": text, "refusal": refusal});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": response.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(response),
        }],
        "usage": usage_json(&response.usage),
    });
    if let Some(fingerprint) = response.metadata.get("system_fingerprint") {
        body["system_fingerprint"] = fingerprint.clone();
    }
    body
}

fn is_cache_hit(response: &ChatResponse) -> bool {
    response.metadata.get("cache").and_then(Value::as_str) == Some("hit")
}

// ---------------------------------------------------------------------------------------------
// POST /v1/chat/completions

async fn chat_completions(
    State(state): State<Shared>,
    Extension(options): Extension<GatewayOptions>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_error(&rejection, CHAT_ROUTE, options.max_body_bytes),
    };
    let observe_error = |err: &GatewayError, provider: &str| {
        state.metrics.observe(
            CHAT_ROUTE,
            provider,
            err.status,
            started.elapsed(),
            started.elapsed(),
            &Usage::default(),
            None,
        );
    };
    let parsed = match parse_chat(&body) {
        Ok(parsed) => parsed,
        Err(err) => {
            observe_error(&err, "");
            return error_response(&err);
        }
    };
    let exllm = &state.wired.exllm;
    // Keys first: a caller without a valid key learns nothing about which models exist.
    let caller = match state
        .keys
        .authorize_chat(&headers, &parsed.model, &parsed.request, exllm)
        .await
    {
        Ok(caller) => caller,
        Err(err) => {
            observe_error(&err, "");
            return error_response(&err);
        }
    };
    let target = match exllm.resolve(&parsed.model) {
        Ok(target) => target,
        Err(err) => {
            let err = model_not_found(&parsed.model, err.message());
            state.keys.settle(&caller, Decimal::ZERO).await;
            observe_error(&err, "");
            return error_response(&err);
        }
    };
    if let Err(err) = exllm.provider(&target.provider) {
        let err = model_not_found(&parsed.model, err.message());
        state.keys.settle(&caller, Decimal::ZERO).await;
        observe_error(&err, "");
        return error_response(&err);
    }
    let provider = target.provider.clone();
    let address = target.to_string();
    let mut request = parsed.request;
    if let Some(key) = caller.extension() {
        request.extensions.insert(key);
    }
    let call = Call {
        state: state.clone(),
        caller,
        provider,
        started,
        request_id,
    };
    if parsed.stream {
        let before_upstream = started.elapsed();
        let result = exllm
            .stream_with(
                &address,
                ChatInput::Request(request),
                &CallOptions::default(),
            )
            .await;
        call.stream_response(
            result,
            target.model,
            parsed.include_usage,
            before_upstream,
            options,
        )
        .await
    } else {
        let before_upstream = started.elapsed();
        let upstream_started = Instant::now();
        let result = exllm
            .chat_with(
                &address,
                ChatInput::Request(request),
                &CallOptions::default(),
            )
            .await;
        let upstream = upstream_started.elapsed();
        call.complete_response(result, before_upstream, upstream)
            .await
    }
}

/// One authorized chat call, from the upstream's answer to the client's response.
struct Call {
    state: Shared,
    caller: Caller,
    provider: String,
    started: Instant,
    request_id: String,
}

impl Call {
    async fn complete_response(
        self,
        result: exllm_core::Result<ChatResponse>,
        before_upstream: Duration,
        upstream: Duration,
    ) -> Response {
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                self.state.keys.settle(&self.caller, Decimal::ZERO).await;
                let mapped = gateway_error(&err);
                self.state.metrics.observe(
                    CHAT_ROUTE,
                    &self.provider,
                    mapped.status,
                    self.started.elapsed(),
                    before_upstream,
                    &Usage::default(),
                    None,
                );
                return exllm_error(&err, &self.provider);
            }
        };
        let cost = response.cost.as_ref().map(|c| c.total_usd);
        self.state
            .keys
            .settle_usage(
                &self.caller,
                cost.unwrap_or_default(),
                Some(&response.usage),
            )
            .await;
        if is_cache_hit(&response) {
            self.state.metrics.cache_hit(&self.provider);
        }
        let id = if response.id.is_empty() {
            format!("chatcmpl-{}", self.request_id)
        } else {
            response.id.clone()
        };
        let body = completion_json(&response, &id);
        let overhead = self.started.elapsed().saturating_sub(upstream);
        self.state.metrics.observe(
            CHAT_ROUTE,
            &self.provider,
            200,
            self.started.elapsed(),
            overhead,
            &response.usage,
            cost,
        );
        let mut out = (StatusCode::OK, axum::Json(body)).into_response();
        let headers = out.headers_mut();
        set_provider(headers, &self.provider);
        set_overhead(headers, overhead);
        if let Some(cost) = cost
            && let Ok(value) = HeaderValue::from_str(&cost.to_string())
        {
            headers.insert(COST_USD, value);
        }
        out
    }

    /// Waits for the stream's first item before answering: an upstream failure before the
    /// first event becomes an HTTP error with the upstream's status, not a 200 with an error
    /// event (whatever middleware is configured: retries already wait for it, but without them
    /// the provider's stream may still fail on its first read).
    async fn stream_response(
        self,
        result: exllm_core::Result<ChatStream>,
        model: String,
        include_usage: bool,
        before_upstream: Duration,
        options: GatewayOptions,
    ) -> Response {
        let first = match result {
            Ok(mut events) => match events.next().await {
                Some(Ok(first)) => Ok((first, events)),
                Some(Err(err)) => Err(err),
                None => Err(exllm_core::Error::new(
                    ErrorKind::StreamTruncated,
                    "the upstream stream ended before its first event",
                )),
            },
            Err(err) => Err(err),
        };
        let (first, events) = match first {
            Ok(started) => started,
            Err(err) => {
                self.state.keys.settle(&self.caller, Decimal::ZERO).await;
                let mapped = gateway_error(&err);
                self.state.metrics.observe(
                    CHAT_ROUTE,
                    &self.provider,
                    mapped.status,
                    self.started.elapsed(),
                    before_upstream,
                    &Usage::default(),
                    None,
                );
                return exllm_error(&err, &self.provider);
            }
        };
        self.state.metrics.stream_started();
        let provider = self.provider.clone();
        let writer = ChunkWriter {
            id: format!("chatcmpl-{}", self.request_id),
            created: unix_now(),
            model,
            include_usage,
            tool_slots: BTreeMap::new(),
            sent_content: false,
        };
        let sse = SseState {
            events,
            first: Some(first),
            writer,
            ping: options.ping_interval,
            pending: VecDeque::new(),
            finished: false,
            guard: StreamGuard {
                call: Some(self),
                before_upstream,
                outcome: None,
            },
        };
        let mut pending = VecDeque::new();
        pending.push_back(sse.writer.role_chunk());
        let sse = SseState { pending, ..sse };
        let body = futures_util::stream::unfold(sse, |mut sse| async move {
            sse.next_frame()
                .await
                .map(|frame| (Ok::<_, Infallible>(frame), sse))
        });
        let mut response = Response::new(Body::from_stream(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells nginx-style proxies not to buffer the stream.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        set_provider(headers, &provider);
        set_overhead(headers, before_upstream);
        response
    }
}

/// Records a stream's end exactly once, however it ends: completed, failed, or dropped because
/// the client went away (then as 499, and the key's reservation is released).
struct StreamGuard {
    call: Option<Call>,
    before_upstream: Duration,
    /// The status, usage and cost to record; `None` until the stream ended on its own.
    outcome: Option<(u16, Usage, Option<Decimal>)>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let (status, usage, cost) = self.outcome.take().unwrap_or((499, Usage::default(), None));
        let metrics = &call.state.metrics;
        metrics.stream_ended();
        metrics.observe(
            CHAT_ROUTE,
            &call.provider,
            status,
            call.started.elapsed(),
            self.before_upstream,
            &usage,
            cost,
        );
        // Settling is async; the drop may happen outside a runtime only when the runtime is
        // itself shutting down, and then there is nothing left to settle for.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let usage = (!usage.is_empty()).then_some(usage);
                call.state
                    .keys
                    .settle_usage(&call.caller, cost.unwrap_or_default(), usage.as_ref())
                    .await;
            });
        }
    }
}

struct SseState {
    events: ChatStream,
    first: Option<StreamEvent>,
    writer: ChunkWriter,
    ping: Duration,
    pending: VecDeque<Bytes>,
    finished: bool,
    guard: StreamGuard,
}

impl SseState {
    /// The next frame to send; `None` ends the body.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            if self.finished {
                return None;
            }
            if let Some(first) = self.first.take() {
                self.handle(Ok(first));
                continue;
            }
            tokio::select! {
                item = self.events.next() => match item {
                    Some(item) => self.handle(item),
                    None => self.handle(Err(exllm_core::Error::new(
                        ErrorKind::StreamTruncated,
                        "the upstream stream ended without completing",
                    ))),
                },
                () = tokio::time::sleep(self.ping) => {
                    self.pending.push_back(Bytes::from_static(b": ping\n\n"));
                }
            }
        }
    }

    fn handle(&mut self, item: exllm_core::Result<StreamEvent>) {
        match item {
            Ok(StreamEvent::Done(response)) => {
                let frames = self.writer.finish(&response);
                self.pending.extend(frames);
                self.finished = true;
                if let Some(call) = &self.guard.call
                    && is_cache_hit(&response)
                {
                    call.state.metrics.cache_hit(&call.provider);
                }
                self.guard.outcome = Some((
                    200,
                    response.usage,
                    response.cost.as_ref().map(|c| c.total_usd),
                ));
            }
            Ok(event) => {
                let frames = self.writer.event(event);
                self.pending.extend(frames);
            }
            Err(err) => {
                // After the first byte the status is sent: the error travels in-band, as
                // OpenAI's own streams do, and the stream ends without `[DONE]`.
                let mapped = gateway_error(&err);
                self.pending.push_back(sse_frame(&error_body(&mapped)));
                self.finished = true;
                self.guard.outcome = Some((mapped.status, Usage::default(), None));
            }
        }
    }
}

fn sse_frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// Writes `chat.completion.chunk`s for stream events.
struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Core tool-call index → (OpenAI index, arguments sent). Core indexes are the provider's
    /// content positions (Anthropic counts text blocks too); OpenAI clients expect 0, 1, ….
    tool_slots: BTreeMap<usize, (usize, bool)>,
    /// Whether any text, refusal or tool call went out as a delta.
    sent_content: bool,
}

impl ChunkWriter {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        sse_frame(&chunk)
    }

    fn role_chunk(&self) -> Bytes {
        self.chunk(json!({"role": "assistant", "content": ""}), None)
    }

    fn slot(&mut self, index: usize) -> (usize, bool, bool) {
        let next = self.tool_slots.len();
        let mut opened = false;
        let entry = self.tool_slots.entry(index).or_insert_with(|| {
            opened = true;
            (next, false)
        });
        (entry.0, entry.1, opened)
    }

    fn event(&mut self, event: StreamEvent) -> Vec<Bytes> {
        let frames = self.event_frames(event);
        if !frames.is_empty() {
            self.sent_content = true;
        }
        frames
    }

    fn event_frames(&mut self, event: StreamEvent) -> Vec<Bytes> {
        match event {
            StreamEvent::TextDelta(text) if !text.is_empty() => {
                vec![self.chunk(json!({"content": text}), None)]
            }
            StreamEvent::RefusalDelta(text) if !text.is_empty() => {
                vec![self.chunk(json!({"refusal": text}), None)]
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let (slot, _, opened) = self.slot(index);
                if !opened {
                    return Vec::new();
                }
                vec![self.tool_start(slot, &id, &name)]
            }
            StreamEvent::ToolCallDelta { index, arguments } if !arguments.is_empty() => {
                let (slot, _, _) = self.slot(index);
                if let Some(entry) = self.tool_slots.get_mut(&index) {
                    entry.1 = true;
                }
                vec![self.tool_arguments(slot, &arguments)]
            }
            StreamEvent::ToolCallEnd { index, call } => {
                // Providers that send whole calls (Gemini, Ollama) produce only the end event:
                // the client still gets a start and the arguments.
                let (slot, arguments_sent, opened) = self.slot(index);
                let mut frames = Vec::new();
                if opened {
                    frames.push(self.tool_start(slot, &call.id, &call.name));
                }
                if !arguments_sent {
                    if let Some(entry) = self.tool_slots.get_mut(&index) {
                        entry.1 = true;
                    }
                    frames.push(self.tool_arguments(slot, &arguments_string(&call.arguments)));
                }
                if let Some(signature) = &call.signature {
                    frames.push(self.chunk(
                        json!({"tool_calls": [{"index": slot, "extra_content": signature_extra(signature)}]}),
                        None,
                    ));
                }
                frames
            }
            // Chat Completions has no place for reasoning signatures or redacted reasoning.
            StreamEvent::ReasoningSignature(_) | StreamEvent::RedactedReasoning(_) => Vec::new(),
            _ => Vec::new(),
        }
    }

    fn tool_start(&self, slot: usize, id: &str, name: &str) -> Bytes {
        self.chunk(
            json!({"tool_calls": [{
                "index": slot,
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }]}),
            None,
        )
    }

    fn tool_arguments(&self, slot: usize, arguments: &str) -> Bytes {
        self.chunk(
            json!({"tool_calls": [{"index": slot, "function": {"arguments": arguments}}]}),
            None,
        )
    }

    /// The last chunks: the finish reason, the usage chunk when asked for, `[DONE]`.
    fn finish(&mut self, response: &ChatResponse) -> Vec<Bytes> {
        let mut frames = Vec::new();
        // A reply that arrives as one final event (a cached reply replayed) still delivers its
        // content.
        if !self.sent_content {
            for part in &response.content {
                match part {
                    ContentPart::Text { text } if !text.is_empty() => {
                        frames.push(self.chunk(json!({"content": text}), None));
                    }
                    ContentPart::Refusal { text } if !text.is_empty() => {
                        frames.push(self.chunk(json!({"refusal": text}), None));
                    }
                    ContentPart::ToolCall(call) => {
                        let slot = self.tool_slots.len();
                        self.tool_slots.insert(usize::MAX - slot, (slot, true));
                        frames.push(self.tool_start(slot, &call.id, &call.name));
                        frames.push(self.tool_arguments(slot, &arguments_string(&call.arguments)));
                    }
                    _ => {}
                }
            }
        }
        frames.push(self.chunk(json!({}), Some(finish_reason(response))));
        if self.include_usage {
            let usage = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_json(&response.usage),
            });
            frames.push(sse_frame(&usage));
        }
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        frames
    }
}

// ---------------------------------------------------------------------------------------------
// GET /v1/models

async fn models(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(err) = state.keys.authorize(&headers, "").await {
        return error_response(&err);
    }
    let exllm = &state.wired.exllm;
    let models = match exllm.list_models(None).await {
        Ok(models) => models,
        Err(err) => return exllm_error(&err, ""),
    };
    let mut data: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "id": format!("{}/{}", m.provider, m.id),
                "object": "model",
                "created": 0,
                "owned_by": m.provider,
            })
        })
        .collect();
    for (alias, target) in &state.settings.aliases {
        let owner = target.split_once('/').map_or("", |(p, _)| p);
        data.push(json!({"id": alias, "object": "model", "created": 0, "owned_by": owner}));
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

// ---------------------------------------------------------------------------------------------
// POST /v1/embeddings

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: EmbeddingInput,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    // Token arrays are OpenAI-specific: matched only so that the error can name them.
    Tokens(#[allow(dead_code)] Vec<Value>),
}

async fn embeddings(
    State(state): State<Shared>,
    Extension(options): Extension<GatewayOptions>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_error(&rejection, EMBEDDINGS_ROUTE, options.max_body_bytes),
    };
    let wire: EmbeddingsRequest = match parse_json(&body, EMBEDDING_FIELDS) {
        Ok(wire) => wire,
        Err(err) => return error_response(&err),
    };
    let inputs = match wire.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
        EmbeddingInput::Tokens(_) => {
            return error_response(&bad_request(
                "`input` must be a string or an array of strings (token arrays are not supported)",
            ));
        }
    };
    let base64 = match wire.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return error_response(&bad_request(format!(
                "encoding_format `{other}` is not one of float, base64"
            )));
        }
    };
    let caller = match state.keys.authorize(&headers, &wire.model).await {
        Ok(caller) => caller,
        Err(err) => return error_response(&err),
    };
    let exllm = &state.wired.exllm;
    let target = match exllm.resolve(&wire.model) {
        Ok(target) if exllm.provider(&target.provider).is_ok() => target,
        Ok(_) => {
            return error_response(&model_not_found(&wire.model, "unknown provider"));
        }
        Err(err) => return error_response(&model_not_found(&wire.model, err.message())),
    };
    let mut request = EmbedRequest::new("", inputs);
    request.dimensions = wire.dimensions;
    let upstream_started = Instant::now();
    let result = exllm.embed_request(&target.to_string(), request).await;
    let upstream = upstream_started.elapsed();
    let overhead = started.elapsed().saturating_sub(upstream);
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            let mapped = gateway_error(&err);
            state.metrics.observe(
                EMBEDDINGS_ROUTE,
                &target.provider,
                mapped.status,
                started.elapsed(),
                overhead,
                &Usage::default(),
                None,
            );
            return exllm_error(&err, &target.provider);
        }
    };
    let cost = response.cost.as_ref().map(|c| c.total_usd);
    state.keys.settle(&caller, cost.unwrap_or_default()).await;
    state.metrics.observe(
        EMBEDDINGS_ROUTE,
        &target.provider,
        200,
        started.elapsed(),
        overhead,
        &response.usage,
        cost,
    );
    let data: Vec<Value> = response
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                Value::String(base64_f32(vector))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": response.model,
        "usage": {
            "prompt_tokens": response.usage.input_tokens,
            "total_tokens": response.usage.total_tokens(),
        },
    });
    let mut out = axum::Json(body).into_response();
    let headers = out.headers_mut();
    set_provider(headers, &target.provider);
    set_overhead(headers, overhead);
    if let Some(cost) = cost
        && let Ok(value) = HeaderValue::from_str(&cost.to_string())
    {
        headers.insert(COST_USD, value);
    }
    out
}

/// A vector as OpenAI's `encoding_format: "base64"`: little-endian f32s, standard base64. The
/// official Python SDK asks for this format by default.
fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64_encode(&bytes)
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_full_request_parses_into_the_core_shape() {
        let body = json!({
            "model": "openai/gpt-4o",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"ok\":true}"}
            ],
            "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "look"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}},
            "stop": "END",
            "seed": 7,
            "max_completion_tokens": 50,
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "documented-but-unused"
        });
        let parsed = parse_chat(body.to_string().as_bytes()).unwrap();
        let r = &parsed.request;
        assert!(parsed.stream && parsed.include_usage);
        assert_eq!(r.messages.len(), 4);
        assert_eq!(r.messages[0].role, Role::System);
        assert!(matches!(
            &r.messages[1].content[1],
            ContentPart::Image { source: ImageSource::Base64 { media_type, .. }, detail: Some(_) } if media_type == "image/png"
        ));
        let call = r.messages[2].tool_calls().next().unwrap();
        assert_eq!(call.arguments, json!({"q": 1}));
        assert!(
            matches!(&r.messages[3].content[0], ContentPart::ToolResult(t) if t.call_id == "call_1")
        );
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("look".into())));
        assert!(matches!(
            r.response_format,
            Some(ResponseFormat::JsonSchema { strict: true, .. })
        ));
        assert_eq!(r.stop, vec!["END".to_owned()]);
        assert_eq!(r.max_tokens, Some(50));
        assert_eq!(r.seed, Some(7));
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let err = parse_chat(b"{not json").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
        let err =
            parse_chat(br#"{"model":"a/b","messages":[{"role":"user","content":"x"}],"n":2}"#)
                .unwrap_err();
        assert!(err.message.contains("n > 1"));
        let err = parse_chat(br#"{"model":"a/b","messages":[{"role":"wizard","content":"x"}]}"#)
            .unwrap_err();
        assert!(err.message.contains("messages[0]"), "{}", err.message);
        let err = parse_chat(br#"{"model":"a/b","messages":"hi"}"#).unwrap_err();
        assert!(err.message.contains("invalid"), "{}", err.message);
    }

    #[test]
    fn stream_chunks_have_openai_indexes_and_a_usage_chunk() {
        let mut w = ChunkWriter {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "m".into(),
            include_usage: true,
            tool_slots: BTreeMap::new(),
            sent_content: false,
        };
        let frames: Vec<Bytes> = [
            StreamEvent::ToolCallStart {
                index: 1,
                id: "c1".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{\"a\"".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: ":1}".into(),
            },
        ]
        .into_iter()
        .flat_map(|e| w.event(e))
        .collect();
        let first: Value = serde_json::from_slice(&frames[0][6..frames[0].len() - 2]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert_eq!(first["usage"], Value::Null);
        let mut response = ChatResponse::new("openai", "m");
        response.usage = Usage::new(3, 4);
        response.finish_reason = Some(FinishReason::ToolCalls);
        let end = w.finish(&response);
        let text: String = end
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert!(text.contains("\"finish_reason\":\"tool_calls\""));
        assert!(text.contains("\"choices\":[]"));
        assert!(text.contains("\"total_tokens\":7"));
        assert!(text.ends_with("data: [DONE]\n\n"));
    }
}
