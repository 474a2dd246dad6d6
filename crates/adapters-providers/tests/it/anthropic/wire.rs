//! The HTTP side: configuration, headers, errors with their context, the model list, and the
//! request body translation rules that no single recording shows.

use exllm_adapters_providers::anthropic::{
    self, ANTHROPIC_BASE_URL, AnthropicConfig, AnthropicProvider, request_body,
};
use exllm_core::{
    ChatProvider, ChatRequest, ContentPart, ErrorKind, FinishReason, Message, ResponseFormat, Role,
    Secret, ToolCall, ToolChoice, ToolDefinition,
};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use serde_json::{Value, json};

use super::{KEY, anthropic_at, check_headers, executor, fixture, replay};

fn hi() -> ChatRequest {
    ChatRequest::new("claude-sonnet-4-5").user("hi")
}

fn body(request: &ChatRequest) -> Value {
    request_body(&AnthropicConfig::new(None, None), request, false).expect("a body")
}

#[test]
fn the_base_url_is_the_root_as_in_the_sdks() {
    let default = AnthropicConfig::new(None, None);
    assert_eq!(default.base_url, ANTHROPIC_BASE_URL);
    assert_eq!(
        default.url("v1/messages"),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(default.name, "anthropic");
    assert_eq!(default.version, "2023-06-01");
    assert_eq!(default.default_max_tokens, 4096);
    let blank = AnthropicConfig::new(None, Some("  ".into()));
    assert_eq!(blank.base_url, ANTHROPIC_BASE_URL);
    let proxy = AnthropicConfig::new(None, Some("http://gateway:4000/anthropic/".into()));
    assert_eq!(
        proxy.url("/v1/messages"),
        "http://gateway:4000/anthropic/v1/messages"
    );
}

#[test]
fn the_key_never_prints() {
    let provider = AnthropicProvider::new(
        AnthropicConfig::new(Some(Secret::new(KEY)), None),
        executor(),
    );
    assert!(!format!("{provider:?}").contains(KEY));
}

#[tokio::test]
async fn headers_carry_the_key_version_and_joined_betas() {
    let server =
        FixtureServer::start(vec![Scripted::json(200, fixture("messages-text.json"))]).await;
    let config = AnthropicConfig::new(Some(Secret::new(KEY)), Some(server.url()))
        .beta("interleaved-thinking-2025-05-14")
        .header("x-team", "blue");
    let provider = AnthropicProvider::new(config, executor());
    provider
        .chat(hi().extra_header("anthropic-beta", "context-1m-2025-08-07"))
        .await
        .unwrap();
    let request = &server.requests()[0];
    check_headers(request).unwrap();
    assert_eq!(
        request.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14,context-1m-2025-08-07")
    );
    assert_eq!(request.header("x-team"), Some("blue"));
}

#[tokio::test]
async fn without_a_key_no_key_header_is_sent() {
    let server =
        FixtureServer::start(vec![Scripted::json(200, fixture("messages-text.json"))]).await;
    let provider =
        AnthropicProvider::new(AnthropicConfig::new(None, Some(server.url())), executor());
    provider.chat(hi()).await.unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.header("x-api-key"), None);
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn the_request_id_header_lands_in_metadata() {
    let server = FixtureServer::start(vec![
        Scripted::json(200, fixture("messages-text.json"))
            .header("request-id", "req_011CYEXg9iLMo4YhB4XfkXBw"),
    ])
    .await;
    let response = anthropic_at(&server.url()).chat(hi()).await.unwrap();
    assert_eq!(
        response.metadata["request_id"],
        json!("req_011CYEXg9iLMo4YhB4XfkXBw")
    );
}

#[tokio::test]
async fn overloaded_529_is_unavailable_and_retryable_with_the_request_id() {
    let server = FixtureServer::start(vec![replay(
        "error-529-overloaded.http.json",
        "error-529-overloaded.json",
    )])
    .await;
    let err = anthropic_at(&server.url()).chat(hi()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.status(), Some(529));
    assert_eq!(err.code(), Some("overloaded_error"));
    assert_eq!(err.request_id(), Some("req_01RCc7MbLyQNtGKzBTv8VCep"));
    assert_eq!(err.provider(), Some("anthropic"));
    assert!(err.is_retryable());
    assert!(!format!("{err:?}{err}").contains(KEY));
}

#[tokio::test]
async fn rate_limit_429_keeps_the_header_request_id() {
    let server = FixtureServer::start(vec![replay(
        "error-429-rate-limit.headers.json",
        "error-429-rate-limit.json",
    )])
    .await;
    let err = anthropic_at(&server.url()).chat(hi()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.code(), Some("rate_limit_error"));
    // The header wins over the body, as in the SDKs.
    assert_eq!(err.request_id(), Some("req_01T5fCVnYdf9X5ZW6KayReBK"));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn invalid_request_400_keeps_the_body_request_id_and_message() {
    let server = FixtureServer::start(vec![replay(
        "error-400-invalid-request.http.json",
        "error-400-invalid-request.response.json",
    )])
    .await;
    let err = anthropic_at(&server.url()).chat(hi()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(err.request_id(), Some("req_011Ca7jT9AHpgXgdv8igm4z9"));
    assert!(err.message().contains("effort level 'xhigh'"));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn models_are_listed_from_v1_models_and_health_uses_them() {
    // The shape of `GET /v1/models` as Anthropic documents it (no recording exists):
    // `{"data": [{"type": "model", "id", "display_name", "created_at"}], "has_more", …}`.
    let list = json!({
        "data": [
            {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"},
            {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-01T00:00:00Z"},
        ],
        "has_more": false,
        "first_id": "claude-sonnet-4-5-20250929",
        "last_id": "claude-haiku-4-5-20251001",
    });
    let server = FixtureServer::start(vec![Scripted::json(200, list.to_string())]).await;
    let provider = anthropic_at(&server.url());
    let models = provider.list_models().await.unwrap();
    let ids: Vec<String> = models.iter().map(|m| m.address()).collect();
    assert_eq!(
        ids,
        [
            "anthropic/claude-sonnet-4-5-20250929",
            "anthropic/claude-haiku-4-5-20251001"
        ]
    );
    provider.health().await.unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/v1/models?limit=1000");
    check_headers(&requests[0]).unwrap();
}

#[tokio::test]
async fn health_fails_with_a_bad_key() {
    let server = FixtureServer::start(vec![Scripted::json(
        401,
        fixture("error-401-authentication.json"),
    )])
    .await;
    let err = anthropic_at(&server.url()).health().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(err.request_id(), Some("req_011CaJCR7Pm2Jh2LbWpBH5Y6"));
}

#[test]
fn sampling_fields_translate_and_extra_body_wins() {
    let request = hi()
        .temperature(0.7)
        .top_p(0.9)
        .max_tokens(100)
        .stop("END")
        .seed(7)
        .extra_body("top_k", json!(5))
        .extra_body("max_tokens", json!(200));
    let body = body(&request);
    assert_eq!(body["temperature"], json!(0.7));
    assert_eq!(body["top_p"], json!(0.9));
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["top_k"], json!(5));
    assert_eq!(body["max_tokens"], json!(200));
    // Anthropic has no seed.
    assert!(body.get("seed").is_none());
}

#[test]
fn tool_choices_translate() {
    let tool = ToolDefinition::new("f", "does f", json!({"type": "object"}));
    for (choice, expected) in [
        (ToolChoice::Auto, json!({"type": "auto"})),
        (ToolChoice::Required, json!({"type": "any"})),
        (ToolChoice::None, json!({"type": "none"})),
        (
            ToolChoice::Tool("f".into()),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        let body = body(&hi().tool(tool.clone()).tool_choice(choice));
        assert_eq!(body["tool_choice"], expected);
        assert_eq!(
            body["tools"],
            json!([{"name": "f", "description": "does f", "input_schema": {"type": "object"}}])
        );
    }
    // Without tools a choice means nothing and is not sent.
    assert!(
        body(&hi().tool_choice(ToolChoice::Auto))
            .get("tool_choice")
            .is_none()
    );
}

#[test]
fn structured_output_forces_a_tool_named_after_the_schema() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    let body = body(&hi().response_format(ResponseFormat::JsonSchema {
        name: "city answer!".into(),
        schema: schema.clone(),
        strict: true,
    }));
    assert_eq!(body["tools"][0]["name"], "city_answer_");
    assert_eq!(body["tools"][0]["input_schema"], schema);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "city_answer_"})
    );
    let object = body_of_json_object();
    assert_eq!(object["tools"][0]["name"], "json");
    assert_eq!(
        object["tools"][0]["input_schema"],
        json!({"type": "object"})
    );
    assert!(
        self::body(&hi().response_format(ResponseFormat::Text))
            .get("tools")
            .is_none()
    );
}

fn body_of_json_object() -> Value {
    body(&hi().response_format(ResponseFormat::JsonObject))
}

#[test]
fn system_messages_are_lifted_wherever_they_are() {
    let one = body(&hi().system("Be brief."));
    assert_eq!(one["system"], json!("Be brief."));
    assert_eq!(one["messages"].as_array().map(Vec::len), Some(1));
    let two = body(&ChatRequest::new("m").system("A").user("hi").system("B"));
    assert_eq!(
        two["system"],
        json!([{"type": "text", "text": "A"}, {"type": "text", "text": "B"}])
    );
    assert_eq!(
        two["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    );
}

#[test]
fn tool_results_merge_and_a_following_user_message_joins_them() {
    let request = hi()
        .message(Message::new(
            Role::Assistant,
            vec![
                ContentPart::ToolCall(ToolCall::new("a", "f", json!({}))),
                ContentPart::ToolCall(ToolCall::new("b", "f", json!({"x": 1}))),
            ],
        ))
        .message(Message::tool_result("a", "one"))
        .message(Message::new(
            Role::Tool,
            vec![ContentPart::ToolResult(exllm_core::ToolResult {
                call_id: "b".into(),
                name: Some("f".into()),
                content: "boom".into(),
                is_error: true,
            })],
        ))
        .user("Thanks, go on.");
    let body = body(&request);
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "one", "is_error": false},
            {"type": "tool_result", "tool_use_id": "b", "content": "boom", "is_error": true},
            {"type": "text", "text": "Thanks, go on."},
        ]})
    );
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(3));
}

#[test]
fn images_translate_and_data_urls_go_as_base64() {
    let request = ChatRequest::new("m").message(Message::new(
        Role::User,
        vec![
            ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
            ContentPart::image_url("https://example.com/a.jpg"),
            ContentPart::image_base64("image/jpeg", "/9j/4AAQ"),
        ],
    ));
    let content = &body(&request)["messages"][0]["content"];
    assert_eq!(
        content,
        &json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
        ])
    );
}

#[test]
fn requests_that_cannot_be_expressed_are_validation_errors() {
    let orphan =
        ChatRequest::new("m").message(Message::new(Role::Tool, vec![ContentPart::text("42")]));
    let err = request_body(&AnthropicConfig::new(None, None), &orphan, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.field(), Some("messages[0]"));

    let list_args = hi().message(Message::new(
        Role::Assistant,
        vec![ContentPart::ToolCall(ToolCall::new(
            "a",
            "f",
            json!([1, 2]),
        ))],
    ));
    let err = request_body(&AnthropicConfig::new(None, None), &list_args, false).unwrap_err();
    assert_eq!(err.field(), Some("messages[1]"));

    // Arguments kept as a string go back when they parse to an object.
    let string_args = hi().message(Message::new(
        Role::Assistant,
        vec![ContentPart::ToolCall(ToolCall::new(
            "a",
            "f",
            json!(r#"{"x": 1}"#),
        ))],
    ));
    assert_eq!(
        body(&string_args)["messages"][1]["content"][0]["input"],
        json!({"x": 1})
    );
}

#[test]
fn stop_reasons_map_as_documented() {
    for (raw, reason) in [
        ("end_turn", Some(FinishReason::Stop)),
        ("stop_sequence", Some(FinishReason::Stop)),
        ("pause_turn", Some(FinishReason::Stop)),
        ("max_tokens", Some(FinishReason::Length)),
        ("model_context_window_exceeded", Some(FinishReason::Length)),
        ("tool_use", Some(FinishReason::ToolCalls)),
        ("refusal", Some(FinishReason::ContentFilter)),
        ("something_new", None),
    ] {
        assert_eq!(anthropic::finish_reason(raw), reason, "{raw}");
    }
}

#[test]
fn unknown_content_blocks_are_kept_in_metadata() {
    let mut body: Value = serde_json::from_str(&fixture("messages-text.json")).unwrap();
    let server_tool = json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}});
    body["content"]
        .as_array_mut()
        .unwrap()
        .push(server_tool.clone());
    let response = anthropic::parse_response("anthropic", &body, None).unwrap();
    assert_eq!(response.metadata["unhandled_content"], json!([server_tool]));
    assert!(response.tool_calls().is_empty());
}

#[test]
fn a_body_that_is_not_a_message_is_a_decode_error() {
    let err =
        anthropic::parse_response("anthropic", &json!({"content": "nope"}), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.raw_body().is_some());
}
