//! Gemini streams on the wire: CRLF framing split at every byte, one byte per HTTP chunk,
//! streams that end without a `finishReason`, break, or report an error mid-way, the JSON-array
//! form, and Vertex's streamed arguments (refused clearly).

use exllm_adapters_providers::conformance::{FixtureServer, Scripted};
use exllm_adapters_providers::gemini::ChunkDecoder;
use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, ErrorKind, FinishReason, Result, StreamEvent,
};
use exllm_infrastructure::sse::{DEFAULT_MAX_LINE_BYTES, SseDecoder};
use futures_util::StreamExt;
use serde_json::json;

use super::{fixture, gemini, json_array_to_sse, jsonl_to_sse};

/// Decodes `bytes` fed in `pieces` through the SSE decoder and the Gemini chunk decoder, as the
/// executor and the adapter do, and returns the final response.
fn decode(pieces: &[&[u8]]) -> Result<ChatResponse> {
    let mut sse = SseDecoder::new(DEFAULT_MAX_LINE_BYTES);
    let mut decoder = ChunkDecoder::new("gemini", "gemini-test");
    let mut frames = Vec::new();
    for piece in pieces {
        frames.extend(sse.feed(piece)?);
    }
    frames.extend(sse.finish()?);
    for frame in frames {
        decoder.data(&frame.data)?;
    }
    let events = decoder.end()?;
    match events.last() {
        Some(StreamEvent::Done(response)) => Ok((**response).clone()),
        other => panic!("no Done: {other:?}"),
    }
}

#[test]
fn crlf_streams_decode_the_same_split_at_every_byte() {
    for name in [
        "rust-genai/stream-sse-thought-then-function-call.sse",
        "stream-sse-function-call-thought-signature.response.sse",
        "stream-sse-text.response.sse",
    ] {
        let bytes = fixture(name).into_bytes();
        assert!(
            bytes.windows(4).any(|w| w == b"\r\n\r\n"),
            "{name} is CRLF-framed"
        );
        let whole = decode(&[&bytes]).expect("the whole recording decodes");
        assert!(whole.finish_reason.is_some(), "{name}");
        for cut in 1..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            let split = decode(&[a, b]).unwrap_or_else(|e| panic!("{name} cut at {cut}: {e}"));
            assert_eq!(split, whole, "{name} cut at {cut}");
        }
    }
}

#[test]
fn multibyte_text_split_mid_character_decodes_intact() {
    // The recordings are ASCII; this derived stream puts 2-, 3- and 4-byte characters in the
    // recorded text so that some cuts fall inside a character.
    let sse = fixture("stream-sse-text.response.sse").replace(" is Paris.", " is Pärís — 🗼.");
    let bytes = sse.into_bytes();
    let whole = decode(&[&bytes]).expect("the whole stream decodes");
    assert_eq!(whole.text(), "The capital of France is Pärís — 🗼.\n");
    for cut in 1..bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(decode(&[a, b]).expect("decodes"), whole, "cut at {cut}");
    }
}

#[tokio::test]
async fn one_byte_per_http_chunk_over_tcp() {
    let bytes = fixture("rust-genai/stream-sse-thought-then-function-call.sse").into_bytes();
    let chunks: Vec<Vec<u8>> = bytes.iter().map(|b| vec![*b]).collect();
    let server = FixtureServer::start(vec![
        Scripted::new(200)
            .header("content-type", "text/event-stream")
            .chunks(chunks),
        Scripted::sse(200, String::from_utf8(bytes).expect("UTF-8")),
    ])
    .await;
    let provider = gemini(&server.url());
    let request = ChatRequest::new("gemini-3.1-pro-preview").user("weather in Africa?");
    let byte_by_byte = exllm_core::stream::collect(provider.stream(request.clone()).await.unwrap())
        .await
        .expect("a complete response");
    let whole = exllm_core::stream::collect(provider.stream(request).await.unwrap())
        .await
        .expect("a complete response");
    assert_eq!(byte_by_byte, whole);
    assert_eq!(byte_by_byte.tool_calls()[0].name, "get_weather");
    assert!(byte_by_byte.text().starts_with("To determine which"));
}

#[tokio::test]
async fn function_calls_arrive_whole_and_get_increasing_indexes() {
    // A recorded non-streamed body is also a valid stream chunk: three calls in one part list.
    let body = fixture("generate-content-function-call-gemini3.response.json");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let server =
        FixtureServer::start(vec![Scripted::sse(200, format!("data: {value}\r\n\r\n"))]).await;
    let stream = gemini(&server.url())
        .stream(ChatRequest::new("gemini-3-flash-preview").user("jokes"))
        .await
        .unwrap();
    let events: Vec<StreamEvent> = stream.map(|e| e.expect("no error")).collect().await;
    let calls: Vec<(&str, usize)> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart { index, .. } => Some(("start", *index)),
            StreamEvent::ToolCallDelta { index, .. } => Some(("delta", *index)),
            StreamEvent::ToolCallEnd { index, .. } => Some(("end", *index)),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("start", 0),
            ("delta", 0),
            ("end", 0),
            ("start", 1),
            ("delta", 1),
            ("end", 1),
            ("start", 2),
            ("delta", 2),
            ("end", 2)
        ]
    );
    let Some(StreamEvent::Done(done)) = events.last() else {
        panic!("no Done")
    };
    assert_eq!(done.finish_reason, Some(FinishReason::ToolCalls));
    assert!(done.tool_calls()[0].signature.is_some());
}

#[tokio::test]
async fn a_stream_without_a_finish_reason_is_truncated_and_keeps_the_partial_reply() {
    let sse = fixture("stream-sse-text.response.sse");
    // Everything but the last event, the one with finishReason.
    let events: Vec<&str> = sse.split_inclusive("\r\n\r\n").collect();
    let cut: String = events[..events.len() - 1].concat();
    let server = FixtureServer::start(vec![Scripted::sse(200, cut)]).await;
    let stream = gemini(&server.url())
        .stream(ChatRequest::new("gemini-2.0-flash-exp").user("capital?"))
        .await
        .unwrap();
    let err = exllm_core::stream::collect(stream)
        .await
        .expect_err("no finishReason");
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
    assert!(err.is_retryable());
    let partial = err.partial_response().expect("the partial reply");
    assert_eq!(partial.text(), "The capital of France");
    assert_eq!(partial.usage.input_tokens, 15);
}

#[tokio::test]
async fn an_empty_stream_is_truncated() {
    let server = FixtureServer::start(vec![Scripted::sse(200, "")]).await;
    let stream = gemini(&server.url())
        .stream(ChatRequest::new("gemini-2.5-flash").user("hi"))
        .await
        .unwrap();
    let err = exllm_core::stream::collect(stream)
        .await
        .expect_err("empty");
    assert_eq!(err.kind(), ErrorKind::StreamTruncated);
}

#[tokio::test]
async fn a_broken_connection_fails_with_what_came_before() {
    let sse = fixture("stream-sse-thinking.response.sse");
    let first: String = sse.split_inclusive("\r\n\r\n").take(2).collect();
    let server = FixtureServer::start(vec![Scripted::reset_after(vec![first])]).await;
    let stream = gemini(&server.url())
        .stream(ChatRequest::new("gemini-2.5-pro").user("cross the street?"))
        .await
        .unwrap();
    let err = exllm_core::stream::collect(stream)
        .await
        .expect_err("reset");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err:?}");
    let partial = err.partial_response().expect("the partial reply");
    assert!(
        partial
            .reasoning()
            .unwrap_or_default()
            .starts_with("**Clarifying User Goals**")
    );
}

#[tokio::test]
async fn an_error_frame_after_content_ends_the_stream_with_its_kind() {
    // No mid-stream Gemini error was captured (PROVENANCE.md); this one has the documented
    // error body shape inside a data line, after a recorded first chunk.
    let first: String = fixture("stream-sse-text.response.sse")
        .split_inclusive("\r\n\r\n")
        .take(1)
        .collect();
    let error = json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}});
    let server = FixtureServer::start(vec![Scripted::sse(
        200,
        format!("{first}data: {error}\r\n\r\n"),
    )])
    .await;
    let stream = gemini(&server.url())
        .stream(ChatRequest::new("gemini-2.0-flash-exp").user("capital?"))
        .await
        .unwrap();
    let events: Vec<Result<StreamEvent>> = stream.collect().await;
    assert!(matches!(events.first(), Some(Ok(StreamEvent::TextDelta(t))) if t == "The"));
    let err = events
        .into_iter()
        .find_map(|e| e.err())
        .expect("an error event");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        err.partial_response().map(ChatResponse::text).as_deref(),
        Some("The")
    );
}

#[tokio::test]
async fn a_json_array_stream_decodes_like_its_sse_form() {
    let base = "llm-gemini/stream-json-array-function-call.response.json";
    let text = fixture(base);
    let server = FixtureServer::start(vec![
        Scripted::json(200, text.clone()),
        Scripted::sse(200, json_array_to_sse(&text)),
    ])
    .await;
    let provider = gemini(&server.url());
    let request = ChatRequest::new("gemini-2.5-flash").user("Two names for a pet pelican");
    let array = exllm_core::stream::collect(provider.stream(request.clone()).await.unwrap())
        .await
        .expect("the array form decodes");
    let sse = exllm_core::stream::collect(provider.stream(request).await.unwrap())
        .await
        .expect("the SSE form decodes");
    assert_eq!(array, sse);
    assert_eq!(array.finish_reason, Some(FinishReason::ToolCalls));
    assert!(array.reasoning().unwrap_or_default().contains("Pelican"));
}

#[tokio::test]
async fn vertex_streamed_arguments_fail_clearly_keeping_the_partial_reply() {
    let sse = jsonl_to_sse(&fixture("vercel/stream-vertex-partial-args.chunks.jsonl"));
    let server = FixtureServer::start(vec![Scripted::sse(200, sse)]).await;
    let stream = gemini(&server.url())
        .stream(ChatRequest::new("gemini-3.1-pro-preview").user("weather?"))
        .await
        .unwrap();
    let err = exllm_core::stream::collect(stream)
        .await
        .expect_err("partialArgs are Vertex-only");
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.message().contains("partialArgs"), "{err}");
    assert!(err.raw_body().is_some());
    assert!(err.partial_response().is_some());
}
