//! Focused Ollama wire tests beyond the conformance cases: `OLLAMA_HOST` handling, request
//! shapes, byte-split streams, partial replies on failure, model lists, auth and zero cost.

use std::sync::Arc;

use exllm_adapters_providers::ollama::{
    ChunkDecoder, OllamaConfig, OllamaProvider, normalize_host, request_body,
};
use exllm_core::stream::collect;
use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, ContentPart, Decimal, ErrorKind, ExLLM, FinishReason,
    Message, Result, Role, Secret, StreamEvent, ToolCall, ToolChoice,
};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{executor, fixture, fixture_json, tool_history_request, vision_image, weather_tool};

const KEY: &str = "ollama-test-key-0123456789";

async fn serve(script: Vec<Scripted>, key: Option<&str>) -> (FixtureServer, OllamaProvider) {
    let server = FixtureServer::start(script).await;
    let config = OllamaConfig::new(Some(server.url()), key.map(Secret::new));
    (server, OllamaProvider::new(config, executor()))
}

async fn stream_all(provider: &OllamaProvider, request: ChatRequest) -> Vec<Result<StreamEvent>> {
    provider
        .stream(request)
        .await
        .expect("the stream starts")
        .collect()
        .await
}

fn hello() -> ChatRequest {
    ChatRequest::new("llama3.2:3b").user("Hello")
}

// --- OLLAMA_HOST ------------------------------------------------------------------------------

#[test]
fn ollama_host_is_normalised_like_the_ollama_client_does() {
    // The cases of Ollama's envconfig `Host`/`ConnectableHost` and ollama-python's
    // `_parse_host` doctests.
    for (raw, want) in [
        ("", "http://127.0.0.1:11434"),
        ("   ", "http://127.0.0.1:11434"),
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":56789", "http://127.0.0.1:56789"),
        ("1.2.3.4:56789", "http://1.2.3.4:56789"),
        ("http://1.2.3.4", "http://1.2.3.4:80"),
        ("https://1.2.3.4", "https://1.2.3.4:443"),
        ("https://1.2.3.4:56789", "https://1.2.3.4:56789"),
        ("example.com", "http://example.com:11434"),
        ("example.com:56789", "http://example.com:56789"),
        ("http://example.com", "http://example.com:80"),
        (
            "https://example.com:56789/path/",
            "https://example.com:56789/path",
        ),
        ("http://localhost:11434/", "http://localhost:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("::1", "http://[::1]:11434"),
        ("[::1]:56789", "http://[::1]:56789"),
        ("[::]:8080", "http://[::1]:8080"),
        ("ollama.com", "https://ollama.com:443"),
        ("\"localhost:1234\"", "http://localhost:1234"),
        ("localhost:99999", "http://localhost:11434"),
        ("localhost:abc", "http://localhost:11434"),
    ] {
        assert_eq!(normalize_host(raw), want, "OLLAMA_HOST={raw:?}");
    }
    assert_eq!(
        OllamaConfig::new(None, None).url("/api/chat"),
        "http://127.0.0.1:11434/api/chat"
    );
    assert_eq!(OllamaConfig::new(None, None).name, "ollama");
    // An empty key is no key: a local server needs none.
    assert_eq!(OllamaConfig::new(None, Some(Secret::new(""))).api_key, None);
}

// --- requests ---------------------------------------------------------------------------------

#[test]
fn sampling_settings_go_in_options_and_extra_body_comes_last() {
    let request = hello()
        .temperature(0.7)
        .top_p(0.9)
        .max_tokens(128)
        .stop("\n\n")
        .seed(42)
        .extra_body("think", json!("high"))
        .extra_body("keep_alive", json!("10m"))
        .extra_body("options", json!({"num_ctx": 8192, "temperature": 0.2}));
    let body = request_body(&request, false).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "llama3.2:3b",
            "messages": [{"role": "user", "content": "Hello"}],
            "stream": false,
            "think": "high",
            "keep_alive": "10m",
            "options": {
                // `extra_body.options` merges key by key; its temperature wins.
                "temperature": 0.2,
                "top_p": 0.9,
                "num_predict": 128,
                "stop": ["\n\n"],
                "seed": 42,
                "num_ctx": 8192,
            },
        })
    );
    // Nothing set, no `options` object at all.
    assert!(
        request_body(&hello(), true)
            .unwrap()
            .get("options")
            .is_none()
    );
}

#[test]
fn tool_choice_none_withholds_the_tools_and_a_named_tool_is_offered_alone() {
    let time = exllm_core::ToolDefinition::new("get_time", "The time", json!({"type": "object"}));
    let base = hello().tool(weather_tool()).tool(time);
    let none = request_body(&base.clone().tool_choice(ToolChoice::None), false).unwrap();
    assert!(none.get("tools").is_none(), "{none}");
    let named = request_body(
        &base
            .clone()
            .tool_choice(ToolChoice::Tool("get_time".into())),
        false,
    )
    .unwrap();
    assert_eq!(named["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(named["tools"][0]["function"]["name"], "get_time");
    let required = request_body(&base.tool_choice(ToolChoice::Required), false).unwrap();
    assert_eq!(required["tools"].as_array().map(Vec::len), Some(2));
    assert!(required.get("tool_choice").is_none());
}

#[test]
fn reasoning_goes_back_as_thinking_and_tool_results_in_user_messages_become_tool_messages() {
    // An Anthropic-style history: the result rides in a user message beside more text.
    let request = ChatRequest::new("qwen3")
        .user("weather?")
        .message(Message::new(
            Role::Assistant,
            vec![
                ContentPart::Reasoning(exllm_core::Reasoning {
                    text: "I should call the tool.".into(),
                    ..Default::default()
                }),
                ContentPart::text("Checking."),
                ContentPart::ToolCall(ToolCall::new(
                    "call_a",
                    "get_weather",
                    json!({"city": "Paris"}),
                )),
            ],
        ))
        .message(Message::new(
            Role::User,
            vec![
                ContentPart::ToolResult(exllm_core::ToolResult {
                    call_id: "call_a".into(),
                    name: Some("get_weather".into()),
                    content: "sunny".into(),
                    is_error: false,
                }),
                ContentPart::text("and tomorrow?"),
            ],
        ));
    let body = request_body(&request, false).unwrap();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "thinking": "I should call the tool.",
                "tool_calls": [{"id": "call_a", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
            },
            {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_a"},
            {"role": "user", "content": "and tomorrow?"},
        ])
    );
}

#[test]
fn requests_ollama_cannot_take_are_refused_with_the_field() {
    let url_image = ChatRequest::new("llava").message(Message::new(
        Role::User,
        vec![
            ContentPart::text("what?"),
            ContentPart::image_url("https://example.com/a.png"),
        ],
    ));
    let err = request_body(&url_image, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.field(), Some("messages[0].content[1]"));
    assert!(err.message().contains("base64"), "{err}");

    let not_base64 = ChatRequest::new("llava").message(Message::new(
        Role::User,
        vec![ContentPart::image_base64("image/png", "<svg/>")],
    ));
    assert_eq!(
        request_body(&not_base64, false).unwrap_err().kind(),
        ErrorKind::Validation
    );

    let bare_tool = ChatRequest::new("llama3.2").message(Message::new(
        Role::Tool,
        vec![ContentPart::text("11 degrees")],
    ));
    let err = request_body(&bare_tool, false).unwrap_err();
    assert_eq!(err.field(), Some("messages[0]"));
}

#[tokio::test]
async fn an_image_url_is_refused_before_anything_is_sent() {
    let (server, provider) = serve(vec![Scripted::json(200, "{}")], None).await;
    let request = ChatRequest::new("llava").message(Message::new(
        Role::User,
        vec![ContentPart::image_url("https://example.com/pig.png")],
    ));
    let err = provider.chat(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn the_vision_request_sends_the_documented_body() {
    // fx: docs/chat-vision-images.request.json is hand-written; its body is the request shape.
    let (server, provider) = serve(
        vec![Scripted::json(
            200,
            fixture("docs/chat-vision-images.response.json"),
        )],
        None,
    )
    .await;
    let request = ChatRequest::new("llava").message(Message::new(
        Role::User,
        vec![
            ContentPart::text("what is in this image?"),
            ContentPart::image_base64("image/png", vision_image()),
        ],
    ));
    provider.chat(request).await.unwrap();
    let sent = server.requests()[0].body_json().unwrap();
    let mut expected = fixture_json("docs/chat-vision-images.request.json");
    expected["stream"] = json!(false);
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn a_tool_round_trip_sends_the_documented_history() {
    // The reply's tool call goes back as the next turn's history, with no tool name on the
    // result: the adapter finds it by call id (fx: docs/chat-history-tool-result.request.json).
    let (server, provider) = serve(
        vec![
            Scripted::json(200, fixture("docs/chat-tools.response.json")),
            Scripted::json(200, fixture("docs/chat-history-tool-result.response.json")),
        ],
        None,
    )
    .await;
    let first = provider
        .chat(
            ChatRequest::new("llama3.2")
                .user("what is the weather in Toronto?")
                .tool(weather_tool()),
        )
        .await
        .unwrap();
    let call = first.tool_calls()[0].clone();
    assert_eq!(call.id, "call_0");
    let answer = provider
        .chat(
            ChatRequest::new("llama3.2")
                .user("what is the weather in Toronto?")
                .message(first.to_message())
                .message(Message::tool_result(call.id, "11 degrees celsius"))
                .tool(weather_tool()),
        )
        .await
        .unwrap();
    assert_eq!(answer.text(), "The current temperature in Toronto is 11°C.");
    let sent = server.requests()[1].body_json().unwrap();
    let mut documented = fixture_json("docs/chat-history-tool-result.request.json");
    // The documented history asks about Toronto; the first reply (a docs example for Tokyo)
    // is what the model "said", so its arguments are what goes back.
    documented["messages"][1]["tool_calls"][0]["function"]["arguments"] = json!({"city": "Tokyo"});
    exllm_adapters_providers::conformance::json_contains(&sent, &documented, "$").unwrap();
    // And the hand-built history gives the documented request exactly, ids aside.
    let body = request_body(&tool_history_request(), false).unwrap();
    let mut stripped = body.clone();
    stripped["messages"][1]["tool_calls"][0]
        .as_object_mut()
        .unwrap()
        .remove("id");
    stripped["messages"][2]
        .as_object_mut()
        .unwrap()
        .remove("tool_call_id");
    assert_eq!(
        stripped,
        fixture_json("docs/chat-history-tool-result.request.json")
    );
}

// --- streams ----------------------------------------------------------------------------------

#[test]
fn the_compacted_doc_stream_is_the_documented_objects() {
    // fx: docs/chat-stream-tools.compacted-from-docs.ndjson is derived from the pretty docs
    // text; check the derivation so the stream cases rest on the documented objects.
    let pretty = fixture("docs/chat-stream-tools.response-chunks.pretty.txt");
    let documented: Vec<Value> = serde_json::Deserializer::from_str(&pretty)
        .into_iter::<Value>()
        .map(|v| v.unwrap())
        .collect();
    let compacted: Vec<Value> = fixture("docs/chat-stream-tools.compacted-from-docs.ndjson")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(compacted, documented);
}

#[tokio::test]
async fn every_recording_survives_being_sent_one_byte_per_chunk() {
    // HTTP chunk boundaries fall anywhere, mid-line and mid-character (the cloud reply has a
    // `’`) included; the reply must not depend on them.
    for name in [
        "rust-genai/stream-chat-local-cached-usage.ndjson",
        "rust-genai/stream-chat-ollama-cloud.ndjson",
        "rust-genai/stream-chat-thinking-tool-calls.SYNTHETIC.ndjson",
    ] {
        let ndjson = fixture(name);
        let whole = {
            let (_server, provider) =
                serve(vec![Scripted::ndjson(200, ndjson.clone())], None).await;
            collect(provider.stream(hello()).await.unwrap())
                .await
                .unwrap()
        };
        let bytes: Vec<Vec<u8>> = ndjson.as_bytes().iter().map(|b| vec![*b]).collect();
        let (_server, provider) = serve(
            vec![
                Scripted::new(200)
                    .header("content-type", "application/x-ndjson")
                    .chunks(bytes),
            ],
            None,
        )
        .await;
        let split = collect(provider.stream(hello()).await.unwrap())
            .await
            .unwrap();
        assert_eq!(split, whole, "{name}");
        assert!(!whole.text().is_empty() || !whole.tool_calls().is_empty());
    }
}

#[tokio::test]
async fn streamed_events_come_in_order_with_whole_tool_calls() {
    let (_server, provider) = serve(
        vec![Scripted::ndjson(
            200,
            fixture("rust-genai/stream-chat-thinking-tool-calls.SYNTHETIC.ndjson"),
        )],
        None,
    )
    .await;
    let events: Vec<StreamEvent> = stream_all(&provider, hello())
        .await
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            StreamEvent::ReasoningDelta(_) => "reasoning",
            StreamEvent::TextDelta(_) => "text",
            StreamEvent::ToolCallStart { .. } => "start",
            StreamEvent::ToolCallDelta { .. } => "delta",
            StreamEvent::ToolCallEnd { .. } => "end",
            StreamEvent::Usage(_) => "usage",
            StreamEvent::Done(_) => "done",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "reasoning",
            "text",
            "text",
            "text",
            "start",
            "delta",
            "end",
            "start",
            "delta",
            "end",
            "start",
            "delta",
            "end",
            "usage",
            "done"
        ]
    );
    let Some(StreamEvent::Done(done)) = events.last() else {
        unreachable!()
    };
    assert_eq!(done.model, "qwen3");
    assert_eq!(done.provider_finish_reason.as_deref(), Some("stop"));
    assert_eq!(done.finish_reason, Some(FinishReason::ToolCalls));
    // Reasoning first, then text, then the calls, as they came.
    assert!(matches!(done.content[0], ContentPart::Reasoning(_)));
}

#[tokio::test]
async fn a_midstream_error_line_keeps_what_came_before() {
    // fx: docs/stream-midstream-error.docs.ndjson shows the error line after /api/generate
    // pieces; the same lines in /api/chat's shape (`message.content`) carry the text here.
    let documented = fixture("docs/stream-midstream-error.docs.ndjson");
    let chat_shaped: String = documented
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            if let Some(piece) = v.as_object_mut().and_then(|o| o.remove("response")) {
                v["message"] = json!({"role": "assistant", "content": piece});
            }
            format!("{v}\n")
        })
        .collect();
    let (_server, provider) = serve(vec![Scripted::ndjson(200, chat_shaped)], None).await;
    let events = stream_all(&provider, ChatRequest::new("gemma4").user("Can you?")).await;
    let (last, before) = events.split_last().unwrap();
    let text: String = before
        .iter()
        .map(|e| match e {
            Ok(StreamEvent::TextDelta(t)) => t.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(text, " Yes.Ican");
    let err = last.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert_eq!(
        err.message(),
        "an error was encountered while running the model"
    );
    assert_eq!(err.provider(), Some("ollama"));
    assert_eq!(
        err.partial_response().map(ChatResponse::text).as_deref(),
        Some(" Yes.Ican")
    );
}

#[tokio::test]
async fn a_stream_without_its_done_line_is_truncated_with_the_partial_reply() {
    let lines: String = fixture("rust-genai/stream-chat-local-cached-usage.ndjson")
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    let (_server, provider) = serve(vec![Scripted::ndjson(200, lines)], None).await;
    let err = collect(provider.stream(hello()).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
    assert!(err.is_retryable());
    assert_eq!(
        err.partial_response().map(ChatResponse::text).as_deref(),
        Some("Hello!")
    );

    // A connection reset mid-line is a transport failure, partial kept as well.
    let stream = fixture("rust-genai/stream-chat-local-cached-usage.ndjson");
    let cut = stream.find("\"content\":\"!\"").unwrap();
    let (_server, provider) = serve(
        vec![
            Scripted::reset_after(vec![stream[..cut].to_owned()])
                .header("content-type", "application/x-ndjson"),
        ],
        None,
    )
    .await;
    let err = collect(provider.stream(hello()).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.partial_response().map(ChatResponse::text).as_deref(),
        Some("Hello")
    );
}

#[test]
fn the_decoder_refuses_garbage_but_keeps_the_partial_reply() {
    let mut decoder = ChunkDecoder::new("ollama", "llama3.2");
    let first = fixture("rust-genai/stream-chat-local-cached-usage.ndjson");
    let events = decoder.line(first.lines().next().unwrap()).unwrap();
    assert_eq!(events, [StreamEvent::TextDelta("Hello".into())]);
    let err = decoder.line("{\"model\":").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.raw_body(), Some("{\"model\":"));
    assert_eq!(
        err.partial_response().map(ChatResponse::text).as_deref(),
        Some("Hello")
    );
    // A line that is JSON but not an object of the right shape.
    let err = decoder.line("{\"message\":{\"content\":7}}").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    // An empty body is truncated, not a blank reply.
    let err = ChunkDecoder::new("ollama", "m").end().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
}

#[tokio::test]
async fn a_server_that_ignores_stream_still_gives_the_reply() {
    // A plain JSON body where NDJSON was asked for is read whole by the executor: one line.
    let (_server, provider) = serve(
        vec![Scripted::json(
            200,
            fixture("rust-genai/chat-local-cached-usage.json"),
        )],
        None,
    )
    .await;
    let reply = collect(provider.stream(hello()).await.unwrap())
        .await
        .unwrap();
    assert!(reply.text().starts_with("Hello! It's nice"));
    assert_eq!(reply.usage.input_tokens, 28);
}

#[test]
fn load_and_length_done_reasons_are_mapped_and_kept() {
    use exllm_adapters_providers::ollama::parse_response;
    let load = parse_response(
        "ollama",
        &json!({"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": ""},
                "done_reason": "load", "done": true}),
    )
    .unwrap();
    assert_eq!(load.finish_reason, None);
    assert_eq!(load.provider_finish_reason.as_deref(), Some("load"));
    assert!(load.content.is_empty());
    let length = parse_response(
        "ollama",
        &json!({"model": "llama3.2", "message": {"role": "assistant", "content": "cut"},
                "done_reason": "length", "done": true, "eval_count": 1}),
    )
    .unwrap();
    assert_eq!(length.finish_reason, Some(FinishReason::Length));
    // Usage fields are omitempty: absent counts are zero, not an error.
    assert_eq!(length.usage.input_tokens, 0);
    assert_eq!(length.usage.output_tokens, 1);
    let err = parse_response("ollama", &json!({"models": []})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let err = parse_response("ollama", &json!({"error": "boom"})).unwrap_err();
    assert_eq!(err.message(), "boom");
}

// --- errors -----------------------------------------------------------------------------------

#[tokio::test]
async fn error_bodies_keep_ollamas_message() {
    for (status, name, kind, message) in [
        (
            404,
            "error-404-model-not-found.json",
            ErrorKind::NotFound,
            "model 'llama3.2:latest' not found",
        ),
        (
            400,
            "error-400-does-not-support-tools.json",
            ErrorKind::InvalidRequest,
            "registry.ollama.ai/library/Qwen3.5:0.8b does not support tools",
        ),
        (
            400,
            "error-400-openai-compat-v1-does-not-support-tools.json",
            ErrorKind::InvalidRequest,
            "stablelm2:latest does not support tools",
        ),
    ] {
        let (_server, provider) = serve(vec![Scripted::json(status, fixture(name))], None).await;
        let err = provider.chat(hello()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{name}");
        assert_eq!(err.status(), Some(status), "{name}");
        assert_eq!(err.message(), message, "{name}");
        assert_eq!(err.provider(), Some("ollama"), "{name}");
        assert!(!err.is_retryable(), "{name}");
    }
}

#[tokio::test]
async fn the_openai_compat_error_is_mapped_from_its_recorded_status_and_headers() {
    // fx: error-400-openai-compat-v1-does-not-support-tools.http.json: status line and
    // headers of the /v1 answer; the framing headers are the server's to set.
    let http = fixture_json("error-400-openai-compat-v1-does-not-support-tools.http.json");
    let status: u16 = http["status_line"]
        .as_str()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let mut reply =
        Scripted::new(status).body(fixture(http["body_file"].as_str().unwrap()).into_bytes());
    for (name, value) in http["headers"].as_object().unwrap() {
        if name != "Content-Length" {
            reply = reply.header(name.clone(), value.as_str().unwrap());
        }
    }
    let (_server, provider) = serve(vec![reply], None).await;
    let err = provider.chat(hello()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), Some("api_error"));
}

// --- models, health, auth ---------------------------------------------------------------------

#[tokio::test]
async fn list_models_reads_api_tags() {
    for (name, ids) in [
        ("tags.response.terminal-paste.json", vec!["llama3.2:latest"]),
        (
            "docs/tags.response.json",
            vec!["deepseek-r1:latest", "llama3.2:latest"],
        ),
    ] {
        let (server, provider) = serve(vec![Scripted::json(200, fixture(name))], None).await;
        let models = provider.list_models().await.unwrap();
        let got: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(got, ids, "{name}");
        assert!(
            models
                .iter()
                .all(|m| m.provider == "ollama" && m.context_window.is_none())
        );
        let request = &server.requests()[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/api/tags")
        );
    }
    let (_server, provider) = serve(vec![Scripted::json(200, r#"{"models":null}"#)], None).await;
    assert!(provider.list_models().await.unwrap().is_empty());
    let (_server, provider) = serve(vec![Scripted::json(200, r#"{"data":[]}"#)], None).await;
    assert_eq!(
        provider.list_models().await.unwrap_err().kind(),
        ErrorKind::Decode
    );
}

#[tokio::test]
async fn health_checks_api_tags_and_reports_failures() {
    let (server, provider) = serve(
        vec![Scripted::json(
            200,
            fixture("tags.response.terminal-paste.json"),
        )],
        None,
    )
    .await;
    provider.health().await.unwrap();
    assert_eq!(server.requests()[0].path, "/api/tags");
    let (_server, provider) = serve(
        vec![Scripted::json(401, r#"{"error":"unauthorized"}"#)],
        Some(KEY),
    )
    .await;
    assert_eq!(provider.health().await.unwrap_err().kind(), ErrorKind::Auth);
}

#[tokio::test]
async fn a_key_is_sent_as_bearer_and_only_when_configured() {
    let reply = || Scripted::json(200, fixture("rust-genai/chat-local-cached-usage.json"));
    let (server, provider) = serve(vec![reply()], Some(KEY)).await;
    provider.chat(hello()).await.unwrap();
    let sent = &server.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(format!("{provider:?}").find(KEY).is_none());

    let (server, provider) = serve(vec![reply()], None).await;
    provider
        .chat(hello().extra_header("x-trace", "t1"))
        .await
        .unwrap();
    let sent = &server.requests()[0];
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("x-trace"), Some("t1"));
}

#[tokio::test]
async fn embeddings_check_their_count() {
    let (_server, provider) = serve(vec![Scripted::json(200, super::EMBED_REPLY)], None).await;
    let err = provider
        .embed(exllm_core::EmbedRequest::new(
            "all-minilm",
            vec!["only one".into()],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.message().contains("2 embeddings for 1 inputs"), "{err}");
}

// --- cost -------------------------------------------------------------------------------------

#[tokio::test]
async fn local_models_cost_zero_through_the_facade() {
    let (_server, provider) = serve(
        vec![
            Scripted::json(200, fixture("rust-genai/chat-local-cached-usage.json")),
            Scripted::ndjson(
                200,
                fixture("rust-genai/stream-chat-local-cached-usage.ndjson"),
            ),
            Scripted::json(200, super::EMBED_REPLY),
        ],
        None,
    )
    .await;
    assert!(provider.pricing("anything").is_some());
    let exllm = ExLLM::builder().provider(Arc::new(provider)).build();
    // `llama3.2:3b` is not in the catalogue: the price comes from the provider itself.
    assert!(exllm.catalogue().get("ollama", "llama3.2:3b").is_none());

    let reply = exllm.chat("ollama/llama3.2:3b", "Hello").await.unwrap();
    assert_eq!(reply.usage.input_tokens, 28);
    let cost = reply.cost.expect("a known (zero) cost");
    assert_eq!(cost.total_usd, Decimal::ZERO);
    assert_eq!(cost, exllm_core::Cost::default());

    let streamed = collect(exllm.stream("ollama/llama3.2:3b", "Hello").await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed.cost.map(|c| c.total_usd), Some(Decimal::ZERO));

    let embedded = exllm
        .embed(
            "ollama/all-minilm",
            vec![
                "Why is the sky blue?".into(),
                "Why is the grass green?".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(embedded.cost.map(|c| c.total_usd), Some(Decimal::ZERO));
}
