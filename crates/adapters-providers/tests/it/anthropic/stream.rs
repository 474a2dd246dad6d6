//! Streams beyond the conformance cases: every byte boundary, cut-off and failing streams, and
//! the events a stream emits on the way.

use exllm_adapters_providers::anthropic::EventDecoder;
use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, ContentPart, ErrorKind, FinishReason, Result,
    StreamEvent, Usage, stream::collect,
};
use exllm_infrastructure::sse::{DEFAULT_MAX_LINE_BYTES, SseDecoder};
use exllm_infrastructure::testing::{FixtureServer, Scripted};
use futures_util::StreamExt;
use serde_json::json;

use super::{anthropic_at, fixture};

fn hi() -> ChatRequest {
    ChatRequest::new("claude-sonnet-4-5").user("hi")
}

/// Decodes `chunks` of an SSE body as the provider does, without a network: SSE framing, then
/// the adapter's decoder, up to `message_stop`.
fn decode(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>> {
    let mut sse = SseDecoder::new(DEFAULT_MAX_LINE_BYTES);
    let mut decoder = EventDecoder::new("anthropic", "claude");
    let mut events = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        frames.extend(sse.feed(chunk)?);
    }
    frames.extend(sse.finish()?);
    for frame in frames {
        events.extend(decoder.data(&frame.data)?);
        if decoder.is_done() {
            break;
        }
    }
    events.extend(decoder.end()?);
    Ok(events)
}

fn done(events: &[StreamEvent]) -> &ChatResponse {
    match events.last() {
        Some(StreamEvent::Done(response)) => response,
        other => panic!("the last event must be Done: {other:?}"),
    }
}

#[test]
fn every_byte_boundary_gives_the_same_reply() {
    // Two-piece splits at every byte, UTF-8 characters included (`🦅`, `é`), with padded JSON
    // and interleaved pings.
    for name in [
        "stream-text-short.response.sse",
        "stream-tool-use-input-json-delta.sse",
        "llm-anthropic/stream-after-tool-results.response.sse",
        "llm-anthropic/stream-thinking.response.sse",
    ] {
        let sse = fixture(name);
        let bytes = sse.as_bytes();
        let whole = decode(&[bytes]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        for cut in 1..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            let split = decode(&[a, b]).unwrap_or_else(|e| panic!("{name} cut at {cut}: {e:?}"));
            assert_eq!(split, whole, "{name} cut at {cut}");
        }
    }
}

#[tokio::test]
async fn a_recording_sent_one_byte_per_chunk_gives_the_same_reply() {
    let sse = fixture("llm-anthropic/stream-after-tool-results.response.sse");
    let whole = {
        let server = FixtureServer::start(vec![Scripted::sse(200, sse.clone())]).await;
        let provider = anthropic_at(&server.url());
        collect(provider.stream(hi()).await.unwrap()).await.unwrap()
    };
    let bytes: Vec<Vec<u8>> = sse.as_bytes().iter().map(|b| vec![*b]).collect();
    let server = FixtureServer::start(vec![
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(bytes),
    ])
    .await;
    let provider = anthropic_at(&server.url());
    let split = collect(provider.stream(hi()).await.unwrap()).await.unwrap();
    assert_eq!(split, whole);
    assert!(whole.text().ends_with("feathered friend! 🦅"));
}

#[tokio::test]
async fn crlf_framing_gives_the_same_reply() {
    let sse = fixture("stream-tool-use-input-json-delta.sse");
    let server = FixtureServer::start(vec![
        Scripted::sse(200, sse.clone()),
        Scripted::sse(200, sse.replace('\n', "\r\n")),
    ])
    .await;
    let provider = anthropic_at(&server.url());
    let lf = collect(provider.stream(hi()).await.unwrap()).await.unwrap();
    let crlf = collect(provider.stream(hi()).await.unwrap()).await.unwrap();
    assert_eq!(lf, crlf);
}

#[tokio::test]
async fn the_events_arrive_in_order_with_one_final_usage() {
    let server = FixtureServer::start(vec![Scripted::sse(
        200,
        fixture("stream-tool-use-input-json-delta.sse"),
    )])
    .await;
    let provider = anthropic_at(&server.url());
    let events: Vec<StreamEvent> = provider
        .stream(hi())
        .await
        .unwrap()
        .map(|e| e.expect("no error"))
        .collect()
        .await;
    let usage = Usage::new(377, 65);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Usage(_)))
            .collect::<Vec<_>>(),
        [&StreamEvent::Usage(usage)]
    );
    let start = events
        .iter()
        .position(|e| matches!(e, StreamEvent::ToolCallStart { index: 0, name, .. } if name == "get_weather"))
        .expect("a tool call start");
    let fragments: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments,
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(fragments, r#"{"location": "Paris"}"#);
    let end = events
        .iter()
        .position(|e| matches!(e, StreamEvent::ToolCallEnd { index: 0, .. }))
        .expect("a tool call end");
    assert!(start < end);
    let response = done(&events);
    assert_eq!(response.usage, usage);
    assert_eq!(
        response.tool_calls()[0].id,
        "toolu_01NRLabsLyVHZPKxbKvkfSMn"
    );
    assert_eq!(response.provider_finish_reason.as_deref(), Some("tool_use"));
}

#[tokio::test]
async fn thinking_streams_as_reasoning_deltas() {
    let sse = fixture("stream-thinking-text.response.sse");
    let server = FixtureServer::start(vec![Scripted::sse(200, sse.clone())]).await;
    let provider = anthropic_at(&server.url());
    let events: Vec<StreamEvent> = provider
        .stream(hi())
        .await
        .unwrap()
        .map(|e| e.expect("no error"))
        .collect()
        .await;
    let reasoning: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ReasoningDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, super::concat_deltas(&sse, "thinking"));
    assert_eq!(done(&events).reasoning(), Some(reasoning));
}

/// The events of streaming recording `name` from a fixture server.
async fn stream_events(name: &str) -> Vec<StreamEvent> {
    let server = FixtureServer::start(vec![Scripted::sse(200, fixture(name))]).await;
    let provider = anthropic_at(&server.url());
    provider
        .stream(hi())
        .await
        .unwrap()
        .map(|e| e.expect("no error"))
        .collect()
        .await
}

#[tokio::test]
async fn a_thinking_signature_streams_before_the_thinking_block_ends() {
    let sse = fixture("stream-thinking-text.response.sse");
    let events = stream_events("stream-thinking-text.response.sse").await;
    let recorded = super::concat_deltas(&sse, "signature");
    assert!(!recorded.is_empty(), "the recording has a signature_delta");
    let signatures: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, StreamEvent::ReasoningSignature(_)))
        .map(|(i, _)| i)
        .collect();
    let [at] = signatures[..] else {
        panic!("one signature event expected: {events:?}");
    };
    assert_eq!(
        events[at],
        StreamEvent::ReasoningSignature(recorded.clone())
    );
    // After all of the block's thinking, before the text block that follows it.
    let last_thinking = events
        .iter()
        .rposition(|e| matches!(e, StreamEvent::ReasoningDelta(_)))
        .expect("thinking deltas");
    let first_text = events
        .iter()
        .position(|e| matches!(e, StreamEvent::TextDelta(_)))
        .expect("text deltas");
    assert!(last_thinking < at && at < first_text, "{events:?}");
    let reasoning = done(&events)
        .content
        .iter()
        .find_map(|p| match p {
            ContentPart::Reasoning(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a reasoning part");
    assert_eq!(reasoning.signature, Some(recorded));
}

#[tokio::test]
async fn redacted_thinking_streams_as_redacted_reasoning_events() {
    let sse = fixture("stream-redacted-thinking.response.sse");
    let recorded: Vec<String> = super::sse_payloads(&sse)
        .iter()
        .filter(|p| p["content_block"]["type"] == "redacted_thinking")
        .map(|p| p["content_block"]["data"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recorded.len(), 2, "the recording has two redacted blocks");
    let events = stream_events("stream-redacted-thinking.response.sse").await;
    let redacted: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::RedactedReasoning(data) => Some(data.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(redacted, recorded);
    // Both come before the reply text, as in the recording.
    let last_redacted = events
        .iter()
        .rposition(|e| matches!(e, StreamEvent::RedactedReasoning(_)))
        .unwrap();
    let first_text = events
        .iter()
        .position(|e| matches!(e, StreamEvent::TextDelta(_)))
        .expect("text deltas");
    assert!(last_redacted < first_text, "{events:?}");
    let in_done: Vec<String> = done(&events)
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Reasoning(r) => r.redacted.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(in_done, recorded);
}

/// The recording up to (not including) its `message_stop` event.
fn without_message_stop(sse: &str) -> String {
    let cut = sse
        .find("event: message_stop")
        .expect("a message_stop event");
    sse[..cut].to_owned()
}

#[tokio::test]
async fn a_stream_ending_without_message_stop_is_truncated_and_keeps_the_partial() {
    let sse = without_message_stop(&fixture("stream-text-short.response.sse"));
    let server = FixtureServer::start(vec![Scripted::sse(200, sse)]).await;
    let provider = anthropic_at(&server.url());
    let err = collect(provider.stream(hi()).await.unwrap())
        .await
        .expect_err("truncated");
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
    assert_eq!(err.provider(), Some("anthropic"));
    let partial = err.partial_response().expect("the partial reply");
    assert_eq!(partial.text(), "2");
    assert_eq!(partial.id, "msg_018E1hg8GoVTGEKQY3ovMcSJ");
    assert_eq!(partial.finish_reason, Some(FinishReason::Stop));
    assert_eq!(partial.usage, Usage::new(20, 5));
}

#[tokio::test]
async fn a_stream_cut_mid_tool_call_keeps_the_arguments_received() {
    let sse = fixture("stream-tool-use-input-json-delta.sse");
    let cut = sse.find("\"ar\"").expect("the third fragment");
    let server =
        FixtureServer::start(vec![Scripted::reset_after(vec![sse[..cut].to_owned()])]).await;
    let provider = anthropic_at(&server.url());
    let err = collect(provider.stream(hi()).await.unwrap())
        .await
        .expect_err("the connection was reset");
    let partial = err.partial_response().expect("the partial reply");
    assert_eq!(
        partial.text(),
        "I'll check the current weather in Paris for you."
    );
    let call = partial.tool_calls()[0];
    assert_eq!(call.name, "get_weather");
    assert_eq!(call.arguments, json!(r#"{"location": "P"#));
    // message_start's input counts survive the cut.
    assert_eq!(partial.usage.input_tokens, 377);
}

#[tokio::test]
async fn a_mid_stream_error_event_fails_the_stream_and_keeps_the_partial() {
    // Real text events of a recording, then the real overloaded error event (PROVENANCE.md:
    // the error payload is real, its framing assembled).
    let text = fixture("stream-text-short.response.sse");
    let cut = text
        .find("event: content_block_stop")
        .expect("a block stop");
    let sse = format!(
        "{}{}",
        &text[..cut],
        fixture("stream-midstream-error-overloaded.ASSEMBLED.sse")
    );
    let server = FixtureServer::start(vec![Scripted::sse(200, sse)]).await;
    let provider = anthropic_at(&server.url());
    let mut stream = provider.stream(hi()).await.unwrap();
    let mut deltas = String::new();
    let err = loop {
        match stream.next().await.expect("an error before the end") {
            Ok(StreamEvent::TextDelta(t)) => deltas.push_str(&t),
            Ok(StreamEvent::Done(_)) => panic!("no Done after an error event"),
            Ok(_) => {}
            Err(err) => break err,
        }
    };
    assert!(stream.next().await.is_none(), "nothing after the error");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.code(), Some("overloaded_error"));
    assert!(err.is_retryable());
    assert_eq!(deltas, "2");
    assert_eq!(
        err.partial_response().map(ChatResponse::text),
        Some("2".into())
    );
}

#[tokio::test]
async fn malformed_event_json_is_a_decode_error_with_the_partial() {
    let text = fixture("stream-text-short.response.sse");
    let cut = text
        .find("event: content_block_stop")
        .expect("a block stop");
    let sse = format!(
        "{}event: content_block_stop\ndata: {{\"type\":\n\n",
        &text[..cut]
    );
    let server = FixtureServer::start(vec![Scripted::sse(200, sse)]).await;
    let provider = anthropic_at(&server.url());
    let err = collect(provider.stream(hi()).await.unwrap())
        .await
        .expect_err("malformed");
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.raw_body().is_some_and(|b| b.contains("\"type\":")));
    assert_eq!(
        err.partial_response().map(ChatResponse::text),
        Some("2".into())
    );
}

#[tokio::test]
async fn an_empty_stream_is_truncated() {
    let server = FixtureServer::start(vec![Scripted::sse(200, "")]).await;
    let provider = anthropic_at(&server.url());
    let err = collect(provider.stream(hi()).await.unwrap())
        .await
        .expect_err("empty");
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
}

#[tokio::test]
async fn a_whole_message_where_a_stream_was_asked_for_still_completes() {
    // A proxy that ignores `stream` answers with the plain JSON message.
    let server = FixtureServer::start(vec![Scripted::json(
        200,
        fixture("messages-parallel-tool-use.response.json"),
    )])
    .await;
    let provider = anthropic_at(&server.url());
    let response = collect(provider.stream(hi()).await.unwrap()).await.unwrap();
    assert_eq!(response.tool_calls().len(), 4);
    assert_eq!(response.tool_calls()[3].arguments, json!({"name": "Daisy"}));
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(response.usage, Usage::new(423, 202));
    assert_eq!(response.id, "msg_011S3wxtqL5CVescWqS3zeg2");
}
