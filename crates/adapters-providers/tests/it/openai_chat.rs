//! Non-streamed OpenAI chat completions: recorded responses served over TCP, one `check` per
//! fixture, and the request the server received.

use exllm_core::{
    ChatProvider, ChatRequest, ContentPart, FinishReason, Message, Role, ToolChoice,
    ToolDefinition, Usage,
};
use exllm_infrastructure::testing::Scripted;
use serde_json::{Value, json};

use crate::fixtures::{chat_request, fixture, fixture_json, serve};

/// What a recorded response must translate to.
#[derive(Default)]
struct Expected {
    id: &'static str,
    model: &'static str,
    text: String,
    /// `(id, name, arguments)` of each tool call, in order.
    tool_calls: Vec<(&'static str, &'static str, Value)>,
    finish: Option<FinishReason>,
    provider_finish: &'static str,
    usage: Usage,
    fingerprint: &'static str,
}

async fn check(fixture_name: &str, request: ChatRequest, expected: Expected) -> Value {
    let (server, provider) = serve(vec![Scripted::json(200, fixture(fixture_name))]).await;
    let response = provider.chat(request).await.expect(fixture_name);
    assert_eq!(response.id, expected.id, "{fixture_name}");
    assert_eq!(response.provider, "openai");
    assert_eq!(response.model, expected.model, "{fixture_name}");
    assert_eq!(response.text(), expected.text, "{fixture_name}");
    let calls: Vec<_> = response
        .tool_calls()
        .into_iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
        .collect();
    let want: Vec<_> = expected
        .tool_calls
        .iter()
        .map(|(id, name, args)| (*id, *name, args.clone()))
        .collect();
    assert_eq!(calls, want, "{fixture_name}");
    assert_eq!(response.finish_reason, expected.finish, "{fixture_name}");
    assert_eq!(
        response.provider_finish_reason.as_deref(),
        Some(expected.provider_finish)
    );
    assert_eq!(response.usage, expected.usage, "{fixture_name}");
    assert_eq!(
        response.metadata["system_fingerprint"],
        json!(expected.fingerprint)
    );
    assert!(response.cost.is_none(), "adapters do not price");
    chat_request(&server).1
}

#[tokio::test]
async fn text() {
    let recorded = fixture_json("chat-completion-text-gpt41nano.json");
    let body = check(
        "chat-completion-text-gpt41nano.json",
        ChatRequest::new("gpt-4.1-nano")
            .user("Invent a new holiday and describe its traditions.")
            .max_tokens(400),
        Expected {
            id: "chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU",
            model: "gpt-4.1-nano-2025-04-14",
            text: recorded["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
            finish: Some(FinishReason::Stop),
            provider_finish: "stop",
            usage: Usage::new(16, 363),
            fingerprint: "fp_de604bd877",
            ..Expected::default()
        },
    )
    .await;
    assert_eq!(
        body,
        json!({
            "model": "gpt-4.1-nano",
            "messages": [{"role": "user", "content": "Invent a new holiday and describe its traditions."}],
            "max_completion_tokens": 400,
        })
    );
}

#[tokio::test]
async fn vision_with_a_base64_image() {
    // The recorded request carries the image as a data URL; rebuilding it from core types must
    // give the same messages back.
    let recorded = fixture_json("chat-completion-vision-base64-image.request.json");
    let url = recorded["messages"][0]["content"][1]["image_url"]["url"]
        .as_str()
        .unwrap();
    let (media_type, data) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .unwrap();
    let message = Message::new(
        Role::User,
        vec![
            ContentPart::text("What is this vegetable?"),
            ContentPart::image_base64(media_type, data),
        ],
    );
    let body = check(
        "chat-completion-vision-base64-image.response.json",
        ChatRequest::new("gpt-4.1-nano").message(message),
        Expected {
            id: "chatcmpl-CO3BLMbmPwNSvGdRh7gWjTd3SN97E",
            model: "gpt-4.1-nano-2025-04-14",
            text: "This vegetable is a potato.".into(),
            finish: Some(FinishReason::Stop),
            provider_finish: "stop",
            usage: Usage::new(515, 6),
            fingerprint: "fp_7c233bf9d1",
            ..Expected::default()
        },
    )
    .await;
    assert_eq!(body["messages"], recorded["messages"]);
}

#[tokio::test]
async fn tool_call() {
    let recorded = fixture_json("chat-completion-tool-call-gpt4o.request.json");
    let tool = &recorded["tools"][0]["function"];
    let body = check(
        "chat-completion-tool-call-gpt4o.response.json",
        ChatRequest::new("gpt-4o")
            .user("What food is in the image you can get from the get_image tool?")
            .tool(ToolDefinition::new(
                "get_image",
                "",
                tool["parameters"].clone(),
            ))
            .tool_choice(ToolChoice::Auto),
        Expected {
            id: "chatcmpl-BRmTHlrARTzAHK1na9s80xDlQGYPX",
            model: "gpt-4o-2024-08-06",
            tool_calls: vec![("call_4hrT4QP9jfojtK69vGiFCFjG", "get_image", json!({}))],
            finish: Some(FinishReason::ToolCalls),
            provider_finish: "tool_calls",
            usage: Usage::new(46, 11),
            fingerprint: "fp_a6889ffe71",
            ..Expected::default()
        },
    )
    .await;
    assert_eq!(body["tools"], recorded["tools"]);
    assert_eq!(body["tool_choice"], recorded["tool_choice"]);
}

#[tokio::test]
async fn parallel_tool_calls() {
    check(
        "chat-completion-parallel-tool-calls-gpt4o.json",
        ChatRequest::new("gpt-4o").user("Weather in Edinburgh and the AAPL price?"),
        Expected {
            id: "chatcmpl-ABfvyvfNWKcl7Ohqos4UFrmMs1v4C",
            model: "gpt-4o-2024-08-06",
            tool_calls: vec![
                (
                    "call_fdNz3vOBKYgOIpMdWotB9MjY",
                    "GetWeatherArgs",
                    json!({"city": "Edinburgh", "country": "GB", "units": "c"}),
                ),
                (
                    "call_h1DWI1POMJLb0KwIyQHWXD4p",
                    "get_stock_price",
                    json!({"ticker": "AAPL", "exchange": "NASDAQ"}),
                ),
            ],
            finish: Some(FinishReason::ToolCalls),
            provider_finish: "tool_calls",
            usage: Usage::new(149, 60),
            fingerprint: "fp_b40fb1c6fb",
            ..Expected::default()
        },
    )
    .await;
}

#[tokio::test]
async fn the_request_id_header_lands_in_metadata_and_extra_headers_are_sent() {
    let (server, provider) = serve(vec![
        Scripted::json(
            200,
            fixture("chat-completion-vision-base64-image.response.json"),
        )
        .header("x-request-id", "req_abc123"),
    ])
    .await;
    let response = provider
        .chat(
            ChatRequest::new("gpt-4.1-nano")
                .user("hi")
                .extra_header("OpenAI-Project", "proj_1"),
        )
        .await
        .unwrap();
    assert_eq!(response.metadata["request_id"], json!("req_abc123"));
    assert_eq!(response.metadata["service_tier"], json!("default"));
    let (request, _) = chat_request(&server);
    assert_eq!(request.header("openai-project"), Some("proj_1"));
}

#[tokio::test]
async fn list_models_and_health() {
    let models = r#"{"object":"list","data":[
        {"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},
        {"id":"gpt-4.1-nano","object":"model","created":1744321025,"owned_by":"system"}]}"#;
    let (server, provider) = serve(vec![Scripted::json(200, models)]).await;
    let listed: Vec<_> = provider
        .list_models()
        .await
        .unwrap()
        .iter()
        .map(|m| m.address())
        .collect();
    assert_eq!(listed, ["openai/gpt-4o", "openai/gpt-4.1-nano"]);
    provider.health().await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.path == "/v1/models")
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {}", crate::fixtures::KEY).as_str())
    );
}
