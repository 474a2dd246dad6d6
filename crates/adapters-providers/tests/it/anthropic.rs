//! The Anthropic Messages adapter against every recording in `shared/fixtures/anthropic/`: one
//! data-driven conformance case per fixture here, focused tests (round trips, byte splits,
//! truncation, headers) in the submodules.

use std::sync::Arc;
use std::time::Duration;

use exllm_adapters_providers::anthropic::{self, AnthropicConfig, AnthropicProvider};
use exllm_adapters_providers::conformance::{self, Aspect, Case, Expect, RecordedRequest};
use exllm_core::{
    ChatProvider, ChatRequest, ContentPart, ErrorKind, FinishReason, Message, ResponseFormat, Role,
    Secret, ToolCall, ToolChoice, ToolDefinition,
};
use exllm_infrastructure::http::{HttpConfig, HttpExecutor};
use exllm_infrastructure::testing::Scripted;
use serde_json::{Value, json};

mod round_trip;
mod stream;
mod wire;

/// The API key the tests send; checks look for it in `x-api-key`.
pub const KEY: &str = "sk-ant-test-0123456789";

/// Fixtures deliberately not used, with the reason. Every other file in
/// `shared/fixtures/anthropic/` is used by a case or test (checked by
/// `every_fixture_is_used_or_listed`).
pub const SKIPPED: &[(&str, &str)] = &[];

/// The text of `shared/fixtures/anthropic/{name}`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("parse {name}: {e}"))
}

/// The status and replayable headers of a recorded response: the pydantic-ai / llm-anthropic
/// `.http.json` shape (`response.status.code`, header lists) or the transcribed shape
/// (`status`, header strings). Framing and encoding headers are dropped: the fixture server
/// frames the body itself and the bodies are stored decompressed (PROVENANCE.md).
pub fn recorded_head(name: &str) -> (u16, Vec<(String, String)>) {
    let http = fixture_json(name);
    let (status, headers) = match http.get("response") {
        Some(response) => (&response["status"]["code"], &response["headers"]),
        None => (&http["status"], &http["headers"]),
    };
    let status = status
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or_else(|| panic!("{name}: no status"));
    let mut out = Vec::new();
    for (header, value) in headers.as_object().into_iter().flatten() {
        let lower = header.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "content-length" | "transfer-encoding" | "content-encoding" | "connection"
        ) {
            continue;
        }
        match value {
            Value::Array(values) => out.extend(
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|v| (header.clone(), v.to_owned())),
            ),
            Value::String(v) => out.push((header.clone(), v.clone())),
            _ => {}
        }
    }
    (status, out)
}

/// The recorded response `body` with the status and headers of `head` (an `.http.json`).
pub fn replay(head: &str, body: &str) -> Scripted {
    let (status, headers) = recorded_head(head);
    let scripted = if body.ends_with(".sse") {
        Scripted::sse(status, fixture(body))
    } else {
        Scripted::json(status, fixture(body))
    };
    headers
        .into_iter()
        .fold(scripted, |s, (name, value)| s.header(name, value))
}

/// A `.chunks.jsonl` recording (SSE framing stripped, PROVENANCE.md) framed again as Anthropic
/// sends it: `event: <type>` and `data: <json>` per payload.
pub fn jsonl_to_sse(jsonl: &str) -> String {
    let mut sse = String::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).expect("a JSON payload");
        let kind = value["type"].as_str().expect("a payload type");
        sse.push_str(&format!("event: {kind}\ndata: {line}\n\n"));
    }
    sse
}

/// The JSON `data:` payloads of an SSE recording, in order.
pub fn sse_payloads(sse: &str) -> Vec<Value> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).expect("a JSON payload"))
        .collect()
}

/// The concatenation of `delta[field]` over the `content_block_delta`s of an SSE recording.
pub fn concat_deltas(sse: &str, field: &str) -> String {
    sse_payloads(sse)
        .iter()
        .filter(|p| p["type"] == "content_block_delta")
        .filter_map(|p| p["delta"][field].as_str().map(str::to_owned))
        .collect()
}

/// An HTTP executor with deadlines short enough for tests and long enough for a loaded CI box.
pub fn executor() -> HttpExecutor {
    HttpExecutor::new(HttpConfig {
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..HttpConfig::default()
    })
    .expect("an HTTP executor")
}

/// The Anthropic provider aimed at `base_url` (a fixture server's root).
pub fn anthropic_at(base_url: &str) -> AnthropicProvider {
    AnthropicProvider::new(
        AnthropicConfig::new(Some(Secret::new(KEY)), Some(base_url.to_owned())),
        executor(),
    )
}

/// The provider the conformance suite runs against.
pub fn provider(base_url: &str) -> Arc<dyn ChatProvider> {
    Arc::new(anthropic_at(base_url))
}

/// The request reached `POST /v1/messages` with Anthropic's headers and `stream` as asked.
fn messages_call(stream: bool) -> Expect {
    Expect::request(move |req: &RecordedRequest| {
        check_headers(req)?;
        if req.method != "POST" || req.path != "/v1/messages" {
            return Err(format!("sent {} {}", req.method, req.path));
        }
        let body = req.body_json().ok_or("the body is not JSON")?;
        if body["stream"] != json!(stream) {
            return Err(format!("stream is {}, expected {stream}", body["stream"]));
        }
        if !body["max_tokens"].is_u64() {
            return Err("max_tokens, required by Anthropic, is missing".to_owned());
        }
        Ok(())
    })
}

/// `x-api-key` (never a bearer token), `anthropic-version` and a JSON content type.
pub fn check_headers(req: &RecordedRequest) -> Result<(), String> {
    if req.header("x-api-key") != Some(KEY) {
        return Err(format!("x-api-key is {:?}", req.header("x-api-key")));
    }
    if req.header("authorization").is_some() {
        return Err("the key must not also go as a bearer token".to_owned());
    }
    if req.header("anthropic-version") != Some("2023-06-01") {
        return Err(format!(
            "anthropic-version is {:?}",
            req.header("anthropic-version")
        ));
    }
    if req.body_text().is_empty() {
        return Ok(());
    }
    match req.header("content-type") {
        Some(v) if v.starts_with("application/json") => Ok(()),
        other => Err(format!("content-type is {other:?}")),
    }
}

/// The recorded request body of `stem` must be contained in what the adapter sent.
fn matches_recorded(stem: &str) -> Expect {
    Expect::body_contains(fixture_json(&format!("{stem}.request.json")))
}

fn tool_calls(calls: &[(&str, Value)]) -> Expect {
    Expect::ToolCalls(
        calls
            .iter()
            .map(|(name, args)| ((*name).to_owned(), args.clone()))
            .collect(),
    )
}

fn usage(input: u64, output: u64) -> Expect {
    Expect::Usage { input, output }
}

/// The user message pydantic-ai and llm-anthropic record: one text block.
fn user(text: &str) -> Message {
    Message::user(text)
}

/// `{"properties": {}, "type": "object"}`, llm-anthropic's schema for a tool without arguments.
fn no_args_tool(name: &str) -> ToolDefinition {
    ToolDefinition::new(name, "", json!({"properties": {}, "type": "object"}))
}

fn text_of_recorded(stem: &str) -> String {
    fixture_json(&format!("{stem}.response.json"))["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"].as_str())
        .collect()
}

/// One case per fixture, covering every aspect the recordings show.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(chat_cases());
    cases.extend(error_cases());
    cases.extend(stream_cases());
    cases.extend(llm_anthropic_cases());
    cases.extend(rust_genai_cases());
    cases
}

fn chat_cases() -> Vec<Case> {
    let parallel = fixture_json("messages-parallel-tool-use.request.json");
    let system = parallel["system"].as_str().unwrap_or_default().to_owned();
    let entity_tool = ToolDefinition::new(
        "retrieve_entity_info",
        "Get the knowledge about the given entity.",
        parallel["tools"][0]["input_schema"].clone(),
    );
    let family = "Alice, Bob, Charlie and Daisy are a family. Who is the youngest?";

    // Turn two of the family conversation, from core types: the assistant message is turn
    // one's parsed reply, the tool results are one `tool` message each.
    let turn_one = anthropic::parse_response(
        "anthropic",
        &fixture_json("messages-parallel-tool-use.response.json"),
        None,
    )
    .expect("turn one parses");
    let answers = [
        "alice is bob's wife",
        "bob is alice's husband",
        "charlie is alice's son",
        "daisy is bob's daughter and charlie's younger sister",
    ];
    let mut followup = ChatRequest::new("claude-haiku-4-5")
        .system(system.clone())
        .message(user(family))
        .message(turn_one.to_message())
        .tool(entity_tool.clone())
        .tool_choice(ToolChoice::Auto)
        .max_tokens(4096);
    for (call, answer) in turn_one.tool_calls().into_iter().zip(answers) {
        followup = followup.message(Message::tool_result(call.id.clone(), answer));
    }

    let thinking = fixture_json("messages-thinking-tool-use.response.json");
    let thought = thinking["content"][0].clone();

    vec![
        Case::new(
            "messages-text.json",
            Aspect::Text,
            vec![Scripted::json(200, fixture("messages-text.json"))],
            ChatRequest::new("claude-sonnet-4-5").user("Hello, how are you?"),
        )
        .expect(Expect::Text(
            "Hello! I'm doing well, thanks for asking. How are you doing today? Is there anything I can help you with?".into(),
        ))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(usage(12, 29))
        .expect(messages_call(false))
        // No max_tokens asked: the default goes, since Anthropic requires one.
        .expect(Expect::body_contains(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, how are you?"}]}],
        })))
        .expect(Expect::response(|r| {
            (r.id == "msg_01VdEjxAP5ahtHKrrRdNBteQ"
                && r.model == "claude-sonnet-4-5-20250929"
                && r.provider == "anthropic"
                && r.provider_finish_reason.as_deref() == Some("end_turn")
                && r.metadata["service_tier"] == "standard")
                .then_some(())
                .ok_or_else(|| format!("id/model/metadata: {r:?}"))
        })),
        Case::new(
            "messages-text-with-system",
            Aspect::Text,
            vec![replay(
                "messages-text-with-system.http.json",
                "messages-text-with-system.response.json",
            )],
            ChatRequest::new("claude-3-opus-latest")
                .system("You are a helpful assistant.\n\n")
                .user("What is the capital of France?")
                .max_tokens(4096),
        )
        .expect(matches_recorded("messages-text-with-system"))
        .expect(messages_call(false))
        .expect(Expect::Text("The capital of France is Paris.".into()))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(usage(20, 10)),
        Case::new(
            "messages-parallel-tool-use",
            Aspect::ToolCall,
            vec![replay(
                "messages-parallel-tool-use.http.json",
                "messages-parallel-tool-use.response.json",
            )],
            ChatRequest::new("claude-haiku-4-5")
                .system(system)
                .user(family)
                .tool(entity_tool)
                .tool_choice(ToolChoice::Auto)
                .max_tokens(4096),
        )
        .expect(matches_recorded("messages-parallel-tool-use"))
        .expect(tool_calls(&[
            ("retrieve_entity_info", json!({"name": "Alice"})),
            ("retrieve_entity_info", json!({"name": "Bob"})),
            ("retrieve_entity_info", json!({"name": "Charlie"})),
            ("retrieve_entity_info", json!({"name": "Daisy"})),
        ]))
        .expect(Expect::Text(text_of_recorded("messages-parallel-tool-use")))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(usage(423, 202))
        .expect(Expect::response(|r| {
            let ids: Vec<&str> = r.tool_calls().iter().map(|c| c.id.as_str()).collect();
            (ids.first() == Some(&"toolu_0167cfEnoQaPviGdVXA95zcu") && ids.len() == 4)
                .then_some(())
                .ok_or_else(|| format!("tool call ids {ids:?}"))
        })),
        // The tool results of turn two: four `tool` messages become one user message of
        // `tool_result` blocks, exactly as recorded.
        Case::new(
            "messages-tool-result-followup",
            Aspect::ToolCall,
            vec![replay(
                "messages-tool-result-followup.http.json",
                "messages-tool-result-followup.response.json",
            )],
            followup,
        )
        .expect(matches_recorded("messages-tool-result-followup"))
        .expect(Expect::Text(text_of_recorded("messages-tool-result-followup")))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(usage(771, 77)),
        Case::new(
            "messages-thinking-tool-use",
            Aspect::Reasoning,
            vec![replay(
                "messages-thinking-tool-use.http.json",
                "messages-thinking-tool-use.response.json",
            )],
            ChatRequest::new("claude-sonnet-4-0")
                .user("What is the largest city in the user country?")
                .tool(ToolDefinition::new(
                    "get_user_country",
                    "",
                    json!({"additionalProperties": false, "properties": {}, "type": "object"}),
                ))
                .tool_choice(ToolChoice::Auto)
                .max_tokens(4096)
                .extra_body("thinking", json!({"budget_tokens": 3000, "type": "enabled"})),
        )
        .expect(matches_recorded("messages-thinking-tool-use"))
        .expect(tool_calls(&[("get_user_country", json!({}))]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(usage(398, 155))
        .expect(Expect::response(move |r| match r.content.first() {
            Some(ContentPart::Reasoning(reasoning))
                if json!(reasoning.text) == thought["thinking"]
                    && json!(reasoning.signature) == thought["signature"]
                    && reasoning.redacted.is_none() =>
            {
                Ok(())
            }
            other => Err(format!("the first part is not the signed thinking: {other:?}")),
        })),
        Case::new(
            "messages-vision-image-url",
            Aspect::Vision,
            vec![replay(
                "messages-vision-image-url.http.json",
                "messages-vision-image-url.response.json",
            )],
            ChatRequest::new("claude-haiku-4-5")
                .message(Message::new(
                    Role::User,
                    vec![
                        ContentPart::text("What is this vegetable?"),
                        ContentPart::image_url(
                            "https://t3.ftcdn.net/jpg/00/85/79/92/360_F_85799278_0BBGV9OAdQDTLnKwAPBCcg1J7QtiieJY.jpg",
                        ),
                    ],
                ))
                .max_tokens(4096),
        )
        .expect(matches_recorded("messages-vision-image-url"))
        .expect(Expect::Text(text_of_recorded("messages-vision-image-url")))
        .expect(usage(296, 91)),
        // Structured output is a forced tool; this recording answers in text, so the request
        // shape is what is checked (the mapping back is checked on stream-tool-use-json).
        Case::new(
            "messages-text.json (structured output request)",
            Aspect::StructuredOutput,
            vec![Scripted::json(200, fixture("messages-text.json"))],
            ChatRequest::new("claude-sonnet-4-5")
                .user("Hello, how are you?")
                .response_format(ResponseFormat::JsonSchema {
                    name: "mood".into(),
                    schema: json!({"type": "object", "properties": {"mood": {"type": "string"}}}),
                    strict: true,
                }),
        )
        .expect(Expect::body_contains(json!({
            "tools": [{
                "name": "mood",
                "input_schema": {"type": "object", "properties": {"mood": {"type": "string"}}},
            }],
            "tool_choice": {"type": "tool", "name": "mood"},
        }))),
    ]
}

fn error_case(name: &str, reply: Scripted, kind: ErrorKind, status: u16) -> Case {
    Case::new(
        name,
        Aspect::Error,
        vec![reply],
        ChatRequest::new("claude-sonnet-4-5").user("Hi"),
    )
    .expect(Expect::ErrorKind(kind))
    .expect(Expect::ErrorStatus(status))
    .expect(messages_call(false))
}

fn error_cases() -> Vec<Case> {
    let mut invalid = error_case(
        "error-400-invalid-request",
        replay(
            "error-400-invalid-request.http.json",
            "error-400-invalid-request.response.json",
        ),
        ErrorKind::InvalidRequest,
        400,
    );
    invalid.request = ChatRequest::new("claude-opus-4-6")
        .user("What is 2+2?")
        .max_tokens(4096)
        .extra_body("output_config", json!({"effort": "xhigh"}));
    let invalid = invalid.expect(matches_recorded("error-400-invalid-request"));

    // Recorded against `/v1/messages/count_tokens`, which ExLLM does not call; the body and
    // status are the same for an unknown model on `/v1/messages`, and the recorded request is
    // contained in ours (we add max_tokens and stream).
    let mut not_found = error_case(
        "error-404-not-found-count-tokens",
        replay(
            "error-404-not-found-count-tokens.http.json",
            "error-404-not-found-count-tokens.response.json",
        ),
        ErrorKind::NotFound,
        404,
    );
    not_found.request = ChatRequest::new("claude-does-not-exist").user("hello");
    let not_found = not_found.expect(matches_recorded("error-404-not-found-count-tokens"));

    let midstream = Case::new(
        "stream-midstream-error-overloaded.ASSEMBLED.sse",
        Aspect::Error,
        vec![Scripted::sse(
            200,
            fixture("stream-midstream-error-overloaded.ASSEMBLED.sse"),
        )],
        ChatRequest::new("claude-sonnet-4-5").user("Hi"),
    )
    .streamed()
    .expect(Expect::ErrorKind(ErrorKind::Unavailable))
    .expect(messages_call(true));

    vec![
        invalid,
        error_case(
            "error-400-tool-result-without-tool-use.json",
            Scripted::json(400, fixture("error-400-tool-result-without-tool-use.json")),
            ErrorKind::InvalidRequest,
            400,
        ),
        error_case(
            "error-400-tool-use-without-tool-result.json",
            Scripted::json(400, fixture("error-400-tool-use-without-tool-result.json")),
            ErrorKind::InvalidRequest,
            400,
        ),
        error_case(
            "error-401-authentication.json",
            Scripted::json(401, fixture("error-401-authentication.json")),
            ErrorKind::Auth,
            401,
        ),
        not_found,
        error_case(
            "error-429-rate-limit.json",
            replay(
                "error-429-rate-limit.headers.json",
                "error-429-rate-limit.json",
            ),
            ErrorKind::RateLimited,
            429,
        ),
        error_case(
            "error-529-overloaded.json",
            replay(
                "error-529-overloaded.http.json",
                "error-529-overloaded.json",
            ),
            ErrorKind::Unavailable,
            529,
        ),
        error_case(
            "error-529-overloaded-with-request-id.json",
            Scripted::json(529, fixture("error-529-overloaded-with-request-id.json")),
            ErrorKind::Unavailable,
            529,
        ),
        midstream,
    ]
}

fn streamed(name: &str, aspect: Aspect, reply: Scripted, request: ChatRequest) -> Case {
    Case::new(name, aspect, vec![reply], request)
        .streamed()
        .expect(messages_call(true))
}

fn stream_cases() -> Vec<Case> {
    let thinking_sse = fixture("stream-thinking-text.response.sse");
    let thought = concat_deltas(&thinking_sse, "thinking");
    let signature = concat_deltas(&thinking_sse, "signature");
    let redacted: Vec<Value> = sse_payloads(&fixture("stream-redacted-thinking.response.sse"))
        .iter()
        .filter(|p| p["content_block"]["type"] == "redacted_thinking")
        .map(|p| p["content_block"]["data"].clone())
        .collect();
    let partial_input = concat_deltas(
        &fixture("stream-tool-use-fine-grained-max-tokens.sse"),
        "partial_json",
    );

    vec![
        streamed(
            "stream-text-short",
            Aspect::StreamedText,
            replay(
                "stream-text-short.http.json",
                "stream-text-short.response.sse",
            ),
            ChatRequest::new("claude-sonnet-4-5")
                .user("What is 1+1? Answer with just the number.")
                .max_tokens(32000),
        )
        .expect(matches_recorded("stream-text-short"))
        .expect(Expect::Text("2".into()))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(usage(20, 5))
        .expect(Expect::response(|r| {
            (r.id == "msg_018E1hg8GoVTGEKQY3ovMcSJ" && r.model == "claude-sonnet-4-5-20250929")
                .then_some(())
                .ok_or_else(|| format!("id {} model {}", r.id, r.model))
        })),
        streamed(
            "stream-text-basic.sdk-example.sse",
            Aspect::StreamedText,
            Scripted::sse(200, fixture("stream-text-basic.sdk-example.sse")),
            ChatRequest::new("claude-3-opus-latest").user("Hi"),
        )
        .expect(Expect::Text("Hello there!".into()))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(usage(11, 6)),
        streamed(
            "stream-text.chunks.jsonl",
            Aspect::StreamedText,
            Scripted::sse(200, jsonl_to_sse(&fixture("stream-text.chunks.jsonl"))),
            ChatRequest::new("claude-sonnet-4-5").user("Hello, how are you?"),
        )
        .expect(Expect::Text(
            "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?".into(),
        ))
        .expect(usage(12, 30)),
        streamed(
            "stream-thinking-text",
            Aspect::Reasoning,
            replay(
                "stream-thinking-text.http.json",
                "stream-thinking-text.response.sse",
            ),
            ChatRequest::new("claude-sonnet-4-0")
                .user("How do I cross the street?")
                .max_tokens(4096)
                .extra_body("thinking", json!({"budget_tokens": 1024, "type": "enabled"})),
        )
        .expect(matches_recorded("stream-thinking-text"))
        .expect(Expect::Text(concat_deltas(&thinking_sse, "text")))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(Expect::response(move |r| match r.content.as_slice() {
            [ContentPart::Reasoning(reasoning), ContentPart::Text { .. }]
                if reasoning.text == thought
                    && reasoning.signature.as_deref() == Some(signature.as_str()) =>
            {
                Ok(())
            }
            other => Err(format!("expected signed thinking then text: {other:?}")),
        })),
        streamed(
            "stream-redacted-thinking",
            Aspect::Reasoning,
            replay(
                "stream-redacted-thinking.http.json",
                "stream-redacted-thinking.response.sse",
            ),
            ChatRequest::new("claude-sonnet-4-5-20250929")
                .user("ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253D5E2D82641AC0E52CC2876CB")
                .max_tokens(4096)
                .extra_body("thinking", json!({"budget_tokens": 1024, "type": "enabled"})),
        )
        .expect(matches_recorded("stream-redacted-thinking"))
        .expect(Expect::Text(concat_deltas(
            &fixture("stream-redacted-thinking.response.sse"),
            "text",
        )))
        .expect(Expect::response(move |r| {
            let got: Vec<Value> = r
                .content
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Reasoning(reasoning) => Some(json!(reasoning.redacted)),
                    _ => None,
                })
                .collect();
            (got == redacted)
                .then_some(())
                .ok_or_else(|| format!("redacted blocks {got:?}"))
        })),
        streamed(
            "stream-tool-use-input-json-delta.sse",
            Aspect::StreamedToolCall,
            Scripted::sse(200, fixture("stream-tool-use-input-json-delta.sse")),
            ChatRequest::new("claude-sonnet-4-0").user("What's the weather in Paris?"),
        )
        .expect(Expect::Text(
            "I'll check the current weather in Paris for you.".into(),
        ))
        .expect(tool_calls(&[("get_weather", json!({"location": "Paris"}))]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(usage(377, 65)),
        // Cut by max_tokens mid-input: the call is kept with its arguments as received.
        streamed(
            "stream-tool-use-fine-grained-max-tokens.sse",
            Aspect::StreamedToolCall,
            Scripted::sse(200, fixture("stream-tool-use-fine-grained-max-tokens.sse")),
            ChatRequest::new("claude-3-7-sonnet-20250219").user("Write a tax guide to taxes.txt"),
        )
        .expect(tool_calls(&[("make_file", json!(partial_input))]))
        .expect(Expect::FinishReason(FinishReason::Length))
        .expect(usage(450, 124)),
        streamed(
            "stream-text-then-tool-use-no-args.chunks.jsonl",
            Aspect::StreamedToolCall,
            Scripted::sse(
                200,
                jsonl_to_sse(&fixture("stream-text-then-tool-use-no-args.chunks.jsonl")),
            ),
            ChatRequest::new("claude-sonnet-4-5").user("Update the issue list"),
        )
        .expect(Expect::Text("I'll update the issue list for you.".into()))
        .expect(tool_calls(&[("updateIssueList", json!({}))]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(usage(565, 48)),
        // vercel/ai's structured output: a forced tool named `json`. Its input streams as text.
        streamed(
            "stream-tool-use-json.chunks.jsonl",
            Aspect::StructuredOutput,
            Scripted::sse(200, jsonl_to_sse(&fixture("stream-tool-use-json.chunks.jsonl"))),
            ChatRequest::new("claude-haiku-4-5")
                .user("The weather in San Francisco, as JSON")
                .response_format(ResponseFormat::JsonSchema {
                    name: "json".into(),
                    schema: json!({"type": "object"}),
                    strict: false,
                }),
        )
        .expect(Expect::Text(
            r#"{"elements": [{"location": "San Francisco", "temperature": 58, "condition": "sunny"}]}"#
                .into(),
        ))
        .expect(Expect::ToolCalls(Vec::new()))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(Expect::body_contains(json!({
            "tool_choice": {"type": "tool", "name": "json"},
        })))
        .expect(usage(849, 47)),
    ]
}

fn llm_anthropic_cases() -> Vec<Case> {
    let pelican = "Two names for a pet pelican";
    let vision = fixture_json("llm-anthropic/stream-vision-base64-image.request.json");
    let png = vision["messages"][0]["content"][0]["source"]["data"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let thinking_sse = fixture("llm-anthropic/stream-thinking.response.sse");
    let signature = concat_deltas(&thinking_sse, "signature");
    let base = |model: &str| ChatRequest::new(model).max_tokens(8192).temperature(1.0);
    let replayed = |stem: &str| {
        replay(
            &format!("llm-anthropic/{stem}.http.json"),
            &format!("llm-anthropic/{stem}.response.sse"),
        )
    };

    vec![
        streamed(
            "llm-anthropic/stream-text-prompt",
            Aspect::StreamedText,
            replayed("stream-text-prompt"),
            base("claude-sonnet-4-5").user("Two names for a pet pelican, be brief"),
        )
        .expect(matches_recorded("llm-anthropic/stream-text-prompt"))
        .expect(Expect::Text("- Captain\n- Scoop".into()))
        .expect(usage(17, 10)),
        streamed(
            "llm-anthropic/stream-thinking",
            Aspect::Reasoning,
            replayed("stream-thinking"),
            base("claude-haiku-4-5-20251001")
                .user("Two names for a pet pelican, be brief")
                .extra_body("thinking", json!({"type": "enabled", "budget_tokens": 1024})),
        )
        .expect(matches_recorded("llm-anthropic/stream-thinking"))
        .expect(Expect::Text(concat_deltas(&thinking_sse, "text")))
        .expect(usage(46, 133))
        .expect(Expect::response(move |r| {
            (r.reasoning().is_some_and(|t| t.starts_with("The user wants"))
                && matches!(r.content.first(), Some(ContentPart::Reasoning(x)) if x.signature.as_deref() == Some(signature.as_str())))
            .then_some(())
            .ok_or_else(|| format!("reasoning {:?}", r.content.first()))
        })),
        streamed(
            "llm-anthropic/stream-tool-use-no-args",
            Aspect::StreamedToolCall,
            replayed("stream-tool-use-no-args"),
            base("claude-haiku-4-5-20251001")
                .user("Generate one name for a pet pelican")
                .tool(no_args_tool("pelican_name_generator")),
        )
        .expect(matches_recorded("llm-anthropic/stream-tool-use-no-args"))
        .expect(tool_calls(&[("pelican_name_generator", json!({}))]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(usage(543, 40)),
        streamed(
            "llm-anthropic/stream-parallel-tool-use-with-ratelimit-headers",
            Aspect::StreamedToolCall,
            replayed("stream-parallel-tool-use-with-ratelimit-headers"),
            base("claude-haiku-4-5-20251001")
                .user(pelican)
                .tool(no_args_tool("pelican_name_generator")),
        )
        .expect(matches_recorded(
            "llm-anthropic/stream-parallel-tool-use-with-ratelimit-headers",
        ))
        .expect(tool_calls(&[
            ("pelican_name_generator", json!({})),
            ("pelican_name_generator", json!({})),
        ]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(usage(542, 62)),
        streamed(
            "llm-anthropic/stream-after-tool-results",
            Aspect::StreamedText,
            replayed("stream-after-tool-results"),
            base("claude-haiku-4-5-20251001")
                .user(pelican)
                .message(Message::new(
                    Role::Assistant,
                    vec![
                        ContentPart::text(" "),
                        ContentPart::ToolCall(ToolCall::new(
                            "toolu_01LtHJmixrs9NcWQkK8hu8hj",
                            "pelican_name_generator",
                            json!({}),
                        )),
                        ContentPart::ToolCall(ToolCall::new(
                            "toolu_01N8a4jWyf116qKTMqKKmjyt",
                            "pelican_name_generator",
                            json!({}),
                        )),
                    ],
                ))
                .message(Message::tool_result("toolu_01LtHJmixrs9NcWQkK8hu8hj", "Charles"))
                .message(Message::tool_result("toolu_01N8a4jWyf116qKTMqKKmjyt", "Sammy"))
                .tool(no_args_tool("pelican_name_generator")),
        )
        .expect(matches_recorded("llm-anthropic/stream-after-tool-results"))
        .expect(Expect::Text(concat_deltas(
            &fixture("llm-anthropic/stream-after-tool-results.response.sse"),
            "text",
        )))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(usage(678, 82)),
        streamed(
            "llm-anthropic/stream-vision-base64-image",
            Aspect::Vision,
            replayed("stream-vision-base64-image"),
            base("claude-sonnet-4-5").message(Message::new(
                Role::User,
                vec![
                    ContentPart::image_base64("image/png", png),
                    ContentPart::text("Describe image in three words"),
                ],
            )),
        )
        .expect(matches_recorded("llm-anthropic/stream-vision-base64-image"))
        .expect(Expect::Text("Red square, green square.".into()))
        .expect(usage(83, 9)),
    ]
}

fn rust_genai_cases() -> Vec<Case> {
    vec![
        streamed(
            "rust-genai/stream-tool-use.hand-edited.sse",
            Aspect::StreamedToolCall,
            Scripted::sse(200, fixture("rust-genai/stream-tool-use.hand-edited.sse")),
            ChatRequest::new("claude-haiku-4-5-20251001").user("Weather in Paris?"),
        )
        .expect(tool_calls(&[(
            "get_weather",
            json!({"city": "Paris", "country": "France", "unit": "C"}),
        )]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(usage(85, 42)),
        // Input counts the 4202 cached tokens too (the core's convention).
        streamed(
            "rust-genai/stream-usage-cache-read.sse",
            Aspect::Usage,
            Scripted::sse(200, fixture("rust-genai/stream-usage-cache-read.sse")),
            ChatRequest::new("claude-haiku-4-5-20251001").user("Say OK."),
        )
        .expect(Expect::Text("OK.".into()))
        .expect(usage(9 + 4202, 5))
        .expect(Expect::response(|r| {
            (r.usage.cached_input_tokens == 4202 && r.usage.cache_write_tokens == 0)
                .then_some(())
                .ok_or_else(|| format!("usage {:?}", r.usage))
        })),
    ]
}

#[tokio::test]
async fn conformance() {
    conformance::run("anthropic", provider, cases())
        .await
        .assert_passed();
}

#[test]
fn every_fixture_is_used_or_listed() {
    // A fixture counts as used when its stem (the name without `.request.json`,
    // `.response.json|.sse`, `.http.json`) appears in these test sources.
    let sources = [
        include_str!("anthropic.rs"),
        include_str!("anthropic/round_trip.rs"),
        include_str!("anthropic/stream.rs"),
        include_str!("anthropic/wire.rs"),
    ]
    .concat();
    let root = format!(
        "{}/../../../shared/fixtures/anthropic",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut unused = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(&root)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the fixture folder") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(&root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            let stem = [
                ".request.json",
                ".response.json",
                ".response.sse",
                ".http.json",
            ]
            .iter()
            .find_map(|suffix| relative.strip_suffix(suffix))
            .unwrap_or(&relative);
            let listed = SKIPPED.iter().any(|(name, _)| *name == relative);
            if !listed && !sources.contains(stem) {
                unused.push(relative);
            }
        }
    }
    assert!(
        unused.is_empty(),
        "fixtures neither used nor listed in SKIPPED: {unused:?}"
    );
}
