//! Multi-turn round trips: what Anthropic returned on turn one goes back, unchanged, on turn
//! two — signed thinking, redacted thinking, tool calls and their results.

use exllm_core::{
    ChatProvider, ChatRequest, ContentPart, FinishReason, Message, Reasoning, ResponseFormat,
    ToolChoice, ToolDefinition, stream::collect,
};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use serde_json::{Map, Value, json};

use super::{anthropic_at, check_headers, fixture, fixture_json, replay};

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Block type → key set, over every block of every message of a request body.
fn block_shapes(body: &Value) -> Map<String, Value> {
    let mut shapes = Map::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        assert_eq!(keys(message), ["content", "role"], "{message}");
        for block in message["content"].as_array().into_iter().flatten() {
            let kind = block["type"].as_str().unwrap_or_default().to_owned();
            shapes.insert(kind, json!(keys(block)));
        }
    }
    shapes
}

/// Acceptance: a thinking block survives a two-turn tool-use round trip, checked on the
/// request body sent on turn two.
#[tokio::test]
async fn a_thinking_block_survives_a_two_turn_tool_use_round_trip() {
    let server = FixtureServer::start(vec![
        replay(
            "messages-thinking-tool-use.http.json",
            "messages-thinking-tool-use.response.json",
        ),
        replay(
            "messages-tool-result-followup.http.json",
            "messages-tool-result-followup.response.json",
        ),
    ])
    .await;
    let provider = anthropic_at(&server.url());
    let question = "What is the largest city in the user country?";
    let tool = ToolDefinition::new(
        "get_user_country",
        "",
        json!({"additionalProperties": false, "properties": {}, "type": "object"}),
    );
    let thinking = json!({"budget_tokens": 3000, "type": "enabled"});
    let turn_one = ChatRequest::new("claude-sonnet-4-0")
        .user(question)
        .tool(tool.clone())
        .tool_choice(ToolChoice::Auto)
        .max_tokens(4096)
        .extra_body("thinking", thinking.clone());
    let first = provider.chat(turn_one).await.expect("turn one");
    assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
    let call = first.tool_calls()[0].clone();
    assert_eq!(call.name, "get_user_country");

    // Turn two from core types only: the reply as a message, then the tool's result.
    let turn_two = ChatRequest::new("claude-sonnet-4-0")
        .user(question)
        .message(first.to_message())
        .message(Message::tool_result(call.id.clone(), "Mexico"))
        .tool(tool)
        .tool_choice(ToolChoice::Auto)
        .max_tokens(4096)
        .extra_body("thinking", thinking);
    let second = provider.chat(turn_two).await.expect("turn two");
    assert_eq!(second.finish_reason, Some(FinishReason::Stop));

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    check_headers(&requests[1]).unwrap();
    let body = requests[1].body_json().expect("a JSON body");

    // The assistant turn goes back exactly as Anthropic sent it: the thinking block first,
    // with its text and signature byte for byte, then the text, then the tool_use.
    let recorded = fixture_json("messages-thinking-tool-use.response.json");
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": recorded["content"]})
    );
    let thought = &body["messages"][1]["content"][0];
    assert_eq!(thought["type"], "thinking");
    assert_eq!(thought["signature"], recorded["content"][0]["signature"]);
    assert_eq!(thought["thinking"], recorded["content"][0]["thinking"]);
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [{
            "type": "tool_result",
            "tool_use_id": "toolu_01YGzqpRE16Vricda3Aqcejo",
            "content": "Mexico",
            "is_error": false,
        }]})
    );

    // And the body has the recorded follow-up request's shape: the same top-level fields
    // (less `system`, which this conversation has none of) and the same keys per block type.
    let followup = fixture_json("messages-tool-result-followup.request.json");
    let mut expected_top = keys(&followup);
    expected_top.retain(|k| k != "system");
    expected_top.push("thinking".into());
    expected_top.sort();
    assert_eq!(keys(&body), expected_top);
    let ours = block_shapes(&body);
    let theirs = block_shapes(&followup);
    for (kind, shape) in &theirs {
        assert_eq!(ours.get(kind), Some(shape), "{kind} blocks differ in shape");
    }
}

/// Redacted thinking from a stream goes back as `redacted_thinking` with its data unchanged,
/// in order, before the text.
#[tokio::test]
async fn redacted_thinking_from_a_stream_goes_back_unchanged() {
    let server = FixtureServer::start(vec![
        Scripted::sse(200, fixture("stream-redacted-thinking.response.sse")),
        Scripted::json(200, fixture("messages-text.json")),
    ])
    .await;
    let provider = anthropic_at(&server.url());
    let question = ChatRequest::new("claude-sonnet-4-5-20250929").user("hi");
    let first = collect(provider.stream(question.clone()).await.unwrap())
        .await
        .expect("the stream completes");
    provider
        .chat(question.message(first.to_message()).user("And now?"))
        .await
        .expect("turn two");

    let body = server.requests()[1].body_json().unwrap();
    let sent = body["messages"][1]["content"].as_array().unwrap().clone();
    let recorded: Vec<Value> =
        super::sse_payloads(&fixture("stream-redacted-thinking.response.sse"))
            .iter()
            .filter(|p| p["content_block"]["type"] == "redacted_thinking")
            .map(|p| p["content_block"].clone())
            .collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[..2], recorded[..]);
    assert_eq!(sent[2]["type"], "text");
    assert_eq!(sent[2]["text"], json!(first.text()));
}

/// A streamed thinking block (deltas and a signature delta) goes back whole.
#[tokio::test]
async fn streamed_thinking_goes_back_with_its_assembled_signature() {
    let sse = fixture("llm-anthropic/stream-thinking.response.sse");
    let server = FixtureServer::start(vec![
        Scripted::sse(200, sse.clone()),
        Scripted::json(200, fixture("messages-text.json")),
    ])
    .await;
    let provider = anthropic_at(&server.url());
    let question = ChatRequest::new("claude-haiku-4-5-20251001").user("pelican names");
    let first = collect(provider.stream(question.clone()).await.unwrap())
        .await
        .unwrap();
    provider
        .chat(question.message(first.to_message()).user("More?"))
        .await
        .unwrap();
    let body = server.requests()[1].body_json().unwrap();
    assert_eq!(
        body["messages"][1]["content"][0],
        json!({
            "type": "thinking",
            "thinking": super::concat_deltas(&sse, "thinking"),
            "signature": super::concat_deltas(&sse, "signature"),
        })
    );
}

/// Reasoning Anthropic did not sign (another provider's) is the one thing not sent back:
/// the API would reject it.
#[test]
fn unsigned_reasoning_is_not_sent() {
    let config = exllm_adapters_providers::anthropic::AnthropicConfig::new(None, None);
    let request = ChatRequest::new("claude-sonnet-4-5")
        .user("hi")
        .message(Message::new(
            exllm_core::Role::Assistant,
            vec![
                ContentPart::Reasoning(Reasoning {
                    text: "groq thoughts".into(),
                    ..Reasoning::default()
                }),
                ContentPart::text("Hello"),
            ],
        ));
    let body = exllm_adapters_providers::anthropic::request_body(&config, &request, false).unwrap();
    assert_eq!(
        body["messages"][1]["content"],
        json!([{"type": "text", "text": "Hello"}])
    );
}

/// Structured output: the forced tool's input comes back as the reply's text with a plain
/// stop, on a recorded reply whose tool is named as the schema.
#[test]
fn the_structured_output_tool_becomes_text() {
    let body = fixture_json("messages-thinking-tool-use.response.json");
    let request =
        ChatRequest::new("claude-sonnet-4-0").response_format(ResponseFormat::JsonSchema {
            name: "get_user_country".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
    let tool = exllm_adapters_providers::anthropic::structured_tool(&request);
    assert_eq!(tool.as_deref(), Some("get_user_country"));
    let response =
        exllm_adapters_providers::anthropic::parse_response("anthropic", &body, tool.as_deref())
            .unwrap();
    assert!(response.tool_calls().is_empty());
    assert_eq!(response.finish_reason, Some(FinishReason::Stop));
    assert_eq!(response.provider_finish_reason.as_deref(), Some("tool_use"));
    assert!(response.text().ends_with("which country you're from.{}"));
    // Without the structured tool the same body is a tool call.
    let plain =
        exllm_adapters_providers::anthropic::parse_response("anthropic", &body, None).unwrap();
    assert_eq!(plain.finish_reason, Some(FinishReason::ToolCalls));
}
