//! Groq through the OpenAI adapter with Groq's quirks: every fixture in `shared/fixtures/groq/`
//! (vercel/ included) as a conformance case, plus focused tests of what only Groq does —
//! `x_groq`, usage on the finish chunk, inline `<think>` split across chunks, and the
//! `event: error` that ends a 200 stream without `[DONE]`.
//!
//! Every fixture is used: the `*.http.json` files give the replies' statuses and headers and
//! the recorded request path; `ratelimit-headers.groq-docs-example.json` supplies the headers
//! of the 429 case.

mod family;

use std::sync::Arc;

use exllm_adapters_providers::conformance::{self, Aspect, Case, Expect, Scripted};
use exllm_adapters_providers::openai::ChunkDecoder;
use exllm_adapters_providers::{OpenAiProvider, compatible};
use exllm_core::{
    ChatProvider, ChatRequest, ContentPart, ErrorKind, FinishReason, Message, Reasoning, Result,
    Role, Secret, StreamEvent, ToolCall, ToolChoice, ToolDefinition, ToolResult,
};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::fixtures::{KEY, jsonl_to_sse};
use crate::openai_conformance::{executor, http_status, recorded_request, with_headers};

/// The text of `shared/fixtures/groq/{name}`.
pub fn groq_fixture(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/fixtures/groq/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn groq_json(name: &str) -> Value {
    serde_json::from_str(&groq_fixture(name)).unwrap_or_else(|e| panic!("parse {name}: {e}"))
}

/// A Groq provider whose base URL is the fixture server's `/openai/v1`, the path Groq uses
/// (fx: groq/*.http.json `uri`).
pub fn provider(base_url: &str) -> Arc<dyn ChatProvider> {
    let groq = compatible::service("groq").expect("groq is a known service");
    Arc::new(OpenAiProvider::new(
        groq.config(
            Some(Secret::new(KEY)),
            Some(format!("{base_url}/openai/v1")),
        ),
        executor(),
    ))
}

/// The reply a `*.http.json` + body recorded.
fn reply(http: &str, body: &str) -> Scripted {
    let meta = groq_json(http);
    let status = http_status(&meta);
    let headers = if meta["response"]["headers"].is_object() {
        &meta["response"]["headers"]
    } else {
        &meta["headers"]
    };
    let reply = if body.ends_with(".sse") {
        Scripted::sse(status, groq_fixture(body))
    } else {
        Scripted::json(status, groq_fixture(body))
    };
    with_headers(reply, headers)
}

/// The recorded request went to the path the recording names.
fn recorded_path(http: &str) -> Expect {
    let uri = groq_json(http)["request"]["uri"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Expect::request(move |req| {
        if uri.ends_with(&req.path) && req.method == "POST" {
            Ok(())
        } else {
            Err(format!("sent {} {}, recorded {uri}", req.method, req.path))
        }
    })
}

/// The request body must match the recorded `{name}.request.json`.
fn recorded_body(name: &str) -> Expect {
    Expect::body_contains(recorded_request(&groq_json(&format!(
        "{name}.request.json"
    ))))
}

const SYSTEM: &str = "Be concise. Never use pretty double quotes, just regular ones.";
const ASK: &str = "Please call the \"get_something_by_name\" tool with non-existent parameters to test error handling; on the second try you can use valid args";

/// The tool the pydantic-ai recordings offer.
fn get_something() -> ToolDefinition {
    ToolDefinition::new(
        "get_something_by_name",
        "",
        json!({"additionalProperties": false, "properties": {"name": {"type": "string"}},
               "required": ["name"], "type": "object"}),
    )
}

fn tool_request() -> ChatRequest {
    ChatRequest::new("openai/gpt-oss-120b")
        .system(SYSTEM)
        .user(ASK)
        .tool(get_something())
        .tool_choice(ToolChoice::Auto)
}

/// The content of the recorded tool result (the validation errors pydantic-ai sent back).
fn recorded_tool_result(name: &str) -> (String, String) {
    let recorded = groq_json(name);
    let message = &recorded["messages"][3];
    (
        message["tool_call_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        message["content"].as_str().unwrap_or_default().to_owned(),
    )
}

fn tool_result(call_id: String, content: String) -> Message {
    Message::new(
        Role::Tool,
        vec![ContentPart::ToolResult(ToolResult {
            call_id,
            name: None,
            content,
            is_error: false,
        })],
    )
}

fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

/// Every Groq fixture as a case.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();

    // Plain text with Groq's usage timings and `x_groq.id`.
    let name = "chat-completion-text";
    cases.push(
        Case::new(
            "chat-completion-text.*",
            Aspect::Text,
            vec![reply(
                &format!("{name}.http.json"),
                &format!("{name}.response.json"),
            )],
            ChatRequest::new("llama-3.3-70b-versatile")
                .system("You are a helpful assistant.")
                .user("What is the capital of France?"),
        )
        .expect(Expect::Text("The capital of France is Paris.".into()))
        .expect(Expect::FinishReason(FinishReason::Stop))
        .expect(Expect::Usage {
            input: 48,
            output: 8,
        })
        .expect(recorded_path(&format!("{name}.http.json")))
        .expect(recorded_body(name))
        .expect(Expect::response(|resp| {
            check(
                "request id",
                resp.metadata.get("request_id"),
                Some(&json!("req_01jr8hj0hzeq9b86xqb5dn7wqs")),
            )?;
            check(
                "timing",
                resp.metadata.get("timing"),
                Some(
                    &json!({"queue_time": 0.100731848, "prompt_time": 0.002665957,
                             "completion_time": 0.029090909, "total_time": 0.031756866}),
                ),
            )
        })),
    );
    let text = groq_json("vercel/chat-completion-text.json")["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    cases.push(
        Case::new(
            "vercel/chat-completion-text.json",
            Aspect::Text,
            vec![Scripted::json(
                200,
                groq_fixture("vercel/chat-completion-text.json"),
            )],
            ChatRequest::new("llama-3.3-70b-versatile")
                .user("Invent a new holiday and describe its traditions."),
        )
        .expect(Expect::Text(text)),
    );

    // Reasoning: inline `<think>` (raw format) and the parsed `reasoning` field.
    let name = "chat-completion-reasoning-format-raw-think-tags";
    let raw = groq_json(&format!("{name}.response.json"))["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    cases.push(
        Case::new(
            "chat-completion-reasoning-format-raw-think-tags.*",
            Aspect::Reasoning,
            vec![reply(
                &format!("{name}.http.json"),
                &format!("{name}.response.json"),
            )],
            ChatRequest::new("deepseek-r1-distill-llama-70b")
                .system("You are a chef.")
                .user("I want a recipe to cook Uruguayan alfajores.")
                .extra_body("reasoning_format", json!("raw")),
        )
        .expect(recorded_body(name))
        .expect(Expect::Usage {
            input: 21,
            output: 1414,
        })
        .expect(Expect::response(move |resp| {
            let (thought, answer) = raw
                .split_once("</think>")
                .ok_or_else(|| "the recording has no </think>".to_owned())?;
            let thought = thought.trim_start_matches("<think>").trim();
            check("reasoning", resp.reasoning().as_deref(), Some(thought))?;
            check("text", resp.text().as_str(), answer.trim_start())?;
            check(
                "parts",
                resp.content
                    .iter()
                    .map(|p| matches!(p, ContentPart::Reasoning(_)))
                    .collect::<Vec<_>>(),
                vec![true, false],
            )
        })),
    );
    let parsed = groq_json("vercel/chat-completion-reasoning-parsed.json");
    let message = parsed["choices"][0]["message"].clone();
    cases.push(
        Case::new(
            "vercel/chat-completion-reasoning-parsed.json",
            Aspect::Reasoning,
            vec![Scripted::json(
                200,
                groq_fixture("vercel/chat-completion-reasoning-parsed.json"),
            )],
            ChatRequest::new("qwen/qwen3-32b")
                .user("How many \"r\"s are in the word \"strawberry\"?")
                .extra_body("reasoning_format", json!("parsed")),
        )
        .expect(Expect::Text(
            message["content"].as_str().unwrap_or_default().to_owned(),
        ))
        .expect(Expect::response(move |resp| {
            check(
                "reasoning",
                resp.reasoning().as_deref(),
                message["reasoning"].as_str(),
            )?;
            check("reasoning tokens", resp.usage.reasoning_tokens, 570)
        })),
    );

    // Tool calls, plain.
    let name = "chat-completion-tool-call-after-retry";
    let (call_id, result) = recorded_tool_result(&format!("{name}.request.json"));
    let retry = tool_request()
        .message(Message::new(
            Role::Assistant,
            vec![ContentPart::ToolCall(ToolCall::new(
                call_id.clone(),
                "get_something_by_name",
                json!({"foo": "bar"}),
            ))],
        ))
        .message(tool_result(call_id, result));
    cases.push(
        Case::new(
            "chat-completion-tool-call-after-retry.*",
            Aspect::ToolCall,
            vec![reply(&format!("{name}.http.json"), &format!("{name}.response.json"))],
            retry,
        )
        .expect(Expect::ToolCalls(vec![(
            "get_something_by_name".into(),
            json!({"name": "test"}),
        )]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls))
        .expect(Expect::Usage {
            input: 301,
            output: 52,
        })
        .expect(recorded_body(name))
        .expect(Expect::response(|resp| {
            check(
                "reasoning",
                resp.reasoning().as_deref(),
                Some("We need to call with correct param: name field. Use some name, e.g., \"test\"."),
            )
        })),
    );
    cases.push(
        Case::new(
            "vercel/chat-completion-tool-call.json",
            Aspect::ToolCall,
            vec![Scripted::json(
                200,
                groq_fixture("vercel/chat-completion-tool-call.json"),
            )],
            ChatRequest::new("llama-3.3-70b-versatile").user("What is the weather?"),
        )
        .expect(Expect::ToolCalls(vec![("weather".into(), json!({}))]))
        .expect(Expect::FinishReason(FinishReason::ToolCalls)),
    );

    // Vision.
    let name = "chat-completion-vision-image-url";
    let recorded = groq_json(&format!("{name}.request.json"));
    let url = recorded["messages"][0]["content"][1]["image_url"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let answer = groq_json(&format!("{name}.response.json"))["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    cases.push(
        Case::new(
            "chat-completion-vision-image-url.*",
            Aspect::Vision,
            vec![reply(
                &format!("{name}.http.json"),
                &format!("{name}.response.json"),
            )],
            ChatRequest::new("meta-llama/llama-4-scout-17b-16e-instruct").message(Message::new(
                Role::User,
                vec![
                    ContentPart::text("What is the name of this fruit?"),
                    ContentPart::image_url(url),
                ],
            )),
        )
        .expect(Expect::Text(answer))
        .expect(recorded_body(name)),
    );

    // Streamed tool calls: reasoning deltas, the whole call in one delta, usage on the finish
    // chunk; the request sends the earlier reasoning back inline as `<think>`.
    let name = "stream-reasoning-then-tool-call-with-x-groq-usage";
    let request_file = format!("{name}.request.json");
    let (call_id, result) = recorded_tool_result(&request_file);
    let thought = groq_json(&request_file)["messages"][2]["content"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("<think>")
        .trim_end_matches("</think>")
        .trim()
        .to_owned();
    let second_turn = tool_request()
        .message(Message::new(
            Role::Assistant,
            vec![
                ContentPart::Reasoning(Reasoning {
                    text: thought,
                    ..Reasoning::default()
                }),
                ContentPart::ToolCall(ToolCall::new(
                    call_id.clone(),
                    "get_something_by_name",
                    json!({"invalid_param": "value"}),
                )),
            ],
        ))
        .message(tool_result(call_id, result));
    let sse = groq_fixture(&format!("{name}.response.sse"));
    let reasoning = crate::fixtures::concat_deltas(&sse, "reasoning");
    for aspect in [Aspect::StreamedToolCall, Aspect::Reasoning, Aspect::Usage] {
        let reasoning = reasoning.clone();
        cases.push(
            Case::new(
                format!("{name}.* ({})", aspect.title()),
                aspect,
                vec![reply(
                    &format!("{name}.http.json"),
                    &format!("{name}.response.sse"),
                )],
                second_turn.clone(),
            )
            .streamed()
            .expect(Expect::ToolCalls(vec![(
                "get_something_by_name".into(),
                json!({"name": "example"}),
            )]))
            .expect(Expect::FinishReason(FinishReason::ToolCalls))
            .expect(Expect::Usage {
                input: 304,
                output: 49,
            })
            .expect(recorded_body(name))
            .expect(recorded_path(&format!("{name}.http.json")))
            .expect(Expect::response(move |resp| {
                check("reasoning", resp.reasoning(), Some(reasoning.clone()))?;
                check("reasoning tokens", resp.usage.reasoning_tokens, 23)?;
                check(
                    "request id",
                    resp.metadata.get("request_id"),
                    Some(&json!("req_01khrvt32ze9rb75za4xqmdz13")),
                )
            })),
        );
    }
    cases.push(
        Case::new(
            "vercel/stream-tool-call.chunks.jsonl",
            Aspect::StreamedToolCall,
            vec![Scripted::sse(
                200,
                jsonl_to_sse(&groq_fixture("vercel/stream-tool-call.chunks.jsonl")),
            )],
            ChatRequest::new("llama-3.3-70b-versatile").user("What is the weather?"),
        )
        .streamed()
        .expect(Expect::ToolCalls(vec![("weather".into(), json!({}))]))
        .expect(Expect::Usage {
            input: 210,
            output: 15,
        })
        // Groq reports usage unasked; the request does not carry OpenAI's option.
        .expect(Expect::request(|req| {
            let body = req.body_json().unwrap_or_default();
            check("stream", body.get("stream"), Some(&json!(true)))?;
            check("stream_options", body.get("stream_options"), None)
        })),
    );

    // Errors.
    let name = "error-400-tool-use-failed";
    cases.push(
        Case::new(
            "error-400-tool-use-failed.*",
            Aspect::Error,
            vec![reply(
                &format!("{name}.http.json"),
                &format!("{name}.response.json"),
            )],
            tool_request(),
        )
        .expect(Expect::ErrorKind(ErrorKind::InvalidRequest))
        .expect(Expect::ErrorStatus(400))
        .expect(recorded_body(name)),
    );
    cases.push(
        Case::new(
            "error-401-invalid-api-key.{json,http.json}",
            Aspect::Error,
            vec![reply(
                "error-401-invalid-api-key.http.json",
                "error-401-invalid-api-key.json",
            )],
            ChatRequest::new("llama-3.3-70b-versatile").user("hi"),
        )
        .expect(Expect::ErrorKind(ErrorKind::Auth))
        .expect(Expect::ErrorStatus(401)),
    );
    let name = "error-404-model-not-found";
    cases.push(
        Case::new(
            "error-404-model-not-found.*",
            Aspect::Error,
            vec![reply(
                &format!("{name}.http.json"),
                &format!("{name}.response.json"),
            )],
            ChatRequest::new("non-existent").user("hello"),
        )
        .expect(Expect::ErrorKind(ErrorKind::NotFound))
        .expect(Expect::ErrorStatus(404))
        .expect(recorded_body(name)),
    );
    cases.push(
        Case::new(
            "error-429-rate-limit-exceeded.json + ratelimit-headers.groq-docs-example.json",
            Aspect::Error,
            vec![with_headers(
                Scripted::json(429, groq_fixture("error-429-rate-limit-exceeded.json")),
                &groq_json("ratelimit-headers.groq-docs-example.json")["headers"],
            )],
            ChatRequest::new("llama3-70b-8192").user("hi"),
        )
        .expect(Expect::ErrorKind(ErrorKind::RateLimited))
        .expect(Expect::ErrorStatus(429)),
    );
    let name = "stream-midstream-error-event-tool-use-failed";
    cases.push(
        Case::new(
            "stream-midstream-error-event-tool-use-failed.*",
            Aspect::Error,
            vec![reply(
                &format!("{name}.http.json"),
                &format!("{name}.response.sse"),
            )],
            tool_request(),
        )
        .streamed()
        .expect(Expect::ErrorKind(ErrorKind::InvalidRequest))
        .expect(Expect::ErrorStatus(400))
        .expect(recorded_body(name)),
    );
    cases
}

#[tokio::test]
async fn groq_conformance() {
    conformance::run("groq", provider, cases())
        .await
        .assert_passed();
}

/// The events of a streamed call against `reply`, the error (if any) last.
async fn stream_events(reply: Scripted, request: ChatRequest) -> Vec<Result<StreamEvent>> {
    let server = exllm_infrastructure::testing::FixtureServer::start(vec![reply]).await;
    provider(&server.url())
        .stream(request)
        .await
        .expect("the stream starts")
        .collect()
        .await
}

#[tokio::test]
async fn a_mid_stream_error_keeps_the_reasoning_so_far_and_the_failed_generation() {
    let sse = groq_fixture("stream-midstream-error-event-tool-use-failed.response.sse");
    let events = stream_events(Scripted::sse(200, sse.clone()), tool_request()).await;
    let (last, before) = events.split_last().unwrap();
    assert!(before.iter().all(Result::is_ok));
    assert!(!before.iter().any(|e| matches!(e, Ok(StreamEvent::Done(_)))));
    let err = last.as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err:?}");
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), Some("tool_use_failed"));
    assert_eq!(err.provider(), Some("groq"));
    assert!(
        err.raw_body()
            .is_some_and(|raw| raw.contains("failed_generation") && raw.contains("invalid_param")),
        "{err:?}"
    );
    let partial = err.partial_response().expect("the partial reply is kept");
    assert_eq!(
        partial.reasoning(),
        Some(crate::fixtures::concat_deltas(&sse, "reasoning"))
    );
    assert!(
        partial
            .reasoning()
            .unwrap()
            .starts_with("We need to call the tool")
    );
}

#[tokio::test]
async fn a_400_tool_use_failed_keeps_the_failed_generation() {
    let server = exllm_infrastructure::testing::FixtureServer::start(vec![Scripted::json(
        400,
        groq_fixture("error-400-tool-use-failed.response.json"),
    )])
    .await;
    let err = provider(&server.url())
        .chat(tool_request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("tool_use_failed"));
    let raw: Value = serde_json::from_str(err.raw_body().expect("the body is kept")).unwrap();
    assert_eq!(
        raw["error"]["failed_generation"],
        groq_json("error-400-tool-use-failed.response.json")["error"]["failed_generation"]
    );
}

/// SSE chunks whose contents are `pieces`, then a finish chunk and `[DONE]`.
fn content_stream(pieces: &[&str]) -> Vec<String> {
    let mut data = vec![
        json!({"id": "c", "model": "m", "x_groq": {"id": "req_1"},
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        .to_string(),
    ];
    for piece in pieces {
        data.push(json!({"choices": [{"index": 0, "delta": {"content": piece}}]}).to_string());
    }
    data.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string());
    data.push("[DONE]".to_owned());
    data
}

/// Runs payloads through a Groq chunk decoder: the final response, and the events' text and
/// reasoning deltas joined.
fn decode(payloads: &[String]) -> (exllm_core::ChatResponse, String, String) {
    let groq = compatible::service("groq").unwrap();
    let mut decoder = ChunkDecoder::with_quirks("groq", "m", &groq.quirks);
    let mut events = Vec::new();
    for payload in payloads {
        events.extend(decoder.data(payload).unwrap());
    }
    events.extend(decoder.end().unwrap());
    let (mut text, mut reasoning) = (String::new(), String::new());
    let mut done = None;
    for event in events {
        match event {
            StreamEvent::TextDelta(t) => text.push_str(&t),
            StreamEvent::ReasoningDelta(r) => reasoning.push_str(&r),
            StreamEvent::Done(resp) => done = Some(*resp),
            _ => {}
        }
    }
    (done.expect("Done"), text, reasoning)
}

#[test]
fn think_tags_split_anywhere_give_the_same_reasoning_and_text() {
    let content =
        "<think>\nLet me think: a < b, and </thin is not a tag.\n</think>\n\nThe answer é is 42.";
    let whole = decode(&content_stream(&[content]));
    assert_eq!(
        whole.0.reasoning().as_deref(),
        Some("Let me think: a < b, and </thin is not a tag.")
    );
    assert_eq!(whole.0.text(), "The answer é is 42.");
    let chars: Vec<(usize, char)> = content.char_indices().collect();
    // Every split into two pieces, and every split into three around the tags.
    for &(i, _) in &chars {
        let (a, b) = content.split_at(i);
        let split = decode(&content_stream(&[a, b]));
        assert_eq!(split.0, whole.0, "split at {i}");
        assert_eq!(
            (split.1.as_str(), split.2.as_str()),
            (
                whole.0.text().as_str(),
                whole.0.reasoning().unwrap().as_str()
            )
        );
        for &(j, _) in chars.iter().filter(|(j, _)| *j > i && *j < i + 12) {
            let split = decode(&content_stream(&[
                &content[..i],
                &content[i..j],
                &content[j..],
            ]));
            assert_eq!(split.0, whole.0, "split at {i} and {j}");
        }
    }
    // One character per chunk.
    let singles: Vec<String> = content.chars().map(String::from).collect();
    let singles: Vec<&str> = singles.iter().map(String::as_str).collect();
    assert_eq!(decode(&content_stream(&singles)).0, whole.0);
}

#[test]
fn think_tags_only_count_at_the_start_and_unclosed_thoughts_stay_reasoning() {
    let (resp, ..) = decode(&content_stream(&["Use ", "<think> tags", " to think."]));
    assert_eq!(resp.text(), "Use <think> tags to think.");
    assert_eq!(resp.reasoning(), None);
    let (resp, ..) = decode(&content_stream(&["<thi"]));
    assert_eq!(resp.text(), "<thi");
    let (resp, ..) = decode(&content_stream(&["  <think>cut off mid-", "thought  "]));
    assert_eq!(resp.reasoning().as_deref(), Some("cut off mid-thought"));
    assert_eq!(resp.text(), "");
    assert_eq!(resp.metadata["request_id"], json!("req_1"));
}

#[test]
fn usage_reported_twice_on_the_finish_chunk_and_again_after_counts_once() {
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
        "queue_time": 0.5, "total_time": 1.25});
    let payloads = vec![
        json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}],
               "x_groq": {"id": "req_9"}})
        .to_string(),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "x_groq": {"id": "req_9", "usage": usage}, "usage": usage})
        .to_string(),
        json!({"choices": [], "usage": usage}).to_string(),
        "[DONE]".to_owned(),
    ];
    let groq = compatible::service("groq").unwrap();
    let mut decoder = ChunkDecoder::with_quirks("groq", "m", &groq.quirks);
    let mut events = Vec::new();
    for payload in &payloads {
        events.extend(decoder.data(payload).unwrap());
    }
    events.extend(decoder.end().unwrap());
    let usages: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Usage(_)))
        .collect();
    assert_eq!(usages.len(), 1, "{events:?}");
    let Some(StreamEvent::Done(resp)) = events.last() else {
        panic!("no Done")
    };
    assert_eq!((resp.usage.input_tokens, resp.usage.output_tokens), (10, 5));
    assert_eq!(
        resp.metadata["timing"],
        json!({"queue_time": 0.5, "total_time": 1.25})
    );
    assert_eq!(resp.metadata["request_id"], json!("req_9"));
}

#[tokio::test]
async fn the_groq_stream_survives_one_byte_per_chunk() {
    let sse = groq_fixture("stream-reasoning-then-tool-call-with-x-groq-usage.response.sse");
    let request = || ChatRequest::new("openai/gpt-oss-120b").user("hi");
    let collect = |events: Vec<Result<StreamEvent>>| {
        events
            .into_iter()
            .find_map(|e| match e {
                Ok(StreamEvent::Done(resp)) => Some(*resp),
                _ => None,
            })
            .expect("Done")
    };
    let whole = collect(stream_events(Scripted::sse(200, sse.clone()), request()).await);
    let bytes: Vec<Vec<u8>> = sse.as_bytes().iter().map(|b| vec![*b]).collect();
    let split = collect(
        stream_events(
            Scripted::new(200)
                .header("content-type", "text/event-stream")
                .chunks(bytes),
            request(),
        )
        .await,
    );
    assert_eq!(split, whole);
    assert_eq!(whole.tool_calls().len(), 1);
}
