//! The Ollama native adapter against `shared/fixtures/ollama/`: the conformance cases (every
//! fixture as data), plus focused wire tests in `ollama/wire.rs`.
//!
//! Two kinds of fixture are used, and the difference matters when reading a failure:
//! - `rust-genai/*` and `error-*.json`, `tags.response.terminal-paste.json` are recordings or
//!   transcriptions of real server output;
//! - `docs/*` are HAND-WRITTEN examples from Ollama's docs (see PROVENANCE.md). They are used
//!   for request-shape checks (`Expect::body_contains` against the documented request) and
//!   for response shapes the recordings lack (non-streamed tool calls, images, tool round
//!   trips), never as proof of byte-level framing.
//!
//! Fixtures deliberately not used:
//! - `docs/generate-stream.docs.ndjson`: an `/api/generate` stream (`"response"` pieces, not
//!   `"message"`); the adapter speaks `/api/chat` only, and the chat streams are covered by the
//!   `rust-genai/*.ndjson` recordings.
//!
//! Hand-written data with no fixture behind it: the `/api/embed` reply ([`EMBED_REPLY`]),
//! shaped after Ollama's docs/api.md "Generate Embeddings", since no embeddings response was
//! recorded.

mod wire;

use std::sync::Arc;
use std::time::Duration;

use exllm_adapters_providers::conformance::{self, Aspect, Case, Expect, Scripted};
use exllm_adapters_providers::ollama::{OllamaConfig, OllamaProvider};
use exllm_core::{
    ChatProvider, ChatRequest, ContentPart, EmbedRequest, ErrorKind, FinishReason, Message,
    ResponseFormat, Role, ToolCall, ToolDefinition, ToolResult,
};
use exllm_infrastructure::http::{HttpConfig, HttpExecutor};
use serde_json::{Value, json};

/// The text of `shared/fixtures/ollama/{name}`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/fixtures/ollama/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("parse {name}: {e}"))
}

/// An executor with deadlines short enough that a hung test fails quickly.
pub fn executor() -> HttpExecutor {
    HttpExecutor::new(HttpConfig {
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(10),
        ..HttpConfig::default()
    })
    .expect("an HTTP executor")
}

/// The Ollama provider pointed at `base_url` (a local server: no key).
pub fn provider(base_url: &str) -> Arc<dyn ChatProvider> {
    Arc::new(OllamaProvider::new(
        OllamaConfig::new(Some(base_url.to_owned()), None),
        executor(),
    ))
}

/// The weather tool of Ollama's docs examples, written out as a caller would.
pub fn weather_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_weather",
        "Get the weather in a given city",
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city to get the weather for"}
            },
            "required": ["city"],
        }),
    )
}

/// The base64 PNG of the documented vision request (fx: docs/chat-vision-images.request.json).
pub fn vision_image() -> String {
    fixture_json("docs/chat-vision-images.request.json")["messages"][0]["images"][0]
        .as_str()
        .expect("the documented image")
        .to_owned()
}

/// An `/api/embed` reply for two inputs, shaped after Ollama's docs/api.md "Generate
/// Embeddings" (`model`, `embeddings`, `total_duration`, `load_duration`,
/// `prompt_eval_count`). Hand-written: no embeddings response was recorded.
pub const EMBED_REPLY: &str = r#"{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862,0.05007221,0.04692972],[0.008599704,0.105441414,-0.025878139,0.12958129]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}"#;

fn path_is(method: &'static str, path: &'static str) -> Expect {
    Expect::request(move |req| {
        if req.method == method && req.path == path {
            Ok(())
        } else {
            Err(format!(
                "sent {} {}, expected {method} {path}",
                req.method, req.path
            ))
        }
    })
}

fn metadata_has(keys: &'static [&'static str]) -> Expect {
    Expect::response(
        move |resp| match keys.iter().find(|k| !resp.metadata.contains_key(**k)) {
            Some(missing) => Err(format!("metadata lacks {missing}: {:?}", resp.metadata)),
            None => Ok(()),
        },
    )
}

fn tool_call_ids(ids: &'static [&'static str]) -> Expect {
    Expect::response(move |resp| {
        let got: Vec<&str> = resp.tool_calls().iter().map(|c| c.id.as_str()).collect();
        if got == ids {
            Ok(())
        } else {
            Err(format!("tool call ids {got:?}, expected {ids:?}"))
        }
    })
}

fn cached(tokens: u64) -> Expect {
    Expect::response(move |resp| {
        if resp.usage.cached_input_tokens == tokens {
            Ok(())
        } else {
            Err(format!(
                "cached input tokens {}, expected {tokens}",
                resp.usage.cached_input_tokens
            ))
        }
    })
}

/// The documented tool-history request as a core request: user question, the assistant's
/// tool call (id as the adapter would have given it), the tool's result without a name.
pub fn tool_history_request() -> ChatRequest {
    ChatRequest::new("llama3.2")
        .user("what is the weather in Toronto?")
        .message(Message::new(
            Role::Assistant,
            vec![ContentPart::ToolCall(ToolCall::new(
                "call_0",
                "get_weather",
                json!({"city": "Toronto"}),
            ))],
        ))
        .message(Message::new(
            Role::Tool,
            vec![ContentPart::ToolResult(ToolResult {
                call_id: "call_0".into(),
                // Left out on purpose: the adapter finds it from the call id.
                name: None,
                content: "11 degrees celsius".into(),
                is_error: false,
            })],
        ))
        .tool(weather_tool())
}

/// Every Ollama fixture as a conformance case.
pub fn cases() -> Vec<Case> {
    let local_json = "rust-genai/chat-local-cached-usage.json";
    let local_stream = "rust-genai/stream-chat-local-cached-usage.ndjson";
    let cloud_stream = "rust-genai/stream-chat-ollama-cloud.ndjson";
    let thinking = "rust-genai/stream-chat-thinking-tool-calls.SYNTHETIC.ndjson";
    let hello = || ChatRequest::new("llama3.2:3b").user("Hello");

    vec![
        // --- text ---------------------------------------------------------------------------
        Case::new(
            local_json,
            Aspect::Text,
            vec![Scripted::json(200, fixture(local_json))],
            hello(),
        )
        .expect(path_is("POST", "/api/chat"))
        .expect(Expect::body_contains(json!({
            "model": "llama3.2:3b",
            "stream": false,
            "messages": [{"role": "user", "content": "Hello"}],
        })))
        .expect(Expect::Text(
            "Hello! It's nice to meet you. Is there something I can help you with or would you like to chat?".into(),
        ))
        .expect(Expect::FinishReason(FinishReason::Stop)),
        Case::new(
            format!("{local_json} (usage)"),
            Aspect::Usage,
            vec![Scripted::json(200, fixture(local_json))],
            hello(),
        )
        .expect(Expect::Usage { input: 28, output: 25 })
        .expect(cached(27))
        .expect(metadata_has(&[
            "created_at",
            "total_duration_ns",
            "load_duration_ns",
            "prompt_eval_duration_ns",
            "eval_duration_ns",
        ])),
        // --- streamed text ------------------------------------------------------------------
        Case::new(
            local_stream,
            Aspect::StreamedText,
            vec![Scripted::ndjson(200, fixture(local_stream))],
            hello(),
        )
        .streamed()
        .expect(Expect::body_contains(json!({"model": "llama3.2:3b", "stream": true})))
        .expect(Expect::request(|req| {
            match req.header("accept") {
                Some("application/x-ndjson") => Ok(()),
                other => Err(format!("accept header {other:?}")),
            }
        }))
        .expect(Expect::Text("Hello!".into()))
        .expect(Expect::FinishReason(FinishReason::Stop)),
        Case::new(
            format!("{local_stream} (usage)"),
            Aspect::Usage,
            vec![Scripted::ndjson(200, fixture(local_stream))],
            hello(),
        )
        .streamed()
        .expect(Expect::Usage { input: 28, output: 3 })
        .expect(cached(27))
        .expect(metadata_has(&["created_at", "total_duration_ns", "eval_duration_ns"])),
        Case::new(
            cloud_stream,
            Aspect::StreamedText,
            vec![Scripted::ndjson(200, fixture(cloud_stream))],
            ChatRequest::new("gemma3:4b").user("Why is the sky blue?"),
        )
        .streamed()
        .expect(Expect::Text(
            "The sky appears blue due to a phenomenon called Rayleigh scattering, where shorter wavelengths of sunlight (blue and violet) are scattered more by the Earth’s atmosphere than longer wavelengths like red and orange.".into(),
        ))
        // The cloud reply omits load and eval durations: omitempty fields stay absent.
        .expect(Expect::Usage { input: 21, output: 40 })
        .expect(Expect::response(|resp| {
            if resp.metadata.contains_key("load_duration_ns") {
                Err("invented a load duration".into())
            } else {
                Ok(())
            }
        })),
        // --- reasoning and streamed tool calls ----------------------------------------------
        Case::new(
            thinking,
            Aspect::Reasoning,
            vec![Scripted::ndjson(200, fixture(thinking))],
            ChatRequest::new("qwen3").user("Why is the sky blue? And the weather?"),
        )
        .streamed()
        .expect(Expect::response(|resp| {
            match resp.reasoning().as_deref() {
                Some("The sky is blue due to Rayleigh scattering. ") => Ok(()),
                other => Err(format!("reasoning {other:?}")),
            }
        }))
        .expect(Expect::Text(
            "Rayleigh scattering dominates the sky. Let me check the weather.".into(),
        )),
        Case::new(
            thinking,
            Aspect::StreamedToolCall,
            vec![Scripted::ndjson(200, fixture(thinking))],
            ChatRequest::new("qwen3").user("Weather in Paris and Berlin, and the time?"),
        )
        .streamed()
        .expect(Expect::ToolCalls(vec![
            ("get_weather".into(), json!({"city": "Paris"})),
            ("get_weather".into(), json!({"city": "Berlin"})),
            ("get_time".into(), json!({})),
        ]))
        // Ollama's own ids are kept when it sends them.
        .expect(tool_call_ids(&["call_a", "call_b", "call_c"]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(Expect::Usage { input: 21, output: 40 }),
        Case::new(
            "docs/chat-stream-tools.compacted-from-docs.ndjson",
            Aspect::StreamedToolCall,
            vec![Scripted::ndjson(
                200,
                fixture("docs/chat-stream-tools.compacted-from-docs.ndjson"),
            )],
            ChatRequest::new("llama3.2")
                .user("what is the weather in tokyo?")
                .tool(weather_tool()),
        )
        .streamed()
        .expect(Expect::body_contains(fixture_json(
            "docs/chat-stream-tools.request.json",
        )))
        .expect(Expect::ToolCalls(vec![(
            "get_weather".into(),
            json!({"city": "Tokyo"}),
        )]))
        // No id on the wire: the adapter names the call by its index.
        .expect(tool_call_ids(&["call_0"]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(Expect::Usage { input: 169, output: 15 }),
        // --- tool calls (not streamed) ------------------------------------------------------
        Case::new(
            "docs/chat-tools.response.json",
            Aspect::ToolCall,
            vec![Scripted::json(200, fixture("docs/chat-tools.response.json"))],
            ChatRequest::new("llama3.2")
                .user("what is the weather in tokyo?")
                .tool(weather_tool()),
        )
        .expect(Expect::body_contains(fixture_json("docs/chat-tools.request.json")))
        .expect(Expect::ToolCalls(vec![(
            "get_weather".into(),
            json!({"city": "Tokyo"}),
        )]))
        .expect(tool_call_ids(&["call_0"]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(Expect::response(|resp| {
            match resp.provider_finish_reason.as_deref() {
                Some("stop") => Ok(()),
                other => Err(format!("provider finish reason {other:?}")),
            }
        }))
        .expect(Expect::Usage { input: 169, output: 18 }),
        Case::new(
            "docs/chat-history-tool-result.response.json",
            Aspect::ToolCall,
            vec![Scripted::json(
                200,
                fixture("docs/chat-history-tool-result.response.json"),
            )],
            tool_history_request(),
        )
        // The round trip: assistant tool call (arguments an object) and `tool` result with
        // `tool_name`, exactly as the documented request nests them.
        .expect(Expect::body_contains(fixture_json(
            "docs/chat-history-tool-result.request.json",
        )))
        .expect(Expect::Text("The current temperature in Toronto is 11°C.".into()))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(Expect::Usage { input: 94, output: 11 }),
        // --- vision -------------------------------------------------------------------------
        Case::new(
            "docs/chat-vision-images.request.json",
            Aspect::Vision,
            vec![Scripted::json(200, fixture("docs/chat-vision-images.response.json"))],
            ChatRequest::new("llava").message(Message::new(
                Role::User,
                vec![
                    ContentPart::text("what is in this image?"),
                    ContentPart::image_base64("image/png", vision_image()),
                ],
            )),
        )
        .expect(Expect::body_contains(fixture_json(
            "docs/chat-vision-images.request.json",
        )))
        .expect(Expect::Text(
            " The image features a cute, little pig with an angry facial expression. It's wearing a heart on its shirt and is waving in the air. This scene appears to be part of a drawing or sketching project.".into(),
        ))
        // This (older) documented reply has no done_reason: a plain stop.
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(Expect::Usage { input: 26, output: 83 }),
        Case::new(
            "docs/chat-vision-images.request.json (data: URL)",
            Aspect::Vision,
            vec![Scripted::json(200, fixture("docs/chat-vision-images.response.json"))],
            ChatRequest::new("llava").message(Message::new(
                Role::User,
                vec![
                    ContentPart::text("what is in this image?"),
                    ContentPart::image_url(format!("data:image/png;base64,{}", vision_image())),
                ],
            )),
        )
        // A data: URL is decoded to the raw base64 Ollama wants.
        .expect(Expect::body_contains(fixture_json(
            "docs/chat-vision-images.request.json",
        ))),
        Case::new(
            "image by https URL",
            Aspect::Vision,
            vec![Scripted::json(200, fixture("docs/chat-vision-images.response.json"))],
            ChatRequest::new("llava").message(Message::new(
                Role::User,
                vec![
                    ContentPart::text("what is in this image?"),
                    ContentPart::image_url("https://example.com/pig.png"),
                ],
            )),
        )
        // Ollama fetches no URLs: refused before any IO, naming the part.
        .expect(Expect::ErrorKind(ErrorKind::Validation)),
        // --- structured output --------------------------------------------------------------
        Case::new(
            "structured output: json schema (reply: rust-genai/chat-local-cached-usage.json)",
            Aspect::StructuredOutput,
            vec![Scripted::json(200, fixture(local_json))],
            hello().response_format(ResponseFormat::JsonSchema {
                name: "greeting".into(),
                schema: json!({
                    "type": "object",
                    "properties": {"greeting": {"type": "string"}},
                    "required": ["greeting"],
                }),
                strict: true,
            }),
        )
        // `format` is the schema object itself [ollama docs/api.md "Structured outputs"].
        .expect(Expect::body_contains(json!({
            "format": {
                "type": "object",
                "properties": {"greeting": {"type": "string"}},
                "required": ["greeting"],
            },
        }))),
        Case::new(
            "structured output: json object (reply: rust-genai/chat-local-cached-usage.json)",
            Aspect::StructuredOutput,
            vec![Scripted::json(200, fixture(local_json))],
            hello().response_format(ResponseFormat::JsonObject),
        )
        .expect(Expect::body_contains(json!({"format": "json"}))),
        // --- embeddings ---------------------------------------------------------------------
        Case::embedding(
            "embed (hand-written reply after docs/api.md)",
            vec![Scripted::json(200, EMBED_REPLY)],
            EmbedRequest::new(
                "all-minilm",
                vec!["Why is the sky blue?".into(), "Why is the grass green?".into()],
            )
            .dimensions(4),
        )
        .expect(path_is("POST", "/api/embed"))
        .expect(Expect::body_contains(json!({
            "model": "all-minilm",
            "input": ["Why is the sky blue?", "Why is the grass green?"],
            "dimensions": 4,
        })))
        .expect(Expect::Embeddings { count: 2, dimensions: 4 })
        .expect(Expect::Usage { input: 8, output: 0 }),
        Case::embedding(
            "error-404-model-not-found.json (embed)",
            vec![Scripted::json(404, fixture("error-404-model-not-found.json"))],
            EmbedRequest::new("llama3.2:latest", vec!["x".into()]),
        )
        .expect(Expect::ErrorKind(ErrorKind::NotFound)),
        // --- errors -------------------------------------------------------------------------
        Case::new(
            "error-404-model-not-found.json",
            Aspect::Error,
            vec![Scripted::json(404, fixture("error-404-model-not-found.json"))],
            ChatRequest::new("llama3.2:latest").user("Hello"),
        )
        .expect(Expect::ErrorKind(ErrorKind::NotFound))
        .expect(Expect::ErrorStatus(404)),
        Case::new(
            "error-404-model-not-found.json (stream)",
            Aspect::Error,
            vec![Scripted::json(404, fixture("error-404-model-not-found.json"))],
            ChatRequest::new("llama3.2:latest").user("Hello"),
        )
        .streamed()
        .expect(Expect::ErrorKind(ErrorKind::NotFound)),
        Case::new(
            "error-400-does-not-support-tools.json",
            Aspect::Error,
            vec![
                Scripted::json(400, fixture("error-400-does-not-support-tools.json"))
                    // The native endpoint answers with a charset (fx: the .http.json note).
                    .header("content-type", "application/json; charset=utf-8"),
            ],
            ChatRequest::new("Qwen3.5:0.8b")
                .user("what is the weather in tokyo?")
                .tool(weather_tool()),
        )
        .expect(Expect::ErrorKind(ErrorKind::InvalidRequest))
        .expect(Expect::ErrorStatus(400)),
        Case::new(
            "error-400-openai-compat-v1-does-not-support-tools.json",
            Aspect::Error,
            vec![Scripted::json(
                400,
                fixture("error-400-openai-compat-v1-does-not-support-tools.json"),
            )],
            ChatRequest::new("stablelm2:latest")
                .user("hi")
                .tool(weather_tool()),
        )
        // The /v1 compat shape (`{"error":{"message","type":"api_error"}}`) is mapped by the
        // executor too: the status decides, not the `api_error` type.
        .expect(Expect::ErrorKind(ErrorKind::InvalidRequest))
        .expect(Expect::ErrorStatus(400)),
        Case::new(
            "docs/error-body.docs.json (as a 500)",
            Aspect::Error,
            vec![Scripted::json(500, fixture("docs/error-body.docs.json"))],
            hello(),
        )
        .expect(Expect::ErrorKind(ErrorKind::Unavailable))
        .expect(Expect::ErrorStatus(500)),
        Case::new(
            "docs/stream-midstream-error.docs.ndjson",
            Aspect::Error,
            vec![Scripted::ndjson(
                200,
                fixture("docs/stream-midstream-error.docs.ndjson"),
            )],
            ChatRequest::new("gemma4").user("Can you?"),
        )
        .streamed()
        // The `{"error":…}` line after a 200 ends the stream with an error, not a reply.
        .expect(Expect::ErrorKind(ErrorKind::Provider)),
        Case::new(
            "rust-genai/stream-chat-local-cached-usage.ndjson without its done line",
            Aspect::Error,
            vec![Scripted::ndjson(
                200,
                fixture(local_stream)
                    .lines()
                    .take(2)
                    .map(|l| format!("{l}\n"))
                    .collect::<String>(),
            )],
            hello(),
        )
        .streamed()
        .expect(Expect::ErrorKind(ErrorKind::StreamTruncated)),
    ]
}

#[tokio::test]
async fn every_fixture_passes_the_conformance_suite() {
    let cases = cases();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    conformance::run("ollama", provider, cases)
        .await
        .assert_passed();
}
