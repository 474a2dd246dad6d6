//! The OpenAI Chat Completions wire format, for OpenAI and every OpenAI-compatible service.
//!
//! This module is translation only: [`request_body`] turns a [`ChatRequest`] into the JSON of
//! `POST {base_url}/chat/completions`, [`parse_response`] turns the reply into a
//! [`ChatResponse`], and a chunk decoder turns the SSE stream into [`StreamEvent`]s through the
//! core's [`StreamAccumulator`]. Sending, status handling, retry headers and error mapping live
//! once in the [`HttpExecutor`].
//!
//! OpenAI-compatible services (Groq, Mistral, DeepSeek, OpenRouter, vLLM, …) are data, not code:
//! an [`OpenAiConfig`] with their name, base URL, key, headers and [`OpenAiQuirks`].
//!
//! Wire facts are cited from `shared/docs/wire-formats.md` ("OpenAI Chat Completions") and the
//! recorded fixtures in `shared/fixtures/openai/` (written `fx:` below).
//!
//! Only the first choice (`index` 0) is read: ExLLM never asks for `n > 1`, and when a caller
//! does through `extra_body`, the other choices are skipped rather than mixed into one reply
//! (fx: stream-multiple-choices-n3-gpt4o.sse interleaves indexes 0, 1 and 2).

use async_trait::async_trait;
use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, ContentPart, EmbedRequest, EmbedResponse,
    Error, ErrorKind, FinishReason, ImageSource, Model, Reasoning, ResponseFormat, Result, Role,
    Secret, StreamAccumulator, StreamEvent, ToolCall, ToolChoice, Usage,
};
use exllm_infrastructure::http::{Auth, Framing, HttpExecutor, HttpRequest};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// OpenAI's public endpoint [openapi.yaml `servers`].
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// How many bytes of an undecodable body or chunk an error keeps.
const RAW_KEEP_BYTES: usize = 2048;

/// Which request field carries the output token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MaxTokensField {
    /// `max_completion_tokens`: OpenAI's current field. Its reasoning models reject
    /// `max_tokens` (fx: error-400-unsupported-parameter.json).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens`: the older field many OpenAI-compatible servers still expect.
    MaxTokens,
}

impl MaxTokensField {
    /// The JSON field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxCompletionTokens => "max_completion_tokens",
            Self::MaxTokens => "max_tokens",
        }
    }
}

/// Which request field carries [`ChatRequest::seed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SeedField {
    /// `seed`, as OpenAI names it [openapi.yaml CreateChatCompletionRequest].
    #[default]
    Seed,
    /// `random_seed`, Mistral's name for it.
    RandomSeed,
}

impl SeedField {
    /// The JSON field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::RandomSeed => "random_seed",
        }
    }
}

/// Which `message`/`delta` field carries the model's reasoning text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReasoningField {
    /// `reasoning`: Groq's parsed reasoning (fx: groq/vercel/chat-completion-reasoning-parsed.json)
    /// and OpenRouter's. OpenAI's Chat Completions sends no reasoning text at all.
    #[default]
    Reasoning,
    /// `reasoning_content`: DeepSeek's field (DeepSeek reasoning-model docs).
    ReasoningContent,
    /// Either field, `reasoning` first: for servers whose versions differ (vLLM, llama.cpp,
    /// LM Studio).
    Any,
}

/// Where an OpenAI-compatible service departs from OpenAI. The default is OpenAI itself.
///
/// New quirks are added as fields with an OpenAI-like default, so that a service's config
/// states only how it differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenAiQuirks {
    /// Send `stream_options: {"include_usage": true}` with streaming requests. OpenAI reports
    /// stream usage only when asked (wire-formats.md, "Usage in streams"); some compatible
    /// servers reject the option, and others report usage unasked.
    pub stream_usage: bool,
    /// Which field carries [`ChatRequest::max_tokens`].
    pub max_tokens_field: MaxTokensField,
    /// Which field carries [`ChatRequest::seed`].
    pub seed_field: SeedField,
    /// Which response field carries reasoning text.
    pub reasoning_field: ReasoningField,
    /// Reasoning arrives inline as `<think>…</think>` at the start of the content (Groq with
    /// `reasoning_format: "raw"`, fx: groq/chat-completion-reasoning-format-raw-think-tags.*):
    /// split it into a reasoning part and the text, and send reasoning back the same way.
    pub think_tags: bool,
}

impl Default for OpenAiQuirks {
    fn default() -> Self {
        Self::openai()
    }
}

impl OpenAiQuirks {
    /// OpenAI's own behaviour; usable in constants.
    pub const fn openai() -> Self {
        Self {
            stream_usage: true,
            max_tokens_field: MaxTokensField::MaxCompletionTokens,
            seed_field: SeedField::Seed,
            reasoning_field: ReasoningField::Reasoning,
            think_tags: false,
        }
    }
    /// Sets whether streaming requests ask for usage.
    pub const fn stream_usage(mut self, on: bool) -> Self {
        self.stream_usage = on;
        self
    }
    /// Sets the field that carries the output token limit.
    pub const fn max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens_field = field;
        self
    }
    /// Sets the field that carries the seed.
    pub const fn seed_field(mut self, field: SeedField) -> Self {
        self.seed_field = field;
        self
    }
    /// Sets the field that carries reasoning text.
    pub const fn reasoning_field(mut self, field: ReasoningField) -> Self {
        self.reasoning_field = field;
        self
    }
    /// Sets whether `<think>` tags in content are reasoning.
    pub const fn think_tags(mut self, on: bool) -> Self {
        self.think_tags = on;
        self
    }
}

/// One OpenAI-compatible service: who it is, where it is, and how it differs.
///
/// ```
/// use exllm_adapters_providers::{MaxTokensField, OpenAiConfig, OpenAiQuirks};
/// use exllm_core::Secret;
///
/// let openai = OpenAiConfig::openai(Some(Secret::new("sk-…")), None);
/// assert_eq!(openai.url("chat/completions"), "https://api.openai.com/v1/chat/completions");
///
/// // A local vLLM server: no key, the older token field, no usage option on streams.
/// let vllm = OpenAiConfig::compatible("vllm", "http://localhost:8000/v1", None).quirks(
///     OpenAiQuirks::default()
///         .max_tokens_field(MaxTokensField::MaxTokens)
///         .stream_usage(false),
/// );
/// assert_eq!(vllm.name, "vllm");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// The provider name used in `provider/model` addresses and errors (`openai`, `groq`, …).
    pub name: String,
    /// The API root, e.g. `https://api.openai.com/v1`; `/chat/completions` is appended.
    pub base_url: String,
    /// The bearer key; `None` for local servers that need none.
    pub api_key: Option<Secret>,
    /// Headers sent with every request (e.g. `OpenAI-Organization`, OpenRouter's `X-Title`).
    pub extra_headers: Vec<(String, String)>,
    /// How the service departs from OpenAI.
    pub quirks: OpenAiQuirks,
}

impl OpenAiConfig {
    /// OpenAI itself: name `openai`, [`OPENAI_BASE_URL`] unless `base_url` is given.
    pub fn openai(api_key: Option<Secret>, base_url: Option<String>) -> Self {
        Self::compatible(
            "openai",
            base_url.as_deref().unwrap_or(OPENAI_BASE_URL),
            api_key,
        )
    }

    /// Any OpenAI-compatible service, with OpenAI's quirks until told otherwise.
    pub fn compatible(
        name: impl Into<String>,
        base_url: impl Into<String>,
        api_key: Option<Secret>,
    ) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            api_key,
            extra_headers: Vec::new(),
            quirks: OpenAiQuirks::default(),
        }
    }

    /// Adds a header sent with every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_headers.push((name.into(), value.into()));
        self
    }

    /// Sets a header sent with every request, replacing any of the same name (names compare
    /// case-insensitively, as HTTP does). Use it to override a service's default header.
    pub fn set_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.extra_headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
        self.extra_headers.push((name, value.into()));
        self
    }

    /// Sets the quirks.
    pub fn quirks(mut self, quirks: OpenAiQuirks) -> Self {
        self.quirks = quirks;
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

/// A [`ChatProvider`] speaking OpenAI Chat Completions to one service.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    config: OpenAiConfig,
    executor: HttpExecutor,
}

impl OpenAiProvider {
    /// A provider for the service `config` describes, sending through `executor`.
    pub fn new(config: OpenAiConfig, executor: HttpExecutor) -> Self {
        Self { config, executor }
    }

    /// The service's configuration.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    fn auth(&self) -> Auth {
        match &self.config.api_key {
            Some(key) if !key.is_empty() => Auth::Bearer(key.clone()),
            _ => Auth::None,
        }
    }

    fn chat_request(&self, body: Value, request: &ChatRequest) -> HttpRequest {
        let mut http =
            HttpRequest::post(self.config.url("chat/completions"), body).auth(self.auth());
        for (name, value) in self
            .config
            .extra_headers
            .iter()
            .chain(&request.extra_headers)
        {
            http = http.header(name.clone(), value.clone());
        }
        http
    }

    /// A request to `path` with the service's credentials and headers.
    fn service_request(&self, http: HttpRequest) -> HttpRequest {
        self.config
            .extra_headers
            .iter()
            .fold(http.auth(self.auth()), |http, (n, v)| {
                http.header(n.clone(), v.clone())
            })
    }
}

#[async_trait]
impl ChatProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let body = request_body(&self.config, &request, false)?;
        let http = self.chat_request(body, &request);
        let reply = self.executor.send_json(&self.config.name, http).await?;
        let mut response =
            parse_response_with_quirks(&self.config.name, &reply.body, &self.config.quirks)?;
        if let Some(id) = reply.request_id {
            response
                .metadata
                .insert("request_id".to_owned(), Value::String(id));
        }
        Ok(response)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let body = request_body(&self.config, &request, true)?;
        let http = self.chat_request(body, &request);
        let frames = self
            .executor
            .send_stream(&self.config.name, http, Framing::Sse)
            .await?;
        let decoder =
            ChunkDecoder::with_quirks(&self.config.name, &request.model, &self.config.quirks);
        Ok(crate::pump::events(frames, decoder))
    }

    async fn list_models(&self) -> Result<Vec<Model>> {
        let http = self.service_request(HttpRequest::get(self.config.url("models")));
        let reply = self.executor.send_json(&self.config.name, http).await?;
        parse_models(&self.config.name, &reply.body)
    }

    async fn health(&self) -> Result<()> {
        self.list_models().await.map(|_| ())
    }

    /// `POST {base_url}/embeddings` [openapi.yaml `/embeddings`, CreateEmbeddingRequest]. Every
    /// compatible service gets the same call; one without embeddings answers with an HTTP error
    /// that the executor maps (usually 404, [`ErrorKind::NotFound`]).
    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse> {
        let body = embed_body(&request)?;
        let http = self.service_request(HttpRequest::post(self.config.url("embeddings"), body));
        let reply = self.executor.send_json(&self.config.name, http).await?;
        parse_embeddings(&self.config.name, &request, &reply.body)
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings.

/// The JSON body of `POST /embeddings` for `request`: `model`, `input` as an array of strings,
/// `dimensions` when set, and `encoding_format: "float"` so vectors come back as numbers
/// rather than base64 [openapi.yaml CreateEmbeddingRequest].
///
/// Fails, before any IO, on a request without inputs or with an empty input (the schema
/// requires at least one non-empty string).
pub fn embed_body(request: &EmbedRequest) -> Result<Value> {
    if request.inputs.is_empty() {
        return Err(Error::validation(
            "inputs",
            "at least one input is required",
        ));
    }
    if let Some(i) = request.inputs.iter().position(String::is_empty) {
        return Err(Error::validation(
            format!("inputs[{i}]"),
            "an input must not be empty",
        ));
    }
    let mut body = Map::new();
    body.insert("model".to_owned(), Value::String(request.model.clone()));
    body.insert("input".to_owned(), json!(request.inputs));
    if let Some(n) = request.dimensions {
        body.insert("dimensions".to_owned(), Value::from(n));
    }
    body.insert("encoding_format".to_owned(), json!("float"));
    Ok(Value::Object(body))
}

/// Translates a `CreateEmbeddingResponse` (`{"data":[{"index","embedding":[…]}],"model",
/// "usage":{"prompt_tokens","total_tokens"}}`) into vectors in input order.
///
/// The vectors are sorted by `index` rather than trusted to arrive in order; a reply whose
/// indexes do not cover the inputs exactly once, or whose vectors are not arrays of numbers,
/// is a decode error keeping the body's first bytes.
pub fn parse_embeddings(
    provider: &str,
    request: &EmbedRequest,
    body: &Value,
) -> Result<EmbedResponse> {
    let undecodable =
        |why: String| Error::decode(why, first_bytes(&body.to_string())).with_provider(provider);
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return Err(undecodable(
            "the embeddings reply has no `data` array".to_owned(),
        ));
    };
    let mut vectors: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let Some(numbers) = item.get("embedding").and_then(Value::as_array) else {
            return Err(undecodable(format!(
                "embedding {index} is not an array of numbers (was `encoding_format` ignored?)"
            )));
        };
        let mut vector = Vec::with_capacity(numbers.len());
        for n in numbers {
            let Some(x) = n.as_f64() else {
                return Err(undecodable(format!(
                    "embedding {index} holds a non-number: {n}"
                )));
            };
            // Embeddings are f32 on the wire (OpenAI's SDKs decode base64 as float32).
            #[allow(clippy::cast_possible_truncation)]
            vector.push(x as f32);
        }
        vectors.push((index, vector));
    }
    vectors.sort_by_key(|(index, _)| *index);
    let in_order = vectors
        .iter()
        .enumerate()
        .all(|(i, (index, _))| *index == i as u64);
    if !in_order || vectors.len() != request.inputs.len() {
        return Err(undecodable(format!(
            "{} embeddings with indexes {:?} for {} inputs",
            vectors.len(),
            vectors.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            request.inputs.len()
        )));
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(&request.model);
    let mut response = EmbedResponse::new(provider, model);
    response.embeddings = vectors.into_iter().map(|(_, v)| v).collect();
    let usage = body.get("usage");
    let tokens = |field: &str| usage.and_then(|u| u.get(field)).and_then(Value::as_u64);
    response.usage = Usage::new(
        tokens("prompt_tokens")
            .or_else(|| tokens("total_tokens"))
            .unwrap_or(0),
        0,
    );
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Request translation.

/// The JSON body of `POST /chat/completions` for `request`, with `stream` set for streaming.
///
/// Pure: no IO, so the body can be checked against OpenAI's schema without a network. Fails
/// only on a request that cannot be expressed (a tool message without a tool result).
pub fn request_body(config: &OpenAiConfig, request: &ChatRequest, stream: bool) -> Result<Value> {
    let mut body = Map::new();
    body.insert("model".to_owned(), Value::String(request.model.clone()));
    body.insert(
        "messages".to_owned(),
        Value::Array(messages(request, &config.quirks)?),
    );
    if let Some(t) = request.temperature {
        body.insert("temperature".to_owned(), float(t));
    }
    if let Some(n) = request.max_tokens {
        body.insert(
            config.quirks.max_tokens_field.as_str().to_owned(),
            Value::from(n),
        );
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".to_owned(), float(p));
    }
    if !request.stop.is_empty() {
        body.insert("stop".to_owned(), json!(request.stop));
    }
    if let Some(seed) = request.seed {
        body.insert(
            config.quirks.seed_field.as_str().to_owned(),
            Value::from(seed),
        );
    }
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let mut function = Map::new();
                function.insert("name".to_owned(), Value::String(tool.name.clone()));
                if let Some(description) = &tool.description {
                    function.insert("description".to_owned(), Value::String(description.clone()));
                }
                function.insert("parameters".to_owned(), tool.parameters.clone());
                if let Some(strict) = tool.strict {
                    function.insert("strict".to_owned(), Value::Bool(strict));
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".to_owned(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".to_owned(), choice);
    }
    if let Some(format) = &request.response_format {
        let format = match format {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict},
            }),
        };
        body.insert("response_format".to_owned(), format);
    }
    if stream {
        body.insert("stream".to_owned(), Value::Bool(true));
        if config.quirks.stream_usage {
            body.insert("stream_options".to_owned(), json!({"include_usage": true}));
        }
    }
    // Last, so that a caller can override anything the translation chose.
    for (key, value) in &request.extra_body {
        body.insert(key.clone(), value.clone());
    }
    Ok(Value::Object(body))
}

/// An `f32` as the decimal a person wrote (`0.7`, not `0.699999988079071`).
fn float(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn messages(request: &ChatRequest, quirks: &OpenAiQuirks) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        // Tool results become one `tool` message each, whatever role carried them: providers
        // that put them in user messages (Anthropic) convert cleanly this way.
        let mut rest = Vec::with_capacity(message.content.len());
        for part in &message.content {
            match part {
                // Chat Completions has no error flag on tool results: `is_error` results go
                // as their content, which says what failed.
                ContentPart::ToolResult(result) => out.push(json!({
                    "role": "tool",
                    "tool_call_id": result.call_id,
                    "content": result.content,
                })),
                other => rest.push(other),
            }
        }
        let had_results = rest.len() < message.content.len();
        match message.role {
            // `system`, not `developer`: older models reject the newer role
            // (fx: error-400-unsupported-value-developer-role.response.json), and every
            // compatible server knows `system`. System messages carry text only.
            Role::System => out.push(json!({"role": "system", "content": joined_text(&rest)})),
            Role::User => {
                if !(had_results && rest.is_empty()) {
                    out.push(json!({"role": "user", "content": user_content(&rest)}));
                }
            }
            Role::Assistant => out.push(assistant_message(&rest, quirks)),
            Role::Tool => {
                if !rest.is_empty() && !had_results {
                    return Err(Error::validation(
                        format!("messages[{i}]"),
                        "a tool message needs a tool result part (with the call id it answers)",
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn joined_text(parts: &[&ContentPart]) -> String {
    let mut text = String::new();
    for part in parts {
        if let ContentPart::Text { text: t } = part {
            text.push_str(t);
        }
    }
    text
}

/// A user message's content: a plain string for text only, else an array of parts.
fn user_content(parts: &[&ContentPart]) -> Value {
    if !parts.iter().any(|p| matches!(p, ContentPart::Image { .. })) {
        return Value::String(joined_text(parts));
    }
    let array = parts
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
            ContentPart::Image { source, detail } => {
                // Inline images travel as data URLs (fx: chat-completion-vision-base64-image.request.json).
                let url = match source {
                    ImageSource::Url { url } => url.clone(),
                    ImageSource::Base64 { media_type, data } => {
                        format!("data:{media_type};base64,{data}")
                    }
                };
                let mut image = Map::new();
                image.insert("url".to_owned(), Value::String(url));
                if let Some(detail) = detail {
                    image.insert("detail".to_owned(), Value::String(detail.clone()));
                }
                Some(json!({"type": "image_url", "image_url": image}))
            }
            // Tool calls, reasoning and refusals are assistant content; a user message has
            // no place for them in this format.
            _ => None,
        })
        .collect();
    Value::Array(array)
}

fn assistant_message(parts: &[&ContentPart], quirks: &OpenAiQuirks) -> Value {
    let mut message = Map::new();
    message.insert("role".to_owned(), json!("assistant"));
    let mut text = joined_text(parts);
    if quirks.think_tags {
        // Reasoning goes back inline, as it came (fx: groq/stream-reasoning-then-tool-call-
        // with-x-groq-usage.request.json sends `<think>\n…\n</think>` as assistant content).
        let reasoning: String = parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Reasoning(r) if r.redacted.is_none() => Some(r.text.as_str()),
                _ => None,
            })
            .collect();
        if !reasoning.is_empty() {
            let mut inline = format!("{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}");
            if !text.is_empty() {
                inline.push_str("\n\n");
                inline.push_str(&text);
            }
            text = inline;
        }
    }
    let mut refusal: Option<String> = None;
    let mut calls = Vec::new();
    for part in parts {
        match part {
            ContentPart::Refusal { text } => refusal.get_or_insert_with(String::new).push_str(text),
            ContentPart::ToolCall(call) => calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments_string(&call.arguments)},
            })),
            // Reasoning is OpenAI's to keep: Chat Completions takes no reasoning input (and
            // DeepSeek rejects `reasoning_content` sent back); `<think>` services got it above.
            _ => {}
        }
    }
    // `content` may be left out when tool calls or a refusal stand in for it
    // [openapi.yaml ChatCompletionRequestAssistantMessage].
    if !text.is_empty() || (calls.is_empty() && refusal.is_none()) {
        message.insert("content".to_owned(), Value::String(text));
    }
    if let Some(refusal) = refusal {
        message.insert("refusal".to_owned(), Value::String(refusal));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".to_owned(), Value::Array(calls));
    }
    Value::Object(message)
}

/// Tool-call arguments as the JSON string OpenAI wants; arguments that were kept verbatim as a
/// string because they were not valid JSON go back unchanged.
fn arguments_string(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Response translation.

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    system_fingerprint: Option<String>,
    #[serde(default)]
    service_tier: Option<String>,
    /// Groq's own block: the request id on the first chunk (and on plain replies), and the
    /// usage again on the final chunk (fx: groq/vercel/stream-tool-call.chunks.jsonl,
    /// groq/chat-completion-text.response.json).
    #[serde(default)]
    x_groq: Option<WireXGroq>,
    /// Perplexity's sources: a list of URLs, and richer `search_results` (Perplexity chat
    /// completions docs). Kept verbatim in the metadata.
    #[serde(default)]
    citations: Option<Value>,
    #[serde(default)]
    search_results: Option<Value>,
}

#[derive(Deserialize)]
struct WireXGroq {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    delta: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// A `message` (complete) or a `delta` (a piece of one): the same fields, all optional.
#[derive(Deserialize, Default)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    /// Groq's parsed reasoning, sometimes with `channel: "analysis"`, which says nothing more
    /// (fx: groq/vercel/chat-completion-reasoning-parsed.json,
    /// groq/stream-reasoning-then-tool-call-with-x-groq-usage.response.sse).
    #[serde(default)]
    reasoning: Option<String>,
    /// DeepSeek's reasoning field (DeepSeek reasoning-model docs: "`reasoning_content` … at
    /// the same level as `content`").
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

impl WireMessage {
    /// The reasoning text in the field the service uses.
    fn take_reasoning(&mut self, field: ReasoningField) -> Option<String> {
        let text = match field {
            ReasoningField::Reasoning => self.reasoning.take(),
            ReasoningField::ReasoningContent => self.reasoning_content.take(),
            ReasoningField::Any => {
                let first = self.reasoning.take().filter(|r| !r.is_empty());
                first.or_else(|| self.reasoning_content.take())
            }
        };
        text.filter(|r| !r.is_empty())
    }
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<u64>,
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
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<WireCompletionDetails>,
    /// Groq's timings, in seconds (wire-formats.md, Groq "Usage has extra timing floats").
    #[serde(default)]
    queue_time: Option<f64>,
    #[serde(default)]
    prompt_time: Option<f64>,
    #[serde(default)]
    completion_time: Option<f64>,
    #[serde(default)]
    total_time: Option<f64>,
}

#[derive(Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    fn to_usage(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens.unwrap_or(0),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cached_input_tokens: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }

    /// The timing fields present, as `{"queue_time": s, …}` in seconds; `None` without any.
    fn timing(&self) -> Option<Value> {
        let mut timing = Map::new();
        for (name, value) in [
            ("queue_time", self.queue_time),
            ("prompt_time", self.prompt_time),
            ("completion_time", self.completion_time),
            ("total_time", self.total_time),
        ] {
            if let Some(n) = value.and_then(serde_json::Number::from_f64) {
                timing.insert(name.to_owned(), Value::Number(n));
            }
        }
        (!timing.is_empty()).then_some(Value::Object(timing))
    }
}

/// OpenAI's `finish_reason` normalized; `None` for a value OpenAI does not document (it is
/// still kept verbatim in [`ChatResponse::provider_finish_reason`]).
/// [openapi.yaml CreateChatCompletionResponse `finish_reason`]
pub fn finish_reason(raw: &str) -> Option<FinishReason> {
    match raw {
        "stop" => Some(FinishReason::Stop),
        "length" => Some(FinishReason::Length),
        "tool_calls" | "function_call" => Some(FinishReason::ToolCalls),
        "content_filter" => Some(FinishReason::ContentFilter),
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

/// Translates a Chat Completions response body (HTTP 200) from OpenAI into a
/// [`ChatResponse`]; [`parse_response_with_quirks`] for other services.
pub fn parse_response(provider: &str, body: &Value) -> Result<ChatResponse> {
    parse_response_with_quirks(provider, body, &OpenAiQuirks::default())
}

/// Translates a Chat Completions response body (HTTP 200) into a [`ChatResponse`], reading
/// the service's quirks (its reasoning field, `<think>` tags).
pub fn parse_response_with_quirks(
    provider: &str,
    body: &Value,
    quirks: &OpenAiQuirks,
) -> Result<ChatResponse> {
    let undecodable =
        |why: String| Error::decode(why, first_bytes(&body.to_string())).with_provider(provider);
    if body.get("error").is_some_and(|e| !e.is_null()) {
        // The executor turns a 200 carrying an error into an error already; this guards
        // callers that hand us a body directly.
        return Err(Error::new(ErrorKind::Provider, error_message(body))
            .with_provider(provider)
            .with_raw_body(first_bytes(&body.to_string())));
    }
    let mut wire = WireResponse::deserialize(body)
        .map_err(|e| undecodable(format!("not a chat completion: {e}")))?;
    let mut choices = wire.choices.take().unwrap_or_default();
    let position = choices
        .iter()
        .position(|c| c.index.unwrap_or(0) == 0)
        .unwrap_or(0);
    if position >= choices.len() {
        return Err(undecodable("the chat completion has no choices".to_owned()));
    }
    let mut choice = choices.swap_remove(position);

    let mut response = ChatResponse::new(provider, wire.model.take().unwrap_or_default());
    response.id = wire.id.take().unwrap_or_default();
    let message = choice.message.take().or(choice.delta.take());
    let mut refused = false;
    if let Some(mut message) = message {
        if let Some(reasoning) = message.take_reasoning(quirks.reasoning_field) {
            response.content.push(ContentPart::Reasoning(Reasoning {
                text: reasoning,
                ..Reasoning::default()
            }));
        }
        if let Some(text) = message.content.as_deref().filter(|t| !t.is_empty()) {
            if quirks.think_tags {
                let mut splitter = ThinkSplitter::default();
                let mut pieces = splitter.push(text);
                pieces.extend(splitter.finish());
                for piece in pieces {
                    push_piece(&mut response.content, piece);
                }
            } else {
                response.content.push(ContentPart::text(text));
            }
        }
        if let Some(text) = message.refusal.as_deref().filter(|t| !t.is_empty()) {
            refused = true;
            response.content.push(ContentPart::Refusal {
                text: text.to_owned(),
            });
        }
        for call in message.tool_calls.iter().flatten() {
            let function = call.function.as_ref();
            // Arguments are a JSON *string* (fx: chat-completion-parallel-tool-calls-gpt4o.json).
            response.content.push(ContentPart::ToolCall(ToolCall::new(
                call.id.clone().unwrap_or_default(),
                function.and_then(|f| f.name.clone()).unwrap_or_default(),
                ToolCall::parse_arguments(
                    function.and_then(|f| f.arguments.as_deref()).unwrap_or(""),
                ),
            )));
        }
    }
    response.provider_finish_reason = choice.finish_reason.clone();
    response.finish_reason = if refused {
        // A refusal ends with `stop` (fx: stream-refusal-gpt4o.sse) but is a content decision.
        Some(FinishReason::ContentFilter)
    } else {
        choice.finish_reason.as_deref().and_then(finish_reason)
    };
    let usage = wire
        .usage
        .take()
        .or_else(|| wire.x_groq.as_mut().and_then(|x| x.usage.take()));
    if let Some(usage) = &usage {
        response.usage = usage.to_usage();
        if let Some(timing) = usage.timing() {
            response.metadata.insert("timing".to_owned(), timing);
        }
    }
    insert_metadata(
        &mut response.metadata,
        wire.system_fingerprint,
        wire.service_tier,
    );
    insert_extras(
        &mut response.metadata,
        wire.x_groq.and_then(|x| x.id),
        wire.citations,
        wire.search_results,
    );
    Ok(response)
}

fn insert_metadata(
    metadata: &mut Map<String, Value>,
    fingerprint: Option<String>,
    tier: Option<String>,
) {
    if let Some(fp) = fingerprint {
        metadata.insert("system_fingerprint".to_owned(), Value::String(fp));
    }
    if let Some(tier) = tier {
        metadata.insert("service_tier".to_owned(), Value::String(tier));
    }
}

/// Metadata only some services send: Groq's request id, Perplexity's citations.
fn insert_extras(
    metadata: &mut Map<String, Value>,
    request_id: Option<String>,
    citations: Option<Value>,
    search_results: Option<Value>,
) {
    if let Some(id) = request_id.filter(|id| !id.is_empty()) {
        metadata.insert("request_id".to_owned(), Value::String(id));
    }
    if let Some(citations) = citations.filter(|c| !c.is_null()) {
        metadata.insert("citations".to_owned(), citations);
    }
    if let Some(results) = search_results.filter(|r| !r.is_null()) {
        metadata.insert("search_results".to_owned(), results);
    }
}

fn error_message(body: &Value) -> String {
    let error = &body["error"];
    error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .unwrap_or("the provider returned an error")
        .to_owned()
}

/// Translates a `GET /models` body (`{"data": [{"id": …}, …]}`) into models.
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
// Inline `<think>` reasoning.

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";

/// A piece of content after `<think>` tags are taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Reasoning(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ThinkState {
    /// Nothing but whitespace yet: a `<think>` may still open.
    #[default]
    Start,
    /// Inside `<think>`; `started` once its leading whitespace is behind.
    Reasoning { started: bool },
    /// Answer text; `after_think` while the whitespace after `</think>` is being skipped.
    Text { after_think: bool },
}

/// Splits a leading `<think>…</think>` out of content that arrives in pieces cut anywhere,
/// tags included (fx: groq/chat-completion-reasoning-format-raw-think-tags.response.json).
///
/// Only a `<think>` that opens the content counts: a model writing about the tag later in
/// its answer is answering, not thinking. The whitespace just inside the tags and just after
/// `</think>` is layout, not content, and is dropped; sending reasoning back restores it.
#[derive(Debug, Default)]
struct ThinkSplitter {
    state: ThinkState,
    /// Text held back: what may yet be a tag, or whitespace whose role is not known yet.
    held: String,
}

impl ThinkSplitter {
    fn push(&mut self, delta: &str) -> Vec<Piece> {
        self.held.push_str(delta);
        let mut out = Vec::new();
        loop {
            match self.state {
                ThinkState::Start => {
                    let trimmed = self.held.trim_start();
                    if let Some(rest) = trimmed.strip_prefix(THINK_OPEN) {
                        self.held = rest.to_owned();
                        self.state = ThinkState::Reasoning { started: false };
                    } else if THINK_OPEN.starts_with(trimmed) {
                        // Whitespace, or the start of the tag: wait for more.
                        return out;
                    } else {
                        self.state = ThinkState::Text { after_think: false };
                    }
                }
                ThinkState::Reasoning { started } => {
                    if !started {
                        let trimmed = self.held.trim_start();
                        if trimmed.is_empty() {
                            self.held.clear();
                            return out;
                        }
                        self.held = trimmed.to_owned();
                        self.state = ThinkState::Reasoning { started: true };
                    }
                    if let Some(at) = self.held.find(THINK_CLOSE) {
                        let reasoning = self.held[..at].trim_end();
                        if !reasoning.is_empty() {
                            out.push(Piece::Reasoning(reasoning.to_owned()));
                        }
                        self.held = self.held[at + THINK_CLOSE.len()..].to_owned();
                        self.state = ThinkState::Text { after_think: true };
                        continue;
                    }
                    let keep = held_back(&self.held);
                    let emit = self.held.len() - keep;
                    if emit > 0 {
                        let rest = self.held.split_off(emit);
                        out.push(Piece::Reasoning(std::mem::replace(&mut self.held, rest)));
                    }
                    return out;
                }
                ThinkState::Text { after_think } => {
                    if after_think {
                        let trimmed = self.held.trim_start();
                        if trimmed.is_empty() {
                            self.held.clear();
                            return out;
                        }
                        self.held = trimmed.to_owned();
                        self.state = ThinkState::Text { after_think: false };
                    }
                    if !self.held.is_empty() {
                        out.push(Piece::Text(std::mem::take(&mut self.held)));
                    }
                    return out;
                }
            }
        }
    }

    /// What is still held when the content ends: nothing is dropped but layout whitespace.
    fn finish(&mut self) -> Vec<Piece> {
        let held = std::mem::take(&mut self.held);
        match self.state {
            // A lone `<thi…` or whitespace was text after all.
            ThinkState::Start if !held.is_empty() => vec![Piece::Text(held)],
            // An unclosed `<think>` (the reply was cut): its text is still reasoning.
            ThinkState::Reasoning { .. } if !held.trim_end().is_empty() => {
                vec![Piece::Reasoning(held.trim_end().to_owned())]
            }
            _ => Vec::new(),
        }
    }

    /// What is held, as pieces, without changing state (for partial replies on errors).
    fn pending(&self) -> Option<Piece> {
        let held = self.held.trim_end();
        if held.is_empty() {
            return None;
        }
        Some(match self.state {
            ThinkState::Reasoning { .. } => Piece::Reasoning(held.to_owned()),
            _ => Piece::Text(self.held.clone()),
        })
    }
}

/// How many trailing bytes of reasoning to hold back: a suffix that may begin `</think>`,
/// and the whitespace before it, which is dropped if the tag follows.
fn held_back(text: &str) -> usize {
    let tag = (1..THINK_CLOSE.len())
        .rev()
        .find(|&k| text.ends_with(&THINK_CLOSE[..k]))
        .unwrap_or(0);
    let before = &text[..text.len() - tag];
    tag + (before.len() - before.trim_end().len())
}

/// Appends a piece to content, extending the last part when it is of the same kind.
fn push_piece(content: &mut Vec<ContentPart>, piece: Piece) {
    match (content.last_mut(), piece) {
        (Some(ContentPart::Text { text }), Piece::Text(more)) => text.push_str(&more),
        (Some(ContentPart::Reasoning(r)), Piece::Reasoning(more))
            if r.signature.is_none() && r.redacted.is_none() =>
        {
            r.text.push_str(&more);
        }
        (_, Piece::Text(text)) => content.push(ContentPart::text(text)),
        (_, Piece::Reasoning(text)) => content.push(ContentPart::Reasoning(Reasoning {
            text,
            ..Reasoning::default()
        })),
    }
}

// ---------------------------------------------------------------------------------------------
// Stream translation.

/// Turns the `data:` payloads of a Chat Completions SSE stream into stream events.
///
/// Feed it every payload with [`ChunkDecoder::data`], then call [`ChunkDecoder::end`] when the
/// body ends (or after `[DONE]`). Pure, so it is tested without a network.
#[derive(Debug)]
pub struct ChunkDecoder {
    provider: String,
    quirks: OpenAiQuirks,
    acc: StreamAccumulator,
    think: Option<ThinkSplitter>,
    chunks: usize,
    done: bool,
    refused: bool,
    metadata_seen: bool,
    last_usage: Option<Usage>,
}

impl ChunkDecoder {
    /// A decoder for a reply from OpenAI (`provider`) to a request for `model`.
    pub fn new(provider: &str, model: &str) -> Self {
        Self::with_quirks(provider, model, &OpenAiQuirks::default())
    }

    /// A decoder for a reply from a service with `quirks`.
    pub fn with_quirks(provider: &str, model: &str, quirks: &OpenAiQuirks) -> Self {
        Self {
            provider: provider.to_owned(),
            quirks: *quirks,
            acc: StreamAccumulator::new(provider, model),
            think: quirks.think_tags.then(ThinkSplitter::default),
            chunks: 0,
            done: false,
            refused: false,
            metadata_seen: false,
            last_usage: None,
        }
    }

    /// Whether `[DONE]` arrived: nothing more is expected.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Attaches what was received so far to a mid-stream error (Groq's `event: error` after
    /// HTTP 200, fx: groq/stream-midstream-error-event-tool-use-failed.response.sse), text
    /// still held back by the `<think>` splitter included.
    pub fn fail(&self, err: Error) -> Error {
        let mut partial = self.acc.partial();
        if let Some(piece) = self.think.as_ref().and_then(ThinkSplitter::pending) {
            push_piece(&mut partial.content, piece);
        }
        err.or_provider(&self.provider).with_partial(partial)
    }

    /// Decodes one SSE `data:` payload.
    pub fn data(&mut self, data: &str) -> Result<Vec<StreamEvent>> {
        let data = data.trim();
        if data.is_empty() || self.done {
            return Ok(Vec::new());
        }
        // The stream ends with a literal `data: [DONE]` [wire-formats.md, fx: stream-*.sse].
        if data == "[DONE]" {
            self.done = true;
            return Ok(self.flush_think());
        }
        let value: Value = match serde_json::from_str(data) {
            Ok(value) => value,
            Err(e) => {
                return Err(self.fail(Error::decode(
                    format!("malformed stream chunk: {e}"),
                    first_bytes(data),
                )));
            }
        };
        if value.get("error").is_some_and(|e| !e.is_null()) {
            // The executor normally raises in-band errors itself (openai-python does the same,
            // wire-formats.md "Mid-stream"); this keeps one that slipped through from being lost.
            return Err(self.fail(
                Error::new(ErrorKind::Provider, error_message(&value))
                    .with_raw_body(first_bytes(data)),
            ));
        }
        let chunk = match WireResponse::deserialize(&value) {
            Ok(chunk) => chunk,
            Err(e) => {
                return Err(self.fail(Error::decode(
                    format!("unexpected stream chunk: {e}"),
                    first_bytes(data),
                )));
            }
        };
        self.chunks += 1;
        Ok(self.chunk(chunk))
    }

    fn chunk(&mut self, mut chunk: WireResponse) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        let groq_id = chunk.x_groq.as_mut().and_then(|x| x.id.take());
        if !self.metadata_seen {
            self.metadata_seen = true;
            let resp = self.acc.response_mut();
            if let Some(id) = chunk.id.take() {
                resp.id = id;
            }
            if let Some(model) = chunk.model.take().filter(|m| !m.is_empty()) {
                resp.model = model;
            }
            insert_metadata(
                &mut resp.metadata,
                chunk.system_fingerprint.take(),
                chunk.service_tier.take(),
            );
        }
        // Groq names its request id on the first chunk and again on the last; Perplexity may
        // send its citations on any chunk. The latest word is kept.
        insert_extras(
            &mut self.acc.response_mut().metadata,
            groq_id,
            chunk.citations.take(),
            chunk.search_results.take(),
        );
        for choice in chunk.choices.take().into_iter().flatten() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.delta.or(choice.message) {
                self.delta(delta, &mut events);
            }
            if let Some(raw) = choice.finish_reason {
                events.extend(self.flush_think());
                events.extend(self.acc.end_tool_calls());
                let reason = if self.refused {
                    // A refusal ends with `stop` (fx: stream-refusal-gpt4o.sse).
                    Some(FinishReason::ContentFilter)
                } else {
                    finish_reason(&raw)
                };
                self.acc.finish_reason(reason, Some(&raw));
            }
        }
        // OpenAI's usage chunk has `choices: []`; the others carry `usage: null` or none
        // (fx: stream-text-gpt41nano-with-usage.chunks.jsonl, stream-text-gpt4o.sse). Groq
        // puts it on the chunk with the finish reason, both top-level and in `x_groq`
        // (fx: groq/vercel/stream-tool-call.chunks.jsonl): one figure, reported once.
        let usage = chunk.usage.or_else(|| chunk.x_groq.and_then(|x| x.usage));
        if let Some(usage) = usage {
            if let Some(timing) = usage.timing() {
                self.acc
                    .response_mut()
                    .metadata
                    .insert("timing".to_owned(), timing);
            }
            let usage = usage.to_usage();
            if self.last_usage != Some(usage) {
                self.last_usage = Some(usage);
                events.push(self.acc.usage(usage));
            }
        }
        events
    }

    fn delta(&mut self, mut delta: WireMessage, events: &mut Vec<StreamEvent>) {
        if let Some(reasoning) = delta.take_reasoning(self.quirks.reasoning_field) {
            events.push(self.acc.reasoning(&reasoning));
        }
        // The first delta carries `content: ""` (or null); empty pieces say nothing.
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            match self.think.as_mut() {
                Some(think) => {
                    for piece in think.push(&text) {
                        events.push(self.emit(piece));
                    }
                }
                None => events.push(self.acc.text(&text)),
            }
        }
        if let Some(refusal) = delta.refusal.filter(|t| !t.is_empty()) {
            self.refused = true;
            events.push(self.acc.refusal(&refusal));
        }
        // Tool calls come as fragments keyed by `index`: the first has the id and name, later
        // ones only argument pieces (fx: stream-parallel-tool-calls-gpt4o.sse). Groq sends the
        // whole call in one fragment (fx: groq/vercel/stream-tool-call.chunks.jsonl).
        for call in delta.tool_calls.into_iter().flatten() {
            let index = usize::try_from(call.index.unwrap_or(0)).unwrap_or(usize::MAX);
            let (name, arguments) = match call.function {
                Some(f) => (f.name, f.arguments),
                None => (None, None),
            };
            if call.id.is_some() || name.is_some() {
                events.push(self.acc.tool_call_start(
                    index,
                    call.id.as_deref().unwrap_or(""),
                    name.as_deref().unwrap_or(""),
                ));
            }
            if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
                events.push(self.acc.tool_call_delta(index, &arguments));
            }
        }
    }

    fn emit(&mut self, piece: Piece) -> StreamEvent {
        match piece {
            Piece::Text(text) => self.acc.text(&text),
            Piece::Reasoning(text) => self.acc.reasoning(&text),
        }
    }

    /// The events for text the `<think>` splitter still holds, once the content is over.
    fn flush_think(&mut self) -> Vec<StreamEvent> {
        let pieces = self
            .think
            .as_mut()
            .map(ThinkSplitter::finish)
            .unwrap_or_default();
        pieces.into_iter().map(|p| self.emit(p)).collect()
    }

    /// The events that close the stream when the body ends: the complete response, or an
    /// error when the provider never said it was done.
    pub fn end(mut self) -> Result<Vec<StreamEvent>> {
        if self.chunks == 0 && !self.done {
            return Err(self
                .acc
                .truncated("the stream ended before any chunk arrived"));
        }
        let mut events = self.flush_think();
        if !self.done && !self.acc.is_finished() {
            return Err(self
                .acc
                .truncated("the stream ended without `[DONE]` or a finish reason"));
        }
        let (more, _) = self.acc.finish();
        events.extend(more);
        Ok(events)
    }
}

/// The shared stream pump drives this decoder.
impl crate::pump::FrameDecoder for ChunkDecoder {
    fn data(&mut self, data: &str) -> Result<Vec<StreamEvent>> {
        ChunkDecoder::data(self, data)
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

#[cfg(test)]
mod tests;
