//! The Anthropic-compatible endpoint `POST /v1/messages`: the translation functions on their
//! own, then the gateway router over real HTTP in front of OpenAI, Anthropic and Gemini
//! fixture upstreams, compared with Anthropic's recorded shapes.

use exllm_app::config::{Environment, Settings};
use exllm_app::gateway::GatewayError;
use exllm_app::gateway::anthropic::{
    SseEncoder, error_body, parse_request, render_message, stop_reason,
};
use exllm_app::gateway::server;
use exllm_core::{
    ChatResponse, ContentPart, FinishReason, ImageSource, Reasoning, Role, StreamEvent, ToolCall,
    ToolChoice, Usage,
};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture;

// ---------------------------------------------------------------------------------------------
// Translation, without a server.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_request_with_every_block_kind_becomes_a_core_request() {
    let body = json!({
        "model": "anthropic/claude-sonnet-4-5",
        "max_tokens": 256,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
                 "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]},
                {"type": "text", "text": "And now?"},
            ]},
            {"role": "assistant", "content": "plain"},
        ],
    });
    let parsed = parse_request(&body, Some("anthropic")).unwrap();
    assert_eq!(parsed.model, "anthropic/claude-sonnet-4-5");
    assert!(!parsed.stream);
    let r = &parsed.request;
    assert_eq!(r.max_tokens, Some(256));
    assert_eq!(r.temperature, Some(0.5));
    assert_eq!(r.top_p, Some(0.9));
    assert_eq!(r.stop, vec!["END".to_owned()]);
    assert_eq!(
        r.extra_body.get("top_k"),
        Some(&json!(5)),
        "Anthropic-only fields reach Anthropic"
    );
    assert_eq!(r.tools.len(), 1);
    assert_eq!(r.tools[0].parameters, json!({"type": "object"}));
    assert_eq!(r.tool_choice, Some(ToolChoice::Tool("get_weather".into())));

    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User,
            Role::Assistant
        ]
    );
    assert_eq!(r.messages[0].text(), "Be brief.Be kind.");
    assert!(matches!(
        &r.messages[1].content[1],
        ContentPart::Image { source: ImageSource::Base64 { media_type, data }, .. }
            if media_type == "image/png" && data == "iVBO"
    ));
    assert!(matches!(
        &r.messages[1].content[2],
        ContentPart::Image { source: ImageSource::Url { url }, .. } if url == "https://example.com/a.png"
    ));
    assert_eq!(
        r.messages[2].content[0],
        ContentPart::Reasoning(Reasoning {
            text: "Hmm.".into(),
            signature: Some("sig-1".into()),
            redacted: None
        })
    );
    assert_eq!(
        r.messages[2].content[1],
        ContentPart::Reasoning(Reasoning {
            text: String::new(),
            signature: None,
            redacted: Some("opaque".into())
        })
    );
    let call = r.messages[2].tool_calls().next().unwrap();
    assert_eq!(call.arguments, json!({"city": "Paris"}));
    match &r.messages[3].content[0] {
        ContentPart::ToolResult(result) => {
            assert_eq!(result.call_id, "toolu_1");
            assert_eq!(
                result.name.as_deref(),
                Some("get_weather"),
                "named from the tool_use"
            );
            assert_eq!(result.content, "line 1\nline 2");
            assert!(result.is_error);
        }
        other => panic!("not a tool result: {other:?}"),
    }
    assert_eq!(r.messages[4].text(), "And now?");
    assert_eq!(r.messages[5].text(), "plain");

    // The same request for another provider leaves Anthropic's own fields behind.
    let other = parse_request(&body, Some("openai")).unwrap();
    assert!(other.request.extra_body.is_empty());
}

#[test]
fn tool_choices_map_to_core() {
    for (wire, want) in [
        (json!({"type": "auto"}), ToolChoice::Auto),
        (json!({"type": "any"}), ToolChoice::Required),
        (json!({"type": "none"}), ToolChoice::None),
    ] {
        let body = json!({"model": "a/b", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": wire});
        assert_eq!(
            parse_request(&body, None).unwrap().request.tool_choice,
            Some(want)
        );
    }
}

#[test]
fn bad_requests_are_refused_as_anthropic_refuses_them() {
    let ok =
        json!({"model": "a/b", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"model": "a/b", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (json!({"max_tokens": 1, "messages": []}), "model"),
        (
            json!({"model": "a/b", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "a/b", "max_tokens": 1, "messages": []}),
            "messages",
        ),
        (
            json!({"model": "a/b", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
            "role",
        ),
        (
            json!({"model": "a/b", "max_tokens": 1, "messages": [{"role": "user", "content": 5}]}),
            "content",
        ),
        (
            json!({"model": "a/b", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "document"}]}]}),
            "document",
        ),
        (
            json!({"model": "a/b", "max_tokens": 1, "bogus": 1, "messages": [{"role": "user", "content": "x"}]}),
            "bogus",
        ),
        (
            json!({"model": "a/b", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "server tools",
        ),
        (json!([1, 2]), "object"),
    ];
    assert!(parse_request(&ok, None).is_ok());
    for (body, needle) in cases {
        let err = parse_request(&body, None).unwrap_err();
        assert_eq!(err.status, 400, "{body}");
        assert!(err.message.contains(needle), "{body}: {}", err.message);
        let rendered = error_body(&err);
        assert_eq!(rendered["type"], "error");
        assert_eq!(rendered["error"]["type"], "invalid_request_error");
    }
}

#[test]
fn error_types_follow_the_status() {
    for (status, want) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ] {
        let err = GatewayError::new(status, "m");
        assert_eq!(error_body(&err)["error"]["type"], want, "{status}");
    }
}

fn response(content: Vec<ContentPart>, finish: Option<FinishReason>) -> ChatResponse {
    let mut r = ChatResponse::new("openai", "gpt-4o");
    r.id = "chatcmpl-1".into();
    r.content = content;
    r.finish_reason = finish;
    r
}

#[test]
fn a_response_renders_as_an_anthropic_message() {
    let mut r = response(
        vec![
            ContentPart::Reasoning(Reasoning {
                text: "Think".into(),
                signature: Some("sig".into()),
                redacted: None,
            }),
            ContentPart::text("Hello"),
            ContentPart::ToolCall(ToolCall::new("call_1", "f", json!({"a": 1}))),
        ],
        Some(FinishReason::ToolCalls),
    );
    r.usage = Usage {
        input_tokens: 100,
        output_tokens: 7,
        cached_input_tokens: 60,
        cache_write_tokens: 10,
        reasoning_tokens: 0,
    };
    let v = render_message(&r, "msg_fallback", "alias");
    assert_eq!(v["id"], "chatcmpl-1");
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(
        v["content"],
        json!([
            {"type": "thinking", "thinking": "Think", "signature": "sig"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        ])
    );
    // Anthropic counts input without the cache reads and writes, which are reported beside it.
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 30, "output_tokens": 7, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 10})
    );
}

#[test]
fn stop_reasons_map_from_every_provider() {
    let cases = [
        (Some(FinishReason::Stop), None, "end_turn"),
        (Some(FinishReason::Length), None, "max_tokens"),
        (Some(FinishReason::ToolCalls), None, "tool_use"),
        (Some(FinishReason::ContentFilter), None, "refusal"),
        (None, None, "end_turn"),
        (
            Some(FinishReason::Stop),
            Some("stop_sequence"),
            "stop_sequence",
        ),
        (Some(FinishReason::Stop), Some("pause_turn"), "pause_turn"),
        (Some(FinishReason::Stop), Some("STOP"), "end_turn"),
        (Some(FinishReason::Length), Some("length"), "max_tokens"),
    ];
    for (finish, raw, want) in cases {
        let mut r = response(vec![ContentPart::text("x")], finish);
        r.provider_finish_reason = raw.map(str::to_owned);
        assert_eq!(stop_reason(&r), want, "{finish:?} {raw:?}");
    }
}

/// Parses an SSE body into `(event name, data JSON)` pairs.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for frame in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let mut name = String::new();
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(rest) = line.strip_prefix("event:") {
                name = rest.trim().to_owned();
            } else if let Some(rest) = line.strip_prefix("data:") {
                data.push_str(rest.trim());
            }
        }
        if !name.is_empty() {
            let value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{data}: {e}"));
            out.push((name, value));
        }
    }
    out
}

#[test]
fn stream_events_encode_as_anthropic_blocks() {
    let mut enc = SseEncoder::new("msg_1", "anthropic/claude");
    let mut text = enc.start(Some(Usage::new(20, 0)));
    let mut done = response(
        vec![
            ContentPart::text("Hi"),
            ContentPart::Reasoning(Reasoning {
                text: "t".into(),
                signature: Some("sig-z".into()),
                redacted: None,
            }),
        ],
        Some(FinishReason::ToolCalls),
    );
    done.usage = Usage::new(20, 9);
    let call = ToolCall::new("call_1", "f", json!({"a": 1}));
    let events = [
        StreamEvent::TextDelta("Hi".into()),
        StreamEvent::TextDelta(String::new()),
        StreamEvent::ToolCallStart {
            index: 0,
            id: "call_1".into(),
            name: "f".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: "{\"a\"".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: ": 1}".into(),
        },
        StreamEvent::ToolCallEnd {
            index: 0,
            call: call.clone(),
        },
        // A call that arrives whole, as Gemini's do.
        StreamEvent::ToolCallEnd {
            index: 1,
            call: ToolCall::new("call_2", "g", json!({"b": 2})),
        },
        StreamEvent::ReasoningDelta("t".into()),
        StreamEvent::ReasoningSignature("sig-z".into()),
        StreamEvent::Usage(Usage::new(20, 9)),
        StreamEvent::Done(Box::new(done)),
    ];
    for event in &events {
        text.push_str(&enc.event(event).concat());
    }
    let parsed = sse_events(&text);
    let names: Vec<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for (name, data) in &parsed {
        assert_eq!(data["type"], name.as_str(), "the data type names the event");
    }
    assert_eq!(parsed[0].1["message"]["usage"]["input_tokens"], 20);
    assert_eq!(parsed[0].1["message"]["content"], json!([]));
    assert_eq!(
        parsed[4].1["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
    );
    let args: String = [&parsed[5].1, &parsed[6].1]
        .iter()
        .map(|d| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"a": 1})
    );
    assert_eq!(parsed[8].1["content_block"]["id"], "call_2");
    assert_eq!(parsed[9].1["delta"]["partial_json"], "{\"b\":2}");
    assert_eq!(parsed[11].1["content_block"]["type"], "thinking");
    assert_eq!(
        parsed[12].1["delta"],
        json!({"type": "thinking_delta", "thinking": "t"})
    );
    assert_eq!(
        parsed[13].1["delta"],
        json!({"type": "signature_delta", "signature": "sig-z"})
    );
    let indexes: Vec<u64> = parsed
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    assert_eq!(parsed[15].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(parsed[15].1["usage"]["output_tokens"], 9);
}

// ---------------------------------------------------------------------------------------------
// The endpoint over real HTTP.
// ---------------------------------------------------------------------------------------------

/// A gateway on 127.0.0.1:0 configured by `env` (plus an in-memory database and no retries).
/// Dropping the handle stops it.
struct Gateway {
    addr: std::net::SocketAddr,
    task: tokio::task::AbortHandle,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn gateway(env: &[(&str, String)]) -> Gateway {
    let mut vars = vec![
        ("EXLLM_DATABASE_URL".to_owned(), "memory://".to_owned()),
        ("EXLLM_RETRY__MAX_RETRIES".to_owned(), "0".to_owned()),
    ];
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let settings = Settings::load(None, &Environment::from_vars(vars)).unwrap();
    let state = server::state(settings).await.unwrap();
    let app = server::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
    .abort_handle();
    Gateway { addr, task }
}

/// An HTTP response as the tests read it.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// POSTs `body` to `/v1/messages` over a plain HTTP/1.1 connection and reads the whole reply
/// (streams included: the gateway closes the connection when the stream ends).
async fn post(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let body = body.to_string();
    let mut head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        gw.addr,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("the gateway answered within 30s")
    .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        rest = dechunk(&rest);
    }
    Reply {
        status,
        headers,
        body: String::from_utf8(rest).expect("a UTF-8 body"),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
            .expect("a chunk size");
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
    out
}

/// Asserts that `actual` has every key of `golden` with a value of the same JSON type,
/// recursively (arrays: their first elements). Anthropic-only usage details (`cache_creation`,
/// `service_tier`, `inference_geo`) are not required.
fn assert_same_shape(actual: &Value, golden: &Value, path: &str) {
    const OPTIONAL: &[&str] = &["cache_creation", "service_tier", "inference_geo"];
    match (actual, golden) {
        (Value::Object(a), Value::Object(g)) => {
            for (key, gv) in g {
                if OPTIONAL.contains(&key.as_str()) {
                    continue;
                }
                let av = a
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} missing in {actual}"));
                assert_same_shape(av, gv, &format!("{path}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(g)) => {
            if let (Some(a0), Some(g0)) = (a.first(), g.first()) {
                assert_same_shape(a0, g0, &format!("{path}[0]"));
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => {}
        _ => panic!("{path}: {actual} is not shaped like {golden}"),
    }
}

fn openai_env(server: &FixtureServer) -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_API_KEY", "sk-test".to_owned()),
        ("OPENAI_BASE_URL", format!("{}/v1", server.url())),
    ]
}

fn anthropic_env(server: &FixtureServer) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_API_KEY", "sk-ant-test".to_owned()),
        ("ANTHROPIC_BASE_URL", server.url()),
    ]
}

fn hello(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello"}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_upstream_answers_in_anthropic_shape() {
    let recorded = fixture("openai/chat-completion-text-gpt41nano.json");
    let recorded_json: Value = serde_json::from_str(&recorded).unwrap();
    let upstream = FixtureServer::start(vec![Scripted::json(200, recorded)]).await;
    let gw = gateway(&openai_env(&upstream)).await;

    let reply = post(
        &gw,
        &hello("openai/gpt-4.1-nano", false),
        &[("x-request-id", "client-id-1")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    let golden: Value = serde_json::from_str(&fixture("anthropic/messages-text.json")).unwrap();
    assert_same_shape(&v, &golden, "message");
    assert_eq!(
        v["content"][0]["text"],
        recorded_json["choices"][0]["message"]["content"]
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(
        v["usage"]["output_tokens"],
        recorded_json["usage"]["completion_tokens"]
    );
    assert_eq!(reply.header("x-request-id"), Some("client-id-1"));
    assert_eq!(reply.header("x-exllm-provider"), Some("openai"));
    assert!(
        reply
            .header("x-exllm-overhead-us")
            .is_some_and(|v| v.parse::<u64>().is_ok())
    );
    assert!(
        reply.header("x-exllm-cost-usd").is_some(),
        "gpt-4.1-nano has a catalogue price"
    );

    // The system prompt and the token limit reached the upstream in its own protocol.
    let sent = upstream.requests()[0].body_json().unwrap();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["messages"][1]["role"], "user");
    assert_eq!(sent["model"], "gpt-4.1-nano");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_stream_comes_back_as_anthropic_events() {
    let recorded = fixture("openai/stream-text-gpt4o.sse");
    let expected_text: String = recorded
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let upstream = FixtureServer::start(vec![Scripted::sse(200, recorded)]).await;
    let gw = gateway(&openai_env(&upstream)).await;

    let reply = post(&gw, &hello("openai/gpt-4o", true), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    assert_eq!(reply.header("x-exllm-provider"), Some("openai"));
    let events = sse_events(&reply.body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(names[1], "content_block_start");
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }

    // Every event has the shape of Anthropic's own event of that name.
    let golden = sse_events(&fixture("anthropic/stream-text-short.response.sse"));
    for (name, data) in &events {
        if let Some((_, g)) = golden.iter().find(|(n, _)| n == name) {
            assert_same_shape(data, g, name);
        }
    }
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, expected_text);
    let (_, delta) = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_upstream_returns_its_tool_use_blocks() {
    let recorded = fixture("anthropic/messages-parallel-tool-use.response.json");
    let upstream = FixtureServer::start(vec![Scripted::json(200, recorded)]).await;
    let gw = gateway(&anthropic_env(&upstream)).await;

    let body = json!({
        "model": "anthropic/claude-haiku-4-5",
        "max_tokens": 1024,
        "tools": [{"name": "retrieve_entity_info", "description": "Info",
                   "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}}}],
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": "Who is the youngest?"}],
    });
    let reply = post(&gw, &body, &[("x-api-key", "ignored-without-a-master-key")]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["id"], "msg_011S3wxtqL5CVescWqS3zeg2");
    let calls: Vec<&Value> = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    let names: Vec<&Value> = calls.iter().map(|c| &c["input"]["name"]).collect();
    assert_eq!(
        names,
        [
            &json!("Alice"),
            &json!("Bob"),
            &json!("Charlie"),
            &json!("Daisy")
        ]
    );
    for call in &calls {
        assert_eq!(call["name"], "retrieve_entity_info");
        assert!(call["input"].is_object());
        assert!(call["id"].as_str().unwrap().starts_with("toolu_"));
    }
    assert_eq!(v["content"][0]["type"], "text");

    let sent = upstream.requests()[0].body_json().unwrap();
    assert_eq!(sent["tools"][0]["name"], "retrieve_entity_info");
    assert_eq!(sent["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(sent["max_tokens"], 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_tool_stream_passes_the_arguments_as_json_fragments() {
    let recorded = fixture("anthropic/stream-tool-use-input-json-delta.sse");
    let upstream = FixtureServer::start(vec![Scripted::sse(200, recorded.clone())]).await;
    let gw = gateway(&anthropic_env(&upstream)).await;

    let reply = post(&gw, &hello("anthropic/claude-sonnet-4-0", true), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = sse_events(&reply.body);
    let (_, start) = events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    let index = start["index"].clone();
    let args: String = events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["index"] == index)
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    // The same input Anthropic streamed, reassembled.
    let upstream_args: String = sse_events(&recorded)
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        serde_json::from_str::<Value>(&upstream_args).unwrap()
    );
    let (_, delta) = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[test]
fn signatures_and_redacted_blocks_stream_where_they_arrive() {
    let mut enc = SseEncoder::new("msg_1", "anthropic/claude");
    let mut text = enc.start(None);
    let done = response(vec![ContentPart::text("Hi")], Some(FinishReason::Stop));
    for event in [
        StreamEvent::RedactedReasoning("opaque".into()),
        StreamEvent::ReasoningDelta("a".into()),
        StreamEvent::ReasoningSignature("sig-a".into()),
        // Reasoning after a signature is a new block, as the accumulator assembles it.
        StreamEvent::ReasoningDelta("b".into()),
        StreamEvent::ReasoningSignature("sig-b".into()),
        StreamEvent::TextDelta("Hi".into()),
        StreamEvent::Done(Box::new(done)),
    ] {
        text.push_str(&enc.event(&event).concat());
    }
    let parsed = sse_events(&text);
    let shape: Vec<(String, Value)> = parsed
        .iter()
        .filter(|(n, _)| n.starts_with("content_block"))
        .map(|(n, d)| {
            let detail = match n.as_str() {
                "content_block_start" => d["content_block"].clone(),
                "content_block_delta" => d["delta"].clone(),
                _ => Value::Null,
            };
            (format!("{n}#{}", d["index"]), detail)
        })
        .collect();
    let expected = [
        (
            "content_block_start#0",
            json!({"type": "redacted_thinking", "data": "opaque"}),
        ),
        ("content_block_stop#0", Value::Null),
        (
            "content_block_start#1",
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        ),
        (
            "content_block_delta#1",
            json!({"type": "thinking_delta", "thinking": "a"}),
        ),
        (
            "content_block_delta#1",
            json!({"type": "signature_delta", "signature": "sig-a"}),
        ),
        ("content_block_stop#1", Value::Null),
        (
            "content_block_start#2",
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        ),
        (
            "content_block_delta#2",
            json!({"type": "thinking_delta", "thinking": "b"}),
        ),
        (
            "content_block_delta#2",
            json!({"type": "signature_delta", "signature": "sig-b"}),
        ),
        ("content_block_stop#2", Value::Null),
        ("content_block_start#3", json!({"type": "text", "text": ""})),
        (
            "content_block_delta#3",
            json!({"type": "text_delta", "text": "Hi"}),
        ),
        ("content_block_stop#3", Value::Null),
    ];
    let expected: Vec<(String, Value)> = expected
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
    assert_eq!(shape, expected);
}

/// The content-block events of an Anthropic SSE body, pings and message events left out, as
/// `(event, block index, block type or delta type)`.
fn block_events(events: &[(String, Value)]) -> Vec<(String, u64, String)> {
    events
        .iter()
        .filter(|(n, _)| n.starts_with("content_block"))
        .map(|(n, d)| {
            let kind = match n.as_str() {
                "content_block_start" => d["content_block"]["type"].as_str(),
                "content_block_delta" => d["delta"]["type"].as_str(),
                _ => Some(""),
            };
            (
                n.clone(),
                d["index"].as_u64().unwrap(),
                kind.unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_thinking_stream_keeps_its_signature() {
    let recorded = fixture("anthropic/stream-thinking-text.response.sse");
    let upstream = FixtureServer::start(vec![Scripted::sse(200, recorded.clone())]).await;
    let gw = gateway(&anthropic_env(&upstream)).await;

    let reply = post(&gw, &hello("anthropic/claude-sonnet-4-0", true), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = sse_events(&reply.body);
    let upstream_events = sse_events(&recorded);
    let signature_of = |events: &[(String, Value)]| -> String {
        events
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "signature_delta")
            .map(|(_, d)| d["delta"]["signature"].as_str().unwrap().to_owned())
            .collect()
    };
    let recorded_signature = signature_of(&upstream_events);
    assert!(!recorded_signature.is_empty());
    assert_eq!(signature_of(&events), recorded_signature);

    // The signature is the thinking block's last delta, before the block stops and before the
    // text block starts, as in the recording.
    let blocks = block_events(&events);
    let upstream_blocks = block_events(&upstream_events);
    let thinking_index = blocks
        .iter()
        .find(|(n, _, kind)| n == "content_block_start" && kind == "thinking")
        .map(|(_, i, _)| *i)
        .expect("a thinking block");
    let of_thinking: Vec<&str> = blocks
        .iter()
        .filter(|(_, i, _)| *i == thinking_index)
        .map(|(n, _, kind)| {
            if kind.is_empty() {
                n.as_str()
            } else {
                kind.as_str()
            }
        })
        .collect();
    assert_eq!(of_thinking.first(), Some(&"thinking"));
    assert_eq!(
        of_thinking[of_thinking.len() - 2..],
        ["signature_delta", "content_block_stop"]
    );
    assert!(
        of_thinking[1..of_thinking.len() - 2]
            .iter()
            .all(|k| *k == "thinking_delta")
    );
    let stop_at = blocks
        .iter()
        .position(|(n, i, _)| n == "content_block_stop" && *i == thinking_index)
        .unwrap();
    let text_at = blocks
        .iter()
        .position(|(n, _, kind)| n == "content_block_start" && kind == "text")
        .expect("a text block");
    assert!(stop_at < text_at, "{blocks:?}");
    // Block kinds and their order match the recording.
    let starts = |blocks: &[(String, u64, String)]| -> Vec<String> {
        blocks
            .iter()
            .filter(|(n, _, _)| n == "content_block_start")
            .map(|(_, _, kind)| kind.clone())
            .collect()
    };
    assert_eq!(starts(&blocks), starts(&upstream_blocks));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_redacted_thinking_stream_keeps_its_redacted_blocks() {
    let recorded = fixture("anthropic/stream-redacted-thinking.response.sse");
    let upstream = FixtureServer::start(vec![Scripted::sse(200, recorded.clone())]).await;
    let gw = gateway(&anthropic_env(&upstream)).await;

    let reply = post(&gw, &hello("anthropic/claude-sonnet-4-0", true), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = sse_events(&reply.body);
    let redacted = |events: &[(String, Value)]| -> Vec<Value> {
        events
            .iter()
            .filter(|(n, d)| {
                n == "content_block_start" && d["content_block"]["type"] == "redacted_thinking"
            })
            .map(|(_, d)| d["content_block"].clone())
            .collect()
    };
    let upstream_redacted = redacted(&sse_events(&recorded));
    assert_eq!(upstream_redacted.len(), 2);
    assert_eq!(redacted(&events), upstream_redacted);
    // Each redacted block starts and stops at once, and both come before the text.
    let blocks = block_events(&events);
    let kinds: Vec<(&str, u64, &str)> = blocks
        .iter()
        .filter(|(n, _, _)| n != "content_block_delta")
        .map(|(n, i, k)| (n.as_str(), *i, k.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("content_block_start", 0, "redacted_thinking"),
            ("content_block_stop", 0, ""),
            ("content_block_start", 1, "redacted_thinking"),
            ("content_block_stop", 1, ""),
            ("content_block_start", 2, "text"),
            ("content_block_stop", 2, ""),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_upstream_works_too() {
    let recorded = fixture("gemini/generate-content-text.response.json");
    let upstream = FixtureServer::start(vec![Scripted::json(200, recorded)]).await;
    let gw = gateway(&[
        ("GEMINI_API_KEY", "AIza-test".to_owned()),
        ("GEMINI_BASE_URL", format!("{}/v1beta", upstream.url())),
    ])
    .await;

    let reply = post(&gw, &hello("gemini/gemini-2.5-flash", false), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    let golden: Value = serde_json::from_str(&fixture("anthropic/messages-text.json")).unwrap();
    assert_same_shape(&v, &golden, "message");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello! How can I help you today?"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 9);
    assert_eq!(reply.header("x-exllm-provider"), Some("gemini"));
}

fn assert_error(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let v = reply.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(
        !reply.body.contains("sk-test"),
        "a key leaked: {}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_in_anthropic_shape_with_the_matching_status() {
    let upstream = FixtureServer::start(vec![Scripted::json(200, "{}")]).await;
    let gw = gateway(&openai_env(&upstream)).await;

    let mut no_max = hello("openai/gpt-4o", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    assert_error(&post(&gw, &no_max, &[]).await, 400, "invalid_request_error");

    for model in ["claude-no-such-alias", "nosuchprovider/model"] {
        assert_error(
            &post(&gw, &hello(model, false), &[]).await,
            404,
            "not_found_error",
        );
        assert_error(
            &post(&gw, &hello(model, true), &[]).await,
            404,
            "not_found_error",
        );
    }

    // Malformed JSON.
    let gw_addr = gw.addr;
    let mut stream = tokio::net::TcpStream::connect(gw_addr).await.unwrap();
    let bad = "{not json";
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{bad}",
        bad.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("invalid_request_error"), "{raw}");
    assert_eq!(upstream.request_count(), 0, "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_429_is_a_429_rate_limit_error_streamed_or_not() {
    let upstream = FixtureServer::start(vec![Scripted::json(
        429,
        fixture("anthropic/error-429-rate-limit.json"),
    )])
    .await;
    let gw = gateway(&anthropic_env(&upstream)).await;
    let reply = post(&gw, &hello("anthropic/claude-sonnet-4-5", false), &[]).await;
    assert_error(&reply, 429, "rate_limit_error");
    // Before the first byte of a stream, the upstream's status is the client's: never a 200.
    let reply = post(&gw, &hello("anthropic/claude-sonnet-4-5", true), &[]).await;
    assert_error(&reply, 429, "rate_limit_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_400_before_streaming_is_a_400() {
    let upstream = FixtureServer::start(vec![Scripted::json(
        400,
        fixture("anthropic/error-400-invalid-request.response.json"),
    )])
    .await;
    let gw = gateway(&anthropic_env(&upstream)).await;
    let reply = post(&gw, &hello("anthropic/claude-sonnet-4-5", true), &[]).await;
    assert_error(&reply, 400, "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_after_the_first_byte_ends_with_an_error_event() {
    // The recorded tool stream cut after its first text delta, then Anthropic's overloaded
    // error event (fx: stream-midstream-error-overloaded.ASSEMBLED.sse).
    let recorded = fixture("anthropic/stream-tool-use-input-json-delta.sse");
    let head: Vec<&str> = recorded.split("\n\n").take(4).collect();
    let mut script = head.join("\n\n");
    script.push_str("\n\n");
    script.push_str(&fixture(
        "anthropic/stream-midstream-error-overloaded.ASSEMBLED.sse",
    ));
    let upstream = FixtureServer::start(vec![Scripted::sse(200, script)]).await;
    let gw = gateway(&anthropic_env(&upstream)).await;

    let reply = post(&gw, &hello("anthropic/claude-sonnet-4-0", true), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = sse_events(&reply.body);
    assert_eq!(events[0].0, "message_start");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{}", reply.body);
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"));
}
