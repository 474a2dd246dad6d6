//! The Google Gemini API wire format (generativelanguage `v1beta`): `generateContent`,
//! `streamGenerateContent?alt=sse`, the model list and `batchEmbedContents`.
//!
//! This module is translation only: [`request_body`] turns a [`ChatRequest`] into the JSON of
//! `POST {base_url}/models/{model}:generateContent`, [`parse_response`] turns the reply into a
//! [`ChatResponse`], and a [`ChunkDecoder`] turns the SSE stream into [`StreamEvent`]s through
//! the core's [`StreamAccumulator`]. Sending, status handling and error mapping (Gemini's
//! `{"error":{code,message,status,details}}`, `API_KEY_INVALID` on a 400, `RetryInfo` on a 429)
//! live once in the [`HttpExecutor`].
//!
//! Wire facts are cited from `shared/docs/wire-formats.md` ("Google Gemini") and the recorded
//! fixtures in `shared/fixtures/gemini/` (written `fx:` below).
//!
//! Gemini 3 signs its reasoning: a `thoughtSignature` rides on the part it belongs to and must
//! come back unchanged on the next turn (a function call without it is rejected). The
//! signature of a `functionCall` part is kept in [`ToolCall::signature`]; the signature of a
//! text part is kept as a [`Reasoning`] part with empty text and the signature, placed just
//! before the text, and merged back onto that text when the history is sent again.

use std::collections::HashMap;

use async_trait::async_trait;
use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, ContentPart, EmbedRequest, EmbedResponse,
    Error, ErrorKind, FinishReason, ImageSource, Message, Model, ModelKind, Reasoning,
    ResponseFormat, Result, Role, Secret, StreamAccumulator, StreamEvent, ToolCall, ToolChoice,
    Usage,
};
use exllm_infrastructure::http::{Auth, Framing, HttpExecutor, HttpRequest};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The Gemini API's public endpoint [wire-formats.md "Endpoints"; fx: gemini/*.http.json].
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// The header that carries the key. The key never goes in the URL (`?key=` also works, but
/// URLs end up in logs and proxies) [wire-formats.md "Auth"; vercel/ai google-provider.ts].
pub const API_KEY_HEADER: &str = "x-goog-api-key";

/// Prefix of the tool-call ids ExLLM makes up when Gemini sends a `functionCall` without an
/// `id` (fx: generate-content-function-call-gemini3.response.json has three calls and no id).
/// Such ids exist only so that tool results can name their call; they are never sent back.
pub const SYNTHETIC_CALL_ID_PREFIX: &str = "gemini-call-";

/// How many bytes of an undecodable body or chunk an error keeps.
const RAW_KEEP_BYTES: usize = 2048;

/// The most pages of the model list read before giving up (at 1000 models a page).
const MAX_MODEL_PAGES: usize = 20;

/// Where the Gemini API is and how to reach it.
///
/// ```
/// use exllm_adapters_providers::gemini::GeminiConfig;
/// use exllm_core::Secret;
///
/// let config = GeminiConfig::new(Some(Secret::new("AIza…")), None);
/// assert_eq!(config.name, "gemini");
/// assert_eq!(
///     config.url("models/gemini-2.5-flash:generateContent"),
///     "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiConfig {
    /// The provider name used in `provider/model` addresses and errors (`gemini`).
    pub name: String,
    /// The API root, e.g. [`GEMINI_BASE_URL`]; `/models/…` is appended.
    pub base_url: String,
    /// The API key, sent as [`API_KEY_HEADER`]; `None` for a keyless proxy.
    pub api_key: Option<Secret>,
    /// Headers sent with every request.
    pub extra_headers: Vec<(String, String)>,
}

impl GeminiConfig {
    /// Gemini itself: name `gemini`, [`GEMINI_BASE_URL`] unless `base_url` is given.
    pub fn new(api_key: Option<Secret>, base_url: Option<String>) -> Self {
        Self {
            name: "gemini".to_owned(),
            base_url: base_url.unwrap_or_else(|| GEMINI_BASE_URL.to_owned()),
            api_key,
            extra_headers: Vec::new(),
        }
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

/// A [`ChatProvider`] speaking the Gemini API.
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    config: GeminiConfig,
    executor: HttpExecutor,
}

impl GeminiProvider {
    /// A provider for the API `config` describes, sending through `executor`.
    pub fn new(config: GeminiConfig, executor: HttpExecutor) -> Self {
        Self { config, executor }
    }

    /// The configuration.
    pub fn config(&self) -> &GeminiConfig {
        &self.config
    }

    fn auth(&self) -> Auth {
        match &self.config.api_key {
            Some(key) if !key.is_empty() => Auth::Header {
                name: API_KEY_HEADER.to_owned(),
                value: key.clone(),
            },
            _ => Auth::None,
        }
    }

    fn http(&self, http: HttpRequest, extra: &[(String, String)]) -> HttpRequest {
        self.config
            .extra_headers
            .iter()
            .chain(extra)
            .fold(http.auth(self.auth()), |http, (n, v)| {
                http.header(n.clone(), v.clone())
            })
    }

    async fn models_page(&self, query: &str) -> Result<Value> {
        let http = self.http(HttpRequest::get(self.config.url(query)), &[]);
        Ok(self.executor.send_json(&self.config.name, http).await?.body)
    }
}

#[async_trait]
impl ChatProvider for GeminiProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let path = model_path(&request.model)?;
        let body = request_body(&request)?;
        let url = self.config.url(&format!("{path}:generateContent"));
        let http = self.http(HttpRequest::post(url, body), &request.extra_headers);
        let reply = self.executor.send_json(&self.config.name, http).await?;
        let mut response = parse_response(&self.config.name, &request.model, &reply.body)?;
        if let Some(id) = reply.request_id {
            response
                .metadata
                .insert("request_id".to_owned(), Value::String(id));
        }
        Ok(response)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let path = model_path(&request.model)?;
        let body = request_body(&request)?;
        // `alt=sse` asks for server-sent events; without it the stream is one JSON array
        // written piece by piece [wire-formats.md; fx: llm-gemini/stream-json-array-*].
        let url = self
            .config
            .url(&format!("{path}:streamGenerateContent?alt=sse"));
        let http = self.http(HttpRequest::post(url, body), &request.extra_headers);
        let frames = self
            .executor
            .send_stream(&self.config.name, http, Framing::Sse)
            .await?;
        Ok(crate::pump::events(
            frames,
            ChunkDecoder::new(&self.config.name, &request.model),
        ))
    }

    async fn list_models(&self) -> Result<Vec<Model>> {
        let mut models = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_MODEL_PAGES {
            let query = match &token {
                Some(token) => format!("models?pageSize=1000&pageToken={}", query_escape(token)),
                None => "models?pageSize=1000".to_owned(),
            };
            let body = self.models_page(&query).await?;
            models.extend(parse_models(&self.config.name, &body)?);
            token = body
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(models)
    }

    async fn health(&self) -> Result<()> {
        self.models_page("models?pageSize=1").await.map(|_| ())
    }

    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse> {
        let path = model_path(&request.model)?;
        let body = embed_body(&request)?;
        let url = self.config.url(&format!("{path}:batchEmbedContents"));
        let http = self.http(HttpRequest::post(url, body), &[]);
        let reply = self.executor.send_json(&self.config.name, http).await?;
        parse_embeddings(&self.config.name, &request, &reply.body)
    }
}

// ---------------------------------------------------------------------------------------------
// Request translation.

/// The resource path of `model`: `models/{model}`, or the id as given when it already names a
/// resource (`models/…`, `tunedModels/…`).
///
/// The id goes into the URL path, so anything that could change the URL's meaning (`?`, `#`,
/// `:`, spaces, `..`) is refused before any IO.
pub fn model_path(model: &str) -> Result<String> {
    let valid = !model.is_empty()
        && !model.contains("..")
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@'));
    if !valid {
        return Err(Error::validation(
            "model",
            format!(
                "{model:?} is not a Gemini model id (letters, digits, `-`, `.`, `_`, `/`, `@` only)"
            ),
        ));
    }
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        Ok(model.to_owned())
    } else {
        Ok(format!("models/{model}"))
    }
}

/// The JSON body of `POST …:generateContent` (and of `…:streamGenerateContent`: the body is the
/// same, only the URL differs).
///
/// Pure: no IO. Fails on a request Gemini cannot express: an image URL it cannot fetch, a tool
/// result whose tool name cannot be found, non-text system content, a seed beyond 32 bits.
pub fn request_body(request: &ChatRequest) -> Result<Value> {
    let mut body = Map::new();
    let (system, contents) = contents(&request.messages)?;
    body.insert("contents".to_owned(), Value::Array(contents));
    if !system.is_empty() {
        // The official SDK sends `role: "user"` on the system instruction; the API ignores it,
        // and sending it keeps our bodies identical to the recorded ones
        // (fx: generate-content-text.request.json).
        body.insert(
            "systemInstruction".to_owned(),
            json!({"parts": system, "role": "user"}),
        );
    }
    // Always present, even empty, as the official SDK sends it
    // (fx: generate-content-vision-inline-image.request.json has `"generationConfig": {}`).
    body.insert(
        "generationConfig".to_owned(),
        Value::Object(generation_config(request)?),
    );
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut declaration = Map::new();
                declaration.insert("name".to_owned(), Value::String(tool.name.clone()));
                if let Some(description) = &tool.description {
                    declaration
                        .insert("description".to_owned(), Value::String(description.clone()));
                }
                // `parametersJsonSchema` takes the JSON Schema a ToolDefinition carries as it
                // is; the older `parameters` field takes only an OpenAPI subset and rejects
                // `additionalProperties`, `$ref` and friends. The official SDK sends the same
                // field (fx: generate-content-function-call-gemini3.request.json,
                // `parameters_json_schema`: the API accepts either spelling).
                if !tool.parameters.is_null() {
                    declaration.insert("parametersJsonSchema".to_owned(), tool.parameters.clone());
                }
                Value::Object(declaration)
            })
            .collect();
        body.insert(
            "tools".to_owned(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = &request.tool_choice {
        // [wire-formats.md "Request"; fx: generate-content-function-call-gemini3.request.json]
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".to_owned(),
            json!({"functionCallingConfig": config}),
        );
    }
    // Last, so that a caller can override anything the translation chose. Objects merge
    // deeply: most of Gemini's knobs live inside `generationConfig` (`thinkingConfig`,
    // `responseModalities`), and setting one must not wipe the temperature.
    for (key, value) in &request.extra_body {
        merge(&mut body, key, value);
    }
    Ok(Value::Object(body))
}

fn merge(target: &mut Map<String, Value>, key: &str, value: &Value) {
    match (target.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(incoming)) => {
            for (k, v) in incoming {
                merge(existing, k, v);
            }
        }
        _ => {
            target.insert(key.to_owned(), value.clone());
        }
    }
}

fn generation_config(request: &ChatRequest) -> Result<Map<String, Value>> {
    let mut config = Map::new();
    if let Some(t) = request.temperature {
        config.insert("temperature".to_owned(), float(t));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".to_owned(), float(p));
    }
    if let Some(n) = request.max_tokens {
        config.insert("maxOutputTokens".to_owned(), Value::from(n));
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".to_owned(), json!(request.stop));
    }
    if let Some(seed) = request.seed {
        // The API's seed is an int32.
        let seed = i32::try_from(seed).map_err(|_| {
            Error::validation(
                "seed",
                format!("Gemini takes a 32-bit seed; {seed} is out of range"),
            )
        })?;
        config.insert("seed".to_owned(), Value::from(seed));
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".to_owned(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            // `responseJsonSchema` takes standard JSON Schema (with `$ref`/`$defs`, as schemars
            // writes them); `responseSchema` would take only the OpenAPI subset. Gemini has no
            // schema name or strict flag: the schema is always enforced.
            config.insert("responseMimeType".to_owned(), json!("application/json"));
            config.insert("responseJsonSchema".to_owned(), schema.clone());
        }
    }
    Ok(config)
}

/// An `f32` as the decimal a person wrote (`0.7`, not `0.699999988079071`).
fn float(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The system instruction's parts and the `contents` array.
///
/// Gemini has one system instruction, so every system message is gathered into it, in order.
/// Consecutive messages that map to the same Gemini role are merged into one `Content`: tool
/// results (one message each in OpenAI's style) must reach Gemini together as the user turn
/// that answers the model's calls, and a user's text after them belongs to the same turn.
fn contents(messages: &[Message]) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // The tool calls seen so far, id → name: a tool result without a name takes the name of
    // the latest call with its id (Gemini's functionResponse requires the name).
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let field = |j: usize| format!("messages[{i}].content[{j}]");
        if message.role == Role::System {
            for (j, part) in message.content.iter().enumerate() {
                match part {
                    ContentPart::Text { text } => system.push(json!({"text": text})),
                    _ => {
                        return Err(Error::validation(
                            field(j),
                            "Gemini's system instruction takes only text",
                        ));
                    }
                }
            }
            continue;
        }
        let role = if message.role == Role::Assistant {
            "model"
        } else {
            "user"
        };
        let parts = if role == "model" {
            model_parts(&message.content, &field, &mut call_names)?
        } else {
            user_parts(&message.content, &field, &call_names)?
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last_role, last_parts)) if *last_role == role => last_parts.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

/// The parts of a user (or tool) message: text, images and tool results.
fn user_parts(
    content: &[ContentPart],
    field: &dyn Fn(usize) -> String,
    call_names: &HashMap<&str, &str>,
) -> Result<Vec<Value>> {
    let mut parts = Vec::with_capacity(content.len());
    for (j, part) in content.iter().enumerate() {
        match part {
            // Kept even when empty: the recorded SDK request sends `{"text": ""}`
            // (fx: generate-content-function-call-gemini3.request.json).
            ContentPart::Text { text } => parts.push(json!({"text": text})),
            ContentPart::Image { source, .. } => parts.push(image_part(source, &field(j))?),
            ContentPart::ToolResult(result) => {
                let name = match &result.name {
                    Some(name) => name.as_str(),
                    None => call_names
                        .get(result.call_id.as_str())
                        .copied()
                        .ok_or_else(|| {
                            Error::validation(
                                field(j),
                                format!(
                                    "Gemini needs the tool name of a tool result; set \
                                     ToolResult.name, or keep the tool call {:?} in the history",
                                    result.call_id
                                ),
                            )
                        })?,
                };
                parts.push(function_response(
                    name,
                    &result.call_id,
                    &result.content,
                    result.is_error,
                ));
            }
            ContentPart::Refusal { text } => parts.push(json!({"text": text})),
            ContentPart::ToolCall(_) | ContentPart::Reasoning(_) => {
                return Err(Error::validation(
                    field(j),
                    "tool calls and reasoning belong in assistant messages",
                ));
            }
        }
    }
    Ok(parts)
}

/// A `functionResponse` part. Gemini wants an object: the result goes under `output` (or
/// `error` for a failed tool), as JSON when it is a JSON object or array, else as the text
/// (fx: llm-gemini/stream-json-array-gemini3-echo-thought-signature-with-function-response.request.json
/// sends `{"output": "15"}`). Ids ExLLM made up are not sent; real ones are
/// (fx: llm-gemini/stream-json-array-after-function-response.request.json).
fn function_response(name: &str, call_id: &str, content: &str, is_error: bool) -> Value {
    let value = match serde_json::from_str::<Value>(content) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
        _ => Value::String(content.to_owned()),
    };
    let key = if is_error { "error" } else { "output" };
    let mut response = Map::new();
    response.insert("name".to_owned(), Value::String(name.to_owned()));
    response.insert("response".to_owned(), json!({key: value}));
    if let Some(id) = real_call_id(call_id) {
        response.insert("id".to_owned(), Value::String(id.to_owned()));
    }
    json!({"functionResponse": response})
}

fn real_call_id(id: &str) -> Option<&str> {
    (!id.is_empty() && !id.starts_with(SYNTHETIC_CALL_ID_PREFIX)).then_some(id)
}

/// The parts of an assistant message, with every signature back on the part it came with.
fn model_parts<'a>(
    content: &'a [ContentPart],
    field: &dyn Fn(usize) -> String,
    call_names: &mut HashMap<&'a str, &'a str>,
) -> Result<Vec<Value>> {
    let mut parts: Vec<Value> = Vec::with_capacity(content.len());
    // The signature of a signed text part, waiting for that text (see the module docs).
    let mut pending: Option<&str> = None;
    for (j, part) in content.iter().enumerate() {
        // Only text takes a waiting signature; before anything else it goes back on its own,
        // on the empty text part it came with (fx: vercel/stream-text-gemini3.chunks.jsonl).
        let carried = match part {
            ContentPart::Text { .. } | ContentPart::Refusal { .. } => pending.take(),
            _ => {
                if let Some(sig) = pending.take() {
                    parts.push(json!({"text": "", "thoughtSignature": sig}));
                }
                None
            }
        };
        match part {
            ContentPart::Text { text } | ContentPart::Refusal { text } => {
                parts.push(signed(text_part(text), carried));
            }
            ContentPart::Reasoning(reasoning) => match reasoning {
                // Redacted blocks are another provider's (Anthropic's); Gemini has none.
                Reasoning {
                    redacted: Some(_), ..
                } => {}
                Reasoning {
                    text,
                    signature: Some(sig),
                    ..
                } if text.is_empty() => pending = Some(sig),
                // Thought summaries go back as thought parts, as the SDKs send them.
                Reasoning {
                    text, signature, ..
                } if !text.is_empty() => {
                    let mut part = text_part(text);
                    part.insert("thought".to_owned(), Value::Bool(true));
                    parts.push(signed(part, signature.as_deref()));
                }
                _ => {}
            },
            ContentPart::ToolCall(call) => {
                call_names.insert(call.id.as_str(), call.name.as_str());
                let mut function = Map::new();
                function.insert("name".to_owned(), Value::String(call.name.clone()));
                function.insert("args".to_owned(), call_args(&call.arguments, &field(j))?);
                if let Some(id) = real_call_id(&call.id) {
                    function.insert("id".to_owned(), Value::String(id.to_owned()));
                }
                let mut part = Map::new();
                part.insert("functionCall".to_owned(), Value::Object(function));
                // The signature goes back unchanged on the same part
                // (fx: llm-gemini/stream-json-array-gemini3-echo-thought-signature-with-function-response.request.json).
                parts.push(signed(part, call.signature.as_deref()));
            }
            ContentPart::Image { source, .. } => parts.push(image_part(source, &field(j))?),
            ContentPart::ToolResult(_) => {
                return Err(Error::validation(
                    field(j),
                    "tool results belong in tool (or user) messages",
                ));
            }
        }
    }
    if let Some(sig) = pending {
        // A signature at the very end rode on an empty text part
        // (fx: vercel/stream-text-gemini3.chunks.jsonl, llm-gemini/stream-json-array-text.response.json).
        parts.push(json!({"text": "", "thoughtSignature": sig}));
    }
    Ok(parts)
}

fn signed(mut part: Map<String, Value>, signature: Option<&str>) -> Value {
    if let Some(sig) = signature {
        part.insert("thoughtSignature".to_owned(), Value::String(sig.to_owned()));
    }
    Value::Object(part)
}

fn text_part(text: &str) -> Map<String, Value> {
    let mut part = Map::new();
    part.insert("text".to_owned(), Value::String(text.to_owned()));
    part
}

/// Tool-call arguments as the object Gemini's `args` must be.
fn call_args(arguments: &Value, field: &str) -> Result<Value> {
    match arguments {
        Value::Object(_) => Ok(arguments.clone()),
        Value::Null => Ok(Value::Object(Map::new())),
        // Arguments another provider produced as unparseable text were kept verbatim; Gemini
        // has no way to carry them.
        Value::String(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(Error::validation(
                field,
                "Gemini needs tool-call arguments that are a JSON object",
            )),
        },
        _ => Err(Error::validation(
            field,
            "Gemini needs tool-call arguments that are a JSON object",
        )),
    }
}

/// An image as an `inlineData` part (fx: generate-content-vision-inline-image.request.json).
///
/// Gemini does not fetch arbitrary URLs: `fileData` takes files uploaded through its Files API
/// (those URIs are passed on), and `data:` URLs are unpacked into `inlineData`.
fn image_part(source: &ImageSource, field: &str) -> Result<Value> {
    match source {
        ImageSource::Base64 { media_type, data } => Ok(inline_data(media_type, data)),
        ImageSource::Url { url } => {
            if let Some(rest) = url.strip_prefix("data:") {
                let Some((meta, data)) = rest.split_once(',') else {
                    return Err(Error::validation(field, "a data: URL without a comma"));
                };
                let Some(media_type) = meta.strip_suffix(";base64") else {
                    return Err(Error::validation(
                        field,
                        "Gemini takes only base64 data: URLs (`data:image/png;base64,…`)",
                    ));
                };
                return Ok(inline_data(media_type, data));
            }
            if url.starts_with("https://generativelanguage.googleapis.com/")
                && url.contains("/files/")
            {
                return Ok(json!({"fileData": {"fileUri": url}}));
            }
            Err(Error::validation(
                field,
                "Gemini cannot fetch image URLs: send the image as base64 \
                 (ContentPart::image_base64 or a data: URL), or upload it with the Files API \
                 and pass the file's URI",
            ))
        }
    }
}

fn inline_data(media_type: &str, data: &str) -> Value {
    json!({"inlineData": {"mimeType": media_type, "data": data}})
}

/// The body of `POST …:batchEmbedContents`: one request per input, each naming the model.
pub fn embed_body(request: &EmbedRequest) -> Result<Value> {
    if request.inputs.is_empty() {
        return Err(Error::validation("inputs", "nothing to embed"));
    }
    let model = model_path(&request.model)?;
    let requests: Vec<Value> = request
        .inputs
        .iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("model".to_owned(), Value::String(model.clone()));
            one.insert("content".to_owned(), json!({"parts": [{"text": text}]}));
            if let Some(n) = request.dimensions {
                one.insert("outputDimensionality".to_owned(), Value::from(n));
            }
            Value::Object(one)
        })
        .collect();
    Ok(json!({"requests": requests}))
}

fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Response translation.

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Option<Vec<WireCandidate>>,
    #[serde(default)]
    prompt_feedback: Option<WirePromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    finish_message: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Option<Vec<WirePart>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    thought_signature: Option<String>,
    #[serde(default)]
    function_call: Option<WireFunctionCall>,
    #[serde(default)]
    inline_data: Option<WireBlob>,
    /// Parts ExLLM has no type for (`executableCode`, `codeExecutionResult`, …), kept in the
    /// response's metadata rather than dropped.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFunctionCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    args: Option<Value>,
    /// Vertex AI only: arguments streamed in pieces (fx: vercel/stream-vertex-partial-args.chunks.jsonl).
    #[serde(default)]
    partial_args: Option<Value>,
    #[serde(default)]
    will_continue: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBlob {
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
}

impl WireUsage {
    /// Gemini's counts in ExLLM's conventions: input counts every input token (the prompt,
    /// cached part included, and tool-use prompts), output counts the thoughts too.
    /// `totalTokenCount` includes the thoughts: 18 + 80 + 35 = 133
    /// (fx: stream-sse-usage-mid-stream.response.sse).
    fn to_usage(self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        Usage {
            input_tokens: self
                .prompt_token_count
                .unwrap_or(0)
                .saturating_add(self.tool_use_prompt_token_count.unwrap_or(0)),
            output_tokens: self
                .candidates_token_count
                .unwrap_or(0)
                .saturating_add(thoughts),
            cached_input_tokens: self.cached_content_token_count.unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: thoughts,
        }
    }
}

/// Gemini's `finishReason` normalized; `None` for the others (`MALFORMED_FUNCTION_CALL`,
/// `OTHER`, …), which stay verbatim in [`ChatResponse::provider_finish_reason`].
/// A function call ends with `STOP`, so `STOP` becomes [`FinishReason::ToolCalls`] when the
/// reply has calls [wire-formats.md; vercel/ai map-google-finish-reason.ts].
pub fn finish_reason(raw: &str, has_tool_calls: bool) -> Option<FinishReason> {
    match raw {
        "STOP" if has_tool_calls => Some(FinishReason::ToolCalls),
        "STOP" => Some(FinishReason::Stop),
        "MAX_TOKENS" => Some(FinishReason::Length),
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            Some(FinishReason::ContentFilter)
        }
        _ => None,
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

fn synthetic_call_id(response_id: &str, index: usize) -> String {
    if response_id.is_empty() {
        format!("{SYNTHETIC_CALL_ID_PREFIX}{index}")
    } else {
        format!("{SYNTHETIC_CALL_ID_PREFIX}{response_id}-{index}")
    }
}

/// The candidate ExLLM reads: index 0 (ExLLM never asks for more than one).
fn first_candidate(candidates: Vec<WireCandidate>) -> Option<WireCandidate> {
    let position = candidates
        .iter()
        .position(|c| c.index.unwrap_or(0) == 0)
        .unwrap_or(0);
    candidates.into_iter().nth(position)
}

/// Translates a `generateContent` response body (HTTP 200) into a [`ChatResponse`];
/// `model` is the requested model, used when the body names none.
pub fn parse_response(provider: &str, model: &str, body: &Value) -> Result<ChatResponse> {
    let undecodable =
        |why: String| Error::decode(why, first_bytes(&body.to_string())).with_provider(provider);
    if body.get("error").is_some_and(|e| !e.is_null()) {
        // The executor turns a 200 carrying an error into an error already; this guards
        // callers that hand us a body directly.
        return Err(Error::new(ErrorKind::Provider, error_message(body))
            .with_provider(provider)
            .with_raw_body(first_bytes(&body.to_string())));
    }
    let wire = WireResponse::deserialize(body)
        .map_err(|e| undecodable(format!("not a Gemini response: {e}")))?;
    let mut response = ChatResponse::new(
        provider,
        wire.model_version
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| model.to_owned()),
    );
    response.id = wire.response_id.clone().unwrap_or_default();
    if let Some(usage) = wire.usage_metadata {
        response.usage = usage.to_usage();
    }
    let Some(candidate) = first_candidate(wire.candidates.unwrap_or_default()) else {
        // A blocked prompt gets no candidate at all, only `promptFeedback.blockReason`.
        if let Some(reason) = wire.prompt_feedback.and_then(|f| f.block_reason) {
            response.finish_reason = Some(FinishReason::ContentFilter);
            response
                .metadata
                .insert("block_reason".to_owned(), Value::String(reason.clone()));
            response.provider_finish_reason = Some(reason);
            return Ok(response);
        }
        return Err(undecodable(
            "the Gemini response has no candidates".to_owned(),
        ));
    };
    let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
    let mut calls = 0usize;
    let mut unhandled = Vec::new();
    for part in parts {
        if let Some(call) = part.function_call {
            if call.partial_args.is_some() || call.will_continue == Some(true) {
                return Err(undecodable(PARTIAL_ARGS_UNSUPPORTED.to_owned()));
            }
            let id = call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| synthetic_call_id(&response.id, calls));
            calls += 1;
            let mut tool_call = ToolCall::new(
                id,
                call.name.unwrap_or_default(),
                call.args.unwrap_or_else(|| Value::Object(Map::new())),
            );
            tool_call.signature = part.thought_signature;
            response.content.push(ContentPart::ToolCall(tool_call));
        } else if let Some(text) = part.text {
            if part.thought == Some(true) {
                response.content.push(ContentPart::Reasoning(Reasoning {
                    text,
                    signature: part.thought_signature,
                    redacted: None,
                }));
            } else {
                if let Some(sig) = part.thought_signature {
                    response.content.push(signature_only(sig));
                }
                push_text(&mut response.content, &text);
            }
        } else if let Some(blob) = part.inline_data {
            response.content.push(ContentPart::image_base64(
                blob.mime_type.unwrap_or_default(),
                blob.data.unwrap_or_default(),
            ));
        } else if !part.rest.is_empty() {
            unhandled.push(Value::Object(part.rest));
        }
    }
    if !unhandled.is_empty() {
        response
            .metadata
            .insert("unhandled_parts".to_owned(), Value::Array(unhandled));
    }
    if let Some(message) = candidate.finish_message {
        response
            .metadata
            .insert("finish_message".to_owned(), Value::String(message));
    }
    if let Some(raw) = candidate.finish_reason {
        response.finish_reason = finish_reason(&raw, calls > 0);
        response.provider_finish_reason = Some(raw);
    }
    Ok(response)
}

const PARTIAL_ARGS_UNSUPPORTED: &str = "a functionCall with partialArgs/willContinue (Vertex AI's \
     streamed arguments) is not part of the Gemini API ExLLM speaks";

/// The part that keeps a text part's `thoughtSignature` (see the module docs).
fn signature_only(signature: String) -> ContentPart {
    ContentPart::Reasoning(Reasoning {
        text: String::new(),
        signature: Some(signature),
        redacted: None,
    })
}

/// Appends text to the last text part, or starts one; empty text says nothing (the final
/// chunk often carries `{"text": ""}`, fx: stream-sse-function-call-thought-signature.response.sse).
fn push_text(content: &mut Vec<ContentPart>, text: &str) {
    if text.is_empty() {
        return;
    }
    match content.last_mut() {
        Some(ContentPart::Text { text: last }) => last.push_str(text),
        _ => content.push(ContentPart::text(text)),
    }
}

fn error_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .unwrap_or("the provider returned an error")
        .to_owned()
}

/// Translates a `GET /models` body (`{"models": [{"name": "models/…", …}]}`) into models,
/// without the `models/` prefix.
pub fn parse_models(provider: &str, body: &Value) -> Result<Vec<Model>> {
    let Some(object) = body.as_object() else {
        return Err(Error::decode(
            "the model list is not an object",
            first_bytes(&body.to_string()),
        )
        .with_provider(provider));
    };
    // An empty page has no `models` key at all.
    let Some(list) = object.get("models") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(Error::decode(
            "the model list's `models` is not an array",
            first_bytes(&body.to_string()),
        )
        .with_provider(provider));
    };
    Ok(list
        .iter()
        .filter_map(|m| {
            let name = m.get("name")?.as_str()?;
            let id = name.strip_prefix("models/").unwrap_or(name);
            let mut model = Model::named(provider, id);
            let methods: Vec<&str> = m
                .get("supportedGenerationMethods")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let embeds = methods
                .iter()
                .any(|m| *m == "embedContent" || *m == "batchEmbedContents");
            if embeds && !methods.contains(&"generateContent") {
                model.kind = ModelKind::Embedding;
                model.capabilities.embeddings = true;
            }
            let limit = |key: &str| {
                m.get(key)
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
            };
            model.context_window = limit("inputTokenLimit");
            model.max_output_tokens = limit("outputTokenLimit");
            Some(model)
        })
        .collect())
}

/// Translates a `batchEmbedContents` body (`{"embeddings": [{"values": […]}]}`) into one
/// vector per input.
pub fn parse_embeddings(
    provider: &str,
    request: &EmbedRequest,
    body: &Value,
) -> Result<EmbedResponse> {
    let undecodable =
        |why: &str| Error::decode(why, first_bytes(&body.to_string())).with_provider(provider);
    let list = body
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| undecodable("the embeddings response has no `embeddings` array"))?;
    let mut response = EmbedResponse::new(provider, request.model.clone());
    for embedding in list {
        let values = embedding
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| undecodable("an embedding has no `values` array"))?;
        let vector = values
            .iter()
            .map(|v| v.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| undecodable("an embedding value is not a number"))?;
        response.embeddings.push(vector);
    }
    if response.embeddings.len() != request.inputs.len() {
        return Err(undecodable(&format!(
            "{} embeddings for {} inputs",
            response.embeddings.len(),
            request.inputs.len()
        )));
    }
    // Gemini's embedding responses carry no token counts (the BatchEmbedContentsResponse has
    // only `embeddings`), so usage stays zero: unknown, not free.
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Stream translation.

/// Turns the `data:` payloads of a `streamGenerateContent?alt=sse` stream into stream events.
///
/// Every chunk is a whole `GenerateContentResponse` whose parts are new content, with
/// cumulative usage. There is no `[DONE]`: the stream ends when the connection closes, and it
/// is complete only if a `finishReason` was seen (fx: stream-sse-text.response.sse). Feed every
/// payload to [`ChunkDecoder::data`], then call [`ChunkDecoder::end`]. Pure: tested without a
/// network.
#[derive(Debug)]
pub struct ChunkDecoder {
    provider: String,
    acc: StreamAccumulator,
    chunks: usize,
    calls: usize,
    metadata_seen: bool,
}

impl ChunkDecoder {
    /// A decoder for a reply from `provider` to a request for `model`.
    pub fn new(provider: &str, model: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            acc: StreamAccumulator::new(provider, model),
            chunks: 0,
            calls: 0,
            metadata_seen: false,
        }
    }

    /// Attaches what was received so far to a mid-stream error.
    pub fn fail(&self, err: Error) -> Error {
        self.acc.fail(err.or_provider(&self.provider))
    }

    /// Decodes one SSE `data:` payload. A payload that is a JSON array is a whole
    /// non-SSE stream (what `streamGenerateContent` sends without `alt=sse`, or a proxy that
    /// drops the parameter, fx: llm-gemini/stream-json-array-*.response.json): each element is a
    /// chunk.
    pub fn data(&mut self, data: &str) -> Result<Vec<StreamEvent>> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            self.fail(Error::decode(
                format!("malformed stream chunk: {e}"),
                first_bytes(data),
            ))
        })?;
        match value {
            Value::Array(chunks) => {
                let mut events = Vec::new();
                for chunk in &chunks {
                    events.extend(self.value(chunk, data)?);
                }
                Ok(events)
            }
            other => self.value(&other, data),
        }
    }

    fn value(&mut self, value: &Value, raw: &str) -> Result<Vec<StreamEvent>> {
        if value.get("error").is_some_and(|e| !e.is_null()) {
            // The executor raises in-band errors itself; this keeps one that slipped through
            // (inside a JSON array, say) from being lost.
            return Err(self.fail(
                Error::new(ErrorKind::Provider, error_message(value))
                    .with_raw_body(first_bytes(raw)),
            ));
        }
        let chunk = WireResponse::deserialize(value).map_err(|e| {
            self.fail(Error::decode(
                format!("unexpected stream chunk: {e}"),
                first_bytes(raw),
            ))
        })?;
        self.chunks += 1;
        self.chunk(chunk, raw)
    }

    fn chunk(&mut self, chunk: WireResponse, raw: &str) -> Result<Vec<StreamEvent>> {
        let mut events = Vec::new();
        if !self.metadata_seen {
            self.metadata_seen = true;
            let resp = self.acc.response_mut();
            if let Some(id) = chunk.response_id {
                resp.id = id;
            }
            if let Some(model) = chunk.model_version.filter(|m| !m.is_empty()) {
                resp.model = model;
            }
        }
        let candidate = first_candidate(chunk.candidates.unwrap_or_default());
        if candidate.is_none()
            && let Some(reason) = chunk.prompt_feedback.and_then(|f| f.block_reason)
        {
            self.acc
                .response_mut()
                .metadata
                .insert("block_reason".to_owned(), Value::String(reason.clone()));
            self.acc
                .finish_reason(Some(FinishReason::ContentFilter), Some(&reason));
        }
        if let Some(candidate) = candidate {
            let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
            for part in parts {
                self.part(part, raw, &mut events)?;
            }
            if let Some(message) = candidate.finish_message {
                self.acc
                    .response_mut()
                    .metadata
                    .insert("finish_message".to_owned(), Value::String(message));
            }
            if let Some(raw_reason) = candidate.finish_reason {
                self.acc.finish_reason(
                    finish_reason(&raw_reason, self.calls > 0),
                    Some(&raw_reason),
                );
            }
        }
        // Every chunk carries the usage so far; the last one is the total
        // (fx: stream-sse-usage-mid-stream.response.sse).
        if let Some(usage) = chunk.usage_metadata {
            events.push(self.acc.usage(usage.to_usage()));
        }
        Ok(events)
    }

    fn part(&mut self, part: WirePart, raw: &str, events: &mut Vec<StreamEvent>) -> Result<()> {
        if let Some(call) = part.function_call {
            if call.partial_args.is_some() || call.will_continue == Some(true) {
                return Err(self.fail(Error::decode(PARTIAL_ARGS_UNSUPPORTED, first_bytes(raw))));
            }
            // On the Gemini API a call arrives whole in one chunk [wire-formats.md "Function
            // calls"; fx: stream-sse-function-call.response.sse], so it starts, gets all its
            // arguments and ends at once, with the next index.
            let index = self.calls;
            self.calls += 1;
            let id = call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| synthetic_call_id(&self.acc.response_mut().id, index));
            let args = call.args.unwrap_or_else(|| Value::Object(Map::new()));
            events.push(
                self.acc
                    .tool_call_start(index, &id, call.name.as_deref().unwrap_or("")),
            );
            events.push(self.acc.tool_call_delta(index, &args.to_string()));
            if let Some(sig) = &part.thought_signature {
                self.acc.tool_call_signature(index, sig);
            }
            events.extend(self.acc.tool_call_end(index));
        } else if let Some(text) = part.text {
            if part.thought == Some(true) {
                // Thought summaries (fx: stream-sse-thinking.response.sse).
                if !text.is_empty() {
                    events.push(self.acc.reasoning(&text));
                }
                if let Some(sig) = &part.thought_signature {
                    events.push(self.acc.reasoning_signature(sig));
                }
            } else {
                if let Some(sig) = part.thought_signature {
                    // Pushed as its own part so that it stays with this text, not with the
                    // thoughts before it (fx: stream-sse-thinking.response.sse, 5th chunk).
                    self.acc.response_mut().content.push(signature_only(sig));
                }
                if !text.is_empty() {
                    events.push(self.acc.text(&text));
                }
            }
        } else if let Some(blob) = part.inline_data {
            // No stream event carries images; the final response does.
            self.acc
                .response_mut()
                .content
                .push(ContentPart::image_base64(
                    blob.mime_type.unwrap_or_default(),
                    blob.data.unwrap_or_default(),
                ));
        } else if !part.rest.is_empty() {
            let metadata = &mut self.acc.response_mut().metadata;
            let entry = metadata
                .entry("unhandled_parts")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.push(Value::Object(part.rest));
            }
        }
        Ok(())
    }

    /// The events that close the stream when the connection closes: the complete response,
    /// or a truncation error keeping the partial reply when no `finishReason` was seen.
    pub fn end(self) -> Result<Vec<StreamEvent>> {
        if self.chunks == 0 {
            return Err(self
                .acc
                .truncated("the stream ended before any chunk arrived"));
        }
        if !self.acc.is_finished() {
            return Err(self
                .acc
                .truncated("the stream ended without a finishReason"));
        }
        let (events, _) = self.acc.finish();
        Ok(events)
    }
}

/// The shared stream pump drives this decoder.
impl crate::pump::FrameDecoder for ChunkDecoder {
    fn data(&mut self, data: &str) -> Result<Vec<StreamEvent>> {
        ChunkDecoder::data(self, data)
    }
    fn fail(&self, err: Error) -> Error {
        ChunkDecoder::fail(self, err)
    }
    fn end(self) -> Result<Vec<StreamEvent>> {
        ChunkDecoder::end(self)
    }
}
