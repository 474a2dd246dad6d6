//! Conversations: history sent upstream whole, tool calls and results kept, totals summed.

use std::sync::Arc;

use exllm::persistence::InMemoryStore;
use exllm::prelude::*;
use exllm::testing::MockProvider;
use exllm::{ContentPart, ErrorKind};
use futures_util::StreamExt;
use serde_json::json;

fn client(mock: Arc<MockProvider>) -> ExLLM {
    ExLLM::builder()
        .provider(mock)
        .store(Arc::new(InMemoryStore::new()))
        .build()
}

#[tokio::test]
async fn send_keeps_the_whole_history_and_sums_usage() {
    let mock = Arc::new(
        MockProvider::new()
            .reply("first answer")
            .reply("second answer"),
    );
    let exllm = client(mock.clone());
    let conv = exllm
        .conversations()
        .new("mock/echo", Some("Be brief."))
        .await
        .unwrap();

    let a = exllm.conversations().send(&conv.id, "first").await.unwrap();
    let b = exllm
        .conversations()
        .send(&conv.id, "second")
        .await
        .unwrap();
    assert_eq!(a.text(), "first answer");
    assert_eq!(b.text(), "second answer");

    // The second call carried system, user, assistant, user.
    let sent = &mock.requests()[1];
    let roles: Vec<Role> = sent.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::System, Role::User, Role::Assistant, Role::User]
    );
    assert_eq!(sent.messages[2].text(), "first answer");

    let stored = exllm.conversations().get(&conv.id).await.unwrap();
    assert_eq!(stored.messages.len(), 5);
    assert_eq!(
        stored.usage.input_tokens,
        a.usage.input_tokens + b.usage.input_tokens
    );
    assert_eq!(
        stored.cost.unwrap().total_usd,
        a.cost.unwrap().total_usd + b.cost.unwrap().total_usd
    );
}

#[tokio::test]
async fn history_keeps_tool_calls_and_tool_results() {
    let mock = Arc::new(
        MockProvider::new()
            .reply_tool_call("get_weather", json!({"city": "Edinburgh"}))
            .reply("It is 12°C in Edinburgh."),
    );
    let exllm = client(mock.clone());
    let conv = exllm.conversations().new("mock/echo", None).await.unwrap();

    let call_reply = exllm
        .conversations()
        .send(&conv.id, "Weather in Edinburgh?")
        .await
        .unwrap();
    let call = call_reply.tool_calls()[0].clone();
    assert_eq!(call.arguments, json!({"city": "Edinburgh"}));

    exllm
        .conversations()
        .send(
            &conv.id,
            Message::tool_result(&call.id, r#"{"celsius": 12}"#),
        )
        .await
        .unwrap();

    let stored = exllm.conversations().get(&conv.id).await.unwrap();
    let roles: Vec<Role> = stored.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::Tool, Role::Assistant]
    );
    assert_eq!(stored.messages[1].tool_calls().next().unwrap().id, call.id);
    match &stored.messages[2].content[0] {
        ContentPart::ToolResult(result) => assert_eq!(result.call_id, call.id),
        other => panic!("expected a tool result, got {other:?}"),
    }
    // The provider saw the tool call and its result on the second turn.
    let sent = &mock.requests()[1];
    assert_eq!(sent.messages.len(), 3);
    assert!(sent.messages[1].tool_calls().any(|c| c.id == call.id));
}

#[tokio::test]
async fn send_stream_records_the_turn_when_the_stream_completes() {
    let mock = Arc::new(MockProvider::new().reply("streamed reply here"));
    let exllm = client(mock);
    let conv = exllm.conversations().new("mock/echo", None).await.unwrap();
    let mut stream = exllm
        .conversations()
        .send_stream(&conv.id, "hello")
        .await
        .unwrap();
    let mut text = String::new();
    let mut done = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            StreamEvent::TextDelta(t) => text.push_str(&t),
            StreamEvent::Done(r) => done = Some(r),
            _ => {}
        }
    }
    assert_eq!(text, "streamed reply here");
    assert_eq!(done.unwrap().text(), text);
    let stored = exllm.conversations().get(&conv.id).await.unwrap();
    assert_eq!(stored.messages.len(), 2);
    assert_eq!(stored.messages[1].text(), "streamed reply here");
}

#[tokio::test]
async fn a_failed_turn_records_nothing() {
    let mock = Arc::new(MockProvider::new().fail(Error::new(ErrorKind::Unavailable, "down")));
    let exllm = client(mock);
    let conv = exllm.conversations().new("mock/echo", None).await.unwrap();
    let err = exllm
        .conversations()
        .send(&conv.id, "hi")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        exllm
            .conversations()
            .get(&conv.id)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_conversations_and_missing_stores_are_clear_errors() {
    let exllm = client(Arc::new(MockProvider::new()));
    let err = exllm.conversations().send("nope", "hi").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("nope"));

    let storeless = ExLLM::builder()
        .provider(Arc::new(MockProvider::new()))
        .build();
    let err = storeless
        .conversations()
        .new("mock/echo", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("InMemoryStore"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_lose_nothing_and_keep_turns_whole() {
    let exllm = client(Arc::new(MockProvider::new()));
    let conv = exllm.conversations().new("mock/echo", None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let exllm = exllm.clone();
        let id = conv.id.clone();
        tasks.push(tokio::spawn(async move {
            exllm
                .conversations()
                .send(&id, format!("question {i}"))
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = exllm.conversations().get(&conv.id).await.unwrap();
    assert_eq!(stored.messages.len(), 40);
    // Every turn landed whole: each question is followed by the mock's answer to it.
    for pair in stored.messages.chunks(2) {
        assert_eq!(pair[0].role, Role::User);
        assert_eq!(pair[1].text(), format!("mock reply: {}", pair[0].text()));
    }
}
