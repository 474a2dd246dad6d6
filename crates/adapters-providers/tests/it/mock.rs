//! The mock provider as users meet it: through the `ChatProvider` port, behind an `Arc`.

use std::sync::Arc;

use exllm_adapters_providers::{MockProvider, MockReply};
use exllm_core::stream::collect;
use exllm_core::{ChatProvider, ChatRequest, Error, ErrorKind, StreamEvent};
use futures_util::StreamExt;
use serde_json::json;

#[tokio::test]
async fn a_shared_mock_scripts_records_and_streams() {
    let mock = Arc::new(MockProvider::new().reply("scripted answer"));
    let provider: Arc<dyn ChatProvider> = mock.clone();
    mock.push(MockReply::Error(Error::new(ErrorKind::Timeout, "too slow")));

    let first = collect(
        provider
            .stream(ChatRequest::new("echo").user("q1"))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(first.text(), "scripted answer");
    let err = provider
        .chat(ChatRequest::new("echo").user("q2"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.is_retryable());

    // Script used up: the echo, streamed word by word.
    let deltas: Vec<String> = provider
        .stream(ChatRequest::new("echo").user("hello world"))
        .await
        .unwrap()
        .filter_map(|e| async move {
            match e.unwrap() {
                StreamEvent::TextDelta(t) => Some(t),
                _ => None,
            }
        })
        .collect()
        .await;
    assert_eq!(deltas, ["mock ", "reply: ", "hello ", "world"]);

    let seen: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.messages[0].text())
        .collect();
    assert_eq!(seen, ["q1", "q2", "hello world"]);
}

#[tokio::test]
async fn a_tool_loop_against_the_mock() {
    let mock = MockProvider::new()
        .reply_tool_call("get_weather", json!({"city": "Oslo"}))
        .reply("It is sunny in Oslo.");
    let mut request = ChatRequest::new("echo").user("Weather in Oslo?");
    let first = mock.chat(request.clone()).await.unwrap();
    let call = first.tool_calls()[0].clone();
    request = request
        .message(first.to_message())
        .message(exllm_core::Message::tool_result(call.id, "sunny"));
    let second = mock.chat(request).await.unwrap();
    assert_eq!(second.text(), "It is sunny in Oslo.");
    assert_eq!(mock.requests()[1].messages.len(), 3);
}
