//! Streamed OpenAI chat completions: recorded SSE served over TCP, one `check` per fixture.

use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, FinishReason, Result, StreamEvent, Usage,
};
use exllm_infrastructure::testing::Scripted;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::fixtures::{chat_request, concat_deltas, fixture, fixture_json, jsonl_to_sse, serve};

/// What a recorded stream must translate to. `None` fields are not checked.
#[derive(Default)]
struct Expected {
    text: Option<String>,
    refusal: Option<String>,
    /// `(name, arguments)` of each tool call, in order.
    tool_calls: Option<Vec<(String, Value)>>,
    tool_call_ids: Option<Vec<String>>,
    finish: Option<FinishReason>,
    provider_finish: Option<&'static str>,
    usage: Option<Usage>,
}

/// Streams `sse` through the adapter and returns every event, checking the stream ends with
/// exactly one `Done` whose response matches `expected` and agrees with the deltas.
async fn check(sse: String, expected: Expected) -> ChatResponse {
    let (server, provider) = serve(vec![Scripted::sse(200, sse)]).await;
    let stream = provider
        .stream(ChatRequest::new("gpt-4o").user("hi"))
        .await
        .expect("the stream starts");
    let events: Vec<Result<StreamEvent>> = stream.collect().await;
    let events: Vec<StreamEvent> = events
        .into_iter()
        .map(|e| e.expect("no error event"))
        .collect();
    let Some(StreamEvent::Done(response)) = events.last() else {
        panic!("the stream must end with Done: {events:?}")
    };
    let response = (**response).clone();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Done(_)))
            .count(),
        1
    );

    // The deltas and the final response tell the same story.
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, response.text());
    let ended: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallEnd { call, .. } => Some(call.clone()),
            _ => None,
        })
        .collect();
    let calls: Vec<_> = response.tool_calls().into_iter().cloned().collect();
    assert_eq!(ended, calls);

    if let Some(text) = expected.text {
        assert_eq!(response.text(), text);
    }
    if let Some(refusal) = expected.refusal {
        assert_eq!(response.refusal(), Some(refusal));
    }
    if let Some(want) = expected.tool_calls {
        let got: Vec<_> = calls
            .iter()
            .map(|c| (c.name.clone(), c.arguments.clone()))
            .collect();
        assert_eq!(got, want);
    }
    if let Some(ids) = expected.tool_call_ids {
        let got: Vec<_> = calls.iter().map(|c| c.id.clone()).collect();
        assert_eq!(got, ids);
    }
    if expected.finish.is_some() {
        assert_eq!(response.finish_reason, expected.finish);
    }
    if let Some(raw) = expected.provider_finish {
        assert_eq!(response.provider_finish_reason.as_deref(), Some(raw));
    }
    if let Some(usage) = expected.usage {
        assert_eq!(response.usage, usage);
        assert!(events.contains(&StreamEvent::Usage(usage)));
    }

    // The request asked for a stream with usage.
    let (_, body) = chat_request(&server);
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    response
}

/// The tool-call ids as the recording's first fragments name them.
fn recorded_ids(sse: &str) -> Vec<String> {
    crate::fixtures::sse_chunks(sse)
        .iter()
        .flat_map(|c| {
            c["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|tc| tc["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn text() {
    let sse = fixture("stream-text-gpt4o.sse");
    let response = check(
        sse.clone(),
        Expected {
            text: Some(concat_deltas(&sse, "content")),
            finish: Some(FinishReason::Stop),
            provider_finish: Some("stop"),
            usage: Some(Usage::new(14, 30)),
            ..Expected::default()
        },
    )
    .await;
    assert_eq!(response.id, "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL");
    assert_eq!(response.model, "gpt-4o-2024-08-06");
    assert_eq!(
        response.metadata["system_fingerprint"],
        json!("fp_5050236cbd")
    );
}

#[tokio::test]
async fn text_with_usage_null_and_obfuscation() {
    let sse = jsonl_to_sse(&fixture("stream-text-gpt41nano-with-usage.chunks.jsonl"));
    let response = check(
        sse.clone(),
        Expected {
            text: Some(concat_deltas(&sse, "content")),
            finish: Some(FinishReason::Stop),
            usage: Some(Usage::new(16, 300)),
            ..Expected::default()
        },
    )
    .await;
    assert_eq!(response.metadata["service_tier"], json!("default"));
}

#[tokio::test]
async fn parallel_tool_calls_match_the_non_streamed_reply() {
    let sse = fixture("stream-parallel-tool-calls-gpt4o.sse");
    // The streamed and non-streamed recordings are separate calls: their names and arguments
    // agree, their call ids differ.
    let plain = fixture_json("chat-completion-parallel-tool-calls-gpt4o.json");
    let want = plain["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tc| {
            let f = &tc["function"];
            (
                f["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(f["arguments"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    check(
        sse.clone(),
        Expected {
            text: Some(String::new()),
            tool_calls: Some(want),
            tool_call_ids: Some(recorded_ids(&sse)),
            finish: Some(FinishReason::ToolCalls),
            provider_finish: Some("tool_calls"),
            usage: Some(Usage::new(149, 60)),
            ..Expected::default()
        },
    )
    .await;
}

#[tokio::test]
async fn strict_tool_call() {
    let sse = fixture("stream-tool-call-strict-gpt4o.sse");
    let arguments: Value = serde_json::from_str(
        &crate::fixtures::sse_chunks(&sse)
            .iter()
            .flat_map(|c| {
                c["choices"][0]["delta"]["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|tc| tc["function"]["arguments"].as_str().map(str::to_owned))
            .collect::<String>(),
    )
    .unwrap();
    assert_eq!(arguments["city"], json!("San Francisco"));
    check(
        sse.clone(),
        Expected {
            tool_calls: Some(vec![("get_weather".into(), arguments)]),
            tool_call_ids: Some(vec!["call_CTf1nWJLqSeRgDqaCG27xZ74".into()]),
            finish: Some(FinishReason::ToolCalls),
            usage: Some(Usage::new(48, 19)),
            ..Expected::default()
        },
    )
    .await;
}

#[tokio::test]
async fn refusal_is_a_content_filter_stop() {
    let sse = fixture("stream-refusal-gpt4o.sse");
    check(
        sse.clone(),
        Expected {
            text: Some(String::new()),
            refusal: Some(concat_deltas(&sse, "refusal")),
            finish: Some(FinishReason::ContentFilter),
            provider_finish: Some("stop"),
            usage: Some(Usage::new(79, 11)),
            ..Expected::default()
        },
    )
    .await;
}

#[tokio::test]
async fn max_tokens_is_length() {
    check(
        fixture("stream-max-tokens-length-gpt4o.sse"),
        Expected {
            text: Some("{\"".into()),
            finish: Some(FinishReason::Length),
            provider_finish: Some("length"),
            usage: Some(Usage::new(79, 1)),
            ..Expected::default()
        },
    )
    .await;
}

#[tokio::test]
async fn multiple_choices_keep_choice_zero() {
    let sse = fixture("stream-multiple-choices-n3-gpt4o.sse");
    check(
        sse.clone(),
        Expected {
            text: Some(concat_deltas(&sse, "content")),
            finish: Some(FinishReason::Stop),
            usage: Some(Usage::new(79, 42)),
            ..Expected::default()
        },
    )
    .await;
}

#[tokio::test]
async fn logprobs_are_ignored() {
    check(
        fixture("stream-logprobs-gpt4o.sse"),
        Expected {
            text: Some("Foo!".into()),
            finish: Some(FinishReason::Stop),
            usage: Some(Usage::new(9, 2)),
            ..Expected::default()
        },
    )
    .await;
}

#[tokio::test]
async fn every_recording_survives_being_sent_one_byte_per_chunk() {
    // HTTP chunk boundaries fall anywhere, mid-line and mid-character included; the reply must
    // not depend on them.
    for name in [
        "stream-text-gpt4o.sse",
        "stream-parallel-tool-calls-gpt4o.sse",
    ] {
        let sse = fixture(name);
        let whole = {
            let (_server, provider) = serve(vec![Scripted::sse(200, sse.clone())]).await;
            exllm_core::stream::collect(
                provider
                    .stream(ChatRequest::new("gpt-4o").user("hi"))
                    .await
                    .unwrap(),
            )
            .await
            .unwrap()
        };
        let bytes: Vec<Vec<u8>> = sse.as_bytes().iter().map(|b| vec![*b]).collect();
        let (_server, provider) = serve(vec![
            Scripted::new(200)
                .header("content-type", "text/event-stream")
                .chunks(bytes),
        ])
        .await;
        let split = exllm_core::stream::collect(
            provider
                .stream(ChatRequest::new("gpt-4o").user("hi"))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(split, whole, "{name}");
    }
}
