//! Unit tests of the OpenAI translation: request bodies, response parsing and the chunk
//! decoder, without a network (the integration tests add the wire).

use exllm_core::{
    ChatRequest, ContentPart, ErrorKind, FinishReason, Message, ResponseFormat, Role, StreamEvent,
    ToolCall, ToolChoice, ToolDefinition, ToolResult, Usage,
};
use serde_json::{Value, json};

use super::*;

fn openai() -> OpenAiConfig {
    OpenAiConfig::openai(Some(Secret::new("sk-test")), None)
}

fn body(request: &ChatRequest) -> Value {
    request_body(&openai(), request, false).unwrap()
}

#[test]
fn text_only_messages_are_plain_strings() {
    let request = ChatRequest::new("gpt-4o-mini")
        .system("be brief")
        .user("hello")
        .message(Message::assistant("hi"));
    assert_eq!(
        body(&request)["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
        ])
    );
}

#[test]
fn mixed_content_is_an_array_and_base64_images_become_data_urls() {
    let message = Message::new(
        Role::User,
        vec![
            ContentPart::text("what is this?"),
            ContentPart::image_base64("image/jpeg", "/9j/AAA"),
            ContentPart::Image {
                source: ImageSource::Url {
                    url: "https://example.com/a.png".into(),
                },
                detail: Some("low".into()),
            },
        ],
    );
    let request = ChatRequest::new("gpt-4.1-nano").message(message);
    assert_eq!(
        body(&request)["messages"][0]["content"],
        json!([
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AAA"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        ])
    );
}

#[test]
fn assistant_tool_calls_and_tool_results_round_trip() {
    let assistant = Message::new(
        Role::Assistant,
        vec![
            ContentPart::Reasoning(Reasoning {
                text: "thinking".into(),
                ..Reasoning::default()
            }),
            ContentPart::ToolCall(ToolCall::new(
                "call_1",
                "get_weather",
                json!({"city": "Paris"}),
            )),
            ContentPart::ToolCall(ToolCall::new("call_2", "broken", json!("{not json"))),
        ],
    );
    let results = Message::new(
        Role::Tool,
        vec![
            ContentPart::ToolResult(ToolResult {
                call_id: "call_1".into(),
                name: Some("get_weather".into()),
                content: "sunny".into(),
                is_error: false,
            }),
            ContentPart::ToolResult(ToolResult {
                call_id: "call_2".into(),
                name: None,
                content: "bad arguments".into(),
                is_error: true,
            }),
        ],
    );
    let request = ChatRequest::new("gpt-4o")
        .user("weather?")
        .messages([assistant, results]);
    assert_eq!(
        body(&request)["messages"],
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "broken", "arguments": "{not json"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "bad arguments"},
        ])
    );
}

#[test]
fn tool_results_inside_a_user_message_become_tool_messages_first() {
    let message = Message::new(
        Role::User,
        vec![
            ContentPart::ToolResult(ToolResult {
                call_id: "toolu_1".into(),
                name: None,
                content: "42".into(),
                is_error: false,
            }),
            ContentPart::text("and now?"),
        ],
    );
    let request = ChatRequest::new("gpt-4o").message(message);
    assert_eq!(
        body(&request)["messages"],
        json!([
            {"role": "tool", "tool_call_id": "toolu_1", "content": "42"},
            {"role": "user", "content": "and now?"},
        ])
    );
}

#[test]
fn a_tool_message_without_a_result_is_a_validation_error() {
    let request = ChatRequest::new("gpt-4o")
        .message(Message::new(Role::Tool, vec![ContentPart::text("orphan")]));
    let err = request_body(&openai(), &request, false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.field(), Some("messages[0]"));
}

#[test]
fn earlier_refusals_are_sent_as_refusal() {
    let refused = Message::new(
        Role::Assistant,
        vec![ContentPart::Refusal {
            text: "I can't help with that.".into(),
        }],
    );
    let request = ChatRequest::new("gpt-4o").user("x").message(refused);
    assert_eq!(
        body(&request)["messages"][1],
        json!({"role": "assistant", "refusal": "I can't help with that."})
    );
}

#[test]
fn sampling_tools_and_formats_map_to_openai_fields() {
    let request = ChatRequest::new("gpt-4o")
        .user("hi")
        .temperature(0.7)
        .top_p(0.9)
        .max_tokens(100)
        .stop("END")
        .seed(42)
        .tool(ToolDefinition {
            strict: Some(true),
            ..ToolDefinition::new(
                "get_weather",
                "Weather for a city",
                json!({"type": "object"}),
            )
        })
        .tool_choice(ToolChoice::Tool("get_weather".into()))
        .response_format(ResponseFormat::JsonSchema {
            name: "answer".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
    let body = body(&request);
    // f32 values keep the decimal the caller wrote.
    assert_eq!(body["temperature"], json!(0.7));
    assert_eq!(body["top_p"], json!(0.9));
    assert_eq!(body["max_completion_tokens"], json!(100));
    assert!(body.get("max_tokens").is_none());
    assert_eq!(body["stop"], json!(["END"]));
    assert_eq!(body["seed"], json!(42));
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {
            "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object"}, "strict": true}}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object"}, "strict": true}})
    );
    assert!(body.get("stream").is_none());
}

#[test]
fn tool_choice_and_format_keywords() {
    for (choice, expected) in [
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
        (ToolChoice::Required, json!("required")),
    ] {
        let request = ChatRequest::new("m").user("x").tool_choice(choice);
        assert_eq!(body(&request)["tool_choice"], expected);
    }
    for (format, expected) in [
        (ResponseFormat::Text, json!({"type": "text"})),
        (ResponseFormat::JsonObject, json!({"type": "json_object"})),
    ] {
        let request = ChatRequest::new("m").user("x").response_format(format);
        assert_eq!(body(&request)["response_format"], expected);
    }
}

#[test]
fn quirks_choose_the_token_field_and_stream_usage() {
    let request = ChatRequest::new("llama").user("hi").max_tokens(5);
    let streamed = request_body(&openai(), &request, true).unwrap();
    assert_eq!(streamed["stream"], json!(true));
    assert_eq!(streamed["stream_options"], json!({"include_usage": true}));

    let compatible = OpenAiConfig::compatible("vllm", "http://localhost:8000/v1", None).quirks(
        OpenAiQuirks::default()
            .stream_usage(false)
            .max_tokens_field(MaxTokensField::MaxTokens),
    );
    let body = request_body(&compatible, &request, true).unwrap();
    assert_eq!(body["max_tokens"], json!(5));
    assert!(body.get("max_completion_tokens").is_none());
    assert!(body.get("stream_options").is_none());
}

#[test]
fn extra_body_is_merged_last() {
    let request = ChatRequest::new("gpt-4o")
        .user("hi")
        .temperature(1.0)
        .extra_body("temperature", json!(0.1))
        .extra_body("logprobs", json!(true));
    let body = body(&request);
    assert_eq!(body["temperature"], json!(0.1));
    assert_eq!(body["logprobs"], json!(true));
}

#[test]
fn urls_join_with_one_slash() {
    let config = OpenAiConfig::openai(None, Some("http://127.0.0.1:9/v1/".into()));
    assert_eq!(
        config.url("chat/completions"),
        "http://127.0.0.1:9/v1/chat/completions"
    );
    assert_eq!(openai().url("/models"), "https://api.openai.com/v1/models");
    assert_eq!(openai().name, "openai");
}

#[test]
fn a_response_with_text_refusal_and_tool_calls_parses() {
    let body = json!({
        "id": "chatcmpl-1", "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 1, "message": {"content": "other choice"}, "finish_reason": "stop"},
            {"index": 0, "message": {"content": null, "refusal": "No.", "tool_calls": null},
             "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 2}},
        "system_fingerprint": "fp_1", "service_tier": "default"
    });
    let response = parse_response("openai", &body).unwrap();
    assert_eq!(response.id, "chatcmpl-1");
    assert_eq!(response.refusal().as_deref(), Some("No."));
    assert_eq!(response.text(), "");
    assert_eq!(response.finish_reason, Some(FinishReason::ContentFilter));
    assert_eq!(response.provider_finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 10,
            output_tokens: 3,
            cached_input_tokens: 4,
            cache_write_tokens: 0,
            reasoning_tokens: 2,
        }
    );
    assert_eq!(response.metadata["system_fingerprint"], json!("fp_1"));
    assert_eq!(response.metadata["service_tier"], json!("default"));
}

#[test]
fn finish_reasons_map() {
    for (raw, expected) in [
        ("stop", Some(FinishReason::Stop)),
        ("length", Some(FinishReason::Length)),
        ("tool_calls", Some(FinishReason::ToolCalls)),
        ("function_call", Some(FinishReason::ToolCalls)),
        ("content_filter", Some(FinishReason::ContentFilter)),
        ("eos", None),
    ] {
        assert_eq!(finish_reason(raw), expected, "{raw}");
    }
}

#[test]
fn bodies_that_are_not_completions_are_errors() {
    let err = parse_response("openai", &json!({"choices": []})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let err = parse_response("openai", &json!({"choices": "nope"})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.raw_body().unwrap().contains("nope"));
    let err = parse_response("openai", &json!({"error": {"message": "boom"}})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert_eq!(err.message(), "boom");
}

#[test]
fn model_lists_parse() {
    let models = parse_models(
        "openai",
        &json!({"object": "list", "data": [{"id": "gpt-4o"}, {"id": "o3"}]}),
    )
    .unwrap();
    let ids: Vec<_> = models.iter().map(|m| m.address()).collect();
    assert_eq!(ids, ["openai/gpt-4o", "openai/o3"]);
    assert!(parse_models("openai", &json!({})).is_err());
}

// --- chunk decoder ---------------------------------------------------------------------------

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"id": "c1", "model": "gpt-4o", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

fn feed(decoder: &mut ChunkDecoder, data: &[String]) -> Vec<StreamEvent> {
    data.iter().flat_map(|d| decoder.data(d).unwrap()).collect()
}

#[test]
fn interleaved_tool_call_fragments_assemble_per_index() {
    let mut decoder = ChunkDecoder::new("openai", "gpt-4o");
    let data = [
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "a", "type": "function",
            "function": {"name": "f", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "b", "type": "function",
            "function": {"name": "g", "arguments": "{\"y\""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"x\":1}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": ":2}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        "[DONE]".to_owned(),
    ];
    let events = feed(&mut decoder, &data);
    assert!(decoder.is_done());
    let ends: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallEnd { index, call } => Some((*index, call.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        [
            (0, ToolCall::new("a", "f", json!({"x": 1}))),
            (1, ToolCall::new("b", "g", json!({"y": 2}))),
        ]
    );
    let done = decoder.end().unwrap();
    let Some(StreamEvent::Done(response)) = done.last() else {
        panic!("no Done: {done:?}")
    };
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(response.tool_calls().len(), 2);
}

#[test]
fn other_choices_are_ignored() {
    let mut decoder = ChunkDecoder::new("openai", "gpt-4o");
    let other = json!({"id": "c1", "choices": [
        {"index": 1, "delta": {"content": "B"}, "finish_reason": "stop"}]})
    .to_string();
    let events = feed(&mut decoder, &[chunk(json!({"content": "A"}), None), other]);
    assert_eq!(events, [StreamEvent::TextDelta("A".into())]);
    // Choice 1 finishing does not finish the reply.
    let err = decoder.end().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
}

#[test]
fn a_body_cut_before_done_and_finish_is_truncated_with_the_partial_kept() {
    let mut decoder = ChunkDecoder::new("openai", "gpt-4o");
    feed(
        &mut decoder,
        &[
            chunk(json!({"content": "Hello"}), None),
            chunk(json!({"content": " wor"}), None),
        ],
    );
    let err = decoder.end().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
    assert_eq!(err.provider(), Some("openai"));
    assert_eq!(err.partial_response().unwrap().text(), "Hello wor");
}

#[test]
fn a_finish_reason_without_done_completes_the_stream() {
    let mut decoder = ChunkDecoder::new("openai", "gpt-4o");
    feed(
        &mut decoder,
        &[
            chunk(json!({"content": "Hi"}), None),
            chunk(json!({}), Some("length")),
        ],
    );
    let events = decoder.end().unwrap();
    let Some(StreamEvent::Done(response)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(response.finish_reason, Some(FinishReason::Length));
    assert_eq!(response.text(), "Hi");
}

#[test]
fn an_empty_stream_is_an_error() {
    let err = ChunkDecoder::new("openai", "gpt-4o").end().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
}

#[test]
fn malformed_chunks_are_decode_errors_with_raw_data_and_partial() {
    let mut decoder = ChunkDecoder::new("openai", "gpt-4o");
    feed(&mut decoder, &[chunk(json!({"content": "so far"}), None)]);
    let err = decoder.data("{\"choices\": [tru").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.raw_body(), Some("{\"choices\": [tru"));
    assert_eq!(err.partial_response().unwrap().text(), "so far");
    let err = decoder.data("{\"choices\": 5}").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
}

#[test]
fn an_in_band_error_chunk_is_an_error() {
    let mut decoder = ChunkDecoder::new("openai", "gpt-4o");
    let err = decoder
        .data(r#"{"error":{"message":"overloaded","type":"server_error"}}"#)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert_eq!(err.message(), "overloaded");
}

#[test]
fn groq_reasoning_deltas_become_reasoning() {
    // fx: groq/stream-reasoning-then-tool-call-with-x-groq-usage.response.sse
    let mut decoder = ChunkDecoder::new("groq", "openai/gpt-oss-20b");
    let events = feed(
        &mut decoder,
        &[
            chunk(json!({"reasoning": "We", "channel": "analysis"}), None),
            chunk(json!({"content": "Hi"}), Some("stop")),
        ],
    );
    assert_eq!(
        events,
        [
            StreamEvent::ReasoningDelta("We".into()),
            StreamEvent::TextDelta("Hi".into()),
        ]
    );
    let Some(StreamEvent::Done(response)) = decoder.end().unwrap().pop() else {
        panic!()
    };
    assert_eq!(response.reasoning().as_deref(), Some("We"));
}

/// Every recorded OpenAI stream's payloads decode to a complete reply (the integration tests
/// add the SSE framing and the network).
#[test]
fn recorded_streams_decode_without_error() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/openai/"
    );
    for name in [
        "stream-text-gpt4o.sse",
        "stream-logprobs-gpt4o.sse",
        "stream-max-tokens-length-gpt4o.sse",
        "stream-multiple-choices-n3-gpt4o.sse",
        "stream-parallel-tool-calls-gpt4o.sse",
        "stream-refusal-gpt4o.sse",
        "stream-tool-call-strict-gpt4o.sse",
    ] {
        let text = std::fs::read_to_string(format!("{dir}{name}")).unwrap();
        let mut decoder = ChunkDecoder::new("openai", "gpt-4o");
        for line in text.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                decoder.data(data).unwrap();
            }
        }
        assert!(decoder.is_done(), "{name}");
        let events = decoder.end().unwrap();
        assert!(
            matches!(events.last(), Some(StreamEvent::Done(_))),
            "{name}"
        );
    }
}
